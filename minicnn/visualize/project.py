"""Projections to pixel space: the Zeiler-Fergus deconvnet, guided backpropagation, saliency.

All three are ``net.forward`` followed by ``net.backward(dy, rule=...)`` (ARCHITECTURE.md §5):

    rule         ReLU on the way down passes            method
    "deconvnet"  where the signal coming down is > 0     Zeiler & Fergus 2014, Fig. 1 (right) / Fig. 2
    "guided"     where that signal > 0 AND input > 0     Springenberg et al. 2015
    "backprop"   where the forward input > 0             the plain gradient; Simonyan et al. 2014 saliency

Max pooling is undone by its switches, convolutions by their transposed filters (conv backward to the input,
no bias) — these are simply the layers' own backward passes.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..ops.activation import check_rule
from ._common import as_batch, check_channel, check_layer, logits_layer_check, passthrough_for

__all__ = ["project", "project_units", "strongest_position", "input_gradient", "saliency", "guided_backprop"]


def _check_scale(scale):
    if scale not in ("activation", "unit"):
        raise ValueError(f"scale must be 'activation' (keep the activation's value, as Zeiler & Fergus) or "
                         f"'unit' (a one at the kept unit: the gradient), got {scale!r}")


def strongest_position(fmap):
    """(N, h, w) feature maps -> (N, 2) int64 (row, col) of each map's maximum (first one on ties)."""
    xp = backend.xp(fmap)
    N, h, w = fmap.shape
    if N == 0:                                     # an empty batch has no positions (argmax of nothing fails)
        return xp.zeros((0, 2), dtype=xp.int64)
    flat = xp.argmax(fmap.reshape(N, h * w), axis=1)
    return xp.stack([flat // w, flat % w], axis=1)


def project_units(net, x, layer, channels, positions=None, rule="deconvnet", through_lrn=None, whole_map=False,
                  scale="activation"):
    """The batched core of ``project``: one kept unit per image, each image with its own channel.

    x: (N, C, H, W) already on the net's device; channels: (N,) ints; positions: (N, 2) (row, col) or None
    (each map's strongest unit). Returns (projections (N, C, H, W) on the device, kept values (N,),
    positions (N, 2) or None for fc layers / whole maps).
    """
    check_rule(rule, "project")
    xp = backend.xp(x)
    a = net.forward(x, until=layer)
    N = a.shape[0]
    rows = xp.arange(N)
    channels = xp.asarray(channels, dtype=xp.int64)
    dy = xp.zeros_like(a)
    pos = None
    if a.ndim == 2:
        if positions is not None:
            raise ValueError(f"layer {layer!r} is fully connected (output {tuple(a.shape[1:])}): "
                             f"it has no positions; pass position=None")
        kept = a[rows, channels]
        dy[rows, channels] = kept if scale == "activation" else 1
    elif whole_map:
        kept = a[rows, channels].reshape(N, -1).sum(axis=1)
        dy[rows, channels] = a[rows, channels] if scale == "activation" else 1
    else:
        if positions is None:
            pos = strongest_position(a[rows, channels])
        else:
            pos = xp.asarray(positions, dtype=xp.int64).reshape(N, 2)
            h, w = a.shape[2:]
            if bool(((pos < 0) | (pos >= xp.asarray([h, w]))).any()):
                raise ValueError(f"position must lie in the {h}x{w} map of layer {layer!r} (rows 0..{h - 1}, "
                                 f"cols 0..{w - 1}); got {backend.to_numpy(pos).tolist()}")
        kept = a[rows, channels, pos[:, 0], pos[:, 1]]
        dy[rows, channels, pos[:, 0], pos[:, 1]] = kept if scale == "activation" else 1
    dx = net.backward(dy, rule=rule, param_grads=False, start=layer, passthrough=passthrough_for(rule, through_lrn))
    return dx, kept, pos


def project(net, x, layer, channel, position=None, rule="deconvnet", through_lrn=None, whole_map=False,
            scale="activation"):
    """Project one activation (or one feature map) of ``layer`` down to pixel space.

    Zeiler & Fergus 2014, Sec. 2.1 and Fig. 1: forward the image, keep one activation at ``layer`` (the
    strongest of feature map ``channel`` when ``position`` is None; the whole map with ``whole_map=True``),
    set every other activation of the layer to zero and run the network's backward with ReLU ``rule``.

    x: (C, H, W) or (N, C, H, W); channel: int or (N,) ints; position: (row, col) or (N, 2) in the layer's map,
    or None. layer: a name (``net.names``); for a fully connected layer ``channel`` is the unit.
    rule: "deconvnet" | "guided" | "backprop". through_lrn: run LRN's backward (True) or pass it as the identity
    (False); None = identity for the deconvnet only (the paper), the true backward for the gradient rules, so
    that ``rule="backprop"`` is exactly the gradient. Dropout is always the identity (evaluation mode).
    scale: "activation" sends the kept activation's value down (the paper); "unit" sends 1, so that with
    ``rule="backprop"`` the result is exactly the input gradient of the kept unit.
    Returns a NumPy array shaped like ``x``.
    """
    layer = check_layer(net, layer)
    _check_scale(scale)
    check_rule(rule, "project")
    xb, single = as_batch(net, x)
    check_channel(net, layer, channel, xb.shape[1:])
    N = xb.shape[0]
    xp = backend.xp(xb)
    channels = xp.broadcast_to(xp.asarray(channel, dtype=xp.int64), (N,))
    positions = None
    if position is not None:
        positions = np.broadcast_to(np.asarray(backend.to_numpy(position), dtype=np.int64), (N, 2))
    dx, _, _ = project_units(net, xb, layer, channels, positions, rule, through_lrn, whole_map, scale)
    dx = backend.to_numpy(dx)
    return dx[0] if single else dx


def input_gradient(net, x, target=None, rule="backprop", through_lrn=None):
    """Gradient of the pre-softmax class score with respect to the input, with any ReLU rule.

    x: (C, H, W) or (N, C, H, W); target: class int, (N,) ints, or None (the predicted class).
    rule "backprop": the plain gradient (Simonyan et al. 2014); "guided": guided backpropagation
    (Springenberg et al. 2015); "deconvnet": the ZF deconvnet started from the class score.
    Returns (gradient shaped like x (NumPy), targets (N,) NumPy).
    """
    check_rule(rule, "input_gradient")
    xb, single = as_batch(net, x)
    num_classes = logits_layer_check(net, xb.shape[1:], "input_gradient")
    xp = backend.xp(xb)
    scores = net.forward(xb)
    N = xb.shape[0]
    if target is None:
        targets = xp.argmax(scores, axis=1)
    else:
        targets = xp.broadcast_to(xp.asarray(backend.to_numpy(target), dtype=xp.int64), (N,))
        bad = backend.to_numpy(targets)
        bad = bad[(bad < 0) | (bad >= num_classes)]
        if bad.size:
            raise ValueError(f"target class must lie in 0..{num_classes - 1} ({net.name} has {num_classes} "
                             f"classes); got {bad.tolist()}")
    dy = xp.zeros_like(scores)
    dy[xp.arange(N), targets] = 1
    dx = net.backward(dy, rule=rule, param_grads=False, passthrough=passthrough_for(rule, through_lrn))
    dx, targets = backend.to_numpy(dx), backend.to_numpy(targets)
    return (dx[0], targets[0]) if single else (dx, targets)


def saliency(net, x, target=None):
    """Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, Sec. 3.1, Fig. 2).

    max over colour channels of |d score_target / d x|, where the score is pre-softmax.
    x: (C, H, W) or (N, C, H, W); target: int, (N,) ints or None (predicted class).
    Returns (H, W) or (N, H, W) NumPy, non-negative.
    """
    grad, _ = input_gradient(net, x, target, rule="backprop")
    return np.abs(grad).max(axis=-3)


def guided_backprop(net, x, target=None):
    """Guided backpropagation of the class score (Springenberg et al. 2015, Fig. 1 / 4).

    x: (C, H, W) or (N, C, H, W) -> signed map shaped like x (NumPy).
    """
    return input_gradient(net, x, target, rule="guided")[0]
