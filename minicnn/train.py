"""Training: the epoch loop, metrics, progress bar, checkpoints, history, callbacks, resume and evaluation.

A run directory (``out_dir``) holds

    checkpoint.npz   the state after the last finished epoch (weights, momentum, RNG states, architecture, ...)
    best.npz         the same, for the epoch with the best validation top-1 accuracy so far
    history.json     one dict per finished epoch: epoch, lr, train/val loss, top-1, top-5, seconds
    history.csv      the same table as CSV
    run.json         how the run was started (model, data options, optimiser, schedule, batch size, seed)
    curves.png       learning curves (written when ``fit`` ends)

Checkpoints are written atomically: to a temporary file in the same directory, flushed to disk, then renamed
over the old one with ``os.replace``, so a run killed at any moment leaves either the old or the new checkpoint,
never half of one. They are written after every epoch, and resuming restores the weights, the momentum buffers,
the schedule and every random generator (batch order, augmentation, dropout masks), so a killed run loses at
most the epoch in progress and then continues exactly as if it had never stopped.

Checkpoint layout (``np.savez``, no pickles): ``param/<layer>.<key>`` arrays, ``velocity/<layer>.<key>``
momentum buffers, ``data/mean`` (C, H, W) and ``meta.json`` (a 0-d string array holding JSON: format, epoch,
architecture = ``net.config()``, dataset name and options, optimiser and schedule state, RNG states, history).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import backend
from .layers import Conv2D, Dropout
from .net import Sequential
from .ops.loss import softmax_cross_entropy
from .ops.activation import log_softmax
from .schedule import ReduceOnPlateau

__all__ = ["Trainer", "Callback", "evaluate", "predict_logits", "topk_correct", "save_checkpoint", "load_checkpoint",
           "Checkpoint", "CheckpointError", "load_run", "RunInfo", "atomic_write_bytes", "RunDirectoryError",
           "RUN_FILES", "check_run_dir"]

FORMAT = "minicnn-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.npz"
BEST = "best.npz"


# Every file a run writes into its directory; a directory holding any of them holds a run.
# (evolution.npz: the demo's feature-evolution snapshots, which must not outlive the run they were taken from.)
RUN_FILES = (CHECKPOINT, BEST, "run.json", "history.json", "history.csv", "curves.png", "results.json", "summary.txt",
             "evolution.npz")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or that does not fit the network it is loaded into."""


class RunDirectoryError(ValueError):
    """A run directory that names a file, or that already holds a run nobody asked to continue or replace."""


def check_run_dir(out_dir, *, resume=False, overwrite=False, hint="resume it (Trainer.resume) or pass overwrite=True"):
    """Refuse to train into ``out_dir`` when that would silently replace a run: it is a file, or it holds run
    files (``RUN_FILES``) and neither ``resume`` nor ``overwrite`` was asked for. Returns the run files found."""
    out_dir = os.fspath(out_dir)
    if not out_dir:
        raise RunDirectoryError("the run directory must be a path, got an empty string")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunDirectoryError(f"the run directory {out_dir!r} is an existing file, not a directory")
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue a run, or replace it")
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]
    if found and not resume and not overwrite:
        raise RunDirectoryError(f"{out_dir} already holds a run ({', '.join(found)}); {hint}")
    return found


class Callback:
    """Hooks into ``Trainer.fit``. Subclass and override what you need; every hook gets the trainer.

    on_train_begin(trainer)                  before the first epoch (also when resuming)
    on_epoch_end(trainer, epoch, logs)       after epoch ``epoch`` (1-based), once its checkpoint is written;
                                             ``logs`` is that epoch's history row
    on_train_end(trainer)                    after the last epoch
    """

    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_train_end(self, trainer):
        pass


class ScaleFirstFilters(Callback):
    """Multiply the first Conv2D's weights by ``scale`` before the first epoch of a fresh run (not on resuming).

    Started at a tenth of He's scale, as ZF's std 1e-2 filters were small, conv1 shows what the gradients put there
    after a short run instead of He's random noise: colour blobs and edges (the demo, the shipped photos network).
    """

    def __init__(self, scale):
        self.scale = float(scale)

    def on_train_begin(self, trainer):
        if trainer.epoch == 0:
            conv = next(l for l in trainer.net.layers if isinstance(l, Conv2D))
            conv.params["W"] *= self.scale


# --- metrics -------------------------------------------------------------------------------------------------

def topk_correct(logits, labels, k):
    """Number of rows whose label is among the k largest logits. logits (N, K), labels (N,) -> int.

    With fewer than k classes every row counts as correct (top-5 of a 2-class problem is 100%).
    """
    logits = backend.to_numpy(logits)
    labels = backend.to_numpy(labels)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"topk_correct: k must be an integer >= 1, got {k!r}")
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"topk_correct: expected logits (N, K) and labels (N,), got {logits.shape} and {labels.shape}")
    K = logits.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"topk_correct: labels must lie in [0, {K}), got range [{labels.min()}, {labels.max()}]")
    if k >= K:
        return int(labels.shape[0])
    # A label is in the top k when fewer than k logits are strictly larger than its own.
    own = logits[np.arange(labels.shape[0]), labels][:, None]
    return int(((logits > own).sum(axis=1) < k).sum())


def _net_device(net):
    for layer in net.layers:
        for value in layer.params.values():
            return "gpu" if backend.is_gpu_array(value) else "cpu"
    return "cpu"


def predict_logits(net, x, batch_size=256):
    """Forward ``x`` (N, C, H, W) in inference mode, in batches. Returns NumPy float32 logits (N, classes)."""
    device = _net_device(net)
    out = []
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"predict_logits: batch_size must be an integer >= 1, got {batch_size!r}")
    if x.shape[0] == 0:                 # an empty batch still has a number of classes: forward it
        return backend.to_numpy(net.forward(backend.to_device(np.ascontiguousarray(x), device))).astype(np.float32)
    for i in range(0, x.shape[0], batch_size):
        xb = backend.to_device(np.ascontiguousarray(x[i:i + batch_size]), device)
        out.append(backend.to_numpy(net.forward(xb, train=False)).astype(np.float32, copy=False))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out, axis=0)


def _crop_views(x, pad, hflip):
    """The views averaged by test-time ten-crop: x (N, C, H, W) padded by ``pad`` (with zeros, i.e. the mean
    image once the mean is subtracted), then the four corner and the centre H x W crops, and their mirror
    images when ``hflip``. Returns a list of (N, C, H, W) float32 arrays (10, or 5 without flips)."""
    from .data import ten_crop
    N, C, H, W = x.shape
    if H != W:
        raise ValueError(f"evaluate(ten_crop=True): needs square images, got {H}x{W}")
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.float32, copy=False)
    crops = ten_crop(xp, H)                       # (10, N, C, H, H): 5 crops, then the same 5 mirrored
    if crops.shape[0] != 10 or tuple(crops.shape[1:]) != (N, C, H, W):
        raise ValueError(f"ten_crop returned shape {tuple(crops.shape)}, expected (10, {N}, {C}, {H}, {W})")
    # ten_crop's order: the four corners and the centre, then the same five mirrored; digits must not be flipped.
    return [np.ascontiguousarray(c, dtype=np.float32) for c in (crops if hflip else crops[:5])]


def evaluate(net, dataset, *, batch_size=256, ten_crop=False, crop_pad=None, hflip=True):
    """Loss and accuracy of ``net`` on ``dataset`` (anything with ``.x`` (N, C, H, W) float32 and ``.y`` (N,) int64).

    ten_crop: average the softmax over ZF's ten views (corners and centre, and their mirror images) of each
    image padded by ``crop_pad`` pixels (default max(1, H // 8)); ``hflip=False`` drops the mirrored five.
    Returns {"loss", "top1", "top5", "n"} (accuracies are fractions in [0, 1]).
    """
    x, y = dataset.x, np.asarray(dataset.y)
    if x.ndim != 4:
        raise ValueError(f"evaluate: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"evaluate: expected {x.shape[0]} labels, got shape {tuple(y.shape)}")
    N = x.shape[0]
    if N == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "n": 0}
    if ten_crop:
        if crop_pad is not None and (isinstance(crop_pad, bool) or not isinstance(crop_pad, (int, np.integer))
                                     or crop_pad < 0):
            raise ValueError(f"evaluate: crop_pad must be an integer >= 0, got {crop_pad!r}")
        pad = max(1, x.shape[2] // 8) if crop_pad is None else int(crop_pad)
        probs = None
        views = _crop_views(x, pad, hflip)
        for view in views:
            logits = predict_logits(net, view, batch_size)
            p = np.exp(log_softmax(logits.astype(np.float64), axis=1))
            probs = p if probs is None else probs + p
        probs /= len(views)
        loss = float(-np.log(np.maximum(probs[np.arange(N), y], 1e-300)).mean())
        scores = probs
    else:
        logits = predict_logits(net, x, batch_size)
        loss, _ = softmax_cross_entropy(logits.astype(np.float64), y)
        loss = float(loss)
        scores = logits
    return {"loss": loss, "top1": topk_correct(scores, y, 1) / N, "top5": topk_correct(scores, y, 5) / N, "n": int(N)}


# --- checkpoints ---------------------------------------------------------------------------------------------

def atomic_write_bytes(path, write):
    """Create ``path`` atomically: ``write(fileobj)`` fills a temporary file in the same directory, which is
    flushed, fsync'ed and then renamed over ``path``. If anything fails, the old ``path`` is untouched and the
    temporary file is removed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                      # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _atomic_write_text(path, text):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def _rng_state(gen):
    return gen.bit_generator.state


def _set_rng_state(gen, state):
    gen.bit_generator.state = state


def save_checkpoint(path, net, *, optimizer=None, schedule=None, epoch=0, meta=None, mean=None, rng=None):
    """Write a checkpoint atomically (see the module docstring for the layout).

    net: Sequential. optimizer: SGD (momentum buffers and hyperparameters). schedule: a schedule object.
    rng: the trainer's np.random.Generator. meta: extra JSON-able dict (data options, history, ...).
    mean: (C, H, W) per-pixel training mean, or None.
    """
    arrays = {f"param/{k}": v for k, v in net.state_dict().items()}
    info = dict(meta or {})
    info.update({
        "format": FORMAT, "version": FORMAT_VERSION, "epoch": int(epoch), "net_name": net.name,
        "architecture": net.config(),
        "rng": {"trainer": None if rng is None else _rng_state(rng),
                "dropout": {layer.name: _rng_state(layer.rng) for layer in net.layers if isinstance(layer, Dropout)}},
    })
    if optimizer is not None:
        state = optimizer.state_dict()
        info["optimizer"] = {"type": type(optimizer).__name__, **state["hyperparams"]}
        arrays.update({f"velocity/{k}": v for k, v in state["velocity"].items()})
    if schedule is not None:
        info["schedule"] = {"type": type(schedule).__name__, "config": schedule.config(), "state": schedule.state_dict()}
    if mean is not None:
        arrays["data/mean"] = np.asarray(backend.to_numpy(mean), dtype=np.float32)
    arrays["meta.json"] = np.array(json.dumps(info))

    def write(f):
        np.savez(f, **arrays)

    atomic_write_bytes(path, write)
    return path


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` read: ``params`` / ``velocity`` ({"layer.key": array}), ``mean`` or None, ``meta``."""
    path: str
    params: dict
    velocity: dict
    mean: object
    meta: dict

    @property
    def epoch(self):
        return int(self.meta.get("epoch", 0))

    def build_net(self):
        """A new Sequential with the saved architecture and weights."""
        try:
            net = Sequential.from_config(self.meta["architecture"], name=self.meta.get("net_name", "net"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {self.path}: cannot rebuild the saved architecture: {exc}") from exc
        self.load_into(net)
        return net

    def load_into(self, net):
        """Copy the weights into ``net``; a clear CheckpointError when they do not fit its architecture."""
        try:
            net.load_state_dict(self.params)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {self.path} does not fit the architecture of {net.name!r}: {exc}") from exc
        return net


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``. Raises FileNotFoundError when it is missing and
    CheckpointError when it is corrupt, truncated, or not a minicnn checkpoint."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                              f"{type(exc).__name__}: {exc}") from exc
    if "meta.json" not in files:
        raise CheckpointError(f"{path} is not a minicnn checkpoint: it has no meta.json entry "
                              f"(entries: {', '.join(sorted(files)) or 'none'})")
    try:
        meta = json.loads(str(files.pop("meta.json")))
    except ValueError as exc:
        raise CheckpointError(f"{path}: meta.json is not valid JSON (corrupt?): {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta.json must hold a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    epoch, version = meta.get("epoch", 0), meta.get("version", 0)
    for key, value in (("epoch", epoch), ("version", version)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{path}: meta.json's {key} must be an integer >= 0, got {value!r}")
    architecture = meta.get("architecture", [])
    if not isinstance(architecture, list) or not all(isinstance(e, dict) for e in architecture):
        raise CheckpointError(f"{path}: meta.json's architecture must be a list of layer objects, got "
                              f"{json.dumps(architecture)[:80]}")
    for key in ("optimizer", "schedule", "rng", "data"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise CheckpointError(f"{path}: meta.json's {key} must be an object, got {type(meta[key]).__name__}")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta['version']} is newer than this minicnn "
                              f"({FORMAT_VERSION}); upgrade minicnn")
    params = {k[len("param/"):]: v for k, v in files.items() if k.startswith("param/")}
    velocity = {k[len("velocity/"):]: v for k, v in files.items() if k.startswith("velocity/")}
    return Checkpoint(path, params, velocity, files.get("data/mean"), meta)


# --- history -------------------------------------------------------------------------------------------------

HISTORY_KEYS = ["epoch", "lr", "train_loss", "train_top1", "train_top5", "val_loss", "val_top1", "val_top5", "seconds"]


def _write_history(out_dir, history):
    _atomic_write_text(os.path.join(out_dir, "history.json"), json.dumps(history, indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_KEYS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    _atomic_write_text(os.path.join(out_dir, "history.csv"), buf.getvalue())


# --- the trainer ---------------------------------------------------------------------------------------------

class Trainer:
    """Train ``net`` on ``splits.train``, validate on ``splits.val`` after every epoch.

    net: Sequential. splits: a ``minicnn.data.Splits`` (``.train``, ``.val``, ``.mean``, ``.name``).
    optimizer: ``minicnn.optim.SGD``. schedule: a ``minicnn.schedule`` object or None (constant rate).
    batch_size, epochs: as usual (``epochs`` is the total, also when resuming).
    augment: None or a callable ``augment(xb, rng) -> xb`` (``minicnn.data.Augment``).
    seed: seeds the generator that orders batches and draws augmentations (dropout masks come from the model's seed).
    out_dir: run directory (None: keep nothing on disk). callbacks: ``Callback`` instances.
    device: "cpu" or "gpu". progress: show a tqdm bar (default: when stderr is a terminal).
    overwrite: replace a run already in ``out_dir`` (its run files are deleted when ``fit`` starts); without it,
    ``fit`` refuses such a directory unless ``resume`` loaded it. verbose: print one line per epoch.
    data_options: how the data was loaded (name and keyword arguments of ``load_dataset``), saved so ``load_run``
    can rebuild the same split. run_config: extra JSON saved in run.json.
    """

    def __init__(self, net, splits, optimizer, *, schedule=None, batch_size=128, epochs=10, augment=None, seed=0,
                 out_dir=None, callbacks=(), device="cpu", progress=None, verbose=True, data_options=None,
                 run_config=None, drop_last=False, overwrite=False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Trainer: batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Trainer: epochs must be an integer >= 0, got {epochs!r}")
        batch_size, epochs = int(batch_size), int(epochs)
        for part in ("train", "val"):
            if not hasattr(splits, part):
                raise TypeError(f"Trainer: splits must have .train and .val datasets, got {type(splits).__name__}")
        if not (hasattr(optimizer, "step") and hasattr(optimizer, "lr")):
            raise TypeError(f"Trainer: optimizer must be an optimiser such as minicnn.optim.SGD, "
                            f"got {type(optimizer).__name__}")
        if getattr(optimizer, "net", net) is not net:
            # It would update another network's weights while this one never changed: silently no training.
            raise ValueError(f"Trainer: the optimizer updates the network {getattr(optimizer.net, 'name', '?')!r} "
                             f"(another object), not the one given to the Trainer ({getattr(net, 'name', '?')!r})")
        if schedule is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
            raise ValueError("Trainer: the schedule drives the learning rate of another optimizer than the Trainer's")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback instances, got {type(cb).__name__}")
        self.net, self.splits, self.optimizer, self.schedule = net, splits, optimizer, schedule
        self.batch_size, self.epochs, self.augment, self.seed = batch_size, epochs, augment, seed
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        if self.out_dir is not None:
            check_run_dir(self.out_dir, overwrite=True)        # a file there: fail now, not after an epoch
        self.overwrite = bool(overwrite)
        self._owns_out_dir = None           # the out_dir this trainer resumed from or started writing (abspath)
        self.callbacks = list(callbacks)
        self.device = device
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.verbose = verbose
        self.drop_last = drop_last
        self.data_options = dict(data_options) if data_options else {"name": getattr(splits, "name", None)}
        self.run_config = dict(run_config or {})
        self.rng = np.random.default_rng(seed)
        self.epoch = 0                       # epochs finished
        self.history = []
        self.best_val = -math.inf
        self.best_epoch = 0
        self.stop_training = False           # a callback may set this to end fit() after the current epoch
        if device != "cpu":
            self.net.to(device)

    # --- state --------------------------------------------------------------------------------------------
    def _meta(self):
        return {"data": self.data_options, "history": self.history, "best_val_top1": self.best_val,
                "best_epoch": self.best_epoch, "batch_size": self.batch_size, "seed": self.seed,
                "input_shape": list(self.splits.train.x.shape[1:]),
                "class_names": [str(c) for c in getattr(self.splits, "class_names", []) or []],
                "hflip": bool(getattr(self.splits, "hflip", False)), "run": self.run_config}

    def save(self, path):
        """Write the full training state to ``path`` (atomically)."""
        return save_checkpoint(path, self.net, optimizer=self.optimizer, schedule=self.schedule, epoch=self.epoch,
                               meta=self._meta(), mean=getattr(self.splits, "mean", None), rng=self.rng)

    def resume(self, path=None):
        """Restore everything ``save`` wrote (default ``out_dir/checkpoint.npz``); ``fit`` then goes on from the
        next epoch, exactly as the uninterrupted run would have."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("Trainer.resume: give a checkpoint path (this trainer has no out_dir)")
            path = os.path.join(self.out_dir, CHECKPOINT)
        ckpt = load_checkpoint(path)
        self._remove_stale_temp_files()
        if ckpt.meta.get("architecture") != self.net.config():
            raise CheckpointError(f"checkpoint {path} was saved from a different architecture than {self.net.name!r} "
                                  f"(layers {[e.get('name') for e in ckpt.meta.get('architecture', [])]} vs "
                                  f"{self.net.names}, or different sizes)")
        saved_schedule = ckpt.meta.get("schedule")
        if self.schedule is not None and saved_schedule is not None and \
                saved_schedule.get("type") != type(self.schedule).__name__:
            raise CheckpointError(f"checkpoint {path} was trained with the schedule {saved_schedule.get('type')}, "
                                  f"this trainer has {type(self.schedule).__name__}")
        # All or nothing: a checkpoint that fails half-way (a momentum buffer of the wrong shape, a bad schedule
        # state) must not leave the network loaded and the rest not; roll back to the state before.
        before = self._state_snapshot()
        try:
            self._restore(ckpt)
        except (ValueError, TypeError, KeyError) as exc:
            self._restore_snapshot(before)
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"checkpoint {path} cannot be resumed (nothing was changed): "
                                  f"{type(exc).__name__}: {exc}") from exc
        own_checkpoint = self.out_dir is not None and \
            os.path.abspath(path) == os.path.abspath(os.path.join(self.out_dir, CHECKPOINT))
        if own_checkpoint:
            self._owns_out_dir = os.path.abspath(self.out_dir)        # continuing this directory's own run
        return self

    def _restore(self, ckpt):
        ckpt.load_into(self.net)
        if self.device != "cpu":
            self.net.to(self.device)
        if ckpt.velocity or "optimizer" in ckpt.meta:
            hp = {k: v for k, v in ckpt.meta.get("optimizer", {}).items() if k != "type"}
            self.optimizer.load_state_dict({"hyperparams": hp, "velocity": ckpt.velocity})
        if self.schedule is not None and "schedule" in ckpt.meta:
            self.schedule.load_state_dict(ckpt.meta["schedule"]["state"])
        rng = ckpt.meta.get("rng", {})
        if rng.get("trainer") is not None:
            _set_rng_state(self.rng, rng["trainer"])
        for layer in self.net.layers:
            if isinstance(layer, Dropout) and layer.name in rng.get("dropout", {}):
                _set_rng_state(layer.rng, rng["dropout"][layer.name])
        history = ckpt.meta.get("history", [])
        if not isinstance(history, list):
            raise ValueError(f"meta.json: history must be a list, got {type(history).__name__}")
        self.epoch = ckpt.epoch
        self.history = list(history)
        self.best_val = float(ckpt.meta.get("best_val_top1", -math.inf))
        self.best_epoch = int(ckpt.meta.get("best_epoch", 0))

    def _state_snapshot(self):
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": None if self.schedule is None else self.schedule.state_dict(),
                "rng": _rng_state(self.rng),
                "dropout": {layer.name: _rng_state(layer.rng) for layer in self.net.layers
                            if isinstance(layer, Dropout)},
                "trainer": (self.epoch, list(self.history), self.best_val, self.best_epoch)}

    def _restore_snapshot(self, snap):
        self.net.load_state_dict(snap["net"])
        if self.device != "cpu":
            self.net.to(self.device)
        self.optimizer.load_state_dict(snap["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(snap["schedule"])
        _set_rng_state(self.rng, snap["rng"])
        for layer in self.net.layers:
            if isinstance(layer, Dropout):
                _set_rng_state(layer.rng, snap["dropout"][layer.name])
        self.epoch, self.history, self.best_val, self.best_epoch = snap["trainer"]

    def _claim_out_dir(self):
        """Before the first write: refuse a directory that holds another run, or clear it when overwriting."""
        if self.out_dir is None or self._owns_out_dir == os.path.abspath(self.out_dir):
            return
        found = check_run_dir(self.out_dir, overwrite=self.overwrite)
        for name in found:
            os.unlink(os.path.join(self.out_dir, name))
        gallery = os.path.join(self.out_dir, "gallery")
        if found and os.path.isfile(os.path.join(gallery, "index.html")):
            shutil.rmtree(gallery)          # the replaced run's figures: they would pass for the new run's
        self._owns_out_dir = os.path.abspath(self.out_dir)

    def _remove_stale_temp_files(self):
        """A run killed while writing leaves its temporary file (never a broken checkpoint): tidy it away."""
        if self.out_dir is None or not os.path.isdir(self.out_dir):
            return
        ours = (CHECKPOINT, BEST, "history.json", "history.csv", "run.json")
        for name in os.listdir(self.out_dir):
            if name.endswith(".tmp") and any(name.startswith(f".{own}.") for own in ours):
                try:
                    os.unlink(os.path.join(self.out_dir, name))
                except FileNotFoundError:
                    pass

    # --- the loop -----------------------------------------------------------------------------------------
    def train_epoch(self, epoch):
        """One pass over the training set. Returns {"train_loss", "train_top1", "train_top5"} (running averages
        over the epoch's batches, with dropout and augmentation on)."""
        from .data import iterate_batches
        train = self.splits.train
        N = train.x.shape[0]
        n_batches = N // self.batch_size if self.drop_last else math.ceil(N / self.batch_size)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{self.epochs}", leave=False, unit="batch",
                       dynamic_ncols=True)
        total_loss, top1, top5, seen = 0.0, 0, 0, 0
        try:
            for xb, yb in iterate_batches(train.x, train.y, self.batch_size, shuffle=True, rng=self.rng,
                                          augment=self.augment, drop_last=self.drop_last):
                xb = backend.to_device(np.ascontiguousarray(xb, dtype=np.float32), self.device)
                yb_dev = backend.to_device(np.asarray(yb, dtype=np.int64), self.device)
                logits = self.net.forward(xb, train=True)
                loss, dlogits = softmax_cross_entropy(logits, yb_dev)
                self.net.backward(dlogits, input_grad=False)
                self.optimizer.step()
                n = int(yb.shape[0])
                loss = float(loss)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"epoch {epoch}: the training loss became {loss}; lower the learning "
                                             f"rate (now {self.optimizer.lr:g})")
                total_loss += loss * n
                top1 += topk_correct(logits, yb, 1)
                top5 += topk_correct(logits, yb, 5)
                seen += n
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{100 * top1 / seen:.1f}%")
        finally:
            if bar is not None:
                bar.close()
        if seen == 0:
            raise ValueError(f"Trainer: no training batch (N={N}, batch_size={self.batch_size}, "
                             f"drop_last={self.drop_last})")
        return {"train_loss": total_loss / seen, "train_top1": top1 / seen, "train_top5": top5 / seen}

    def _check_data(self):
        """Before any epoch: images that would turn every weight into NaN, and a plateau schedule with nothing
        to watch, are refused with what is wrong and where (not discovered as a diverged loss epochs later)."""
        for part in ("train", "val"):
            y = np.asarray(getattr(self.splits, part).y)
            if y.dtype.kind not in "iu":
                raise TypeError(f"Trainer: {part} labels must be integers, got dtype {y.dtype}")
            x = np.asarray(getattr(self.splits, part).x)
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                bad = np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1))
                raise ValueError(f"Trainer: {len(bad)} {part} image(s) contain NaN or inf (the first is image "
                                 f"{int(bad[0])}); clean the data before training")
        n_train = len(self.splits.train.y)
        if n_train == 0 or (self.drop_last and n_train < self.batch_size):
            raise ValueError(f"Trainer: no training batch (train images: {n_train}, batch_size {self.batch_size}, "
                             f"drop_last={self.drop_last})")
        if len(self.splits.val.y) == 0 and isinstance(self.schedule, ReduceOnPlateau):
            raise ValueError("Trainer: ReduceOnPlateau watches the validation accuracy, but the validation set is "
                             "empty; use a step or constant schedule, or hold out validation images")

    def fit(self):
        """Train from epoch ``self.epoch + 1`` to ``self.epochs``. Returns the history (list of dicts)."""
        if self.out_dir is not None:
            self._claim_out_dir()
            os.makedirs(self.out_dir, exist_ok=True)
            _atomic_write_text(os.path.join(self.out_dir, "run.json"), json.dumps(
                {**self.run_config, "data": self.data_options, "batch_size": self.batch_size, "epochs": self.epochs,
                 "seed": self.seed, "device": self.device, "optimizer": repr(self.optimizer),
                 "schedule": None if self.schedule is None else type(self.schedule).__name__,
                 "augment": None if self.augment is None else repr(self.augment)}, indent=1))
        self._check_data()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        self.stop_training = False
        while self.epoch < self.epochs and not self.stop_training:
            epoch = self.epoch + 1
            start = time.perf_counter()
            lr = self.optimizer.lr
            logs = {"epoch": epoch, "lr": lr, **self.train_epoch(epoch)}
            val = evaluate(self.net, self.splits.val, batch_size=max(self.batch_size, 256))
            logs.update({"val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"]})
            logs["seconds"] = time.perf_counter() - start
            if self.schedule is not None:
                self.schedule.step(epoch, val["top1"])
            self.epoch = epoch
            self.history.append(logs)
            improved = val["top1"] > self.best_val
            if improved:
                self.best_val, self.best_epoch = val["top1"], epoch
            if self.out_dir is not None:
                self.save(os.path.join(self.out_dir, CHECKPOINT))
                if improved:
                    self.save(os.path.join(self.out_dir, BEST))
                _write_history(self.out_dir, self.history)
            if self.verbose:
                print(f"epoch {epoch:>3}/{self.epochs}  lr {lr:.2g}  train loss {logs['train_loss']:.4f} "
                      f"top-1 {100 * logs['train_top1']:5.1f}%  |  val loss {val['loss']:.4f} "
                      f"top-1 {100 * val['top1']:5.1f}% top-5 {100 * val['top5']:5.1f}%  ({logs['seconds']:.1f} s)",
                      flush=True)
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
        if self.out_dir is not None and self.history:
            from .plots import plot_history
            plot_history(self.history, os.path.join(self.out_dir, "curves.png"),
                         title=f"{self.net.name} on {self.data_options.get('name')}")
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history


# --- reloading a run -----------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """A finished (or interrupted) run: the rebuilt network with its weights, the same data split, the history
    and the checkpoint's meta dict (``meta["data"]`` holds the dataset options, ``meta["epoch"]`` the epoch)."""
    net: Sequential
    splits: object
    history: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _find_checkpoint(run_dir, which):
    if os.path.isfile(run_dir):
        return run_dir
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"no run directory or checkpoint at {run_dir}")
    names = {"best": [BEST, CHECKPOINT], "last": [CHECKPOINT]}
    if which not in names:
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    for name in names[which]:
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{run_dir} holds no checkpoint ({' or '.join(names[which])}); was the run trained?")


def load_data_for(meta, root=None):
    """Reload the dataset split a checkpoint was trained on (same name, options and seed)."""
    from .data import load_dataset
    options = dict(meta.get("data") or {})
    name = options.pop("name", None)
    if name is None:
        raise CheckpointError("the checkpoint does not say which dataset it was trained on (meta['data']['name'])")
    if root is not None:
        options["root"] = root
    return load_dataset(name, **options)


def load_run(run_dir, which="best", load_data=True, root=None):
    """Rebuild a run: network (architecture and weights from ``best.npz``, or ``checkpoint.npz`` with
    ``which="last"``), the same data split (``load_data=False`` skips it: ``splits`` is None), the history.

    ``run_dir`` may also be a checkpoint file. Returns ``RunInfo(net, splits, history, meta)``.
    """
    path = _find_checkpoint(os.fspath(run_dir), which)
    ckpt = load_checkpoint(path)
    net = ckpt.build_net()
    splits = None
    if load_data:
        splits = load_data_for(ckpt.meta, root=root)
        if ckpt.mean is not None and getattr(splits, "mean", None) is not None:
            if tuple(np.shape(splits.mean)) != tuple(ckpt.mean.shape) or not np.allclose(splits.mean, ckpt.mean, atol=1e-5):
                raise CheckpointError(f"{path}: the reloaded dataset's training mean differs from the one saved with "
                                      f"the checkpoint; the data ({ckpt.meta.get('data')}) changed since training")
    history = list(ckpt.meta.get("history", []))
    hist_path = os.path.join(os.fspath(run_dir), "history.json")
    if os.path.isdir(os.fspath(run_dir)) and os.path.exists(hist_path):
        try:
            with open(hist_path) as f:
                history = json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            # The checkpoint holds the same history: a damaged copy beside it must not make the run unusable.
            import warnings
            warnings.warn(f"{hist_path} is not valid JSON ({exc}); using the history saved in {path}", stacklevel=2)
        if not isinstance(history, list):
            history = list(ckpt.meta.get("history", []))
    meta = dict(ckpt.meta, checkpoint=path)
    return RunInfo(net, splits, history, meta)
