"""The model zoo: LeNet-5, AlexNet, ZFNet, VGG-16, and small ZF-style networks that train on a CPU.

Every builder takes ``num_classes``, ``input_shape`` (C, H, W), ``seed`` (weights and dropout masks) and
``init`` ("he", or "zf" for Zeiler & Fergus's Gaussian with std 1e-2). The size of the first fully connected
layer follows from the input shape, so any input large enough for the convolutions works.
"""
from __future__ import annotations

import numpy as np

from .layers import LRN, AvgPool2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from .net import Sequential

__all__ = ["lenet5", "alexnet", "zfnet", "vgg16", "zfnet_small", "zfnet_medium", "alexnet_tv", "MODELS", "build"]


def _check_args(model, num_classes, input_shape):
    """Refuse what no network can be built for, naming the argument: every builder calls this first."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{model}: num_classes must be an integer >= 1, got {num_classes!r}")
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                                    and s >= 1 for s in shape):
        raise ValueError(f"{model}: input_shape must be three positive integers (C, H, W), got {input_shape!r}")


class _Builder:
    """Appends layers while tracking the per-sample shape, so fully connected sizes are never typed by hand."""

    def __init__(self, input_shape, seed, init):
        self.shape = tuple(input_shape)
        if len(self.shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
        self.rng = np.random.default_rng(seed)
        self.init = init
        self.layers = []

    def add(self, layer):
        self.shape = layer.output_shape(self.shape)
        self.layers.append(layer)
        return self

    def conv(self, name, out_channels, kernel, stride=1, pad=0, relu=True):
        self.add(Conv2D(self.shape[0], out_channels, kernel, stride, pad, self.init, rng=self.rng, name=f"conv{name}"))
        if relu:
            self.add(ReLU(name=f"relu{name}"))
        return self

    def pool(self, name, kernel, stride, ceil_mode=False):
        return self.add(MaxPool2D(kernel, stride, ceil_mode=ceil_mode, name=f"pool{name}"))

    def norm(self, name, **lrn):
        return self.add(LRN(**lrn, name=f"norm{name}"))

    def fc(self, name, out_features, relu=True, dropout=0.0):
        if len(self.shape) == 3:
            self.add(Flatten(name="flatten"))
        self.add(Linear(self.shape[0], out_features, self.init, rng=self.rng, name=f"fc{name}"))
        if relu:
            self.add(ReLU(name=f"relu{name}"))
        if dropout:
            self.add(Dropout(dropout, seed=int(self.rng.integers(2**31)), name=f"drop{name}"))
        return self

    def build(self, name):
        return Sequential(self.layers, name=name)


def lenet5(num_classes=10, input_shape=(1, 32, 32), seed=0, init="he"):
    """LeCun et al. 1998, with ReLU and max pooling: conv 6@5x5 - pool - conv 16@5x5 - pool - 120 - 84 - classes."""
    _check_args("lenet5", num_classes, input_shape)
    b = _Builder(input_shape, seed, init)
    b.conv(1, 6, 5).pool(1, 2, 2).conv(2, 16, 5).pool(2, 2, 2)
    b.fc(3, 120).fc(4, 84).fc(5, num_classes, relu=False)
    return b.build("lenet5")


def alexnet(num_classes=1000, input_shape=(3, 227, 227), seed=0, init="he", dropout=0.5):
    """Krizhevsky et al. 2012, single stream (the seed's simplified table).

    227x227x3 -> conv1 96@11x11/4 (55x55) -> pool 3/2 (27) -> LRN -> conv2 256@5x5 pad 2 (27) -> pool 3/2 (13)
    -> LRN -> conv3 384@3x3 -> conv4 384@3x3 -> conv5 256@3x3 (13) -> pool 3/2 (6) -> fc6 4096 -> fc7 4096 -> fc8.
    """
    _check_args("alexnet", num_classes, input_shape)
    b = _Builder(input_shape, seed, init)
    b.conv(1, 96, 11, stride=4).pool(1, 3, 2).norm(1)
    b.conv(2, 256, 5, pad=2).pool(2, 3, 2).norm(2)
    b.conv(3, 384, 3, pad=1).conv(4, 384, 3, pad=1).conv(5, 256, 3, pad=1).pool(5, 3, 2)
    b.fc(6, 4096, dropout=dropout).fc(7, 4096, dropout=dropout).fc(8, num_classes, relu=False)
    return b.build("alexnet")


def zfnet(num_classes=1000, input_shape=(3, 224, 224), seed=0, init="zf", dropout=0.5):
    """Zeiler & Fergus 2014, Fig. 3.

    224x224x3 -> conv1 96@7x7/2 (110) -> pool 3/2 (55) -> LRN -> conv2 256@5x5/2 (26) -> pool 3/2 (13) -> LRN
    -> conv3 384@3x3 -> conv4 384@3x3 -> conv5 256@3x3 (13) -> pool 3/2 (6) -> fc6 4096 -> fc7 4096 -> fc8.
    The 110 -> 55 and 26 -> 13 poolings round up (ceil mode), as in the paper's Caffe-style implementation.
    """
    _check_args("zfnet", num_classes, input_shape)
    b = _Builder(input_shape, seed, init)
    b.conv(1, 96, 7, stride=2, pad=1).pool(1, 3, 2, ceil_mode=True).norm(1)
    b.conv(2, 256, 5, stride=2).pool(2, 3, 2, ceil_mode=True).norm(2)
    b.conv(3, 384, 3, pad=1).conv(4, 384, 3, pad=1).conv(5, 256, 3, pad=1).pool(5, 3, 2, ceil_mode=True)
    b.fc(6, 4096, dropout=dropout).fc(7, 4096, dropout=dropout).fc(8, num_classes, relu=False)
    return b.build("zfnet")


def vgg16(num_classes=1000, input_shape=(3, 224, 224), seed=0, init="he", dropout=0.5):
    """Simonyan & Zisserman 2015, configuration D: 13 convolutions 3x3 pad 1 in five blocks, three fc layers."""
    _check_args("vgg16", num_classes, input_shape)
    b = _Builder(input_shape, seed, init)
    for block, (width, repeats) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, repeats + 1):
            b.conv(f"{block}_{i}", width, 3, pad=1)
        b.pool(block, 2, 2)
    b.fc(6, 4096, dropout=dropout).fc(7, 4096, dropout=dropout).fc(8, num_classes, relu=False)
    return b.build("vgg16")


def zfnet_small(num_classes=10, input_shape=(3, 32, 32), seed=0, init="he", width=16, dropout=0.0):
    """A ZF-style network sized for 16x16 to 64x64 inputs on a CPU (the default of ``minicnn demo``).

    Same pattern as ZFNet (conv-relu-pool-LRN twice, three 3x3 convolutions, pool, two fc layers), with
    ``width`` filters in conv1 (2x in conv2, 3x in conv3/4, 2x in conv5) and 5x5 filters at stride 1 in
    conv1 (stride 2 from 64x64 up, to keep the cost down).
    Defaults are tuned for the shipped datasets on a 2-core CPU: width 16 trains about twice as fast as 32
    and reaches the same test accuracy on digits/shapes/faces; ``dropout`` (ZF: 0.5 in fc6/fc7) is off by
    default because on a few thousand images it slowed learning more than it helped; pass ``dropout=0.5``
    for the paper's setting (Dropout layers ``drop6``/``drop7`` then appear).
    """
    _check_args("zfnet_small", num_classes, input_shape)
    C, H, W = input_shape
    stride1 = 2 if min(H, W) >= 64 else 1
    w = width
    b = _Builder(input_shape, seed, init)
    b.conv(1, w, 5, stride=stride1, pad=2).pool(1, 3, 2, ceil_mode=True).norm(1)
    b.conv(2, 2 * w, 5, pad=2).pool(2, 3, 2, ceil_mode=True).norm(2)
    b.conv(3, 3 * w, 3, pad=1).conv(4, 3 * w, 3, pad=1).conv(5, 2 * w, 3, pad=1).pool(5, 3, 2, ceil_mode=True)
    b.fc(6, 8 * w, dropout=dropout).fc(7, 8 * w, dropout=dropout).fc(8, num_classes, relu=False)
    return b.build("zfnet_small")


def zfnet_medium(num_classes=10, input_shape=(1, 64, 64), seed=0, init="he", width=32, dropout=0.0):
    """A deeper ZF-style network for 48x48 to 64x64 inputs: ZF's first layer, six convolutions (the shipped
    Fashion-MNIST network).

    One 3x3 convolution more than ``zfnet_small``, and ZF's conv1 (7x7 at stride 2) where ``zfnet_small`` has 5x5 at
    stride 1. With ``width`` w (default 32) and a 1x64x64 input:

        1x64x64 -> conv1 w@7x7/2 pad 3 (w x32x32) -> pool1 3/2 (16) -> LRN
        -> conv2 2w@5x5 pad 2 (2w x16x16) -> pool2 3/2 (8) -> LRN
        -> conv3 3w@3x3 -> conv4 3w@3x3 -> conv5 3w@3x3 -> conv6 2w@3x3, all pad 1 (8x8) -> pool6 3/2 (2w x4x4)
        -> fc7 8w -> fc8 8w -> fc9 num_classes.

    Poolings round up (ceil mode), as in ``zfnet``. The stride-2 conv1 makes the 64x64 net cost about what
    ``zfnet_small`` costs on 32x32 (at width 32: 33 M multiply-accumulates a sample against 27 M), while its receptive
    fields are twice as large in pixels (relu3: 51 px, pool6: 115 px). ``dropout`` (ZF: 0.5) puts Dropout layers
    ``drop7``/``drop8`` after fc7/fc8; off by default, as in ``zfnet_small``.
    """
    _check_args("zfnet_medium", num_classes, input_shape)
    w = width
    b = _Builder(input_shape, seed, init)
    b.conv(1, w, 7, stride=2, pad=3).pool(1, 3, 2, ceil_mode=True).norm(1)
    b.conv(2, 2 * w, 5, pad=2).pool(2, 3, 2, ceil_mode=True).norm(2)
    b.conv(3, 3 * w, 3, pad=1).conv(4, 3 * w, 3, pad=1).conv(5, 3 * w, 3, pad=1).conv(6, 2 * w, 3, pad=1)
    b.pool(6, 3, 2, ceil_mode=True)
    b.fc(7, 8 * w, dropout=dropout).fc(8, 8 * w, dropout=dropout).fc(9, num_classes, relu=False)
    return b.build("zfnet_medium")


def _adaptive_avg_pool(b, size):
    """torchvision's AdaptiveAvgPool2d(size) before the classifier, where it is a fixed layer: nothing when the maps
    already have that size (224x224 inputs), an AvgPool2D when they are an exact multiple of it, an error otherwise."""
    C, H, W = b.shape
    if (H, W) == size:
        return b
    if H % size[0] or W % size[1] or H < size[0] or W < size[1]:
        raise ValueError(f"adaptive average pool to {size[0]}x{size[1]}: the {H}x{W} maps of {b.layers[-1].name} are "
                         f"not a multiple of it; use inputs whose maps are (e.g. 224x224 images)")
    return b.add(AvgPool2D((H // size[0], W // size[1]), name="avgpool"))


def alexnet_tv(num_classes=1000, input_shape=(3, 224, 224), seed=0, init="he", dropout=0.5):
    """AlexNet as torchvision ships it: Krizhevsky's single-GPU "one weird trick" variant (2014), not the 2012 paper.

    224x224x3 -> conv1 64@11x11/4 pad 2 (55) -> pool 3/2 (27) -> conv2 192@5x5 pad 2 -> pool 3/2 (13)
    -> conv3 384@3x3 -> conv4 256@3x3 -> conv5 256@3x3 -> pool 3/2 (6) -> fc6 4096 -> fc7 4096 -> fc8.
    No LRN; 64-192-384-256-256 filters where ``alexnet`` has 96-256-384-384-256. torchvision's adaptive
    average pool to 6x6 is the identity at 224x224 (see ``_adaptive_avg_pool`` for other sizes).
    """
    _check_args("alexnet_tv", num_classes, input_shape)
    b = _Builder(input_shape, seed, init)
    b.conv(1, 64, 11, stride=4, pad=2).pool(1, 3, 2)
    b.conv(2, 192, 5, pad=2).pool(2, 3, 2)
    b.conv(3, 384, 3, pad=1).conv(4, 256, 3, pad=1).conv(5, 256, 3, pad=1).pool(5, 3, 2)
    _adaptive_avg_pool(b, (6, 6))
    b.fc(6, 4096, dropout=dropout).fc(7, 4096, dropout=dropout).fc(8, num_classes, relu=False)
    return b.build("alexnet_tv")


MODELS = {"lenet5": lenet5, "alexnet": alexnet, "zfnet": zfnet, "vgg16": vgg16, "zfnet_small": zfnet_small,
          "zfnet_medium": zfnet_medium, "alexnet_tv": alexnet_tv}


def build(name, **kwargs):
    """Build a zoo model by name: ``build("zfnet_small", num_classes=10, input_shape=(1, 32, 32))``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
