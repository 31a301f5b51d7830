"""The trained networks that ship with minicnn: two ZF-style networks, one on Fashion-MNIST (objects: occlusion,
correspondence), one on colour photographs (colour first-layer filters).

``minicnn.load_pretrained(name)`` (or ``minicnn.pretrained.load(name)``) returns one in well under a second, with
no download and no training. ``name`` is ``"fashion"`` (the default; also ``"fashion-zf"``) or ``"photos"`` (also
``"photos-zf"``):

    >>> import minicnn
    >>> p = minicnn.load_pretrained()
    >>> p.net                      # zfnet_medium, width 32, input (1, 64, 64): six conv layers, ZF's 7x7/2 conv1
    >>> p.x_test, p.y_test         # 1,000 official Fashion-MNIST test images (class-balanced), ready for p.net
    >>> p.meta["test_top1"]        # accuracy on the full 10,000-image test set when it was exported

Files (package data, ``minicnn/pretrained/``):

    fashion_zf.npz          a minicnn checkpoint (``minicnn.train.load_checkpoint``): weights, training mean
                            (``data/mean``, (1, 64, 64)), architecture, recipe and test accuracies in meta.json;
                            no optimiser state
    fashion_test.npz        ``x`` uint8 (1000, 28, 28) test images as published, ``y`` labels, ``index`` their
                            positions in the official test set
    fashion_evolution.npz   feature-evolution snapshots recorded while training (ZF Fig. 4)
    LICENSE-fashion-mnist   the MIT licence of Fashion-MNIST (Zalando SE), whose images ``fashion_test.npz`` holds

    photos_zf.npz           the colour network: zfnet_small, width 24, input (3, 48, 48), trained on ``photos``
                            (:func:`minicnn.data.datasets.make_photos`: "which of the 21 shipped photographs is this
                            crop from"); recipe and accuracies in its meta.json and in RESULTS-photos.json
    photos_test.npz         ``x`` uint8 (N, 3, 48, 48) crops of its test split (regenerated deterministically from
                            the photographs scikit-image, scikit-learn and matplotlib ship), ``y``, ``index``
    photos_evolution.npz    its feature-evolution snapshots

Reproduce the weights with ``python -m minicnn.pretrained.build [--network photos]`` (see
:mod:`minicnn.pretrained.build`).
Images go into the network as the training run prepared them: divided by 255, resized from 28x28 to 64x64
(bilinear, :func:`minicnn.data._common.resize_images`), minus the training mean; :meth:`Pretrained.prepare`
does that for any uint8 or [0, 1] ``(N, 28, 28)`` array.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Pretrained", "load", "export_run", "NAMES", "ALIASES", "RESULTS", "canonical_name", "package_file"]

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = {"fashion-zf": ("fashion_zf.npz", "fashion_test.npz", "fashion_evolution.npz"),
         "photos-zf": ("photos_zf.npz", "photos_test.npz", "photos_evolution.npz")}
ALIASES = {"fashion": "fashion-zf", "photos": "photos-zf"}
RESULTS = {"fashion-zf": "RESULTS.json", "photos-zf": "RESULTS-photos.json"}    # recipe and accuracies, readable


def canonical_name(name: str, who: str = "load_pretrained") -> str:
    """``"fashion"`` -> ``"fashion-zf"``, ``"photos"`` -> ``"photos-zf"``; an unknown name is a ValueError."""
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in NAMES:
        raise ValueError(f"{who}: unknown network {name!r}; shipped: {', '.join(ALIASES)} "
                         f"(also {', '.join(NAMES)})")
    return key


def package_file(name: str) -> str:
    """Path of a file shipped in ``minicnn/pretrained/``."""
    return os.path.join(HERE, name)


@dataclass(eq=False)
class Pretrained:
    """A shipped network with what is needed to use it.

    net: Sequential (float32, CPU). mean: float32 (C, H, W) training mean, already subtracted from ``x_test``.
    class_names: list of K names. raw_test: uint8 test images, (N, 28, 28) for Fashion-MNIST as published,
    (N, 3, 48, 48) for the photos network; ``x_test``: float32 (N, C, H, W) the same prepared for ``net``;
    y_test: int64 (N,).
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
        """uint8 (0..255) or float [0, 1] images (N, H, W) (grey) or (N, C, H, W) -> float32 (N, C, h, w) for
        ``net``: resized to the training size (bilinear) when needed, minus the training mean."""
        from ..data._common import resize_images, to_unit_float
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != self.mean.shape[0]:
            c = self.mean.shape[0]
            raise ValueError(f"Pretrained.prepare: expected images {'(N, H, W) or ' if c == 1 else ''}"
                             f"(N, {c}, H, W), got shape {x.shape}")
        x = to_unit_float(x, 255.0) if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)
        if x.shape[2:] != self.mean.shape[1:]:
            x = resize_images(x, self.mean.shape[1:])
        return np.ascontiguousarray(x - self.mean[None], dtype=np.float32)

    @property
    def data_name(self) -> str:
        """The training data's name ("fashion-mnist", "photos")."""
        return str((self.meta.get("data") or {}).get("name") or self.meta.get("recipe", {}).get("data") or "data")

    def splits(self, n_train: int | None = None):
        """The shipped test images as ``minicnn.data.Splits`` for the gallery and the notebooks.

        The first ``n_train`` images (default 60%: 600 of Fashion-MNIST's 1,000) are ``train`` (for linear probes),
        the rest ``test``; ``val`` is all of them (the pool the top-9 searches). These are all test images: the
        network never saw them.
        """
        from ..data.splits import ArrayDataset, Splits
        n = len(self.y_test)
        n_train = int(0.6 * n) if n_train is None else n_train
        if not 0 < n_train < n:
            raise ValueError(f"Pretrained.splits: n_train must be in 1..{n - 1}, got {n_train}")
        ds = lambda a, b: ArrayDataset(np.ascontiguousarray(self.x_test[a:b]), self.y_test[a:b].copy())  # noqa: E731
        return Splits(train=ds(0, n_train), val=ds(0, n), test=ds(n_train, n), class_names=list(self.class_names),
                      mean=self.mean, name=f"{self.data_name} (shipped test subset)", hflip=False,
                      info={"pretrained": self.name})


def load(name: str = "fashion", folder=None) -> Pretrained:
    """Load a shipped network by name: ``"fashion"`` (default) or ``"photos"`` (:data:`ALIASES`, :data:`NAMES`).
    Reads three small files; no training, no download.
    folder: where the files are (default: this package folder; ``export_run(..., dest=folder)`` writes them)."""
    from ..train import load_checkpoint
    name = canonical_name(name)
    folder = os.fspath(folder or HERE)
    weights, test, evolution = (os.path.join(folder, f) for f in NAMES[name])
    if not os.path.exists(weights):
        raise FileNotFoundError(f"load_pretrained: {weights} is missing from this installation; rebuild it with "
                                f"python -m minicnn.pretrained.build --network {name.split('-')[0]}")
    ckpt = load_checkpoint(weights)
    net = ckpt.build_net()
    meta = ckpt.meta
    with np.load(test, allow_pickle=False) as z:
        raw, y, index = z["x"], z["y"].astype(np.int64), z["index"].astype(np.int64)
    return Pretrained(net=net, mean=np.asarray(ckpt.mean, dtype=np.float32), class_names=list(meta["class_names"]),
                      raw_test=raw, y_test=y, index=index, meta=meta,
                      evolution=evolution if os.path.exists(evolution) else None, name=name)


def export_run(run_dir, dest=None, *, n_test: int = 1000, recipe=None, name: str = "fashion",
               command: str = "python -m minicnn.pretrained.build") -> str:
    """Write the shipped files of network ``name`` from a finished run of ``python -m minicnn.pretrained.build``.

    Takes ``run_dir/best.npz`` (weights of the best validation epoch), measures its top-1 on the run's whole test
    split and on the ``n_test`` shipped images (a class-balanced subset of it), and writes the three files of
    :data:`NAMES` (weights, test images, evolution) and the readable :data:`RESULTS` file into ``dest`` (default:
    this package folder). Fashion-MNIST test images ship as published (uint8 28x28); the photos network's as the
    uint8 crops of its test split. Returns the weights' path.
    """
    from ..data.load import stratified_subset
    from ..train import atomic_write_bytes, evaluate, load_run, save_checkpoint
    key = canonical_name(name, "export_run")
    dest = os.fspath(dest or HERE)
    os.makedirs(dest, exist_ok=True)
    run = load_run(run_dir, which="best")
    splits = run.splits
    mean = np.asarray(splits.mean, np.float32)
    full = evaluate(run.net, splits.test)
    if key == "fashion-zf":
        from ..data.loaders import read_mnist
        root = (run.meta.get("data") or {}).get("root")
        if root is None:
            from ..data.loaders import default_fashion_mnist_root
            root = default_fashion_mnist_root("export_run")
        _, _, x_raw, y_raw = read_mnist(root, "fashion-mnist")
        tolerance = 1e-6
    else:   # generated crops: the run's own test split, back in [0, 1] and quantised to uint8 (1/510 at most)
        x_raw = np.round(np.clip(splits.test.x + mean[None], 0.0, 1.0) * 255.0).astype(np.uint8)
        y_raw = np.asarray(splits.test.y)
        tolerance = 0.5 / 255 + 1e-6
    index = stratified_subset(np.asarray(y_raw).astype(np.int64), n_test, seed=0)
    x_sub = x_raw[index]
    y_sub = np.asarray(y_raw)[index].astype(np.int64)

    def write_test(f):
        np.savez_compressed(f, x=x_sub, y=y_sub.astype(np.uint8), index=index.astype(np.int32))

    names = NAMES[key]
    atomic_write_bytes(os.path.join(dest, names[1]), write_test)
    shipped = Pretrained(net=run.net, mean=mean, class_names=list(splits.class_names), raw_test=x_sub, y_test=y_sub,
                         index=index)
    prepared = shipped.prepare(x_sub)
    if len(splits.test.y) == len(y_raw):        # a full run: load()'s preprocessing must be the run's own
        if not np.allclose(prepared, splits.test.x[index], atol=tolerance):
            raise ValueError("export_run: Pretrained.prepare does not reproduce the run's preprocessing")
    sub = evaluate(run.net, _dataset(prepared, y_sub))
    options = dict(run.meta.get("data") or {})
    options.pop("root", None)
    meta = {"class_names": list(splits.class_names), "recipe": dict(recipe or {}),
            "command": command, "data": options, "trained_epochs": run.meta.get("epoch"),
            "history": run.history, "test_top1": full["top1"], "test_top5": full["top5"], "test_n": full["n"],
            "subset_top1": sub["top1"], "subset_n": sub["n"]}
    path = save_checkpoint(os.path.join(dest, names[0]), run.net, epoch=run.meta.get("epoch", 0), meta=meta,
                           mean=splits.mean)
    evo = os.path.join(os.fspath(run_dir), "evolution.npz")
    if os.path.exists(evo):     # compressed: the crops are mostly zeros outside the receptive fields
        with np.load(evo, allow_pickle=False) as z:   # crops for display only: float16 halves them
            arrays = {k: z[k].astype(np.float16) if k.endswith("/crops") else z[k] for k in z.files}
        atomic_write_bytes(os.path.join(dest, names[2]), lambda f: np.savez_compressed(f, **arrays))
    with open(os.path.join(dest, RESULTS[key]), "w") as f:
        json.dump({k: meta[k] for k in ("command", "recipe", "trained_epochs", "test_top1", "test_top5", "test_n",
                                        "subset_top1", "subset_n")}, f, indent=1)
    return path


def _dataset(x, y):
    from ..data.splits import ArrayDataset
    return ArrayDataset(np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64))
