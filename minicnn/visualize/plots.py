"""Figures for ``minicnn.visualize`` (matplotlib ``Figure`` objects, Agg; no pyplot global state).

Every ``plot_*`` returns a ``matplotlib.figure.Figure``; ``save(fig, path)`` writes it. Display conventions:
images are min-max scaled per image (after adding the dataset mean back where one is given); projections
are scaled symmetrically about grey (0 -> grey, the largest |value| -> black or white), as ZF show them
"with contrast enhanced"; NaN (outside the image in a receptive-field crop) is drawn in :data:`OUTSIDE`, a light
blue that no grey image contains (white read as strokes on Fashion-MNIST's black background). Figures are drawn
at :data:`DPI` dots per inch, so a 1.5-inch panel of 3x3 tiles gives each tile 65 pixels.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..layers import Conv2D

__all__ = ["figure", "save", "image_to_display", "projection_to_display", "mosaic", "plot_filters",
           "plot_activations", "plot_topk", "plot_zf_fig2", "plot_saliency", "plot_occlusion", "plot_images",
           "add_caption", "OUTSIDE", "DPI"]

DPI = 130
OUTSIDE = (0.55, 0.75, 0.95)     # "outside the image" in receptive-field crops


def figure(width, height, dpi=DPI):
    # No matplotlib.use(): a bare Figure renders PNG with Agg on savefig, and switching the global backend
    # would break pyplot in a notebook (its inline backend).
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=dpi)


def save(fig, path):
    """Write ``fig`` to ``path`` (PNG, at the figure's own dpi) and return the path."""
    fig.savefig(path, bbox_inches="tight", dpi=max(DPI, fig.dpi))
    return path


def add_caption(fig, text, width_chars=None):
    """Write a one-line caption (``text``, wrapped to the figure's width) under the figure, for slides."""
    import textwrap
    width_chars = width_chars or max(40, int(fig.get_figwidth() * 13))
    fig.text(0.5, 0.0, "\n".join(textwrap.wrap(text, width_chars)), ha="center", va="top", fontsize=9,
             style="italic")
    return fig


def _hwc(img):
    """(C, H, W) -> (H, W) for one channel, (H, W, 3) for three."""
    img = np.asarray(backend.to_numpy(img), dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.shape[0] == 1:
        return img[0]
    if img.shape[0] == 3:
        return img.transpose(1, 2, 0)
    return np.sqrt((img ** 2).mean(axis=0))      # other channel counts: the RMS over channels


def _paint_outside(out, outside, colour=OUTSIDE):
    """(H, W) or (H, W, 3) in [0, 1] and a boolean (H, W) mask -> (H, W, 3) with the masked pixels in ``colour``
    (unchanged when nothing is masked)."""
    if outside is None or not np.any(outside):
        return out
    rgb = out if out.ndim == 3 else np.repeat(out[..., None], 3, axis=2)
    return np.where(np.asarray(outside)[..., None], np.asarray(colour, dtype=np.float64), rgb)


def image_to_display(img, mean=None):
    """(C, H, W) image -> (H, W) or (H, W, 3) in [0, 1], min-max scaled; NaN pixels (outside the image) -> the
    colour :data:`OUTSIDE` (the result is then (H, W, 3) even for a grey image)."""
    img = np.asarray(backend.to_numpy(img), dtype=np.float64)
    if mean is not None:
        img = img + np.asarray(mean)
    out = _hwc(img)
    finite = np.isfinite(out)
    if not finite.any():
        return _paint_outside(np.ones(out.shape[:2]), np.ones(out.shape[:2], bool))
    lo, hi = out[finite].min(), out[finite].max()
    out = (out - lo) / (hi - lo) if hi > lo else np.full_like(out, 0.5)
    out = np.where(finite, out, 1.0)
    return _paint_outside(out, ~finite if finite.ndim == 2 else ~finite.all(axis=2))


def projection_to_display(p, normalize="symmetric", outside=None):
    """(C, H, W) projection -> [0, 1].

    normalize="symmetric": 0 at grey, 0.5 + 0.5 * p / max|p| (signs readable). normalize="zf": contrast-enhanced as
    ZF show their projections, still 0 at grey but scaled by the 98th percentile of |p| instead of the maximum (the
    few brightest pixels clip), which shows the structure rather than the single largest pixel.
    outside: optional (H, W) boolean mask painted :data:`OUTSIDE` (the parts of a receptive field off the image).
    """
    out = _hwc(np.asarray(backend.to_numpy(p), dtype=np.float64))
    if normalize in ("symmetric", "zf"):
        inside = out if outside is None or not np.any(outside) else out[~np.asarray(outside)]
        scale = np.abs(out).max()
        if normalize == "zf" and inside.size:
            robust = np.percentile(np.abs(inside), 98)
            scale = robust if robust > 0 else scale
        out = np.clip(0.5 + 0.5 * out / scale, 0, 1) if scale > 0 else np.full_like(out, 0.5)
    else:
        raise ValueError(f"projection_to_display: normalize must be 'symmetric' or 'zf', got {normalize!r}")
    return _paint_outside(out, outside)


def mosaic(tiles, cols, pad=1, fill=1.0):
    """List of equally sized (h, w) or (h, w, 3) tiles in [0, 1] -> one image, ``cols`` per row, ``pad`` px apart.
    When some tiles are colour and some grey, the grey ones are drawn as colour."""
    tiles = list(tiles)
    if any(t.ndim == 3 for t in tiles):
        tiles = [t if t.ndim == 3 else np.repeat(t[..., None], 3, axis=2) for t in tiles]
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    shape = (rows * (h + pad) - pad, cols * (w + pad) - pad) + tiles[0].shape[2:]
    out = np.full(shape, fill)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tile
    return out


def _show(ax, img, title=None, **kw):
    cmap = kw.pop("cmap", "gray" if img.ndim == 2 else None)
    ax.imshow(img, cmap=cmap, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def plot_filters(net, layer="conv1", max_filters=96, title=None):
    """The filters of a Conv2D layer as a grid (ZF Fig. 6 (c) style for layer 1).

    Weights (F, C, kh, kw): 3 input channels are drawn in colour, 1 in grey, other counts as each filter's
    RMS over input channels. Each filter is scaled symmetrically about grey on its own.
    """
    conv_names = [l.name for l in net.layers if isinstance(l, Conv2D)]
    if layer not in net.names or not isinstance(net[layer], Conv2D):
        raise ValueError(f"plot_filters needs a Conv2D layer; {net.name} has conv layers: "
                         f"{', '.join(conv_names) or 'none'} (layers: {', '.join(net.names)})")
    W = backend.to_numpy(net[layer].params["W"])[:max_filters]
    tiles = [projection_to_display(w) if w.shape[0] in (1, 3) else image_to_display(w) for w in W]
    cols = int(np.ceil(np.sqrt(len(tiles))))
    fig = figure(6, 6)
    _show(fig.add_subplot(), mosaic(tiles, cols), title or f"{layer} filters ({W.shape[0]} of "
          f"{net[layer].params['W'].shape[0]}, {W.shape[2]}x{W.shape[3]})")
    return fig


def plot_activations(net, x, layer, max_maps=32, mean=None):
    """The feature maps of ``layer`` for one image x (C, H, W): the image, then one tile per map (own scale)."""
    from ._common import as_batch, check_layer
    layer = check_layer(net, layer)
    xb, _ = as_batch(net, x)
    a = backend.to_numpy(net.forward(xb[:1], until=layer))[0]
    if a.ndim != 3:
        raise ValueError(f"plot_activations: layer {layer!r} has no feature maps (output {a.shape})")
    tiles = [image_to_display(m[None]) for m in a[:max_maps]]
    fig = figure(9, 4.5)
    ax0, ax1 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    _show(ax0, image_to_display(backend.to_numpy(xb[0]), mean), "image")
    _show(ax1, mosaic(tiles, int(np.ceil(np.sqrt(len(tiles) * 2)))), f"{layer}: {min(len(a), max_maps)} of "
          f"{len(a)} maps ({a.shape[1]}x{a.shape[2]})")
    return fig


def _topk_tiles(result, m, normalize="zf"):
    """For map m of a TopK: the projection tiles (outside the image painted) and the patch tiles."""
    ok = result.indices[m] >= 0
    patches = result.patches[m][ok]
    outside = [~np.isfinite(p).all(axis=0) for p in patches]
    proj = [projection_to_display(p, normalize, o) for p, o in zip(result.projections[m][ok], outside)]
    return proj, [image_to_display(p) for p in patches]


def plot_topk(result, max_channels=8, title=None, normalize="zf", panel=1.5):
    """ZF Fig. 2: per feature map, a 3x3 (k) grid of deconvnet projections beside the matching image patches.

    Each projection is contrast-normalised on its own (``normalize``, see :func:`projection_to_display`); the
    parts of a receptive field outside the image are :data:`OUTSIDE` in both. ``panel``: inches per 3x3 grid
    (1.5 in at 130 dpi: 65 pixels a tile).
    """
    M = min(len(result.channels), max_channels)
    k = result.projections.shape[1]
    cols = int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(M / 2))
    height = (panel + 0.25) * rows + 0.5
    fig = figure(4 * panel + 0.4, height)
    axes = fig.subplots(rows, 4, squeeze=False)
    fig.subplots_adjust(wspace=0.05, hspace=0.2, left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / height)
    for ax in axes.ravel():
        ax.axis("off")
    for m in range(M):
        proj, patch = _topk_tiles(result, m, normalize)
        if not proj:
            continue
        r, c = divmod(m, 2)
        _show(axes[r, 2 * c], mosaic(proj, cols), f"map {int(result.channels[m])}: projections")
        _show(axes[r, 2 * c + 1], mosaic(patch, cols), "image patches")
    fig.suptitle(title or f"{result.layer}: top-{k} activations per map ({result.rule} projections, "
                 f"{result.projections.shape[-2]}x{result.projections.shape[-1]} receptive field)", fontsize=10,
                 y=1 - 0.12 / height)
    return fig


def plot_zf_fig2(results, maps_per_layer=4, normalize="zf", panel=1.45, names=None):
    """ZF Fig. 2 (layers 1-5 there) in one figure: one row per layer (``results``: list of TopK), and for each of
    ``maps_per_layer`` maps the 3x3 grid of its top-9 projections beside the 3x3 grid of their image patches."""
    L, M = len(results), maps_per_layer
    width, height = 2 * M * panel + 0.6, L * (panel + 0.3) + 0.4
    fig = figure(width, height)
    axes = fig.subplots(L, 2 * M, squeeze=False)
    fig.subplots_adjust(wspace=0.04, hspace=0.22, left=0.05, right=0.995, bottom=0.005, top=1 - 0.4 / height)
    for ax in axes.ravel():
        ax.axis("off")
    for row, res in enumerate(results):
        k = res.projections.shape[1]
        cols = int(np.ceil(np.sqrt(k)))
        for m in range(min(M, len(res.channels))):
            proj, patch = _topk_tiles(res, m, normalize)
            if not proj:
                continue
            _show(axes[row, 2 * m], mosaic(proj, cols), f"map {int(res.channels[m])}")
            _show(axes[row, 2 * m + 1], mosaic(patch, cols), f"{res.projections.shape[-1]} px field")
        label = names[row] if names else f"layer {row + 1}\n{res.layer}"
        axes[row, 0].text(-0.08, 0.5, label, transform=axes[row, 0].transAxes, ha="right", va="center",
                          fontsize=10, rotation=90)
    fig.suptitle(f"Top-9 activations of layers 1-{L}: deconvnet projection (left of each pair) and the image patch "
                 "under its receptive field (right) (ZF Fig. 2)", fontsize=11, y=1 - 0.1 / height)
    return fig


def plot_images(images, titles=None, mean=None, cols=8, title=None):
    """A grid of (C, H, W) images."""
    n = len(images)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig = figure(1.2 * cols, 1.3 * rows + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i < n:
            _show(ax, image_to_display(images[i], mean), titles[i] if titles else None)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_saliency(images, maps, names, mean=None, titles=None):
    """Rows: images; columns: the image, then each map in ``maps`` (dict name -> (N, C, H, W) or (N, H, W)).

    Signed maps (projections, guided backprop) are drawn about grey; non-negative ones (saliency) hot.
    """
    N = len(images)
    fig = figure(1.6 * (1 + len(maps)), 1.6 * N + 0.3)
    axes = fig.subplots(N, 1 + len(maps), squeeze=False)
    for i in range(N):
        _show(axes[i, 0], image_to_display(images[i], mean), titles[i] if titles else None)
        for j, (name, m) in enumerate(maps.items(), start=1):
            mi = np.asarray(m[i])
            if mi.ndim == 2:
                _show(axes[i, j], mi / (mi.max() or 1), name if i == 0 else None, cmap="hot", vmin=0, vmax=1)
            else:
                _show(axes[i, j], projection_to_display(mi), name if i == 0 else None)
    return fig


def plot_occlusion(results, images, class_names, projections=None, mean=None):
    """ZF Fig. 7: per image (rows) (a) the image with the grey square, (b) total activation of the strongest
    feature map per square position, (c) that map projected to pixels, (d) probability of the correct class,
    (e) the most probable label per position. ``results``: list of ``Occlusion``; projections: list of
    (C, H, W) deconvnet projections of the strongest unit of the map (optional)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle
    N = len(results)
    fig = figure(11, 2.3 * N + 0.6)
    axes = fig.subplots(N, 5, squeeze=False)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    for i, (res, img) in enumerate(zip(results, images)):
        H, W = img.shape[1:]
        extent = (res.cols[0] - 0.5, res.cols[-1] + res.stride - 0.5, res.rows[-1] + res.stride - 0.5,
                  res.rows[0] - 0.5)
        _show(axes[i, 0], image_to_display(img, mean), f"(a) {class_names[res.label]}")
        r0, c0 = H // 2 - res.size // 2, W // 2 - res.size // 2
        axes[i, 0].add_patch(Rectangle((c0 - 0.5, r0 - 0.5), res.size, res.size, color="0.5", alpha=0.9))
        im = axes[i, 1].imshow(res.activation, cmap="jet", extent=extent, interpolation="nearest")
        fig.colorbar(im, ax=axes[i, 1], fraction=0.046)
        axes[i, 1].set_title(f"(b) {res.layer} map {res.channel}", fontsize=8)
        if projections is not None:
            _show(axes[i, 2], projection_to_display(projections[i], "zf"), f"(c) map {res.channel} projected")
        else:
            axes[i, 2].axis("off")
        # a fixed [0, 1] scale: a drop from 0.998 to 0.996 must not look like one from 0.9 to 0.1
        im = axes[i, 3].imshow(res.probability, cmap="jet", vmin=0.0, vmax=1.0, extent=extent,
                               interpolation="nearest")
        fig.colorbar(im, ax=axes[i, 3], fraction=0.046)
        axes[i, 3].set_title(f"(d) p({class_names[res.label]})", fontsize=8)
        labels = sorted(set(res.predicted.ravel().tolist()))
        lut = {lab: n for n, lab in enumerate(labels)}
        cmap = ListedColormap([palette[lab % len(palette)] for lab in labels])
        axes[i, 4].imshow(np.vectorize(lut.get)(res.predicted), cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5,
                          extent=extent, interpolation="nearest")
        axes[i, 4].set_title("(e) most probable label", fontsize=8)
        axes[i, 4].legend(handles=[Patch(color=palette[lab % len(palette)], label=class_names[lab]) for lab in labels],
                          fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        for ax in axes[i, 1:]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Occlusion sensitivity (ZF Fig. 7): grey {results[0].size}x{results[0].size} square, "
                 f"stride {results[0].stride}", fontsize=9)
    return fig
