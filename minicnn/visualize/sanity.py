"""Sanity check by cascading randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", Fig. 2).

Re-initialise the network's weights layer by layer from the top (the classifier) down to conv1 and recompute
the maps after each step. A map that explains the *trained* network must change as its weights are destroyed;
a map that stays the same shows the input's edges, not the network. Similarity: Spearman rank correlation of
the absolute maps with the maps of the trained network.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..layers import Conv2D, Linear
from .project import input_gradient
from .plots import _show, figure, image_to_display

__all__ = ["Cascade", "cascading_randomization", "plot_cascade", "MAP_RULES"]

MAP_RULES = {"gradient": "backprop", "guided backprop": "guided", "deconvnet": "deconvnet"}


@dataclass
class Cascade:
    """stages: ["trained", "fc8", "fc8+fc7", ...] (cumulative re-initialised layers); maps: {method: (S, N, H, W)}
    |map| summed over channels; similarity: {method: (S, N)} Spearman correlation with stage 0."""
    stages: list
    maps: dict = field(default_factory=dict)
    similarity: dict = field(default_factory=dict)


def _spearman(a, b):
    from scipy.stats import spearmanr
    if np.array_equal(a, b):
        return 1.0
    r = spearmanr(a.ravel(), b.ravel()).statistic
    return float(r) if np.isfinite(r) else 0.0


def cascading_randomization(net, x, target, methods=("gradient", "guided backprop", "deconvnet"), seed=0):
    """Adebayo et al.'s cascading randomisation on a copy of ``net`` (the original is untouched).

    x: (N, C, H, W); target: (N,) classes. Weights are redrawn He-normal (std sqrt(2 / fan_in)), biases zeroed,
    from the last parametric layer down to the first. Returns a ``Cascade``.
    """
    unknown = [m for m in methods if m not in MAP_RULES]
    if unknown:
        raise ValueError(f"unknown map method(s) {unknown}; available: {', '.join(MAP_RULES)}")
    work = copy.deepcopy(net)
    rng = np.random.default_rng(seed)
    param_layers = [l.name for l in work.layers if isinstance(l, (Conv2D, Linear))][::-1]
    stages, maps = ["trained"], {m: [] for m in methods}

    def record():
        for m in methods:
            g, _ = input_gradient(work, x, target, rule=MAP_RULES[m])
            maps[m].append(np.abs(g).sum(axis=1))

    record()
    for n, name in enumerate(param_layers):
        layer = work[name]
        W = layer.params["W"]
        fan_in = int(np.prod(W.shape[1:])) if isinstance(layer, Conv2D) else int(W.shape[0])
        xp = backend.xp(W)
        layer.params["W"] = xp.asarray(rng.standard_normal(W.shape) * np.sqrt(2.0 / fan_in), dtype=W.dtype)
        layer.params["b"] = xp.zeros_like(layer.params["b"])
        stages.append(name if n == 0 else f"...{name}")
        record()
    out = Cascade(stages)
    for m in methods:
        stack = np.stack(maps[m])                     # (S, N, H, W)
        out.maps[m] = stack
        out.similarity[m] = np.array([[_spearman(stack[s, i], stack[0, i]) for i in range(stack.shape[1])]
                                      for s in range(len(stack))])
    return out


def plot_cascade(result, image, mean=None, index=0):
    """Top: for one image, each method's map (rows) after each randomisation stage (columns). Bottom: the mean
    rank correlation with the trained network's map against the stage."""
    methods = list(result.maps)
    S = len(result.stages)
    fig = figure(1.25 * (S + 1), 1.3 * len(methods) + 3.2)
    grid = fig.add_gridspec(len(methods) + 2, S + 1)
    _show(fig.add_subplot(grid[0, 0]), image_to_display(image, mean), "image")
    for r, m in enumerate(methods):
        for s in range(S):
            mp = result.maps[m][s, index]
            ax = fig.add_subplot(grid[r, s + 1])
            _show(ax, mp / (mp.max() or 1), (result.stages[s] if r == 0 else None), cmap="hot", vmin=0, vmax=1)
            if s == 0:
                ax.set_ylabel(m, fontsize=7)
    ax = fig.add_subplot(grid[len(methods):, :])
    for m in methods:
        ax.plot(np.arange(S), result.similarity[m].mean(axis=1), "o-", label=m)
    ax.set_xticks(np.arange(S))
    ax.set_xticklabels(result.stages, fontsize=7, rotation=30)
    ax.set_ylabel("rank correlation\nwith trained map", fontsize=8)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.legend(fontsize=7)
    fig.suptitle("Sanity check: cascading randomisation from the top layer down (Adebayo et al. 2018)", fontsize=9)
    return fig
