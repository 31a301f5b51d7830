"""Readers for datasets a user already has on disk: MNIST-style IDX files, CIFAR-10 python batches, and a
folder of images with one sub-folder per class (read with Pillow). Nothing is downloaded.

Each reader returns uint8 or float arrays as found; :func:`minicnn.data.load_dataset` scales them to [0, 1]
and lays them out as ``(N, C, H, W)``.

File formats
------------
IDX (LeCun's MNIST format; Fashion-MNIST uses the same files): big-endian. Bytes 0-1 are zero, byte 2 the
element type (``0x08`` = unsigned byte), byte 3 the number of dimensions ``d``; then ``d`` uint32 sizes; then
the data. Images are ``idx3`` (magic 2051 = 0x00000803: ``N, rows, cols``), labels ``idx1`` (magic 2049 =
0x00000801: ``N``). Either may be gzip-compressed (``.gz``).

CIFAR-10 python: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` are pickled dicts with bytes keys:
``b"data"`` uint8 ``(N, 3072)`` (1024 red, then green, then blue values, each row-major 32x32) and
``b"labels"`` a list of ``N`` ints; ``batches.meta`` holds ``b"label_names"``. Pickles can run code, so they
are read with an unpickler that only accepts plain containers and NumPy arrays.
"""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_CLASSES = 10          # MNIST and Fashion-MNIST both have ten classes, labels 0..9
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Where Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``) puts the IDX files:
# ``load_dataset("fashion-mnist")`` looks there when no root is given.
FASHION_MNIST_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def default_fashion_mnist_root(func: str) -> str:
    """The first of :data:`FASHION_MNIST_SYSTEM_DIRS` that holds the test images, or a ValueError saying how to get one."""
    for folder in FASHION_MNIST_SYSTEM_DIRS:
        path = Path(folder)
        if any((path / n).is_file() for n in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
            return str(path)
    raise ValueError(f"{func}: no root= given and Fashion-MNIST is not installed in {', '.join(FASHION_MNIST_SYSTEM_DIRS)}; "
                     f"install Debian's package (apt-get install dataset-fashion-mnist) or pass root=<folder with the "
                     f"four IDX files>")


def _check_root(func: str, root) -> Path:
    if root is None:
        raise ValueError(f"{func}: this dataset is read from local files; pass root=<folder that holds them>")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{func}: root folder {str(root)!r} does not exist or is not a folder")
    return root


# ----------------------------------------------------------------------------------------------- IDX / MNIST
def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip-compressed when its name ends in ``.gz``) into a uint8 array.

    expected_magic : 2051 for images ``(N, rows, cols)``, 2049 for labels ``(N,)``, or None to accept any
    unsigned-byte IDX file. A wrong magic number or a file shorter than its header says raises ValueError
    naming the file.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"read_idx: cannot read {str(path)!r}: {exc}") from exc
    if len(raw) < 4:
        raise ValueError(f"read_idx: {str(path)!r} is {len(raw)} bytes long, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"read_idx: {str(path)!r} has magic number {magic} (0x{magic:08x}), expected "
                         f"{expected_magic} (0x{expected_magic:08x}) for an IDX "
                         f"{'image' if expected_magic == IDX_IMAGES_MAGIC else 'label'} file")
    if zero != 0 or dtype_code != 0x08 or ndim == 0:
        raise ValueError(f"read_idx: {str(path)!r} is not an unsigned-byte IDX file (magic 0x{magic:08x})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {str(path)!r} is truncated: {len(raw)} bytes, the header alone needs {header}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise ValueError(f"read_idx: {str(path)!r} should hold {count} bytes of data for shape {shape}, "
                         f"found {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(root: Path, base: str, func: str) -> Path:
    """The file for ``base`` in ``root``: ``base``, ``base.gz``, or the ``train-images.idx3-ubyte`` spelling."""
    dotted = base.replace("-idx", ".idx")
    names = [base, base + ".gz", dotted, dotted + ".gz"]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{func}: none of {names} found in {str(root)!r}")


def read_mnist(root, name: str = "mnist"):
    """Read MNIST or Fashion-MNIST from ``root`` (the four IDX files, plain or ``.gz``).

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 ``(N, 28, 28)`` images and uint8 ``(N,)`` labels.
    """
    func = f'load_dataset("{name}")'
    root = _check_root(func, root)
    arrays = {}
    for key, base in MNIST_FILES.items():
        magic = IDX_IMAGES_MAGIC if key.endswith("images") else IDX_LABELS_MAGIC
        arrays[key] = read_idx(_find_idx(root, base, func), magic)
    for split in ("train", "test"):
        xi, yi = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(xi) != len(yi):
            raise ValueError(f"{func}: {split} images and labels disagree in {str(root)!r}: "
                             f"{len(xi)} images, {len(yi)} labels")
        if yi.size and int(yi.max()) >= MNIST_CLASSES:
            bad = int(np.flatnonzero(yi >= MNIST_CLASSES)[0])
            raise ValueError(f"{func}: {split} labels must lie in 0..{MNIST_CLASSES - 1}, but label {bad} is "
                             f"{int(yi[bad])} ({MNIST_FILES[f'{split}_labels']} in {str(root)!r})")
    train_size, test_size = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if min(train_size + test_size) < 1:
        raise ValueError(f"{func}: images in {str(root)!r} have no pixels (train {train_size}, test {test_size})")
    if train_size != test_size:
        raise ValueError(f"{func}: train and test images differ in size in {str(root)!r}: train images are "
                         f"{train_size[0]}x{train_size[1]}, test images {test_size[0]}x{test_size[1]}")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


# ---------------------------------------------------------------------------------------------- CIFAR-10
class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that refuses everything but NumPy's array reconstruction helpers."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only NumPy arrays are allowed)")


def read_cifar_batch(path) -> dict:
    """Read one CIFAR-10 python batch: a dict with bytes keys (``b"data"``, ``b"labels"``, ...)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"read_cifar_batch: {str(path)!r} is not a readable CIFAR-10 python batch "
                         f"(a pickled dict): {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"read_cifar_batch: {str(path)!r} holds a {type(obj).__name__}, expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_arrays(path: Path):
    batch = read_cifar_batch(path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"read_cifar10: {str(path)!r} lacks the 'data' and 'labels' entries "
                         f"(has {sorted(batch)})")
    data = np.asarray(batch["data"])
    try:
        raw = np.asarray(batch["labels"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"read_cifar10: {str(path)!r}: 'labels' is not a list of integers: {exc}") from None
    # Labels are integers; a float label is refused unless it is a whole number (never silently truncated).
    if raw.dtype.kind == "f" and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        bad = int(np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)))[0])
        raise ValueError(f"read_cifar10: {str(path)!r}: labels must be integers, but label {bad} is "
                         f"{float(raw.flat[bad])!r}")
    if raw.dtype.kind not in "iuf" or raw.ndim != 1:
        raise ValueError(f"read_cifar10: {str(path)!r}: 'labels' must be a list of integers, got dtype {raw.dtype} "
                         f"shape {raw.shape}")
    labels = raw.astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"read_cifar10: {str(path)!r}: 'data' should be uint8 (N, 3072), got {data.dtype} "
                         f"{data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"read_cifar10: {str(path)!r}: {data.shape[0]} images but {labels.size} labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root):
    """Read CIFAR-10 python batches from ``root`` or ``root/cifar-10-batches-py``.

    Needs ``test_batch`` and at least ``data_batch_1`` (all of ``data_batch_1..5`` that exist are read, in
    order). Returns ``(x_train, y_train, x_test, y_test, class_names)`` with uint8 images ``(N, 3, 32, 32)``
    and int64 labels; class names come from ``batches.meta`` when present.
    """
    func = 'load_dataset("cifar10")'
    root = _check_root(func, root)
    if not (root / "test_batch").is_file() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_files = [root / f"data_batch_{i}" for i in range(1, 6) if (root / f"data_batch_{i}").is_file()]
    if not train_files or not (root / "test_batch").is_file():
        raise FileNotFoundError(f"{func}: expected data_batch_1 .. data_batch_5 and test_batch in {str(root)!r} "
                                f"(found {sorted(p.name for p in root.iterdir())[:10]})")
    parts = [_cifar_arrays(p) for p in train_files]
    x_test, y_test = _cifar_arrays(root / "test_batch")
    names = list(CIFAR10_CLASSES)
    if (root / "batches.meta").is_file():
        meta = read_cifar_batch(root / "batches.meta")
        if "label_names" in meta:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    for y, which in ((y_train, "train"), (y_test, "test")):
        if y.size and (y.min() < 0 or y.max() >= len(names)):
            raise ValueError(f"{func}: {which} labels outside 0..{len(names) - 1} in {str(root)!r}")
    return x_train, y_train, x_test, y_test, names


# ---------------------------------------------------------------------------------------------- folders
def _read_image(path: Path) -> np.ndarray:
    """One image file as ``(H, W)`` or ``(H, W, 3|4)`` float32 in [0, 1].

    Read with Pillow, which matplotlib (a minicnn requirement) already depends on.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB", "RGBA", "I;16"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file's name
        raise ValueError(f'load_dataset("folder"): cannot read image {str(path)!r}: {exc}') from exc
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def read_image_folder(root, image_size=None):
    """Read ``root/<class name>/<image files>``; classes are the sub-folders in sorted order.

    All images get the same channel count: 3 if any image has colour (grey ones replicated; alpha dropped),
    else 1. With ``image_size`` every image is resized to ``image_size x image_size``; without it, all images
    must already have the same size. Files whose extension is not one of :data:`IMAGE_EXTENSIONS` are skipped.
    Returns ``(x, y, class_names)``: x float32 ``(N, C, H, W)`` in [0, 1], y int64.
    """
    from ._common import resize_images, to_nchw

    func = 'load_dataset("folder")'
    root = _check_root(func, root)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{func}: {str(root)!r} has no sub-folders; expected one sub-folder per class")
    images, labels, names = [], [], []
    for d in class_dirs:
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"{func}: class folder {str(d)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        names.append(d.name)
        for f in files:
            images.append(_read_image(f))
            labels.append(len(names) - 1)
    channels = 3 if any(im.ndim == 3 and im.shape[2] >= 3 for im in images) else 1
    images = [to_nchw(im, channels)[None].astype(np.float32) for im in images]
    if image_size is not None:
        images = [resize_images(im, image_size) for im in images]
    else:
        shapes = {im.shape[2:] for im in images}
        if len(shapes) > 1:
            raise ValueError(f"{func}: images in {str(root)!r} have different sizes {sorted(shapes)}; "
                             f"pass image_size= to resize them")
    x = np.ascontiguousarray(np.concatenate(images), dtype=np.float32)
    return x, np.asarray(labels, dtype=np.int64), names


__all__ = ["read_idx", "read_mnist", "read_cifar_batch", "read_cifar10", "read_image_folder", "MNIST_FILES",
           "FASHION_MNIST_CLASSES", "CIFAR10_CLASSES", "IMAGE_EXTENSIONS", "FASHION_MNIST_SYSTEM_DIRS",
           "default_fashion_mnist_root"]
