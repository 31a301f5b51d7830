"""Building and loading the C loops: compiled at first use by the machine's C compiler, called through ctypes.

The sources are ``kernels/cpu_pool.c``, ``kernels/cpu_im2col.c`` and ``kernels/cpu_conv_direct.c`` (with
``cpu_common.h``), found through ``backend.KERNEL_DIR`` beside the CUDA kernels. Like the kernels, one source
serves both dtypes: the element type ``T`` is set at compile time (``-DT=float`` or ``-DT=double``). They need
GCC >= 12 or clang (GNU vector extensions and ``__builtin_shufflevector``).

Building: the first use in a fresh environment runs ``cc -O3 -march=native`` (``$CC`` if set), with a one-line
notice on stderr; it takes 3-4 s of CPU per dtype. The library is kept in a cache directory
(``$MINICNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/minicnn`` or ``~/.cache/minicnn``), named by a hash of the
sources, the compiler, its flags and the CPU, so that a changed source, compiler or machine builds anew.
``-march=native`` lets the compiler use AVX2 where the CPU has it (a second try without it where the compiler does
not know it); no ``-ffast-math``, which would change the NaN and signed-zero results the tests hold the loops to.

The cache survives crashes, power loss and concurrent processes:

* A library is loaded only after it is validated: beside ``X.so`` a sidecar ``X.so.sha256`` holds its size and
  SHA-256, written (atomically) after the library is in place. A library without its sidecar, or that does not
  match it (truncated by a crash, zero bytes, overwritten), is rebuilt: a truncated shared library would
  otherwise kill every later process with SIGBUS when the loader touches its missing pages.
* Builds write under a temporary name (``X.so.<pid>.partial``), fsync, rename over the final name and fsync the
  directory, so a reader sees no file or a whole one, also after a power loss.
* One build at a time per library, across processes: an exclusive ``fcntl`` lock on ``X.so.lock``; a process
  that waited finds the library built and loads it.
* Temporaries of builds whose process is gone (killed mid-build) are removed at the next first load.

Where no C compiler is found or a build fails, ``library()`` returns None, ``build_error()`` says why and the
public ops run their readable bodies (``minicnn info`` shows it all: ``info()``).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:            # not a POSIX system: builds are not serialised across processes
    fcntl = None

import numpy as np

from .. import backend

__all__ = ["library", "build_error", "gemm", "info", "call"]

SOURCES = ("cpu_pool.c", "cpu_im2col.c", "cpu_conv_direct.c")
HEADERS = ("cpu_common.h",)             # included by the sources: part of the cache key
FLAGS = ("-O3", "-std=gnu11", "-shared", "-fPIC")
ARCH_FLAGS = ("-march=native",)           # dropped (with a second try) where the compiler does not know it
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_libraries = {}            # dtype -> ctypes.CDLL, or None where its build failed
_errors = {}               # dtype -> why the build failed
_lock = threading.Lock()


def _fresh_lock_in_child():
    """A fork while another thread held the lock (building) would leave it held for ever in the child."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_in_child)

_P, _I = ctypes.c_void_p, ctypes.c_int64
# name -> (argument types: the pointers first, then the int64 sizes; return type) -- see the C sources
_SIGNATURES = {
    "max_pool_forward": ([_P, _P, _P, _P] + [_I] * 13, ctypes.c_int),
    "max_pool_backward": ([_P, _P, _P] + [_I] * 12, ctypes.c_int),
    "conv_forward_chunk": ([_P] * 7 + [_I] * 13, None),
    "conv_backward_chunk": ([_P] * 10 + [_I] * 14, None),
    "conv_direct": ([_P] * 4 + [_I] * 12, ctypes.c_int),
    "conv_direct_backward": ([_P] * 6 + [_I] * 12, ctypes.c_int),
}


def build_error(dtype=np.float32):
    """Why the C loops for ``dtype`` are not available (None when they are, or before the first try)."""
    return _errors.get(np.dtype(dtype))


def library(dtype):
    """The compiled loops for ``dtype`` (float32 or float64) as a ctypes library, building it on first use;
    None when that is not possible here (see ``build_error``)."""
    dtype = np.dtype(dtype)
    if dtype not in _TYPES:
        return None
    if dtype not in _libraries:
        with _lock:
            if dtype not in _libraries:
                try:
                    _libraries[dtype] = _load(_build(_TYPES[dtype]))
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    _libraries[dtype], _errors[dtype] = None, str(e)
    return _libraries[dtype]


_GEMM_SYMBOLS = {np.dtype(np.float32): ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
                 np.dtype(np.float64): ("scipy_cblas_dgemm64_", "cblas_dgemm64_")}
_gemms = {}


def gemm(dtype):
    """The address of NumPy's own BLAS cblas_?gemm for ``dtype``, for the C loops that call it (conv's chunk
    functions), or None. Only the ILP64 entry points (64-bit integers, the ``64_`` suffix of the OpenBLAS that
    NumPy's wheels bundle) are taken, since the C side passes 64-bit sizes; each is checked on a small product
    against ``np.matmul`` before it is used."""
    dtype = np.dtype(dtype)
    if dtype not in _gemms:
        with _lock:
            if dtype not in _gemms:
                _gemms[dtype] = _find_gemm(dtype)
    return _gemms[dtype]


def _find_gemm(dtype):
    try:
        from threadpoolctl import ThreadpoolController
        paths = [lib.filepath for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    except Exception:
        return None
    ctype = np.ctypeslib.as_ctypes_type(dtype)
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _GEMM_SYMBOLS.get(dtype, ()):
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            fn.restype = None
            fn.argtypes = [ctypes.c_int] * 3 + [_I] * 3 + [ctype, _P, _I, _P, _I, ctype, _P, _I]
            a = np.arange(6, dtype=dtype).reshape(2, 3)
            b = np.arange(12, dtype=dtype).reshape(3, 4) - 5
            c = np.full((2, 4), 7, dtype=dtype)
            fn(101, 111, 111, 2, 4, 3, 1.0, a.ctypes.data, 3, b.ctypes.data, 4, 0.0, c.ctypes.data, 4)
            if np.array_equal(c, a @ b):
                return ctypes.cast(fn, _P).value
    return None


def _compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        path = name and shutil.which(name)
        if path:
            return path
    raise RuntimeError("no C compiler (cc, gcc or clang) on the PATH")


def _cache_base():
    return os.environ.get("MINICNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "minicnn")


def info():
    """What ``minicnn info`` shows about the C loops: compiler, flags, cache directory, and per dtype the
    library loaded or why there is none (None: not tried yet in this process)."""
    try:
        cc = _compiler()
    except RuntimeError as e:
        cc = f"none ({e})"
    out = {"compiler": cc, "flags": " ".join(FLAGS + ARCH_FLAGS), "cache": _cache_base()}
    for dtype, ctype in _TYPES.items():
        lib = _libraries.get(dtype)
        out[ctype] = lib._name if lib is not None else _errors.get(dtype)
    out["blas gemm"] = "found" if any(_gemms.get(d) for d in _TYPES) else "not found (or not tried)"
    return out


def _cpu_fingerprint():
    """What -march=native depends on: a library built for one CPU may not run on another sharing the cache."""
    try:
        with open("/proc/cpuinfo") as f:
            return "".join(sorted({line for line in f if line.startswith(("model name", "flags", "Features"))}))
    except OSError:
        return platform.processor()


def _cache_dir():
    base = _cache_base()
    with contextlib.suppress(OSError):
        os.makedirs(base, exist_ok=True)
        if os.access(base, os.W_OK):
            return Path(base)
    scratch = tempfile.mkdtemp(prefix="minicnn-native-")        # nowhere to keep it: this process only
    atexit.register(shutil.rmtree, scratch, True)
    return Path(scratch)


def _build(ctype):
    """Path of the shared library of SOURCES for element type ``ctype``: the cached one if it is valid, else
    built now (under the inter-process lock; see the module docstring)."""
    cc = _compiler()
    sources = [backend.KERNEL_DIR / name for name in SOURCES]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256()
    for part in [cc, version, " ".join(FLAGS + ARCH_FLAGS), ctype, platform.machine(), _cpu_fingerprint()]:
        key.update(part.encode() + b"\0")
    for path in sources + [backend.KERNEL_DIR / name for name in HEADERS]:
        key.update(path.read_bytes())
    directory = _cache_dir()
    target = directory / f"cpu_loops_{ctype}_{key.hexdigest()[:16]}.so"
    remove_stale_temporaries(directory)
    if valid_library(target):
        return target
    with open(target.with_name(target.name + ".lock"), "a") as lock:
        if fcntl is not None:                        # one build at a time; released when the file closes
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if valid_library(target):                    # built by another process while this one waited
            return target
        print(f"minicnn: compiling the C loops for {ctype} (once, a few seconds; cached in {directory})",
              file=sys.stderr)
        errors = []
        for arch in (ARCH_FLAGS, ()):
            partial = _partial(target)
            cmd = [cc, *FLAGS, *arch, f"-DT={ctype}", *map(str, sources), "-o", str(partial)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                _publish(partial, target)
                return target
            with contextlib.suppress(OSError):
                os.unlink(partial)
            errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-2000:]}")
    raise RuntimeError("building the C loops failed (they need GCC >= 12 or clang):\n" + "\n".join(errors))


def _partial(path):
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


def _sidecar(target):
    return target.with_name(target.name + ".sha256")


def valid_library(target):
    """True when ``target`` exists and matches the size and SHA-256 its sidecar records."""
    try:
        size, digest = _sidecar(target).read_text().split()
        data = target.read_bytes()
        return len(data) == int(size) and hashlib.sha256(data).hexdigest() == digest
    except (OSError, ValueError):
        return False


def _publish(partial, target):
    """Move a finished build into place: fsync it, rename it over ``target``, then write (fsynced, renamed) the
    sidecar that makes it valid, then fsync the directory. A crash at any point leaves no valid-looking half
    library."""
    with contextlib.suppress(OSError):
        os.unlink(_sidecar(target))                   # an old sidecar must not vouch for the new file meanwhile
    data = partial.read_bytes()
    sidecar = _partial(_sidecar(target))
    sidecar.write_text(f"{len(data)} {hashlib.sha256(data).hexdigest()}\n")
    for path, final in ((partial, target), (sidecar, _sidecar(target))):
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(path, final)
    with contextlib.suppress(OSError):              # not every file system lets a directory be opened
        fd = os.open(target.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


# Temporary files of the tempfile.mkstemp builds of earlier versions (``tmp*.so``): no owner is recorded, so
# they are removed once they are this old (no build takes an hour).
LEGACY_TEMP_AGE = 3600.0


def remove_stale_temporaries(directory):
    """Remove the temporaries of builds whose process is gone (killed mid-build, power loss)."""
    for path in Path(directory).glob("*"):
        with contextlib.suppress(OSError, ValueError):
            if path.name.startswith("cpu_loops_") and path.name.endswith(".partial"):
                try:
                    os.kill(int(path.name.rsplit(".", 2)[-2]), 0)      # alive, or not ours to ask: leave it
                except ProcessLookupError:
                    path.unlink()
            elif path.name.startswith("tmp") and path.suffix == ".so":
                if time.time() - path.stat().st_mtime > LEGACY_TEMP_AGE:
                    path.unlink()


def _load(path):
    lib = ctypes.CDLL(str(path))
    for name, (argtypes, restype) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    return lib


def call(fn, *args):
    """Call a C loop; every loop returns 0, or -1 when its scratch memory could not be allocated."""
    if fn(*args) != 0:
        raise MemoryError(f"minicnn C loop {fn.__name__}: out of memory for its scratch buffers")
