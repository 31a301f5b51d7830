"""SGD (momentum, weight decay), ZF filter-RMS clipping and learning-rate schedules, against hand computations."""
import math

import numpy as np
import pytest

from minicnn.layers import Conv2D, Flatten, Linear, ReLU
from minicnn.net import Sequential
from minicnn.optim import SGD, clip_filter_rms, filter_rms
from minicnn.schedule import ConstantLR, ReduceOnPlateau, StepLR, make_schedule


def tiny_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(2, 3, 3, rng=rng), ReLU(), Flatten(), Linear(3 * 2 * 2, 4, rng=rng)])


def set_grads(net, seed):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for key, value in layer.params.items():
            layer.grads[key] = rng.standard_normal(value.shape).astype(np.float32)
    return {k: v.copy() for k, v in net.named_grads().items()}


def test_sgd_plain_step_matches_hand_computation():
    net = tiny_net()
    before = {k: v.copy() for k, v in net.named_params().items()}
    grads = set_grads(net, 1)
    SGD(net, lr=0.1, momentum=0.0, weight_decay=0.0).step()
    for key, W in net.named_params().items():
        np.testing.assert_allclose(W, before[key] - 0.1 * grads[key], rtol=1e-6, atol=1e-7)


def test_sgd_momentum_and_weight_decay_two_steps():
    net = tiny_net()
    lr, mu, wd = 0.05, 0.9, 0.01
    opt = SGD(net, lr=lr, momentum=mu, weight_decay=wd)
    W = {k: v.astype(np.float64) for k, v in net.named_params().items()}
    v = {k: np.zeros_like(w) for k, w in W.items()}
    for step in range(2):
        g = set_grads(net, 10 + step)
        opt.step()
        for key in W:
            decay = wd if key.endswith(".W") else 0.0           # biases are not decayed by default
            v[key] = mu * v[key] - lr * (g[key] + decay * W[key])
            W[key] = W[key] + v[key]
    for key, value in net.named_params().items():
        np.testing.assert_allclose(value, W[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(opt.velocity[key], v[key], rtol=1e-5, atol=1e-6)


def test_weight_decay_alone_shrinks_weights_and_biases_only_when_asked():
    net = tiny_net()
    net["fc1"].params["b"][:] = 1.0
    before = {k: v.copy() for k, v in net.named_params().items()}
    for layer in net.layers:
        for key in layer.params:
            layer.grads[key] = np.zeros_like(layer.params[key])
    SGD(net, lr=0.1, momentum=0.0, weight_decay=0.5).step()
    np.testing.assert_allclose(net["fc1"].params["W"], before["fc1.W"] * (1 - 0.05), rtol=1e-6)
    np.testing.assert_array_equal(net["fc1"].params["b"], before["fc1.b"])
    SGD(net, lr=0.1, momentum=0.0, weight_decay=0.5, decay_biases=True).step()
    np.testing.assert_allclose(net["fc1"].params["b"], 0.95, rtol=1e-6)


def test_step_updates_in_place_and_keeps_float32():
    net = tiny_net()
    W = net["conv1"].params["W"]
    set_grads(net, 3)
    SGD(net).step()
    assert net["conv1"].params["W"] is W
    assert all(v.dtype == np.float32 for v in net.named_params().values())


def test_optimizer_state_round_trip():
    net = tiny_net()
    opt = SGD(net, lr=0.02, momentum=0.8, weight_decay=1e-3, clip_radius=0.5)
    set_grads(net, 4)
    opt.step()
    state = opt.state_dict()
    other = SGD(tiny_net(), lr=1.0)
    other.load_state_dict(state)
    assert other.hyperparams() == opt.hyperparams()
    for key in opt.velocity:
        np.testing.assert_array_equal(other.velocity[key], opt.velocity[key])
        assert other.velocity[key] is not state["velocity"][key]


def test_optimizer_state_shape_mismatch_is_reported():
    opt = SGD(tiny_net())
    with pytest.raises(ValueError, match=r"conv1\.W.*shape"):
        opt.load_state_dict({"velocity": {"conv1.W": np.zeros((1, 1, 1, 1), np.float32)}})
    with pytest.raises(ValueError, match="does not have"):
        opt.load_state_dict({"velocity": {"conv9.W": np.zeros((1,), np.float32)}})


@pytest.mark.parametrize("kwargs, match", [({"lr": 0}, "lr"), ({"momentum": 1.0}, "momentum"),
                                           ({"weight_decay": -1}, "weight_decay"), ({"clip_radius": 0}, "clip_radius")])
def test_sgd_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGD(tiny_net(), **kwargs)


def test_clip_filter_rms_rescales_exactly_the_filters_above_the_radius():
    rng = np.random.default_rng(0)
    conv = Conv2D(3, 6, 3, rng=rng)
    net = Sequential([conv, ReLU()])
    W = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    W[[0, 2, 5]] *= 0.01      # RMS about 0.01: below the radius
    W[[1, 3, 4]] *= 1.0       # RMS about 1: above
    conv.params["W"] = W.copy()
    n = clip_filter_rms(net, radius=0.1)
    assert n == 3
    rms = filter_rms(conv.params["W"])
    np.testing.assert_allclose(rms[[1, 3, 4]], 0.1, rtol=1e-5)
    np.testing.assert_array_equal(conv.params["W"][[0, 2, 5]], W[[0, 2, 5]])     # untouched, bit for bit
    # Direction is kept: a clipped filter is a positive multiple of the original.
    for f in (1, 3, 4):
        ratio = conv.params["W"][f] / W[f]
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)
        assert ratio.flat[0] > 0


def test_sgd_applies_clipping_after_the_update():
    net = tiny_net()
    for layer in net.layers:
        for key in layer.params:
            layer.grads[key] = np.full_like(layer.params[key], -100.0)    # huge step up
    SGD(net, lr=1.0, momentum=0.0, weight_decay=0.0, clip_radius=0.1).step()
    assert float(filter_rms(net["conv1"].params["W"]).max()) <= 0.1 * (1 + 1e-5)
    assert float(np.abs(net["fc1"].params["W"]).max()) > 1      # only conv filters are clipped


# --- schedules -------------------------------------------------------------------------------------------------

def test_step_schedule():
    opt = SGD(tiny_net(), lr=0.1)
    sched = StepLR(opt, step_size=2, gamma=0.1)
    lrs = [sched.step(epoch) for epoch in range(1, 6)]
    np.testing.assert_allclose(lrs, [0.1, 0.01, 0.01, 0.001, 0.001])


def test_constant_schedule():
    opt = SGD(tiny_net(), lr=0.3)
    sched = make_schedule("constant", opt)
    assert isinstance(sched, ConstantLR)
    assert [sched.step(e, 0.5) for e in range(1, 4)] == [0.3, 0.3, 0.3]


def test_plateau_divides_by_ten_after_patience():
    opt = SGD(tiny_net(), lr=0.1)
    sched = ReduceOnPlateau(opt, patience=2)
    metrics = [0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7]
    lrs = [sched.step(e, m) for e, m in enumerate(metrics, start=1)]
    # epochs 3, 4 do not improve (2 = patience), epoch 5 is the third: reduce. Epoch 6 improves; 7, 8, 9 do not.
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001])
    assert sched.reductions == 2


def test_plateau_min_mode_and_state_round_trip():
    opt = SGD(tiny_net(), lr=1.0)
    sched = ReduceOnPlateau(opt, patience=0, mode="min", min_lr=0.05)
    assert sched.step(1, 2.0) == 1.0
    assert sched.step(2, 1.0) == 1.0
    assert math.isclose(sched.step(3, 1.5), 0.1)
    assert math.isclose(sched.step(4, 1.5), 0.05)    # floored at min_lr
    other = ReduceOnPlateau(SGD(tiny_net(), lr=0.05), patience=0, mode="min", min_lr=0.05)
    other.load_state_dict(sched.state_dict())
    assert (other.best, other.bad_epochs, other.reductions) == (sched.best, sched.bad_epochs, sched.reductions)


def test_schedule_errors():
    opt = SGD(tiny_net())
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'cosine'"):
        make_schedule("cosine", opt)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="metric"):
        ReduceOnPlateau(opt).step(1)
