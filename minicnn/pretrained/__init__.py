"""The trained network that ships with minicnn: a ZF-style network trained on Fashion-MNIST.

``minicnn.load_pretrained()`` (or ``minicnn.pretrained.load()``) returns it in well under a second, with no
download and no training:

    >>> import minicnn
    >>> p = minicnn.load_pretrained()
    >>> p.net                      # zfnet_small, width 32, input (1, 32, 32): five conv layers as ZF's
    >>> p.x_test, p.y_test         # 1,000 official Fashion-MNIST test images (class-balanced), ready for p.net
    >>> p.meta["test_top1"]        # accuracy on the full 10,000-image test set when it was exported

Files (package data, ``minicnn/pretrained/``):

    fashion_zf.npz          a minicnn checkpoint (``minicnn.train.load_checkpoint``): weights, training mean
                            (``data/mean``, (1, 32, 32)), architecture, recipe and test accuracies in meta.json;
                            no optimiser state
    fashion_test.npz        ``x`` uint8 (1000, 28, 28) test images as published, ``y`` labels, ``index`` their
                            positions in the official test set
    fashion_evolution.npz   feature-evolution snapshots recorded while training (ZF Fig. 4)
    LICENSE-fashion-mnist   the MIT licence of Fashion-MNIST (Zalando SE), whose images ``fashion_test.npz`` holds

Reproduce the weights with ``python -m minicnn.pretrained.build`` (see :mod:`minicnn.pretrained.build`).
Images go into the network as the training run prepared them: divided by 255, resized from 28x28 to 32x32
(bilinear, :func:`minicnn.data._common.resize_images`), minus the training mean; :meth:`Pretrained.prepare`
does that for any uint8 or [0, 1] ``(N, 28, 28)`` array.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Pretrained", "load", "export_run", "NAMES", "package_file"]

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = {"fashion-zf": ("fashion_zf.npz", "fashion_test.npz", "fashion_evolution.npz")}


def package_file(name: str) -> str:
    """Path of a file shipped in ``minicnn/pretrained/``."""
    return os.path.join(HERE, name)


@dataclass(eq=False)
class Pretrained:
    """A shipped network with what is needed to use it.

    net: Sequential (float32, CPU). mean: float32 (C, H, W) training mean, already subtracted from ``x_test``.
    class_names: list of K names. raw_test: uint8 (N, 28, 28) test images as published; ``x_test``: float32
    (N, C, H, W) the same prepared for ``net``; y_test: int64 (N,).
    index: (N,) positions of those images in the official test set. meta: the checkpoint's meta dict (recipe,
    ``test_top1`` on the full test set, ``subset_top1`` on ``x_test``). evolution: path of the feature-evolution
    snapshots (``minicnn.visualize.FeatureEvolution.load``) or None.
    """
    net: object
    mean: np.ndarray
    class_names: list
    raw_test: np.ndarray
    y_test: np.ndarray
    index: np.ndarray
    meta: dict = field(default_factory=dict)
    evolution: str | None = None
    name: str = "fashion-zf"
    _x_test: np.ndarray | None = field(default=None, repr=False)

    @property
    def x_test(self) -> np.ndarray:
        """The shipped test images prepared for ``net`` (resized on first use: ``load`` itself stays fast)."""
        if self._x_test is None:
            self._x_test = self.prepare(self.raw_test)
        return self._x_test

    def prepare(self, images) -> np.ndarray:
        """uint8 (0..255) or float [0, 1] images (N, H, W) or (N, 1, H, W) -> float32 (N, 1, 32, 32) for ``net``."""
        from ..data._common import resize_images, to_unit_float
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"Pretrained.prepare: expected images (N, H, W) or (N, {self.mean.shape[0]}, H, W), "
                             f"got shape {x.shape}")
        x = to_unit_float(x, 255.0) if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)
        if x.shape[2:] != self.mean.shape[1:]:
            x = resize_images(x, self.mean.shape[1:])
        return np.ascontiguousarray(x - self.mean[None], dtype=np.float32)

    def splits(self, n_train: int = 600):
        """The shipped test images as ``minicnn.data.Splits`` for the gallery and the notebooks.

        The first ``n_train`` images are ``train`` (for linear probes), the rest ``test``; ``val`` is all of them
        (the pool the top-9 searches). These are all test images of the official split: the network never saw them.
        """
        from ..data.splits import ArrayDataset, Splits
        n = len(self.y_test)
        if not 0 < n_train < n:
            raise ValueError(f"Pretrained.splits: n_train must be in 1..{n - 1}, got {n_train}")
        ds = lambda a, b: ArrayDataset(np.ascontiguousarray(self.x_test[a:b]), self.y_test[a:b].copy())  # noqa: E731
        return Splits(train=ds(0, n_train), val=ds(0, n), test=ds(n_train, n), class_names=list(self.class_names),
                      mean=self.mean, name="fashion-mnist (shipped test subset)", hflip=False,
                      info={"pretrained": self.name})


def load(name: str = "fashion-zf", folder=None) -> Pretrained:
    """Load a shipped network by name (:data:`NAMES`). Reads three small files; no training, no download.
    folder: where the files are (default: this package folder; ``export_run(..., dest=folder)`` writes them)."""
    from ..train import load_checkpoint
    if name not in NAMES:
        raise ValueError(f"load_pretrained: unknown network {name!r}; shipped: {', '.join(NAMES)}")
    folder = os.fspath(folder or HERE)
    weights, test, evolution = (os.path.join(folder, f) for f in NAMES[name])
    if not os.path.exists(weights):
        raise FileNotFoundError(f"load_pretrained: {weights} is missing from this installation; rebuild it with "
                                f"python -m minicnn.pretrained.build")
    ckpt = load_checkpoint(weights)
    net = ckpt.build_net()
    meta = ckpt.meta
    with np.load(test, allow_pickle=False) as z:
        raw, y, index = z["x"], z["y"].astype(np.int64), z["index"].astype(np.int64)
    return Pretrained(net=net, mean=np.asarray(ckpt.mean, dtype=np.float32), class_names=list(meta["class_names"]),
                      raw_test=raw, y_test=y, index=index, meta=meta,
                      evolution=evolution if os.path.exists(evolution) else None, name=name)


def export_run(run_dir, dest=None, *, n_test: int = 1000, recipe=None) -> str:
    """Write the shipped files from a finished run of ``python -m minicnn.pretrained.build``.

    Takes ``run_dir/best.npz`` (weights of the best validation epoch), measures its top-1 on the full official
    test set and on the ``n_test`` shipped images, and writes ``fashion_zf.npz``, ``fashion_test.npz`` and
    ``fashion_evolution.npz`` into ``dest`` (default: this package folder). Returns the weights' path.
    """
    import shutil

    from ..data import load_dataset
    from ..data.load import stratified_subset
    from ..data.loaders import read_mnist
    from ..train import atomic_write_bytes, evaluate, load_run, save_checkpoint
    dest = os.fspath(dest or HERE)
    os.makedirs(dest, exist_ok=True)
    run = load_run(run_dir, which="best")
    splits = run.splits
    full = evaluate(run.net, splits.test)
    root = (run.meta.get("data") or {}).get("root")
    if root is None:
        from ..data.loaders import default_fashion_mnist_root
        root = default_fashion_mnist_root("export_run")
    _, _, x_raw, y_raw = read_mnist(root, "fashion-mnist")
    index = stratified_subset(y_raw.astype(np.int64), n_test, seed=0)
    x_sub = x_raw[index]
    y_sub = y_raw[index].astype(np.int64)

    def write_test(f):
        np.savez_compressed(f, x=x_sub, y=y_sub.astype(np.uint8), index=index.astype(np.int32))

    names = NAMES["fashion-zf"]
    atomic_write_bytes(os.path.join(dest, names[1]), write_test)
    shipped = Pretrained(net=run.net, mean=np.asarray(splits.mean, np.float32), class_names=list(splits.class_names),
                         raw_test=x_sub, y_test=y_sub, index=index)
    prepared = shipped.prepare(x_sub)
    if len(splits.test.y) == len(y_raw):        # a full run: load()'s preprocessing must be the run's own
        if not np.allclose(prepared, splits.test.x[index], atol=1e-6):
            raise ValueError("export_run: Pretrained.prepare does not reproduce the run's preprocessing")
    sub = evaluate(run.net, _dataset(prepared, y_sub))
    options = dict(run.meta.get("data") or {})
    options.pop("root", None)
    meta = {"class_names": list(splits.class_names), "recipe": dict(recipe or {}),
            "command": "python -m minicnn.pretrained.build", "data": options, "trained_epochs": run.meta.get("epoch"),
            "history": run.history, "test_top1": full["top1"], "test_top5": full["top5"], "test_n": full["n"],
            "subset_top1": sub["top1"], "subset_n": sub["n"]}
    path = save_checkpoint(os.path.join(dest, names[0]), run.net, epoch=run.meta.get("epoch", 0), meta=meta,
                           mean=splits.mean)
    evo = os.path.join(os.fspath(run_dir), "evolution.npz")
    if os.path.exists(evo):
        shutil.copyfile(evo, os.path.join(dest, names[2]))
    with open(os.path.join(dest, "RESULTS.json"), "w") as f:
        json.dump({k: meta[k] for k in ("command", "recipe", "trained_epochs", "test_top1", "test_top5", "test_n",
                                        "subset_top1", "subset_n")}, f, indent=1)
    return path


def _dataset(x, y):
    from ..data.splits import ArrayDataset
    return ArrayDataset(np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64))
