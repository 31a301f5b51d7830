"""minicnn: a convolutional-network framework written to be read.

Every layer has an explicit forward and backward on NumPy (CPU) or CuPy (GPU) arrays; the Zeiler-Fergus
deconvnet, guided backpropagation and saliency are the network's own backward pass with another ReLU rule.
"""
from . import backend, layers, models, ops
from .layers import LRN, AvgPool2D, BatchNorm, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from .layers import InstanceNorm, LayerNorm  # noqa: F401  (issue 18; to join __all__ when merged)
from .net import Sequential

__version__ = "0.1.0"

__all__ = ["backend", "ops", "layers", "models", "Sequential", "Conv2D", "Linear", "ReLU", "MaxPool2D",
           "AvgPool2D", "LRN", "Dropout", "Flatten", "BatchNorm", "__version__"]
