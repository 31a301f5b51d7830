"""ReLU rules, softmax, cross-entropy, dropout, LRN and batch norm."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import ops
from minicnn.gradcheck import GRADCHECK_TOLERANCE, check_op, distinct_values, numerical_gradient, relative_error

# every test here runs on both CPU paths, the readable ops and the fast C path (conftest.each_cpu_path)
pytestmark = pytest.mark.usefixtures("each_cpu_path")


def test_relu_gradient(rng):
    x = distinct_values((3, 4, 5), rng)
    assert check_op(ops.relu_forward, ops.relu_backward, (x,), rng=rng) <= GRADCHECK_TOLERANCE


@given(st.integers(0, 2**31 - 1))
def test_relu_rules_differ_exactly_where_design_says(seed):
    rng = np.random.default_rng(seed)
    x, dy = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    _, cache = ops.relu_forward(x)
    bp, dc, gd = (ops.relu_backward(dy, cache, rule) for rule in ("backprop", "deconvnet", "guided"))
    np.testing.assert_array_equal(bp, np.where(x > 0, dy, 0))
    np.testing.assert_array_equal(dc, np.where(dy > 0, dy, 0))
    np.testing.assert_array_equal(gd, np.where((x > 0) & (dy > 0), dy, 0))
    # Where x > 0 and dy > 0 all three agree; where x <= 0 < dy only the deconvnet passes the signal.
    both = (x > 0) & (dy > 0)
    np.testing.assert_array_equal(bp[both], dc[both])
    only_deconv = (x <= 0) & (dy > 0)
    assert np.all(dc[only_deconv] == dy[only_deconv]) and np.all(bp[only_deconv] == 0)


def test_deconvnet_rule_is_a_function_of_dy_alone(rng):
    dy = rng.standard_normal((2, 5))
    _, c1 = ops.relu_forward(rng.standard_normal((2, 5)))
    _, c2 = ops.relu_forward(rng.standard_normal((2, 5)))
    np.testing.assert_array_equal(ops.relu_backward(dy, c1, "deconvnet"), ops.relu_backward(dy, c2, "deconvnet"))


def test_unknown_relu_rule_lists_the_rules(rng):
    _, cache = ops.relu_forward(np.ones((2, 2)))
    with pytest.raises(ValueError, match="'backprop', 'deconvnet', 'guided'"):
        ops.relu_backward(np.ones((2, 2)), cache, "gradcam")


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(2, 7))
def test_softmax_rows_sum_to_one(seed, n, k):
    z = np.random.default_rng(seed).standard_normal((n, k)) * 50
    p = ops.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(ops.log_softmax(z)), p, rtol=1e-10, atol=1e-300)


def test_cross_entropy_gradient_random_upstream(rng):
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    numeric = numerical_gradient(lambda: np.array(ops.softmax_cross_entropy(logits, labels)[0]), logits, 1.0)
    assert relative_error(dlogits, numeric) <= GRADCHECK_TOLERANCE
    manual = -np.mean(np.log(ops.softmax(logits)[np.arange(5), labels]))
    assert np.isclose(loss, manual)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    loss, dlogits = ops.softmax_cross_entropy(logits, np.array([0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    assert np.isclose(loss, np.log(2) / 2)
    logits32 = logits.astype(np.float32)
    loss32, d32 = ops.softmax_cross_entropy(logits32, np.array([1, 1]))
    assert np.isfinite(loss32) and np.isclose(loss32, (2e4 + np.log(2)) / 2, rtol=1e-5) and d32.dtype == np.float32


def test_cross_entropy_rejects_nan_and_bad_labels():
    with pytest.raises(ValueError, match="NaN"):
        ops.softmax_cross_entropy(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        ops.softmax_cross_entropy(np.zeros((1, 2)), np.array([2]))
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        ops.softmax_cross_entropy(np.zeros((1, 2)), np.array([0, 1]))


def test_dropout_is_inverted_and_backward_uses_the_same_mask(rng):
    x = np.ones((200, 50))
    y, mask = ops.dropout_forward(x, 0.3, np.random.default_rng(0))
    assert set(np.unique(y)) <= {0.0, 1 / 0.7}
    assert abs(y.mean() - 1.0) < 0.05
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(ops.dropout_backward(dy, mask), dy * mask)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ops.dropout_forward(x, 1.0, rng)


@pytest.mark.parametrize("n,k,alpha,beta", [(5, 2.0, 1e-4, 0.75), (3, 0.5, 0.9, 0.75), (1, 1.0, 1.0, 0.5),
                                            (5, 0.3, 1.2, 1.0), (7, 1.0, 0.8, 0.75)])
def test_lrn_gradient(rng, n, k, alpha, beta):
    # alpha near 1 and small k make the window coupling large, so a wrong window shows up.
    x = distinct_values((2, 8, 3, 3), rng, spacing=0.02)
    err = check_op(ops.lrn_forward, ops.lrn_backward, (x,), kwargs=dict(n=n, k=k, alpha=alpha, beta=beta), rng=rng)
    assert err <= GRADCHECK_TOLERANCE


def test_lrn_matches_definition(rng):
    x = rng.standard_normal((2, 6, 2, 3))
    n, k, alpha, beta = 3, 1.5, 0.7, 0.75
    y, _ = ops.lrn_forward(x, n, k, alpha, beta)
    ref = np.empty_like(x)
    for c in range(6):
        lo, hi = max(0, c - n // 2), min(6, c + n // 2 + 1)
        ref[:, c] = x[:, c] / (k + alpha * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
    np.testing.assert_allclose(y, ref, rtol=1e-12)


@pytest.mark.parametrize("n", [0, 2, 4, -1])
def test_lrn_rejects_even_window(n):
    with pytest.raises(ValueError, match="odd"):
        ops.lrn_forward(np.ones((1, 4, 2, 2)), n=n)


def test_lrn_alpha_conversion_from_torch_convention():
    assert ops.lrn_alpha_from_torch(5e-4, 5) == pytest.approx(1e-4)


@pytest.mark.parametrize("shape", [(6, 4), (4, 3, 3, 2)])
def test_batch_norm_gradients(rng, shape):
    x = distinct_values(shape, rng)
    C = shape[1]
    gamma, beta = rng.standard_normal(C) + 1.0, rng.standard_normal(C)

    def forward(x, gamma, beta):
        return ops.batch_norm_forward(x, gamma, beta, np.zeros(C), np.ones(C), train=True)

    err = check_op(forward, ops.batch_norm_backward, (x, gamma, beta), wrt=(0, 1, 2), rng=rng)
    assert err <= GRADCHECK_TOLERANCE
