"""Sequential: a stack of layers with one forward and one backward.

``backward(dy, rule=...)`` hands the ReLU rule to every ReLU, so training (``"backprop"``), the Zeiler-Fergus
deconvnet (``"deconvnet"``) and guided backpropagation (``"guided"``) are the same pass. ``start`` lets the
backward begin at any layer (the gradient then stands for that layer's output), and ``passthrough`` turns
chosen layer types into the identity on the way down (the deconvnet passes LRN and dropout through).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import backend
from .layers import LAYER_TYPES, Layer
from .ops.activation import check_rule
from .ops.dispatch import active_cpu_path

__all__ = ["Sequential", "LayerInfo"]

_NAME_PREFIX = {"Conv2D": "conv", "Linear": "fc", "ReLU": "relu", "MaxPool2D": "pool", "AvgPool2D": "avgpool",
                "LRN": "norm", "Dropout": "drop", "Flatten": "flatten", "BatchNorm": "bn"}
_NAME_PREFIX.update({"LayerNorm": "ln", "InstanceNorm": "inorm"})


@dataclass
class LayerInfo:
    """One row of ``Sequential.summary``: per-sample figures of one layer."""
    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    activation_bytes: int
    rf: tuple        # receptive field (height, width) in input pixels
    jump: tuple      # distance in input pixels between neighbouring units (height, width)
    start: tuple     # input coordinate of the centre of unit (0, 0), may be negative with padding


class Sequential:
    """A chain of layers. ``net["conv1"]`` or ``net[0]`` returns a layer; names are made unique on construction."""

    def __init__(self, layers, name="net"):
        self.name = name
        self.layers: list[Layer] = list(layers)
        counts = Counter()
        seen = set()
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: every element must be a Layer, got {type(layer).__name__}")
            kind = type(layer).__name__
            counts[kind] += 1
            if layer.name is None:
                layer.name = f"{_NAME_PREFIX.get(kind, kind.lower())}{counts[kind]}"
            if layer.name in seen:
                raise ValueError(f"Sequential: duplicate layer name {layer.name!r}")
            seen.add(layer.name)

    # --- access ----------------------------------------------------------------------------------
    @property
    def names(self):
        return [layer.name for layer in self.layers]

    def index(self, key):
        """Position of a layer given by name, index or the layer itself."""
        if isinstance(key, Layer):
            key = key.name
        if isinstance(key, (int, np.integer)):
            if not -len(self.layers) <= key < len(self.layers):
                raise IndexError(f"{self.name}: layer index {key} out of range for {len(self.layers)} layers")
            return int(key) % len(self.layers)
        for i, layer in enumerate(self.layers):
            if layer.name == key:
                return i
        raise KeyError(f"{self.name}: no layer named {key!r}; layers are: {', '.join(self.names)}")

    def __getitem__(self, key):
        return self.layers[self.index(key)]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        body = "\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Sequential(name={self.name!r}, [\n{body}\n])"

    # --- passes ----------------------------------------------------------------------------------
    def forward(self, x, train=False, until=None):
        """Run the layers in order. x: (N, C, H, W). Returns the output of the last layer, or of ``until``."""
        stop = len(self.layers) - 1 if until is None else self.index(until)
        for layer in self.layers[:stop + 1]:
            x = layer.forward(x, train=train)
        return x

    __call__ = forward

    def backward(self, dy, rule="backprop", param_grads=True, start=None, passthrough=(), input_grad=True):
        """Backpropagate ``dy`` (the gradient of the output of ``start``, default the last layer) to the input.

        rule: ReLU rule, "backprop" | "deconvnet" | "guided". param_grads: fill each layer's ``grads`` (a layer whose
        ``trainable`` is False, i.e. frozen by the optimiser, computes none and keeps its old ``grads``).
        passthrough: layer types (classes) treated as the identity. input_grad=False skips the first layer's
        input gradient (training never needs it) and returns None; the pass then also stops at the lowest layer
        that learns, since nothing below it needs a gradient (fine-tuning the top of a frozen network is cheap).
        Returns dx with the shape of the network input.
        """
        check_rule(rule, f"{self.name}.backward")
        first = self.index(start) if start is not None else len(self.layers) - 1
        last = 0
        if not input_grad:
            learning = [i for i in range(first + 1) if param_grads and self.layers[i].params
                        and self.layers[i].trainable]
            if not learning:
                return None
            last = learning[0]
        for i in range(first, last - 1, -1):
            layer = self.layers[i]
            if passthrough and isinstance(layer, tuple(passthrough)):
                continue
            dy = layer.backward(dy, rule=rule, param_grads=param_grads and layer.trainable,
                                need_dx=input_grad or i > last)
        return dy

    # --- parameters ------------------------------------------------------------------------------
    def named_params(self):
        """{"conv1.W": array, ...} for every trainable parameter (the arrays themselves, not copies)."""
        return {f"{layer.name}.{key}": value for layer in self.layers for key, value in layer.params.items()}

    def named_grads(self):
        return {f"{layer.name}.{key}": value for layer in self.layers for key, value in layer.grads.items()}

    def num_params(self):
        return sum(layer.num_params() for layer in self.layers)

    def state_dict(self):
        """Parameters and buffers as {"layer.key": NumPy array} (copied to the host)."""
        state = {}
        for layer in self.layers:
            for store in (layer.params, layer.buffers):
                for key, value in store.items():
                    state[f"{layer.name}.{key}"] = backend.to_numpy(value).copy()
        return state

    def load_state_dict(self, state):
        """Copy arrays from ``state`` ({"layer.key": array-like}) into the parameters and buffers.

        Every key and shape must match and every value must be a real number array (lists are accepted as
        arrays); values are cast to each parameter's dtype. Everything is checked before anything is copied,
        so a state that does not fit leaves the network exactly as it was.
        """
        from collections.abc import Mapping
        if not isinstance(state, Mapping):
            raise TypeError(f"{self.name}.load_state_dict: expected a mapping {{'layer.key': array}}, "
                            f"got {type(state).__name__}")
        own = {}
        for layer in self.layers:
            for store in (layer.params, layer.buffers):
                for key in store:
                    own[f"{layer.name}.{key}"] = (store, key)
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{self.name}: state does not fit the architecture; missing {missing}, unexpected {unexpected}")
        staged = {}
        for full_key, (store, key) in own.items():
            current, new = store[key], state[full_key]
            try:
                host = backend.to_numpy(new) if backend.is_gpu_array(new) else np.asarray(new)
            except (ValueError, TypeError) as exc:       # ragged nested lists, objects that are not arrays
                raise ValueError(f"{self.name}: {full_key} is not an array ({type(new).__name__}): {exc}") from None
            if host.dtype.kind not in "fiu":
                raise ValueError(f"{self.name}: {full_key} must hold real numbers, got dtype {host.dtype}")
            if tuple(current.shape) != tuple(host.shape):
                raise ValueError(f"{self.name}: {full_key} has shape {tuple(current.shape)} in the network "
                                 f"but {tuple(host.shape)} in the state")
            staged[full_key] = host
        for full_key, (store, key) in own.items():        # all checked: now copy
            current = store[key]
            store[key] = backend.xp(current).asarray(staged[full_key], dtype=current.dtype).copy()

    def to(self, device):
        """Move every parameter to "cpu" or "gpu"."""
        for layer in self.layers:
            layer.to(device)
        return self

    def astype(self, dtype):
        """Convert every parameter to float32 or float64 (float64 for gradient checks)."""
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"{self.name}.astype: parameters are float32 or float64, got {np.dtype(dtype)}")
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def zero_grads(self):
        for layer in self.layers:
            layer.zero_grads()

    # --- architecture ----------------------------------------------------------------------------
    def config(self):
        """The architecture as plain data (JSON-able): a list of {"type", "name", **constructor args}."""
        return [{"type": type(layer).__name__, "name": layer.name, **_jsonable(layer.config)} for layer in self.layers]

    @classmethod
    def from_config(cls, config, name="net"):
        """Rebuild a network from ``config()`` (weights are freshly initialised; load them after)."""
        layers = []
        for i, entry in enumerate(config):
            if not isinstance(entry, dict) or "type" not in entry:
                raise ValueError(f"architecture entry {i} must be a dict with a 'type' (e.g. {{'type': 'ReLU'}}), "
                                 f"got {entry!r}")
            entry = dict(entry)
            kind = entry.pop("type")
            if kind not in LAYER_TYPES:
                raise ValueError(f"unknown layer type {kind!r} in architecture; known: {', '.join(LAYER_TYPES)}")
            layers.append(LAYER_TYPES[kind](**entry))
        return cls(layers, name=name)

    # --- summary -----------------------------------------------------------------------------------
    def layer_info(self, input_shape):
        """Per-layer figures for one sample of shape (C, H, W): see ``LayerInfo``."""
        shape = tuple(input_shape)
        rf, jump, start = (1, 1), (1, 1), (0.0, 0.0)
        rows = []
        for layer in self.layers:
            out = layer.output_shape(shape)
            (kh, kw), (sy, sx), (ph, pw) = layer.geometry()
            if len(out) == 3:
                # r_out = r_in + (k - 1) * j_in ;  j_out = j_in * s ;  centre moves by ((k - 1)/2 - p) * j_in
                start = (start[0] + ((kh - 1) / 2 - ph) * jump[0], start[1] + ((kw - 1) / 2 - pw) * jump[1])
                rf = (rf[0] + (kh - 1) * jump[0], rf[1] + (kw - 1) * jump[1])
                jump = (jump[0] * sy, jump[1] * sx)
            elif len(shape) == 3:
                # Flatten / fully connected: every unit sees the whole input.
                rf = (input_shape[1], input_shape[2])
                jump, start = (0, 0), ((input_shape[1] - 1) / 2, (input_shape[2] - 1) / 2)
            rows.append(LayerInfo(layer.name, type(layer).__name__, out, layer.num_params(), layer.macs(shape),
                                  int(np.prod(out)) * 4, rf, jump, start))
            shape = out
        return rows

    def summary(self, input_shape, print_fn=print):
        """Print (and return) a table: layer, type, output shape, parameters, MACs, activation memory, RF."""
        rows = self.layer_info(input_shape)
        header = f"{'layer':<10} {'type':<10} {'output (C,H,W)':<16} {'params':>12} {'MACs':>15} {'act. mem':>10} {'RF':>9} {'jump':>5}"
        lines = [f"{self.name}: input {tuple(input_shape)}, per sample, float32", header, "-" * len(header)]
        for r in rows:
            shape = "x".join(str(s) for s in r.output_shape)
            rf = f"{r.rf[0]}x{r.rf[1]}" if r.rf[0] != r.rf[1] else str(r.rf[0])
            jump = f"{r.jump[0]}x{r.jump[1]}" if r.jump[0] != r.jump[1] else str(r.jump[0])
            lines.append(f"{r.name:<10} {r.type:<10} {shape:<16} {r.params:>12,} {r.macs:>15,} "
                         f"{_bytes(r.activation_bytes):>10} {rf:>9} {jump:>5}")
        lines.append("-" * len(header))
        total_params = sum(r.params for r in rows)
        total_macs = sum(r.macs for r in rows)
        total_act = sum(r.activation_bytes for r in rows)
        lines.append(f"{'total':<10} {'':<10} {'':<16} {total_params:>12,} {total_macs:>15,} {_bytes(total_act):>10}")
        lines.append(f"parameters: {total_params:,} ({_bytes(4 * total_params)} float32); "
                     f"multiply-accumulates: {total_macs:,} ({total_macs / 1e9:.2f} G) per sample")
        path, why = active_cpu_path()
        lines.append(f"CPU path: {path} ({why})")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _jsonable(config):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
