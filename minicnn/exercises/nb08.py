"""Exercises of notebook 08 (transfer learning): count what an optimiser with frozen layers trains; build an optimiser
that trains only the classifier, at ten times the rate."""
from __future__ import annotations

import numpy as np

from . import register


def _nets():
    """Small networks with names other than ZF's, so that an answer that hard-codes "fc8" fails."""
    from ..layers import Conv2D, Flatten, Linear, ReLU
    from ..net import Sequential
    rng = np.random.default_rng(8)
    a = Sequential([Conv2D(1, 3, 3, rng=rng, name="features"), ReLU(name="r"), Flatten(name="flat"),
                    Linear(3 * 2 * 2, 5, rng=rng, name="hidden"), ReLU(name="r2"), Linear(5, 4, rng=rng, name="out")])
    b = Sequential([Conv2D(1, 2, 3, rng=rng, name="c1"), ReLU(name="a1"), Conv2D(2, 2, 1, rng=rng, name="c2"),
                    Flatten(name="f"), Linear(2 * 2 * 2, 3, rng=rng, name="classifier")])
    return a, b


# --- 08.trainable_parameters ------------------------------------------------------------------------------------

def trainable_parameters(net, frozen):
    frozen = set(frozen)
    return sum(int(p.size) for layer in net.layers if layer.name not in frozen for p in layer.params.values())


def _check_trainable_parameters(fn):
    a, b = _nets()
    cases = [(a, []), (a, ["features"]), (a, ["features", "hidden"]), (b, ["c1", "c2"]), (b, ["classifier"]),
             (b, ("c1",))]
    for net, frozen in cases:
        expected = trainable_parameters(net, frozen)
        got = fn(net, list(frozen))
        assert got is not None, "trainable_parameters returned None: return the count"
        assert int(got) == expected, (
            f"with layers {[l.name for l in net.layers]} and frozen={list(frozen)} the optimiser updates {expected} "
            f"values, you said {got}" + (" (that is every parameter: frozen layers should not count)"
                                        if int(got) == net.num_params() and frozen else ""))
    return "frozen layers contribute nothing; weights and biases of the rest all count"


register("08.trainable_parameters", "count the parameters an optimiser with frozen layers updates",
         "trainable_parameters", _check_trainable_parameters, trainable_parameters)


# --- 08.head_optimizer ------------------------------------------------------------------------------------------

def head_optimizer(net, lr):
    from minicnn.layers import Linear
    from minicnn.optim import SGD
    last = [layer.name for layer in net.layers if isinstance(layer, Linear)][-1]
    frozen = [layer.name for layer in net.layers if layer.params and layer.name != last]
    return SGD(net, lr=lr, freeze=frozen, lr_mult={last: 10.0})


def _check_head_optimizer(fn):
    from ..layers import Linear
    from ..ops import softmax_cross_entropy
    from ..optim import SGD
    rng = np.random.default_rng(0)
    for net in _nets():
        last = [layer.name for layer in net.layers if isinstance(layer, Linear)][-1]
        opt = fn(net, 0.01)
        assert isinstance(opt, SGD), f"head_optimizer should return a minicnn.optim.SGD, got {type(opt).__name__}"
        assert opt.net is net, "the optimiser must update the network it was given"
        layer_lr = opt.layer_lr(last)
        assert abs(layer_lr - 0.1) < 1e-12, (f"the last Linear layer ({last!r}) should learn at 10 x lr = 0.1, "
                                             f"it gets {layer_lr:g} (lr_mult)")
        before = {k: v.copy() for k, v in net.named_params().items()}
        x = rng.standard_normal((6, 1, 4, 4)).astype(np.float32)
        _, d = softmax_cross_entropy(net.forward(x, train=True), rng.integers(0, net.forward(x).shape[1], 6))
        net.backward(d, input_grad=False)
        opt.step()
        after = net.named_params()
        moved = sorted({k.rsplit(".", 1)[0] for k in after if not np.array_equal(after[k], before[k])})
        assert moved == [last], (f"in a network with layers {[l.name for l in net.layers if l.params]}, one step "
                                 f"changed {moved or 'nothing'}; only {last!r} (the last Linear layer) should change")
    return "only the classifier moved, at 10x the rate"


register("08.head_optimizer", "an SGD that trains only the last Linear layer, at ten times the rate",
         "head_optimizer", _check_head_optimizer, head_optimizer)
