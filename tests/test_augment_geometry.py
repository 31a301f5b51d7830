"""Rotation and zoom augmentation: identities, the rotation direction, exact results on linear ramps (which
bilinear sampling reproduces), range, shape/dtype, determinism under a seed, the input contract and errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.data import random_rotate, random_zoom, rotate, zoom


def images(rng, shape=(3, 2, 5, 7), dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rotation_by_zero_and_scale_one_are_exact_copies(rng, dtype):
    x = images(rng, dtype=dtype)
    for y in (rotate(x, 0), zoom(x, 1), random_rotate(x, 0, rng=1), random_zoom(x, (1, 1), rng=1),
              rotate(x, 0, fill="edge"), zoom(x, 1.0, fill=-3)):
        assert y.dtype == dtype and y.shape == x.shape and y is not x
        np.testing.assert_array_equal(y, x)


def test_rotation_is_counter_clockwise_as_displayed(rng):
    x = images(rng, (2, 3, 6, 6))
    np.testing.assert_allclose(rotate(x, 90), np.rot90(x, 1, axes=(2, 3)), atol=1e-12)   # rot90: counter-clockwise
    np.testing.assert_allclose(rotate(x, -90), np.rot90(x, -1, axes=(2, 3)), atol=1e-12)
    ns = images(rng, (2, 3, 4, 7))                                          # non-square: 180 degrees still fits
    np.testing.assert_allclose(rotate(ns, 180), ns[:, :, ::-1, ::-1], atol=1e-12)
    np.testing.assert_allclose(rotate(ns, 360), ns, atol=1e-12)


def test_rotation_of_a_ramp_matches_the_formula_where_the_source_is_inside(rng):
    """x[r, c] = c is linear, so bilinear sampling is exact: out = column of the source point."""
    h, w, t = 9, 11, 17.0
    ramp = np.broadcast_to(np.arange(w, dtype=np.float64), (1, 1, h, w)).copy()
    out = rotate(ramp, t)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r, c = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    a = np.deg2rad(t)
    q_col = cx + np.cos(a) * c - np.sin(a) * r
    q_row = cy + np.sin(a) * c + np.cos(a) * r
    inside = (q_row >= 0) & (q_row <= h - 1) & (q_col >= 0) & (q_col <= w - 1)
    assert inside.sum() > h * w / 2
    np.testing.assert_allclose(out[0, 0][inside], q_col[inside], atol=1e-12)


@pytest.mark.parametrize("s", [2.0, 1.5, 0.5])
def test_zoom_of_a_ramp_scales_it_about_the_centre(s):
    h, w = 6, 9
    ramp = np.broadcast_to(np.arange(w, dtype=np.float64), (1, 2, h, w)).copy()
    out = zoom(ramp, s)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    q_col = np.broadcast_to(cx + (np.arange(w) - cx) / s, (h, w))      # the source column of every pixel
    q_row = np.broadcast_to(cy + (np.arange(h)[:, None] - cy) / s, (h, w))
    inside = (q_row >= 0) & (q_row <= h - 1) & (q_col >= 0) & (q_col <= w - 1)
    assert inside.sum() >= h * w / 6
    for channel in out[0]:
        np.testing.assert_allclose(channel[inside], q_col[inside], atol=1e-12)
    if s < 1:                                              # zoomed out: the border comes from outside the image
        assert (out[..., 0] == 0).all() and (zoom(ramp, s, fill=-1)[..., 0] < 0).all()


@settings(max_examples=10)
@given(deg=st.floats(-180, 180), s=st.floats(0.3, 3.0), fill=st.sampled_from([0.0, 5.0, "edge"]),
       seed=st.integers(0, 2**31 - 1))
def test_outputs_stay_in_the_range_of_the_input_and_fill(deg, s, fill, seed):
    x = images(np.random.default_rng(seed), (2, 2, 5, 4), np.float32)
    lo, hi = x.min(), x.max()
    if fill != "edge":
        lo, hi = min(lo, fill), max(hi, fill)
    for y in (rotate(x, deg, fill=fill), zoom(x, s, fill=fill)):
        assert y.dtype == np.float32 and y.shape == x.shape
        assert lo <= y.min() and y.max() <= hi


def test_random_draws_are_per_image_and_reproducible(rng):
    x = np.broadcast_to(images(rng, (1, 2, 6, 5)), (4, 2, 6, 5)).copy()     # four copies of one image
    x_before = x.copy()
    for f, arg in ((random_rotate, 30), (random_zoom, (0.7, 1.3))):
        a = f(x, arg, rng=np.random.default_rng(7))
        b = f(x, arg, rng=np.random.default_rng(7))
        np.testing.assert_array_equal(a, b)                                 # same seed, same batch
        assert not np.allclose(a[0], a[1])                                  # a draw per image
        assert not np.array_equal(a, f(x, arg, rng=np.random.default_rng(8)))
    np.testing.assert_array_equal(x, x_before)                              # inputs are never written
    angles = np.random.default_rng(7).uniform(-30, 30, size=4)              # the documented draw
    np.testing.assert_allclose(random_rotate(x, 30, rng=np.random.default_rng(7)), rotate(x, angles), atol=0)


def test_per_image_arguments_and_the_input_contract(rng):
    x = images(rng, (2, 1, 4, 4))
    both = rotate(x, [0, 90])
    np.testing.assert_array_equal(both[0], x[0])
    np.testing.assert_allclose(both[1], np.rot90(x[1], 1, axes=(1, 2)), atol=1e-12)
    for f, arg in ((rotate, 10), (zoom, 1.2)):
        empty = f(np.zeros((0, 3, 4, 5), np.float32), arg)
        assert empty.shape == (0, 3, 4, 5) and empty.dtype == np.float32
    x[0, 0, 1, 1] = np.nan                                                  # NaN reaches the outputs it feeds
    y = rotate(x, 0)
    assert np.isnan(y[0, 0, 1, 1]) and np.isfinite(np.delete(y.ravel(), 5)).all()
    assert np.isnan(rotate(x, 10)[0]).any() and np.isfinite(rotate(x, 10)[1]).all()


@pytest.mark.parametrize("call, error, match", [
    (lambda x: rotate(x.astype(np.int32), 10), TypeError, r"rotate: images must be float32 or float64.*int32"),
    (lambda x: zoom(x[0], 1.1), ValueError, r"zoom: expected a batch \(N, C, H, W\)"),
    (lambda x: zoom(x, 0), ValueError, r"zoom: scale must be > 0"),
    (lambda x: zoom(x, [1.0, 2.0]), ValueError, r"zoom: scale must be one finite number or 3 of them"),
    (lambda x: rotate(x, np.nan), ValueError, r"rotate: degrees must be one finite number"),
    (lambda x: rotate(x, "10"), ValueError, r"rotate: degrees"),
    (lambda x: rotate(x, 10, fill="wrap"), ValueError, r"rotate: fill must be a number or 'edge', got 'wrap'"),
    (lambda x: rotate(x, 10, fill=np.inf), ValueError, r"rotate: fill must be a finite number"),
    (lambda x: random_rotate(x, 200), ValueError, r"random_rotate: max_degrees must be a number in \[0, 180\]"),
    (lambda x: random_rotate(x, -1), ValueError, r"max_degrees.*-1"),
    (lambda x: random_zoom(x, (1.2, 0.8)), ValueError, r"random_zoom: scale_range must satisfy 0 < low <= high"),
    (lambda x: random_zoom(x, 1.1), ValueError, r"random_zoom: scale_range must be a pair"),
    (lambda x: random_zoom(x, (0.9, 1.1), rng="seed"), TypeError, r"random_zoom: rng must be"),
])
def test_bad_arguments_are_named(rng, call, error, match):
    with pytest.raises(error, match=match):
        call(images(rng))
