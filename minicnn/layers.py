"""Layers: an op plus its parameters, their gradients and the cache of the last forward pass.

Every layer has
    forward(x, train=False) -> y                          keeps what backward needs in ``self.cache``
    backward(dy, rule="backprop", param_grads=True, need_dx=True) -> dx   (fills ``self.grads``)
    output_shape((C, H, W)) -> (C', H', W')               shape inference without data, per sample
    geometry()  -> ((kh, kw), (sy, sx), (ph, pw))         for receptive fields; (1, 1), (1, 1), (0, 0) if pointwise
    macs((C, H, W)) -> int                                multiply-accumulates per sample
    config      -> dict                                   the constructor arguments, for checkpoints

Only ReLU looks at ``rule``; every other layer's backward is the same under every rule (ARCHITECTURE.md §5).
Parameters are float32 unless the net is converted with ``Sequential.astype``.

Input contract, the same for every layer and every path (readable NumPy, fast CPU, GPU):
- dtypes: float32 and float64 only; anything else is refused with the layer's name and the dtype it got.
- empty batches: N = 0 is valid input; forward (and ``Sequential.forward``) returns an empty output of the shape
  that N > 0 would give, and batch norm leaves its running statistics alone.
- NaN and inf propagate through forward and backward: nothing clips, drops or hides a diverged activation.
- the loss (``ops.softmax_cross_entropy``) is the exception: it refuses an empty batch (a mean over no rows)
  and non-finite logits (training must stop on a diverged network).
Bad sizes and settings (``Linear(0, 5)``, ``LRN(k=nan)``) are refused at construction, naming the layer.
"""
from __future__ import annotations

import math

import numpy as np

from . import backend, ops
from .ops._checks import check_array, pair

__all__ = ["Layer", "Conv2D", "Linear", "ReLU", "MaxPool2D", "AvgPool2D", "LRN", "Dropout", "Flatten",
           "BatchNorm", "LayerNorm", "InstanceNorm", "LAYER_TYPES", "init_weights"]


def init_weights(shape, fan_in, init, rng, dtype=np.float32):
    """Draw a weight tensor. ``init``: "he" (std sqrt(2 / fan_in)), "zf" (Zeiler & Fergus: std 1e-2), a float std,
    or "zeros" (no drawing at all: for a network whose weights are loaded next, or that is only summarised --
    zero pages are not even touched until written, so VGG-16 builds in a blink)."""
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    if init == "he":
        std = math.sqrt(2.0 / fan_in)
    elif init == "zf":
        std = 1e-2
    elif isinstance(init, (int, float)) and not isinstance(init, bool):
        std = float(init)
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"init: a standard deviation must be finite and >= 0, got {init!r}")
    else:
        raise ValueError(f"unknown initialiser {init!r}; expected 'he', 'zf', 'zeros' or a standard deviation")
    rng = rng if rng is not None else np.random.default_rng()
    # Drawing in float32 directly halves the memory and time of building VGG-16's 138M weights.
    w = rng.standard_normal(shape, dtype=np.float32)
    w *= np.float32(std)
    return w.astype(dtype, copy=False)


def _count(value, what, where):
    """``value`` as an int >= 1 (a size: channels, features), or a ValueError naming the layer and argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {what} must be an integer >= 1, got {value!r}")
    return int(value)


def _finite(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{where}: {what} must be a finite number, got {value!r}")
    return value


class Layer:
    """Base class. Subclasses set ``config`` and implement ``forward`` / ``backward``."""

    def __init__(self, name=None):
        self.name = name
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}     # state that is saved but not trained (batch-norm running statistics)
        self.cache = None
        self.config: dict = {}
        # False for a frozen layer (``SGD.freeze`` sets it): ``Sequential.backward`` then asks it for no parameter
        # gradients, so fine-tuning pays nothing for the layers it keeps fixed.
        self.trainable = True

    # --- shape inference and geometry ---------------------------------------------------------
    def output_shape(self, input_shape):
        return tuple(input_shape)

    def geometry(self):
        return (1, 1), (1, 1), (0, 0)

    def macs(self, input_shape):
        return 0

    # --- passes ------------------------------------------------------------------------------
    def forward(self, x, train=False):
        raise NotImplementedError

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        raise NotImplementedError

    def _check_cache(self):
        if self.cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward")

    # --- housekeeping --------------------------------------------------------------------------
    @property
    def label(self):
        return f"{type(self).__name__} {self.name!r}" if self.name else type(self).__name__

    def num_params(self):
        return int(sum(p.size for p in self.params.values()))

    def to(self, device):
        for store in (self.params, self.grads, self.buffers):
            for key, value in store.items():
                store[key] = backend.to_device(value, device)
        self.cache = None
        return self

    def astype(self, dtype):
        for store in (self.params, self.grads, self.buffers):
            for key, value in store.items():
                store[key] = value.astype(dtype)
        self.cache = None
        return self

    def zero_grads(self):
        for key, value in self.params.items():
            self.grads[key] = backend.xp(value).zeros_like(value)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args}{', ' if args else ''}name={self.name!r})"


def _check_shape_rank(input_shape, rank, label):
    if len(input_shape) != rank:
        raise ValueError(f"{label}: expected a per-sample input of rank {rank}, got shape {tuple(input_shape)}")


class Conv2D(Layer):
    """Convolution. Input (N, in_channels, H, W) -> output (N, out_channels, oh, ow). Weights (F, C, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel, stride=1, pad=0, init="he", bias=0.0, rng=None, name=None):
        super().__init__(name)
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            _count(value, what, f"Conv2D {name!r}")
        kh, kw = pair(kernel, "kernel", name or "Conv2D")
        if kh < 1 or kw < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"Conv2D {name!r}: kernel and channel counts must be >= 1, got kernel {(kh, kw)}, "
                             f"channels {in_channels}->{out_channels}")
        self.kernel = (kh, kw)
        self.stride = pair(stride, "stride", name or "Conv2D")
        if min(self.stride) < 1:
            raise ValueError(f"Conv2D {name!r}: stride must be >= 1, got {self.stride}")
        self.pad = pair(pad, "pad", name or "Conv2D")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, kernel=self.kernel,
                           stride=self.stride, pad=self.pad)
        fan_in = in_channels * kh * kw
        self.params["W"] = init_weights((out_channels, in_channels, kh, kw), fan_in, init, rng)
        self.params["b"] = np.full((out_channels,), bias, dtype=np.float32)
        self.zero_grads()

    def output_shape(self, input_shape):
        _check_shape_rank(input_shape, 3, self.label)
        C, H, W = input_shape
        if C != self.config["in_channels"]:
            raise ValueError(f"{self.label}: expected {self.config['in_channels']} input channels, got {C}")
        oh, ow = ops.conv_output_shape((H, W), self.kernel, self.stride, self.pad, self.label)
        return (self.config["out_channels"], oh, ow)

    def geometry(self):
        return self.kernel, self.stride, self.pad

    def macs(self, input_shape):
        F, oh, ow = self.output_shape(input_shape)
        return F * oh * ow * input_shape[0] * self.kernel[0] * self.kernel[1]

    def forward(self, x, train=False):
        y, self.cache = ops.conv2d_forward(x, self.params["W"], self.params["b"], self.stride, self.pad, self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        dx, dW, db = ops.conv2d_backward(dy, self.cache, need_dx=need_dx, param_grads=param_grads, name=self.label)
        if param_grads:
            self.grads["W"], self.grads["b"] = dW, db
        return dx


class Linear(Layer):
    """Fully connected. Input (N, in_features) -> (N, out_features). Weights (in_features, out_features)."""

    def __init__(self, in_features, out_features, init="he", bias=0.0, rng=None, name=None):
        super().__init__(name)
        in_features = _count(in_features, "in_features", f"Linear {name!r}")
        out_features = _count(out_features, "out_features", f"Linear {name!r}")
        self.config = dict(in_features=in_features, out_features=out_features)
        self.params["W"] = init_weights((in_features, out_features), in_features, init, rng)
        self.params["b"] = np.full((out_features,), bias, dtype=np.float32)
        self.zero_grads()

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.config["in_features"],):
            raise ValueError(f"{self.label}: expected {self.config['in_features']} input features, "
                             f"got per-sample shape {tuple(input_shape)}")
        return (self.config["out_features"],)

    def macs(self, input_shape):
        return self.config["in_features"] * self.config["out_features"]

    def forward(self, x, train=False):
        y, self.cache = ops.linear_forward(x, self.params["W"], self.params["b"], self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        dx, dW, db = ops.linear_backward(dy, self.cache, need_dx=need_dx, param_grads=param_grads, name=self.label)
        if param_grads:
            self.grads["W"], self.grads["b"] = dW, db
        return dx


class ReLU(Layer):
    """max(x, 0). Backward takes the rule: "backprop", "deconvnet" or "guided" (see ops.activation)."""

    def forward(self, x, train=False):
        y, self.cache = ops.relu_forward(x, self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        return ops.relu_backward(dy, self.cache, rule, self.label)


class _Pool(Layer):
    def __init__(self, kernel, stride=None, pad=0, ceil_mode=False, name=None):
        super().__init__(name)
        self.kernel = pair(kernel, "kernel", name or type(self).__name__)
        self.stride = self.kernel if stride is None else pair(stride, "stride", name or type(self).__name__)
        if min(self.stride) < 1 or min(self.kernel) < 1:
            raise ValueError(f"{type(self).__name__} {name!r}: kernel and stride must be >= 1, "
                             f"got kernel {self.kernel}, stride {self.stride}")
        self.pad = pair(pad, "pad", name or type(self).__name__)
        self.ceil_mode = bool(ceil_mode)
        self.config = dict(kernel=self.kernel, stride=self.stride, pad=self.pad, ceil_mode=self.ceil_mode)

    def output_shape(self, input_shape):
        _check_shape_rank(input_shape, 3, self.label)
        C, H, W = input_shape
        oh, ow = ops.pool_output_shape((H, W), self.kernel, self.stride, self.pad, self.ceil_mode, self.label)
        return (C, oh, ow)

    def geometry(self):
        return self.kernel, self.stride, self.pad


class MaxPool2D(_Pool):
    """Max pooling with switches. ``layer.switches`` (N, C, oh, ow) int32, window-local ``ky*kw + kx``."""

    @property
    def switches(self):
        return None if self.cache is None else self.cache.switches

    def forward(self, x, train=False):
        y, self.cache = ops.max_pool2d_forward(x, self.kernel, self.stride, self.pad, self.ceil_mode, self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        return ops.max_pool2d_backward(dy, self.cache, self.label)


class AvgPool2D(_Pool):
    """Average pooling (zero padding counts in the divisor)."""

    def __init__(self, kernel, stride=None, pad=0, name=None):
        super().__init__(kernel, stride, pad, False, name)
        del self.config["ceil_mode"]

    def forward(self, x, train=False):
        y, self.cache = ops.avg_pool2d_forward(x, self.kernel, self.stride, self.pad, self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        return ops.avg_pool2d_backward(dy, self.cache, self.label)


class LRN(Layer):
    """Local response normalisation across channels; alpha is not divided by n (see ops.normalization)."""

    def __init__(self, n=5, k=2.0, alpha=1e-4, beta=0.75, name=None):
        super().__init__(name)
        if not isinstance(n, int) or n < 1 or n % 2 == 0:
            raise ValueError(f"LRN {name!r}: the window n must be a positive odd integer, got {n!r}")
        for what, value in (("k", k), ("alpha", alpha), ("beta", beta)):
            _finite(value, what, f"LRN {name!r}")
        self.config = dict(n=n, k=k, alpha=alpha, beta=beta)

    def forward(self, x, train=False):
        y, self.cache = ops.lrn_forward(x, **self.config, name=self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        return ops.lrn_backward(dy, self.cache, self.label)


class Dropout(Layer):
    """Inverted dropout: active only when ``forward(x, train=True)``; the identity otherwise."""

    def __init__(self, p=0.5, seed=None, name=None):
        super().__init__(name)
        if not 0 <= _finite(p, "drop probability p", f"Dropout {name!r}") < 1:
            raise ValueError(f"Dropout {name!r}: drop probability must lie in [0, 1), got {p}")
        self.config = dict(p=p)
        self.rng = np.random.default_rng(seed)

    def forward(self, x, train=False):
        check_array(x, self.label)          # also when it is the identity: the dtypes are the same in both modes
        if not train or self.config["p"] == 0:
            self.cache = None
            return x
        y, self.cache = ops.dropout_forward(x, self.config["p"], self._rng_for(x), self.label)
        return y

    def _rng_for(self, x):
        """``self.rng`` for NumPy input. For CuPy input, a CuPy generator seeded once from it: the mask is drawn
        on the GPU (no host mask copied over every batch) and a seeded layer stays reproducible."""
        if not backend.is_gpu_array(x):
            return self.rng
        if getattr(self, "_gpu_rng", None) is None:
            self._gpu_rng = backend.cupy().random.default_rng(int(self.rng.integers(2**63)))
        return self._gpu_rng

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        return dy if self.cache is None else ops.dropout_backward(dy, self.cache, self.label)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), row-major."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, train=False):
        check_array(x, self.label)
        self.cache = x.shape
        # The size is spelled out: reshape(N, -1) cannot infer it when N == 0 (an empty batch is valid input).
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        check_array(dy, self.label, "upstream gradient")
        expected = (self.cache[0], int(np.prod(self.cache[1:])))
        if tuple(getattr(dy, "shape", ())) != expected:
            raise ValueError(f"{self.label}: upstream gradient must have shape {expected}, "
                             f"got {tuple(getattr(dy, 'shape', ()))}")
        return dy.reshape(self.cache)


class BatchNorm(Layer):
    """Batch normalisation per channel (4-D input) or feature (2-D input), with running statistics."""

    def __init__(self, num_features, momentum=0.1, eps=1e-5, name=None):
        super().__init__(name)
        num_features = _count(num_features, "num_features", f"BatchNorm {name!r}")
        if not 0 <= _finite(momentum, "momentum", f"BatchNorm {name!r}") <= 1:
            raise ValueError(f"BatchNorm {name!r}: momentum must lie in [0, 1], got {momentum!r}")
        if not _finite(eps, "eps", f"BatchNorm {name!r}") > 0:
            raise ValueError(f"BatchNorm {name!r}: eps must be > 0, got {eps!r}")
        self.config = dict(num_features=num_features, momentum=momentum, eps=eps)
        self.params["gamma"] = np.ones(num_features, dtype=np.float32)
        self.params["beta"] = np.zeros(num_features, dtype=np.float32)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=np.float32)
        self.buffers["running_var"] = np.ones(num_features, dtype=np.float32)
        self.zero_grads()

    def output_shape(self, input_shape):
        if input_shape[0] != self.config["num_features"]:
            raise ValueError(f"{self.label}: expected {self.config['num_features']} channels, got shape {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x, train=False):
        # (An empty training batch leaves the running statistics alone: the op sees to that.)
        y, self.cache = ops.batch_norm_forward(
            x, self.params["gamma"], self.params["beta"], self.buffers["running_mean"], self.buffers["running_var"],
            train, self.config["momentum"], self.config["eps"], self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, self.cache, param_grads, self.label)
        if param_grads:
            self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx


class _PerImageNorm(Layer):
    """Shared body of LayerNorm and InstanceNorm: per-channel gamma (ones) and beta (zeros), no running statistics,
    the same computation in training and evaluation. Subclasses name the op pair."""

    _forward = _backward = None     # set by subclasses: an ops *_forward / *_backward pair

    def __init__(self, num_channels, eps=1e-5, name=None):
        super().__init__(name)
        if not isinstance(num_channels, (int, np.integer)) or isinstance(num_channels, bool) or num_channels < 1:
            raise ValueError(f"{type(self).__name__}: num_channels must be a positive int, got {num_channels!r}")
        if not eps > 0:
            raise ValueError(f"{type(self).__name__}: eps must be > 0, got {eps!r}")
        self.config = dict(num_channels=int(num_channels), eps=eps)
        self.params["gamma"] = np.ones(num_channels, dtype=np.float32)
        self.params["beta"] = np.zeros(num_channels, dtype=np.float32)
        self.zero_grads()

    def output_shape(self, input_shape):
        _check_shape_rank(input_shape, 3, self.label)
        if input_shape[0] != self.config["num_channels"]:
            raise ValueError(f"{self.label}: expected {self.config['num_channels']} channels, "
                             f"got shape {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x, train=False):
        gamma, beta = self.params["gamma"], self.params["beta"]
        y, self.cache = type(self)._forward(x, gamma, beta, self.config["eps"], self.label)
        return y

    def backward(self, dy, rule="backprop", param_grads=True, need_dx=True):
        self._check_cache()
        dx, dgamma, dbeta = type(self)._backward(dy, self.cache, param_grads, self.label)
        if param_grads:
            self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx


class LayerNorm(_PerImageNorm):
    """Layer normalisation (Ba et al. 2016) for (N, C, H, W): each image normalised over all of (C, H, W), then
    ``gamma[c] * x_hat + beta[c]`` per channel. eps (1e-5) is added to the variance. See ops/normalization.py."""

    _forward = staticmethod(ops.layer_norm_forward)
    _backward = staticmethod(ops.layer_norm_backward)


class InstanceNorm(_PerImageNorm):
    """Instance normalisation (Ulyanov et al. 2016) for (N, C, H, W): each feature map normalised over its (H, W),
    then ``gamma[c] * x_hat + beta[c]``. eps (1e-5) is added to the variance. See ops/normalization.py."""

    _forward = staticmethod(ops.instance_norm_forward)
    _backward = staticmethod(ops.instance_norm_backward)


LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, Linear, ReLU, MaxPool2D, AvgPool2D, LRN, Dropout, Flatten, BatchNorm)}
LAYER_TYPES.update({cls.__name__: cls for cls in (LayerNorm, InstanceNorm)})
