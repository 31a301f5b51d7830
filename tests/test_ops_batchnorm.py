"""Batch normalisation against PyTorch's running statistics, and on empty batches (issue 14)."""
import numpy as np
import pytest

from minicnn import ops


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (1, 2, 1, 3), (5, 4), (2, 3, 2, 2)],
                         ids=["batch-1", "batch-1-small", "2d", "batch-2"])
def test_running_statistics_match_pytorch_also_at_batch_size_1(shape):
    """The running variance takes the unbiased variance over all N*H*W values of a channel: at batch size 1 of a
    conv layer that is H*W values (a correction by N alone would divide by zero there)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    C = shape[1]
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.standard_normal(C) + 1, rng.standard_normal(C)
    mean, var = rng.standard_normal(C), rng.random(C) + 0.5
    t_mean, t_var = (torch.from_numpy(a.copy()) for a in (mean, var))
    y, _ = ops.batch_norm_forward(x, gamma, beta, mean, var, train=True, momentum=0.1, eps=1e-5)
    ty = torch.nn.functional.batch_norm(torch.from_numpy(x), t_mean, t_var, torch.from_numpy(gamma),
                                        torch.from_numpy(beta), training=True, momentum=0.1, eps=1e-5)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, t_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(var, t_var.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(0, 3, 2, 2), (0, 3)])
def test_an_empty_batch_leaves_the_running_statistics_alone(shape):
    mean, var = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    gamma, beta = np.ones(3), np.zeros(3)
    with np.errstate(all="raise"):                     # no NaN made on the way (and no warning)
        y, cache = ops.batch_norm_forward(np.zeros(shape), gamma, beta, mean, var, train=True)
        dx, dgamma, dbeta = ops.batch_norm_backward(np.zeros(shape), cache)
    assert y.shape == dx.shape == shape
    np.testing.assert_array_equal(mean, [0.5, -1.0, 2.0])
    np.testing.assert_array_equal(var, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(dgamma, np.zeros(3))
    np.testing.assert_array_equal(dbeta, np.zeros(3))


def test_bad_arguments_name_batch_norm():
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="batch_norm: input must be float32 or float64, got dtype float16"):
        ops.batch_norm_forward(x.astype(np.float16), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True)
    with pytest.raises(ValueError, match=r"batch_norm: running_var must have one value per channel of the input: \(3,\)"):
        ops.batch_norm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(4), True)
    _, cache = ops.batch_norm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True)
    with pytest.raises(ValueError, match=r"batch_norm: upstream gradient must have the input shape \(2, 3\)"):
        ops.batch_norm_backward(np.ones((2, 4)), cache)
