"""Correspondence analysis (Zeiler & Fergus 2014, Table 1 and Fig. 8).

Occlude the same part (e.g. the left eye) in several aligned images. If the network establishes a
correspondence between the parts of different images, the feature vectors should change the same way in
every image: the signs of the changes agree. ZF measure disagreement with the Hamming distance between the
sign vectors and compare with occlusions of random parts; lower than random = correspondence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ._common import as_batch, check_layer
from .plots import figure

__all__ = ["Correspondence", "correspondence", "plot_correspondence", "part_mask"]


def part_mask(part, shape):
    """A part as a boolean (H, W) mask: given either as such a mask or as a box (row0, row1, col0, col1),
    half-open (the convention of ``minicnn.data.FACE_PARTS``)."""
    H, W = shape
    arr = np.asarray(part)
    if arr.shape == (H, W):
        return arr.astype(bool)
    if arr.shape == (4,):
        r0, r1, c0, c1 = (int(v) for v in arr)
        if not (0 <= r0 < r1 <= H and 0 <= c0 < c1 <= W):
            raise ValueError(f"part box {(r0, r1, c0, c1)} (row0, row1, col0, col1) must lie inside the {H}x{W} image")
        mask = np.zeros((H, W), bool)
        mask[r0:r1, c0:c1] = True
        return mask
    raise ValueError(f"a part must be a box (row0, row1, col0, col1) or a boolean mask of shape {(H, W)}, "
                     f"got an array of shape {arr.shape}")


@dataclass
class Correspondence:
    """Result of ``correspondence``. rows: part names (then "random HxW" rows); layers: names;
    mean, std: (rows, layers) normalised Hamming distances (see ``correspondence``); pairs: pairs per row."""
    rows: list
    layers: list
    mean: np.ndarray
    std: np.ndarray
    pairs: list = field(default_factory=list)

    def table(self):
        """The table as text, in ZF Table 1's layout."""
        head = f"{'occlusion':<18}" + "".join(f"{'sign change ' + l:>24}" for l in self.layers)
        lines = [head, "-" * len(head)]
        for r, name in enumerate(self.rows):
            lines.append(f"{name:<18}" + "".join(f"{self.mean[r, c]:>15.4f} ± {self.std[r, c]:.4f}"
                                                  for c in range(len(self.layers))))
        return "\n".join(lines)


def _sign_disagreement(signs):
    """signs (N, D) in {-1, 0, 1} -> normalised Hamming distances of all N(N-1)/2 pairs."""
    N = signs.shape[0]
    return np.array([np.mean(signs[i] != signs[j]) for i in range(N) for j in range(i + 1, N)])


def _fill_image(fill, shape, xp, dtype):
    """``fill`` (a number, or a (C, H, W) image such as ``-mean``: the black background of the raw images) as a
    (C, H, W) array of the images' dtype."""
    arr = np.asarray(backend.to_numpy(fill) if not np.isscalar(fill) else fill, dtype=np.float64)
    if arr.ndim == 0:
        return xp.full(shape, float(arr), dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"correspondence: fill must be a number or an image of the images' shape {shape}, "
                         f"got shape {arr.shape}")
    return xp.asarray(arr, dtype=dtype)


def _random_corner(rng, h, w, H, W, centres=None):
    """Top-left corner of a random h x w box inside H x W whose centre lies where ``centres`` (H, W) is True
    (anywhere when None or when no allowed centre leaves room for the box)."""
    if centres is not None:
        rows, cols = np.nonzero(centres[h // 2:H - h + 1 + h // 2, w // 2:W - w + 1 + w // 2])
        if len(rows):
            k = int(rng.integers(len(rows)))
            return int(rows[k]), int(cols[k])
    return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))


def correspondence(net, images, parts, layers, n_random=10, fill=0.0, seed=0, random="shared", random_on=None):
    """ZF Table 1: mean feature sign change, per occluded part and layer, against random occlusions.

    images: (N, C, H, W) aligned images (mean-subtracted; ``fill`` 0 paints the dataset mean, a (C, H, W) ``fill``
    paints that image, e.g. ``-mean``: the raw images' zero, Fashion-MNIST's black background), N >= 2;
    parts: {name: box (row0, row1, col0, col1) or (H, W) bool mask}; layers: names whose outputs are compared;
    n_random: random placements per distinct part size.
    random: ``"shared"``: a trial's random box is at the same place in every image (for images that are not
    aligned pixel for pixel, such as faces, that is another arbitrary region in each); ``"per_image"``: each image
    gets its own random box, as ZF's Fig. 8 does ("random object parts"). For classes that are aligned pixel for
    pixel (Fashion-MNIST), a box shared by every image is itself a corresponding part, so only ``"per_image"``
    is a baseline there.
    random_on: None, or (N, H, W) bool: where a random box's centre may fall in each image (e.g. on the object,
    not on the background, whose occlusion changes nothing).

    Normalisation: for image i and occlusion l, eps_i = f(occluded x_i) - f(x_i) over the layer's D outputs,
    s_i = sign(eps_i) in {-1, 0, +1} (unchanged outputs, e.g. units that stay at zero after a ReLU, count as
    0 and agree with each other). The score is the Hamming distance between s_i and s_j divided by D
    (the fraction of outputs whose change differs in sign), averaged over all pairs i < j; ± is the standard
    deviation over those pairs (pooled over the trials for the random rows). ZF report the unnormalised sum
    over pairs; dividing by D and the number of pairs makes layers of different sizes comparable (0..1).
    Returns a ``Correspondence``.
    """
    xb, _ = as_batch(net, images, "images")
    layers = [check_layer(net, l) for l in layers]
    N, C, H, W = xb.shape
    if N < 2:
        raise ValueError(f"correspondence needs at least two images, got {N}")
    if not parts:
        raise ValueError("correspondence: give at least one part, e.g. minicnn.data.FACE_PARTS")
    if random not in ("shared", "per_image"):
        raise ValueError(f"correspondence: random must be 'shared' or 'per_image', got {random!r}")
    on = None
    if random_on is not None:
        on = np.asarray(random_on, dtype=bool)
        if on.shape != (N, H, W) or not on.reshape(N, -1).any(axis=1).all():
            raise ValueError(f"correspondence: random_on must be a bool array of shape {(N, H, W)} with at least one "
                             f"True per image, got shape {on.shape}")
    xp = backend.xp(xb)
    masks = {name: part_mask(p, (H, W)) for name, p in parts.items()}
    rng = np.random.default_rng(seed)

    last = max(net.index(layer) for layer in layers)

    def codes(x):
        """Every chosen layer's output from one forward pass (up to the deepest of them)."""
        out = {}
        for layer in net.layers[:last + 1]:
            x = layer.forward(x, train=False)
            if layer.name in layers:
                out[layer.name] = backend.to_numpy(x).reshape(x.shape[0], -1).astype(np.float64)
        return out

    base = codes(xb)

    fill_image = _fill_image(fill, (C, H, W), xp, xb.dtype)

    def scores(mask):
        """mask: (H, W), the same in every image, or (N, H, W), one per image."""
        occluded = xb.copy()
        m = xp.asarray(np.broadcast_to(mask, (N, H, W)))
        occluded[:] = xp.where(m[:, None], fill_image[None], occluded)
        changed = codes(occluded)
        return {layer: _sign_disagreement(np.sign(changed[layer] - base[layer])) for layer in layers}

    rows, results = [], []
    for name, mask in masks.items():
        rows.append(name)
        results.append(scores(mask))
    sizes = []
    for mask in masks.values():
        rr, cc = np.nonzero(mask)
        size = (int(rr.max() - rr.min() + 1), int(cc.max() - cc.min() + 1))
        if size not in sizes:
            sizes.append(size)
    for h, w in sizes:
        pooled = {layer: [] for layer in layers}
        for _ in range(n_random):
            if random == "shared":
                r0, c0 = _random_corner(rng, h, w, H, W, None if on is None else on.all(axis=0))
                trial = scores(part_mask((r0, r0 + h, c0, c0 + w), (H, W)))
            else:
                corners = [_random_corner(rng, h, w, H, W, None if on is None else on[i]) for i in range(N)]
                trial = scores(np.stack([part_mask((r0, r0 + h, c0, c0 + w), (H, W)) for r0, c0 in corners]))
            for layer in layers:
                pooled[layer].append(trial[layer])
        rows.append(f"random {h}x{w}" + (" per image" if random == "per_image" else ""))
        results.append({layer: np.concatenate(v) for layer, v in pooled.items()})
    mean = np.array([[res[l].mean() for l in layers] for res in results])
    std = np.array([[res[l].std() for l in layers] for res in results])
    return Correspondence(rows, layers, mean, std, [len(res[layers[0]]) for res in results])


def plot_correspondence(result, example=None, parts=None, mean=None, fill=0.0):
    """Bar chart of the table (one group per layer, parts vs random rows), and optionally ZF Fig. 8: an
    example image with each part occluded (painted with ``fill``, as ``correspondence`` did)."""
    from .plots import _show, image_to_display
    extra = 1 if example is not None else 0
    fig = figure(5 + 4 * extra, 3.2)
    axes = fig.subplots(1, 1 + extra, squeeze=False, gridspec_kw={"wspace": 0.4}).ravel()
    ax = axes[-1]
    R, L = result.mean.shape
    width = 0.8 / R
    for r, name in enumerate(result.rows):
        ax.bar(np.arange(L) + r * width, result.mean[r], width, yerr=result.std[r],
               label=name, hatch="//" if name.startswith("random") else None, capsize=2)
    ax.set_xticks(np.arange(L) + 0.4 - width / 2)
    ax.set_xticklabels(result.layers)
    ax.set_ylabel("mean feature sign change\n(normalised Hamming distance)", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Correspondence (ZF Table 1): lower than random = the part is handled alike", fontsize=8)
    if example is not None:
        H, W = example.shape[1:]
        shown = [image_to_display(example, mean)]
        fill_image = _fill_image(fill, example.shape, np, np.float64)
        for p in parts.values():
            img = np.array(example, dtype=np.float64, copy=True)
            m = part_mask(p, (H, W))
            img[:, m] = fill_image[:, m]
            shown.append(image_to_display(img, mean))
        tiles = [np.pad(t, [(1, 1), (1, 1)] + [(0, 0)] * (t.ndim - 2), constant_values=1) for t in shown]
        _show(axes[0], np.concatenate(tiles, axis=1), "original, then " + ", ".join(parts))
    return fig
