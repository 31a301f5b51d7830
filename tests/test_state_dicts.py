"""Loading state is all or nothing, round trips are complete, and a resumed run equals an uninterrupted one
(bit for bit, for every learning-rate schedule); nonsense settings are refused by name."""
import json
import math
import zipfile

import numpy as np
import pytest

from minicnn import schedule as schedule_mod
from minicnn.layers import BatchNorm, Conv2D, Flatten, Linear, ReLU
from minicnn.net import Sequential
from minicnn.optim import SGD
from minicnn.schedule import SCHEDULES, ReduceOnPlateau, StepLR, make_schedule
from minicnn.train import CheckpointError, Trainer, load_checkpoint, save_checkpoint

from test_train import assert_same_weights, strip_times, synthetic_splits, tiny_net


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(1, 2, 3, rng=rng), BatchNorm(2), ReLU(), Flatten(), Linear(2 * 2 * 2, 3, rng=rng)])


def grads_step(net, opt, seed):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for key, value in layer.params.items():
            layer.grads[key] = rng.standard_normal(value.shape).astype(np.float32)
    opt.step()


# --- Sequential.load_state_dict --------------------------------------------------------------------------------

def test_load_state_dict_with_one_wrong_shape_changes_nothing():
    net, other = small_net(0), small_net(1)
    before = net.state_dict()
    state = other.state_dict()
    state["fc1.W"] = state["fc1.W"][:-1]                   # the last layer is wrong, every earlier one fits
    with pytest.raises(ValueError, match=r"fc1\.W has shape \(8, 3\) in the network but \(7, 3\)"):
        net.load_state_dict(state)
    assert_same_weights(net.state_dict(), before)


@pytest.mark.parametrize("bad, match", [
    ("a string", "must hold real numbers"),
    (np.array(["x"] * 3), "must hold real numbers"),
    (np.ones(3, dtype=np.complex64), "must hold real numbers"),
    ([[1.0, 2.0], [3.0]], "not an array"),
    (None, "must hold real numbers"),
])
def test_load_state_dict_refuses_values_that_are_not_real_arrays(bad, match):
    net = small_net()
    before = net.state_dict()
    state = small_net(1).state_dict()
    state["fc1.b"] = bad
    with pytest.raises(ValueError, match=rf"fc1\.b.*{match}|{match}.*fc1\.b"):
        net.load_state_dict(state)
    assert_same_weights(net.state_dict(), before)
    with pytest.raises(TypeError, match="expected a mapping"):
        net.load_state_dict([("fc1.b", np.zeros(3))])


def test_load_state_dict_accepts_lists_and_casts_to_the_parameter_dtype():
    net = small_net()
    state = {k: v.astype(np.float64).tolist() for k, v in small_net(1).state_dict().items()}
    net.load_state_dict(state)
    for key, value in net.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, np.asarray(state[key], dtype=np.float32))


# --- SGD ----------------------------------------------------------------------------------------------------------

def test_sgd_state_round_trip_restores_every_field():
    net = small_net()
    opt = SGD(net, lr=0.037, momentum=0.55, weight_decay=3e-3, clip_radius=0.25, decay_biases=True,
              freeze=["bn1"], lr_mult={"fc1": 3.0}, decay_mult={"conv1": 0.5})
    for seed in range(3):
        grads_step(net, opt, seed)
    state = json.loads(json.dumps(opt.state_dict()["hyperparams"]))         # through JSON, as in a checkpoint
    fresh = SGD(net, lr=1.0, momentum=0.0, weight_decay=0.0, clip_radius=None, decay_biases=False)
    fresh.load_state_dict({"hyperparams": state, "velocity": opt.state_dict()["velocity"]})
    assert fresh.hyperparams() == opt.hyperparams()
    fields = ("lr", "momentum", "weight_decay", "clip_radius", "decay_biases", "steps", "frozen", "lr_mult",
              "decay_mult")
    for field in fields:
        assert getattr(fresh, field) == getattr(opt, field), field
        assert type(getattr(fresh, field)) is type(getattr(opt, field)), field
    assert set(opt.hyperparams()) == set(fields), \
        "a new SGD setting: add it to this round trip"
    for key, v in opt.velocity.items():
        np.testing.assert_array_equal(fresh.velocity[key], v)
    # ... and the restored optimiser steps exactly like the original
    a, b = small_net(2), small_net(2)
    oa = SGD(a, decay_biases=True, weight_decay=0.1)
    ob = SGD(b, decay_biases=False, weight_decay=0.1)
    ob.load_state_dict(oa.state_dict())
    grads_step(a, oa, 7)
    grads_step(b, ob, 7)
    assert_same_weights(a.state_dict(), b.state_dict())


def test_sgd_load_state_dict_is_all_or_nothing():
    net = small_net()
    opt = SGD(net, lr=0.1, momentum=0.5)
    grads_step(net, opt, 0)
    before_hp, before_v = opt.hyperparams(), opt.state_dict()["velocity"]
    good = SGD(net, lr=0.2)
    grads_step(net, good, 1)
    bad_velocity = good.state_dict()
    bad_velocity["velocity"]["fc1.W"] = np.zeros((2, 2), np.float32)
    bad_hp = good.state_dict()
    bad_hp["hyperparams"]["weight_decay"] = float("nan")
    for state, match in ((bad_velocity, r"fc1\.W has shape \(2, 2\)"), (bad_hp, "weight_decay")):
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(state)
        assert opt.hyperparams() == before_hp
        for key, v in before_v.items():
            np.testing.assert_array_equal(opt.velocity[key], v)


@pytest.mark.parametrize("kwargs, match", [
    ({"weight_decay": math.nan}, "weight_decay"), ({"weight_decay": math.inf}, "weight_decay"),
    ({"weight_decay": -1e-3}, "weight_decay"), ({"lr": math.nan}, "lr"), ({"lr": math.inf}, "lr"),
    ({"lr": 0.0}, "lr"), ({"lr": "0.1"}, "lr"), ({"momentum": math.nan}, "momentum"),
    ({"momentum": 1.0}, "momentum"), ({"momentum": -0.1}, "momentum"), ({"clip_radius": math.nan}, "clip_radius"),
    ({"clip_radius": math.inf}, "clip_radius"), ({"clip_radius": -1.0}, "clip_radius"),
    ({"lr": True}, "lr"), ({"decay_biases": "yes"}, "decay_biases"),
])
def test_sgd_refuses_nonsense_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=f"SGD: {match}"):
        SGD(small_net(), **kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda o: StepLR(o, 2, gamma=math.inf), "gamma"), (lambda o: StepLR(o, 2, gamma=math.nan), "gamma"),
    (lambda o: ReduceOnPlateau(o, factor=math.nan), "factor"),
    (lambda o: ReduceOnPlateau(o, threshold=math.nan), "threshold"),
    (lambda o: ReduceOnPlateau(o, min_lr=-1.0), "min_lr"), (lambda o: ReduceOnPlateau(o, min_lr=math.nan), "min_lr"),
])
def test_schedules_refuse_nonsense(make, match):
    with pytest.raises(ValueError, match=match):
        make(SGD(small_net()))


def test_schedule_load_state_dict_is_all_or_nothing():
    sched = ReduceOnPlateau(SGD(small_net()), patience=1)
    sched.step(1, 0.5)
    before = sched.state_dict()
    with pytest.raises(ValueError, match="bad_epochs"):
        sched.load_state_dict({"base_lr": 0.5, "best": 0.9, "bad_epochs": -1, "reductions": 0})
    with pytest.raises(ValueError, match="base_lr"):
        sched.load_state_dict({"base_lr": math.nan})
    assert sched.state_dict() == before


# --- Trainer.resume ------------------------------------------------------------------------------------------------

# Settings under which each schedule's state changes the run after an interruption at any epoch boundary.
SCHEDULE_SETTINGS = {"constant": {}, "step": {"step_size": 2, "gamma": 0.5},
                     # threshold 1: only the first epoch counts as an improvement (over -inf), so the rate drops
                     # at every later epoch -- unless a resumed run forgot its best value and bad-epoch count.
                     "plateau": {"patience": 1, "threshold": 1.0, "factor": 0.5}}


def schedule_trainer(name, out_dir, epochs):
    splits, net = synthetic_splits(n=48), tiny_net()
    opt = SGD(net, lr=0.05, momentum=0.9, weight_decay=1e-3)
    return Trainer(net, splits, opt, schedule=make_schedule(name, opt, **SCHEDULE_SETTINGS[name]), batch_size=8,
                   epochs=epochs, seed=3, out_dir=out_dir, progress=False, verbose=False)


def test_every_schedule_is_tested_for_resume():
    assert set(SCHEDULE_SETTINGS) == set(SCHEDULES) == set(schedule_mod.SCHEDULES)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_resumed_run_equals_uninterrupted_for_every_schedule(name, tmp_path):
    full = schedule_trainer(name, None, 4)
    full.fit()
    for stop in (1, 2, 3):
        stopped = schedule_trainer(name, None, stop)
        stopped.fit()
        path = stopped.save(tmp_path / f"stop{stop}.npz")     # what fit writes to out_dir after each epoch
        resumed = schedule_trainer(name, None, 4).resume(path)
        assert resumed.schedule.state_dict() == json.loads(json.dumps(resumed.schedule.state_dict()))
        resumed.fit()
        assert_same_weights(resumed.net.state_dict(), full.net.state_dict())
        assert [row["lr"] for row in resumed.history] == [row["lr"] for row in full.history], (name, stop)
        assert strip_times(resumed.history) == strip_times(full.history)
        assert resumed.schedule.state_dict() == full.schedule.state_dict()
        assert resumed.optimizer.hyperparams() == full.optimizer.hyperparams()


def test_a_checkpoint_that_fails_half_way_leaves_the_trainer_untouched(tmp_path):
    donor = schedule_trainer("plateau", None, 1)
    donor.fit()
    good = donor.save(tmp_path / "donor.npz")
    ckpt = load_checkpoint(good)
    bad = tmp_path / "bad.npz"
    velocity = dict(ckpt.velocity, **{"fc1.W": np.zeros((2, 2), np.float32)})   # fits nothing; weights are fine
    meta = dict(ckpt.meta)
    with zipfile.ZipFile(good) as z:
        assert "velocity/fc1.W.npy" in z.namelist()
    arrays = {f"param/{k}": v for k, v in ckpt.params.items()}
    arrays.update({f"velocity/{k}": v for k, v in velocity.items()})
    arrays["meta.json"] = np.array(json.dumps(meta))
    np.savez(bad, **arrays)
    victim = schedule_trainer("plateau", None, 3)
    before_w, before_hp = victim.net.state_dict(), victim.optimizer.hyperparams()
    before_rng = victim.rng.bit_generator.state
    with pytest.raises(CheckpointError, match=r"nothing was changed.*fc1\.W"):
        victim.resume(bad)
    assert_same_weights(victim.net.state_dict(), before_w)
    assert victim.optimizer.hyperparams() == before_hp and victim.epoch == 0
    assert victim.rng.bit_generator.state == before_rng
    other = schedule_trainer("step", None, 3)
    with pytest.raises(CheckpointError, match="schedule ReduceOnPlateau"):
        other.resume(good)


@pytest.mark.parametrize("meta, match", [
    ([1, 2, 3], "must hold a JSON object"), ("text", "must hold a JSON object"),
    ({"format": "minicnn-checkpoint", "epoch": "three"}, "epoch"),
    ({"format": "minicnn-checkpoint", "epoch": -1}, "epoch"),
    ({"format": "minicnn-checkpoint", "architecture": [1, 2]}, "architecture"),
    ({"format": "minicnn-checkpoint", "optimizer": [0.1]}, "optimizer"),
])
def test_checkpoint_meta_json_of_the_wrong_kind(tmp_path, meta, match):
    path = tmp_path / "c.npz"
    np.savez(path, **{"meta.json": np.array(json.dumps(meta))})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_checkpoint_with_a_truncated_history_or_rng(tmp_path):
    trainer = schedule_trainer("constant", None, 1)
    path = tmp_path / "c.npz"
    save_checkpoint(path, trainer.net, optimizer=trainer.optimizer, meta={"history": "oops"}, rng=trainer.rng)
    with pytest.raises(CheckpointError, match="history"):
        schedule_trainer("constant", None, 2).resume(path)
    ckpt = load_checkpoint(path)
    meta = dict(ckpt.meta, history=[])
    meta["rng"] = {"trainer": {"bit_generator": "PCG64", "state": "garbled"}}
    arrays = {f"param/{k}": v for k, v in ckpt.params.items()}
    arrays["meta.json"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    fresh = schedule_trainer("constant", None, 2)
    before = fresh.net.state_dict()
    with pytest.raises(CheckpointError, match="nothing was changed"):
        fresh.resume(path)
    assert_same_weights(fresh.net.state_dict(), before)


def test_plateau_refuses_a_nan_metric_and_clipping_a_non_finite_radius():
    from minicnn.optim import clip_filter_rms
    opt = SGD(small_net(), lr=0.1)
    sched = ReduceOnPlateau(opt, patience=0)
    with pytest.raises(ValueError, match="metric is NaN"):
        sched.step(1, float("nan"))
    assert opt.lr == 0.1 and sched.bad_epochs == 0
    for radius in (math.inf, math.nan, 0.0):
        with pytest.raises(ValueError, match="radius"):
            clip_filter_rms(small_net(), radius)


def test_sgd_accepts_momentum_buffers_as_lists_like_the_network_does():
    net = small_net()
    opt = SGD(net, lr=0.1)
    grads_step(net, opt, 3)
    state = opt.state_dict()
    as_lists = {"hyperparams": state["hyperparams"], "velocity": {k: v.tolist() for k, v in state["velocity"].items()}}
    fresh = SGD(net)
    fresh.load_state_dict(as_lists)
    for key, v in opt.velocity.items():
        assert fresh.velocity[key].dtype == np.float32
        np.testing.assert_array_equal(fresh.velocity[key], v)
    as_lists["velocity"]["fc1.b"] = ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"fc1\.b must hold real numbers"):
        fresh.load_state_dict(as_lists)
