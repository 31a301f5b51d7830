"""Inverted dropout: scale at training time so that evaluation is the identity."""
from __future__ import annotations

from .. import backend

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, p, rng, name="dropout"):
    """Zero each element with probability p and scale the survivors by 1/(1-p).

    x: any shape; rng: numpy.random.Generator (or cupy's) -> (y, mask) where mask holds 0 or 1/(1-p).
    """
    if not 0 <= p < 1:
        raise ValueError(f"{name}: drop probability must lie in [0, 1), got {p}")
    xp = backend.xp(x)
    keep = rng.random(x.shape) >= p
    mask = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask, name="dropout"):
    """dy -> dy * mask (the same elements dropped, the same scale)."""
    if tuple(dy.shape) != tuple(mask.shape):
        raise ValueError(f"{name}: upstream gradient must have shape {tuple(mask.shape)}, got {tuple(dy.shape)}")
    return dy * mask
