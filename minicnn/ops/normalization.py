"""Local response normalisation across channels (Krizhevsky et al.), batch, layer and instance normalisation.

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
from . import _gpu
from .dispatch import fast_cpu_alternative
import numpy as np

from ._checks import check_array, check_float_array, check_real, check_same_device, check_shape

__all__ = ["lrn_forward", "lrn_backward", "lrn_alpha_from_torch", "channel_window_sum",
           "batch_norm_forward", "batch_norm_backward", "LRNCache", "BatchNormCache",
           "layer_norm_forward", "layer_norm_backward", "instance_norm_forward", "instance_norm_backward",
           "NormCache"]


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


def check_lrn_args(x, n, k, alpha, beta, name):
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


@fast_cpu_alternative
def lrn_forward(x, n=5, k=2.0, alpha=1e-4, beta=0.75, name="lrn"):
    """Across-channel LRN. x: (N, C, H, W) -> y: same shape, cache. Defaults are Krizhevsky's."""
    check_lrn_args(x, n, k, alpha, beta, name)
    if _gpu.handles(x):  # CuPy array: the kernel in kernels/lrn.cu
        y, d = _gpu.lrn_forward(x, n, k, alpha, beta)
        return y, LRNCache(x, y, d, n, alpha, beta)
    d = k + alpha * channel_window_sum(x * x, n)
    y = x * d ** (-beta)
    return y, LRNCache(x, y, d, n, alpha, beta)


def check_lrn_backward(dy, cache, name):
    """What every lrn_backward checks before it reads the cache."""
    if not isinstance(cache, LRNCache):
        raise TypeError(f"{name}: cache must be the LRNCache of the forward pass, got {type(cache).__name__}")
    check_float_array(dy, 4, name, what="upstream gradient")
    for what in ("x", "y", "d"):
        check_float_array(getattr(cache, what), 4, name, what=f"cache.{what}")
        check_shape(getattr(cache, what), cache.x.shape, name, what=f"cache.{what}", of="the input shape")
        check_same_device(dy, getattr(cache, what), name, f"cache.{what}")
    check_shape(dy, cache.x.shape, name, of="the input shape")


@fast_cpu_alternative
def lrn_backward(dy, cache: LRNCache, name="lrn"):
    """dy: (N, C, H, W) -> dx: (N, C, H, W)."""
    check_lrn_backward(dy, cache, name)
    if _gpu.handles(dy):  # CuPy array: the kernel in kernels/lrn.cu
        return _gpu.lrn_backward(dy, cache.x, cache.y, cache.d, cache.n, cache.alpha, cache.beta)
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
    if train and count == 1:
        # One value per channel: its batch variance is 0, so the output would be beta whatever x is, and the running
        # variance would be pulled towards 0. Refused, as PyTorch does.
        raise ValueError(f"{name}: training needs more than one value per channel to estimate a variance, got input "
                         f"shape {tuple(x.shape)}; use a batch of 2 or more, or evaluation mode")
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


# --- layer and instance normalisation ----------------------------------------------------------------------
#
# Batch, layer and instance norm share one formula (Ioffe & Szegedy's, as in the CENG403 notes); they differ only
# in the set S of positions whose statistics are pooled:
#
#     mu = mean_S x        var = mean_S (x - mu)^2        x_hat = (x - mu) / sqrt(var + eps)
#     y = gamma_c * x_hat + beta_c                         (gamma, beta: one pair per channel c)
#
#     batch norm:     S = (N, H, W)  for each channel c        -- mixes the images of a batch
#     layer norm:     S = (C, H, W)  for each image n          -- one image's every channel and position
#     instance norm:  S = (H, W)     for each image n and channel c
#
# Layer and instance norm look at one image at a time, so training and evaluation compute the same thing and
# there are no running statistics. The variance is the biased one (divide by m = |S|). ``eps`` (default 1e-5,
# PyTorch's) keeps the division finite where var = 0 (a constant image or map); it is added to the variance,
# not to the standard deviation.
#
# Backward, with m = |S|, g = dy * gamma_c (the gradient reaching x_hat) and means over S:
#
#     dx = (g - mean_S g - x_hat * mean_S(g * x_hat)) / sqrt(var + eps)
#     dgamma_c = sum over (N, H, W) of dy * x_hat        dbeta_c = sum over (N, H, W) of dy
#
# (the two subtracted means are the paths through mu and through var).

@dataclass
class NormCache:
    x_hat: object
    inv_std: object       # 1 / sqrt(var + eps), shaped to broadcast against x
    gamma: object
    axes: tuple           # the axes of S


def _check_norm_args(x, gamma, beta, eps, name):
    xp = backend.xp(x)
    if not isinstance(x, xp.ndarray):
        raise TypeError(f"{name}: input must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name}: input must be float32 or float64, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name}: input must have rank 4 (N, C, H, W), got shape {tuple(x.shape)}")
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{name}: C, H and W must be >= 1 (statistics over an empty set are undefined), "
                         f"got shape {tuple(x.shape)}")
    for what, p in (("gamma", gamma), ("beta", beta)):
        if not isinstance(p, xp.ndarray) or p.dtype not in (xp.float32, xp.float64) or p.ndim != 1:
            raise TypeError(f"{name}: {what} must be a float32 or float64 array of shape (C,) on the input's device, "
                            f"got {type(p).__name__} {getattr(p, 'dtype', '')} {tuple(getattr(p, 'shape', ()))}")
    if gamma.shape != beta.shape:
        raise ValueError(f"{name}: gamma and beta must both have shape (C,), got {tuple(gamma.shape)} and "
                         f"{tuple(beta.shape)}")
    if x.shape[1] != gamma.shape[0]:
        raise ValueError(f"{name}: expected {gamma.shape[0]} channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
    try:
        eps_ok = not isinstance(eps, bool) and 0 < float(eps) < float("inf")
    except (TypeError, ValueError):
        eps_ok = False
    if not eps_ok:
        raise ValueError(f"{name}: eps must be a finite number > 0, got {eps!r}")


def _normalize_forward(x, gamma, beta, axes, eps):
    """The shared formula above over ``axes``; returns (y, NormCache). Statistics are kept with keepdims."""
    xp = backend.xp(x)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    x_hat = (x - mu) * inv_std
    y = gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)
    return y.astype(x.dtype, copy=False), NormCache(x_hat, inv_std, gamma, axes)


def _normalize_backward(dy, cache: NormCache, param_grads, name):
    if not isinstance(cache, NormCache):
        raise TypeError(f"{name}: cache must be the NormCache of the forward pass, got {type(cache).__name__}")
    xp = backend.xp(cache.x_hat)
    if not isinstance(dy, xp.ndarray) or dy.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name}: upstream gradient must be a float32 or float64 array on the forward's device, got "
                        f"{type(dy).__name__} {getattr(dy, 'dtype', '')}")
    if tuple(dy.shape) != tuple(cache.x_hat.shape):
        raise ValueError(f"{name}: upstream gradient must have shape {tuple(cache.x_hat.shape)}, got {tuple(dy.shape)}")
    x_hat, axes = cache.x_hat, cache.axes
    dgamma = (dy * x_hat).sum(axis=(0, 2, 3)) if param_grads else None
    dbeta = dy.sum(axis=(0, 2, 3)) if param_grads else None
    g = dy * cache.gamma.reshape(1, -1, 1, 1)
    dx = cache.inv_std * (g - g.mean(axis=axes, keepdims=True)
                          - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
    return dx, dgamma, dbeta


def layer_norm_forward(x, gamma, beta, eps=1e-5, name="layer_norm"):
    """Layer normalisation: each image normalised over all its channels and positions, then scaled per channel.

    x: (N, C, H, W); gamma, beta: (C,). Returns y: (N, C, H, W) and a NormCache. The same in training and
    evaluation. An empty batch (N = 0) gives an empty output; NaN in an image makes that image's output NaN.
    """
    _check_norm_args(x, gamma, beta, eps, name)
    return _normalize_forward(x, gamma, beta, (1, 2, 3), eps)


def layer_norm_backward(dy, cache: NormCache, param_grads=True, name="layer_norm"):
    """dy: (N, C, H, W) -> (dx, dgamma, dbeta); dgamma, dbeta are None with ``param_grads=False``."""
    return _normalize_backward(dy, cache, param_grads, name)


def instance_norm_forward(x, gamma, beta, eps=1e-5, name="instance_norm"):
    """Instance normalisation: each feature map (image n, channel c) normalised over its H x W positions.

    x: (N, C, H, W); gamma, beta: (C,). Returns y: (N, C, H, W) and a NormCache. The same in training and
    evaluation. A 1x1 map has variance 0, so its output is beta (x_hat = 0). NaN propagates within its map.
    """
    _check_norm_args(x, gamma, beta, eps, name)
    return _normalize_forward(x, gamma, beta, (2, 3), eps)


def instance_norm_backward(dy, cache: NormCache, param_grads=True, name="instance_norm"):
    """dy: (N, C, H, W) -> (dx, dgamma, dbeta); dgamma, dbeta are None with ``param_grads=False``."""
    return _normalize_backward(dy, cache, param_grads, name)
