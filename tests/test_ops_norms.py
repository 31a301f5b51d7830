"""Layer and instance normalisation: gradients (float64, random upstream gradient, hypothesis over shapes),
the definition, agreement with PyTorch where installed, the input contract and error messages."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import layers as L
from minicnn import ops
from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_layer, check_op, distinct_values
from minicnn.net import Sequential
from minicnn.ops.normalization import NormCache

# every test here runs on both CPU paths, the readable ops and the fast C path (conftest.each_cpu_path)
pytestmark = pytest.mark.usefixtures("each_cpu_path")

NORMS = {  # name -> (forward, backward, layer class, axes of the statistics)
    "layer": (ops.layer_norm_forward, ops.layer_norm_backward, L.LayerNorm, (1, 2, 3)),
    "instance": (ops.instance_norm_forward, ops.instance_norm_backward, L.InstanceNorm, (2, 3)),
}


@st.composite
def norm_shapes(draw):
    # batch 1 and non-square images are drawn often; instance norm needs H * W >= 2 for a non-trivial x gradient,
    # but 1x1 maps are allowed too (the gradient is then exactly zero on both sides).
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5)))


@pytest.mark.parametrize("kind", sorted(NORMS))
@settings(max_examples=15)
@given(shape=norm_shapes(), seed=st.integers(0, 2**31 - 1))
def test_norm_op_gradients(kind, shape, seed):
    forward, backward, _, _ = NORMS[kind]
    rng = np.random.default_rng(seed)
    x = distinct_values(shape, rng) + rng.standard_normal()      # an offset: the mean must really be removed
    C = shape[1]
    gamma, beta = rng.standard_normal(C) + 1.0, rng.standard_normal(C)
    errors = check_op(forward, backward, (x, gamma, beta), wrt=(0, 1, 2), rng=rng, details=True)
    assert max(errors.values()) <= GRADCHECK_TOLERANCE, errors


@pytest.mark.parametrize("kind", sorted(NORMS))
@pytest.mark.parametrize("shape", [(1, 3, 2, 5), (2, 2, 3, 1), (3, 4, 2, 2)])
def test_norm_layer_gradients(rng, kind, shape):
    layer = NORMS[kind][2](shape[1])
    layer.params["gamma"][:] = rng.uniform(0.5, 1.5, shape[1])
    layer.params["beta"][:] = rng.standard_normal(shape[1])
    for train in (True, False):
        assert check_layer(layer, distinct_values(shape, rng), rng=rng, train=train) <= GRADCHECK_TOLERANCE


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_the_check_catches_a_backward_without_the_variance_path(rng, kind):
    forward, _, _, axes = NORMS[kind]

    def broken(dy, cache: NormCache):
        g = dy * cache.gamma.reshape(1, -1, 1, 1)
        return cache.inv_std * (g - g.mean(axis=axes, keepdims=True))     # forgets d var / d x
    x = distinct_values((2, 3, 3, 4), rng)
    assert check_op(forward, broken, (x, np.ones(3), np.zeros(3)), rng=rng) > 1e-2


def _reference(x, gamma, beta, axes, eps):
    """The CENG403 formula written out per normalised group, with explicit loops."""
    y = np.empty_like(x)
    N, C = x.shape[:2]
    groups = [(n, slice(None)) for n in range(N)] if axes == (1, 2, 3) else [(n, c) for n in range(N) for c in range(C)]
    for n, c in groups:
        block = x[n, c]
        mu = block.sum() / block.size
        var = ((block - mu) ** 2).sum() / block.size
        y[n, c] = (block - mu) / np.sqrt(var + eps)
    return y * gamma[None, :, None, None] + beta[None, :, None, None]


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_norm_matches_the_definition(rng, kind):
    forward, _, _, axes = NORMS[kind]
    x = rng.standard_normal((3, 4, 2, 5)) * 3 + 1
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    y, cache = forward(x, gamma, beta, eps=1e-3)
    np.testing.assert_allclose(y, _reference(x, gamma, beta, axes, 1e-3), rtol=1e-12, atol=1e-12)
    # with gamma = 1, beta = 0 every normalised group has mean 0 and variance var / (var + eps) ~ 1
    y, _ = forward(x, np.ones(4), np.zeros(4), eps=1e-12)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1, rtol=1e-9)


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_norm_agrees_with_pytorch(rng, kind):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    forward = NORMS[kind][0]
    x = rng.standard_normal((2, 3, 4, 5))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y, _ = forward(x, gamma, beta, eps=1e-5)
    tx, tg, tb = (torch.from_numpy(a) for a in (x, gamma, beta))
    # PyTorch's layer_norm has an elementwise affine over (C, H, W); group norm with one group is layer norm
    # with a per-channel affine, which is what minicnn's LayerNorm is.
    if kind == "layer":
        ref = F.group_norm(tx, 1, tg, tb, eps=1e-5)
    else:
        ref = F.instance_norm(tx, weight=tg, bias=tb, eps=1e-5)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_norm_statistics_are_per_image(rng, kind):
    """Unlike batch norm, an image's output does not depend on the other images in the batch."""
    forward = NORMS[kind][0]
    x = rng.standard_normal((4, 3, 3, 2))
    y, _ = forward(x, np.ones(3), np.zeros(3))
    alone, _ = forward(x[2:3], np.ones(3), np.zeros(3))
    np.testing.assert_allclose(alone, y[2:3], rtol=1e-12)


@pytest.mark.parametrize("kind", sorted(NORMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_input_contract(rng, kind, dtype):
    forward, backward, layer_cls, axes = NORMS[kind]
    layer = layer_cls(3).astype(dtype)
    empty = np.zeros((0, 3, 4, 5), dtype=dtype)
    y = layer.forward(empty, train=True)
    assert y.shape == (0, 3, 4, 5) and y.dtype == dtype
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == (0, 3, 4, 5) and dx.dtype == dtype
    assert layer.grads["gamma"].shape == (3,) and not layer.grads["gamma"].any()

    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy_before = dy.copy()
    assert layer.backward(dy).dtype == dtype
    np.testing.assert_array_equal(dy, dy_before)

    x[1, 2, 0, 0] = np.nan                # NaN spreads over its normalised group and no further
    y = layer.forward(x)
    nan_group = np.zeros(x.shape, dtype=bool)
    nan_group[(1, 2) if axes == (2, 3) else (1,)] = True
    assert np.isnan(y[nan_group]).all() and np.isfinite(y[~nan_group]).all()


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_norm_errors_name_the_layer(kind):
    layer_cls = NORMS[kind][2]
    layer = layer_cls(3, name="norm2")
    with pytest.raises(TypeError, match=r"'norm2'.*float32 or float64.*int64"):
        layer.forward(np.ones((1, 3, 2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match=r"'norm2'.*float32 or float64.*float16"):
        layer.forward(np.ones((1, 3, 2, 2), dtype=np.float16))
    with pytest.raises(ValueError, match=r"'norm2'.*expected 3 channels, got 4.*\(1, 4, 2, 2\)"):
        layer.forward(np.ones((1, 4, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"'norm2'.*rank 4.*\(2, 3\)"):
        layer.forward(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"'norm2'.*empty.*\(1, 3, 0, 2\)"):
        layer.forward(np.ones((1, 3, 0, 2), dtype=np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        layer_cls(3).backward(np.ones((1, 3, 2, 2)))
    layer.forward(np.ones((1, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"'norm2'.*upstream gradient.*\(1, 3, 2, 2\).*\(1, 3, 2, 3\)"):
        layer.backward(np.ones((1, 3, 2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match=r"'norm2'.*upstream gradient must be a float32 or float64.*int64"):
        layer.backward(np.ones((1, 3, 2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match=r"'norm2'.*cache must be the NormCache"):
        NORMS[kind][1](np.ones((1, 3, 2, 2)), None, name=layer.label)
    with pytest.raises(TypeError, match=r"'norm2'.*gamma must be a float32 or float64 array.*list"):
        NORMS[kind][0](np.ones((1, 3, 2, 2)), [1.0, 1.0, 1.0], np.zeros(3), name=layer.label)
    with pytest.raises(ValueError, match=r"'norm2'.*eps must be a finite number > 0, got 0.0"):
        NORMS[kind][0](np.ones((1, 3, 2, 2)), np.ones(3), np.zeros(3), eps=0.0, name=layer.label)
    with pytest.raises(ValueError, match=f"{layer_cls.__name__}: num_channels"):
        layer_cls(0)
    with pytest.raises(ValueError, match=f"{layer_cls.__name__}: eps"):
        layer_cls(3, eps=0)
    with pytest.raises(ValueError, match=r"'norm2'.*expected 3 channels"):
        layer.output_shape((4, 5, 5))


def test_norm_layers_in_a_network_round_trip_through_config(rng):
    net = Sequential([L.Conv2D(1, 3, 3, pad=1, rng=rng, name="conv"), L.LayerNorm(3, name="ln"),
                      L.InstanceNorm(3, eps=1e-3, name="in"), L.Flatten(), L.Linear(3 * 4 * 5, 2, rng=rng)])
    net["ln"].params["gamma"][:] = [0.5, 1.0, 2.0]
    copy = Sequential.from_config(net.config())
    copy.load_state_dict(net.state_dict())
    assert [type(layer).__name__ for layer in copy.layers][1:3] == ["LayerNorm", "InstanceNorm"]
    assert copy["in"].config["eps"] == 1e-3
    x = rng.standard_normal((2, 1, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(copy.forward(x), net.forward(x))


def test_gradcheck_command_covers_the_norm_layers():
    from minicnn.gradcheck import gradcheck_table
    rows = {r["layer"]: r for r in gradcheck_table()}
    for name in ("LayerNorm", "InstanceNorm"):
        assert rows[name]["error"] <= rows[name]["tolerance"]


def test_norm_layers_get_short_default_names_and_import_from_the_package():
    import minicnn
    net = Sequential([minicnn.LayerNorm(2), minicnn.InstanceNorm(2), minicnn.InstanceNorm(2)])
    assert net.names == ["ln1", "inorm1", "inorm2"]
