"""The one place where a public op may hand its work to the fast CPU path, and the switch that decides.

Two CPU paths compute every op:

* **readable**: the bodies in ``ops/*.py``, NumPy written to be read. They are the definition.
* **fast**: ``minicnn.fast_cpu``, C loops compiled on first use and minicnn's own threads; the same results
  (tests/test_paths_fuzz.py holds every op on every path to the readable one).

The fast path is the default where it can run. Pick one with a context manager, or for a whole session::

    with minicnn.cpu_path("readable"):    # a breakpoint in ops/conv.py's conv2d_backward is hit in here
        net.backward(dy)
    minicnn.cpu_path("readable")          # as a plain call: from now on (notebooks 01-03 start so)

or with the environment variable ``MINICNN_CPU_PATH=readable`` (or ``fast``), read at import.
``minicnn.active_cpu_path()`` says which path runs and why; ``minicnn info`` and ``net.summary()`` print it.
Where the fast path cannot run (no C compiler, a failed build), the readable one runs and those say why.

How an op chooses: every op that has a fast version is decorated with ``@fast_cpu_alternative``. On a call,
a *forward* goes to the fast package's function of the same name when the fast path is active; that function
takes the same arguments, runs the readable op's own argument checks, and returns ``NotImplemented`` for input
it leaves to the readable body (CuPy arrays, an empty batch, a layer no C loop covers). A *backward* goes to the
fast package exactly when its cache is one of the fast package's cache types, so a backward always runs on the
path its forward ran on, whatever the switch says by then (ReLU's backward, whose cache is the forward input
itself, goes by the switch like a forward).

Imports: ``ops`` imports ``fast_cpu`` lazily, here only, the first time the fast path is active; ``fast_cpu``
imports ``ops`` (the readable checks it shares) and ``backend``, nothing above them.
"""
from __future__ import annotations

import functools
import importlib
import os
import sys

import numpy as np

__all__ = ["CPU_PATHS", "cpu_path", "active_cpu_path", "fast_cpu_alternative"]

CPU_PATHS = ("readable", "fast")
ENV = "MINICNN_CPU_PATH"


def _from_environment():
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "fast"):
        return "fast", "the default"
    if value == "readable":
        return "readable", f"switched off by {ENV}=readable"
    print(f"minicnn: {ENV} must be 'readable' or 'fast', got {value!r}; using 'fast'", file=sys.stderr)
    return "fast", "the default"


_chosen, _why = _from_environment()          # the path asked for, and by whom
_fast = None                                 # the minicnn.fast_cpu module, once imported


class cpu_path:
    """Run the public ops on the ``"readable"`` or the ``"fast"`` CPU path.

    Switches at once; as a context manager (``with minicnn.cpu_path("readable"): ...``) the previous choice
    comes back at the end of the block. Process-wide (every thread). CuPy arrays always take the GPU kernels."""

    def __init__(self, name):
        if name not in CPU_PATHS:
            raise ValueError(f"cpu_path: expected one of {CPU_PATHS}, got {name!r}")
        global _chosen, _why
        self._old = (_chosen, _why)
        _chosen, _why = name, ("the default" if name == "fast" else "switched off by cpu_path('readable')")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _chosen, _why
        _chosen, _why = self._old


def _fast_package():
    """minicnn.fast_cpu when the fast path is chosen and can run here, else None."""
    global _fast
    if _chosen != "fast":
        return None
    if _fast is None:
        _fast = importlib.import_module("minicnn.fast_cpu")
    return _fast if _fast.available() else None


def active_cpu_path():
    """(path, why): the CPU path NumPy input takes now, ``"readable"`` or ``"fast"``, and the reason."""
    if _chosen == "readable":
        return "readable", _why
    fast = _fast_package()
    if fast is None:
        return "readable", importlib.import_module("minicnn.fast_cpu").unavailable_reason()
    return "fast", f"{_why}; {fast.describe()}"


def fast_cpu_alternative(op=None, *, cache_decides=None):
    """Decorate a public op that has a version of the same name in ``minicnn.fast_cpu`` (see the docstring).
    ``cache_decides`` (default: for the ``*_backward`` ops) sends the call by its cache's type instead of by the
    switch; ReLU's backward, whose cache is the forward input itself, goes by the switch."""
    if op is None:
        return functools.partial(fast_cpu_alternative, cache_decides=cache_decides)
    name = op.__name__
    backward = name.endswith("_backward") if cache_decides is None else cache_decides

    @functools.wraps(op)
    def dispatch(*args, **kwargs):
        if backward:
            fast = _fast if _fast is not None and any(isinstance(a, _fast.CACHE_TYPES)
                                                      for a in (*args, *kwargs.values())) else None
        else:       # the input is the first argument: only NumPy input looks for the fast path (and builds it)
            first = args[0] if args else next(iter(kwargs.values()), None)
            fast = _fast_package() if isinstance(first, np.ndarray) else None
        if fast is not None:
            out = getattr(fast, name)(*args, **kwargs)
            if out is not NotImplemented:
                return out
        return op(*args, **kwargs)

    dispatch.readable = op            # the readable body itself
    return dispatch
