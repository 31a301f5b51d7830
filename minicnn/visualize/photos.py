"""Zeiler & Fergus's figures from a folder of photos, for a network imported with ``minicnn import``.

``minicnn visualize RUN --images DIR`` (or with no folder: the photos that ship with scikit-image, scikit-learn
and matplotlib) draws, with the functions of this package and nothing re-implemented:

    filters, activations      first-layer filters; feature maps of one photo
    topk                      ZF Fig. 2: per feature map of each conv block, the 9 photos that excite it most,
                              their deconvnet projections cropped to the receptive field beside the patches
    projections               the strongest unit of each conv block projected to pixels, per photo
    saliency                  Simonyan saliency, guided backprop, deconvnet of the predicted class
    occlusion                 ZF Fig. 7 (b)-(e) for a few photos
    invariance                ZF Fig. 5: translation, scale, rotation

The photos are read lazily (:class:`PhotoSet`): the top-9 search streams over N photos ``batch_size`` at a time,
with a progress bar, and keeps only the running top-9 per map, so memory stays bounded whatever N is.
Photos carry no labels: the "class" of a photo is the network's top prediction.
"""
from __future__ import annotations

import html
import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import backend
from . import plots
from ._common import replace_directory

__all__ = ["PhotoSet", "bundled_photos", "BUNDLED_PHOTOS", "PHOTO_ITEMS", "DEFAULT_PHOTO_ITEMS",
           "write_photo_gallery", "photo_gallery_from_run"]

# (package, path inside it, name): photos that ship with packages minicnn may find installed (the data extra).
BUNDLED_PHOTOS = [
    ("skimage", "data/astronaut.png", "astronaut"), ("skimage", "data/chelsea.png", "chelsea (cat)"),
    ("skimage", "data/coffee.png", "coffee"), ("skimage", "data/rocket.jpg", "rocket"),
    ("skimage", "data/motorcycle_left.png", "motorcycle"), ("skimage", "data/camera.png", "cameraman"),
    ("skimage", "data/coins.png", "coins"), ("skimage", "data/brick.png", "brick"),
    ("skimage", "data/clock_motion.png", "clock"), ("skimage", "data/horse.png", "horse"),
    ("sklearn", "datasets/images/china.jpg", "china"), ("sklearn", "datasets/images/flower.jpg", "flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "grace hopper"),
]


def _package_dir(name):
    # find_spec locates a package without importing it (scikit-learn takes seconds to import).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_photos():
    """Paths of the bundled photos that are installed here (see ``BUNDLED_PHOTOS``); raises when none are."""
    found = []
    for package, rel, _ in BUNDLED_PHOTOS:
        root = _package_dir(package)
        if root is not None and (root / rel).is_file():
            found.append(str(root / rel))
    if not found:
        raise FileNotFoundError("no bundled photos found (they come with scikit-image and scikit-learn: "
                                'pip install "minicnn[data]"); give a folder of photos with --images DIR')
    return found


class PhotoSet:
    """Image files that behave like an (N, 3, crop, crop) float32 array, read and preprocessed on access.

    ``photos[i]`` is one preprocessed image (3, crop, crop); ``photos[a:b]`` is another PhotoSet (nothing read);
    ``photos[[i, j, ...]]`` reads those images into an array; ``np.asarray(photos)`` reads them all. This is what
    lets ``top_k`` stream over a folder without holding it in memory.
    """

    def __init__(self, files, preprocessing=None, cache_size=32, _cache=None):
        from ..imagenet import _check_preprocessing
        self.files = [os.fspath(f) for f in files]
        # Decoding and resizing a photo costs more than AlexNet's forward pass, and top_k reads each chosen photo
        # again for its projections: a few recently used images are kept (at most cache_size, shared by slices).
        self.cache_size = int(cache_size)
        self._cache = {} if _cache is None else _cache
        self.preprocessing = _check_preprocessing(preprocessing)
        crop = int(self.preprocessing["crop"])
        self.shape = (len(self.files), 3, crop, crop)
        self.ndim = 4
        self.dtype = np.dtype(np.float32)

    def __len__(self):
        return len(self.files)

    def _read(self, indices):
        from ..imagenet import preprocess_image
        crop = self.shape[2]
        out = np.empty((len(indices), 3, crop, crop), dtype=np.float32)
        for n, i in enumerate(indices):
            f = self.files[int(i)]
            image = self._cache.pop(f, None)
            if image is None:
                image = preprocess_image(f, self.preprocessing)
            out[n] = image
            if self.cache_size > 0:
                self._cache[f] = image                   # re-inserted: most recently used last
                while len(self._cache) > self.cache_size:
                    del self._cache[next(iter(self._cache))]
        return out

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._read([range(len(self))[key]])[0]
        if isinstance(key, slice):
            return PhotoSet(self.files[key], self.preprocessing, self.cache_size, self._cache)
        return self._read(np.asarray(key, dtype=np.int64).ravel())

    def __array__(self, dtype=None, copy=None):
        x = self._read(range(len(self)))
        return x if dtype is None else x.astype(dtype, copy=False)

    @property
    def names(self):
        return [Path(f).stem for f in self.files]


# --- the figures --------------------------------------------------------------------------------------------

def _topk(ctx):
    from .topk import top_k
    out = []
    n = len(ctx["x_pool"])
    for i, layer in enumerate(ctx["layers"], start=1):
        res = top_k(ctx["net"], ctx["x_pool"], layer, k=9, mean=ctx["mean"], select=8, batch_size=ctx["batch_size"],
                    show_progress=ctx["progress"])
        out.append((f"topk_layer{i}_{layer}.png", f"Top-9 projections, layer {i} ({layer})",
                    f"For the 8 most active maps of {layer}: the 9 strongest activations over {n} photos (one per "
                    f"photo; fewer than 9 photos repeat none), projected to pixels by the deconvnet and cropped to the "
                    f"{res.projections.shape[-2]}x{res.projections.shape[-1]} receptive field (left), and the photo "
                    f"patches under it (right) (ZF Fig. 2).", plots.plot_topk(res)))
    return out


def _strongest_units(net, x, layer):
    """Per image, the channel and position of the largest activation of ``layer`` over all its maps."""
    from .project import strongest_position
    xb = backend.xp(x).asarray(x)
    a = backend.to_numpy(net.forward(xb, until=layer))
    N, C = a.shape[:2]
    channels = a.reshape(N, C, -1).max(axis=2).argmax(axis=1)
    positions = backend.to_numpy(strongest_position(a[np.arange(N), channels]))
    return channels, positions


def _projections(ctx):
    from ._common import as_batch
    from .project import project_units
    from .topk import receptive_field
    from matplotlib.patches import Rectangle
    net, x, layers = ctx["net"], ctx["x_examples"], ctx["layers"]
    N, L = len(x), len(layers)
    fig = plots.figure(1.7 * (L + 1), 1.8 * N + 0.5)
    axes = fig.subplots(N, L + 1, squeeze=False)
    for i in range(N):
        plots._show(axes[i, 0], plots.image_to_display(x[i], ctx["mean"]),
                    ctx["class_names"][int(ctx["y_examples"][i])][:24])
    for j, layer in enumerate(layers, start=1):
        xb, _ = as_batch(net, x)
        channels, positions = _strongest_units(net, xb, layer)
        dx, _, _ = project_units(net, xb, layer, channels, positions, "deconvnet")
        dx = backend.to_numpy(dx)
        for i in range(N):
            plots._show(axes[i, j], plots.projection_to_display(dx[i]),
                        f"{layer} map {int(channels[i])}" if i == 0 else f"map {int(channels[i])}")
            r0, r1, c0, c1 = receptive_field(net, x.shape[1:], layer, positions[i])
            axes[i, j].add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, color="red", lw=0.8))
    fig.suptitle("The strongest unit of each conv block, projected to pixels by the deconvnet (red: its receptive "
                 "field)", fontsize=9)
    return [("projections.png", "Strongest units of each block, projected",
             f"For each photo (rows) and each conv block ({', '.join(layers)}), the single largest activation over "
             f"all maps, kept alone and sent down by the deconvnet (ZF Fig. 1-2); the red box is the unit's "
             f"receptive field.", fig)]


def _occlusion(ctx):
    from .occlusion import occlusion
    from .project import project
    net, xs, ys = ctx["net"], ctx["x_examples"][:3], ctx["y_examples"][:3]
    H = xs.shape[2]
    size, stride = max(3, H // 4), max(1, H // 8)        # coarser than the dataset gallery: a forward per square
    results, projections = [], []
    for x, y in zip(xs, ys):
        res = occlusion(net, x, int(y), size=size, stride=stride, batch_size=ctx["batch_size"],
                        show_progress=ctx["progress"])
        results.append(res)
        projections.append(project(net, x, res.layer, res.channel))
    fig = plots.plot_occlusion(results, xs, ctx["class_names"], projections, mean=ctx["mean"])
    return [("occlusion.png", "Occlusion sensitivity",
             f"A grey (ImageNet-mean) {size}x{size} square slid with stride {stride}: (b) total activation of the "
             f"strongest {results[0].layer} map, (c) that map's strongest unit projected, (d) probability of the "
             f"predicted class of the whole photo, (e) the most probable label (ZF Fig. 7).", fig)]


def _invariance(ctx):
    from .invariance import ZF_RANGES, invariance, plot_invariance
    net, x, y = ctx["net"], ctx["x_examples"][:3], ctx["y_examples"][:3]
    H = x.shape[2]
    amounts = {"translate": np.linspace(-0.25, 0.25, 7) * H, "scale": np.linspace(0.6, 1.4, 5),
               "rotate": ZF_RANGES["rotate"][::2]}
    results = [invariance(net, x, y, kind, amounts=amounts[kind]) for kind in ("translate", "scale", "rotate")]
    fig = plot_invariance(results, mean=ctx["mean"], class_names=ctx["class_names"])
    low, high = list(results[0].distances)
    return [("invariance.png", "Invariance to translation, scale, rotation",
             f"Euclidean distance between the {low} and {high} feature vectors of each photo and its transformed "
             f"copies, and the probability of its predicted class (ZF Fig. 5).", fig)]


def _from_gallery(name):
    def item(ctx):
        from .gallery import GALLERY_ITEMS
        return GALLERY_ITEMS[name](ctx)
    item.__name__ = f"_{name}"
    return item


PHOTO_ITEMS = {"filters": _from_gallery("filters"), "activations": _from_gallery("activations"), "topk": _topk,
               "projections": _projections, "saliency": _from_gallery("saliency"), "occlusion": _occlusion,
               "invariance": _invariance}
DEFAULT_PHOTO_ITEMS = tuple(PHOTO_ITEMS)


def _html(title, entries, intro):
    from .gallery import _html as gallery_html
    page = gallery_html(title, entries, [])
    return page.replace("</h1>", f"</h1><p>{html.escape(intro)}</p>", 1)


def write_photo_gallery(net, photos, out_dir, what=None, *, class_names, preprocessing=None, n_examples=4,
                        batch_size=8, show_progress=False, verbose=False, title=None):
    """Draw the chosen ``PHOTO_ITEMS`` for ``net`` on ``photos`` into ``out_dir`` (PNGs + index.html), atomically.

    photos: a ``PhotoSet``, a list of image files, or None (the bundled photos). class_names: one per output.
    n_examples: photos used by the per-photo figures (projections, saliency, occlusion, invariance; the first
    ones); the top-9 search uses them all, ``batch_size`` at a time. Returns the written file paths.
    """
    from ..imagenet import display_mean
    from .gallery import feature_layers
    from ._common import as_batch
    what = list(DEFAULT_PHOTO_ITEMS if what is None else what)
    if "all" in what:
        what = list(PHOTO_ITEMS)
    unknown = [w for w in what if w not in PHOTO_ITEMS]
    if unknown:
        raise ValueError(f"unknown figure(s) for photos: {', '.join(unknown)}; available: {', '.join(PHOTO_ITEMS)}")
    if not isinstance(photos, PhotoSet):
        photos = PhotoSet(bundled_photos() if photos is None else photos, preprocessing)
    if len(photos) == 0:
        raise ValueError("write_photo_gallery: no photos")
    x_examples = np.asarray(photos[list(range(min(n_examples, len(photos))))])
    xb, _ = as_batch(net, x_examples, "photos")
    y_examples = backend.to_numpy(net.forward(xb)).argmax(axis=1)
    if len(class_names) <= int(y_examples.max()):
        raise ValueError(f"write_photo_gallery: {len(class_names)} class names for a network with more outputs")
    ctx = {"net": net, "mean": display_mean(photos.preprocessing),
           "x_pool": photos, "x_examples": x_examples, "y_examples": y_examples, "class_names": list(class_names),
           "layers": feature_layers(net), "progress": show_progress, "batch_size": batch_size}

    out_dir = os.path.abspath(os.fspath(out_dir))
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        entries = []
        for item in what:
            t0 = time.perf_counter()
            for fname, t, caption, fig in PHOTO_ITEMS[item](ctx):
                plots.save(fig, os.path.join(tmp, fname))
                entries.append((fname, t, caption))
            if verbose:
                print(f"  gallery: {item} ({time.perf_counter() - t0:.1f} s)", flush=True)
        shown = ", ".join(f"{Path(f).stem} ({class_names[int(c)]})" for f, c in zip(photos.files, y_examples))
        intro = (f"{len(photos)} photos; the per-photo figures use the first {len(x_examples)}, with the network's "
                 f"predictions: {shown}.")
        with open(os.path.join(tmp, "index.html"), "w") as f:
            f.write(_html(title or f"{net.name} on {len(photos)} photos: what the network sees", entries, intro))
        replace_directory(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [os.path.join(out_dir, f) for f, _, _ in entries] + [os.path.join(out_dir, "index.html")]


def photo_gallery_from_run(run_dir, images=None, what=None, out_dir=None, which="best", device="cpu", **kwargs):
    """``minicnn visualize RUN --images DIR``: the photo gallery of a run made by ``minicnn import`` (or any run
    that records its ``preprocessing``), into ``out_dir`` (default ``RUN/gallery``). images: a folder, a list of
    image files, or None (the bundled photos)."""
    from ..imagenet import image_files
    from ..train import load_run
    run = load_run(run_dir, which=which, load_data=False)
    p = run.meta.get("preprocessing")
    if p is None:
        raise ValueError(f"{run_dir}: this run records no image preprocessing (it was trained on a dataset); "
                         f"--images works on runs made by `minicnn import`")
    if device != "cpu":
        run.net.to(device)
    names = run.meta.get("class_names") or []
    files = bundled_photos() if images is None else (image_files(images) if not isinstance(images, (list, tuple))
                                                     else list(images))
    return write_photo_gallery(run.net, PhotoSet(files, p), out_dir or os.path.join(os.fspath(run_dir), "gallery"),
                               what, class_names=names, **kwargs)
