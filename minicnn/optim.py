"""Stochastic gradient descent with momentum and L2 weight decay, and Zeiler-Fergus filter-RMS clipping.

The update is the one Krizhevsky et al. (2012) and Zeiler & Fergus (2014) write down, for every parameter W
with gradient g (the gradient of the mean loss over the batch):

    v <- momentum * v - lr * (g + weight_decay * W)       (weight decay only on weights, not biases, by default)
    W <- W + v

ZF defaults: lr 1e-2, momentum 0.9, batch 128. After the update, ZF renormalise every convolutional filter
whose root-mean-square value exceeds a fixed radius (1e-1) back to that radius (``clip_filter_rms``), which
keeps a few first-layer filters from dominating.

Parameters are updated in place (``W += v``), so the arrays the layers hold stay the same objects; the
optimiser looks them up through ``net.named_params()`` at every step, so a ``net.load_state_dict`` that
replaces them is also fine.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend
from .layers import Conv2D

__all__ = ["SGD", "clip_filter_rms", "filter_rms"]


def filter_rms(W):
    """Root-mean-square value of each filter. W: (F, C, kh, kw) -> (F,), in W's dtype and on W's device."""
    xp = backend.xp(W)
    if W.ndim != 4:
        raise ValueError(f"filter_rms: expected conv weights (F, C, kh, kw), got shape {tuple(W.shape)}")
    return xp.sqrt(xp.mean(W * W, axis=(1, 2, 3)))


def clip_filter_rms(net, radius=0.1):
    """ZF feature-scale clipping: rescale every conv filter W[f] whose RMS exceeds ``radius`` to exactly ``radius``.

    Filters at or below the radius are left untouched (bit for bit). Works in place on every Conv2D layer of
    ``net``. Returns the number of filters that were rescaled.
    """
    if not _real(radius, "radius", "clip_filter_rms") > 0:
        raise ValueError(f"clip_filter_rms: radius must be > 0, got {radius!r}")
    clipped = 0
    for layer in net.layers:
        if not isinstance(layer, Conv2D):
            continue
        W = layer.params["W"]
        xp = backend.xp(W)
        rms = filter_rms(W)                                   # (F,)
        over = rms > radius
        n_over = int(over.sum())
        if n_over:
            scale = xp.where(over, radius / xp.maximum(rms, 1e-30), 1).astype(W.dtype)
            W *= scale[:, None, None, None]
            clipped += n_over
    return clipped


def _real(value, name, where):
    """``value`` as a finite float, or a ValueError naming the hyperparameter (NaN must not pass for 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite real number, got {value!r}")
    return float(value)


def _check_hyperparams(where, lr, momentum, weight_decay, clip_radius, decay_biases, steps=0):
    """Validate SGD's settings; returns them normalised (floats, None, bool, int) or raises naming the bad one."""
    lr, momentum, weight_decay = (_real(v, n, where) for v, n in ((lr, "lr"), (momentum, "momentum"),
                                                                   (weight_decay, "weight_decay")))
    if not lr > 0:
        raise ValueError(f"{where}: lr must be > 0, got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"{where}: momentum must lie in [0, 1), got {momentum!r}")
    if weight_decay < 0:
        raise ValueError(f"{where}: weight_decay must be >= 0, got {weight_decay!r}")
    if clip_radius is not None:
        clip_radius = _real(clip_radius, "clip_radius", where)
        if not clip_radius > 0:
            raise ValueError(f"{where}: clip_radius must be None or > 0, got {clip_radius!r}")
    if not isinstance(decay_biases, (bool, np.bool_, numbers.Integral)):
        raise ValueError(f"{where}: decay_biases must be a bool, got {decay_biases!r}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"{where}: steps must be an integer >= 0, got {steps!r}")
    return lr, momentum, weight_decay, clip_radius, bool(decay_biases), int(steps)


class SGD:
    """SGD with (heavy-ball) momentum, L2 weight decay and optional ZF filter-RMS clipping.

    net: a ``Sequential`` (its ``named_params`` / ``named_grads`` are read at every ``step``).
    lr: learning rate (``schedule`` objects change ``optimizer.lr`` between epochs).
    momentum: in [0, 1). weight_decay: L2 coefficient (the loss gains ``weight_decay / 2 * ||W||^2``).
    decay_biases: also decay parameters named ``b`` (off by default, as is usual).
    clip_radius: None, or the ZF radius (0.1 in the paper) applied to conv filters after every step.
    """

    def __init__(self, net, lr=1e-2, momentum=0.9, weight_decay=5e-4, clip_radius=None, decay_biases=False):
        lr, momentum, weight_decay, clip_radius, decay_biases, _ = _check_hyperparams(
            "SGD", lr, momentum, weight_decay, clip_radius, decay_biases)
        if not hasattr(net, "named_params") or not hasattr(net, "named_grads"):
            raise TypeError(f"SGD: expected a network with named_params() and named_grads() (a Sequential), "
                            f"got {type(net).__name__}")
        self.net = net
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.clip_radius, self.decay_biases = clip_radius, decay_biases
        self.velocity = {}          # "layer.key" -> array like the parameter; created lazily at the first step
        self.steps = 0

    def _decays(self, key):
        return self.weight_decay > 0 and (self.decay_biases or not key.endswith(".b"))

    def step(self):
        """Apply one update from the gradients the last ``net.backward`` left in each layer's ``grads``."""
        params, grads = self.net.named_params(), self.net.named_grads()
        for key, W in params.items():
            if key not in grads:
                raise KeyError(f"SGD.step: no gradient for parameter {key!r}; call net.backward first")
            g = grads[key]
            if tuple(g.shape) != tuple(W.shape):
                raise ValueError(f"SGD.step: gradient of {key} has shape {tuple(g.shape)}, parameter {tuple(W.shape)}")
            xp = backend.xp(W)
            v = self.velocity.get(key)
            if v is None or tuple(v.shape) != tuple(W.shape) or backend.xp(v) is not xp:
                v = self.velocity[key] = xp.zeros(W.shape, dtype=W.dtype)
            step = g + self.weight_decay * W if self._decays(key) else g
            v *= self.momentum
            v -= (self.lr * step).astype(W.dtype, copy=False)
            W += v
        if self.clip_radius is not None:
            clip_filter_rms(self.net, self.clip_radius)
        self.steps += 1

    # --- checkpoints ------------------------------------------------------------------------------
    def hyperparams(self):
        """The settings as plain data (JSON-able)."""
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "clip_radius": self.clip_radius, "decay_biases": self.decay_biases, "steps": self.steps}

    def state_dict(self):
        """{"hyperparams": dict, "velocity": {"layer.key": NumPy array}} (copies on the host)."""
        return {"hyperparams": self.hyperparams(),
                "velocity": {k: backend.to_numpy(v).copy() for k, v in self.velocity.items()}}

    def load_state_dict(self, state):
        """Restore hyperparameters and momentum buffers (as ``state_dict`` wrote them; missing hyperparameters keep
        their current values). Everything is checked first: a state that does not fit changes nothing."""
        from collections.abc import Mapping
        if not isinstance(state, Mapping):
            raise TypeError(f"SGD.load_state_dict: expected a dict with 'hyperparams' and 'velocity', "
                            f"got {type(state).__name__}")
        hp, given_velocity = state.get("hyperparams", {}), state.get("velocity", {})
        if not isinstance(hp, Mapping) or not isinstance(given_velocity, Mapping):
            raise TypeError(f"SGD.load_state_dict: 'hyperparams' and 'velocity' must be dicts, got "
                            f"{type(hp).__name__} and {type(given_velocity).__name__}")
        current = self.hyperparams()
        settings = _check_hyperparams("SGD.load_state_dict", *(hp.get(k, current[k]) for k in
                                      ("lr", "momentum", "weight_decay", "clip_radius", "decay_biases")),
                                      steps=hp.get("steps", 0))
        params = self.net.named_params()
        velocity = {}
        for key, v in given_velocity.items():
            if key not in params:
                raise ValueError(f"SGD.load_state_dict: momentum buffer for {key!r}, which the network does not have; "
                                 f"parameters are: {', '.join(params)}")
            W = params[key]
            try:
                v = backend.to_numpy(v) if backend.is_gpu_array(v) else np.asarray(v)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"SGD.load_state_dict: momentum buffer {key} is not an array: {exc}") from None
            if v.dtype.kind not in "fiu":
                raise ValueError(f"SGD.load_state_dict: momentum buffer {key} must hold real numbers, "
                                 f"got dtype {v.dtype}")
            if tuple(v.shape) != tuple(W.shape):
                raise ValueError(f"SGD.load_state_dict: momentum buffer {key} has shape {tuple(v.shape)}, "
                                 f"but the parameter has shape {tuple(W.shape)}")
            velocity[key] = v
        # Everything checked: now change the optimiser.
        self.velocity = {key: backend.xp(params[key]).asarray(v, dtype=params[key].dtype).copy()
                         for key, v in velocity.items()}
        (self.lr, self.momentum, self.weight_decay, self.clip_radius, self.decay_biases, self.steps) = settings

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, "
                f"clip_radius={self.clip_radius})")
