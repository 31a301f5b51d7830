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


# --- rotation and zoom in the training pipeline (Augment, train_run, minicnn train) ----------------------------

from minicnn.data import Augment  # noqa: E402


def test_augment_without_rotation_or_zoom_is_what_it_was(rng):
    """Off by default and drawing nothing when off: the batches (and the generator's stream afterwards) of a run
    that does not ask for rotation or zoom are bit for bit those of before."""
    x = images(rng, (5, 3, 8, 8), np.float32)
    for kwargs in (dict(crop_pad=2, hflip=True), dict(crop_pad=1, colour=0.2), dict()):
        old, new = np.random.default_rng(3), np.random.default_rng(3)
        a = Augment(**kwargs)(x, old)
        b = Augment(**kwargs, rotate=0, zoom=0.0)(x, new)
        np.testing.assert_array_equal(a, b)
        assert old.random() == new.random()
        assert repr(Augment(**kwargs)) == repr(Augment(**kwargs, rotate=0, zoom=0))
        assert "rotate" not in repr(Augment(**kwargs)) and "zoom" not in repr(Augment(**kwargs))
    assert Augment().rotate == 0.0 and Augment().zoom == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_augment_rotates_and_zooms_each_image_by_its_own_draw(rng, dtype):
    """Rotation by up to the configured maximum (180 degrees here) and zoom: shape and dtype kept, one draw per
    image in the documented ranges, both applied as one resampling after crop and flip."""
    x = np.broadcast_to(images(rng, (1, 2, 7, 7), dtype), (6, 2, 7, 7)).copy()     # six copies of one image
    x_before = x.copy()
    aug = Augment(crop_pad=1, hflip=True, rotate=180, zoom=0.3)
    y = aug(x, np.random.default_rng(11))
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_array_equal(x, x_before)
    assert not np.allclose(y[0], y[1])                                  # a different transform per image
    # the same draws by hand: crop offsets, flips, then angles, then scales
    draws = np.random.default_rng(11)
    from minicnn.data import random_crop, random_hflip
    expected = random_hflip(random_crop(x, 1, draws), draws)
    angles = draws.uniform(-180, 180, size=6)
    scales = draws.uniform(0.7, 1.3, size=6)
    assert np.abs(angles).max() > 90 and scales.min() < 0.9 < 1.1 < scales.max()   # the draws span the ranges
    from minicnn.data.augment import _rotate_scale
    np.testing.assert_array_equal(y, _rotate_scale(expected, angles, scales, 0.0))
    assert repr(aug) == "Augment(crop_pad=1, hflip=True, rotate=180.0, zoom=0.3)"


def test_augment_is_reproducible_from_the_seed(rng):
    x = images(rng, (4, 1, 6, 6), np.float32)
    aug = Augment(rotate=25, zoom=0.2, colour=0.1)
    np.testing.assert_array_equal(aug(x, np.random.default_rng(5)), aug(x, np.random.default_rng(5)))
    assert not np.array_equal(aug(x, np.random.default_rng(5)), aug(x, np.random.default_rng(6)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(rotate=-5), "Augment: rotate must be a number of degrees in \\[0, 180\\], got -5"),
    (dict(rotate=181), "Augment: rotate must be .* got 181"),
    (dict(rotate=float("nan")), "Augment: rotate"),
    (dict(rotate=True), "Augment: rotate"),
    (dict(zoom=1.0), "Augment: zoom must be a fraction in \\[0, 1\\) .* got 1.0"),
    (dict(zoom=-0.1), "Augment: zoom .* got -0.1"),
    (dict(zoom="0.1"), "Augment: zoom"),
])
def test_augment_refuses_bad_rotation_and_zoom(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Augment(**kwargs)


def test_only_training_batches_are_augmented():
    """The Trainer hands every training image, and nothing else, to the augmentation."""
    from test_train import make_trainer

    class Recording(Augment):
        seen = []

        def __call__(self, xb, rng=None):
            Recording.seen.append(np.array(xb))
            return super().__call__(xb, rng)

    trainer = make_trainer(epochs=1, augment=Recording(rotate=30, zoom=0.2))
    trainer.fit()
    seen = np.concatenate(Recording.seen)
    train = trainer.splits.train.x
    assert len(seen) == len(train)                                   # one epoch: each training image once
    assert sorted(map(bytes, seen)) == sorted(map(bytes, train))     # ...and only training images


@pytest.mark.parametrize("option, value, match", [
    ("rotate", 200, "train_run: rotate must be a finite number of degrees in \\[0, 180\\], got 200"),
    ("rotate", -1.0, "train_run: rotate"),
    ("zoom", 1.5, "train_run: zoom must be a finite number in \\[0, 1\\), got 1.5"),
    ("zoom", float("inf"), "train_run: zoom"),
    ("colour_jitter", 1.0, "train_run: colour_jitter"),
])
def test_train_run_refuses_bad_augmentation_before_loading_data(tmp_path, option, value, match):
    from minicnn.experiment import train_run
    with pytest.raises(ValueError, match=match):
        train_run(str(tmp_path / "run"), data="nonsense-is-never-loaded", **{option: value}, verbose=False)
    assert not (tmp_path / "run").exists()
