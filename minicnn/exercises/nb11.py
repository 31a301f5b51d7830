"""Exercises of notebook 11 (normalisation): the axes of batch, layer and instance norm; the layer-norm forward; its
backward, checked against central differences (float64, random upstream gradient)."""
from __future__ import annotations

import numpy as np

from . import register

_AXES = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}


# --- 11.norm_axes -----------------------------------------------------------------------------------------------

def norm_axes(kind):
    return {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}[kind]


def _check_norm_axes(fn):
    for kind, expected in _AXES.items():
        got = fn(kind)
        assert got is not None, f"norm_axes({kind!r}) returned None: return a tuple of axes such as (0, 1)"
        got = tuple(sorted(int(a) for a in np.atleast_1d(got)))
        assert got == expected, (f"norm_axes({kind!r}) = {got}; for an (N, C, H, W) input {kind} norm pools its "
                                 f"statistics over other axes (which ones does the CENG403 formula sum over?)")
    return "batch (N, H, W), layer (C, H, W), instance (H, W)"


register("11.norm_axes", "the axes each normalisation pools its statistics over", "norm_axes",
         _check_norm_axes, norm_axes)


# --- 11.layer_norm_forward --------------------------------------------------------------------------------------

def layer_norm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=(1, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(1, 2, 3), keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)


def _inputs(seed=11):
    rng = np.random.default_rng(seed)
    # per-image offsets and scales, so that normalising over the wrong axes gives a visibly wrong answer
    x = rng.standard_normal((3, 4, 5, 6)) * rng.uniform(0.5, 3, (3, 1, 1, 1)) + rng.uniform(-2, 2, (3, 4, 1, 1))
    return x, rng.uniform(0.5, 2.0, 4), rng.uniform(-1, 1, 4), rng


def _check_layer_norm_forward(fn):
    from ..ops import layer_norm_forward as reference
    x, gamma, beta, _ = _inputs()
    x_before = x.copy()
    expected, _ = reference(x, gamma, beta, 1e-5)
    got = fn(x, gamma, beta, 1e-5)
    assert got is not None, "layer_norm_forward returned None: return y"
    got = np.asarray(got)
    assert np.array_equal(x, x_before), "layer_norm_forward changed its input x: compute into new arrays"
    assert got.shape == expected.shape, f"y should have the input's shape {expected.shape}, got {got.shape}"
    if not np.allclose(got, expected, rtol=1e-7, atol=1e-9):
        for kind, axes in _AXES.items():
            mu = x.mean(axis=axes, keepdims=True)
            other = gamma.reshape(1, -1, 1, 1) * (x - mu) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5) \
                + beta.reshape(1, -1, 1, 1)
            if kind != "layer" and np.allclose(got, other, rtol=1e-6, atol=1e-8):
                raise AssertionError(f"that is {kind} norm: layer norm pools over (C, H, W) of each image")
        plain = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
        if np.allclose(got, plain, rtol=1e-6, atol=1e-8):
            raise AssertionError("x_hat is right; now scale and shift it per channel: gamma[c] * x_hat + beta[c]")
        raise AssertionError(f"max |y - expected| = {np.abs(got - expected).max():.2e}; expected the mean and the "
                             f"(biased) variance over axes (1, 2, 3), eps added to the variance")
    return f"max |y - reference| {np.abs(got - expected).max():.1e}"


register("11.layer_norm_forward", "the layer-norm forward", "layer_norm_forward",
         _check_layer_norm_forward, layer_norm_forward)


# --- 11.layer_norm_backward -------------------------------------------------------------------------------------

def layer_norm_backward(dy, x, gamma, eps=1e-5):
    axes = (1, 2, 3)
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    x_hat = (x - mu) * inv_std
    g = dy * gamma.reshape(1, -1, 1, 1)
    return inv_std * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))


def _check_layer_norm_backward(fn):
    from ..gradcheck import numerical_gradient, relative_error
    from ..ops import layer_norm_forward as reference
    x, gamma, beta, rng = _inputs(12)
    x = x[:2, :3, :3, :4].copy()                  # small: the numerical gradient costs two forwards per value
    gamma, beta = gamma[:3], beta[:3]
    dy = rng.standard_normal(x.shape)             # a random upstream gradient: all-ones would hide a wrong dx
    dy_before, x_before = dy.copy(), x.copy()
    got = fn(dy, x, gamma, 1e-5)
    assert got is not None, "layer_norm_backward returned None: return dx"
    got = np.asarray(got, dtype=np.float64)
    assert np.array_equal(dy, dy_before) and np.array_equal(x, x_before), \
        "layer_norm_backward changed dy or x: a backward never writes into what the caller owns"
    assert got.shape == x.shape, f"dx should have the input's shape {x.shape}, got {got.shape}"
    numeric = numerical_gradient(lambda: reference(x, gamma, beta, 1e-5)[0], x, dy)
    error = relative_error(got, numeric)
    if not error < 1e-6:
        inv_std = 1.0 / np.sqrt(x.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
        if np.allclose(got, dy * gamma.reshape(1, -1, 1, 1) * inv_std, rtol=1e-6):
            raise AssertionError(f"relative error {error:.1e}: you treated the mean and variance as constants; "
                                 "they depend on x too (subtract the two means of the formula)")
        raise AssertionError(f"relative error {error:.1e} against central differences (needs < 1e-6)")
    return f"relative error {error:.1e} against central differences, float64, random upstream gradient"


register("11.layer_norm_backward", "the layer-norm backward, checked numerically", "layer_norm_backward",
         _check_layer_norm_backward, layer_norm_backward)
