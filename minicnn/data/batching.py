"""Mini-batches: ``iterate_batches(x, y, batch_size, ...)`` yields ``(xb, yb)``.

Notation: ``N`` images, ``B`` batch size; ``xb`` is ``(B, C, H, W)`` and ``yb`` is ``(B,)`` (the last batch
may be shorter unless ``drop_last``).
"""
from __future__ import annotations

import numpy as np

from ._common import check_size


def as_generator(rng, func: str = "iterate_batches") -> np.random.Generator:
    """``None`` -> ``default_rng(0)`` (deterministic); an int -> ``default_rng(int)``; a Generator as is."""
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"{func}: rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def iterate_batches(x, y, batch_size: int, *, shuffle: bool = False, rng=None, augment=None,
                    drop_last: bool = False):
    """Yield ``(xb, yb)`` mini-batches of ``x`` ``(N, C, H, W)`` and ``y`` ``(N,)``.

    shuffle : visit the images in the order ``rng.permutation(N)`` (otherwise in order; unshuffled batches
        are views of ``x``, not copies).
    rng : a ``numpy.random.Generator`` used for the order and handed to ``augment``; an int seed; or None,
        which means ``default_rng(0)`` -- deterministic, but the same order every call, so a trainer should
        pass one Generator and reuse it across epochs.
    augment : a callable ``(xb, rng) -> xb`` (e.g. :class:`minicnn.data.Augment`) applied to every batch; it
        must return a new array and leave ``xb`` alone.
    drop_last : skip the last batch when it is shorter than ``batch_size``.

    The same seed, data and arguments give the same batches.
    """
    batch_size = check_size("iterate_batches", "batch_size", batch_size)
    n = len(x)
    if len(y) != n:
        raise ValueError(f"iterate_batches: x has {n} images but y has {len(y)} labels")
    gen = as_generator(rng) if (shuffle or augment is not None) else None
    order = gen.permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            xb, yb = x[start:end], y[start:end]
        else:
            idx = order[start:end]
            xb, yb = x[idx], y[idx]
        if augment is not None:
            xb = augment(xb, gen)
        yield xb, yb


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches :func:`iterate_batches` yields for ``n`` images."""
    batch_size = check_size("num_batches", "batch_size", batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)
