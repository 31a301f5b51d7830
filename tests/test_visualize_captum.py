"""Agreement with Captum (ARCHITECTURE.md §5) on the same weights: Saliency, GuidedBackprop, Deconvolution.

Skipped where PyTorch or Captum is not installed (neither is a dependency of minicnn).
"""
import numpy as np
import pytest

from minicnn.gradcheck import distinct_values, relative_error
from minicnn.visualize import input_gradient, saliency

from test_visualize_analyses import small_net

torch = captum_attr = None


def _imports():
    """PyTorch is imported only when these tests run, not when the suite is collected: a PyTorch loaded into
    the test process slows scikit-learn's OpenMP code (t-SNE) elsewhere in the suite."""
    global torch, captum_attr
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")


def torch_copy(net):
    """The same network in PyTorch (float64): conv-relu-pool 3/2-conv-relu-pool 2-flatten-fc-relu-fc."""
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
                          nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                          nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    ours = [l for l in net.layers if "W" in l.params]
    theirs = [m for m in model if hasattr(m, "weight")]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            W = a.params["W"]
            b.weight.copy_(torch.from_numpy(W if W.ndim == 4 else W.T.copy()))   # minicnn Linear is (in, out)
            b.bias.copy_(torch.from_numpy(a.params["b"] + 0.05))
            a.params["b"] = a.params["b"] + 0.05                                   # non-zero biases on both
    return model.eval()


@pytest.fixture(scope="module")
def pair():
    _imports()
    net = small_net(seed=3).astype(np.float64)
    model = torch_copy(net)
    x = distinct_values((3, 1, 12, 12), np.random.default_rng(8))      # no ties for max pooling
    return net, model, x


def test_same_forward(pair):
    net, model, x = pair
    np.testing.assert_allclose(net.forward(x), model(torch.from_numpy(x)).detach().numpy(), rtol=1e-10)


@pytest.mark.parametrize("rule,method", [("backprop", "Saliency"), ("guided", "GuidedBackprop"),
                                         ("deconvnet", "Deconvolution")])
def test_rules_agree_with_captum(pair, rule, method):
    net, model, x = pair
    target = [0, 1, 2]
    ours, _ = input_gradient(net, x, target, rule=rule)
    attr = getattr(captum_attr, method)(model)
    kwargs = {"abs": False} if method == "Saliency" else {}
    theirs = attr.attribute(torch.from_numpy(x.copy()).requires_grad_(), target=target, **kwargs).detach().numpy()
    assert np.abs(theirs).max() > 0
    assert relative_error(ours, theirs) < 1e-10


def test_saliency_agrees_with_captum_abs(pair):
    net, model, x = pair
    theirs = captum_attr.Saliency(model).attribute(torch.from_numpy(x.copy()).requires_grad_(), target=1, abs=True)
    np.testing.assert_allclose(saliency(net, x, 1), theirs.detach().numpy().max(axis=1), rtol=1e-10, atol=1e-14)
