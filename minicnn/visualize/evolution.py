"""Feature evolution during training (Zeiler & Fergus 2014, Fig. 4).

A Trainer callback that, at chosen epochs, finds for each chosen feature map its strongest activation over a
fixed probe set and projects it to pixels with the deconvnet (cropped to the unit's receptive field). The
figure shows one row per feature and one column per epoch: low layers settle within a few epochs, higher
layers only after many.

The same callback also keeps, at each recording, every map's response profile: its strongest activation on each
of the first ``n_profile`` probe images. ``settling`` turns those into one number per layer and epoch -- how
alike the maps' responses are to their responses at the end -- and ``plot_settling`` draws it: the claim of
Fig. 4 ("higher layers settle later") as a curve per layer instead of a judgement by eye.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .. import backend
from ..train import Callback
from ._common import as_batch, check_channel, check_layer
from .plots import figure, mosaic, projection_to_display, _show
from .topk import top_k

__all__ = ["FeatureEvolution", "plot_evolution", "settling", "plot_settling", "ZF_EPOCHS"]

ZF_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 64)


class FeatureEvolution(Callback):
    """Record deconvnet projections of chosen feature maps at chosen epochs (ZF Fig. 4).

    probe: (N, C, H, W) fixed images (mean-subtracted), or None: the first ``n_probe`` validation images of the
    trainer's splits, taken when training begins; features: dict {layer name: list of channels}, or None: the
    first ``n_channels`` maps of the first three conv blocks (``gallery.feature_layers``); epochs: the epochs
    to record (default ZF's 1, 2, 5, 10, 20, 30, 40, 64; None = every epoch; 0 = before the first step, recorded
    when a fresh run begins); path: if given, ``save(path)`` after every recording, so a gallery can draw it later;
    n_profile: how many probe images the response profiles (``settling``) are taken on.
    ``record(net, epoch)`` may also be called by hand (epoch 0 = before training).
    ``snapshots``: {layer: {"epochs": [e...], "crops": [(M, C, rh, rw) per epoch], "values": [(M,)],
    "images": [(M,) probe indices], "profiles": [(P, K) per epoch: each of the layer's K maps' largest
    activation on each of P probe images, float16]}}.
    """

    def __init__(self, probe=None, features=None, epochs=ZF_EPOCHS, rule="deconvnet", path=None, batch_size=128,
                 n_probe=200, n_channels=4, n_profile=200):
        if features is not None and (not isinstance(features, dict) or not features):
            raise TypeError("FeatureEvolution: features must be a non-empty dict {layer name: [channels]} or None")
        self.probe = None if probe is None else np.asarray(probe)
        self.features = None if features is None else {l: [int(c) for c in ch] for l, ch in features.items()}
        self.epochs = None if epochs is None else {int(e) for e in epochs}
        self.rule, self.path, self.batch_size = rule, path, batch_size
        self.n_probe, self.n_channels, self.n_profile = n_probe, n_channels, n_profile
        self.snapshots = {}
        self._checked = False

    def _check(self, net, splits=None):
        if self.probe is None:
            if splits is None:
                raise ValueError("FeatureEvolution: no probe images given and no trainer splits to take them from")
            self.probe = np.asarray(splits.val.x[:self.n_probe])
        as_batch(net, self.probe[:1], "probe images")
        if self.features is None:
            from .gallery import feature_layers
            self.features = {}
            for layer in feature_layers(net)[:3]:
                count = net.layer_info(self.probe.shape[1:])[net.index(layer)].output_shape[0]
                self.features[layer] = list(range(min(self.n_channels, count)))
        for layer, channels in self.features.items():
            check_layer(net, layer)
            check_channel(net, layer, np.asarray(channels), self.probe.shape[1:])
            self.snapshots.setdefault(layer, {"epochs": [], "crops": [], "values": [], "images": [], "profiles": []})
        self._checked = True

    def on_train_begin(self, trainer):
        self._check(trainer.net, getattr(trainer, "splits", None))
        fresh = getattr(trainer, "epoch", 0) == 0 and not any(s["epochs"] for s in self.snapshots.values())
        if self.epochs is not None and 0 in self.epochs and fresh:
            self.record(trainer.net, 0)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.epochs is None or epoch in self.epochs:
            self.record(trainer.net, epoch)

    def record(self, net, epoch):
        """Project the strongest activation (over the probe set) of every chosen map; store it under ``epoch``."""
        if not self._checked:
            self._check(net)
        for layer, channels in self.features.items():
            res = top_k(net, self.probe, layer, channels, k=1, rule=self.rule, batch_size=self.batch_size,
                        show_progress=False)
            snap = self.snapshots[layer]
            snap["epochs"].append(int(epoch))
            snap["crops"].append(res.projections[:, 0])
            snap["values"].append(res.values[:, 0])
            snap["images"].append(res.indices[:, 0])
            snap["profiles"].append(self._profile(net, layer))
        if self.path is not None:
            self.save(self.path)

    def _profile(self, net, layer):
        """(P, K) float16: each map's largest activation on each of the first ``n_profile`` probe images."""
        x = self.probe[:self.n_profile]
        rows = []
        for i in range(0, len(x), self.batch_size):
            xb, _ = as_batch(net, x[i:i + self.batch_size])        # on the net's device and dtype
            a = net.forward(xb, until=layer)
            rows.append(backend.to_numpy(a.reshape(a.shape[0], a.shape[1], -1).max(axis=2)))
        return np.concatenate(rows).astype(np.float16)

    def save(self, path):
        """Write the snapshots to ``path`` (.npz, written to a temporary name and renamed)."""
        arrays = {"features": np.array(json.dumps(self.features))}
        for n, (layer, snap) in enumerate(self.snapshots.items()):
            arrays[f"{n}/epochs"] = np.asarray(snap["epochs"], np.int64)
            if snap["crops"]:
                arrays[f"{n}/crops"] = np.stack(snap["crops"])
                arrays[f"{n}/values"] = np.stack(snap["values"])
                arrays[f"{n}/images"] = np.stack(snap["images"])
            if snap.get("profiles"):
                arrays[f"{n}/profiles"] = np.stack(snap["profiles"])
        tmp = f"{path}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @staticmethod
    def load(path):
        """Read what ``save`` wrote: {layer: {"channels", "epochs", "crops" (E, M, C, rh, rw), "values" (E, M),
        "profiles" (E, P, K) or None}}."""
        with np.load(path) as z:
            features = json.loads(str(z["features"]))
            out = {}
            for n, (layer, channels) in enumerate(features.items()):
                epochs = z[f"{n}/epochs"]
                out[layer] = {"channels": channels, "epochs": epochs.tolist(),
                              "crops": z[f"{n}/crops"].astype(np.float32) if f"{n}/crops" in z else None,
                              "values": z[f"{n}/values"] if f"{n}/values" in z else None,
                              "profiles": z[f"{n}/profiles"] if f"{n}/profiles" in z else None}
        return out

    def as_dict(self):
        return {layer: {"channels": self.features[layer], "epochs": snap["epochs"],
                        "crops": np.stack(snap["crops"]) if snap["crops"] else None,
                        "values": np.stack(snap["values"]) if snap["values"] else None,
                        "profiles": np.stack(snap["profiles"]) if snap.get("profiles") else None}
                for layer, snap in self.snapshots.items()}


def plot_evolution(evolution):
    """ZF Fig. 4: one block per layer; rows = feature maps, columns = epochs; each tile the deconvnet projection
    of the map's strongest activation over the probe set at that epoch (contrast scaled per tile).

    evolution: a ``FeatureEvolution`` or what ``FeatureEvolution.load`` returns.
    """
    data = evolution.as_dict() if isinstance(evolution, FeatureEvolution) else evolution
    data = {k: v for k, v in data.items() if v["crops"] is not None}
    if not data:
        raise ValueError("plot_evolution: nothing recorded yet (no epoch reached the recording list)")
    # at least 1.5 inches a layer, so that a layer's title does not run into its neighbour's with few epochs
    fig = figure(2 + max(1.5, 0.6 * max(len(v["epochs"]) for v in data.values())) * len(data), 0.6 * max(
        len(v["channels"]) for v in data.values()) + 1.2)
    axes = np.atleast_1d(fig.subplots(1, len(data), squeeze=False)).ravel()
    for ax, (layer, v) in zip(axes, data.items()):
        crops = v["crops"]                         # (E, M, C, rh, rw)
        E, M = crops.shape[:2]
        tiles = [projection_to_display(crops[e, m], "zf") for m in range(M) for e in range(E)]
        ch = [int(c) for c in v["channels"]]
        maps = f"{ch[0]}-{ch[-1]}" if len(ch) > 2 and ch == list(range(ch[0], ch[-1] + 1)) else ", ".join(map(str, ch))
        _show(ax, mosaic(tiles, E, pad=max(1, crops.shape[-1] // 10)), f"{layer}: maps {maps}\n"
              f"epochs {', '.join(map(str, v['epochs']))}")
    fig.suptitle("Feature evolution during training (ZF Fig. 4): rows = feature maps, columns = epochs", fontsize=9)
    return fig


def settling(evolution):
    """How far each layer is from its final responses, epoch by epoch: {layer: (epochs (E,), similarity (E,))}.

    For each map of the layer, the Pearson correlation over the probe images between its response profile (its
    largest activation on each image) at an epoch and at the last recorded epoch, averaged over the maps; 1.0 at
    the last epoch. A map that gives the same value on every probe image at either epoch (a dead unit) has no
    correlation and is left out; a layer with no such map left gets NaN. Only layers with recorded profiles
    appear. evolution: a ``FeatureEvolution`` or what ``FeatureEvolution.load`` returns.
    """
    data = evolution.as_dict() if isinstance(evolution, FeatureEvolution) else evolution
    out = {}
    for layer, v in data.items():
        profiles = v.get("profiles")
        if profiles is None or len(profiles) != len(v["epochs"]):   # none, or a run resumed from an older recording
            continue
        p = np.asarray(profiles, np.float64)                   # (E, P, K)
        p = p - p.mean(axis=1, keepdims=True)
        norm = np.sqrt((p * p).sum(axis=1))                    # (E, K)
        final, final_norm = p[-1], norm[-1]
        sims = []
        for e in range(p.shape[0]):
            alive = (norm[e] > 0) & (final_norm > 0)
            r = (p[e][:, alive] * final[:, alive]).sum(axis=0) / (norm[e][alive] * final_norm[alive])
            sims.append(float(r.mean()) if r.size else float("nan"))
        out[layer] = (np.asarray(v["epochs"]), np.asarray(sims))
    return out


def plot_settling(evolution, ax=None):
    """One line per layer: the similarity of its maps' responses to their final ones (``settling``) against the
    epoch, lower layers in lighter colours. A layer whose line reaches 1 early has settled early."""
    from matplotlib import colormaps
    data = evolution.as_dict() if isinstance(evolution, FeatureEvolution) else evolution
    curves = settling(data)
    if not curves:
        raise ValueError("plot_settling: no response profiles in this recording (snapshots saved by an older "
                         "FeatureEvolution have none); record the run again")
    n_images = next(v["profiles"].shape[1] for v in data.values() if v.get("profiles") is not None)
    fig = None
    if ax is None:
        fig = figure(5.2, 3.6)
        ax = fig.subplots()
        fig.subplots_adjust(bottom=0.17, top=0.84)        # room for the title and for a caption under the axis
    colours = colormaps["viridis_r"](np.linspace(0.15, 1.0, len(curves)))
    for colour, (layer, (epochs, sims)) in zip(colours, curves.items()):
        ax.plot(epochs, sims, "o-", color=colour, label=layer, lw=1.6, ms=3.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("correlation with the final responses")
    ax.set_ylim(min(0.0, np.nanmin([s.min() for _, s in curves.values()])) - 0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="layer", title_fontsize=7, loc="lower right")
    ax.set_title(f"When each layer settles: its maps' responses to {n_images} probe images,\ncorrelated with "
                 "their responses at the end of training", fontsize=9)
    return fig if fig is not None else ax.figure
