"""Datasets as arrays, deterministic stratified splits, and per-pixel mean subtraction.

Notation: ``N`` images, ``C`` channels, ``H x W`` pixels, ``K`` classes.

- ``ArrayDataset(x, y)``: images ``x`` float32 ``(N, C, H, W)`` (C-contiguous) and labels ``y`` int64 ``(N,)``.
- ``Splits``: train / val / test ``ArrayDataset`` plus what a trainer needs to know (class names, the train
  mean that was subtracted, whether horizontal flips keep labels).
- ``stratified_split``: the same seed always gives the same split; each class is split in the same proportions.
- ``make_splits``: split, compute the train per-pixel mean, subtract it (Zeiler & Fergus 2014, section 3).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class ArrayDataset:
    """Images and labels held in memory.

    x : float32 ``(N, C, H, W)``, C-contiguous. y : int64 ``(N,)``, values in ``0..K-1``.
    ``len(ds)`` is ``N``; ``ds[i]`` is ``(x[i], y[i])``; ``ds.batches(batch_size, ...)`` calls
    :func:`minicnn.data.iterate_batches` on it.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x, y = self.x, self.y
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            raise ValueError(f"ArrayDataset: x must be a 4-d array (N, C, H, W), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if not isinstance(y, np.ndarray) or y.ndim != 1:
            raise ValueError(f"ArrayDataset: y must be a 1-d array (N,), got {getattr(y, 'shape', type(y).__name__)}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"ArrayDataset: x has {x.shape[0]} images but y has {y.shape[0]} labels")
        if x.dtype != np.float32:
            raise TypeError(f"ArrayDataset: x must be float32, got {x.dtype}")
        if y.dtype != np.int64:
            raise TypeError(f"ArrayDataset: y must be int64, got {y.dtype}")
        if not x.flags.c_contiguous:
            self.x = np.ascontiguousarray(x)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def batches(self, batch_size: int, **kwargs):
        """Yield ``(xb, yb)`` batches; keyword arguments as :func:`minicnn.data.iterate_batches`."""
        from .batching import iterate_batches

        return iterate_batches(self.x, self.y, batch_size, **kwargs)

    def __repr__(self) -> str:
        return f"ArrayDataset(x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype})"


@dataclass(eq=False)
class Splits:
    """A dataset split three ways, ready to train on.

    train, val, test : ArrayDataset (images ``(N, C, H, W)`` float32, labels int64).
    class_names : list of ``K`` names; label ``k`` is ``class_names[k]``.
    mean : float32 ``(C, H, W)``, the per-pixel mean of the *train* images in [0, 1] scale. When the splits
        were made with ``subtract_mean=True`` it has already been subtracted from all three splits; add it back
        with :meth:`denormalize` to show an image.
    name : the dataset name given to ``load_dataset``.
    hflip : True when a horizontal flip keeps an image's label (False for digits and MNIST).
    mean_subtracted : whether ``mean`` was subtracted.
    info : anything else the dataset knows (e.g. ``"face_parts"`` for faces, ``"sources"`` for textures).
    """

    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    class_names: list
    mean: np.ndarray
    name: str
    hflip: bool
    mean_subtracted: bool = True
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple:
        """``(C, H, W)`` of one image."""
        return tuple(int(s) for s in self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        """``K``, the number of classes."""
        return len(self.class_names)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """Images as stored here ``(..., C, H, W)`` -> images in [0, 1] (the mean added back if it was removed)."""
        x = np.asarray(x, dtype=np.float32)
        if self.mean_subtracted:
            x = x + self.mean
        return np.clip(x, 0.0, 1.0)

    def __repr__(self) -> str:
        return (f"Splits(name={self.name!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
                f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, hflip={self.hflip})")


def _check_fraction(func: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{func}: {name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{func}: {name} must be in [0, 1), got {value}")
    return float(value)


def stratified_split(y: np.ndarray, fractions, seed: int = 0) -> list:
    """Split the indices ``0..N-1`` into parts with the given fractions, class by class.

    y : int labels ``(N,)``. fractions : the fractions of every part but the first (e.g. ``(val, test)``);
    the first part gets the rest. Within each class of ``n_k`` images, part ``j`` gets ``round(f_j * n_k)``
    images, but at least one when ``f_j > 0`` and the class has enough images to leave one for the first part.
    Returns a list of sorted int64 index arrays, disjoint, covering ``0..N-1``; the same ``seed`` gives the
    same split.
    """
    y = np.asarray(y)
    fractions = [_check_fraction("stratified_split", "fraction", f) for f in fractions]
    if sum(fractions) >= 1.0:
        raise ValueError(f"stratified_split: the fractions {fractions} leave nothing for the first part")
    rng = np.random.default_rng(seed)
    parts = [[] for _ in range(len(fractions) + 1)]
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        start = 0
        for j, f in enumerate(fractions):
            take = int(round(f * len(idx)))
            if f > 0 and take == 0 and len(idx) - start > 1:
                take = 1
            take = min(take, max(0, len(idx) - start - 1))  # always leave one for the first part
            parts[j + 1].append(idx[start:start + take])
            start += take
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts]


def make_splits(x: np.ndarray, y: np.ndarray, *, train_idx, val_idx, test_idx, class_names, name: str,
                hflip: bool, subtract_mean: bool = True, info: dict | None = None,
                x_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> Splits:
    """Build :class:`Splits` from images ``x`` ``(N, C, H, W)`` in [0, 1] and labels ``y`` ``(N,)``.

    ``test_idx`` indexes ``x`` unless ``x_test``/``y_test`` (a separate official test set) are given, in which
    case ``test_idx`` must be None. The mean is taken over the train images only and, when ``subtract_mean``,
    subtracted from every split.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    xtr, ytr = x[train_idx], y[train_idx]
    xva, yva = x[val_idx], y[val_idx]
    if x_test is None:
        xte, yte = x[test_idx], y[test_idx]
    else:
        if test_idx is not None:
            raise ValueError("make_splits: give either test_idx or x_test/y_test, not both")
        xte, yte = np.asarray(x_test, dtype=np.float32), np.asarray(y_test, dtype=np.int64)
    if len(xtr) == 0:
        raise ValueError(f"make_splits: dataset {name!r} has no training images")
    K = len(class_names)
    for part, labels in (("train", ytr), ("val", yva), ("test", yte)):
        if labels.size and (labels.min() < 0 or labels.max() >= K):
            raise ValueError(f"make_splits: dataset {name!r} has {part} labels in [{labels.min()}, {labels.max()}], "
                             f"outside 0..{K - 1} for its {K} class names")
    mean = xtr.mean(axis=0, dtype=np.float64).astype(np.float32)
    if subtract_mean:
        xtr, xva, xte = xtr - mean, xva - mean, xte - mean

    def ds(a, b):
        return ArrayDataset(np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.int64))

    return Splits(train=ds(xtr, ytr), val=ds(xva, yva), test=ds(xte, yte), class_names=list(class_names),
                  mean=np.ascontiguousarray(mean), name=name, hflip=bool(hflip),
                  mean_subtracted=bool(subtract_mean), info=dict(info or {}))
