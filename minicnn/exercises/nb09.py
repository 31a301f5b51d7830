"""Exercises of notebook 09 (architectures by the numbers): a convolution's output size and parameter count, and the
receptive field of a stack of layers. Both are checked against what minicnn's own layers and ``layer_info`` say."""
from __future__ import annotations

import numpy as np

from ..layers import Conv2D, MaxPool2D
from ..net import Sequential
from . import register

# (H, W, C, F, k, stride, pad): AlexNet conv1 (the seed's 55x55 and 35K), ZF conv1, a VGG conv, LeNet conv1, and
# sizes the stride does not divide (the floor matters) or with rectangular inputs.
CONV_CASES = [(227, 227, 3, 96, 11, 4, 0), (224, 224, 3, 96, 7, 2, 1), (224, 224, 64, 64, 3, 1, 1),
              (32, 32, 1, 6, 5, 1, 0), (64, 48, 3, 16, 11, 4, 0), (13, 20, 5, 7, 4, 3, 2), (9, 9, 2, 3, 9, 5, 0)]


def _ints(value, what, n):
    try:
        out = tuple(int(v) for v in value)
        exact = all(float(v) == o for v, o in zip(value, out))
    except (TypeError, ValueError):
        raise AssertionError(f"{what} should be a tuple of {n} integers, got {value!r}") from None
    if not exact:
        raise AssertionError(f"{what} returned {value!r}: sizes and counts are whole numbers (use // for the "
                             "division: a window that runs past the padded edge is not computed)")
    if len(out) != n:
        raise AssertionError(f"{what} should be a tuple of {n} integers, got {value!r}")
    return out


def check_conv_numbers(conv_numbers):
    for H, W, C, F, k, s, p in CONV_CASES:
        layer = Conv2D(C, F, k, s, p, rng=np.random.default_rng(0))
        want = tuple(layer.output_shape((C, H, W))[1:]) + (layer.num_params(),)
        case = f"input {C}x{H}x{W}, {F} filters {k}x{k}, stride {s}, pad {p}"
        got = _ints(conv_numbers(H, W, C, F, k, s, p), "conv_numbers(...)", 3)
        if got[:2] != want[:2]:
            hint = (" (the division is a floor: a window that would run past the padded edge is not computed)"
                    if (H + 2 * p - k) % s else "")
            raise AssertionError(f"{case}: output size {got[0]}x{got[1]}, expected {want[0]}x{want[1]}{hint}")
        if got[2] != want[2]:
            no_bias = k * k * C * F
            hint = (" — that is the weights only; each filter also has a bias" if got[2] == no_bias else
                    " — each of the F filters has k*k*C weights (it spans all C input channels) and one bias")
            raise AssertionError(f"{case}: {got[2]:,} parameters, expected {want[2]:,}{hint}")
    return f"{len(CONV_CASES)} layers, AlexNet conv1 (55x55, 34,944 = 35K parameters) among them"


def solution_conv_numbers(H, W, C, F, k, stride, pad):
    oh = (H + 2 * pad - k) // stride + 1
    ow = (W + 2 * pad - k) // stride + 1
    params = F * (C * k * k + 1)                 # each filter: C*k*k weights and one bias
    return oh, ow, params


def _random_stacks(rng, n):
    """Lists of (kind, kernel, stride) with kind "conv" or "pool", small enough to fit a 160x160 input."""
    stacks = [[("conv", 11, 4), ("pool", 3, 2), ("conv", 5, 1), ("pool", 3, 2), ("conv", 3, 1)],   # AlexNet-like
              [("conv", 3, 1)] * 3,                                                               # VGG's 3 x 3x3
              [("conv", 7, 2), ("pool", 3, 2), ("conv", 5, 2)]]                                   # ZF-like
    for _ in range(n):
        depth = int(rng.integers(2, 6))
        stacks.append([(str(rng.choice(["conv", "pool"])), int(rng.integers(1, 6)), int(rng.integers(1, 3)))
                       for _ in range(depth)])
    return stacks


def _reference(stack):
    layers = [Conv2D(1, 1, k, s, rng=np.random.default_rng(0)) if kind == "conv" else MaxPool2D(k, s)
              for kind, k, s in stack]
    last = Sequential(layers).layer_info((1, 160, 160))[-1]
    return last.rf[0], last.jump[0]


def check_receptive_field(receptive_field):
    rng = np.random.default_rng(9)
    for stack in _random_stacks(rng, 12):
        want = _reference(stack)
        got = _ints(receptive_field([(k, s) for _, k, s in stack]), "receptive_field(...)", 2)
        if got != want:
            case = ", ".join(f"{kind} {k}x{k}/{s}" for kind, k, s in stack)
            hint = ""
            if got[0] == 1 + sum(k - 1 for _, k, _ in stack):
                hint = (" — you added k - 1 for every layer; a layer's k - 1 extra units are `jump` input pixels "
                        "apart, where jump is the product of the strides below it")
            raise AssertionError(f"[{case}]: (rf, jump) = {got}, expected {want}{hint}")
    return "15 stacks, AlexNet's, VGG's three 3x3 and random ones"


def solution_receptive_field(layers):
    rf, jump = 1, 1
    for k, s in layers:
        rf += (k - 1) * jump          # k - 1 more units of the layer below, each `jump` input pixels apart
        jump *= s
    return rf, jump


register("09.conv_numbers", "a convolution's output size and parameters", "conv_numbers", check_conv_numbers,
         solution_conv_numbers)
register("09.receptive_field", "the receptive field of a stack", "receptive_field", check_receptive_field,
         solution_receptive_field)
