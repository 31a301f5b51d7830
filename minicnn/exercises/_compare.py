"""What the exercise checks share: compare a student's array with the right one and say, in words a student can
act on, what is wrong (the shape, the dtype, the worst entry and the relative error)."""
from __future__ import annotations

import numpy as np

from ..gradcheck import relative_error


def as_array(value, what):
    """``value`` as a NumPy array, or an AssertionError saying what came back instead."""
    if value is None:
        raise AssertionError(f"{what} is None: did you forget to `return` it?")
    try:
        return np.asarray(value)
    except Exception:                                    # noqa: BLE001 (anything that is not an array)
        raise AssertionError(f"{what} should be an array, got {type(value).__name__}") from None


def assert_close(got, want, what, case="", tol=1e-9, hint=""):
    """Raise AssertionError unless ``got`` has ``want``'s shape and ``relative_error(got, want) <= tol``.

    what: the name of the returned quantity ("dx"); case: the configuration it was computed for; hint: a sentence
    added to any failure message (the likely mistake in this configuration). Returns the relative error.
    """
    try:
        return _assert_close(got, want, what, case, tol)
    except AssertionError as error:
        if not hint:
            raise
        raise AssertionError(f"{error}.{hint}") from None


def _assert_close(got, want, what, case, tol):
    where = f" ({case})" if case else ""
    got = as_array(got, what)
    if got.shape != want.shape:
        raise AssertionError(f"{what}{where} has shape {got.shape}, expected {want.shape}")
    if not np.issubdtype(got.dtype, np.number):
        raise AssertionError(f"{what}{where} has dtype {got.dtype}, expected numbers")
    if not np.isfinite(got).all():
        raise AssertionError(f"{what}{where} holds NaN or inf")
    err = relative_error(got, want)
    if not err <= tol:
        worst = np.unravel_index(np.argmax(np.abs(got.astype(np.float64) - want)), want.shape)
        index = ", ".join(str(int(i)) for i in worst)
        raise AssertionError(f"{what}{where} is wrong: relative error {err:.1e} (tolerance {tol:.0e}); the worst "
                             f"entry is [{index}]: yours {float(got[worst]):+.9g}, expected {float(want[worst]):+.9g}")
    return err
