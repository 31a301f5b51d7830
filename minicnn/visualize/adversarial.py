"""Fast-gradient-sign adversarial examples (Goodfellow, Shlens & Szegedy 2015, Fig. 1).

x_adv = x + eps * sign(d loss / d x), the gradient of the cross-entropy coming from ``net.backward``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..ops.loss import softmax_cross_entropy
from ._common import as_batch, logits_layer_check, softmax_np
from .plots import _show, figure, image_to_display, projection_to_display

__all__ = ["fgsm", "fgsm_accuracy", "plot_fgsm"]


def fgsm(net, x, labels, eps):
    """Fast gradient sign method. x: (N, C, H, W) or (C, H, W); labels: (N,) or int; eps: step in input units
    (the data is mean-subtracted, in [0, 1] before). Returns (x_adv shaped like x (NumPy),
    probabilities before (N, K), probabilities after (N, K))."""
    xb, single = as_batch(net, x)
    logits_layer_check(net, xb.shape[1:], "fgsm")
    xp = backend.xp(xb)
    y = xp.asarray(np.atleast_1d(np.asarray(labels, dtype=np.int64)))
    logits = net.forward(xb)
    _, dlogits = softmax_cross_entropy(logits, y)
    g = net.backward(dlogits, param_grads=False)
    x_adv = xb + eps * xp.sign(g)
    before = softmax_np(backend.to_numpy(logits).astype(np.float64))
    after = softmax_np(backend.to_numpy(net.forward(x_adv)).astype(np.float64))
    x_adv = backend.to_numpy(x_adv)
    return (x_adv[0] if single else x_adv), before, after


def fgsm_accuracy(net, x, labels, epsilons, batch_size=256):
    """Accuracy (fraction) under FGSM for each eps in ``epsilons``: (len(epsilons),)."""
    labels = np.asarray(labels)
    acc = []
    for eps in epsilons:
        correct = 0
        for start in range(0, len(x), batch_size):
            _, _, after = fgsm(net, x[start:start + batch_size], labels[start:start + batch_size], eps)
            correct += int((after.argmax(axis=1) == labels[start:start + batch_size]).sum())
        acc.append(correct / len(x))
    return np.asarray(acc)


def plot_fgsm(x, x_adv, before, after, labels, class_names, epsilons=None, accuracy=None, mean=None, eps=None):
    """Rows: images; columns: original (label, p), the perturbation sign, the adversarial image (new label, p);
    with ``accuracy``, a last panel of test accuracy against eps."""
    N = len(x)
    extra = accuracy is not None
    fig = figure(6 + 3 * extra, 1.7 * N + 0.5)
    grid = fig.add_gridspec(N, 3 + extra, wspace=0.45)
    for i in range(N):
        b, a = before[i], after[i]
        _show(fig.add_subplot(grid[i, 0]), image_to_display(x[i], mean),
              f"{class_names[labels[i]]}: p={b[labels[i]]:.2f}")
        _show(fig.add_subplot(grid[i, 1]), projection_to_display(x_adv[i] - x[i]), "sign(grad)" if i == 0 else None)
        _show(fig.add_subplot(grid[i, 2]), image_to_display(x_adv[i], mean),
              f"-> {class_names[a.argmax()]}: p={a.max():.2f}")
    if extra:
        ax = fig.add_subplot(grid[:, 3])
        ax.plot(epsilons, 100 * np.asarray(accuracy), "o-")
        ax.set_xlabel("eps")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("accuracy under FGSM", fontsize=8)
    fig.suptitle(f"Fast gradient sign adversarial examples (Goodfellow 2015), eps = {eps}", fontsize=9)
    return fig
