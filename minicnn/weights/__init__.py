"""Weights from outside: torchvision / timm state dicts read without PyTorch (ARCHITECTURE.md §9).

    read_state_dict(path)                 .pth / .pt (restricted unpickler), .safetensors, .npz -> {key: array}
    import_weights(arch, path)            -> Sequential ("vgg16", "alexnet_tv" = torchvision's "alexnet")
    import_run(arch, path, out)           -> run directory (best.npz + run.json): ``minicnn import``
"""
from .formats import FORMATS, read_state_dict
from .importer import (ALIASES, ARCHITECTURES, IMAGENET_PREPROCESSING, ImportMismatchError, convert_state_dict,
                       import_run, import_weights, resolve_arch, write_photo_run)
from .torch_file import TorchFileError, UnsafePickleError, read_torch_file

__all__ = ["read_state_dict", "read_torch_file", "FORMATS", "import_weights", "import_run", "write_photo_run",
           "convert_state_dict",
           "resolve_arch", "ARCHITECTURES", "ALIASES", "IMAGENET_PREPROCESSING", "ImportMismatchError",
           "TorchFileError", "UnsafePickleError"]
