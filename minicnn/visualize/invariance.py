"""Invariance to translation, scale and rotation (Zeiler & Fergus 2014, Fig. 5).

Transform a few images over a range; at a low and a high layer, the Euclidean distance between the feature
vector of the original and of the transformed image; and the probability of the true class. ZF found small
transformations change layer 1 a lot and layer 7 much less, and the output invariant to translation and
scale but not to rotation (except for rotationally symmetric objects).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..layers import ReLU
from ._common import as_batch, check_layer, forward_keep, logits_layer_check, softmax_np
from .plots import _show, figure, image_to_display

__all__ = ["transform", "Invariance", "invariance", "default_invariance_layers", "plot_invariance", "ZF_RANGES"]

# ZF Fig. 5 ranges, in the units of ``transform`` (pixels are scaled to the image size by ``invariance``).
ZF_RANGES = {"translate": np.linspace(-0.25, 0.25, 11), "scale": np.linspace(0.6, 1.4, 9),
             "rotate": np.linspace(0, 360, 13)}


def transform(image, kind, amount, fill=0.0):
    """Apply one transformation to a (C, H, W) NumPy image, filling uncovered pixels with ``fill``.

    kind "translate": vertical shift by ``amount`` pixels (down is positive); "scale": zoom by ``amount``
    about the centre; "rotate": rotate by ``amount`` degrees (counter-clockwise) about the centre. Bilinear.
    """
    from scipy import ndimage
    image = np.asarray(image, dtype=np.float64)
    if not np.isfinite(float(amount)):
        raise ValueError(f"transform: the {kind} amount must be a finite number, got {amount!r}")
    if kind == "translate":
        return ndimage.shift(image, (0, float(amount), 0), order=1, mode="constant", cval=fill)
    if kind == "rotate":
        return ndimage.rotate(image, float(amount), axes=(2, 1), reshape=False, order=1, mode="constant", cval=fill)
    if kind == "scale":
        s = float(amount)
        if s <= 0:
            raise ValueError(f"transform: scale factor must be > 0, got {s}")
        C, H, W = image.shape
        centre = np.array([(H - 1) / 2, (W - 1) / 2])
        # output pixel o samples input pixel centre + (o - centre) / s
        return np.stack([ndimage.affine_transform(ch, np.eye(2) / s, offset=centre - centre / s, order=1,
                                                  mode="constant", cval=fill) for ch in image])
    raise ValueError(f"transform: kind must be 'translate', 'scale' or 'rotate', got {kind!r}")


@dataclass
class Invariance:
    """Result of ``invariance`` for one kind of transformation; N images, T amounts.

    kind: str; amounts: (T,); distances: {layer: (N, T)} Euclidean distances between the feature vectors of the
    original and the transformed image; probability: (N, T) of the true class; labels: (N,);
    examples: (N, T, C, H, W) the transformed images (for the figure).
    """
    kind: str
    amounts: np.ndarray
    distances: dict = field(default_factory=dict)
    probability: np.ndarray = None
    labels: np.ndarray = None
    examples: np.ndarray = None


def default_invariance_layers(net, input_shape):
    """(low, high): the first and the last ReLU (ZF used layers 1 and 7)."""
    relus = [l.name for l in net.layers if isinstance(l, ReLU)]
    if len(relus) < 2:
        raise ValueError(f"invariance needs two ReLU layers to default to (low, high); give layers=(...). "
                         f"{net.name} has: {', '.join(net.names)}")
    return relus[0], relus[-1]


def invariance(net, images, labels, kind, amounts=None, layers=None, fill=0.0):
    """ZF Fig. 5 for one transformation ``kind`` ("translate" | "scale" | "rotate").

    images: (N, C, H, W) (mean-subtracted; ``fill`` 0 = the dataset mean); labels: (N,) true classes;
    amounts: (T,) values for ``transform`` (pixels, factors, degrees; default: ZF's ranges, the
    translation one being +-25% of the height); layers: names whose feature vectors are compared (default: the first and
    last ReLU). Returns an ``Invariance``.
    """
    xb, _ = as_batch(net, images, "images")
    logits_layer_check(net, xb.shape[1:], "invariance")
    layers = default_invariance_layers(net, xb.shape[1:]) if layers is None else [check_layer(net, l) for l in layers]
    if kind not in ZF_RANGES:
        raise ValueError(f"invariance: kind must be one of {', '.join(ZF_RANGES)}, got {kind!r}")
    if amounts is None:
        amounts = ZF_RANGES[kind] * (images.shape[2] if kind == "translate" else 1)   # fraction of height -> px
    amounts = np.asarray(amounts, dtype=np.float64)
    pixels = amounts
    images = np.asarray(backend.to_numpy(images))
    labels = np.asarray(labels)
    N, T = images.shape[0], len(amounts)
    if N == 0 or amounts.ndim != 1 or T == 0:
        raise ValueError(f"invariance: needs at least one image and one amount, got {N} images and amounts of "
                         f"shape {amounts.shape}")
    num_classes = logits_layer_check(net, xb.shape[1:], "invariance")
    if labels.shape != (N,) or labels.dtype.kind not in "iu":
        raise ValueError(f"invariance: labels must be {N} integers (one per image), got {labels.dtype} "
                         f"shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"invariance: labels must lie in 0..{num_classes - 1}, got {labels.tolist()}")
    labels = labels.astype(np.int64)
    examples = np.stack([np.stack([transform(img, kind, a, fill) for a in pixels]) for img in images])
    flat = examples.reshape(N * T, *images.shape[1:])

    def features(x):
        feats = {}
        xx, _ = as_batch(net, x)
        for layer in layers:
            a, _ = forward_keep(net, xx, layer)
            feats[layer] = backend.to_numpy(a).reshape(len(x), -1).astype(np.float64)
        _, y = forward_keep(net, xx, layers[-1])
        return feats, softmax_np(backend.to_numpy(y).astype(np.float64))

    f0, _ = features(images)
    ft, pt = features(flat)
    distances = {layer: np.linalg.norm(ft[layer].reshape(N, T, -1) - f0[layer][:, None], axis=2) for layer in layers}
    prob = pt[np.arange(N * T), np.repeat(labels, T)].reshape(N, T)
    return Invariance(kind, amounts, distances, prob, labels, examples.astype(np.float32))


def plot_invariance(results, mean=None, class_names=None):
    """ZF Fig. 5: one row per transformation; columns: example transformed images, the distance at the low
    and the high layer against the amount (one line per image), the probability of the true class."""
    R = len(results)
    fig = figure(14, 2.8 * R + 0.4)
    axes = fig.subplots(R, 4, squeeze=False, gridspec_kw={"width_ratios": [1.4, 1, 1, 1]})
    units = {"translate": "vertical shift (pixels)", "scale": "scale factor", "rotate": "rotation (degrees)"}
    for r, res in enumerate(results):
        N, T = res.probability.shape
        picks = np.linspace(0, T - 1, min(T, 5)).round().astype(int)
        strip = [[image_to_display(res.examples[n, t], mean) for t in picks] for n in range(min(N, 4))]
        rows = [np.concatenate([np.pad(t, [(1, 1), (1, 1)] + [(0, 0)] * (t.ndim - 2), constant_values=1)
                                for t in row], axis=1) for row in strip]
        shown = ", ".join(f"{res.amounts[t]:g}" for t in picks)
        _show(axes[r, 0], np.concatenate(rows, axis=0), f"{res.kind}: {shown}")
        for c, (layer, d) in enumerate(res.distances.items(), start=1):
            if c > 2:
                break
            for n in range(N):
                axes[r, c].plot(res.amounts, d[n], "o-", ms=2, lw=1)
            axes[r, c].set_title(f"distance at {layer}", fontsize=8)
        for n in range(N):
            name = class_names[res.labels[n]] if class_names is not None else str(res.labels[n])
            axes[r, 3].plot(res.amounts, res.probability[n], "o-", ms=2, lw=1, label=name)
        axes[r, 3].set_ylim(-0.02, 1.02)
        axes[r, 3].set_title("p(true class)", fontsize=8)
        axes[r, 3].legend(fontsize=6)
        for c in (1, 2, 3):
            axes[r, c].set_xlabel(units[res.kind], fontsize=7)
            axes[r, c].tick_params(labelsize=7)
    fig.suptitle("Invariance (ZF Fig. 5): Euclidean distance between feature vectors of original and "
                 "transformed image, low and high layer; probability of the true class", fontsize=9)
    fig.tight_layout()
    return fig
