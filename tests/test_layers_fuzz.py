"""Every layer type, alone and stacked in a Sequential, through every path on hostile input (issue 14).

tests/test_paths_fuzz.py holds each *op* to the readable one on every path; this file does the same one level up,
where users meet the code: ``layer.forward`` / ``layer.backward`` and ``Sequential.forward`` / ``backward`` with the
three ReLU rules. An input the readable path accepts, every path accepts with the same answer (outputs, input
gradients, parameter gradients); an input it rejects, every path rejects with the same error, which names the layer.
"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minicnn import layers as L
from minicnn.net import Sequential
from test_kernels import cpu_kernels, on_cpu_kernels  # noqa: F401  (a fixture, used through `paths`)
from test_paths_fuzz import DTYPES, Draw, laid_out, on_every_path, paths, values  # noqa: F401


def make_layer(kind, C, dtype):
    rng = np.random.default_rng(0)
    made = {
        "conv": lambda: L.Conv2D(C, 2, (3, 2), stride=(2, 1), pad=(2, 1), rng=rng),
        "pool": lambda: L.MaxPool2D(3, 2, pad=1, ceil_mode=True),
        "avgpool": lambda: L.AvgPool2D(2, 1),
        "relu": lambda: L.ReLU(),
        "lrn": lambda: L.LRN(3, k=0.5, alpha=0.9),
        "dropout": lambda: L.Dropout(0.5, seed=3),
        "bn": lambda: L.BatchNorm(C),
        "ln": lambda: L.LayerNorm(C),
        "in": lambda: L.InstanceNorm(C),
    }[kind]()
    return made.astype(dtype if dtype in (np.float32, np.float64) else np.float64)


KINDS = ["conv", "pool", "avgpool", "relu", "lrn", "dropout", "bn", "ln", "in"]
# Every error message names the layer: its label in a network, its type name when it stands alone.
LABELS = r"(Conv2D|MaxPool2D|AvgPool2D|ReLU|LRN|Dropout|BatchNorm|LayerNorm|InstanceNorm|Linear|Flatten|" \
         r"conv\d|pool\d|avgpool\d|relu\d|lrn\d|norm\d|dropout\d|drop\d|bn\d|ln\d|inorm\d|fc\d|flatten\d|" \
         r"Sequential)"
NAMED = rf".*{LABELS}\b"


image = st.fixed_dictionaries(dict(N=st.sampled_from([0, 1, 2]), C=st.integers(1, 3), H=st.integers(1, 5),
                                   W=st.integers(1, 5)))


@given(kind=st.sampled_from(KINDS), g=image, train=st.booleans(), rule=st.sampled_from(["backprop", "deconvnet",
       "guided"]), wrong_dy=st.booleans(), dtype=DTYPES, data=st.data())
def test_layer(paths, kind, g, train, rule, wrong_dy, dtype, data):
    d = Draw(data, dtype)
    x = d.array((g["N"], g["C"], g["H"], g["W"]), "x")

    def call():
        layer = make_layer(kind, g["C"], dtype)         # a fresh layer per path: the same weights and state
        y = layer.forward(x, train=train)
        shape = (y.shape[0], y.shape[1] + 1) + y.shape[2:] if wrong_dy else y.shape
        dy = laid_out(values(np.random.default_rng(1), shape, d.kind, y.dtype), "negative")
        dx = layer.backward(dy, rule=rule) if kind == "relu" else layer.backward(dy)
        grads = tuple(layer.grads[k] for k in sorted(layer.grads))
        state = tuple(layer.buffers[k] for k in sorted(getattr(layer, "buffers", {})))
        return (y, dx) + grads + state

    on_every_path(paths, call, named=NAMED, writeable=False)


@given(g=image, rule=st.sampled_from(["backprop", "deconvnet", "guided"]), dtype=DTYPES, data=st.data())
def test_sequential_forward_and_every_backward_rule(paths, g, rule, dtype, data):
    d = Draw(data, dtype)
    x = d.array((g["N"], g["C"], g["H"], g["W"]), "x")

    def call():
        rng = np.random.default_rng(0)
        net = Sequential([L.Conv2D(g["C"], 3, 3, pad=2, rng=rng), L.ReLU(), L.MaxPool2D(3, 2, pad=1),
                          L.LRN(3, k=0.5, alpha=0.9), L.Conv2D(3, 2, (2, 3), pad=(1, 2), rng=rng), L.ReLU()])
        net.astype(dtype if dtype in (np.float32, np.float64) else np.float64)
        y = net.forward(x)
        dy = laid_out(values(np.random.default_rng(2), y.shape, d.kind, y.dtype), "strided")
        dx = net.backward(dy, rule=rule)
        return (y, dx) + tuple(v for _, v in sorted(net.named_grads().items()))

    on_every_path(paths, call, named=NAMED, writeable=False)
