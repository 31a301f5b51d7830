"""minicnn: a convolutional-network framework written to be read.

Every layer has an explicit forward and backward on NumPy (CPU) or CuPy (GPU) arrays; the Zeiler-Fergus
deconvnet, guided backpropagation and saliency are the network's own backward pass with another ReLU rule.
"""
from . import backend, layers, models, ops
from .layers import (LRN, AvgPool2D, BatchNorm, Conv2D, Dropout, Flatten, InstanceNorm, LayerNorm, Linear,
                     MaxPool2D, ReLU)
from .net import Sequential

__version__ = "0.1.0"


def load_pretrained(name="fashion"):
    """A trained ZF-style network that ships with minicnn (no download, no training): ``"fashion"`` (default,
    Fashion-MNIST) or ``"photos"`` (colour photographs); see :mod:`minicnn.pretrained`. Returns a ``Pretrained``
    (``.net``, ``.x_test``, ``.y_test``, ``.class_names``)."""
    from .pretrained import load
    return load(name)

__all__ = ["backend", "ops", "layers", "models", "Sequential", "Conv2D", "Linear", "ReLU", "MaxPool2D",
           "AvgPool2D", "LRN", "Dropout", "Flatten", "BatchNorm", "LayerNorm",
           "InstanceNorm", "load_pretrained", "__version__"]
