"""Top-k activations per feature map with receptive-field crops (Zeiler & Fergus 2014, Fig. 2).

For each chosen feature map of a layer: the k images of a dataset that excite it most (at most one unit per
image: the map's maximum), each unit projected to pixels by the deconvnet and cropped to the unit's receptive
field, beside the image patch under that receptive field.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ._common import as_batch, check_channel, check_layer, iter_batches, layer_output_shape, progress
from .project import project_units, strongest_position

__all__ = ["TopK", "receptive_field", "crop", "top_activations", "top_k"]


@dataclass
class TopK:
    """Result of ``top_k``; M chosen channels, k images each; crops are (C, rh, rw) with rh x rw the RF size.

    layer: str; channels: (M,) int; values: (M, k) activations (NaN where the dataset had fewer than k images);
    indices: (M, k) image indices (-1 where missing); positions: (M, k, 2) (row, col) in the layer's map;
    boxes: (M, k, 4) receptive fields (row0, row1, col0, col1), half-open, in image pixels, before clipping;
    projections: (M, k, C, rh, rw) deconvnet projections, zero outside the image;
    patches: (M, k, C, rh, rw) image patches (mean added back when given), NaN outside the image.
    """
    layer: str
    channels: np.ndarray
    values: np.ndarray
    indices: np.ndarray
    positions: np.ndarray
    boxes: np.ndarray
    projections: np.ndarray
    patches: np.ndarray
    rule: str = "deconvnet"


def receptive_field(net, input_shape, layer, position=None):
    """Receptive field of unit ``position`` = (row, col) of ``layer`` for a (C, H, W) input (the crops of ZF Fig. 2).

    Computed from the layer geometry (``net.layer_info``: size, jump and the centre of unit (0, 0)).
    Returns (row0, row1, col0, col1), half-open, in input pixels; may reach outside the image (padding).
    A fully connected layer (or position None on one) sees the whole image.
    """
    layer = check_layer(net, layer)
    info = net.layer_info(tuple(input_shape))[net.index(layer)]
    (rh, rw), (jh, jw), (ch, cw) = info.rf, info.jump, info.start
    row, col = (0, 0) if position is None else (int(position[0]), int(position[1]))
    if len(info.output_shape) == 3:
        h, w = info.output_shape[1:]
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"position {(row, col)} lies outside the {h}x{w} map of layer {layer!r}")
    # the centre of the unit, then half the field either side; +0.5 then floor rounds half-way cases down-right
    r0 = int(np.floor(ch + row * jh - (rh - 1) / 2 + 0.5))
    c0 = int(np.floor(cw + col * jw - (rw - 1) / 2 + 0.5))
    return r0, r0 + rh, c0, c0 + rw


def crop(image, box, fill=0.0):
    """Cut ``box`` = (row0, row1, col0, col1) out of a (C, H, W) image, padding with ``fill`` outside it (ZF Fig. 2).

    Returns (C, row1 - row0, col1 - col0), always that size, whatever part of the box lies in the image.
    """
    C, H, W = image.shape
    r0, r1, c0, c1 = (int(v) for v in box)
    out = np.full((C, r1 - r0, c1 - c0), fill, dtype=np.result_type(image.dtype, np.float32))
    rr0, rr1, cc0, cc1 = max(r0, 0), min(r1, H), max(c0, 0), min(c1, W)
    if rr0 < rr1 and cc0 < cc1:
        out[:, rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = image[:, rr0:rr1, cc0:cc1]
    return out


def top_activations(net, x, layer, channels=None, k=9, batch_size=128, show_progress=True):
    """The k strongest activations of each chosen feature map over a dataset, at most one per image (ZF Fig. 2).

    x: (N, C, H, W) NumPy (moved to the net's device batch by batch); channels: ints or None (all).
    Each image contributes the maximum of each map. Returns (channels (M,), values (M, k), indices (M, k),
    positions (M, k, 2)); slots beyond N are NaN / -1.
    """
    layer = check_layer(net, layer)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top-k: k must be an integer >= 1, got {k!r}")
    as_batch(net, x[:1], "dataset images")
    shape = layer_output_shape(net, layer, x.shape[1:])
    channels = np.arange(shape[0]) if channels is None else np.atleast_1d(np.asarray(channels, dtype=np.int64))
    check_channel(net, layer, channels, x.shape[1:])
    M = len(channels)
    best_v = np.full((M, 0), -np.inf)
    best_i = np.zeros((M, 0), np.int64)
    best_p = np.zeros((M, 0, 2), np.int64)
    steps = list(iter_batches(x.shape[0], batch_size))
    for start, stop in progress(steps, f"top-{k} {layer}", enabled=show_progress):
        xb, _ = as_batch(net, x[start:stop])
        a = net.forward(xb, until=layer)[:, channels]          # (B, M, h, w) or (B, M)
        B = a.shape[0]
        if a.ndim == 2:
            v, p = a, backend.xp(a).zeros((B, M, 2), dtype=np.int64)
        else:
            p = strongest_position(a.reshape(B * M, *a.shape[2:])).reshape(B, M, 2)
            v = a.reshape(B, M, -1).max(axis=2)
        v, p = backend.to_numpy(v).T.astype(np.float64), backend.to_numpy(p).transpose(1, 0, 2)
        cand_v = np.concatenate([best_v, v], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, stop), (M, B))], axis=1)
        cand_p = np.concatenate([best_p, p], axis=1)
        order = np.argsort(-cand_v, axis=1, kind="stable")[:, :k]
        best_v = np.take_along_axis(cand_v, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
        best_p = np.take_along_axis(cand_p, order[..., None], 1)
    missing = k - best_v.shape[1]
    if missing > 0:
        best_v = np.pad(best_v, ((0, 0), (0, missing)), constant_values=np.nan)
        best_i = np.pad(best_i, ((0, 0), (0, missing)), constant_values=-1)
        best_p = np.pad(best_p, ((0, 0), (0, missing), (0, 0)))
    return channels, best_v, best_i, best_p


def top_k(net, x, layer, channels=None, k=9, rule="deconvnet", mean=None, batch_size=128, show_progress=True,
          select=None):
    """Zeiler & Fergus Fig. 2: top-k activations per feature map, projected and cropped to receptive fields.

    x: (N, C, H, W) dataset (mean-subtracted, as the net was trained); layer: name; channels: ints or None (all
    maps); select: keep only the ``select`` chosen maps with the largest mean top-k activation (skips dead
    maps in a figure); rule: projection rule ("deconvnet", or "guided"/"backprop" to compare); mean: (C, H, W) added
    back to the patches for display. Batched forward passes with a progress bar; the k x M projections are one
    batched forward + backward per ``batch_size`` units. Returns a ``TopK``.
    """
    layer = check_layer(net, layer)
    channels, values, indices, positions = top_activations(net, x, layer, channels, k, batch_size, show_progress)
    if select is not None and select < len(channels):
        keep = np.sort(np.argsort(-np.nan_to_num(values, nan=-np.inf).mean(axis=1), kind="stable")[:select])
        channels, values, indices, positions = channels[keep], values[keep], indices[keep], positions[keep]
    M = len(channels)
    fc = len(layer_output_shape(net, layer, x.shape[1:])) == 1
    boxes = np.zeros((M, k, 4), np.int64)
    for m in range(M):
        for j in range(k):
            boxes[m, j] = receptive_field(net, x.shape[1:], layer, None if fc else positions[m, j])
    rh, rw = int(boxes[0, 0, 1] - boxes[0, 0, 0]), int(boxes[0, 0, 3] - boxes[0, 0, 2])
    C = x.shape[1]
    projections = np.zeros((M, k, C, rh, rw), np.float32)
    patches = np.full((M, k, C, rh, rw), np.nan, np.float32)
    flat = [(m, j) for m in range(M) for j in range(k) if indices[m, j] >= 0]
    for start, stop in iter_batches(len(flat), batch_size):
        chunk = flat[start:stop]
        imgs = x[[int(indices[m, j]) for m, j in chunk]]
        xb, _ = as_batch(net, imgs)
        xp = backend.xp(xb)
        chans = xp.asarray([int(channels[m]) for m, _ in chunk])
        pos = None if fc else np.stack([positions[m, j] for m, j in chunk])
        dx, _, _ = project_units(net, xb, layer, chans, pos, rule)
        dx = backend.to_numpy(dx)
        for n, (m, j) in enumerate(chunk):
            projections[m, j] = crop(dx[n], boxes[m, j], 0.0)
            image = imgs[n] if mean is None else imgs[n] + mean
            patches[m, j] = crop(image, boxes[m, j], np.nan)
    return TopK(layer, channels, values, indices, positions, boxes, projections, patches, rule)
