"""Data for minicnn: datasets that ship offline, loaders for local files, splits, augmentation, batching.

    from minicnn.data import load_dataset, iterate_batches, Augment
    splits = load_dataset("digits", image_size=32)          # Splits: train / val / test, mean-subtracted
    for xb, yb in iterate_batches(splits.train.x, splits.train.y, 128, shuffle=True, rng=rng,
                                  augment=Augment(crop_pad=2, hflip=splits.hflip)):
        ...

Nothing here downloads anything. scikit-learn (``digits``) and scikit-image (``faces``, ``textures``) are
imported only when those datasets are asked for; without them the error says ``pip install "minicnn[data]"``.

Files: ``load.py`` (``load_dataset``), ``splits.py`` (``ArrayDataset``, ``Splits``, stratified splits and mean
subtraction), ``datasets.py`` (digits, faces, textures), ``shapes.py`` (procedural shapes), ``loaders.py``
(MNIST IDX, CIFAR-10 batches, image folders), ``augment.py`` (crops, flips, rotation, zoom, colour jitter, ten
crops), ``batching.py``.
"""
from .augment import Augment, colour_jitter, hflip, random_crop, random_hflip, ten_crop
from .batching import iterate_batches, num_batches
from .datasets import FACE_PARTS, FASHION_PARTS, TEXTURE_SOURCES, face_parts, fashion_parts, make_textures
from .load import DATASETS, load_dataset, stratified_subset
from .loaders import read_cifar10, read_idx, read_image_folder, read_mnist
from .shapes import SHAPE_CLASSES, make_shapes
from .splits import ArrayDataset, Splits, make_splits, stratified_split
from .augment import random_rotate, random_zoom, rotate, zoom   # noqa: E402  (rotation and zoom, issue 18)

__all__ = ["load_dataset", "DATASETS", "Splits", "ArrayDataset", "iterate_batches", "num_batches", "Augment", "colour_jitter",
           "random_crop", "random_hflip", "hflip", "ten_crop", "make_shapes", "SHAPE_CLASSES", "make_textures",
           "TEXTURE_SOURCES", "FACE_PARTS", "face_parts", "FASHION_PARTS", "fashion_parts", "stratified_split",
           "stratified_subset", "make_splits", "read_idx", "read_mnist", "read_cifar10", "read_image_folder"]
__all__ += ["rotate", "zoom", "random_rotate", "random_zoom"]
