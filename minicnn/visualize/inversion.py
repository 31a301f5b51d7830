"""Feature inversion with a total-variation prior (Mahendran & Vedaldi 2015, Fig. 1 / 6).

Find an image whose code at ``layer`` matches the code of a given image:

    minimise  ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2  +  tv * TV(x)  +  l2 * ||x||^2 / (C H W)

with TV(x) the mean over pixels of the squared differences between horizontal and vertical neighbours
(Mahendran & Vedaldi's TV with beta = 2). The data term's gradient is ``net.backward`` started at ``layer``;
the prior's gradient is written out below (it is not a layer).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ._common import as_batch, check_layer
from .plots import _show, figure, image_to_display

__all__ = ["invert", "total_variation", "plot_inversions"]


def total_variation(x):
    """TV (beta = 2) of (N, C, H, W) x and its gradient: (value (N,), gradient like x). Mean over pixels."""
    xp = backend.xp(x)
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]
    n = x[0].size
    value = ((dv ** 2).sum(axis=(1, 2, 3)) + (dh ** 2).sum(axis=(1, 2, 3))) / n
    grad = xp.zeros_like(x)
    grad[:, :, 1:, :] += 2 * dv
    grad[:, :, :-1, :] -= 2 * dv
    grad[:, :, :, 1:] += 2 * dh
    grad[:, :, :, :-1] -= 2 * dh
    return value, grad / n


def invert(net, x0, layer, steps=200, lr=0.1, momentum=0.9, tv=3.0, l2=1e-3, seed=0):
    """Reconstruct images from their codes at ``layer`` (Mahendran & Vedaldi 2015).

    x0: (C, H, W) or (N, C, H, W) images whose codes are inverted; gradient descent with momentum from small
    noise; the step is normalised by the mean |gradient|. Returns (reconstructions shaped like x0 (NumPy),
    loss history (steps,) of the first image's relative code error).
    """
    layer = check_layer(net, layer)
    xb, single = as_batch(net, x0)
    xp = backend.xp(xb)
    target = net.forward(xb, until=layer)
    norm = xp.maximum((target.reshape(len(xb), -1) ** 2).sum(axis=1), 1e-12)
    shape = (-1,) + (1,) * (target.ndim - 1)
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.standard_normal(xb.shape) * 0.01, dtype=xb.dtype)
    v = xp.zeros_like(x)
    history = []
    for _ in range(steps):
        code = net.forward(x, until=layer)
        diff = code - target
        history.append(float(((diff[0] ** 2).sum() / norm[0])))
        g = net.backward(2 * diff / norm.reshape(shape), param_grads=False, start=layer)
        _, g_tv = total_variation(x)
        g = g + tv * g_tv + 2 * l2 * x / x[0].size
        g = g / (xp.abs(g).mean(axis=(1, 2, 3), keepdims=True) + 1e-12)
        v = momentum * v - lr * g
        x = x + v
    out = backend.to_numpy(x)
    return (out[0] if single else out), np.asarray(history)


def plot_inversions(originals, reconstructions, layers, mean=None):
    """Rows: images; columns: the original, then its reconstruction from each layer's code."""
    N = len(originals)
    fig = figure(1.5 * (1 + len(layers)), 1.5 * N + 0.5)
    axes = fig.subplots(N, 1 + len(layers), squeeze=False)
    for i in range(N):
        _show(axes[i, 0], image_to_display(originals[i], mean), "original" if i == 0 else None)
        for j, layer in enumerate(layers, start=1):
            _show(axes[i, j], image_to_display(reconstructions[layer][i], mean), f"from {layer}" if i == 0 else None)
    fig.suptitle("Inverting codes with a total-variation prior (Mahendran & Vedaldi 2015)", fontsize=9)
    return fig
