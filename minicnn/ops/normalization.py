"""Local response normalisation across channels (Krizhevsky et al.) and batch normalisation.

LRN, for a window of n channels centred on c (n odd, channels outside [0, C) count as zero):

    S_c = sum_{|c' - c| <= n//2} x_c'^2        d_c = k + alpha * S_c        y_c = x_c * d_c^(-beta)

``alpha`` is *not* divided by n here (the AlexNet paper and Chainer); PyTorch and Caffe divide it by n. To
reproduce a PyTorch ``LocalResponseNorm(size=n, alpha=a_torch, beta, k)`` pass ``alpha = a_torch / n``
(see ``lrn_alpha_from_torch``).

Backward: since the window is symmetric, the same windowed sum gives
    dx_c = dy_c * d_c^(-beta) - 2 * alpha * beta * x_c * sum_{|c' - c| <= n//2} dy_c' * y_c' / d_c'.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import backend
from . import _cpu_fast, _gpu
import numpy as np

from ._checks import check_array, check_float_array, check_real, check_same_device, check_shape

__all__ = ["lrn_forward", "lrn_backward", "lrn_alpha_from_torch", "channel_window_sum",
           "batch_norm_forward", "batch_norm_backward", "LRNCache", "BatchNormCache"]


def lrn_alpha_from_torch(alpha_torch, n):
    """Convert PyTorch/Caffe's alpha (divided by n inside) into minicnn's alpha (not divided)."""
    return alpha_torch / n


def channel_window_sum(a, n):
    """s[:, c] = sum of a[:, c'] over |c' - c| <= n//2, zero beyond the channel ends. a: (N, C, ...)."""
    xp = backend.xp(a)
    half = n // 2
    C = a.shape[1]
    padded = xp.zeros((a.shape[0], C + 2 * half) + a.shape[2:], dtype=a.dtype)
    padded[:, half:half + C] = a
    s = padded[:, 0:C].copy()
    for offset in range(1, n):
        s += padded[:, offset:offset + C]
    return s


def _check_lrn_args(x, n, k, alpha, beta, name):
    check_float_array(x, 4, name)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1 or n % 2 == 0:
        raise ValueError(f"{name}: the window n must be a positive odd integer (a symmetric window), got {n!r}")
    for value, what in ((k, "k"), (alpha, "alpha"), (beta, "beta")):
        check_real(value, name, what)
    if k <= 0 and alpha >= 0:
        # d = k + alpha*S can reach 0 where a window is all zeros; d**(-beta) would be inf.
        raise ValueError(f"{name}: k must be > 0, got {k}")


@dataclass
class LRNCache:
    x: object
    y: object
    d: object
    n: int
    alpha: float
    beta: float
    scale: object = None    # d ** -beta, kept by the fast CPU path so that backward needs no power


def lrn_forward(x, n=5, k=2.0, alpha=1e-4, beta=0.75, name="lrn"):
    """Across-channel LRN. x: (N, C, H, W) -> y: same shape, cache. Defaults are Krizhevsky's."""
    _check_lrn_args(x, n, k, alpha, beta, name)
    if _gpu.handles(x):  # CuPy array: the kernel in kernels/lrn.cu
        y, d = _gpu.lrn_forward(x, n, k, alpha, beta)
        return y, LRNCache(x, y, d, n, alpha, beta)
    if _cpu_fast.use(x):    # NumPy: same result, no padded copies, sqrt instead of pow, threaded (ops/_cpu_fast.py)
        y, d, scale = _cpu_fast.lrn_forward(x, n, k, alpha, beta)
        return y, LRNCache(x, y, d, n, alpha, beta, scale)
    d = k + alpha * channel_window_sum(x * x, n)
    y = x * d ** (-beta)
    return y, LRNCache(x, y, d, n, alpha, beta)


def lrn_backward(dy, cache: LRNCache, name="lrn"):
    """dy: (N, C, H, W) -> dx: (N, C, H, W)."""
    if not isinstance(cache, LRNCache):
        raise TypeError(f"{name}: cache must be the LRNCache of the forward pass, got {type(cache).__name__}")
    check_float_array(dy, 4, name, what="upstream gradient")
    for what in ("x", "y", "d"):
        check_float_array(getattr(cache, what), 4, name, what=f"cache.{what}")
        check_shape(getattr(cache, what), cache.x.shape, name, what=f"cache.{what}", of="the input shape")
        check_same_device(dy, getattr(cache, what), name, f"cache.{what}")
    check_shape(dy, cache.x.shape, name, of="the input shape")
    if cache.scale is not None and tuple(getattr(cache.scale, "shape", ())) != tuple(cache.x.shape):
        raise ValueError(f"{name}: cache.scale must have the input shape {tuple(cache.x.shape)}")
    if _gpu.handles(dy):  # CuPy array: the kernel in kernels/lrn.cu
        return _gpu.lrn_backward(dy, cache.x, cache.y, cache.d, cache.n, cache.alpha, cache.beta)
    if cache.scale is not None and _cpu_fast.use(dy) and _cpu_fast.use(cache.x) and dy.dtype == cache.x.dtype:
        return _cpu_fast.lrn_backward(dy, cache.x, cache.y, cache.d, cache.scale, cache.n, cache.alpha, cache.beta)
    x, y, d, beta = cache.x, cache.y, cache.d, cache.beta
    through = dy * d ** (-beta)
    coupling = channel_window_sum(dy * y / d, cache.n)
    return through - (2 * cache.alpha * beta) * x * coupling


@dataclass
class BatchNormCache:
    x_hat: object
    inv_std: object
    gamma: object
    axes: tuple


def _bn_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _bn_shape(x):
    return (1, -1) if x.ndim == 2 else (1, -1, 1, 1)


def batch_norm_forward(x, gamma, beta, running_mean, running_var, train, momentum=0.1, eps=1e-5, name="batch_norm"):
    """Batch normalisation over the batch (and spatial) axes, per channel/feature.

    x: (N, D) or (N, C, H, W); gamma, beta, running_mean, running_var: (D,) or (C,).
    In training, normalises with the batch statistics and updates the running ones *in place*
    (they are the layer's state, not the caller's input); in evaluation, uses the running ones.
    """
    xp = backend.xp(x)
    check_array(x, name)
    if x.ndim not in (2, 4):
        raise ValueError(f"{name}: input must be (N, D) or (N, C, H, W), got shape {tuple(x.shape)}")
    for a, what in ((gamma, "gamma"), (beta, "beta"), (running_mean, "running_mean"), (running_var, "running_var")):
        check_float_array(a, 1, name, what=what, layout="(channels,)")
        check_same_device(x, a, name, what)
        check_shape(a, (x.shape[1],), name, what=what, of="one value per channel of the input:")
    axes, shape = _bn_axes(x), _bn_shape(x)
    count = x.size // x.shape[1] if x.shape[1] else 0
    if train and count == 0:
        # An empty batch says nothing about the statistics: the running ones stay as they are (a mean of nothing
        # is NaN, which would poison them for good), and the output is empty.
        return xp.empty_like(x), BatchNormCache(xp.zeros_like(x), xp.ones_like(running_var), gamma, axes)
    if train:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * count / max(count - 1, 1)
    else:
        mean, var = running_mean, running_var
    inv_std = 1.0 / xp.sqrt(var + eps)
    x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    y = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    return y, BatchNormCache(x_hat, inv_std, gamma, axes if train else None)


def batch_norm_backward(dy, cache: BatchNormCache, param_grads=True, name="batch_norm"):
    """dy -> (dx, dgamma, dbeta). In evaluation mode the statistics are constants, so dx is a per-channel scale."""
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"{name}: cache must be the BatchNormCache of the forward pass, got {type(cache).__name__}")
    check_array(dy, name, "upstream gradient")
    check_shape(dy, cache.x_hat.shape, name, of="the input shape")
    shape = _bn_shape(dy)
    axes = _bn_axes(dy)
    dgamma = (dy * cache.x_hat).sum(axis=axes) if param_grads else None
    dbeta = dy.sum(axis=axes) if param_grads else None
    scale = (cache.gamma * cache.inv_std).reshape(shape)
    if cache.axes is None:
        return dy * scale, dgamma, dbeta
    m = dy.size // dy.shape[1] if dy.shape[1] else 0
    if m == 0:                                         # an empty batch: no gradient to spread
        return backend.xp(dy).zeros_like(dy), dgamma, dbeta
    dg = (dy * cache.x_hat).sum(axis=axes).reshape(shape)
    db = dy.sum(axis=axes).reshape(shape)
    dx = scale * (dy - db / m - cache.x_hat * dg / m)
    return dx, dgamma, dbeta
