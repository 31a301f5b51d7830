"""Exercises of notebook 10 (beyond Zeiler & Fergus): one FGSM step with the valid pixel range, the smallest
sign-perturbation that fools a linear classifier, and the sparsity and dead units of a layer's activations."""
from __future__ import annotations

import numpy as np

from . import register


def _array(value, what, shape):
    out = np.asarray(value, dtype=np.float64) if value is not None else None
    if out is None or out.shape != shape:
        raise AssertionError(f"{what} should be an array of shape {shape}, got "
                             f"{getattr(value, 'shape', type(value).__name__)}")
    return out


def check_fgsm_step(fgsm_step):
    rng = np.random.default_rng(10)
    shape = (3, 1, 6, 6)
    mean = rng.uniform(0.2, 0.6, size=shape[1:])              # the data is mean-subtracted: the range is per pixel
    lo, hi = -mean, 1.0 - mean
    x = rng.uniform(lo, hi, size=shape)
    grad = rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 2, size=shape)     # magnitudes over 8 decades
    grad[0, 0, 0, :3] = 0.0                                    # no gradient there: no step
    x[1, 0, 2, 2], grad[1, 0, 2, 2] = hi[0, 2, 2] - 0.01, 1.0   # would step past the top of the range
    x[2, 0, 3, 3], grad[2, 0, 3, 3] = lo[0, 3, 3] + 0.01, -1.0  # ... and past the bottom
    eps = 0.05
    x_before, grad_before = x.copy(), grad.copy()
    got = _array(fgsm_step(x, grad, eps, lo, hi), "fgsm_step(...)", shape)
    if not (np.array_equal(x, x_before) and np.array_equal(grad, grad_before)):
        raise AssertionError("fgsm_step changed x or grad in place: return a new array")
    want = np.clip(x + eps * np.sign(grad), lo, hi)
    if np.allclose(got, want, atol=1e-12):
        return "sign of the gradient, eps, clipped to the pixel range"
    if np.allclose(got, np.clip(x - eps * np.sign(grad), lo, hi), atol=1e-12):
        raise AssertionError("you stepped down the gradient: FGSM *increases* the loss, x + eps * sign(grad)")
    if np.allclose(got, np.clip(x + eps * grad, lo, hi), atol=1e-12):
        raise AssertionError("you stepped along the gradient itself; FGSM uses its sign, so every pixel moves by "
                             "exactly eps (an L-infinity step), however small its gradient")
    if np.allclose(got, x + eps * np.sign(grad), atol=1e-12):
        raise AssertionError("some pixels left the valid range [lo, hi]: clip the result (np.clip takes arrays)")
    if got[0, 0, 0, 0] != x[0, 0, 0, 0]:
        raise AssertionError("a pixel whose gradient is exactly 0 moved: sign(0) is 0")
    raise AssertionError(f"wrong result: largest difference from x + eps * sign(grad), clipped, is "
                         f"{np.abs(got - want).max():.3g}")


def solution_fgsm_step(x, grad, eps, lo, hi):
    return np.clip(x + eps * np.sign(grad), lo, hi)        # every pixel moves by eps up the loss, then stays valid


def check_fooling_eps(fooling_eps):
    rng = np.random.default_rng(11)
    for D in (5, 64, 784):
        W = rng.standard_normal((4, D)) / np.sqrt(D)
        b = rng.standard_normal(4)
        x = rng.standard_normal(D)
        scores = W @ x + b
        true = int(np.argmax(scores))
        target = int(np.argmin(scores))
        got = float(fooling_eps(x, W, b, true, target))
        direction = np.sign(W[target] - W[true])
        want = (scores[true] - scores[target]) / np.abs(W[target] - W[true]).sum()
        if not np.isclose(got, want, rtol=1e-9):
            gap = lambda e: ((W @ (x + e * direction) + b)[true] - (W @ (x + e * direction) + b)[target])  # noqa
            hint = ""
            if np.isclose(got, (scores[true] - scores[target]) / np.abs(W[target]).sum(), rtol=1e-9):
                hint = " — moving x changes the true class's score too: the direction is sign(w_target - w_true)"
            elif gap(got) > 1e-9:
                hint = f" — at your eps the true class still wins by {gap(got):.3g}"
            raise AssertionError(f"D = {D}: eps = {got:.6g}, expected {want:.6g}{hint}")
    return "the gap divided by the L1 norm of w_target - w_true, for D = 5, 64 and 784"


def solution_fooling_eps(x, W, b, true, target):
    scores = W @ x + b
    # Moving x by eps * sign(w_t - w_y) raises s_t - s_y by eps * ||w_t - w_y||_1: every term adds, none cancels.
    return (scores[true] - scores[target]) / np.abs(W[target] - W[true]).sum()


def _stats_cases(rng):
    a = np.maximum(rng.standard_normal((6, 5, 4, 4)), 0.0)
    a[:, 1] = 0.0                                # channel 1: dead
    a[:, 3] = 0.0
    a[4, 3, 2, 1] = 0.7                          # channel 3: active at one position of one image only, so alive
    a[:, 0, 0, 0] = 0.0                          # one position of channel 0 never fires: the channel is alive
    b = np.maximum(rng.standard_normal((8, 12)), 0.0)
    b[:, [2, 7, 11]] = 0.0                       # three dead features of a fully connected layer
    return [("conv maps (N, C, H, W)", a, 0.2), ("fc features (N, D)", b, 0.25)]


def check_activation_stats(activation_stats):
    rng = np.random.default_rng(12)
    for what, a, dead in _stats_cases(rng):
        before = a.copy()
        got = activation_stats(a)
        if not np.array_equal(a, before):
            raise AssertionError("activation_stats changed its input")
        try:
            sparsity, dead_got = (float(v) for v in got)
        except (TypeError, ValueError):
            raise AssertionError(f"activation_stats should return (sparsity, dead_fraction), got {got!r}") from None
        want = float((a <= 0).mean())
        if not np.isclose(sparsity, want):
            raise AssertionError(f"{what}: sparsity {sparsity:.4f}, expected {want:.4f} (the fraction of all "
                                 "activations that are zero)")
        if not np.isclose(dead_got, dead):
            hint = ""
            if a.ndim == 4 and np.isclose(dead_got, float((a.max(axis=0) <= 0).mean())):
                hint = (" — you counted dead (channel, y, x) positions; a unit of a conv layer is a feature map "
                        "(one filter), dead when it is zero at every position of every image")
            raise AssertionError(f"{what}: dead fraction {dead_got:.4f}, expected {dead:.4f}{hint}")
    return "sparsity and dead units on a conv and an fc layer"


def solution_activation_stats(a):
    sparsity = float((a <= 0).mean())
    axes = (0,) + tuple(range(2, a.ndim))            # everything but the unit axis: images (and positions)
    dead = float((a.max(axis=axes) <= 0).mean())
    return sparsity, dead


register("10.fgsm_step", "one FGSM step inside the valid pixel range", "fgsm_step", check_fgsm_step,
         solution_fgsm_step)
register("10.fooling_eps", "the smallest sign step that fools a linear classifier", "fooling_eps",
         check_fooling_eps, solution_fooling_eps)
register("10.activation_stats", "sparsity and dead units of a layer", "activation_stats", check_activation_stats,
         solution_activation_stats)
