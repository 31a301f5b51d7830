"""t-SNE of a layer's codes, drawn with the images themselves (van der Maaten & Hinton 2008; Karpathy's
CNN-code embeddings). scikit-learn is imported only here, when asked for."""
from __future__ import annotations

import numpy as np

from .. import backend
from ._common import as_batch, check_layer, iter_batches
from .plots import figure, image_to_display

__all__ = ["layer_codes", "tsne", "plot_tsne"]


def layer_codes(net, x, layer, batch_size=256):
    """The outputs of ``layer`` for (N, C, H, W) images, flattened: (N, D) float64 NumPy (the codes that t-SNE
    and the linear probes of ZF Table 7 work on)."""
    layer = check_layer(net, layer)
    out = []
    for start, stop in iter_batches(len(x), batch_size):
        xb, _ = as_batch(net, x[start:stop])
        out.append(backend.to_numpy(net.forward(xb, until=layer)).reshape(stop - start, -1).astype(np.float64))
    return np.concatenate(out)


def layers_codes(net, x, layers, batch_size=256):
    """``layer_codes`` for several layers from one forward pass per batch (up to the deepest of them):
    {layer: (N, D_layer) float64}. The linear probes use it: one pass instead of one per layer."""
    layers = [check_layer(net, l) for l in layers]
    last = max(net.index(l) for l in layers)
    out = {l: [] for l in layers}
    for start, stop in iter_batches(len(x), batch_size):
        h, _ = as_batch(net, x[start:stop])
        for layer in net.layers[:last + 1]:
            h = layer.forward(h, train=False)
            if layer.name in out:
                out[layer.name].append(backend.to_numpy(h).reshape(stop - start, -1).astype(np.float64))
    return {l: np.concatenate(v) for l, v in out.items()}


def tsne(net, x, layer, perplexity=30.0, seed=0):
    """2-D t-SNE embedding (scikit-learn) of the codes of (N, C, H, W) images at ``layer``: (N, 2)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ImportError('tsne needs scikit-learn: pip install "minicnn[data]"') from None
    codes = layer_codes(net, x, layer)
    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)


def plot_tsne(coords, images, labels, class_names, mean=None, layer="", zoom=None):
    """The images placed at their t-SNE positions, each framed in its class colour."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    fig = figure(8, 8)
    ax = fig.add_subplot()
    palette = [f"C{i}" for i in range(10)]
    size = images.shape[-1]
    zoom = zoom or max(0.4, 18 / size)
    for (px, py), img, lab in zip(coords, images, labels):
        disp = image_to_display(img, mean)
        box = AnnotationBbox(OffsetImage(disp, zoom=zoom, cmap="gray" if disp.ndim == 2 else None), (px, py),
                             frameon=True, pad=0.1, bboxprops=dict(edgecolor=palette[int(lab) % 10], lw=1.5))
        ax.add_artist(box)
    ax.set_xlim(coords[:, 0].min() - 5, coords[:, 0].max() + 5)
    ax.set_ylim(coords[:, 1].min() - 5, coords[:, 1].max() + 5)
    for c, name in enumerate(class_names):
        ax.plot([], [], "s", color=palette[c % 10], label=str(name))
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of {layer} codes ({len(coords)} test images, frame colour = true class)", fontsize=9)
    return fig
