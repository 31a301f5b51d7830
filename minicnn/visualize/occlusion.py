"""Occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7).

Slide a grey square over the image; at every position record (b) the total activation of one feature map of
a layer (by default the map that responds most to the unoccluded image), (d) the probability of the correct
class and (e) the most probable label. If the classifier really uses the object, covering it must hurt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ._common import (as_batch, check_channel, check_layer, default_layer, forward_keep, iter_batches,
                      layer_output_shape, logits_layer_check, progress, softmax_np)

__all__ = ["Occlusion", "occlusion_squares", "occlusion"]


@dataclass
class Occlusion:
    """Result of ``occlusion`` for one image; grids are (gh, gw), one cell per square position.

    rows, cols: (gh,), (gw,) pixel centres of the square; size, stride: the square's side and step;
    layer, channel: the feature map of panel (b); activation: its total activation (sum over the map);
    probability: probability of ``label`` (panel d); predicted: most probable class (panel e), int;
    base_activation, base_probability, base_predicted: the same for the unoccluded image; label: the class of (d).
    """
    rows: np.ndarray
    cols: np.ndarray
    size: int
    stride: int
    layer: str
    channel: int
    label: int
    activation: np.ndarray
    probability: np.ndarray
    predicted: np.ndarray
    base_activation: float
    base_probability: float
    base_predicted: int


def occlusion_squares(height, width, size, stride):
    """Centres and half-open boxes of the occluding squares of ZF Fig. 7: centres 0, stride, 2*stride, ... on each axis;
    a square spans [centre - size//2, centre - size//2 + size), clipped to the image (so size 0 is empty).
    Returns (rows (gh,), cols (gw,), row boxes (gh, 2), col boxes (gw, 2))."""
    if size < 0 or stride < 1:
        raise ValueError(f"occlusion: size must be >= 0 and stride >= 1, got size {size}, stride {stride}")
    rows, cols = np.arange(0, height, stride), np.arange(0, width, stride)

    def spans(centres, limit):
        lo = np.clip(centres - size // 2, 0, limit)
        return np.stack([lo, np.clip(centres - size // 2 + size, 0, limit)], axis=1)
    return rows, cols, spans(rows, height), spans(cols, width)


def occlusion(net, x, label=None, size=8, stride=2, fill=0.0, layer=None, channel=None, batch_size=64,
              show_progress=True):
    """Zeiler & Fergus Fig. 7 (b), (d), (e) for one image.

    x: (C, H, W) image (mean-subtracted as in training). label: the correct class (default: the predicted one).
    size, stride: the grey square's side and step in pixels. fill: what the square is painted with — a float,
    a (C,) colour, or a (C, H, W) image whose pixels are copied; 0 is grey = the dataset mean for
    mean-subtracted data (the paper's grey square). layer: feature maps for panel (b) (default: the last layer
    with (C, H, W) output, e.g. pool5); channel: default the map with the largest total activation on the
    unoccluded image. All occluded copies go through the network ``batch_size`` at a time.
    Returns an ``Occlusion`` with (gh, gw) grids, gh = ceil(H / stride).
    """
    xb, single = as_batch(net, x)
    if not single and xb.shape[0] != 1:
        raise ValueError(f"occlusion takes one image (C, H, W), got a batch of shape {tuple(x.shape)}")
    num_classes = logits_layer_check(net, xb.shape[1:], "occlusion")
    layer = default_layer(net, xb.shape[1:]) if layer is None else check_layer(net, layer)
    if len(layer_output_shape(net, layer, xb.shape[1:])) != 3:
        raise ValueError(f"occlusion: layer {layer!r} has no feature maps; layers with maps: "
                         f"{', '.join(r.name for r in net.layer_info(xb.shape[1:]) if len(r.output_shape) == 3)}")
    xp = backend.xp(xb)
    C, H, W = xb.shape[1:]
    fill = xp.asarray(fill, dtype=xb.dtype)
    if fill.ndim == 1:
        fill = fill[:, None, None]
    fill = xp.broadcast_to(fill, (C, H, W))

    a0, y0 = forward_keep(net, xb, layer)
    if channel is None:
        channel = int(backend.to_numpy(a0[0].sum(axis=(1, 2)).argmax()))
    check_channel(net, layer, channel, xb.shape[1:])
    p0 = softmax_np(backend.to_numpy(y0).astype(np.float64))[0]
    label = int(p0.argmax()) if label is None else int(label)
    if not 0 <= label < num_classes:
        raise ValueError(f"occlusion: label must lie in 0..{num_classes - 1}, got {label}")

    rows, cols, rbox, cbox = occlusion_squares(H, W, int(size), int(stride))
    grid = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    act = np.zeros(len(grid))
    prob = np.zeros(len(grid))
    pred = np.zeros(len(grid), np.int64)
    for start, stop in progress(list(iter_batches(len(grid), batch_size)), "occlusion", enabled=show_progress):
        batch = xp.repeat(xb, stop - start, axis=0)
        for n, (i, j) in enumerate(grid[start:stop]):
            (r0, r1), (c0, c1) = rbox[i], cbox[j]
            batch[n, :, r0:r1, c0:c1] = fill[:, r0:r1, c0:c1]
        a, y = forward_keep(net, batch, layer)
        act[start:stop] = backend.to_numpy(a[:, channel].sum(axis=(1, 2)))
        p = softmax_np(backend.to_numpy(y).astype(np.float64))
        prob[start:stop] = p[:, label]
        pred[start:stop] = p.argmax(axis=1)
    shape = (len(rows), len(cols))
    return Occlusion(rows, cols, int(size), int(stride), layer, int(channel), label, act.reshape(shape),
                     prob.reshape(shape), pred.reshape(shape), float(backend.to_numpy(a0[0, channel].sum())),
                     float(p0[label]), int(p0.argmax()))
