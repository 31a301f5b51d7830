"""Trainer: metrics, run files, determinism, exact resume after a crash, atomic and validated checkpoints."""
import json
import os

import numpy as np
import pytest

from minicnn.data import ArrayDataset, Augment, Splits
from minicnn.layers import LRN, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from minicnn.net import Sequential
from minicnn.optim import SGD
from minicnn.schedule import ReduceOnPlateau
from minicnn import train as train_mod
from minicnn.train import (Callback, CheckpointError, Trainer, evaluate, load_checkpoint, load_run, save_checkpoint,
                           topk_correct)


def synthetic_splits(n=96, size=8, classes=3, seed=0):
    """Bars at class-dependent rows on noise: learnable in a few epochs by a tiny net."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int64)
    x = (0.3 * rng.standard_normal((n, 1, size, size))).astype(np.float32)
    for k in range(classes):
        x[y == k, :, 2 * k:2 * k + 2, 1:size - 1] += 1.0
    mean = x[: n // 2].mean(axis=0).astype(np.float32)
    x -= mean
    a, b = n // 2, 3 * n // 4
    ds = lambda i, j: ArrayDataset(np.ascontiguousarray(x[i:j]), y[i:j].copy())   # noqa: E731
    return Splits(train=ds(0, a), val=ds(a, b), test=ds(b, n), class_names=[f"c{k}" for k in range(classes)],
                  mean=mean, name="synthetic", hflip=True)


def tiny_net(seed=0, classes=3):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(1, 4, 3, pad=1, rng=rng), ReLU(), MaxPool2D(2, 2), LRN(),
                       Flatten(), Linear(4 * 4 * 4, 16, rng=rng), ReLU(), Dropout(0.5, seed=seed),
                       Linear(16, classes, rng=rng)], name="tiny")


def make_trainer(out_dir=None, epochs=3, seed=0, callbacks=(), augment="default"):
    splits = synthetic_splits()
    net = tiny_net(seed)
    opt = SGD(net, lr=0.05, momentum=0.9, weight_decay=1e-3, clip_radius=0.5)
    sched = ReduceOnPlateau(opt, patience=0)
    if augment == "default":
        augment = Augment(crop_pad=1, hflip=True)
    return Trainer(net, splits, opt, schedule=sched, batch_size=16, epochs=epochs, augment=augment, seed=seed,
                   out_dir=out_dir, callbacks=callbacks, progress=False, verbose=False,
                   data_options={"name": "synthetic"})


def weights(net):
    return net.state_dict()


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def strip_times(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# --- metrics ---------------------------------------------------------------------------------------------------

def test_topk_correct_by_hand():
    logits = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]], dtype=np.float32)
    labels = np.array([1, 2, 0], dtype=np.int64)
    assert topk_correct(logits, labels, 1) == 1
    assert topk_correct(logits, labels, 2) == 2
    assert topk_correct(logits, labels, 5) == 3        # fewer classes than k: all correct


def test_evaluate_matches_a_direct_forward():
    splits = synthetic_splits()
    net = tiny_net()
    res = evaluate(net, splits.test, batch_size=5)
    logits = net.forward(splits.test.x)
    assert res["n"] == len(splits.test)
    assert res["top1"] == pytest.approx(np.mean(logits.argmax(1) == splits.test.y))
    res10 = evaluate(net, splits.test, ten_crop=True, crop_pad=1)
    res5 = evaluate(net, splits.test, ten_crop=True, crop_pad=1, hflip=False)
    assert 0 <= res10["top1"] <= 1 and 0 <= res5["top1"] <= 1 and res10["loss"] != res5["loss"]


# --- fit, files, callbacks ---------------------------------------------------------------------------------------

class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_epoch_end(self, trainer, epoch, logs):
        assert os.path.exists(os.path.join(trainer.out_dir, "checkpoint.npz"))
        self.events.append((epoch, round(logs["val_top1"], 6)))

    def on_train_end(self, trainer):
        self.events.append("end")


def test_fit_learns_and_writes_the_run_files(tmp_path):
    rec = Recorder()
    trainer = make_trainer(tmp_path, epochs=4, callbacks=[rec])
    history = trainer.fit()
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["val_top1"] > 0.6          # chance is 1/3
    assert rec.events[0] == "begin" and rec.events[-1] == "end" and [e[0] for e in rec.events[1:-1]] == [1, 2, 3, 4]
    for name in ("checkpoint.npz", "best.npz", "history.json", "history.csv", "curves.png", "run.json"):
        assert (tmp_path / name).exists(), name
    with open(tmp_path / "history.json") as f:
        assert strip_times(json.load(f)) == strip_times(history)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,lr,train_loss,train_top1,train_top5,val_loss,val_top1,val_top5")
    assert len(lines) == 5
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_same_seed_gives_identical_weights():
    a, b = make_trainer(epochs=2), make_trainer(epochs=2)
    a.fit()
    b.fit()
    assert_same_weights(weights(a.net), weights(b.net))
    c = make_trainer(epochs=2, seed=1)
    c.fit()
    assert not np.array_equal(weights(a.net)["fc1.W"], weights(c.net)["fc1.W"])


class CrashingAugment(Augment):
    """Raises inside epoch ``crash_epoch`` after a few batches: a run killed mid-epoch."""

    def __init__(self, crash_at_call):
        super().__init__(crop_pad=1, hflip=True)
        self.calls, self.crash_at_call = 0, crash_at_call

    def __call__(self, xb, rng=None):
        self.calls += 1
        if self.calls == self.crash_at_call:
            raise KeyboardInterrupt("simulated kill")
        return super().__call__(xb, rng)


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tmp_path):
    full = make_trainer(tmp_path / "full", epochs=4)
    full.fit()
    # 48 train images / batch 16 = 3 batches per epoch: call 8 is the second batch of epoch 3.
    crashed = make_trainer(tmp_path / "crash", epochs=4, augment=CrashingAugment(crash_at_call=8))
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    assert load_checkpoint(tmp_path / "crash" / "checkpoint.npz").epoch == 2       # lost only epoch 3's batches
    resumed = make_trainer(tmp_path / "crash", epochs=4).resume()
    assert resumed.epoch == 2
    resumed.fit()
    assert_same_weights(weights(resumed.net), weights(full.net))
    assert strip_times(resumed.history) == strip_times(full.history)
    assert resumed.optimizer.lr == full.optimizer.lr
    for key, v in full.optimizer.velocity.items():
        np.testing.assert_array_equal(resumed.optimizer.velocity[key], v)


# --- checkpoints -------------------------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    trainer = make_trainer(epochs=1)
    trainer.fit()
    path = tmp_path / "c.npz"
    trainer.save(path)
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 1
    net = ckpt.build_net()
    assert net.config() == trainer.net.config()
    assert_same_weights(weights(net), weights(trainer.net))
    np.testing.assert_array_equal(ckpt.mean, trainer.splits.mean)
    x = trainer.splits.val.x
    np.testing.assert_array_equal(net.forward(x), trainer.net.forward(x))
    fresh = SGD(tiny_net())
    fresh.load_state_dict({"hyperparams": ckpt.meta["optimizer"], "velocity": ckpt.velocity})
    for key, v in trainer.optimizer.velocity.items():
        np.testing.assert_array_equal(fresh.velocity[key], v)
    assert fresh.lr == trainer.optimizer.lr and fresh.steps == trainer.optimizer.steps


def test_interrupted_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(epochs=1)
    trainer.fit()
    path = tmp_path / "checkpoint.npz"
    trainer.save(path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(train_mod.np, "savez", failing_savez)
    trainer.net["fc1"].params["W"] += 1.0
    with pytest.raises(OSError, match="simulated"):
        trainer.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]              # no temporary file left behind
    load_checkpoint(path)


def test_corrupt_checkpoints_fail_clearly(tmp_path):
    trainer = make_trainer(epochs=1)
    good = tmp_path / "good.npz"
    trainer.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3, dtype=np.float32))
    with pytest.raises(CheckpointError, match="not a minicnn checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


def test_checkpoint_that_does_not_fit_the_architecture(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, tiny_net())
    rng = np.random.default_rng(0)
    other = Sequential([Conv2D(1, 8, 3, pad=1, rng=rng), ReLU(), MaxPool2D(2, 2), LRN(),
                        Flatten(), Linear(8 * 4 * 4, 16, rng=rng), ReLU(), Dropout(0.5),
                        Linear(16, 3, rng=rng)], name="wider")
    with pytest.raises(CheckpointError, match=r"does not fit the architecture of 'wider'.*conv1\.W"):
        load_checkpoint(path).load_into(other)
    trainer = Trainer(other, synthetic_splits(), SGD(other), epochs=1, progress=False, verbose=False)
    with pytest.raises(CheckpointError, match="different architecture"):
        trainer.resume(path)


def test_load_run_rebuilds_net_and_data(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, epochs=2)
    trainer.fit()
    calls = []

    def fake_load_dataset(name, **options):
        calls.append((name, options))
        return synthetic_splits()

    import minicnn.data
    monkeypatch.setattr(minicnn.data, "load_dataset", fake_load_dataset)
    run = load_run(tmp_path)
    assert calls == [("synthetic", {})]
    assert run.meta["epoch"] == trainer.best_epoch
    assert strip_times(run.history) == strip_times(trainer.history)
    assert evaluate(run.net, run.splits.val)["top1"] == pytest.approx(trainer.best_val)
    last = load_run(tmp_path, which="last", load_data=False)
    assert last.splits is None
    assert_same_weights(weights(last.net), weights(trainer.net))
    with pytest.raises(FileNotFoundError, match="no run directory"):
        load_run(tmp_path / "nope")
