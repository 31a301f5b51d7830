"""Exercises of notebook 04 (training a ZF network): one SGD step with momentum and weight decay, and ZF's
feature-scale clipping. Both are checked against ``minicnn.optim`` on a small network."""
from __future__ import annotations

import numpy as np

from .. import Conv2D, Flatten, Linear, Sequential
from ..optim import SGD, clip_filter_rms, filter_rms
from . import register
from ._compare import as_array, assert_close


def _tiny_net():
    rng = np.random.default_rng(7)
    return Sequential([Conv2D(2, 3, 3, rng=rng, name="conv1"), Flatten(name="flat"),
                       Linear(12, 4, rng=rng, name="fc")]).astype(np.float64)


def check_sgd_step(sgd_step):
    net = _tiny_net()
    lr, momentum, decay = 0.1, 0.9, 0.01
    reference = SGD(net, lr=lr, momentum=momentum, weight_decay=decay)     # decays weights, not biases
    rng = np.random.default_rng(8)
    velocity = {key: np.zeros_like(W) for key, W in net.named_params().items()}
    for step in range(3):                                   # three steps: momentum only shows from the second
        for layer in net.layers:
            for key, W in layer.params.items():
                layer.grads[key] = rng.standard_normal(W.shape)
        grads = {k: g.copy() for k, g in net.named_grads().items()}
        before = {k: W.copy() for k, W in net.named_params().items()}
        reference.step()
        for key, W_before in before.items():
            decay_here = 0.0 if key.endswith(".b") else decay
            W_in, g_in, v_in = W_before.copy(), grads[key].copy(), velocity[key].copy()
            result = sgd_step(W_in, g_in, v_in, lr, momentum, decay_here)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise AssertionError(f"sgd_step should return a pair (new W, new v), got {type(result).__name__}")
            W_new, v_new = (as_array(r, what) for r, what in zip(result, ("new W", "new v")))
            if not np.array_equal(g_in, grads[key]):
                raise AssertionError("sgd_step wrote into the gradient g")
            case = f"step {step + 1}, parameter {key}, weight decay {decay_here}"
            try:
                assert_close(v_new, reference.velocity[key], "new v", case, tol=1e-12)
                assert_close(W_new, net.named_params()[key], "new W", case, tol=1e-12)
            except AssertionError as error:
                no_decay = momentum * velocity[key] - lr * grads[key]
                hint = (" You left out the weight decay: the step uses g + weight_decay * W."
                        if decay_here and v_new.shape == no_decay.shape and np.allclose(v_new, no_decay) else "")
                raise AssertionError(f"{error}.{hint}") from None
            velocity[key] = reference.velocity[key].copy()
    return "three steps on conv and fc weights and biases, against minicnn.optim.SGD"


def solution_sgd_step(W, g, v, lr, momentum, weight_decay):
    v = momentum * v - lr * (g + weight_decay * W)          # velocity: decayed gradient step plus momentum
    return W + v, v


def check_clip(clip_filters):
    rng = np.random.default_rng(9)
    W = rng.standard_normal((6, 2, 3, 3)) * 0.1
    W[[1, 4]] *= 4.0                                        # two filters well over the radius, the rest near it
    W[2] *= 0.2                                             # and one far inside, which must not move at all
    radius = 0.1
    net = Sequential([Conv2D(2, 6, 3, name="conv1")]).astype(np.float64)
    net["conv1"].params["W"][...] = W
    clip_filter_rms(net, radius)
    want = net["conv1"].params["W"]
    W_in = W.copy()
    got = as_array(clip_filters(W_in, radius), "your clip_filters's result")
    if not np.array_equal(W_in, W):
        raise AssertionError("clip_filters wrote into W: return a new array")
    if got.shape != W.shape:
        raise AssertionError(f"clipped W has shape {got.shape}, expected {W.shape}")
    rms_before, rms_after = filter_rms(W), filter_rms(got)
    for f in range(len(W)):
        if rms_before[f] <= radius and not np.array_equal(got[f], W[f]):
            raise AssertionError(f"filter {f} has RMS {rms_before[f]:.3f} <= radius {radius} and must stay exactly "
                                 f"as it is; yours changed it (RMS now {rms_after[f]:.3f})")
        if rms_before[f] > radius and not np.isclose(rms_after[f], radius, rtol=1e-9, atol=0):
            raise AssertionError(f"filter {f} has RMS {rms_before[f]:.3f} > radius {radius}: it should come out "
                                 f"with RMS exactly {radius}, yours has {rms_after[f]:.3f} (the RMS is over one "
                                 "filter's channels and taps, W[f])")
    assert_close(got, want, "clipped W", f"6 filters, radius {radius}", tol=1e-12)    # and only rescaled
    return f"{int((rms_before > radius).sum())} of 6 filters rescaled, the others untouched"


def solution_clip(W, radius):
    rms = np.sqrt((W ** 2).mean(axis=(1, 2, 3)))            # one value per filter: all its channels and taps
    scale = np.where(rms > radius, radius / rms, 1.0)
    return W * scale[:, None, None, None]


register("04.sgd_step", "SGD with momentum and weight decay", "sgd_step", check_sgd_step, solution_sgd_step)
register("04.clip", "ZF's feature-scale clipping", "clip_filters", check_clip, solution_clip)
