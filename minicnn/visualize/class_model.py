"""Class-model visualization: the image that maximises a class score (Simonyan, Vedaldi & Zisserman 2014, Fig. 1),
optionally with Yosinski et al.'s (2015) regularisers (Gaussian blur every few steps, random jitter).

Gradient ascent on ``S_c(x) - l2 * ||x||^2`` where S_c is the pre-softmax score; the gradient of S_c comes from
``net.backward`` with the "backprop" rule, like every gradient in ``minicnn.visualize``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ._common import as_batch, logits_layer_check
from .plots import _show, figure, image_to_display

__all__ = ["class_model", "plot_class_models"]


def class_model(net, target, input_shape, steps=150, lr=0.5, l2=1e-2, blur_every=0, blur_sigma=0.5, jitter=0,
                seed=0):
    """Synthesise inputs that the network scores highly as class ``target`` (int, or a list: one image each,
    computed together as one batch).

    input_shape: (C, H, W) (the image lives in the mean-subtracted space the net was trained on; add the
    dataset mean to display). Each step: jitter (roll by up to ``jitter`` pixels), gradient of the class score
    by ``net.backward``, un-jitter, then ``x += lr * (g / mean|g| - 2 * l2 * x)`` (the step is normalised by the
    gradient's mean magnitude so that ``lr`` means the same on every network); every ``blur_every`` steps a
    Gaussian blur of width ``blur_sigma`` pixels. Returns (x (C, H, W) or (K, C, H, W) NumPy, scores (steps,)
    or (steps, K) of the target classes).
    """
    from scipy import ndimage
    single = np.ndim(target) == 0
    targets = np.atleast_1d(np.asarray(target, dtype=np.int64))
    K = len(targets)
    xb, _ = as_batch(net, np.zeros((K,) + tuple(input_shape), np.float32), "input_shape")
    num_classes = logits_layer_check(net, xb.shape[1:], "class_model")
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.size:
        raise ValueError(f"class_model: target must lie in 0..{num_classes - 1}, got {bad.tolist()}")
    xp = backend.xp(xb)
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.standard_normal(xb.shape) * 0.01, dtype=xb.dtype)
    rows, cols = xp.arange(K), xp.asarray(targets)
    scores = []
    for step in range(steps):
        sy, sx = (rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0))
        shifted = xp.roll(x, (int(sy), int(sx)), axis=(2, 3))
        s = net.forward(shifted)
        scores.append(backend.to_numpy(s[rows, cols]).astype(np.float64))
        dy = xp.zeros_like(s)
        dy[rows, cols] = 1
        g = xp.roll(net.backward(dy, param_grads=False), (-int(sy), -int(sx)), axis=(2, 3))
        g = g / (xp.abs(g).mean(axis=(1, 2, 3), keepdims=True) + 1e-12)
        x = x + lr * (g - 2 * l2 * x)
        if blur_every and (step + 1) % blur_every == 0:
            x = xp.asarray(ndimage.gaussian_filter(backend.to_numpy(x), (0, 0, blur_sigma, blur_sigma)), dtype=x.dtype)
    x, scores = backend.to_numpy(x), np.stack(scores)
    return (x[0], scores[:, 0]) if single else (x, scores)


def plot_class_models(images, class_names, mean=None, title=None):
    """One tile per class: the synthesised class models (Simonyan Fig. 1)."""
    n = len(images)
    cols = min(n, 10)
    rows = -(-n // cols)
    fig = figure(1.3 * cols, 1.45 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i < n:
            _show(ax, image_to_display(images[i], mean), str(class_names[i]))
        else:
            ax.axis("off")
    fig.suptitle(title or "Class models: gradient ascent on the pre-softmax score, L2 + blur + jitter "
                 "(Simonyan 2014; Yosinski 2015)", fontsize=9)
    return fig
