"""Pretrained ImageNet networks from torchvision / timm state dicts: minicnn networks and run directories.

    import_weights("vgg16", "vgg16-397923af.pth")          -> Sequential with the file's weights
    import_run("alexnet", "alexnet-owt-7be5be79.pth", "runs/alexnet")   -> a run directory every command reads

Architectures (``ARCHITECTURES``; the first name is minicnn's, the others are accepted on the command line):

    vgg16       Simonyan & Zisserman's configuration D, torchvision's ``vgg16`` (= minicnn's zoo ``vgg16``)
    alexnet_tv  torchvision's ``alexnet``: the single-GPU "one weird trick" AlexNet, 64-192-384-256-256 filters,
                no LRN (minicnn's zoo ``alexnet`` is the 2012 paper's 96-filter network: a different model).
                Also accepted: ``alexnet``, ``alexnet_owt``.

Key layouts: torchvision's (``features.N.weight``, ``classifier.N.weight``) and, for VGG-16, timm's
(``pre_logits.fc1`` / ``fc2`` stored as 7x7 and 1x1 convolutions, ``head.fc``). Conversions: PyTorch's Linear
weight is (out, in), minicnn's (in, out): transposed; timm's convolution-shaped fc weights are flattened in
(C, H, W) order, which is the order of minicnn's Flatten. Everything is stored as float32.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .. import models
from .formats import read_state_dict

__all__ = ["ARCHITECTURES", "ALIASES", "resolve_arch", "import_weights", "import_run", "write_photo_run",
           "convert_state_dict",
           "IMAGENET_PREPROCESSING", "ImportMismatchError"]

# torchvision's ImageNet evaluation transform (torchvision.transforms._presets.ImageClassification).
IMAGENET_PREPROCESSING = {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                          "interpolation": "bilinear", "scale": "RGB in [0, 1], then (x - mean) / std per channel"}


class ImportMismatchError(ValueError):
    """A state dict that does not fit the chosen architecture (keys or shapes)."""


def _vgg16_layouts():
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    names = [f"conv{b}_{i}" for b, n in enumerate([2, 2, 3, 3, 3], start=1) for i in range(1, n + 1)]
    features = {f"features.{k}": (name, "conv") for k, name in zip(convs, names)}
    tv = {**features, "classifier.0": ("fc6", "linear"), "classifier.3": ("fc7", "linear"),
          "classifier.6": ("fc8", "linear")}
    timm = {**features, "pre_logits.fc1": ("fc6", "conv_as_linear"), "pre_logits.fc2": ("fc7", "conv_as_linear"),
            "head.fc": ("fc8", "linear")}
    return {"torchvision": tv, "timm": timm}


def _alexnet_tv_layouts():
    tv = {"features.0": ("conv1", "conv"), "features.3": ("conv2", "conv"), "features.6": ("conv3", "conv"),
          "features.8": ("conv4", "conv"), "features.10": ("conv5", "conv"), "classifier.1": ("fc6", "linear"),
          "classifier.4": ("fc7", "linear"), "classifier.6": ("fc8", "linear")}
    return {"torchvision": tv}


# name -> (zoo builder name, {layout name: {source module: (minicnn layer, kind)}}, input shape)
ARCHITECTURES = {"vgg16": ("vgg16", _vgg16_layouts(), (3, 224, 224)),
                 "alexnet_tv": ("alexnet_tv", _alexnet_tv_layouts(), (3, 224, 224))}
ALIASES = {"alexnet": "alexnet_tv", "alexnet_owt": "alexnet_tv", "alexnet-owt": "alexnet_tv", "vgg-16": "vgg16",
           "vgg16_tv": "vgg16"}


def resolve_arch(arch):
    """minicnn's name for an architecture given on the command line (``alexnet`` -> ``alexnet_tv``)."""
    name = ALIASES.get(str(arch).lower(), str(arch).lower())
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; importable: {', '.join(ARCHITECTURES)} "
                         f"(also accepted: {', '.join(ALIASES)})")
    return name


def _expected_keys(layout):
    return {f"{module}.{p}" for module in layout for p in ("weight", "bias")}


def _best_layout(state, layouts):
    """The layout whose keys overlap the file's most: (name, layout, missing keys, unexpected keys)."""
    keys = set(state)
    scored = []
    for name, layout in layouts.items():
        expected = _expected_keys(layout)
        scored.append((len(expected & keys), name, layout, sorted(expected - keys), sorted(keys - expected)))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return scored[0][1:]


def _fits_other(state, arch):
    """Other architectures whose key layout the file matches exactly (for the error message)."""
    return [other for other, (_, layouts, _) in ARCHITECTURES.items() if other != arch
            and any(_expected_keys(lay) == set(state) for lay in layouts.values())]


def _natural(key):
    """Sort key that puts features.2 before features.10."""
    return [int(t) if t.isdigit() else t for t in key.split(".")]


def _short(keys, n=12):
    keys = sorted(keys, key=_natural)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _transposed(W):
    """A C-contiguous W.T, copied in blocks of rows: twice as fast as one strided copy for VGG's 4096 x 25088 fc6."""
    out = np.empty(W.shape[::-1], dtype=np.float32)
    for i in range(0, W.shape[0], 256):
        out[:, i:i + 256] = W[i:i + 256].T
    return out


def convert_state_dict(state, arch, source="state dict"):
    """torchvision/timm keys and layouts -> minicnn's ``{"conv1_1.W": array, ...}`` for ``arch``.

    Returns (minicnn state dict, layout name, number of classes). Raises ImportMismatchError naming the file,
    the keys that do not fit (missing and unexpected), or the key with its expected and actual shape.
    """
    _, out, layout_name, num_classes = _convert(state, arch, source)
    return out, layout_name, num_classes


def _convert(state, arch, source):
    """convert_state_dict, also returning the (zero-weight) network it built to know the shapes."""
    arch = resolve_arch(arch)
    builder, layouts, input_shape = ARCHITECTURES[arch]
    layout_name, layout, missing, unexpected = _best_layout(state, layouts)
    if missing or unexpected:
        other = _fits_other(state, arch)
        hint = f" The keys fit {' / '.join(other)}: import it as that." if other else ""
        raise ImportMismatchError(
            f"{source} does not fit {arch} ({layout_name} layout): keys missing from the file: "
            f"{_short(missing) or 'none'}; keys in the file that {arch} has no place for: "
            f"{_short(unexpected) or 'none'}.{hint}")
    fc8 = [m for m, (layer, _) in layout.items() if layer == "fc8"][0]
    num_classes = int(state[f"{fc8}.weight"].shape[0])
    net = models.build(builder, num_classes=num_classes, input_shape=input_shape, init="zeros")
    out = {}
    for module, (layer, kind) in layout.items():
        own_W, own_b = net[layer].params["W"], net[layer].params["b"]
        W, b = state[f"{module}.weight"], state[f"{module}.bias"]
        if kind == "conv":
            want_W = tuple(own_W.shape)
            fits = tuple(W.shape) == want_W
        else:                                    # PyTorch stores (out, in); timm's conv-as-fc (out, C, kh, kw)
            want_W = (own_W.shape[1], own_W.shape[0])
            fits = tuple(W.shape) == want_W or (kind == "conv_as_linear" and W.ndim == 4 and W.shape[0] == want_W[0]
                                                 and int(np.prod(W.shape[1:])) == want_W[1])
        for key, arr, want, ok in ((f"{module}.weight", W, want_W, fits),
                                   (f"{module}.bias", b, tuple(own_b.shape), tuple(b.shape) == tuple(own_b.shape))):
            if not ok:
                raise ImportMismatchError(f"{source}: {key} has shape {tuple(arr.shape)}, but {arch}'s {layer} "
                                          f"expects {want}")
            if arr.dtype.kind != "f":
                raise ImportMismatchError(f"{source}: {key} holds {arr.dtype} values, expected floating point")
        if kind != "conv":
            W = _transposed(W.reshape(W.shape[0], -1))
        out[f"{layer}.W"] = np.ascontiguousarray(W, dtype=np.float32)
        out[f"{layer}.b"] = np.ascontiguousarray(b, dtype=np.float32)
    return net, out, layout_name, num_classes


def import_weights(arch, path, return_info=False):
    """The network ``arch`` ("vgg16", "alexnet_tv" or "alexnet") with the weights of the state dict in ``path``
    (.pth / .pt, .safetensors or .npz; see ``minicnn.weights.formats``). Returns a ``Sequential`` (float32,
    CPU); with ``return_info=True`` also {"arch", "layout", "num_classes", "source"}."""
    arch = resolve_arch(arch)
    path = os.fspath(path)
    state = read_state_dict(path)
    net, converted, layout, num_classes = _convert(state, arch, path)
    del state
    input_shape = ARCHITECTURES[arch][2]
    for key, value in converted.items():
        # convert_state_dict checked every shape and made every array float32 and C-contiguous: hand them over
        # instead of copying 528 MB once more through load_state_dict.
        layer, param = key.rsplit(".", 1)
        net[layer].params[param] = value
    info = {"arch": arch, "layout": layout, "num_classes": num_classes, "source": os.path.abspath(path),
            "input_shape": list(input_shape)}
    return (net, info) if return_info else net


def import_run(arch, path, out, class_names=None):
    """``minicnn import ARCH FILE --out RUN``: the imported network as a run directory.

    Writes ``out/best.npz`` (the usual checkpoint format: ``minicnn.train.load_run(out, load_data=False).net``)
    and ``out/run.json`` (architecture, source file, preprocessing, class names). class_names: default the 1000
    ImageNet classes when the file has 1000 outputs, else ``class 0`` ... Returns the path of ``best.npz``.
    """
    net, info = import_weights(arch, path, return_info=True)
    return write_photo_run(net, out, info=info, class_names=class_names)


def write_photo_run(net, out, *, info=None, class_names=None, preprocessing=None, input_shape=None):
    """Save a network that classifies photos as a run directory (``best.npz`` + ``run.json``).

    info: what to record about its origin (``import_weights(..., return_info=True)``); class_names: one per
    output (default: ImageNet's when there are 1000); preprocessing: {"resize", "crop", "mean", "std"} (default
    ImageNet's); input_shape: (3, crop, crop) by default. Returns the path of ``best.npz``.
    """
    from ..imagenet import imagenet_class_names
    from ..train import BEST, _atomic_write_text, save_checkpoint
    preprocessing = {**IMAGENET_PREPROCESSING, **(preprocessing or {})}
    crop = int(preprocessing["crop"])
    input_shape = list(input_shape or (3, crop, crop))
    num_classes = net.layer_info(tuple(input_shape))[-1].output_shape[0]
    if class_names is None:
        class_names = (imagenet_class_names() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)])
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"write_photo_run: {len(class_names)} class names for {num_classes} outputs")
    info = dict(info or {"arch": net.name})
    out = os.fspath(out)
    from ..imagenet import is_photo_run
    if any(os.path.exists(os.path.join(out, f)) for f in (BEST, "checkpoint.npz")) and not is_photo_run(out):
        raise ValueError(f"{out} already holds a trained run (best.npz / checkpoint.npz); writing an imported "
                         f"network there would replace its weights: choose another --out")
    os.makedirs(out, exist_ok=True)
    meta = {"imported": info, "input_shape": input_shape, "class_names": class_names,
            "preprocessing": preprocessing, "data": None, "history": []}
    path_best = save_checkpoint(os.path.join(out, BEST), net, meta=meta)
    _atomic_write_text(os.path.join(out, "run.json"), json.dumps(
        {"imported": info, "preprocessing": preprocessing, "input_shape": input_shape, "class_names": class_names},
        indent=1))
    return path_best
