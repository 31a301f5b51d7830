"""Stochastic gradient descent with momentum and L2 weight decay, and Zeiler-Fergus filter-RMS clipping.

The update is the one Krizhevsky et al. (2012) and Zeiler & Fergus (2014) write down, for every parameter W
with gradient g (the gradient of the mean loss over the batch):

    v <- momentum * v - lr * (g + weight_decay * W)       (weight decay only on weights, not biases, by default)
    W <- W + v

ZF defaults: lr 1e-2, momentum 0.9, batch 128. After the update, ZF renormalise every convolutional filter
whose root-mean-square value exceeds a fixed radius (1e-1) back to that radius (``clip_filter_rms``), which
keeps a few first-layer filters from dominating.

Fine-tuning (transfer learning, ZF section 5.2) needs two more knobs, both keyed by layer name:

    freeze=["conv1", "conv2"]     these layers are not updated at all: no gradient step, no weight decay, no
                                  momentum, no filter clipping; their parameters stay bit for bit as they are.
                                  The optimiser marks them (``layer.trainable = False``), so the backward pass
                                  computes no gradients for their parameters, and, below the lowest layer that
                                  learns, no backward at all
    lr_mult={"fc8": 10.0}         this layer learns with lr * 10 (a schedule that changes ``lr`` scales every layer)
    decay_mult={"fc8": 0.0}       this layer's weight decay is weight_decay * 0 (Caffe's lr_mult / decay_mult)

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


def clip_filter_rms(net, radius=0.1, skip=()):
    """ZF feature-scale clipping: rescale every conv filter W[f] whose RMS exceeds ``radius`` to exactly ``radius``.

    Filters at or below the radius are left untouched (bit for bit). Works in place on every Conv2D layer of
    ``net`` except those whose name is in ``skip`` (frozen layers). Returns the number of filters that were rescaled.
    """
    if not _real(radius, "radius", "clip_filter_rms") > 0:
        raise ValueError(f"clip_filter_rms: radius must be > 0, got {radius!r}")
    clipped = 0
    for layer in net.layers:
        if not isinstance(layer, Conv2D) or layer.name in skip:
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
    freeze: names of layers that must not change (see ``freeze``/``unfreeze`` to change it later).
    lr_mult: {layer name: factor > 0}; that layer's learning rate is ``lr * factor`` (1 for layers not listed).
    decay_mult: {layer name: factor >= 0}; that layer's weight decay is ``weight_decay * factor``.

    Fine-tuning a trained network on a new task: keep the features, retrain the classifier fast::

        opt = SGD(net, lr=1e-3, freeze=["conv1", "conv2", "conv3", "conv4", "conv5"], lr_mult={"fc8": 10.0})
        ...                              # train; then let the upper convolutions adapt too:
        opt.unfreeze("conv4", "conv5")

    All three survive ``state_dict`` / ``load_state_dict`` and so a checkpoint and ``Trainer.resume``.
    """

    def __init__(self, net, lr=1e-2, momentum=0.9, weight_decay=5e-4, clip_radius=None, decay_biases=False,
                 freeze=(), lr_mult=None, decay_mult=None):
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
        self.frozen = set()         # layer names; see freeze()
        self.lr_mult = self._check_mults(lr_mult, "lr_mult")
        self.decay_mult = self._check_mults(decay_mult, "decay_mult")
        self.freeze(*self._check_names(freeze, "freeze"))
        self._mark_frozen_layers()

    # --- per-layer settings -----------------------------------------------------------------------------------
    def _check_names(self, names, what):
        """A list of layer names, each a layer of the net that has parameters; a clear error otherwise."""
        if isinstance(names, str):
            names = [names]
        try:
            names = list(names)
        except TypeError:
            raise TypeError(f"SGD: {what} takes layer names, got {names!r}") from None
        with_params = [layer.name for layer in self.net.layers if layer.params]
        for name in names:
            if name not in self.net.names:
                raise ValueError(f"SGD: {what}: the network has no layer named {name!r}; layers with parameters "
                                 f"are: {', '.join(with_params)}")
            if name not in with_params:
                raise ValueError(f"SGD: {what}: layer {name!r} has no parameters; layers with parameters are: "
                                 f"{', '.join(with_params)}")
        return names

    def _check_mults(self, mults, what):
        """{layer name: float}; lr_mult > 0 (to stop a layer, freeze it), decay_mult >= 0, both finite."""
        if mults is None:
            return {}
        if not isinstance(mults, dict):
            raise TypeError(f"SGD: {what} must be a dict {{layer name: factor}}, got {type(mults).__name__}")
        self._check_names(list(mults), what)
        out = {}
        for name, value in mults.items():
            # abs(v) < inf is False for inf and NaN alike
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < float("inf")
            if not ok or (value <= 0 if what == "lr_mult" else value < 0):
                bound = "> 0 (freeze a layer to stop it learning)" if what == "lr_mult" else ">= 0"
                raise ValueError(f"SGD: {what} for layer {name!r} must be a finite number {bound}, got {value!r}")
            out[name] = float(value)
        return out

    def freeze(self, *names):
        """Stop the named layers' parameters from changing. Their momentum buffers are dropped, so a layer unfrozen
        later starts from rest rather than with a stale velocity. (Buffers are not parameters: a frozen BatchNorm
        still updates its running statistics in training mode; the optimiser does not own them.)"""
        for name in self._check_names(names, "freeze"):
            self.frozen.add(name)
            for key in [k for k in self.velocity if k.rsplit(".", 1)[0] == name]:
                del self.velocity[key]
        self._mark_frozen_layers()

    def unfreeze(self, *names):
        """Let the named layers learn again (no names: every layer)."""
        names = self._check_names(names, "unfreeze") if names else list(self.frozen)
        self.frozen.difference_update(names)
        self._mark_frozen_layers()

    def _mark_frozen_layers(self):
        """Tell every layer whether it learns (``layer.trainable``), so that the backward pass computes no parameter
        gradients for a frozen one: they would only be thrown away."""
        for layer in self.net.layers:
            if layer.params:
                layer.trainable = layer.name not in self.frozen

    def _layer_settings_from(self, hp):
        """(lr_mult, decay_mult, frozen) from saved hyperparameters, each checked against the network; a state
        from before per-layer settings existed leaves the current ones (``load_state_dict`` uses this)."""
        lr_mult = self._check_mults(hp["lr_mult"], "lr_mult") if "lr_mult" in hp else self.lr_mult
        decay_mult = self._check_mults(hp["decay_mult"], "decay_mult") if "decay_mult" in hp else self.decay_mult
        frozen = set(self._check_names(hp["frozen"], "frozen")) if "frozen" in hp else self.frozen
        return lr_mult, decay_mult, frozen

    def layer_lr(self, name):
        """The learning rate the named layer gets now: 0 if frozen, else ``lr * lr_mult``."""
        self._check_names([name], "layer_lr")
        return 0.0 if name in self.frozen else self.lr * self.lr_mult.get(name, 1.0)

    def _decays(self, key):
        return self.weight_decay > 0 and (self.decay_biases or not key.endswith(".b"))

    def step(self):
        """Apply one update from the gradients the last ``net.backward`` left in each layer's ``grads``."""
        params, grads = self.net.named_params(), self.net.named_grads()
        for key, W in params.items():
            layer = key.rsplit(".", 1)[0]       # parameter keys are "layer.key"; layer names may hold dots
            if layer in self.frozen:
                continue
            if key not in grads:
                raise KeyError(f"SGD.step: no gradient for parameter {key!r}; call net.backward first")
            g = grads[key]
            if tuple(g.shape) != tuple(W.shape):
                raise ValueError(f"SGD.step: gradient of {key} has shape {tuple(g.shape)}, parameter {tuple(W.shape)}")
            xp = backend.xp(W)
            v = self.velocity.get(key)
            if v is None or tuple(v.shape) != tuple(W.shape) or backend.xp(v) is not xp:
                v = self.velocity[key] = xp.zeros(W.shape, dtype=W.dtype)
            decay = self.weight_decay * self.decay_mult.get(layer, 1.0)
            step = g + decay * W if self._decays(key) and decay > 0 else g
            v *= self.momentum
            v -= (self.lr * self.lr_mult.get(layer, 1.0) * step).astype(W.dtype, copy=False)
            W += v
        if self.clip_radius is not None:
            clip_filter_rms(self.net, self.clip_radius, skip=self.frozen)
        self.steps += 1

    # --- checkpoints ------------------------------------------------------------------------------
    def hyperparams(self):
        """The settings as plain data (JSON-able)."""
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "clip_radius": self.clip_radius, "decay_biases": self.decay_biases, "steps": self.steps,
                "frozen": sorted(self.frozen), "lr_mult": dict(self.lr_mult), "decay_mult": dict(self.decay_mult)}

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
        layer_settings = self._layer_settings_from(hp)      # checked before anything changes
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
        self.lr_mult, self.decay_mult, self.frozen = layer_settings
        self._mark_frozen_layers()

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, "
                f"clip_radius={self.clip_radius}"
                + (f", freeze={sorted(self.frozen)}" if self.frozen else "")
                + (f", lr_mult={self.lr_mult}" if self.lr_mult else "")
                + (f", decay_mult={self.decay_mult}" if self.decay_mult else "") + ")")
