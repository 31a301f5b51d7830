"""Layers: gradient checks over drawn configurations, shapes, parameters and error messages."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import layers as L
from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_layer, conv_configs, distinct_values, pool_configs

# every test here runs on both CPU paths, the readable ops and the fast C path (conftest.each_cpu_path)
pytestmark = pytest.mark.usefixtures("each_cpu_path")


@given(conv_configs(), st.integers(0, 2**31 - 1))
def test_conv_layer_gradients(cfg, seed):
    rng = np.random.default_rng(seed)
    layer = L.Conv2D(cfg["C"], cfg["F"], (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["pad"], rng=rng, bias=0.1)
    x = distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), rng)
    assert check_layer(layer, x, rng=rng) <= GRADCHECK_TOLERANCE


@given(pool_configs(), st.integers(0, 2**31 - 1))
def test_pool_layer_gradients(cfg, seed):
    rng = np.random.default_rng(seed)
    x = distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), rng)
    layer = L.MaxPool2D(cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
    assert check_layer(layer, x, rng=rng) <= GRADCHECK_TOLERANCE
    assert check_layer(L.AvgPool2D(cfg["kernel"], cfg["stride"], cfg["pad"]), x, rng=rng) <= GRADCHECK_TOLERANCE


@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_linear_layer_gradients(n, fin, fout, seed):
    rng = np.random.default_rng(seed)
    assert check_layer(L.Linear(fin, fout, rng=rng, bias=0.2), distinct_values((n, fin), rng), rng=rng) <= GRADCHECK_TOLERANCE


@pytest.mark.parametrize("make,shape,train", [
    (lambda: L.ReLU(), (2, 3, 4, 4), False),
    (lambda: L.LRN(n=3, k=0.8, alpha=0.9, beta=0.75), (2, 5, 3, 3), False),
    (lambda: L.LRN(), (1, 9, 2, 2), False),
    (lambda: L.Dropout(0.4, seed=3), (4, 12), True),
    (lambda: L.Flatten(), (2, 3, 2, 2), False),
    (lambda: L.BatchNorm(3), (5, 3, 2, 2), True),
    (lambda: L.BatchNorm(4), (6, 4), True),
])
def test_other_layer_gradients(rng, make, shape, train):
    x = distinct_values(shape, rng, spacing=0.02)
    assert check_layer(make(), x, rng=rng, train=train) <= GRADCHECK_TOLERANCE


def test_check_layer_catches_a_broken_backward(rng):
    class BrokenConv(L.Conv2D):
        def backward(self, dy, **kw):
            dx = super().backward(dy, **kw)
            self.grads["W"] = self.grads["W"][:, :, ::-1, ::-1].copy()   # the classic flip mistake
            return dx
    layer = BrokenConv(2, 3, 3, rng=rng)
    assert check_layer(layer, distinct_values((1, 2, 5, 5), rng), rng=rng) > 1e-2


def test_init_schemes(rng):
    he = L.Conv2D(64, 32, 3, init="he", rng=np.random.default_rng(0)).params["W"]
    assert he.std() == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.05)
    zf = L.Conv2D(64, 32, 3, init="zf", rng=np.random.default_rng(0)).params["W"]
    assert zf.std() == pytest.approx(1e-2, rel=0.05)
    assert he.dtype == zf.dtype == np.float32
    zeros = L.Linear(300, 20, init="zeros").params["W"]              # for summaries and nets loaded right after
    assert zeros.shape == (300, 20) and zeros.dtype == np.float32 and not zeros.any()
    with pytest.raises(ValueError, match="initialiser.*'zeros'"):
        L.Linear(3, 2, init="xavier-ish")


def test_maxpool_layer_exposes_switches(rng):
    pool = L.MaxPool2D(2)
    assert pool.switches is None
    pool.forward(rng.standard_normal((1, 2, 4, 4)).astype(np.float32))
    assert pool.switches.shape == (1, 2, 2, 2) and pool.switches.dtype == np.int32


def test_dropout_is_identity_in_evaluation(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    d = L.Dropout(0.5)
    assert d.forward(x) is x
    assert not np.array_equal(d.forward(x, train=True), x)


@pytest.mark.parametrize("make,x,match", [
    (lambda: L.Conv2D(3, 4, 3, name="conv1"), np.zeros((2, 1, 8, 8), np.float32), r"conv1.*expected 3 input channels, got 1"),
    (lambda: L.Conv2D(3, 4, 3, name="conv1"), np.zeros((3, 8, 8), np.float32), r"conv1.*rank 4.*\(3, 8, 8\)"),
    (lambda: L.Conv2D(3, 4, 5, name="conv1"), np.zeros((1, 3, 3, 3), np.float32), r"conv1.*kernel 5.*larger"),
    (lambda: L.Conv2D(3, 4, 3, name="conv1"), np.zeros((1, 3, 8, 8), np.int64), r"conv1.*float32 or float64.*int64"),
    (lambda: L.Conv2D(3, 4, 3, name="conv1"), np.zeros((1, 3, 8, 8), np.float64), r"conv1.*float64.*float32"),
    (lambda: L.Linear(10, 2, name="fc6"), np.zeros((2, 12), np.float32), r"fc6.*expected 10 input features, got 12"),
    (lambda: L.MaxPool2D(3, 2, name="pool1"), np.zeros((1, 1, 2, 2), np.float32), r"pool1.*kernel 3.*larger"),
    (lambda: L.LRN(name="norm1"), np.zeros((4, 4), np.float32), r"norm1.*rank 4"),
])
def test_bad_input_errors_name_layer_and_values(make, x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make().forward(x)


@pytest.mark.parametrize("make,match", [
    (lambda: L.MaxPool2D(2, stride=0, name="pool1"), r"pool1.*stride.*>= 1"),
    (lambda: L.Conv2D(3, 4, 3, stride=0, name="c"), r"'c'.*stride must be >= 1"),
    (lambda: L.LRN(n=4, name="norm1"), r"norm1.*odd.*4"),
    (lambda: L.Dropout(1.5, name="drop"), r"drop.*\[0, 1\).*1.5"),
])
def test_bad_configuration_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="before forward"):
        L.Conv2D(1, 1, 1, name="c").backward(np.zeros((1, 1, 1, 1), np.float32))


def test_wrong_upstream_gradient_shape(rng):
    layer = L.Conv2D(2, 3, 3, name="conv2")
    layer.forward(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    with pytest.raises(ValueError, match=r"conv2.*\(1, 3, 3, 3\).*\(1, 3, 4, 4\)"):
        layer.backward(np.zeros((1, 3, 4, 4), np.float32))
