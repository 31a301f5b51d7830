"""ReLU with its three backward rules, softmax and log-softmax.

The rules (ARCHITECTURE.md §5) differ only in where the upstream signal ``dy`` is let through:

    rule         passes dy where              used by
    "backprop"   x > 0  (the forward input)   training, saliency (Simonyan et al.)
    "deconvnet"  dy > 0 (the signal itself)   Zeiler-Fergus projection
    "guided"     x > 0 and dy > 0             guided backpropagation (Springenberg et al.)

So the deconvnet is the network's own backward pass with a different ReLU rule.
"""
from __future__ import annotations

from .. import backend
from . import _gpu
from .dispatch import fast_cpu_alternative
from ._checks import check_array, check_same_device, check_shape

__all__ = ["RELU_RULES", "relu_forward", "relu_backward", "softmax", "log_softmax"]

RELU_RULES = ("backprop", "deconvnet", "guided")


@fast_cpu_alternative
def relu_forward(x, name="relu"):
    """y = max(x, 0), elementwise; the cache is the input x (any shape). NaN stays NaN."""
    check_array(x, name)
    xp = backend.xp(x)
    return xp.asarray(xp.maximum(x, 0)), x         # asarray: a 0-d input gives a 0-d array, not a scalar


def check_rule(rule, name="relu"):
    if rule not in RELU_RULES:
        raise ValueError(f"{name}: unknown ReLU rule {rule!r}; expected one of {', '.join(map(repr, RELU_RULES))}")


def check_relu_backward(dy, cache, rule, name):
    """What every relu_backward checks first."""
    check_rule(rule, name)
    check_array(dy, name, "upstream gradient")
    check_array(cache, name, "cache (the forward input)")
    check_shape(dy, cache.shape, name, of="the input shape")
    check_same_device(dy, cache, name, "cache (the forward input)")


# The cache is the forward input itself, not a fast-path type: the switch decides, as for a forward.
@fast_cpu_alternative(cache_decides=False)
def relu_backward(dy, cache, rule="backprop", name="relu"):
    """dy (shape of x) -> dx: dy where the rule lets it through, 0 elsewhere. Never writes into dy."""
    check_relu_backward(dy, cache, rule, name)
    x = cache
    if _gpu.handles(dy):  # CuPy array: the kernel in kernels/relu.cu
        return _gpu.relu_backward(dy, x, rule)
    xp = backend.xp(dy)
    if rule == "backprop":
        gate = x > 0
    elif rule == "deconvnet":
        gate = dy > 0
    else:
        gate = (x > 0) & (dy > 0)
    return xp.where(gate, dy, dy.dtype.type(0))


def _check_logits(z, axis, name):
    check_array(z, name, "logits")
    if not -z.ndim <= axis < z.ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for logits of shape {tuple(z.shape)}")
    if z.shape[axis] == 0:
        raise ValueError(f"{name}: the class axis {axis} of logits {tuple(z.shape)} is empty; softmax needs >= 1 class")


def log_softmax(z, axis=-1):
    """log(softmax(z)) computed as z - max - log(sum(exp(z - max))): finite for logits of any size."""
    _check_logits(z, axis, "log_softmax")
    xp = backend.xp(z)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z, axis=-1):
    """exp(z) / sum(exp(z)) along ``axis``, shifted by the max so that exp never overflows."""
    _check_logits(z, axis, "softmax")
    xp = backend.xp(z)
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
