"""Per-layer optimiser settings for fine-tuning: frozen layers, lr_mult, decay_mult; against hand computations,
through state_dict / JSON / checkpoints, and a resumed Trainer run equal to an uninterrupted one."""
import json
import math

import numpy as np
import pytest

from minicnn.data import ArrayDataset, Splits
from minicnn.layers import Conv2D, Flatten, Linear, ReLU
from minicnn.net import Sequential
from minicnn.optim import SGD, filter_rms
from minicnn.train import Trainer, load_checkpoint


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2D(2, 3, 3, rng=rng, name="conv1"), ReLU(name="relu1"),
                       Conv2D(3, 3, 1, rng=rng, name="conv2"), Flatten(name="flat"),
                       Linear(3 * 2 * 2, 4, rng=rng, name="fc")])


def set_grads(net, seed):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for key, value in layer.params.items():
            layer.grads[key] = rng.standard_normal(value.shape).astype(np.float32)
    return {k: v.copy() for k, v in net.named_grads().items()}


def snapshot(net):
    return {k: v.copy() for k, v in net.named_params().items()}


def test_frozen_layers_do_not_change_under_momentum_decay_and_clipping():
    net = small_net()
    net["conv1"].params["W"] *= 50          # far above the clipping radius: clipping would rescale it
    net["conv1"].params["b"][:] = 0.3       # decayed too when decay_biases=True
    before = snapshot(net)
    opt = SGD(net, lr=0.1, momentum=0.9, weight_decay=0.1, clip_radius=0.1, decay_biases=True, freeze=["conv1"])
    for i in range(4):
        set_grads(net, i)
        opt.step()
    after = net.named_params()
    for key in ("conv1.W", "conv1.b"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)      # bit for bit
    assert filter_rms(after["conv1.W"]).max() > 0.1                              # clipping did skip it
    for key in ("conv2.W", "conv2.b", "fc.W", "fc.b"):
        assert not np.array_equal(after[key], before[key]), key
    assert not any(k.startswith("conv1.") for k in opt.velocity)


def test_frozen_layer_is_skipped_even_with_a_momentum_buffer_from_before():
    net = small_net()
    opt = SGD(net, lr=0.1, momentum=0.9, weight_decay=0.0)
    set_grads(net, 0)
    opt.step()                                # conv1 now has a non-zero velocity that would keep moving it
    opt.freeze("conv1")
    before = snapshot(net)
    set_grads(net, 1)
    opt.step()
    np.testing.assert_array_equal(net.named_params()["conv1.W"], before["conv1.W"])
    assert opt.layer_lr("conv1") == 0.0 and opt.layer_lr("fc") == pytest.approx(0.1)
    opt.unfreeze("conv1")                     # starts from rest: the first step is plain -lr * g
    w = net.named_params()["conv1.W"].copy()
    g = set_grads(net, 2)["conv1.W"]
    opt.step()
    np.testing.assert_allclose(net.named_params()["conv1.W"], w - 0.1 * g, rtol=1e-6, atol=1e-7)
    opt.freeze("conv1", "fc")
    opt.unfreeze()
    assert opt.frozen == set()


def test_lr_mult_and_decay_mult_match_hand_computation():
    net = small_net()
    before = snapshot(net)
    grads = set_grads(net, 3)
    lr, wd = 0.05, 0.01
    SGD(net, lr=lr, momentum=0.0, weight_decay=wd, lr_mult={"fc": 10.0, "conv2": 0.5},
        decay_mult={"fc": 0.0, "conv1": 3.0}).step()
    after = net.named_params()
    expect = {
        "conv1.W": before["conv1.W"] - lr * (grads["conv1.W"] + 3.0 * wd * before["conv1.W"]),
        "conv1.b": before["conv1.b"] - lr * grads["conv1.b"],                 # biases are not decayed
        "conv2.W": before["conv2.W"] - 0.5 * lr * (grads["conv2.W"] + wd * before["conv2.W"]),
        "fc.W": before["fc.W"] - 10.0 * lr * grads["fc.W"],                 # decay_mult 0: no decay
        "fc.b": before["fc.b"] - 10.0 * lr * grads["fc.b"],
    }
    for key, value in expect.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-7, err_msg=key)


def test_multipliers_of_one_change_nothing():
    a, b = small_net(), small_net()
    opt_a = SGD(a, lr=0.05, momentum=0.9, weight_decay=1e-3)
    opt_b = SGD(b, lr=0.05, momentum=0.9, weight_decay=1e-3, lr_mult={"fc": 1.0}, decay_mult={"conv1": 1.0})
    for i in range(3):
        set_grads(a, i), set_grads(b, i)
        opt_a.step(), opt_b.step()
    for key, value in a.named_params().items():
        np.testing.assert_array_equal(b.named_params()[key], value)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"freeze": ["conv9"]}, ValueError, r"freeze: the network has no layer named 'conv9'.*conv1, conv2, fc"),
    ({"freeze": ["relu1"]}, ValueError, r"freeze: layer 'relu1' has no parameters"),
    ({"freeze": 3}, TypeError, r"freeze takes layer names"),
    ({"lr_mult": {"fc": 0}}, ValueError, r"lr_mult for layer 'fc' must be a finite number > 0 \(freeze"),
    ({"lr_mult": {"fc": -1.0}}, ValueError, r"lr_mult for layer 'fc'.*-1\.0"),
    ({"lr_mult": {"fc": math.nan}}, ValueError, r"lr_mult for layer 'fc'.*nan"),
    ({"lr_mult": {"fc": True}}, ValueError, r"lr_mult for layer 'fc'.*True"),
    ({"lr_mult": {"fc": "10"}}, ValueError, r"lr_mult for layer 'fc'.*'10'"),
    ({"lr_mult": {"fc8": 10.0}}, ValueError, r"lr_mult: the network has no layer named 'fc8'"),
    ({"lr_mult": [("fc", 2.0)]}, TypeError, r"lr_mult must be a dict"),
    ({"decay_mult": {"conv2": -0.5}}, ValueError, r"decay_mult for layer 'conv2' must be a finite number >= 0"),
])
def test_bad_per_layer_settings_name_the_layer(kwargs, error, match):
    with pytest.raises(error, match=match):
        SGD(small_net(), **kwargs)


def test_a_single_name_string_is_one_layer():
    opt = SGD(small_net(), freeze="conv1")
    assert opt.frozen == {"conv1"}
    with pytest.raises(ValueError, match="'conv3'"):
        opt.freeze("conv3")
    with pytest.raises(ValueError, match="'flat' has no parameters"):
        opt.layer_lr("flat")


def test_per_layer_settings_survive_state_dict_through_json():
    net = small_net()
    opt = SGD(net, lr=0.02, freeze=["conv1"], lr_mult={"fc": 10.0}, decay_mult={"fc": 0.0})
    set_grads(net, 0)
    opt.step()
    state = opt.state_dict()
    hp = json.loads(json.dumps(state["hyperparams"]))           # checkpoints keep them in JSON
    other = SGD(small_net(), lr=1.0)
    other.load_state_dict({"hyperparams": hp, "velocity": state["velocity"]})
    assert other.hyperparams() == opt.hyperparams()
    assert other.frozen == {"conv1"} and other.lr_mult == {"fc": 10.0} and other.decay_mult == {"fc": 0.0}
    assert "freeze=['conv1']" in repr(other) and "lr_mult={'fc': 10.0}" in repr(other)
    # a state from before per-layer settings existed keeps the ones the optimiser was built with
    old = {k: v for k, v in hp.items() if k not in ("frozen", "lr_mult", "decay_mult")}
    kept = SGD(small_net(), freeze=["conv2"])
    kept.load_state_dict({"hyperparams": old, "velocity": {}})
    assert kept.frozen == {"conv2"}


def test_a_state_for_another_network_is_rejected_and_changes_nothing():
    opt = SGD(small_net(), lr=0.5, lr_mult={"fc": 2.0})
    with pytest.raises(ValueError, match="'fc8'"):
        opt.load_state_dict({"hyperparams": {"lr": 0.1, "frozen": ["fc8"]}, "velocity": {}})
    assert opt.lr == 0.5 and opt.lr_mult == {"fc": 2.0} and opt.frozen == set()


def _splits(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4).astype(np.int64)
    x = (0.3 * rng.standard_normal((n, 2, 4, 4))).astype(np.float32)
    x[np.arange(n), y % 2, y // 2, :] += 1.0
    ds = lambda i, j: ArrayDataset(np.ascontiguousarray(x[i:j]), y[i:j].copy())   # noqa: E731
    return Splits(train=ds(0, 32), val=ds(32, 40), test=ds(40, 48), class_names=list("abcd"),
                  mean=np.zeros((2, 4, 4), np.float32), name="synthetic", hflip=False)


def _trainer(out_dir, epochs, **sgd):
    net = small_net()
    opt = SGD(net, lr=0.05, momentum=0.9, weight_decay=1e-3, clip_radius=0.5, **sgd)
    return Trainer(net, _splits(), opt, batch_size=8, epochs=epochs, seed=0, out_dir=out_dir, progress=False,
                   verbose=False, data_options={"name": "synthetic"})


def test_resumed_fine_tuning_equals_an_uninterrupted_run(tmp_path):
    settings = dict(freeze=["conv1"], lr_mult={"fc": 10.0}, decay_mult={"conv2": 0.0})
    start = small_net().named_params()["conv1.W"].copy()
    full = _trainer(tmp_path / "full", 2, **settings)
    full.fit()
    first = _trainer(tmp_path / "cut", 1, **settings)
    first.fit()
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.npz").meta["optimizer"]["frozen"] == ["conv1"]
    resumed = _trainer(tmp_path / "cut", 2).resume()          # built without the settings: the checkpoint has them
    assert resumed.optimizer.frozen == {"conv1"} and resumed.optimizer.lr_mult == {"fc": 10.0}
    resumed.fit()
    for key, value in full.net.named_params().items():
        np.testing.assert_array_equal(resumed.net.named_params()[key], value, err_msg=key)
    np.testing.assert_array_equal(full.net.named_params()["conv1.W"], start)
    assert not np.array_equal(full.net.named_params()["fc.W"], small_net().named_params()["fc.W"])


# --- frozen layers skip their parameter gradients ----------------------------------------------------------------

def _count_param_grad_calls(net):
    """Wrap every layer's backward; return {layer name: [param_grads flags it was called with]}."""
    calls = {layer.name: [] for layer in net.layers}
    for layer in net.layers:
        original = layer.backward

        def wrapped(dy, rule="backprop", param_grads=True, need_dx=True, _name=layer.name, _original=original):
            calls[_name].append((param_grads, need_dx))
            return _original(dy, rule=rule, param_grads=param_grads, need_dx=need_dx)
        layer.backward = wrapped
    return calls


def _forward_backward(net, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    y = net.forward(x, train=True)
    net.backward(rng.standard_normal(y.shape).astype(np.float32), input_grad=False)


def test_frozen_layers_compute_no_parameter_gradients():
    net = small_net()
    opt = SGD(net, lr=0.1, freeze=["conv2"])
    sentinel = {k: np.full_like(v, 7.0) for k, v in net["conv2"].grads.items()}
    net["conv2"].grads.update({k: v.copy() for k, v in sentinel.items()})
    calls = _count_param_grad_calls(net)
    _forward_backward(net)
    assert calls["conv2"] == [(False, True)]          # still passes dx down to conv1, which learns
    assert calls["conv1"] == [(True, False)] and calls["fc"] == [(True, True)]
    for key, value in sentinel.items():                # untouched: no dW/db was computed for it
        np.testing.assert_array_equal(net["conv2"].grads[key], value)
    opt.unfreeze("conv2")
    calls = _count_param_grad_calls(net)
    _forward_backward(net)
    assert calls["conv2"] == [(True, True)]
    assert not np.array_equal(net["conv2"].grads["W"], sentinel["W"])


def test_backward_stops_below_the_lowest_layer_that_learns():
    """With conv1 and conv2 frozen and no input gradient wanted, nothing below fc needs a gradient at all."""
    net = small_net()
    SGD(net, lr=0.1, freeze=["conv1", "conv2"])
    calls = _count_param_grad_calls(net)
    _forward_backward(net)
    assert calls["fc"] == [(True, False)]
    assert calls["conv2"] == calls["relu1"] == calls["conv1"] == calls["flat"] == []
    # an input gradient (saliency, deconvnet) still goes all the way down, frozen or not
    calls = _count_param_grad_calls(net)
    y = net.forward(np.ones((1, 2, 4, 4), np.float32))
    dx = net.backward(np.ones_like(y), param_grads=False)
    assert dx.shape == (1, 2, 4, 4) and calls["conv1"] == [(False, True)]


def test_freeze_flag_follows_the_optimizer_state():
    net = small_net()
    opt = SGD(net, lr=0.1)
    assert all(layer.trainable for layer in net.layers)
    opt.load_state_dict({"hyperparams": {"frozen": ["conv1"]}, "velocity": {}})
    assert not net["conv1"].trainable and net["conv2"].trainable
    opt.unfreeze()
    assert net["conv1"].trainable
