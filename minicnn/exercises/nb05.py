"""Exercises of notebook 05 (the deconvnet): receptive fields layer by layer, and one feature map projected to the
pixels with the deconvnet rule, op by op."""
from __future__ import annotations

import numpy as np

from .. import LRN, Conv2D, MaxPool2D, ReLU, Sequential
from ..gradcheck import distinct_values, relative_error
from . import register
from ._compare import as_array, assert_close

# (name, [(kernel, stride, pad), ...], input side): every layer that has a window, in order
RF_STACKS = [("two 3x3 convolutions", [(3, 1, 1), (3, 1, 1)], 16),
             ("AlexNet conv1..pool5", [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1),
                                       (3, 2, 0)], 227),
             ("ZF conv1..pool5", [(7, 2, 1), (3, 2, 0), (5, 2, 0), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1),
                                  (3, 2, 0)], 224)]


def _stack_info(layers, side):
    net = Sequential([Conv2D(1, 1, k, stride=s, pad=p, name=f"layer{i + 1}") for i, (k, s, p) in enumerate(layers)])
    return net.layer_info((1, side, side))


def check_receptive_field(receptive_field):
    for name, layers, side in RF_STACKS:
        got = receptive_field([(k, s) for k, s, _ in layers])
        try:
            got = [tuple(int(v) for v in row) for row in got]
        except (TypeError, ValueError):
            raise AssertionError(f"{name}: expected a list of (rf, jump) pairs, one per layer, got {got!r}") from None
        if len(got) != len(layers):
            raise AssertionError(f"{name}: {len(layers)} layers, but your list has {len(got)} (rf, jump) pairs")
        for i, (row, info) in enumerate(zip(got, _stack_info(layers, side))):
            k, s, _ = layers[i]
            want = (info.rf[0], info.jump[0])
            if row != want:
                which = "receptive field" if row[0] != want[0] else "jump"
                value, right = (row[0], want[0]) if row[0] != want[0] else (row[1], want[1])
                raise AssertionError(f"{name}, layer {i + 1} (kernel {k}, stride {s}): your {which} {value} is too "
                                     f"{'large' if value > right else 'small'} (the layers below it are right). "
                                     "r_out = r_in + (k - 1) * j_in and j_out = j_in * s, starting from r = j = 1")
    return "AlexNet's and ZF's stacks, layer by layer, as Sequential.summary computes them"


def solution_receptive_field(layers):
    rf, jump, rows = 1, 1, []
    for k, s in layers:
        rf += (k - 1) * jump             # k taps, neighbouring taps jump input pixels apart
        jump *= s
        rows.append((rf, jump))
    return rows


def _projection_net():
    rng = np.random.default_rng(10)
    net = Sequential([Conv2D(2, 4, 5, pad=2, rng=rng, name="conv1"), ReLU(name="relu1"),
                      MaxPool2D(3, 2, name="pool1"), LRN(n=3, k=1.0, alpha=0.5, name="lrn1"),
                      Conv2D(4, 3, 3, pad=1, rng=rng, name="conv2"), ReLU(name="relu2")]).astype(np.float64)
    net["conv1"].params["b"][...] = -1.0 + rng.standard_normal(4) * 0.1   # negative: some pool windows are all
    net["conv2"].params["b"][...] = rng.standard_normal(3) * 0.1          # zero, where deconvnet and guided differ
    return net


def check_project_map(project_map):
    net = _projection_net()
    rng = np.random.default_rng(11)
    image = distinct_values((1, 2, 12, 12), rng) / 10    # values in about [-0.7, 0.7]
    for f in range(3):
        act = net.forward(image)
        if not act[0, f].any():
            continue                     # a map that is all zero projects to nothing: nothing to check
        dy = np.zeros_like(act)
        dy[0, f] = act[0, f]
        want = net.backward(dy, rule="deconvnet", param_grads=False, passthrough=(LRN,))
        got = as_array(project_map(net, image.copy(), f), "your project_map's result")
        if got.shape == want.shape and relative_error(got, want) > 1e-9:
            for passthrough, rule, says in (((), "deconvnet", "you ran LRN's own backward; the deconvnet passes "
                                             "the signal through LRN unchanged (as the identity)"),
                                            ((LRN,), "backprop", "you used the backprop rule in the ReLU (x > 0); "
                                             "the deconvnet rectifies the signal coming down (dy > 0)"),
                                            ((LRN,), "guided", "you used the guided rule; the deconvnet gates on "
                                             "dy > 0 only")):
                net.forward(image)
                other = net.backward(dy, rule=rule, param_grads=False, passthrough=passthrough)
                if relative_error(got, other) < 1e-9:
                    raise AssertionError(f"map {f}: {says}")
        assert_close(got, want, "projection", f"feature map {f} of relu2", tol=1e-9)
    return "every non-zero map of relu2, against net.backward(rule='deconvnet') with LRN as the identity"


def solution_project_map(net, image, f):
    from .. import ops
    act = net.forward(image)
    d = np.zeros_like(act)
    d[0, f] = act[0, f]                                                   # keep map f, zero the others
    d = ops.relu_backward(d, net["relu2"].cache, "deconvnet")             # rectify
    d, _, _ = ops.conv2d_backward(d, net["conv2"].cache, param_grads=False)   # transposed filters
    # lrn1: the identity in the deconvnet
    d = ops.unpool2d(d, net["pool1"].cache)                               # unpool with the switches
    d = ops.relu_backward(d, net["relu1"].cache, "deconvnet")             # rectify the signal coming down
    d, _, _ = ops.conv2d_backward(d, net["conv1"].cache, param_grads=False)   # transposed filters
    return d


register("05.receptive_field", "the receptive field of every layer", "receptive_field", check_receptive_field,
         solution_receptive_field)
register("05.project_map", "project one feature map with the deconvnet rule, by hand", "project_map",
         check_project_map, solution_project_map)
