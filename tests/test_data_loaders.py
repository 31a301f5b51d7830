"""Local-file loaders on small files written here: MNIST IDX, CIFAR-10 python batches, image folders."""
import gzip
import pickle

import numpy as np
import pytest

from minicnn.data import load_dataset, read_cifar10, read_idx, read_image_folder, read_mnist
from minicnn.data.loaders import FASHION_MNIST_CLASSES, read_cifar_batch


# ------------------------------------------------------------------------------------------------ writers
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian uint32 sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def mnist_arrays(n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train, dtype=np.uint8) % 10,
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), np.arange(n_test, dtype=np.uint8) % 10)


def write_mnist(root, arrays, gz=False):
    root.mkdir(parents=True, exist_ok=True)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name, arr in zip(names, arrays):
        write_idx(root / name, arr, gz=gz)
    return root


def write_cifar(root, n_per_batch=10, batches=2, seed=0, meta=True):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        labels[:10] = list(range(10))[:n_per_batch]
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n_per_batch}, f)
        images[name] = (data, labels)
    if meta:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [f"class{k}".encode() for k in range(10)], b"num_vis": 3072}, f)
    return images


# ---------------------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "imgs", images, gz=gz)
    got = read_idx(tmp_path / ("imgs.gz" if gz else "imgs"), 2051)
    np.testing.assert_array_equal(got, images)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path / "labels", labels, gz=gz)
    np.testing.assert_array_equal(read_idx(tmp_path / ("labels.gz" if gz else "labels"), 2049), labels)


def test_read_idx_wrong_magic_names_file_and_expectation(tmp_path):
    write_idx(tmp_path / "labels-as-images", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"labels-as-images.*magic number 2049.*expected 2051"):
        read_idx(tmp_path / "labels-as-images", 2051)


def test_read_idx_truncated_and_garbage(tmp_path):
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "short").write_bytes(good[:-5])
    with pytest.raises(ValueError, match=r"short.*should hold 48 bytes.*found 43.*truncated"):
        read_idx(tmp_path / "short", 2051)
    (tmp_path / "header").write_bytes(good[:9])
    with pytest.raises(ValueError, match="header"):
        read_idx(tmp_path / "header", 2051)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        read_idx(tmp_path / "tiny")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.gz"):
        read_idx(tmp_path / "bad.gz")


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_idx_files(tmp_path, gz):
    arrays = mnist_arrays()
    root = write_mnist(tmp_path / "mnist", arrays, gz=gz)
    xtr, ytr, xte, yte = read_mnist(root)
    for got, want in zip((xtr, ytr, xte, yte), arrays):
        np.testing.assert_array_equal(got, want)
    s = load_dataset("mnist", root=root, val_fraction=0.25, subtract_mean=False)
    assert s.name == "mnist" and s.input_shape == (1, 28, 28) and s.num_classes == 10 and s.hflip is False
    assert len(s.train) == 30 and len(s.val) == 10 and len(s.test) == 20  # official test set kept whole
    np.testing.assert_allclose(s.test.x[:, 0], arrays[2] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(s.test.y, arrays[3].astype(np.int64))
    assert s.train.x.dtype == np.float32 and s.train.y.dtype == np.int64
    # every train/val image is one of the official train images, and none appears twice
    train_rows = {im.tobytes() for im in (arrays[0][:, None] / np.float32(255.0)).astype(np.float32)}
    got_rows = [im.tobytes() for im in np.concatenate([s.train.x, s.val.x])]
    assert set(got_rows) == train_rows and len(got_rows) == len(train_rows)


def test_load_fashion_mnist_resized_and_subsampled(tmp_path):
    root = write_mnist(tmp_path / "fashion", mnist_arrays(60, 30), gz=True)
    s = load_dataset("fashion-mnist", root=root, image_size=32, n_samples=45)
    assert s.class_names == FASHION_MNIST_CLASSES and s.hflip is True
    assert s.input_shape == (1, 32, 32)
    assert len(s.train) + len(s.val) == 30 and len(s.test) == 15
    np.testing.assert_allclose(s.train.x.mean(axis=0), 0.0, atol=1e-5)


def test_mnist_missing_file_and_mismatched_counts(tmp_path):
    root = write_mnist(tmp_path / "m", mnist_arrays())
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte"):
        load_dataset("mnist", root=root)
    write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match="test images and labels disagree.*20 images, 7 labels"):
        load_dataset("mnist", root=root)
    # images and labels swapped: the magic number catches it
    write_idx(root / "train-images-idx3-ubyte", np.zeros(40, np.uint8))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*expected 2051"):
        load_dataset("mnist", root=root)


# ----------------------------------------------------------------------------------------------- CIFAR-10
def test_load_cifar10_batches(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py", n_per_batch=20, batches=2)
    xtr, ytr, xte, yte, names = read_cifar10(tmp_path)  # finds the cifar-10-batches-py sub-folder
    assert xtr.shape == (40, 3, 32, 32) and xte.shape == (20, 3, 32, 32) and names[3] == "class3"
    data, labels = written["data_batch_2"]
    np.testing.assert_array_equal(xtr[20:], data.reshape(20, 3, 32, 32))
    # the layout: the first 1024 values of a row are the red plane, row-major
    first = written["data_batch_1"][0][0]
    assert xtr[0, 0, 1, 0] == first[32] and xtr[0, 2, 0, 5] == first[2048 + 5]
    np.testing.assert_array_equal(ytr[20:], labels)
    s = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", val_fraction=0.2, subtract_mean=False)
    assert s.input_shape == (3, 32, 32) and s.class_names[0] == "class0" and s.hflip is True
    assert len(s.test) == 20 and len(s.train) + len(s.val) == 40
    np.testing.assert_allclose(s.test.x, xte / 255.0, atol=1e-7)


def test_cifar10_without_meta_uses_standard_names_and_missing_files_error(tmp_path):
    write_cifar(tmp_path, n_per_batch=10, batches=1, meta=False)
    assert load_dataset("cifar10", root=tmp_path).class_names[0] == "airplane"
    (tmp_path / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar_bad_files_are_clear_errors(tmp_path):
    write_cifar(tmp_path, n_per_batch=10, batches=1)
    (tmp_path / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"data_batch_1.*not a readable CIFAR-10"):
        load_dataset("cifar10", root=tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"data_batch_1.*uint8 \(N, 3072\)"):
        load_dataset("cifar10", root=tmp_path)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar_reader_refuses_pickles_that_run_code(tmp_path, capsys):
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        read_cifar_batch(tmp_path / "data_batch_1")
    assert "never run" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ image folder
def write_png(path, array):
    Image = pytest.importorskip("PIL.Image")

    Image.fromarray(array).save(path)


def test_image_folder_round_trip_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for cls in ("cats", "dogs", "birds"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            img = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            write_png(tmp_path / cls / f"{i}.png", img)
            written[(cls, i)] = img
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    x, y, names = read_image_folder(tmp_path)
    assert names == ["birds", "cats", "dogs"]
    assert x.shape == (30, 3, 12, 12) and x.dtype == np.float32 and y.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    np.testing.assert_allclose(x[10], written[("cats", 0)].transpose(2, 0, 1) / 255.0, atol=1e-7)
    s = load_dataset("folder", root=tmp_path, val_fraction=0.2, test_fraction=0.2)
    assert s.class_names == names and len(s.train) == 18 and len(s.val) == 6 and len(s.test) == 6
    assert np.bincount(s.test.y).tolist() == [2, 2, 2]


def test_image_folder_grey_colour_mix_and_sizes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_png(tmp_path / "a" / "grey.png", np.full((10, 10), 128, np.uint8))
    write_png(tmp_path / "b" / "rgba.png", np.zeros((10, 10, 4), np.uint8))
    x, y, _ = read_image_folder(tmp_path)
    assert x.shape == (2, 3, 10, 10)
    np.testing.assert_allclose(x[0], 128 / 255.0, atol=1e-7)  # grey replicated, alpha dropped
    (tmp_path / "a" / "big.png").write_bytes(b"")
    write_png(tmp_path / "a" / "big.png", np.zeros((20, 16), np.uint8))
    with pytest.raises(ValueError, match="different sizes.*pass image_size="):
        read_image_folder(tmp_path)
    x, y, _ = read_image_folder(tmp_path, image_size=8)
    assert x.shape == (3, 3, 8, 8)
    grey_only = tmp_path / "grey"
    (grey_only / "k").mkdir(parents=True)
    write_png(grey_only / "k" / "0.png", np.zeros((6, 6), np.uint8))
    assert read_image_folder(grey_only)[0].shape == (1, 1, 6, 6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="no sub-folders"):
        read_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*holds no images"):
        read_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        read_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", root=tmp_path / "missing")



def test_fashion_mnist_found_in_debian_folder_without_root(tmp_path, monkeypatch):
    # Debian's dataset-fashion-mnist puts the IDX files under /usr/share/datasets/fashion-mnist: no root= needed
    from minicnn.data import loaders
    folder = write_mnist(tmp_path / "debian", mnist_arrays(60, 30), gz=True)
    monkeypatch.setattr(loaders, "FASHION_MNIST_SYSTEM_DIRS", (str(tmp_path / "absent"), str(folder)))
    s = load_dataset("fashion-mnist", n_samples=45)
    assert s.class_names[9] == "Ankle boot" and s.input_shape == (1, 28, 28)
    monkeypatch.setattr(loaders, "FASHION_MNIST_SYSTEM_DIRS", (str(tmp_path / "absent"),))
    with pytest.raises(ValueError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
