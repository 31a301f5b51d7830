"""Tests for minicnn.data: shipped datasets, splits, mean subtraction, batching, augmentation, and errors.

Local-file loaders (IDX, CIFAR-10, image folders) are tested in test_data_loaders.py on files written there.
"""
import subprocess
import sys

import numpy as np
import pytest

from minicnn.data import (FACE_PARTS, SHAPE_CLASSES, ArrayDataset, Augment, Splits, face_parts, hflip,
                          iterate_batches, load_dataset, make_shapes, make_textures, num_batches, random_crop,
                          random_hflip, stratified_split, stratified_subset, ten_crop)

sklearn = pytest.importorskip("sklearn")
skimage = pytest.importorskip("skimage")


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", image_size=16)


@pytest.fixture(scope="module")
def faces():
    return load_dataset("faces", subtract_mean=False)


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", n_samples=600, seed=3)


@pytest.fixture(scope="module")
def textures():
    return load_dataset("textures", n_samples=400, seed=5)


def check_splits(s, *, name, shape, classes, hflip_ok):
    assert isinstance(s, Splits)
    assert s.name == name
    assert s.input_shape == shape
    assert s.num_classes == classes == len(s.class_names)
    assert s.hflip is hflip_ok
    assert s.mean.shape == shape and s.mean.dtype == np.float32
    for ds in (s.train, s.val, s.test):
        assert isinstance(ds, ArrayDataset)
        assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.x.flags.c_contiguous
        assert ds.x.shape[1:] == shape and len(ds) == ds.x.shape[0] == ds.y.shape[0] > 0
        assert ds.y.min() >= 0 and ds.y.max() < classes
    assert 0.0 <= s.mean.min() and s.mean.max() <= 1.0


# -------------------------------------------------------------------------------------------- importing
def test_importing_minicnn_data_does_not_import_sklearn_or_skimage():
    code = "import sys, minicnn.data; print('sklearn' in sys.modules, 'skimage' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("name, blocked, package", [("digits", "sklearn", "scikit-learn"),
                                                    ("faces", "skimage", "scikit-image"),
                                                    ("textures", "skimage", "scikit-image")])
def test_missing_dependency_says_how_to_install(monkeypatch, name, blocked, package):
    for mod in list(sys.modules):
        if mod == blocked or mod.startswith(blocked + "."):
            monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ImportError) as err:
        load_dataset(name)
    msg = str(err.value)
    assert 'pip install "minicnn[data]"' in msg and package in msg and name in msg


# ------------------------------------------------------------------------------------ shipped datasets
def test_digits(digits):
    check_splits(digits, name="digits", shape=(1, 16, 16), classes=10, hflip_ok=False)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert digits.class_names == [str(d) for d in range(10)]


def test_digits_native_size_and_range():
    s = load_dataset("digits", subtract_mean=False, val_fraction=0.1, test_fraction=0.2)
    assert s.input_shape == (1, 8, 8)
    x = np.concatenate([s.train.x, s.val.x, s.test.x])
    assert x.min() == 0.0 and x.max() == 1.0  # ink 0..16 scaled by 16
    assert len(s.test) == pytest.approx(0.2 * 1797, abs=10) and len(s.val) == pytest.approx(0.1 * 1797, abs=10)


def test_faces(faces):
    check_splits(faces, name="faces", shape=(1, 25, 25), classes=2, hflip_ok=True)
    assert faces.class_names == ["face", "non-face"]
    assert len(faces.train) + len(faces.val) + len(faces.test) == 200
    assert faces.info["face_parts"] == FACE_PARTS
    for ds in (faces.train, faces.val, faces.test):  # stratified: 100 and 100 split alike
        assert abs(int((ds.y == 0).sum()) - int((ds.y == 1).sum())) <= 1


def test_face_parts_sit_on_dark_eyes_and_mouth_of_the_mean_face(faces):
    x = np.concatenate([faces.train.x, faces.val.x, faces.test.x])
    y = np.concatenate([faces.train.y, faces.val.y, faces.test.y])
    mean_face = x[y == 0, 0].mean(axis=0)

    def box(part):
        r0, r1, c0, c1 = FACE_PARTS[part]
        return mean_face[r0:r1, c0:c1]

    forehead = mean_face[1:5, 6:16].mean()
    cheeks = mean_face[11:13, 4:18].mean()
    for part in ("left_eye", "right_eye"):
        assert box(part).min() < forehead - 0.2 and box(part).mean() < cheeks
    assert box("mouth").min() < cheeks - 0.1
    # the eyes mirror each other about the face's axis, and nose and mouth are centred on it
    (lr0, lr1, lc0, lc1), (rr0, rr1, rc0, rc1) = FACE_PARTS["left_eye"], FACE_PARTS["right_eye"]
    assert (lr0, lr1) == (rr0, rr1) and lc1 <= rc0 and (lc0 + lc1) + (rc0 + rc1) == 2 * (8 + 14)
    masks = {}
    for part, (r0, r1, c0, c1) in FACE_PARTS.items():
        assert 0 <= r0 < r1 <= 25 and 0 <= c0 < c1 <= 25, part
        masks[part] = np.zeros((25, 25), int)
        masks[part][r0:r1, c0:c1] = 1
    assert sum(masks.values()).max() == 1  # occluding one part never hides another


def test_face_parts_scale_with_image_size():
    assert face_parts(25) == FACE_PARTS
    assert face_parts(50) == {k: tuple(2 * v for v in box) for k, box in FACE_PARTS.items()}
    s = load_dataset("faces", image_size=32)
    assert s.input_shape == (1, 32, 32) and s.info["face_parts"] == face_parts(32)
    for size in (8, 32, 64, 227):
        cover = np.zeros((size, size), int)
        for r0, r1, c0, c1 in face_parts(size).values():
            assert 0 <= r0 < r1 <= size and 0 <= c0 < c1 <= size
            cover[r0:r1, c0:c1] += 1
        assert cover.max() == 1, size


def test_shapes_splits(shapes):
    check_splits(shapes, name="shapes", shape=(3, 32, 32), classes=len(SHAPE_CLASSES), hflip_ok=True)
    assert len(shapes.train) + len(shapes.val) + len(shapes.test) == 600
    assert len(shapes.test) == len(shapes.val) == 90


def test_textures(textures):
    check_splits(textures, name="textures", shape=(3, 32, 32), classes=10, hflip_ok=True)
    assert len(textures.train) + len(textures.val) + len(textures.test) == 400
    assert "brick" in textures.class_names and "grass" in textures.class_names
    assert textures.info["sources"]["cat"] == "chelsea"
    # all classes present in every split, in equal numbers
    for ds in (textures.train, textures.val, textures.test):
        counts = np.bincount(ds.y, minlength=10)
        assert counts.min() == counts.max() > 0


def test_texture_test_crops_never_overlap_train_crops():
    x, y, names, part, origin = make_textures(n_samples=300, image_size=16, seed=2)
    size = 16
    for k in range(len(names)):
        train = origin[(y == k) & (part == 0)]
        for split in (1, 2):
            held = origin[(y == k) & (part == split)]
            assert len(held) > 0
            overlap_r = np.abs(held[:, None, 0] - train[None, :, 0]) < size
            overlap_c = np.abs(held[:, None, 1] - train[None, :, 1]) < size
            assert not (overlap_r & overlap_c).any(), names[k]
    # every crop lies inside its photograph's tile grid: colour images really have colour
    assert x.shape == (300, 3, 16, 16)
    cat = x[y == names.index("cat")]
    assert np.abs(cat[:, 0] - cat[:, 2]).mean() > 0.02
    brick = x[y == names.index("brick")]
    np.testing.assert_array_equal(brick[:, 0], brick[:, 1])  # grey source replicated


def test_textures_image_size_too_large_for_fractions_is_an_error():
    with pytest.raises(ValueError, match="tiles"):
        make_textures(n_samples=20, image_size=8, val_fraction=0.49, test_fraction=0.49)


# ------------------------------------------------------------------------ determinism, splits and mean
def test_same_seed_gives_identical_splits_and_other_seed_differs():
    a = load_dataset("shapes", n_samples=240, seed=7)
    b = load_dataset("shapes", n_samples=240, seed=7)
    c = load_dataset("shapes", n_samples=240, seed=8)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, part).x, getattr(b, part).x)
        np.testing.assert_array_equal(getattr(a, part).y, getattr(b, part).y)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert not np.array_equal(a.train.x, c.train.x)


def test_digits_split_is_deterministic_and_depends_on_seed(digits):
    again = load_dataset("digits", image_size=16)
    np.testing.assert_array_equal(again.test.x, digits.test.x)
    other = load_dataset("digits", image_size=16, seed=1)
    assert not np.array_equal(other.test.x, digits.test.x)


def test_splits_are_disjoint(shapes):
    # shapes images carry random noise, so equal rows would mean the same image in two splits
    rows = {part: {im.tobytes() for im in getattr(shapes, part).x} for part in ("train", "val", "test")}
    assert len(rows["train"]) == len(shapes.train)
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def test_stratified_split_properties():
    y = np.repeat(np.arange(4), [10, 20, 30, 41])
    parts = stratified_split(y, (0.2, 0.1), seed=3)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(len(y)))  # disjoint and covering
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)
    for k, n_k in enumerate([10, 20, 30, 41]):
        assert (y[parts[1]] == k).sum() == round(0.2 * n_k)
        assert (y[parts[2]] == k).sum() == round(0.1 * n_k)
    again = stratified_split(y, (0.2, 0.1), seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(parts, again))
    # a class with two members still keeps one for training, and fraction 0 gives an empty part
    tiny = stratified_split(np.array([0, 0, 1, 1, 1]), (0.5, 0.0))
    assert len(tiny[2]) == 0 and set(np.array([0, 0, 1, 1, 1])[tiny[0]]) == {0, 1}


def test_stratified_subset_is_exact_and_balanced():
    y = np.repeat(np.arange(3), [50, 30, 20])
    keep = stratified_subset(y, 10, seed=0)
    assert len(keep) == 10 and np.bincount(y[keep]).tolist() == [5, 3, 2]
    assert len(stratified_subset(y, 1000)) == 100
    s = load_dataset("digits", n_samples=300)
    assert len(s.train) + len(s.val) + len(s.test) == 300


def test_mean_subtraction_uses_train_mean_only(shapes):
    raw = load_dataset("shapes", n_samples=600, seed=3, subtract_mean=False)
    assert not raw.mean_subtracted and shapes.mean_subtracted
    np.testing.assert_allclose(raw.train.x.mean(axis=0), raw.mean, atol=1e-6)
    np.testing.assert_allclose(shapes.mean, raw.mean)
    np.testing.assert_allclose(shapes.train.x.mean(axis=0), 0.0, atol=1e-5)
    for part in ("train", "val", "test"):
        np.testing.assert_allclose(getattr(shapes, part).x + shapes.mean, getattr(raw, part).x, atol=1e-6)
        assert 0.0 <= getattr(raw, part).x.min() and getattr(raw, part).x.max() <= 1.0
    np.testing.assert_allclose(shapes.denormalize(shapes.test.x), raw.test.x, atol=1e-6)
    assert not np.allclose(shapes.val.x.mean(axis=0), 0.0, atol=1e-5)  # val mean was not used


# --------------------------------------------------------------------------------------------- shapes
def test_make_shapes_is_deterministic_balanced_and_in_range():
    x, y, names = make_shapes(120, image_size=24, seed=11)
    x2, y2, _ = make_shapes(120, image_size=24, seed=11)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (120, 3, 24, 24) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.dtype == np.int64 and names == list(SHAPE_CLASSES)
    assert np.bincount(y).tolist() == [20] * 6
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert not np.array_equal(make_shapes(120, image_size=24, seed=12)[0], x)


def test_make_shapes_draws_the_class_it_says():
    # foreground = pixels whose luminance is far from the border's median (the background's, up to its gentle
    # gradient); a ring has a hole at its centroid, a circle and a cross do not
    x, y, names = make_shapes(60, image_size=48, seed=0, classes=["circle", "ring", "cross"])
    assert names == ["circle", "ring", "cross"]
    lum = np.tensordot(x, np.array([0.299, 0.587, 0.114], np.float32), axes=([1], [0]))
    border = np.concatenate([lum[:, 0], lum[:, -1], lum[:, :, 0], lum[:, :, -1]], axis=1)
    fg = np.abs(lum - np.median(border, axis=1)[:, None, None]) > 0.15
    rows, cols = np.indices((48, 48))
    for img, label in zip(fg, y):
        cy, cx = rows[img].mean(), cols[img].mean()
        centre = img[int(round(cy)) - 1:int(round(cy)) + 2, int(round(cx)) - 1:int(round(cx)) + 2]
        if names[label] == "ring":
            assert not centre.any()
        else:
            assert centre.all()


def test_make_shapes_errors():
    with pytest.raises(ValueError, match="make_shapes.*classes"):
        make_shapes(10, classes=["circle", "hexagon"])
    with pytest.raises(ValueError, match="make_shapes: image_size"):
        make_shapes(10, image_size=4)
    with pytest.raises(TypeError, match="make_shapes: n"):
        make_shapes(10.0)


# ------------------------------------------------------------------------------------------- batching
def test_iterate_batches_covers_everything_once_in_order():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    y = np.arange(10, dtype=np.int64)
    batches = list(iterate_batches(x, y, 4))
    assert [len(b[1]) for b in batches] == [4, 4, 2] == [4, 4, 2][:num_batches(10, 4)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    assert [len(b[1]) for b in iterate_batches(x, y, 4, drop_last=True)] == [4, 4] and num_batches(10, 4, True) == 2


def test_iterate_batches_shuffle_is_deterministic_and_keeps_pairs():
    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    y = np.arange(50, dtype=np.int64)
    a = list(iterate_batches(x, y, 8, shuffle=True, rng=np.random.default_rng(5)))
    b = list(iterate_batches(x, y, 8, shuffle=True, rng=np.random.default_rng(5)))
    ya = np.concatenate([yb for _, yb in a])
    assert sorted(ya.tolist()) == list(range(50)) and not np.array_equal(ya, y)
    np.testing.assert_array_equal(ya, np.concatenate([yb for _, yb in b]))
    for xb, yb in a:
        np.testing.assert_array_equal(xb[:, 0, 0, 0], yb.astype(np.float32))
    # one generator reused over epochs gives a new order each epoch
    rng = np.random.default_rng(5)
    e1 = np.concatenate([yb for _, yb in iterate_batches(x, y, 8, shuffle=True, rng=rng)])
    e2 = np.concatenate([yb for _, yb in iterate_batches(x, y, 8, shuffle=True, rng=rng)])
    assert not np.array_equal(e1, e2)


def test_iterate_batches_applies_augment_with_the_rng():
    x = np.random.default_rng(0).random((16, 1, 6, 6)).astype(np.float32)
    y = np.zeros(16, np.int64)
    aug = Augment(crop_pad=1, hflip=True)
    a = [xb for xb, _ in iterate_batches(x, y, 5, augment=aug, rng=np.random.default_rng(1))]
    b = [xb for xb, _ in iterate_batches(x, y, 5, augment=aug, rng=np.random.default_rng(1))]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(np.concatenate(a), x)
    seen = []
    list(iterate_batches(x, y, 5, augment=lambda xb, rng: seen.append(len(xb)) or xb))
    assert seen == [5, 5, 5, 1]


def test_iterate_batches_errors():
    x = np.zeros((4, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="iterate_batches: batch_size"):
        list(iterate_batches(x, np.zeros(4, np.int64), 0))
    with pytest.raises(ValueError, match="4 images but y has 3"):
        list(iterate_batches(x, np.zeros(3, np.int64), 2))
    with pytest.raises(TypeError, match="rng"):
        list(iterate_batches(x, np.zeros(4, np.int64), 2, shuffle=True, rng="seed"))


def test_array_dataset_validates_and_batches():
    ds = ArrayDataset(np.zeros((3, 1, 2, 2), np.float32), np.zeros(3, np.int64))
    assert len(ds) == 3 and ds[1][0].shape == (1, 2, 2)
    assert [len(yb) for _, yb in ds.batches(2)] == [2, 1]
    with pytest.raises(TypeError, match="float32"):
        ArrayDataset(np.zeros((3, 1, 2, 2)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="3 images but y has 2"):
        ArrayDataset(np.zeros((3, 1, 2, 2), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="4-d"):
        ArrayDataset(np.zeros((3, 4), np.float32), np.zeros(3, np.int64))


# ----------------------------------------------------------------------------------------- augmentation
@pytest.fixture
def batch():
    return np.random.default_rng(0).random((6, 3, 8, 10)).astype(np.float32)


def test_random_crop_is_a_shifted_window_of_the_padded_image(batch):
    before = batch.copy()
    out = random_crop(batch, 2, np.random.default_rng(3))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    np.testing.assert_array_equal(batch, before)  # input untouched
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = []
    for i in range(len(batch)):
        hits = [(oy, ox) for oy in range(5) for ox in range(5)
                if np.array_equal(out[i], padded[i, :, oy:oy + 8, ox:ox + 10])]
        assert len(hits) == 1
        offsets.append(hits[0])
    assert len(set(offsets)) > 1
    np.testing.assert_array_equal(random_crop(batch, 0, np.random.default_rng(3)), batch)
    np.testing.assert_array_equal(out, random_crop(batch, 2, np.random.default_rng(3)))


def test_random_hflip_is_an_involution_and_flips_whole_images(batch):
    once = random_hflip(batch, np.random.default_rng(4))
    twice = random_hflip(once, np.random.default_rng(4))
    np.testing.assert_array_equal(twice, batch)
    flipped = [np.array_equal(o, b[..., ::-1]) for o, b in zip(once, batch)]
    same = [np.array_equal(o, b) for o, b in zip(once, batch)]
    assert all(f != s for f, s in zip(flipped, same)) and any(flipped) and any(same)
    np.testing.assert_array_equal(hflip(hflip(batch)), batch)
    np.testing.assert_array_equal(random_hflip(batch, np.random.default_rng(0), p=1.0), batch[..., ::-1])


def test_ten_crop(batch):
    crops = ten_crop(batch, 6)
    assert crops.shape == (10, 6, 3, 6, 6) and crops.flags.c_contiguous
    np.testing.assert_array_equal(crops[4], batch[:, :, 1:7, 2:8])  # centre: ((8-6)//2, (10-6)//2)
    np.testing.assert_array_equal(crops[0], batch[:, :, :6, :6])
    np.testing.assert_array_equal(crops[1], batch[:, :, :6, 4:])
    np.testing.assert_array_equal(crops[2], batch[:, :, 2:, :6])
    np.testing.assert_array_equal(crops[3], batch[:, :, 2:, 4:])
    np.testing.assert_array_equal(crops[5:], crops[:5, ..., ::-1])
    full = ten_crop(batch[:, :, :, :8], 8)
    np.testing.assert_array_equal(full[0], batch[:, :, :, :8])
    with pytest.raises(ValueError, match="ten_crop: crop size 9"):
        ten_crop(batch, 9)


def test_augment_callable(batch):
    assert repr(Augment(crop_pad=2, hflip=True)) == "Augment(crop_pad=2, hflip=True)"
    np.testing.assert_array_equal(Augment()(batch, np.random.default_rng(0)), batch)
    a = Augment(crop_pad=1, hflip=True)(batch, np.random.default_rng(9))
    b = Augment(crop_pad=1, hflip=True)(batch, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a.shape == batch.shape
    digits_like = Splits.__new__(Splits)
    digits_like.hflip = False
    assert not Augment.for_splits(digits_like, crop_pad=2).hflip
    with pytest.raises(ValueError, match="Augment: crop_pad"):
        Augment(crop_pad=-1)


# -------------------------------------------------------------------------------------- load_dataset errors
@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(name="imagenet"), ValueError, "unknown dataset 'imagenet'"),
    (dict(name="shapes", val_fraction=1.5), ValueError, "val_fraction must be in"),
    (dict(name="shapes", val_fraction=0.5, test_fraction=0.5), ValueError, "val_fraction \\+ test_fraction"),
    (dict(name="shapes", image_size=2), ValueError, "image_size must be >= 4"),
    (dict(name="shapes", image_size="32"), TypeError, "image_size must be an int"),
    (dict(name="shapes", root="/tmp"), ValueError, "root= is only for the local datasets"),
    (dict(name="mnist"), ValueError, "pass root="),
    (dict(name="cifar10", root="/nonexistent/minicnn"), FileNotFoundError, "does not exist"),
])
def test_load_dataset_errors(kwargs, exc, pattern):
    name = kwargs.pop("name")
    with pytest.raises(exc, match=pattern):
        load_dataset(name, **kwargs)


# ------------------------------------------------------------------------------------------ properties
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(n=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9), data=st.data())
def test_ten_crop_centre_and_corners_property(n, h, w, data):
    size = data.draw(st.integers(1, min(h, w)))
    x = np.arange(n * 2 * h * w, dtype=np.float32).reshape(n, 2, h, w)
    crops = ten_crop(x, size)
    cy, cx = (h - size) // 2, (w - size) // 2
    assert crops.shape == (10, n, 2, size, size)
    np.testing.assert_array_equal(crops[4], x[:, :, cy:cy + size, cx:cx + size])
    np.testing.assert_array_equal(crops[3], x[:, :, h - size:, w - size:])
    np.testing.assert_array_equal(crops[9], crops[4][..., ::-1])


@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=60), val=st.floats(0, 0.45),
       test=st.floats(0, 0.45), seed=st.integers(0, 2**31))
def test_stratified_split_always_partitions(labels, val, test, seed):
    y = np.array(labels)
    parts = stratified_split(y, (val, test), seed)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert set(y[parts[0]].tolist()) == set(labels)  # every class keeps at least one training image


@given(pad=st.integers(0, 3), seed=st.integers(0, 1000))
def test_random_crop_keeps_shape_and_mass_bound(pad, seed):
    x = np.random.default_rng(seed).random((3, 2, 5, 6)).astype(np.float32) + 1.0
    out = random_crop(x, pad, np.random.default_rng(seed))
    assert out.shape == x.shape
    # a crop of a zero-padded positive image holds a subset of the pixels: its sum cannot grow
    assert np.all(out.sum(axis=(1, 2, 3)) <= x.sum(axis=(1, 2, 3)) + 1e-3)


def test_photos_use_every_shipped_photograph_multiscale_without_overlap_across_splits():
    from minicnn.data.datasets import make_photos, photo_sources
    names = [n for n, _ in photo_sources()]
    assert {"astronaut", "chelsea", "china", "flower", "grace_hopper"} <= set(names)   # all three packages
    x, y, classes, part, origin = make_photos(n_samples=7 * len(names), image_size=16, seed=1)
    assert x.shape == (7 * len(names), 3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert classes == names and set(part.tolist()) == {0, 1, 2}
    assert origin[:, 2].min() >= 16 and origin[:, 2].max() <= 32                         # crop sides 16..32
    for k in range(len(names)):                 # no crop of one split overlaps a crop of another split
        boxes = [(origin[i], part[i]) for i in np.flatnonzero(y == k)]
        for (a, pa) in boxes:
            for (b, pb) in boxes:
                if pa != pb:
                    overlap_r = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
                    overlap_c = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
                    assert overlap_r <= 0 or overlap_c <= 0


def test_colour_jitter_changes_channels_independently_and_is_off_by_default():
    from minicnn.data import colour_jitter
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    y = colour_jitter(x, 0.3, np.random.default_rng(1))
    assert y.dtype == np.float32 and y.shape == x.shape and not np.allclose(x, y)
    gain = (y[:, :, 0, 0] - y[:, :, 1, 1]) / (x[:, :, 0, 0] - x[:, :, 1, 1])          # per image and channel
    assert np.all(np.abs(gain - 1) <= 0.3 + 1e-4) and np.ptp(gain, axis=1).max() > 1e-3
    assert np.array_equal(colour_jitter(x, 0.0, rng), x)
    with pytest.raises(ValueError, match="strength must be in"):
        colour_jitter(x, 1.5, rng)
    aug = Augment(crop_pad=0, hflip=False)
    assert np.array_equal(aug(x, np.random.default_rng(0)), x) and "colour" not in repr(aug)
    assert repr(Augment(colour=0.2)) == "Augment(crop_pad=None, hflip=False, colour=0.2)"
