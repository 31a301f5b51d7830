"""Read the state dicts that ``torch.save`` writes, without PyTorch, and without running code from the file.

A ``.pth`` file is a Python pickle. Unpickling calls whatever functions the pickle names (``GLOBAL`` + ``REDUCE``),
so ``torch.load`` on a file from the internet can run any code (``os.system`` and friends) -- which is why
PyTorch itself now defaults to ``weights_only=True``. This reader is that idea, small enough to read:

* :class:`RestrictedUnpickler` answers ``find_class`` only for the handful of names a state dict needs --
  ``collections.OrderedDict``, torch's tensor-rebuild functions and storage types -- and maps those to
  NumPy stand-ins defined here. Any other name (``os.system``, ``builtins.eval``, ``subprocess.Popen``, even a
  harmless ``builtins.list``) raises :class:`UnsafePickleError` before anything is called.
* Tensors are rebuilt with NumPy: a storage is a flat array of one dtype; a tensor is a strided view of it
  (offset, size, stride in elements, bounds-checked here so a hostile file cannot make NumPy read outside it),
  copied so it owns its memory.

Two container layouts exist:

    zip (torch >= 1.6, the default)         legacy (torch < 1.6, or _use_new_zipfile_serialization=False)
    ARCHIVE/data.pkl     the pickle          pickle: magic number 0x1950a86a20f9469cfc6c
    ARCHIVE/data/KEY     raw storage bytes   pickle: protocol version 1001
    ARCHIVE/byteorder    "little" | "big"    pickle: sys info {"little_endian": ...}
    ARCHIVE/version      format version      pickle: the object (persistent ids name storages)
                                             pickle: the list of storage keys, then for each key:
                                                     int64 element count + the raw bytes

Both reach the same pickle: a storage appears as a persistent id ``("storage", StorageType, key, location,
numel[, view])`` and a tensor as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

__all__ = ["read_torch_file", "RestrictedUnpickler", "UnsafePickleError", "TorchFileError", "TORCH_STORAGE_DTYPES"]

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001

# torch storage class name -> NumPy dtype (bfloat16 has no NumPy dtype: read as uint16, widened to float32).
TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchFileError(ValueError):
    """A file that is not a readable torch.save state dict (corrupt, truncated, or an unsupported layout)."""


class UnsafePickleError(TorchFileError, pickle.UnpicklingError):
    """The pickle names something other than tensors, storages and ordered dicts: refused, nothing was run."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc. inside the pickle: just the element dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = TORCH_STORAGE_DTYPES[name]

    @property
    def numpy_dtype(self):
        return np.dtype(np.uint16 if self.dtype == "bfloat16" else self.dtype)


class _Storage:
    """A storage that has been read: a flat 1-D NumPy array (``data``) and the torch type name it came from."""

    def __init__(self, data, type_name):
        self.data = data
        self.type_name = type_name


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """NumPy version of ``torch._utils._rebuild_tensor_v2``: the strided view, bounds-checked, copied.

    storage: _Storage; storage_offset, size, stride: in elements. Extra arguments (requires_grad, backward
    hooks, metadata) do not matter for weights and are ignored. bfloat16 becomes float32 (exact).
    """
    if not isinstance(storage, _Storage):
        raise TorchFileError(f"a tensor refers to {type(storage).__name__}, not a storage")
    if storage.data is None:        # legacy layout: the bytes follow the pickle; build the tensor once they are read
        return _Deferred(storage, storage_offset, size, stride)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    offset = int(storage_offset)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise TorchFileError(f"a tensor has an invalid layout: offset {offset}, size {size}, stride {stride}")
    flat = storage.data
    if 0 in size:
        out = np.zeros(size, dtype=flat.dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise TorchFileError(f"a tensor of size {size}, stride {stride}, offset {offset} reaches element {last} "
                                 f"of a storage of {flat.size} elements (corrupt file?)")
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                               strides=tuple(s * flat.itemsize for s in stride), writeable=False)
        if view.flags.c_contiguous:
            # The usual case (a weight filling its own storage): a view of the array read from the file, which
            # nothing else holds, instead of a copy of VGG-16's 528 MB. Shared storages stay shared, as in torch.
            out = flat[offset:offset + int(np.prod(size))].reshape(size)
        else:
            out = np.array(view, order="C")
    if storage.type_name == "BFloat16Storage":       # the high half of a float32
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    """``torch._utils._rebuild_parameter``: an nn.Parameter is just its tensor here."""
    return data


class _Deferred:
    """A tensor of a legacy file whose storage bytes have not been read yet (see ``_refill``)."""

    def __init__(self, *args):
        self.args = args


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits tensors, storages and ordered dicts only (see the module docstring).

    load_storage(type: _StorageType, key: str, numel: int, storage: _Storage) -> 1-D NumPy array, or None when
    the bytes come later (legacy layout; the reader then sets ``storage.data``): supplied by the container reader.
    """

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, load_storage, source="file"):
        super().__init__(file)
        self._load_storage = load_storage
        self._source = source
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module in ("torch", "torch.cuda") and name in TORCH_STORAGE_DTYPES:
            return _StorageType(name)           # a file saved from the GPU names torch.cuda.FloatStorage: same bytes
        raise UnsafePickleError(f"{self._source}: refusing to load {module}.{name}: a state dict holds only tensors, "
                                f"storages and ordered dicts, and unpickling anything else could run code "
                                f"(nothing from the file was executed)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self._source}: unexpected persistent id {pid!r:.200} (expected a torch storage)")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            raise TorchFileError(f"{self._source}: storage {key} is a view of another storage (a layout older "
                                 f"PyTorch versions wrote); re-save the state dict with a current torch.save")
        if key not in self._storages:
            storage = _Storage(None, stype.name)
            storage.data = self._load_storage(stype, key, numel, storage)
            self._storages[key] = storage
        return self._storages[key]


def _read_storage(f, stype, numel, byteorder, where):
    """``numel`` elements of ``stype`` from the file object ``f`` into a new writable array (native byte order)."""
    dtype = stype.numpy_dtype.newbyteorder("<" if byteorder == "little" else ">")
    out = np.empty(numel, dtype=dtype)
    view, got = memoryview(out).cast("B"), 0          # read straight into the array: no bytes object in between
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    if got != numel * dtype.itemsize:
        raise TorchFileError(f"{where}: {got} bytes, expected {numel} {stype.name} elements "
                             f"({numel * dtype.itemsize} bytes): truncated file?")
    return out.astype(dtype.newbyteorder("="), copy=False)


def _read_zip(path, zf):
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise TorchFileError(f"{path}: a zip file, but not one torch.save wrote (it has {len(pkl)} data.pkl "
                             f"entries; entries: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''})")
    prefix = pkl[0][:-len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise TorchFileError(f"{path}: unknown byte order {byteorder!r} in {prefix}byteorder")

    def load_storage(stype, key, numel, storage):
        entry = f"{prefix}data/{key}"
        try:
            with zf.open(entry) as f:
                return _read_storage(f, stype, numel, byteorder, f"{path}: {entry}")
        except KeyError:
            raise TorchFileError(f"{path}: the pickle names storage {key!r} but the archive has no {entry}") from None

    with zf.open(pkl[0]) as f:
        return RestrictedUnpickler(io.BytesIO(f.read()), load_storage, path).load()


def _read_legacy(path, f):
    def header(what):
        # The three header pickles hold plain ints and a dict of ints and bools: no class may appear.
        return RestrictedUnpickler(f, _no_storage, f"{path} ({what})").load()

    try:
        magic = header("magic number")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        if isinstance(exc, UnsafePickleError):
            raise
        raise TorchFileError(f"{path}: neither a zip archive nor a legacy torch.save file (is it a state "
                             f"dict?): {exc}") from exc
    if magic != LEGACY_MAGIC:
        raise TorchFileError(f"{path}: not a torch.save file (no zip archive, and the first pickle is {magic!r:.60}, "
                             f"not torch's magic number)")
    version = header("protocol version")
    if version != LEGACY_PROTOCOL:
        raise TorchFileError(f"{path}: legacy torch.save protocol {version!r} is not supported (expected 1001)")
    info = header("system info")
    byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) else "big"
    pending = {}

    def load_storage(stype, key, numel, storage):
        # The bytes come after the object pickle: record what is needed now, fill it in below.
        pending[key] = (stype, numel, storage)
        return None

    obj = RestrictedUnpickler(f, load_storage, path).load()
    keys = RestrictedUnpickler(f, _no_storage, f"{path} (storage keys)").load()
    if not isinstance(keys, list):
        raise TorchFileError(f"{path}: expected the list of storage keys after the object, got {type(keys).__name__}")
    for key in keys:
        key = str(key)
        if key not in pending:
            raise TorchFileError(f"{path}: storage {key!r} listed but never used by the object")
        stype, numel, storage = pending.pop(key)
        head = f.read(8)
        if len(head) != 8:
            raise TorchFileError(f"{path}: truncated before the data of storage {key!r}")
        (count,) = struct.unpack("<q" if byteorder == "little" else ">q", head)
        if count != numel:
            raise TorchFileError(f"{path}: storage {key!r} holds {count} elements, the object expects {numel}")
        storage.data = _read_storage(f, stype, numel, byteorder, f"{path}: storage {key!r}")
    if pending:
        raise TorchFileError(f"{path}: storages {sorted(pending)} are used but their data is missing")
    # Tensors were rebuilt while unpickling, from the (then empty) storages: rebuild them again now.
    return _refill(obj)


def _no_storage(stype, key, numel, storage):
    raise UnsafePickleError(f"a header pickle refers to storage {key!r}")


def _refill(obj):
    """Legacy files: build the tensors that waited for their storage bytes, inside dicts, lists and tuples."""
    if isinstance(obj, _Deferred):
        return _rebuild_tensor(*obj.args)
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _refill(obj[key])
        return obj
    if isinstance(obj, list):
        return [_refill(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_refill(v) for v in obj)
    return obj


def read_torch_file(path):
    """Read a ``torch.save`` file (zip or legacy layout) into nested dicts / lists of NumPy arrays.

    Only tensors, storages and (ordered) dicts, lists, tuples, strings and numbers are admitted; anything else
    in the pickle raises ``UnsafePickleError`` before it is called. Raises ``FileNotFoundError`` for a missing
    file and ``TorchFileError`` (a ValueError) for one that is not a torch.save file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _read_zip(path, zf)
        with open(path, "rb") as f:
            return _read_legacy(path, f)
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, TypeError, AttributeError,
            IndexError, KeyError, ValueError, MemoryError) as exc:
        raise TorchFileError(f"{path}: not a readable torch.save file (corrupt or truncated?): "
                             f"{type(exc).__name__}: {exc}") from exc
