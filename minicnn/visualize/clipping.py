"""The effect of feature-scale clipping on first-layer filters (Zeiler & Fergus 2014, Fig. 6 (a) vs (c)).

ZF renormalise every convolutional filter whose RMS exceeds 0.1 back to 0.1 (``minicnn.optim`` does this with
``clip_radius``). Without it, a few first-layer filters grow until they dominate. ``train_clipping_pair``
trains two copies of one network from the same initial weights, with and without clipping, on the same
batches; ``plot_clipping`` shows their first-layer filters side by side with each filter's RMS.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from ..layers import Conv2D
from ..optim import filter_rms
from .plots import _show, figure, mosaic

__all__ = ["train_clipping_pair", "plot_clipping", "first_conv"]


def first_conv(net):
    """Name of the first Conv2D layer; ValueError listing the layers when there is none."""
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            return layer.name
    raise ValueError(f"feature-scale clipping concerns conv filters; {net.name} has no Conv2D layer "
                     f"(layers: {', '.join(net.names)})")


def train_clipping_pair(net, splits, epochs=1, lr=1e-2, momentum=0.9, weight_decay=5e-4, clip_radius=0.1,
                        batch_size=64, max_images=None, seed=0, device="cpu"):
    """Train two deep copies of ``net`` (same initial weights, same batch order) with and without ZF clipping.

    splits: a ``minicnn.data.Splits``; max_images: train on the first N training images only (quick figures).
    Returns (net_clipped, net_unclipped, history_clipped, history_unclipped).
    """
    from types import SimpleNamespace

    from ..optim import SGD
    from ..train import Trainer
    first_conv(net)
    train = splits.train
    if max_images is not None:
        train = type(train)(train.x[:max_images], train.y[:max_images])
    small = SimpleNamespace(train=train, val=splits.val, mean=getattr(splits, "mean", None),
                            name=getattr(splits, "name", None), class_names=getattr(splits, "class_names", None))
    nets, histories = [], []
    for radius in (clip_radius, None):
        copy_ = copy.deepcopy(net)
        opt = SGD(copy_, lr=lr, momentum=momentum, weight_decay=weight_decay, clip_radius=radius)
        trainer = Trainer(copy_, small, opt, batch_size=batch_size, epochs=epochs, seed=seed, device=device,
                          progress=False, verbose=False)
        histories.append(trainer.fit())
        nets.append(copy_)
    return nets[0], nets[1], histories[0], histories[1]


def plot_clipping(net_clipped, net_unclipped, layer=None, labels=("with clipping (ZF Fig. 6 c)",
                                                                  "without clipping (ZF Fig. 6 a)")):
    """ZF Fig. 6 (a)/(c): first-layer filters of two networks side by side, all on ONE common scale per panel
    (so a dominating filter shows as the only high-contrast tile), with the sorted per-filter RMS below."""
    layer = layer or first_conv(net_clipped)
    fig = figure(10, 6.2)
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1.2])
    for col, (net, label) in enumerate(zip((net_clipped, net_unclipped), labels)):
        W = np.asarray(backend.to_numpy(net[layer].params["W"]), dtype=np.float64)
        scale = np.abs(W).max()
        tiles = [np.clip(0.5 + 0.5 * _hwc(w) / scale, 0, 1) for w in W]
        _show(fig.add_subplot(grid[0, col]), mosaic(tiles, int(np.ceil(np.sqrt(len(tiles))))),
              f"{label}\n{layer}, {len(W)} filters, common scale")
        ax = fig.add_subplot(grid[1, col])
        rms = np.sort(backend.to_numpy(filter_rms(net[layer].params["W"])))[::-1]
        ax.bar(np.arange(len(rms)), rms, color="C0" if col == 0 else "C3")
        ax.set_xlabel("filter (sorted)", fontsize=7)
        ax.set_ylabel("RMS", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_title(f"max/median RMS = {rms[0] / max(np.median(rms), 1e-12):.1f}", fontsize=8)
    fig.suptitle("Feature-scale clipping (ZF Fig. 6)", fontsize=9)
    return fig


def _hwc(w):
    return w[0] if w.shape[0] == 1 else (w.transpose(1, 2, 0) if w.shape[0] == 3 else np.sqrt((w ** 2).mean(0)))
