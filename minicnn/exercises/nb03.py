"""Exercises of notebook 03 (testing gradients): a central-difference gradient, and a planted bug to find with it."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..gradcheck import numerical_gradient, relative_error
from . import register
from ._compare import as_array, assert_close


def _softmax_vjp(z, dy):
    p = ops.softmax(z, axis=1)
    return p * (dy - (p * dy).sum(axis=1, keepdims=True))


def check_numerical_gradient(student):
    rng = np.random.default_rng(5)
    lrn = dict(n=3, k=1.0, alpha=1.0, beta=0.75)
    z = rng.standard_normal((3, 5))
    x = rng.standard_normal((2, 4, 3, 2))
    cases = [("softmax over rows of a (3, 5) array", lambda: ops.softmax(z, axis=1), z,
              rng.standard_normal((3, 5)), lambda dy: _softmax_vjp(z, dy)),
             ("LRN (n=3, alpha=1) of a (2, 4, 3, 2) array", lambda: ops.lrn_forward(x, **lrn)[0], x,
              rng.standard_normal(x.shape), lambda dy: ops.lrn_backward(dy, ops.lrn_forward(x, **lrn)[1]))]
    for case, f, arr, dy, analytic in cases:
        arr_before, dy_before = arr.copy(), dy.copy()
        got = as_array(student(f, arr, dy), "your numerical_gradient's result")
        if not np.array_equal(arr, arr_before):
            raise AssertionError(f"{case}: x was not restored after your loop; put every perturbed entry back")
        if not np.array_equal(dy, dy_before):
            raise AssertionError(f"{case}: your numerical_gradient changed dy")
        want = analytic(dy)
        try:
            assert_close(got, want, "the gradient", case, tol=1e-8)
        except AssertionError as error:
            central = numerical_gradient(f, arr, dy)
            one_sided = np.zeros_like(arr)
            flat, base = arr.reshape(-1), float(np.sum(f() * dy))
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + 1e-6
                one_sided.reshape(-1)[i] = (float(np.sum(f() * dy)) - base) / 1e-6
                flat[i] = old
            if got.shape == want.shape and relative_error(got, one_sided) < 0.01 * relative_error(got, central):
                raise AssertionError(f"{error}. That is a one-sided difference (f(x+eps) - f(x)) / eps, whose error "
                                     "is O(eps); use the central one, (f(x+eps) - f(x-eps)) / (2 eps)") from None
            raise
    return "agrees with the analytic vector-Jacobian products of softmax and LRN to 1e-8"


def solution_numerical_gradient(f, x, dy, eps=1e-6):
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)            # views: writing flat[i] perturbs x itself
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = np.sum(f() * dy)
        flat[i] = old - eps
        minus = np.sum(f() * dy)
        flat[i] = old                                        # restore before the next entry
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def check_planted_bug(softmax_cross_entropy_backward):
    rng = np.random.default_rng(6)
    for N, K in [(4, 6), (5, 5), (1, 3)]:
        logits = rng.standard_normal((N, K)) * 2
        labels = rng.integers(0, K, size=N)
        case = f"logits ({N}, {K})"
        got = softmax_cross_entropy_backward(logits.copy(), labels.copy())
        numeric = numerical_gradient(lambda: ops.softmax_cross_entropy(logits, labels)[0], logits, np.float64(1.0))
        assert_close(got, numeric, "dlogits", case, tol=1e-7)
    return "matches central differences of the mean cross-entropy"


def solution_planted_bug(logits, labels):
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)                     # the bug was axis=0: normalise each row, not each column
    p[np.arange(N), labels] -= 1.0
    return p / N


register("03.numerical_gradient", "a numerical gradient with central differences", "numerical_gradient",
         check_numerical_gradient, solution_numerical_gradient)
register("03.planted_bug", "find the planted bug", "softmax_cross_entropy_backward", check_planted_bug,
         solution_planted_bug)
