"""minicnn: a convolutional-network framework written to be read.

Every layer has an explicit forward and backward on NumPy (CPU) or CuPy (GPU) arrays; the Zeiler-Fergus
deconvnet, guided backpropagation and saliency are the network's own backward pass with another ReLU rule.
"""
from . import backend, layers, models, ops
from .layers import (LRN, AvgPool2D, BatchNorm, Conv2D, Dropout, Flatten, InstanceNorm, LayerNorm, Linear,
                     MaxPool2D, ReLU)
from .net import Sequential
from .ops.dispatch import active_cpu_path, cpu_path

__version__ = "0.1.0"


def load_pretrained(name="fashion"):
    """A trained ZF-style network that ships with minicnn (no download, no training): ``"fashion"`` (default,
    Fashion-MNIST) or ``"photos"`` (colour photographs); see :mod:`minicnn.pretrained`. Returns a ``Pretrained``
    (``.net``, ``.x_test``, ``.y_test``, ``.class_names``)."""
    from .pretrained import load
    return load(name)

__all__ = ["backend", "ops", "layers", "models", "Sequential", "Conv2D", "Linear", "ReLU", "MaxPool2D",
           "AvgPool2D", "LRN", "Dropout", "Flatten", "BatchNorm", "LayerNorm",
           "InstanceNorm", "load_pretrained", "cpu_path", "active_cpu_path", "get_num_threads",
           "set_num_threads", "__version__"]


def get_num_threads():
    """The threads minicnn's fast CPU path runs on ($MINICNN_NUM_THREADS, else every usable core)."""
    from .fast_cpu.threads import get_num_threads
    return get_num_threads()


def set_num_threads(n):
    """Run minicnn's fast CPU path on ``n`` threads from now on."""
    from .fast_cpu.threads import set_num_threads
    set_num_threads(n)
