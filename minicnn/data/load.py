"""``load_dataset(name, ...)``: any dataset minicnn knows, split three ways and mean-subtracted.

=================  =========  ==============  ===========  ======================================================
name               classes    images          default size source
=================  =========  ==============  ===========  ======================================================
``digits``         10         1,797           1x8x8        scikit-learn ``load_digits`` (shipped)
``faces``          2          200             1x25x25      scikit-image ``lfw_subset`` (shipped)
``textures``       10         ``n_samples``   3x32x32      crops of scikit-image's sample photographs (shipped)
                              (2,000)
``photos``         21         ``n_samples``   3x32x32      multi-scale crops of every shipped photograph
                              (4,000)                      (scikit-image, scikit-learn, matplotlib)
``shapes``         6          ``n_samples``   3x32x32      procedural (:func:`minicnn.data.make_shapes`)
                              (3,000)
``mnist``          10         70,000          1x28x28      IDX files under ``root``
``fashion-mnist``  10         70,000          1x28x28      IDX files under ``root`` (default: Debian's
                                                           ``dataset-fashion-mnist``, /usr/share/datasets/)
``cifar10``        10         60,000          3x32x32      python batches under ``root``
``folder``         sub-dirs   files           as found     ``root/<class>/<image>``
=================  =========  ==============  ===========  ======================================================

Splits are deterministic (``seed``) and stratified by class. For ``mnist``, ``fashion-mnist`` and ``cifar10``
the official test set is the test split (``test_fraction`` is ignored) and ``val_fraction`` of the official
training set is held out for validation. For ``textures`` the splits come from disjoint tiles of each
photograph (see :func:`minicnn.data.datasets.make_textures`).
"""
from __future__ import annotations

import numpy as np

from ._common import check_size, resize_images, to_unit_float
from .splits import Splits, _check_fraction, make_splits, stratified_split

DATASETS = ("digits", "faces", "textures", "photos", "shapes", "mnist", "fashion-mnist", "cifar10", "folder")
LOCAL_DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder")
DEFAULT_SAMPLES = {"textures": 2000, "photos": 4000, "shapes": 3000}
# Horizontal flips keep the label everywhere but for handwritten digits.
HFLIP = {"digits": False, "mnist": False, "faces": True, "textures": True, "photos": True, "shapes": True,
         "fashion-mnist": True, "cifar10": True, "folder": True}


def stratified_subset(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of exactly ``min(n, N)`` items of ``y`` ``(N,)``, each class in proportion to its count.

    Per-class quotas are ``floor(n * count_k / N)``, plus one for the classes with the largest remainders.
    """
    y = np.asarray(y)
    n = check_size("stratified_subset", "n", n, minimum=0)
    if n >= len(y):
        return np.arange(len(y), dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = n * counts / len(y)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]] += 1
    picked = [rng.permutation(np.flatnonzero(y == k))[:q] for k, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def load_dataset(name: str, *, image_size=None, seed: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, subtract_mean: bool = True, n_samples=None, root=None) -> Splits:
    """Load a dataset by name and return its :class:`Splits` (train / val / test).

    name : one of :data:`DATASETS`.
    image_size : resize images to ``image_size x image_size`` (default: the dataset's own size; 32 for
        ``shapes`` and ``textures``). Digits at 8x8 are too small for most networks: 28 or 32 is typical.
    seed : fixes the split, any sub-sampling, and the generated images of ``shapes``/``textures``.
    val_fraction, test_fraction : fractions of each class held out (see the module notes for the sets that
        come with their own test set).
    subtract_mean : subtract the per-pixel mean of the train images (``splits.mean``, ``(C, H, W)``) from all
        three splits, as Zeiler & Fergus do.
    n_samples : number of images to generate (``shapes``, default 3,000; ``textures``, default 2,000; ``photos``,
        default 4,000), or to
        keep, class-balanced, from the other sets (default: all).
    root : folder of the local files for ``mnist``, ``fashion-mnist``, ``cifar10`` and ``folder`` (Fashion-MNIST is
        found without it where Debian's ``dataset-fashion-mnist`` is installed).

    Images are float32 ``(N, C, H, W)`` (in [0, 1] before the mean is subtracted), labels int64 ``(N,)``.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a str, got {type(name).__name__}")
    key = name.lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar": "cifar10", "lfw": "faces"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"load_dataset: unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if image_size is not None:
        image_size = check_size("load_dataset", "image_size", image_size, minimum=4)
    if n_samples is not None:
        n_samples = check_size("load_dataset", "n_samples", n_samples)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"load_dataset: seed must be an int, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"load_dataset: seed must be >= 0 (NumPy seeds are non-negative), got {seed}")
    val_fraction = _check_fraction("load_dataset", "val_fraction", val_fraction)
    test_fraction = _check_fraction("load_dataset", "test_fraction", test_fraction)
    if key not in ("mnist", "fashion-mnist", "cifar10") and val_fraction + test_fraction >= 1.0:
        raise ValueError(f"load_dataset: val_fraction + test_fraction must be < 1, got "
                         f"{val_fraction} + {test_fraction}")
    if root is not None and key not in LOCAL_DATASETS:
        raise ValueError(f"load_dataset: root= is only for the local datasets {LOCAL_DATASETS}; "
                         f"{key!r} ships with its package")
    common = dict(name=key, hflip=HFLIP[key], subtract_mean=bool(subtract_mean))

    if key in ("textures", "photos"):
        from .datasets import TEXTURE_SOURCES, make_photos, make_textures

        make = make_textures if key == "textures" else make_photos
        x, y, names, part, origin = make(n_samples or DEFAULT_SAMPLES[key], image_size or 32, seed,
                                         val_fraction, test_fraction)
        return make_splits(x, y, train_idx=np.flatnonzero(part == 0), val_idx=np.flatnonzero(part == 1),
                           test_idx=np.flatnonzero(part == 2), class_names=names, **common,
                           info={"split_by": "disjoint tiles of each photograph",
                                 "sources": dict(TEXTURE_SOURCES) if key == "textures" else list(names),
                                 "crop_origin": {"train": origin[part == 0], "val": origin[part == 1],
                                                 "test": origin[part == 2]}})

    if key in ("mnist", "fashion-mnist", "cifar10"):
        return _load_official_split(key, root, image_size, seed, val_fraction, n_samples, common)

    info = {}
    if key == "shapes":
        from .shapes import make_shapes

        x, y, names = make_shapes(n_samples or DEFAULT_SAMPLES[key], image_size or 32, seed)
    else:
        if key == "digits":
            from .datasets import load_digits_arrays as loader
        elif key == "faces":
            from .datasets import FACES_SIZE, face_parts, load_faces_arrays as loader

            info["face_parts"] = face_parts(image_size or FACES_SIZE)
        else:  # folder
            from .loaders import read_image_folder

            def loader(size):
                return read_image_folder(root, size)
        x, y, names = loader(image_size)
        if n_samples is not None:
            keep = stratified_subset(y, n_samples, seed)
            x, y = x[keep], y[keep]
    train_idx, val_idx, test_idx = stratified_split(y, (val_fraction, test_fraction), seed)
    return make_splits(x, y, train_idx=train_idx, val_idx=val_idx, test_idx=test_idx, class_names=names,
                       info=info, **common)


def _load_official_split(key, root, image_size, seed, val_fraction, n_samples, common) -> Splits:
    """MNIST, Fashion-MNIST, CIFAR-10: val carved from the official train set; test is the official test set."""
    from . import loaders
    from .loaders import FASHION_MNIST_CLASSES, read_cifar10, read_mnist

    if key == "fashion-mnist" and root is None:
        root = loaders.default_fashion_mnist_root('load_dataset("fashion-mnist")')
    if key == "cifar10":
        xtr, ytr, xte, yte, names = read_cifar10(root)
    else:
        xtr, ytr, xte, yte = read_mnist(root, key)
        xtr, xte = xtr[:, None], xte[:, None]
        names = [str(d) for d in range(10)] if key == "mnist" else list(FASHION_MNIST_CLASSES)
    ytr, yte = ytr.astype(np.int64), yte.astype(np.int64)
    if n_samples is not None:
        n_train = int(round(n_samples * len(ytr) / (len(ytr) + len(yte))))
        keep_tr = stratified_subset(ytr, max(n_train, 1), seed)
        keep_te = stratified_subset(yte, max(n_samples - n_train, 1), seed + 1)
        xtr, ytr, xte, yte = xtr[keep_tr], ytr[keep_tr], xte[keep_te], yte[keep_te]
    xtr, xte = to_unit_float(xtr, 255.0), to_unit_float(xte, 255.0)
    if image_size is not None:
        xtr, xte = resize_images(xtr, image_size), resize_images(xte, image_size)
    train_idx, val_idx = stratified_split(ytr, (val_fraction,), seed)
    return make_splits(xtr, ytr, train_idx=train_idx, val_idx=val_idx, test_idx=None, x_test=xte, y_test=yte,
                       class_names=names, **common, info={"test_set": "official"})
