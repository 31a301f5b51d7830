"""Convolution (im2col + one GEMM) and the fully connected layer.

Notation, used in every op of this package:

    N  batch size          C  input channels      H, W   input height, width
    F  filters (output channels)                  kh, kw kernel height, width
    sy, sx  strides        ph, pw  zero padding   oh, ow output height, width
    x  input (N, C, H, W)  y  output (N, F, oh, ow)
    dy upstream gradient (shape of y)             dx, dW, db  gradients of x, W, b

with ``oh = (H + 2*ph - kh) // sy + 1`` and likewise ``ow``.

Layout of the column matrix: ``cols`` has shape ``(C*kh*kw, N*oh*ow)``. Row ``(c, ky, kx)`` holds, for every
output position of every image, the input pixel that kernel tap ``(ky, kx)`` of channel ``c`` sees there. The
forward pass is then a single GEMM ``W.reshape(F, C*kh*kw) @ cols`` -> ``(F, N*oh*ow)``; one large GEMM keeps
BLAS busy far better than N small ones.

Conv weights are ``(F, C, kh, kw)``; linear weights are ``(in, out)`` so that ``y = x @ W + b``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import backend
from . import _gpu
from .dispatch import fast_cpu_alternative
from ._checks import check_float_array, check_same_device, check_shape, check_shape_tuple, conv_output_size, pair

__all__ = [
    "im2col", "col2im", "conv_output_shape",
    "conv2d_forward", "conv2d_backward", "conv2d_forward_naive", "conv2d_backward_naive",
    "linear_forward", "linear_backward", "ConvCache", "LinearCache",
]


def conv_output_shape(x_shape, kernel, stride=1, pad=0, name="conv2d"):
    """(oh, ow) of a convolution or pooling window over an input of shape (N, C, H, W)."""
    kh, kw = pair(kernel, "kernel", name)
    sy, sx = pair(stride, "stride", name)
    ph, pw = pair(pad, "pad", name)
    H, W = x_shape[-2:]
    return (conv_output_size(H, kh, sy, ph, name, "height"), conv_output_size(W, kw, sx, pw, name, "width"))


def im2col(x, kernel, stride=1, pad=0):
    """Unfold every receptive field of ``x`` into a column.

    x: (N, C, H, W) -> cols: (C*kh*kw, N*oh*ow), rows ordered (c, ky, kx), columns ordered (n, oy, ox).
    """
    check_float_array(x, 4, "im2col")
    xp = backend.xp(x)
    N, C, H, W = x.shape
    kh, kw = pair(kernel, "kernel", "im2col")
    sy, sx = pair(stride, "stride", "im2col")
    ph, pw = pair(pad, "pad", "im2col")
    oh, ow = conv_output_shape(x.shape, (kh, kw), (sy, sx), (ph, pw), "im2col")
    if _gpu.handles(x):  # CuPy array: the kernel in kernels/im2col.cu, same layout
        return _gpu.im2col(x, (kh, kw), (sy, sx), (ph, pw), (oh, ow))
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    cols = xp.empty((C, kh, kw, N, oh, ow), dtype=x.dtype)
    # One strided copy per kernel tap: tap (ky, kx) sees x_pad[ky + sy*oy, kx + sx*ox].
    for ky in range(kh):
        for kx in range(kw):
            window = x_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx]
            cols[:, ky, kx] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * oh * ow)


def col2im(cols, x_shape, kernel, stride=1, pad=0):
    """Adjoint of ``im2col``: add every column entry back onto the pixel it was copied from.

    cols: (C*kh*kw, N*oh*ow) -> dx: x_shape = (N, C, H, W). Overlapping receptive fields add up.
    """
    check_float_array(cols, 2, "col2im", what="cols", layout="(C*kh*kw, N*oh*ow)")
    xp = backend.xp(cols)
    N, C, H, W = x_shape = check_shape_tuple(x_shape, 4, "col2im", "x_shape")
    kh, kw = pair(kernel, "kernel", "col2im")
    sy, sx = pair(stride, "stride", "col2im")
    ph, pw = pair(pad, "pad", "col2im")
    oh, ow = conv_output_shape(x_shape, (kh, kw), (sy, sx), (ph, pw), "col2im")
    check_shape(cols, (C * kh * kw, N * oh * ow), "col2im", what="cols", of="the shape (C*kh*kw, N*oh*ow) =")
    if _gpu.handles(cols):  # CuPy array: the gather kernel in kernels/im2col.cu
        return _gpu.col2im(cols, tuple(x_shape), (kh, kw), (sy, sx), (ph, pw), (oh, ow))
    cols6 = cols.reshape(C, kh, kw, N, oh, ow)
    dx_pad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for ky in range(kh):
        for kx in range(kw):
            dx_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx] += \
                cols6[:, ky, kx].transpose(1, 0, 2, 3)
    if ph or pw:
        return xp.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W])
    return dx_pad


@dataclass
class ConvCache:
    """What conv2d_backward needs: the input shape, the weights and the column matrix of the input."""
    x_shape: tuple
    W: object
    cols: object
    stride: tuple
    pad: tuple
    y_shape: tuple


def check_conv_args(x, W, b, name):
    """Everything conv2d_forward checks before it computes (the fast path runs the same checks)."""
    check_float_array(x, 4, name)
    check_float_array(W, 4, name, what="weight", layout="(F, C, kh, kw)")
    if x.dtype != W.dtype:
        raise TypeError(f"{name}: input dtype {x.dtype} does not match weight dtype {W.dtype}")
    if x.shape[1] != W.shape[1]:
        raise ValueError(f"{name}: expected {W.shape[1]} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
    check_same_device(x, W, name, "weight")
    _check_bias(b, x, W.shape[0], name, "(F,)")


def _check_bias(b, x, n, name, layout):
    """None, or a float (n,) array on x's device: one bias per output channel or feature."""
    if b is not None:
        check_float_array(b, 1, name, what="bias", layout=layout)
        check_same_device(x, b, name, "bias")
        if tuple(b.shape) != (n,):
            raise ValueError(f"{name}: bias must have shape ({n},), got {tuple(b.shape)}")


def check_conv_backward(dy, cache, name, cache_type):
    """What every conv2d_backward checks before it reads the cache (a cache that does not belong to ``dy`` must
    raise here, not send a C loop past the end of an array). Returns dy in the layer's dtype."""
    if not isinstance(cache, cache_type):
        raise TypeError(f"{name}: cache must be the {cache_type.__name__} of the forward pass, got {type(cache).__name__}")
    check_float_array(dy, 4, name, what="upstream gradient", layout="(N, F, oh, ow)")
    check_shape(dy, check_shape_tuple(cache.y_shape, 4, name, "cache.y_shape"), name)
    W = cache.W
    check_float_array(W, 4, name, what="cache.W", layout="(F, C, kh, kw)")
    x_shape = check_shape_tuple(cache.x_shape, 4, name, "cache.x_shape")
    stride, pad = pair(cache.stride, "cache.stride", name), pair(cache.pad, "cache.pad", name)
    expected = (x_shape[0], W.shape[0]) + conv_output_shape(x_shape, W.shape[2:], stride, pad, name)
    if x_shape[1] != W.shape[1] or tuple(dy.shape) != expected:
        raise ValueError(f"{name}: the cache does not hold one convolution: input {x_shape}, weights "
                         f"{tuple(W.shape)}, stride {stride}, pad {pad} give output {expected}, the cache says "
                         f"{tuple(cache.y_shape)}")
    check_same_device(dy, W, name, "cache.W")
    return dy.astype(W.dtype, copy=False)


@fast_cpu_alternative
def conv2d_forward(x, W, b=None, stride=1, pad=0, name="conv2d"):
    """2-D convolution (cross-correlation, as in every deep-learning framework).

    x: (N, C, H, W), W: (F, C, kh, kw), b: (F,) or None -> y: (N, F, oh, ow), cache.
    """
    check_conv_args(x, W, b, name)
    xp = backend.xp(x)
    F, _, kh, kw = W.shape
    stride, pad = pair(stride, "stride", name), pair(pad, "pad", name)
    N = x.shape[0]
    oh, ow = conv_output_shape(x.shape, (kh, kw), stride, pad, name)
    cols = im2col(x, (kh, kw), stride, pad)
    y = W.reshape(F, -1) @ cols                       # (F, N*oh*ow): the one GEMM
    if b is not None:
        y += b[:, None]
    y = xp.ascontiguousarray(y.reshape(F, N, oh, ow).transpose(1, 0, 2, 3))
    return y, ConvCache(tuple(x.shape), W, cols, stride, pad, tuple(y.shape))


@fast_cpu_alternative
def conv2d_backward(dy, cache: ConvCache, need_dx=True, param_grads=True, name="conv2d"):
    """Gradients of conv2d_forward.

    dy: (N, F, oh, ow) -> (dx (N, C, H, W) or None, dW (F, C, kh, kw) or None, db (F,) or None).
    ``need_dx=False`` skips the input gradient (the first layer of a network never needs it);
    ``param_grads=False`` skips dW and db (deconvnet and saliency need only dx).
    """
    dy = check_conv_backward(dy, cache, name, ConvCache)
    W, cols = cache.W, cache.cols
    F, C, kh, kw = W.shape
    want = (C * kh * kw, cache.x_shape[0] * dy.shape[2] * dy.shape[3])
    if not (hasattr(cols, "shape") and tuple(cols.shape) == want and cols.dtype == W.dtype):
        raise ValueError(f"{name}: cache.cols must be a {W.dtype} array of shape {want}, got "
                         f"{getattr(cols, 'shape', type(cols).__name__)}")
    check_same_device(dy, cols, name, "cache.cols")
    dy_rows = dy.transpose(1, 0, 2, 3).reshape(F, -1)   # (F, N*oh*ow), same column order as cols
    dx = dW = db = None
    if param_grads:
        dW = (dy_rows @ cols.T).reshape(W.shape)
        db = dy_rows.sum(axis=1)
    if need_dx:
        dcols = W.reshape(F, -1).T @ dy_rows
        dx = col2im(dcols, cache.x_shape, W.shape[2:], cache.stride, cache.pad)
    return dx, dW, db


def conv2d_forward_naive(x, W, b=None, stride=1, pad=0):
    """Convolution as the definition reads: a weighted sum over each window. Slow; for teaching and tests.

    y[n, f, oy, ox] = b[f] + sum_{c, ky, kx} W[f, c, ky, kx] * x_pad[n, c, sy*oy + ky, sx*ox + kx]
    """
    check_conv_args(x, W, b, "conv2d_naive")
    xp = backend.xp(x)
    F, _, kh, kw = W.shape
    (sy, sx), (ph, pw) = pair(stride, "stride", "conv2d_naive"), pair(pad, "pad", "conv2d_naive")
    oh, ow = conv_output_shape(x.shape, (kh, kw), (sy, sx), (ph, pw), "conv2d_naive")
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = xp.zeros((x.shape[0], F, oh, ow), dtype=x.dtype)
    for oy in range(oh):
        for ox in range(ow):
            window = x_pad[:, :, sy * oy:sy * oy + kh, sx * ox:sx * ox + kw]      # (N, C, kh, kw)
            y[:, :, oy, ox] = xp.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward_naive(dy, x, W, stride=1, pad=0):
    """Gradients by the definition, window by window. Slow; for teaching and tests.

    Every output y[n, f, oy, ox] touched the window x_pad[n, :, sy*oy:+kh, sx*ox:+kw] through W[f]:
    it sends dy * W[f] back to that window and dy * window into dW[f].
    """
    xp = backend.xp(x)
    F, _, kh, kw = W.shape
    (sy, sx), (ph, pw) = pair(stride, "stride", "conv2d_naive"), pair(pad, "pad", "conv2d_naive")
    N, C, H, Wd = x.shape
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dx_pad = xp.zeros_like(x_pad)
    dW = xp.zeros_like(W)
    for oy in range(dy.shape[2]):
        for ox in range(dy.shape[3]):
            g = dy[:, :, oy, ox]                                                    # (N, F)
            window = x_pad[:, :, sy * oy:sy * oy + kh, sx * ox:sx * ox + kw]        # (N, C, kh, kw)
            dx_pad[:, :, sy * oy:sy * oy + kh, sx * ox:sx * ox + kw] += xp.tensordot(g, W, axes=(1, 0))
            dW += xp.tensordot(g, window, axes=(0, 0))
    dx = dx_pad[:, :, ph:ph + H, pw:pw + Wd]
    return dx, dW, dy.sum(axis=(0, 2, 3))


@dataclass
class LinearCache:
    x: object
    W: object


def check_linear_args(x, W, b, name):
    """Everything linear_forward checks before it computes (the fast path runs the same checks)."""
    check_float_array(x, 2, name, layout="(N, in_features)")
    check_float_array(W, 2, name, what="weight", layout="(in_features, out_features)")
    if x.dtype != W.dtype:
        raise TypeError(f"{name}: input dtype {x.dtype} does not match weight dtype {W.dtype}")
    if x.shape[1] != W.shape[0]:
        raise ValueError(f"{name}: expected {W.shape[0]} input features, got {x.shape[1]} (input shape {tuple(x.shape)})")
    check_same_device(x, W, name, "weight")
    _check_bias(b, x, W.shape[1], name, "(out_features,)")


@fast_cpu_alternative
def linear_forward(x, W, b=None, name="linear"):
    """Fully connected layer. x: (N, in), W: (in, out), b: (out,) or None -> y: (N, out), cache."""
    check_linear_args(x, W, b, name)
    y = x @ W
    if b is not None:
        y += b
    return y, LinearCache(x, W)


def check_linear_backward(dy, cache, name):
    """What every linear_backward checks before it reads the cache."""
    if not isinstance(cache, LinearCache):
        raise TypeError(f"{name}: cache must be the LinearCache of the forward pass, got {type(cache).__name__}")
    check_float_array(dy, 2, name, what="upstream gradient", layout="(N, out_features)")
    check_float_array(cache.x, 2, name, what="cache.x", layout="(N, in_features)")
    check_float_array(cache.W, 2, name, what="cache.W", layout="(in_features, out_features)")
    if cache.x.shape[1] != cache.W.shape[0]:
        raise ValueError(f"{name}: cache.x {tuple(cache.x.shape)} and cache.W {tuple(cache.W.shape)} do not fit")
    check_shape(dy, (cache.x.shape[0], cache.W.shape[1]), name, of="the shape")
    check_same_device(dy, cache.W, name, "cache.W")
    check_same_device(dy, cache.x, name, "cache.x")


@fast_cpu_alternative
def linear_backward(dy, cache: LinearCache, need_dx=True, param_grads=True, name="linear"):
    """dy: (N, out) -> (dx (N, in) or None, dW (in, out) or None, db (out,) or None)."""
    check_linear_backward(dy, cache, name)
    dx = dy @ cache.W.T if need_dx else None
    dW = cache.x.T @ dy if param_grads else None
    db = dy.sum(axis=0) if param_grads else None
    return dx, dW, db
