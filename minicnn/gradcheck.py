"""Gradient checking done right: float64, central differences, a random upstream gradient, inputs without ties.

The scalar that is differentiated is ``sum(y * dy)`` for a fixed random ``dy``: its gradient with respect to
an input is exactly what ``backward(dy)`` returns, and a random ``dy`` (not all ones) exposes errors that an
all-ones upstream gradient hides (softmax, LRN).

Error measure (used everywhere in minicnn): ``max|analytic - numeric| / max(max|analytic|, max|numeric|)``,
the largest deviation relative to the size of the gradient. Elementwise relative errors blow up where the
true gradient is ~0 and central differences leave ~1e-10 of noise; this measure does not.
"""
from __future__ import annotations

import copy

import numpy as np

__all__ = ["relative_error", "numerical_gradient", "check_op", "check_layer", "distinct_values",
           "conv_configs", "pool_configs", "GRADCHECK_TOLERANCE"]

GRADCHECK_TOLERANCE = 1e-6


def relative_error(analytic, numeric):
    """max|a - n| / max(max|a|, max|n|); 0 when both are exactly zero; NaN when either holds NaN or inf (so that
    no ``error <= tolerance`` check can pass on a gradient that is not a number)."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"relative_error: shapes differ, analytic {a.shape} vs numeric {n.shape}")
    if not (np.isfinite(a).all() and np.isfinite(n).all()):
        return float("nan")
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - n).max() / scale)


def numerical_gradient(f, x, dy, eps=1e-6):
    """Central-difference gradient of ``sum(f() * dy)`` with respect to the array ``x``, perturbed in place.

    f: a function of no arguments that reads ``x`` (and returns y, shaped like dy). x is restored afterwards.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: use float64 arrays (got {x.dtype}); float32 differences are noise")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(np.sum(f() * dy))
        flat[i] = old - eps
        minus = float(np.sum(f() * dy))
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def check_op(forward, backward, args, wrt=(0,), kwargs=None, backward_kwargs=None, rng=None, eps=1e-6,
             details=False):
    """Compare ``backward`` with central differences of ``forward`` for the positional ``args`` listed in ``wrt``.

    forward(*args, **kwargs) -> (y, cache); backward(dy, cache, **backward_kwargs) -> gradient or tuple of
    gradients, the i-th belonging to ``args[wrt[i]]``. All args in ``wrt`` must be float64 arrays.
    Returns the max relative error over ``wrt`` (or a dict per argument index with ``details=True``).
    """
    kwargs, backward_kwargs = kwargs or {}, backward_kwargs or {}
    rng = rng if rng is not None else np.random.default_rng(0)
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    y, cache = forward(*args, **kwargs)
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    grads = _as_tuple(backward(dy, cache, **backward_kwargs))
    if not np.array_equal(dy, dy_before):
        raise AssertionError("backward wrote into dy")
    errors = {}
    for grad, index in zip(grads, wrt):
        numeric = numerical_gradient(lambda: forward(*args, **kwargs)[0], args[index], dy, eps)
        errors[index] = relative_error(grad, numeric)
    return errors if details else max(errors.values())


def check_layer(layer, x, rng=None, eps=1e-6, train=False, rule="backprop", details=False):
    """Gradient check of one layer on input ``x``: the input gradient and every parameter gradient.

    Works on a float64 deep copy, so the caller's layer is untouched. A layer with a random generator
    (dropout) replays the same draw on every forward, so its mask stays fixed.
    Returns the max relative error (or {"x": err, "W": err, ...} with ``details=True``).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    layer = copy.deepcopy(layer).astype(np.float64)
    x = np.array(x, dtype=np.float64)
    state = copy.deepcopy(layer.rng.bit_generator.state) if hasattr(layer, "rng") else None

    def run():
        if state is not None:
            layer.rng.bit_generator.state = copy.deepcopy(state)
        return layer.forward(x, train=train)

    y = run()
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    dx = layer.backward(dy, rule=rule)
    if not np.array_equal(dy, dy_before):
        raise AssertionError(f"{layer.label}: backward wrote into dy")
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    errors = {"x": relative_error(dx, numerical_gradient(run, x, dy, eps))}
    for key, value in layer.params.items():
        errors[key] = relative_error(analytic[key], numerical_gradient(run, value, dy, eps))
    return errors if details else max(errors.values())


def distinct_values(shape, rng, spacing=0.05):
    """A float64 array of the given shape whose values are all different, at least ``spacing`` apart, centred on 0.

    Max pooling and ReLU are not differentiable at ties or at 0; spacing >> eps keeps central differences away
    from both (a shift of 0.5 * spacing keeps every value off zero).
    """
    n = int(np.prod(shape))
    values = (rng.permutation(n) - n / 2 + 0.5) * spacing
    return values.reshape(shape).astype(np.float64)


# --- hypothesis strategies (hypothesis is a test dependency, imported only when these are used) -------------

def conv_configs(max_batch=2, max_channels=3, max_filters=3, max_size=9, max_kernel=4, max_stride=3, max_pad=2):
    """Strategy for dicts N, C, F, H, W, kh, kw, stride, pad (pairs) with a non-empty output.

    Each of kh, kw, the strides, the pads is drawn on its own (non-square kernels, strides and pads are the rule,
    so that a kh/kw or y/x mix-up shows); stride (1, 1) -- the fast paths' direct convolution -- and batch 1 are
    drawn in about a third of the examples each; inputs narrower than the kernel (with padding) are drawn too."""
    from hypothesis import strategies as st

    @st.composite
    def config(draw):
        kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
        ph, pw = draw(st.integers(0, max_pad)), draw(st.integers(0, max_pad))
        H = draw(st.integers(max(1, kh - 2 * ph), max_size))
        W = draw(st.integers(max(1, kw - 2 * pw), max_size))
        stride = draw(st.one_of(st.just((1, 1)), st.tuples(st.integers(1, max_stride), st.integers(1, max_stride))))
        return dict(N=draw(st.one_of(st.just(1), st.integers(1, max_batch))), C=draw(st.integers(1, max_channels)),
                    F=draw(st.integers(1, max_filters)), H=H, W=W, kh=kh, kw=kw, stride=stride, pad=(ph, pw))
    return config()


def pool_configs(max_batch=2, max_channels=3, max_size=9, max_kernel=4, max_stride=3):
    """Strategy for pooling dicts N, C, H, W, kernel, stride, pad (<= kernel // 2), ceil_mode; overlapping windows
    (stride < kernel) and ceil mode are drawn often."""
    from hypothesis import strategies as st

    @st.composite
    def config(draw):
        kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
        ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
        H = draw(st.integers(max(1, kh - 2 * ph), max_size))
        W = draw(st.integers(max(1, kw - 2 * pw), max_size))
        return dict(N=draw(st.one_of(st.just(1), st.integers(1, max_batch))), C=draw(st.integers(1, max_channels)), H=H, W=W,
                    kernel=(kh, kw), stride=(draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))),
                    pad=(ph, pw), ceil_mode=draw(st.booleans()))
    return config()


def gradcheck_table(seed=0):
    """Run ``check_layer`` over every layer type in a few configurations (the ``minicnn gradcheck`` command).

    Returns a list of {"layer", "config", "error", "tolerance"}.
    """
    from . import layers as L

    rng = np.random.default_rng(seed)
    cases = [
        (L.Conv2D(3, 4, 3, stride=1, pad=1, rng=rng), (2, 3, 6, 6), "3->4, 3x3, stride 1, pad 1"),
        (L.Conv2D(2, 3, (3, 2), stride=(2, 1), pad=(0, 1), rng=rng), (2, 2, 7, 5), "2->3, 3x2, stride (2,1), pad (0,1)"),
        (L.Conv2D(3, 2, 5, stride=2, pad=2, rng=rng), (1, 3, 9, 9), "3->2, 5x5, stride 2, pad 2"),
        (L.Linear(12, 5, rng=rng), (3, 12), "12->5"),
        (L.ReLU(), (2, 3, 4, 4), "rule backprop"),
        (L.MaxPool2D(2), (2, 2, 6, 6), "2x2 / 2"),
        (L.MaxPool2D(3, 2), (2, 2, 7, 7), "3x3 / 2 (overlapping)"),
        (L.MaxPool2D(3, 2, ceil_mode=True), (1, 2, 8, 8), "3x3 / 2, ceil mode"),
        (L.MaxPool2D(3, 2, pad=1), (1, 2, 6, 6), "3x3 / 2, pad 1"),
        (L.AvgPool2D(2), (2, 2, 6, 6), "2x2 / 2"),
        (L.AvgPool2D(3, 2, pad=1), (1, 2, 7, 7), "3x3 / 2, pad 1"),
        (L.LRN(), (2, 7, 3, 3), "n=5, k=2, alpha=1e-4, beta=0.75"),
        (L.LRN(n=3, k=0.5, alpha=0.9, beta=0.75), (2, 6, 3, 3), "n=3, k=0.5, alpha=0.9 (window errors show)"),
        (L.Dropout(0.5, seed=seed), (3, 10), "p=0.5, training mode"),
        (L.Flatten(), (2, 3, 2, 2), ""),
        (L.BatchNorm(3), (4, 3, 3, 3), "training mode"),
        (L.LayerNorm(3), (2, 3, 3, 4), "per image over (C, H, W)"),
        (L.InstanceNorm(3), (2, 3, 4, 3), "per image and channel over (H, W)"),
    ]
    rows = []
    for layer, shape, description in cases:
        x = distinct_values(shape, rng, spacing=0.05 if not isinstance(layer, L.LRN) else 0.02)
        train = isinstance(layer, (L.Dropout, L.BatchNorm))
        error = check_layer(layer, x, rng=rng, train=train)
        rows.append({"layer": type(layer).__name__, "config": description, "error": error,
                     "tolerance": GRADCHECK_TOLERANCE})
    return rows
