"""One training run from plain options: data, model, optimiser, schedule, augmentation, Trainer, test figures.

``train_run(...)`` is what ``minicnn train`` and ``minicnn demo`` call; ``evaluate_run(run_dir)`` is
``minicnn evaluate``. Both write small text files beside the checkpoint: ``results.json`` (test figures) and
``summary.txt`` (what was trained, how well, how long, where the files are).
"""
from __future__ import annotations

import json
import os
import time

from .train import BEST, CHECKPOINT, Trainer, _atomic_write_text, check_run_dir, evaluate, load_run

__all__ = ["DEFAULTS", "train_run", "evaluate_run", "init_from"]

# Every option of a run, with its default. ZF's optimiser (momentum 0.9, weight decay, filter-RMS clipping at
# 0.1) with a recipe for a few thousand small images on a CPU: batch 32 at lr 0.02 (ZF: 128 at 0.01; smaller
# batches give more updates per epoch), random crops with 2 pixels of padding, and the rate divided by 10 for
# the last third of the epochs ("step"; "plateau" divides it when validation accuracy stalls for `patience`).
DEFAULTS = dict(model="zfnet_small", data="shapes", epochs=15, lr=2e-2, momentum=0.9, weight_decay=5e-4,
                batch_size=32, image_size=None, seed=0, clip_radius=0.1, schedule="step", patience=2,
                step_size=None, crop_pad=2, hflip=None, width=None, dropout=None, n_samples=None, root=None,
                val_fraction=0.15, test_fraction=0.15, colour_jitter=0.0, rotate=0.0, zoom=0.0, freeze=None,
                lr_mult=None, init_from=None)

_DATA_KEYS = ("image_size", "seed", "val_fraction", "test_fraction", "n_samples", "root")


def _options(out, resume, given):
    """Merge: defaults < options saved in out/run.json (when resuming) < options given explicitly (not None)."""
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"train_run: unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    options = dict(DEFAULTS)
    if resume:
        path = os.path.join(out, "run.json")
        if os.path.exists(path):
            try:
                with open(path) as f:
                    saved = json.load(f)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot resume: {path} is not valid JSON (corrupt or truncated?): {exc}") from None
        elif os.path.exists(os.path.join(out, CHECKPOINT)):
            # run.json lost: the checkpoint keeps the same options (meta["run"]), so the run is not lost with it.
            from .train import load_checkpoint
            path = os.path.join(out, CHECKPOINT)
            saved = load_checkpoint(path).meta.get("run")
        else:
            raise FileNotFoundError(f"cannot resume: {path} does not exist (train into {out} first)")
        saved = saved.get("options") if isinstance(saved, dict) else None
        if not isinstance(saved, dict):
            raise ValueError(f"cannot resume: {path} holds no 'options' object (not a minicnn run.json?)")
        options.update({k: v for k, v in saved.items() if k in DEFAULTS})
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def _check_options(o):
    """Every numeric option in range, before any data is loaded: a clear error naming the option and its value."""
    import math
    import numbers

    def integer(key, minimum, optional=False):
        v = o[key]
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
            raise ValueError(f"train_run: {key} must be an integer >= {minimum}, got {v!r}")
        o[key] = int(v)                     # NumPy integers too; run.json gets plain JSON numbers

    def number(key, low, high=math.inf, low_open=False, optional=False):
        v = o[key]
        if v is None and optional:
            return
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
        if ok:
            o[key] = float(v) if not isinstance(v, numbers.Integral) else v
        ok = ok and (v > low if low_open else v >= low) and v < high
        if not ok:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g})"
            raise ValueError(f"train_run: {key} must be a finite number in {interval}, got {v!r}")

    integer("epochs", 1)
    integer("batch_size", 1)
    integer("seed", 0)
    integer("patience", 0)
    integer("crop_pad", 0)
    integer("step_size", 1, optional=True)
    integer("image_size", 4, optional=True)
    integer("width", 1, optional=True)
    integer("n_samples", 1, optional=True)
    number("lr", 0, low_open=True)
    number("momentum", 0, 1)
    number("weight_decay", 0)
    number("clip_radius", 0, optional=True)
    number("dropout", 0, 1, optional=True)
    number("val_fraction", 0, 1)
    number("test_fraction", 0, 1)
    number("colour_jitter", 0, 1)
    number("zoom", 0, 1)                   # scales drawn in [1 - zoom, 1 + zoom]
    v = o["rotate"]                         # the largest angle in degrees; 180 included
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not 0 <= v <= 180:
        raise ValueError(f"train_run: rotate must be a finite number of degrees in [0, 180], got {v!r}")
    _check_fine_tuning(o)
    if o["schedule"] not in ("plateau", "step", "constant"):
        raise ValueError(f"train_run: schedule must be 'plateau', 'step' or 'constant', got {o['schedule']!r}")
    for key in ("model", "data"):
        if not isinstance(o[key], str):
            raise ValueError(f"train_run: {key} must be a name (str), got {o[key]!r}")
    from .models import MODELS
    if o["model"] not in MODELS:
        raise ValueError(f"train_run: unknown model {o['model']!r}; available: {', '.join(MODELS)}")


def _check_fine_tuning(o):
    """freeze: layer names (a list, or one comma-separated string); lr_mult: {layer name: factor > 0}; init_from: a
    path or a shipped network's name. Their layer names are checked against the network by ``SGD``."""
    import math
    import numbers
    freeze = o["freeze"]
    if isinstance(freeze, str):
        freeze = [name.strip() for name in freeze.split(",")]
    if freeze is not None:
        if not isinstance(freeze, (list, tuple)) or not all(isinstance(n, str) and n for n in freeze):
            raise ValueError(f"train_run: freeze must be a list of layer names (e.g. ['conv1', 'conv2']), got {freeze!r}")
        o["freeze"] = list(freeze) or None
    mults = o["lr_mult"]
    if mults is not None:
        if not isinstance(mults, dict):
            raise ValueError(f"train_run: lr_mult must be a dict {{layer name: factor}}, got {mults!r}")
        for name, value in mults.items():
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            if not isinstance(name, str) or not ok:
                raise ValueError(f"train_run: lr_mult for layer {name!r} must be a finite number > 0 (freeze a layer to "
                                 f"stop it learning), got {value!r}")
        o["lr_mult"] = {name: float(value) for name, value in mults.items()} or None
    if o["init_from"] is not None and not isinstance(o["init_from"], str):
        raise ValueError(f"train_run: init_from must be a run directory, a checkpoint file or a shipped network's "
                         f"name, got {o['init_from']!r}")


def init_from(net, source, verbose=True):
    """Copy into ``net`` every parameter and buffer of ``source`` that has the same name and shape (fine-tuning: the
    layers of a trained network that fit, e.g. conv1..fc7; the rest, e.g. an fc8 with another number of classes,
    keeps its fresh initialisation). source: a run directory, a checkpoint file, or a shipped network's name
    ("fashion", "photos"). Returns (copied keys, keys left fresh). Nothing that fits: a ValueError naming both."""
    from . import pretrained
    from .train import load_run
    path = source
    if not os.path.exists(source):
        if source in pretrained.ALIASES or source in pretrained.NAMES:
            path = pretrained.package_file(pretrained.NAMES[pretrained.canonical_name(source)][0])
        else:
            raise FileNotFoundError(f"init_from: {source!r} is neither a run directory, a checkpoint file nor a shipped "
                                    f"network ({', '.join(pretrained.ALIASES)})")
    theirs = load_run(path, which="best", load_data=False).net.state_dict()
    ours = net.state_dict()
    fits = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    fresh = sorted(set(ours) - set(fits))
    if not any(not k.endswith(("running_mean", "running_var")) for k in fits):
        raise ValueError(f"init_from: no parameter of {source} fits this network (same layer name and shape); its "
                         f"parameters: {', '.join(f'{k} {tuple(v.shape)}' for k, v in list(theirs.items())[:4])}...; "
                         f"this network's: {', '.join(f'{k} {tuple(v.shape)}' for k, v in list(ours.items())[:4])}...")
    ours.update(fits)
    net.load_state_dict(ours)
    if verbose:
        layers = sorted({k.rsplit(".", 1)[0] for k in fits}, key=net.names.index)
        kept = sorted({k.rsplit(".", 1)[0] for k in fresh}, key=net.names.index)
        print(f"initialised {', '.join(layers)} from {source}" + (f"; {', '.join(kept)} start fresh (not in it, or "
              f"another shape)" if kept else ""), flush=True)
    return sorted(fits), fresh


def train_run(out="runs/run", *, resume=False, overwrite=False, device="cpu", progress=None, verbose=True,
              callbacks=(), ten_crop=False, **given):
    """Train a zoo model on a dataset into the run directory ``out``; return the results dict.

    Options (see ``DEFAULTS``): model, data, epochs, lr, momentum, weight_decay, batch_size, image_size, seed,
    clip_radius (0 or None: no clipping), schedule ("plateau" | "step" | "constant"), patience, step_size
                val_fraction=0.15, test_fraction=0.15, colour_jitter=0.0, rotate=0.0, zoom=0.0, freeze=None,
                lr_mult=None, init_from=None)
    resume: continue from ``out/checkpoint.npz`` with the options saved in ``out/run.json`` (explicit options win);
    a run stopped before its first epoch finished (run.json, no checkpoint) starts again from epoch 1.
    overwrite: replace the run already in ``out``. Without ``resume`` or ``overwrite``, a directory that already
    holds a run is refused (RunDirectoryError), as is an ``out`` that is a file.
    After training, the best-validation weights are evaluated on the test split (and with ten crops if asked).
    """
    from .data import Augment, load_dataset
    from .models import build
    from .optim import SGD
    from .schedule import make_schedule

    out = os.fspath(out)
    check_run_dir(out, resume=resume, overwrite=overwrite, hint="pass --resume to continue it or --overwrite to "
                  "replace it (Python: resume=True / overwrite=True)")
    o = _options(out, resume, given)
    _check_options(o)
    # A run interrupted before its first checkpoint has nothing to continue: start it again, same options.
    restart = resume and not os.path.exists(os.path.join(out, CHECKPOINT))
    data_options = {"name": o["data"], "subtract_mean": True, **{k: o[k] for k in _DATA_KEYS if o[k] is not None}}
    data_kwargs = {k: v for k, v in data_options.items() if k != "name"}
    t0 = time.perf_counter()
    splits = load_dataset(o["data"], **data_kwargs)
    model_kwargs = {k: o[k] for k in ("width", "dropout") if o[k] is not None}
    net = build(o["model"], num_classes=splits.num_classes, input_shape=tuple(splits.input_shape), seed=o["seed"],
                **model_kwargs)
    optimizer = SGD(net, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"],
                    clip_radius=o["clip_radius"] or None, freeze=o["freeze"] or (), lr_mult=o["lr_mult"])
    if o["init_from"] is not None and (restart or not resume):     # resuming loads the run's own weights
        init_from(net, o["init_from"], verbose=verbose)
    if o["schedule"] == "step":
        schedule = make_schedule("step", optimizer, step_size=o["step_size"] or max(1, round(2 * o["epochs"] / 3)))
    elif o["schedule"] == "plateau":
        schedule = make_schedule("plateau", optimizer, patience=o["patience"])
    else:
        schedule = make_schedule(o["schedule"], optimizer)
    hflip = splits.hflip if o["hflip"] is None else bool(o["hflip"])
    colour, rotate, zoom = (o.get(key) or 0.0 for key in ("colour_jitter", "rotate", "zoom"))
    augment = (Augment(crop_pad=o["crop_pad"], hflip=hflip, colour=colour, rotate=rotate, zoom=zoom)
               if (o["crop_pad"] or hflip or colour or rotate or zoom) else None)
    trainer = Trainer(net, splits, optimizer, schedule=schedule, batch_size=o["batch_size"], epochs=o["epochs"],
                      augment=augment, seed=o["seed"], out_dir=out, callbacks=callbacks, device=device,
                      progress=progress, verbose=verbose, data_options=data_options,
                      run_config={"options": o, "model_kwargs": model_kwargs}, overwrite=overwrite or restart)
    if restart:
        if verbose:
            print(f"{out} has no checkpoint yet (stopped before epoch 1 finished): starting it again from epoch 1 "
                  f"with the options in {os.path.join(out, 'run.json')}", flush=True)
    elif resume:
        trainer.resume()
        # The checkpoint restores the optimiser's frozen layers and multipliers; ones given now win (a second stage
        # of fine-tuning: resume with fewer layers frozen).
        if given.get("freeze") is not None:
            optimizer.unfreeze()
            optimizer.freeze(*o["freeze"])
        if given.get("lr_mult") is not None:
            optimizer.lr_mult = dict(o["lr_mult"])
        if o["schedule"] == "step" and trainer.epoch > 0:
            # the checkpoint holds the rate of the old schedule; a step schedule is a function of the epoch, so
            # re-derive it (the same rate unless step_size was changed on resuming)
            schedule.step(trainer.epoch)
        if verbose:
            print(f"resuming {out} after epoch {trainer.epoch} of {trainer.epochs}", flush=True)
    if verbose:
        print(f"training {o['model']} on {splits.name}: {len(splits.train.y)} train / {len(splits.val.y)} val / "
              f"{len(splits.test.y)} test images of shape {tuple(splits.input_shape)}, {splits.num_classes} classes; "
              f"{net.num_params():,} parameters", flush=True)
    trainer.fit()
    train_seconds = time.perf_counter() - t0
    results = _test_results(out, splits, ten_crop=ten_crop, crop_pad=o["crop_pad"], hflip=hflip)
    results.update({"data": splits.name, "model": o["model"], "epochs": trainer.epoch,
                    "best_epoch": trainer.best_epoch, "best_val_top1": trainer.best_val,
                    "seconds": train_seconds, "parameters": int(net.num_params()),
                    "train_images_per_second": _images_per_second(trainer)})
    _write_results(out, results, trainer.history, o)
    if verbose:
        print(_result_line(results), flush=True)
    results["trainer"] = trainer
    return results


def _images_per_second(trainer):
    seconds = sum(h.get("seconds", 0.0) for h in trainer.history)
    n = len(trainer.splits.train.y) * len(trainer.history)
    return n / seconds if seconds > 0 else float("nan")


def _test_results(out, splits, *, ten_crop=False, crop_pad=None, hflip=True, which="best"):
    info = load_run(out, which=which, load_data=False)
    res = evaluate(info.net, splits.test)
    results = {"checkpoint": os.path.basename(info.meta["checkpoint"]), "checkpoint_epoch": info.meta["epoch"],
               "test_loss": res["loss"], "test_top1": res["top1"], "test_top5": res["top5"], "test_n": res["n"]}
    if ten_crop:
        res10 = evaluate(info.net, splits.test, ten_crop=True, crop_pad=crop_pad, hflip=hflip)
        results.update({"test_top1_ten_crop": res10["top1"], "test_top5_ten_crop": res10["top5"],
                        "test_loss_ten_crop": res10["loss"]})
    return results


def _result_line(r):
    line = (f"test ({r['test_n']} images, {r['checkpoint']} from epoch {r['checkpoint_epoch']}): "
            f"top-1 {100 * r['test_top1']:.2f}%  top-5 {100 * r['test_top5']:.2f}%  loss {r['test_loss']:.4f}")
    if "test_top1_ten_crop" in r:
        line += f"  |  ten-crop top-1 {100 * r['test_top1_ten_crop']:.2f}%"
    return line


def _write_results(out, results, history, options):
    clean = {k: v for k, v in results.items() if k != "trainer"}
    _atomic_write_text(os.path.join(out, "results.json"), json.dumps(clean, indent=1))
    last = history[-1] if history else {}
    lines = [
        f"minicnn run: {results['model']} on {results['data']}",
        "options: " + ", ".join(f"{k}={v}" for k, v in options.items() if v is not None),
        f"parameters: {results['parameters']:,}",
        f"epochs: {results['epochs']}  (best validation top-1 {100 * results['best_val_top1']:.2f}% "
        f"at epoch {results['best_epoch']})",
        f"last epoch: train loss {last.get('train_loss', float('nan')):.4f}, "
        f"val top-1 {100 * last.get('val_top1', float('nan')):.2f}%",
        _result_line(results),
        f"wall time: {results['seconds']:.1f} s (data, training, validation); training throughput "
        f"{results['train_images_per_second']:.0f} images/s (incl. validation)",
        "",
        "files:",
        f"  {os.path.join(out, CHECKPOINT)}   state after the last epoch (resume from it)",
        f"  {os.path.join(out, BEST)}         weights of the best validation epoch",
        f"  {os.path.join(out, 'history.json')} / history.csv   per-epoch loss and accuracy",
        f"  {os.path.join(out, 'curves.png')}   learning curves",
        f"  {os.path.join(out, 'results.json')}   test figures",
    ]
    _atomic_write_text(os.path.join(out, "summary.txt"), "\n".join(lines) + "\n")


def evaluate_run(run_dir, *, ten_crop=False, which="best", split="test", batch_size=256, root=None):
    """Reload a run (network and the same data split) and evaluate it. Returns {"loss", "top1", "top5", "n", ...}."""
    if split not in ("train", "val", "test"):       # before loading a whole dataset
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    info = load_run(run_dir, which=which, root=root)
    dataset = getattr(info.splits, split)
    res = evaluate(info.net, dataset, batch_size=batch_size)
    res = {"split": split, "checkpoint": info.meta["checkpoint"], "epoch": info.meta["epoch"], **res}
    if ten_crop:
        options = info.meta.get("run", {}).get("options", {})
        hflip = options.get("hflip")
        hflip = info.splits.hflip if hflip is None else bool(hflip)
        r10 = evaluate(info.net, dataset, batch_size=batch_size, ten_crop=True, crop_pad=options.get("crop_pad"),
                       hflip=hflip)
        res.update({"ten_crop_loss": r10["loss"], "ten_crop_top1": r10["top1"], "ten_crop_top5": r10["top5"],
                    "ten_crop_views": 10 if hflip else 5})
    return res

