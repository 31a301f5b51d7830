"""Inverted dropout: scale at training time so that evaluation is the identity."""
from __future__ import annotations

from .. import backend
from ._checks import check_array, check_same_device, check_shape

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, p, rng, name="dropout"):
    """Zero each element with probability p and scale the survivors by 1/(1-p).

    x: any shape; rng: numpy.random.Generator (or cupy's) -> (y, mask) where mask holds 0 or 1/(1-p).
    """
    check_array(x, name)
    if not callable(getattr(rng, "random", None)):
        raise TypeError(f"{name}: rng must be a numpy.random.Generator (or CuPy's), got {type(rng).__name__}")
    if not 0 <= p < 1:
        raise ValueError(f"{name}: drop probability must lie in [0, 1), got {p}")
    xp = backend.xp(x)
    keep = rng.random(x.shape) >= p
    mask = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask, name="dropout"):
    """dy -> dy * mask (the same elements dropped, the same scale)."""
    check_array(dy, name, "upstream gradient")
    check_array(mask, name, "mask (the forward's cache)")
    check_shape(dy, mask.shape, name, of="the shape of the mask")
    check_same_device(dy, mask, name, "mask (the forward's cache)")
    return dy * mask
