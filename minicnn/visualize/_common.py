"""Shared checks and small helpers for ``minicnn.visualize``.

Everything here is bookkeeping: which layer, which channel, what shape, which device. No layer's backward is
computed here (or anywhere in ``visualize``): gradients always come from ``net.backward(..., rule=...)``.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from .. import backend
from ..layers import LRN, Conv2D, Dropout, Linear, MaxPool2D, ReLU

__all__ = ["net_xp", "as_batch", "check_layer", "check_channel", "layer_output_shape", "passthrough_for",
           "layers_of_type", "require_layer_type", "iter_batches", "progress", "logits_layer_check"]


def net_xp(net):
    """numpy or cupy: the module that owns the network's parameters (numpy for a parameter-free net)."""
    for layer in net.layers:
        for value in layer.params.values():
            return backend.xp(value), value.dtype
    return np, np.dtype(np.float32)


def as_batch(net, x, what="image"):
    """Check ``x`` against the network and return (batch on the net's device and dtype, was_single).

    x: (C, H, W) or (N, C, H, W). A shape the network cannot take raises ValueError naming the shape it
    expected where the first layer says so (a Conv2D knows its channels, a Linear its features).
    """
    xp, dtype = net_xp(net)
    ndim = getattr(x, "ndim", None)
    if ndim not in (3, 4):
        raise ValueError(f"{what} must be (C, H, W) or (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}"
                         f" ({expected_input(net)})")
    single = ndim == 3
    try:
        net.layer_info(tuple(x.shape[-3:]))
    except ValueError as exc:
        raise ValueError(f"{what} of shape {tuple(x.shape)} does not fit {net.name}: {exc} "
                         f"({expected_input(net)})") from None
    x = xp.asarray(x, dtype=dtype)
    return (x[None] if single else x), single


def expected_input(net):
    """A sentence saying what input the network expects, as far as its first layer tells."""
    first = net.layers[0]
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            return f"expected {layer.config['in_channels']} channels (C, H, W)"
        if isinstance(layer, Linear):
            break
    return f"first layer {first.label}"


def check_layer(net, layer):
    """Resolve a layer name or index to its name; an unknown one raises KeyError listing every layer."""
    if isinstance(layer, (int, np.integer)):
        return net.layers[net.index(int(layer))].name
    if layer not in net.names:
        raise KeyError(f"{net.name}: no layer named {layer!r}; layers are: {', '.join(net.names)}")
    return layer


def layer_output_shape(net, layer, input_shape):
    """Per-sample output shape of ``layer`` for a (C, H, W) input."""
    return net.layer_info(tuple(input_shape))[net.index(layer)].output_shape


def check_channel(net, layer, channels, input_shape):
    """Every channel index must exist in the layer's output; raises ValueError giving the valid range."""
    shape = layer_output_shape(net, layer, input_shape)
    count = shape[0]
    ch = np.atleast_1d(np.asarray(backend.to_numpy(channels)))
    if ch.dtype.kind not in "iu":
        raise TypeError(f"channel must be an integer or integer array, got {channels!r}")
    bad = ch[(ch < 0) | (ch >= count)]
    if bad.size:
        kind = "units" if len(shape) == 1 else "channels (feature maps)"
        raise ValueError(f"layer {layer!r} of {net.name} has {count} {kind}, numbered 0..{count - 1}; "
                         f"got {bad.tolist()}")
    return shape


def layers_of_type(net, kinds):
    return [layer.name for layer in net.layers if isinstance(layer, kinds)]


def require_layer_type(net, kinds, method, below=None):
    """Raise ValueError when ``net`` (up to layer ``below``) has no layer of the given types."""
    stop = net.index(below) + 1 if below is not None else len(net.layers)
    if not any(isinstance(layer, kinds) for layer in net.layers[:stop]):
        wanted = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        where = f" at or below {below!r}" if below is not None else ""
        have = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in net.layers[:stop])
        raise ValueError(f"{method} needs a {wanted} layer{where}; {net.name} has: {have}")


def passthrough_for(rule, through_lrn):
    """Layer types the backward treats as identity. ``through_lrn=None``: LRN is skipped only by the deconvnet."""
    if through_lrn is None:
        through_lrn = rule != "deconvnet"
    return (Dropout,) if through_lrn else (LRN, Dropout)


def logits_layer_check(net, input_shape, method):
    """The last layer must produce (N, classes) scores; returns the number of classes."""
    out = net.layer_info(tuple(input_shape))[-1].output_shape
    if len(out) != 1:
        raise ValueError(f"{method} needs a network that ends in class scores (N, classes); "
                         f"{net.name} ends in {net.names[-1]!r} with per-sample output {out}")
    return out[0]


def iter_batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield start, min(n, start + batch_size)


def progress(iterable, desc, total=None, enabled=True):
    """tqdm progress bar (to stderr) or the bare iterable."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False)


def spatial_layers(net, input_shape):
    """Names of layers whose per-sample output is a (C, H, W) feature-map stack."""
    return [r.name for r in net.layer_info(tuple(input_shape)) if len(r.output_shape) == 3]


def default_layer(net, input_shape, kinds=(ReLU, MaxPool2D)):
    """The last spatial layer (the top feature maps, e.g. pool5): the default for occlusion and the like."""
    names = spatial_layers(net, input_shape)
    if not names:
        raise ValueError(f"{net.name} has no layer with (C, H, W) feature maps; layers are: {', '.join(net.names)}")
    return names[-1]


def forward_keep(net, x, layer):
    """One forward pass returning (output of ``layer``, final output): the layers in order, as ``net.forward``."""
    a = net.forward(x, until=layer)
    y = a
    for lay in net.layers[net.index(layer) + 1:]:
        y = lay.forward(y, train=False)
    return a, y


def softmax_np(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def replace_directory(new, target):
    """Put the finished directory ``new`` where ``target`` is, replacing any old ``target`` with two renames, so that
    a reader sees the old directory or the new one, never a half-written mix (``new`` must be on the same file
    system: make it beside ``target``)."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target) or ".")
        os.rename(target, os.path.join(old, "g"))
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
