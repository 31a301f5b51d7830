"""State dicts from files: ``.pth`` / ``.pt`` (torch.save), ``.safetensors``, ``.npz``.

``read_state_dict(path)`` returns ``{key: NumPy array}`` whatever the format; nothing here needs PyTorch.

* ``.pth`` / ``.pt`` / ``.bin``: :mod:`minicnn.weights.torch_file` (zip or legacy layout, restricted unpickler).
  A training checkpoint that wraps the weights (``{"state_dict": ...}`` or ``{"model": ...}``) is unwrapped, and
  the ``module.`` prefix that ``nn.DataParallel`` adds is removed.
* ``.safetensors``: the ``safetensors`` package's NumPy API (``pip install "minicnn[safetensors]"``); the format
  holds only a JSON header and raw arrays, so there is nothing to execute.
* ``.npz``: ``np.load(allow_pickle=False)``.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from .torch_file import TorchFileError, read_torch_file

__all__ = ["read_state_dict", "FORMATS"]

FORMATS = {".pth": "torch", ".pt": "torch", ".bin": "torch", ".ckpt": "torch", ".safetensors": "safetensors",
           ".npz": "npz"}
_WRAPPERS = ("state_dict", "model_state_dict", "model", "state")


def _flat_arrays(obj, path):
    """A dict of arrays, unwrapped from one level of training-checkpoint dict if needed."""
    if not isinstance(obj, dict):
        raise TorchFileError(f"{path}: holds a {type(obj).__name__}, not a state dict (a dict of tensors); "
                             f"save model.state_dict(), not the model")
    if not any(isinstance(v, np.ndarray) for v in obj.values()):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                return _flat_arrays(obj[key], path)
        raise TorchFileError(f"{path}: a dict without tensors (keys: {', '.join(map(str, list(obj)[:10]))}); "
                             f"expected a state dict, or a checkpoint with one under {' / '.join(_WRAPPERS)}")
    state = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise ImportError(f"reading {path} needs the safetensors package, which is not installed: "
                          f'pip install "minicnn[safetensors]"') from exc
    try:
        state = load_file(path)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; re-raised with the file name
        raise TorchFileError(f"{path}: not a readable safetensors file: {type(exc).__name__}: {exc}") from exc
    # bfloat16 has no NumPy dtype: safetensors' NumPy API refuses it with its own message above.
    return dict(state)


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise TorchFileError(f"{path}: not a readable .npz file: {type(exc).__name__}: {exc}") from exc


def read_state_dict(path, fmt=None):
    """Read a state dict: ``{key: NumPy array}``. fmt: "torch" | "safetensors" | "npz" (default: from the extension).

    Raises FileNotFoundError for a missing file, ValueError (``TorchFileError``) for an unreadable one or an
    unknown extension, ``UnsafePickleError`` (a ValueError) for a pickle that tries to load anything but tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    if fmt is None:
        ext = os.path.splitext(path)[1].lower()
        if ext not in FORMATS:
            raise TorchFileError(f"{path}: unknown extension {ext!r}; expected one of {', '.join(FORMATS)}")
        fmt = FORMATS[ext]
    if fmt == "torch":
        return _flat_arrays(read_torch_file(path), path)
    if fmt == "safetensors":
        return _read_safetensors(path)
    if fmt == "npz":
        return _flat_arrays(_read_npz(path), path)
    raise ValueError(f"read_state_dict: fmt must be 'torch', 'safetensors' or 'npz', got {fmt!r}")
