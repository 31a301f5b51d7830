"""Datasets that ship inside scikit-learn and scikit-image: nothing is downloaded, ever.

Each builder returns images ``x`` float32 ``(N, C, H, W)`` in [0, 1], labels ``y`` int64 ``(N,)`` and the
class names; :func:`minicnn.data.load_dataset` splits them.

- ``digits``: scikit-learn's handwritten digits, 1,797 grey 8x8 images (ink 0..16), classes "0".."9".
- ``faces``: scikit-image's ``lfw_subset``, 200 grey 25x25 images; the first 100 are aligned faces from
  Labeled Faces in the Wild, the last 100 background patches: classes "face", "non-face". Eyes, nose and
  mouth sit at the same place in every face: see :data:`FACE_PARTS`.
- ``textures``: crops of scikit-image's sample photographs, one class per photograph (see
  :data:`TEXTURE_SOURCES`), colour; train, val and test crops come from disjoint tiles of each photograph.
- ``photos``: multi-scale crops of every photograph that ships with scikit-image, scikit-learn and matplotlib
  (:func:`photo_sources`), one class per photograph; split by tiles like ``textures``.
"""
from __future__ import annotations

import numpy as np

from ._common import check_size, require, resize_images, to_nchw, to_unit_float

# Boxes (row0, row1, col0, col1), half-open, in the 25x25 lfw_subset frame; "left"/"right" are as seen in
# the image (the viewer's left), i.e. "left_eye" is the subject's right eye. Placed on the mean of the 100
# faces: the eyes are the dark bands at rows 7-8 (columns 4-8 and 13-17), the nose the bright ridge at
# rows 10-13 down to the nostrils at row 14, the mouth the dark band at rows 17-18, columns 6-15. The face's
# symmetry axis is between columns 10 and 11. The four boxes do not overlap.
FACE_PARTS = {
    "left_eye": (6, 10, 3, 9),
    "right_eye": (6, 10, 13, 19),
    "nose": (10, 16, 8, 14),
    "mouth": (16, 20, 6, 16),
}
FACES_SIZE = 25


def _scale_parts(parts: dict, frame: int, image_size: int, who: str) -> dict:
    """Boxes placed in a ``frame x frame`` image scaled to ``image_size x image_size``: every edge is scaled and
    rounded to the nearest pixel, so boxes that touch in the frame still touch and never overlap at any size."""
    image_size = check_size(who, "image_size", image_size)
    s = image_size / frame

    def edge(v):
        return int(np.floor(v * s + 0.5))

    return {part: (edge(r0), max(edge(r1), edge(r0) + 1), edge(c0), max(edge(c1), edge(c0) + 1))
            for part, (r0, r1, c0, c1) in parts.items()}


def face_parts(image_size: int = FACES_SIZE) -> dict:
    """:data:`FACE_PARTS` scaled to ``image_size x image_size`` faces (see :func:`_scale_parts`)."""
    return _scale_parts(FACE_PARTS, FACES_SIZE, image_size, "face_parts")


# Parts of two Fashion-MNIST classes whose images are aligned pixel for pixel, for correspondence (ZF Table 1):
# boxes (row0, row1, col0, col1), half-open, in the published 28x28 frame, placed on the mean of the 100 shipped
# test images of each class. Ankle boots point left: the toe is the bright band at rows 16-23 left of column 9,
# the heel the block at rows 17-24 right of column 19, the shaft's opening rows 1-8, columns 14-22. Pullovers:
# the sleeves are the two bands at columns 3-8 and 19-24 from row 12 down, the collar the top rows 0-5.
FASHION_PARTS = {
    "Ankle boot": {"toe": (16, 24, 0, 9), "heel": (17, 25, 19, 28), "shaft top": (1, 9, 14, 23)},
    "Pullover": {"left sleeve": (12, 26, 2, 9), "right sleeve": (12, 26, 18, 25), "collar": (0, 6, 8, 20)},
}
FASHION_SIZE = 28


def fashion_parts(image_size: int = FASHION_SIZE, class_name: str = "Ankle boot") -> dict:
    """The parts of one Fashion-MNIST class (:data:`FASHION_PARTS`) scaled to ``image_size x image_size``."""
    if class_name not in FASHION_PARTS:
        raise ValueError(f"fashion_parts: no parts for class {class_name!r}; known: {', '.join(FASHION_PARTS)}")
    return _scale_parts(FASHION_PARTS[class_name], FASHION_SIZE, image_size, "fashion_parts")


def load_digits_arrays(image_size=None):
    """scikit-learn digits: x ``(1797, 1, S, S)`` (S = 8 or ``image_size``), y ``(1797,)``, names "0".."9"."""
    datasets = require("sklearn.datasets", "scikit-learn", 'load_dataset("digits")')
    bunch = datasets.load_digits()
    x = to_unit_float(bunch.images[:, None], 16.0)
    if image_size is not None:
        x = resize_images(x, image_size)
    return x, bunch.target.astype(np.int64), [str(d) for d in range(10)]


def load_faces_arrays(image_size=None):
    """scikit-image lfw_subset: x ``(200, 1, S, S)`` (S = 25 or ``image_size``), y ``(200,)`` (0 face, 1 non-face)."""
    data = require("skimage.data", "scikit-image", 'load_dataset("faces")')
    images = np.asarray(data.lfw_subset())
    if images.shape != (200, FACES_SIZE, FACES_SIZE):
        raise ValueError(f'load_dataset("faces"): expected lfw_subset of shape (200, 25, 25), got {images.shape}')
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    x = to_unit_float(images[:, None], scale)
    if image_size is not None:
        x = resize_images(x, image_size)
    y = np.repeat(np.arange(2, dtype=np.int64), 100)  # documented: first 100 faces, last 100 non-faces
    return x, y, ["face", "non-face"]


# (class name, skimage.data function). Grey photographs are replicated to 3 channels.
TEXTURE_SOURCES = (
    ("brick", "brick"), ("grass", "grass"), ("gravel", "gravel"), ("camera", "camera"),
    ("coins", "coins"), ("moon", "moon"), ("coffee", "coffee"), ("cat", "chelsea"),
    ("astronaut", "astronaut"), ("rocket", "rocket"),
)


def _tile_grid(h: int, w: int, tile: int):
    """Top-left corners of the non-overlapping ``tile x tile`` tiles covering as much of an ``h x w`` image."""
    return [(r, c) for r in range(0, h - tile + 1, tile) for c in range(0, w - tile + 1, tile)]


def make_textures(n_samples: int = 2000, image_size: int = 32, seed: int = 0, val_fraction: float = 0.15,
                  test_fraction: float = 0.15, sources=TEXTURE_SOURCES):
    """Random crops of scikit-image's sample photographs, one class per photograph.

    Each photograph is resized so that its shorter side is ``8 * image_size`` (256 pixels for 32x32 crops,
    so a crop shows the same part of a photograph whatever the size), converted to 3 channels, and cut into
    non-overlapping tiles of ``2 * image_size`` pixels. The tiles of each photograph are dealt at random
    (seeded) to train, val and test in the given fractions (at least one tile each when the fraction is
    > 0), and every crop lies inside one tile: **no test or val crop overlaps any train crop**. The crops
    themselves are at random positions inside a random tile of their split.

    n_samples : total number of crops, divided among classes equally and among splits by the fractions.
    Returns ``(x, y, class_names, split, origin)``: x float32 ``(n, 3, S, S)`` in [0, 1], y int64 ``(n,)``,
    ``split`` int8 ``(n,)`` with 0 train, 1 val, 2 test, and ``origin`` int64 ``(n, 2)``, the top-left
    corner (row, col) of each crop in its resized photograph.
    """
    data = require("skimage.data", "scikit-image", 'load_dataset("textures")')
    n_samples = check_size("make_textures", "n_samples", n_samples)
    size = check_size("make_textures", "image_size", image_size, minimum=4)
    k = len(sources)
    if n_samples < k:
        raise ValueError(f"make_textures: n_samples must be at least the number of classes ({k}), got {n_samples}")
    rng = np.random.default_rng(seed)
    tile = 2 * size
    per_class = np.full(k, n_samples // k)
    per_class[: n_samples % k] += 1
    xs, ys, splits, origins = [], [], [], []
    for label, (_, func) in enumerate(sources):
        photo = _photo_for_crops(getattr(data, func)(), size)
        corners = _tile_grid(photo.shape[2], photo.shape[3], tile)
        tile_part = _deal_tiles(len(corners), (val_fraction, test_fraction), rng)
        m = int(per_class[label])
        part = _split_parts(m, val_fraction, test_fraction)
        crops = np.empty((m, 3, size, size), dtype=np.float32)
        origin = np.empty((m, 2), dtype=np.int64)
        for i, p in enumerate(part):
            choices = np.flatnonzero(tile_part == p)
            r0, c0 = corners[int(rng.choice(choices))]
            dr, dc = rng.integers(0, tile - size + 1, size=2)
            crops[i] = photo[0, :, r0 + dr:r0 + dr + size, c0 + dc:c0 + dc + size]
            origin[i] = (r0 + dr, c0 + dc)
        xs.append(crops)
        ys.append(np.full(m, label, np.int64))
        splits.append(part)
        origins.append(origin)
    return (np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), [name for name, _ in sources],
            np.concatenate(splits), np.concatenate(origins))


def _photo_for_crops(raw, size: int) -> np.ndarray:
    """A photograph as float32 ``(1, 3, h, w)`` in [0, 1] (alpha dropped), resized so that its short side is
    ``8 * size``: every photograph then yields crops of ``size`` at the same relative scale."""
    raw = np.asarray(raw)
    if raw.ndim == 3 and raw.shape[2] == 4:
        raw = raw[..., :3]
    photo = to_nchw(raw, channels=3)[None]
    photo = to_unit_float(photo, 255.0 if photo.dtype == np.uint8 else 1.0)
    h, w = photo.shape[2:]
    scale = 8 * size / min(h, w)
    return resize_images(photo, (int(round(h * scale)), int(round(w * scale))))


def _split_parts(m: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """int8 ``(m,)``: which part each of a class's ``m`` crops goes to, 0 train, 1 val, 2 test, in that order."""
    n_val, n_test = int(round(val_fraction * m)), int(round(test_fraction * m))
    return np.concatenate([np.zeros(m - n_val - n_test, np.int8), np.ones(n_val, np.int8),
                           np.full(n_test, 2, np.int8)])


def _deal_tiles(n_tiles: int, fractions, rng) -> np.ndarray:
    """Assign ``n_tiles`` tiles to parts 0 (train), 1 (val), 2 (test): int8 ``(n_tiles,)``."""
    counts = []
    for f in fractions:
        c = int(round(f * n_tiles))
        counts.append(max(c, 1) if f > 0 else 0)
    if n_tiles - sum(counts) < 1:
        raise ValueError(f"make_textures: a photograph has only {n_tiles} tiles, too few for the fractions "
                         f"{tuple(fractions)}; use a smaller image_size")
    assign = np.concatenate([np.full(c, j + 1, np.int8) for j, c in enumerate(counts)]
                            + [np.zeros(n_tiles - sum(counts), np.int8)])
    return rng.permutation(assign)


# --------------------------------------------------------------------------------------------- photos
# Every photograph bundled with the installed packages (no fetcher that downloads is ever called): scikit-image's
# files in skimage/data, scikit-learn's two sample images, matplotlib's sample photograph. Drawings, phantoms,
# binary images and synthetic patterns are left out.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket",
                  "text")


def photo_sources():
    """The photographs that ship with the installed packages: a list of ``(name, loader)``, ``loader()`` giving an
    ``(H, W)`` or ``(H, W, 3)`` array. Packages that are not installed contribute nothing."""
    import os
    sources = []
    try:
        import skimage.data as skd
        here = os.path.dirname(skd.__file__)
        files = {"immunohistochemistry": "ihc.png", "hubble_deep_field": "hubble_deep_field.jpg",
                 "microaneurysms": "microaneurysms.png", "clock": "clock_motion.png", "rocket": "rocket.jpg",
                 "retina": "retina.jpg"}
        for name in SKIMAGE_PHOTOS:
            if os.path.exists(os.path.join(here, files.get(name, f"{name}.png"))):
                sources.append((name, getattr(skd, name)))
        if os.path.exists(os.path.join(here, "motorcycle_left.png")):
            sources.append(("motorcycle", lambda: skd.stereo_motorcycle()[0]))
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_image
        for fname in ("china.jpg", "flower.jpg"):
            sources.append((fname[:-4], lambda f=fname: load_sample_image(f)))
    except ImportError:
        pass
    try:
        import matplotlib
        path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        if os.path.exists(path):
            from PIL import Image

            def hopper(path=path):
                with Image.open(path) as im:
                    return np.asarray(im.convert("RGB"))
            sources.append(("grace_hopper", hopper))
    except ImportError:
        pass
    return sources


def make_photos(n_samples: int = 4000, image_size: int = 32, seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.15, max_scale: float = 2.0, sources=None):
    """Multi-scale colour crops of the shipped photographs, one class per photograph.

    Like :func:`make_textures` (shorter side resized to ``8 * image_size``, 3 channels, tiles dealt to train, val
    and test so that **no crop of one split overlaps a crop of another**), but each crop's side is drawn uniformly
    from ``image_size`` to ``max_scale * image_size`` pixels and resized to ``image_size``: the same object is seen
    at several scales. Tiles are ``2 * max_scale * image_size`` pixels.
    Returns ``(x, y, class_names, split, origin)`` as :func:`make_textures`; ``origin`` holds (row, col, side).
    """
    n_samples = check_size("make_photos", "n_samples", n_samples)
    size = check_size("make_photos", "image_size", image_size, minimum=4)
    if not max_scale >= 1.0:
        raise ValueError(f"make_photos: max_scale must be >= 1, got {max_scale}")
    sources = photo_sources() if sources is None else list(sources)
    k = len(sources)
    if k < 2:
        raise ValueError("make_photos: fewer than two photographs found; install scikit-image or scikit-learn")
    if n_samples < k:
        raise ValueError(f"make_photos: n_samples must be at least the number of photographs ({k}), got {n_samples}")
    rng = np.random.default_rng(seed)
    biggest = int(round(max_scale * size))
    tile = 2 * biggest
    per_class = np.full(k, n_samples // k)
    per_class[: n_samples % k] += 1
    xs, ys, splits, origins = [], [], [], []
    for label, (_, load) in enumerate(sources):
        photo = _photo_for_crops(load(), size)
        corners = _tile_grid(photo.shape[2], photo.shape[3], tile)
        tile_part = _deal_tiles(len(corners), (val_fraction, test_fraction), rng)
        m = int(per_class[label])
        part = _split_parts(m, val_fraction, test_fraction)
        crops = np.empty((m, 3, size, size), dtype=np.float32)
        origin = np.empty((m, 3), dtype=np.int64)
        for i, p in enumerate(part):
            r0, c0 = corners[int(rng.choice(np.flatnonzero(tile_part == p)))]
            side = int(rng.integers(size, biggest + 1))
            dr, dc = rng.integers(0, tile - side + 1, size=2)
            crop = photo[:, :, r0 + dr:r0 + dr + side, c0 + dc:c0 + dc + side]
            crops[i] = crop[0] if side == size else resize_images(crop, size)[0]
            origin[i] = (r0 + dr, c0 + dc, side)
        xs.append(crops)
        ys.append(np.full(m, label, np.int64))
        splits.append(part)
        origins.append(origin)
    return (np.ascontiguousarray(np.clip(np.concatenate(xs), 0.0, 1.0)), np.concatenate(ys),
            [name for name, _ in sources], np.concatenate(splits), np.concatenate(origins))
