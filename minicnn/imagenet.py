"""ImageNet inputs and outputs for imported networks: preprocessing, the 1000 class names, top-5 predictions.

Preprocessing follows torchvision's evaluation transform for its ImageNet weights: convert to RGB, resize so the
short side is 256 (bilinear, antialiased: Pillow's resize), centre crop 224x224, scale to [0, 1], then subtract
the per-channel mean (0.485, 0.456, 0.406) and divide by the std (0.229, 0.224, 0.225). A run directory made by
``minicnn import`` records these numbers in ``run.json`` and in its checkpoint, and everything here reads them
from there (``preprocessing`` dicts: resize, crop, mean, std).

The class names (``imagenet_classes.txt``, one per line, in the order of the network's 1000 outputs) are
torchvision's short English names of the ILSVRC-2012 classes; they ship with minicnn as package data.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["imagenet_class_names", "preprocess_image", "load_images", "image_files", "display_mean", "is_photo_run",
           "evaluate_folder",
           "top_predictions", "predict_files", "IMAGE_SUFFIXES", "DEFAULT_PREPROCESSING"]

DEFAULT_PREPROCESSING = {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@lru_cache(maxsize=1)
def _class_names():
    text = (Path(__file__).resolve().parent / "imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line for line in text.splitlines() if line]
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} names, expected 1000 (broken install?)")
    return tuple(names)


def imagenet_class_names():
    """The 1000 ImageNet class names, index = output unit of a torchvision ImageNet classifier."""
    return list(_class_names())


def _pil_image(image, where):
    from PIL import Image
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise FileNotFoundError(f"{where}: no such image file: {os.fspath(image)}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types; re-raised with the file name
            raise ValueError(f"{where}: cannot read image {os.fspath(image)!r}: {exc}") from exc
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"{where}: expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.dtype != np.uint8:          # floats in [0, 1]
        arr = np.clip(np.round(np.asarray(arr, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]))


def _check_preprocessing(p):
    p = {**DEFAULT_PREPROCESSING, **(p or {})}
    if int(p["crop"]) > int(p["resize"]) or int(p["crop"]) < 1:
        raise ValueError(f"preprocessing: crop ({p['crop']}) must be between 1 and resize ({p['resize']})")
    if len(p["mean"]) != 3 or len(p["std"]) != 3 or min(p["std"]) <= 0:
        raise ValueError(f"preprocessing: mean and std need 3 values each (std > 0), got {p['mean']}, {p['std']}")
    return p


def preprocess_image(image, preprocessing=None):
    """One image -> (3, crop, crop) float32 network input.

    image: a file path, a PIL image, or an array (H, W[, 3|4]) of uint8 or floats in [0, 1].
    preprocessing: {"resize", "crop", "mean", "std"} (default torchvision's ImageNet numbers): the short side is
    resized to ``resize`` (long side ``int(resize * long / short)``, as torchvision), the centre ``crop`` x ``crop``
    is cut (offsets rounded as torchvision's CenterCrop), then ``(x / 255 - mean) / std`` per channel.
    """
    from PIL import Image
    p = _check_preprocessing(preprocessing)
    im = _pil_image(image, "preprocess_image")
    w, h = im.size
    size = int(p["resize"])
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    if new != (w, h):
        im = im.resize(new, Image.BILINEAR)
    crop = int(p["crop"])
    w, h = im.size
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    im = im.crop((left, top, left + crop, top + crop))
    x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)
    mean = np.asarray(p["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(p["std"], dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def load_images(images, preprocessing=None):
    """A list of images (paths, PIL images or arrays) -> (N, 3, crop, crop) float32."""
    p = _check_preprocessing(preprocessing)
    out = np.empty((len(images), 3, int(p["crop"]), int(p["crop"])), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess_image(image, p)
    return out


def image_files(folder):
    """Every image file under ``folder`` (recursively, sorted), by suffix (``IMAGE_SUFFIXES``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise ValueError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [str(p) for p in files]


def display_mean(preprocessing=None):
    """A (3, 1, 1) "mean" that ``minicnn.visualize.plots`` adds back before its per-image min-max scaling.

    Inputs are (x - m) / s; adding m / s gives x / s, which min-max scaling shows with the photo's own colours
    up to the small spread of s (0.224 to 0.229, under 2%).
    """
    p = _check_preprocessing(preprocessing)
    return (np.asarray(p["mean"], dtype=np.float32) / np.asarray(p["std"], dtype=np.float32))[:, None, None]


def top_predictions(logits, class_names, k=5):
    """logits (N, K) -> per row a list of k (class index, class name, probability), most probable first."""
    from .ops.activation import log_softmax
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(log_softmax(logits, axis=1))
    k = min(k, logits.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(int(c), str(class_names[c]), float(probs[n, c])) for c in row] for n, row in enumerate(order)]


def predict_files(run_dir, files, k=5, batch_size=8):
    """``minicnn predict RUN IMAGE...``: top-k classes of each image file. Returns [(file, [(index, name, p)])]."""
    from .train import load_run, predict_logits
    run = load_run(run_dir, load_data=False)
    names = run.meta.get("class_names") or [str(i) for i in range(run.net.layers[-1].config["out_features"])]
    p = run.meta.get("preprocessing")
    if p is None:
        raise ValueError(f"{run_dir}: this run records no image preprocessing (it was trained on a dataset, not "
                         f"imported); predict works on runs made by `minicnn import`")
    results = []
    for start in range(0, len(files), batch_size):
        chunk = list(files[start:start + batch_size])
        logits = predict_logits(run.net, load_images(chunk, p))
        results.extend(zip(chunk, top_predictions(logits, names, k)))
    return results


def is_photo_run(run_dir, which="best"):
    """True when a run (directory or checkpoint file) records image preprocessing, i.e. was made by
    ``minicnn import``; reads only run.json or the checkpoint's small meta entry, not the weights."""
    import json
    path = os.fspath(run_dir)
    if os.path.isdir(path):
        rj = os.path.join(path, "run.json")
        if os.path.isfile(rj):
            try:
                with open(rj) as f:
                    return "preprocessing" in json.load(f)
            except (OSError, ValueError):
                return False
        return False
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as data:
                return "preprocessing" in json.loads(str(data["meta.json"]))
        except (OSError, ValueError, KeyError):
            return False
    return False


def _folder_labels(root, class_names):
    """Image files of ``root/<class>/...`` with the class index of their folder: the folder name is a class name
    (case-insensitive) or an output index."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    files, labels, unknown = [], [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        key = d.name.lower().replace("_", " ")
        if d.name.isdigit() and int(d.name) < len(class_names):
            label = int(d.name)
        elif d.name.lower() in lookup or key in lookup:
            label = lookup.get(d.name.lower(), lookup.get(key))
        else:
            unknown.append(d.name)
            continue
        for f in image_files(d):
            files.append(f)
            labels.append(label)
    if unknown:
        raise ValueError(f"{root}: sub-folders {unknown[:5]} are neither class names nor class indices "
                         f"0..{len(class_names) - 1} (e.g. {class_names[0]!r} or 0)")
    if not files:
        raise ValueError(f"{root}: expected one sub-folder per class (named by class name or index) holding images")
    return files, np.asarray(labels, dtype=np.int64)


def evaluate_folder(run_dir, root, batch_size=8, which="best"):
    """``minicnn evaluate RUN --images DIR`` for an imported run: top-1 / top-5 / loss over ``DIR/<class>/*``.

    Streams the images ``batch_size`` at a time. Returns {"loss", "top1", "top5", "n", "checkpoint"}.
    """
    from .ops.loss import softmax_cross_entropy
    from .train import load_run, predict_logits, topk_correct
    run = load_run(run_dir, which=which, load_data=False)
    p = run.meta.get("preprocessing")
    if p is None:
        raise ValueError(f"{run_dir}: this run records no image preprocessing; --images works on imported runs")
    files, labels = _folder_labels(root, run.meta.get("class_names") or [])
    loss, top1, top5 = 0.0, 0, 0
    for start in range(0, len(files), batch_size):
        logits = predict_logits(run.net, load_images(files[start:start + batch_size], p)).astype(np.float64)
        y = labels[start:start + batch_size]
        loss += float(softmax_cross_entropy(logits, y)[0]) * len(y)
        top1 += topk_correct(logits, y, 1)
        top5 += topk_correct(logits, y, 5)
    n = len(files)
    return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n, "n": n, "checkpoint": run.meta["checkpoint"]}
