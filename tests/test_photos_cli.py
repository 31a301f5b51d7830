"""ImageNet preprocessing, predictions and the photo gallery, and the import / predict / visualize --images commands.

No PyTorch: a small random network saved as a photo run (32x32 crops, 1000 ImageNet classes) stands in for
VGG-16 where the point is the plumbing, not the network; the import command reads an AlexNet-shaped .npz.
"""
import json
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest

from minicnn.cli import main
from minicnn.imagenet import (DEFAULT_PREPROCESSING, imagenet_class_names, load_images, preprocess_image,
                              top_predictions)
from minicnn.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from minicnn.net import Sequential
from minicnn.visualize.photos import PHOTO_ITEMS, PhotoSet, bundled_photos
from minicnn.weights import write_photo_run

SMALL = {"resize": 36, "crop": 32}


@pytest.fixture(autouse=True)
def no_torch(monkeypatch):
    """These commands must work where PyTorch is not installed: any ``import torch`` fails inside these tests."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "captum", None)


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    net = Sequential([Conv2D(3, 4, 3, pad=1, rng=rng), ReLU(), MaxPool2D(2, 2), Conv2D(4, 6, 3, pad=1, rng=rng),
                      ReLU(), MaxPool2D(2, 2), Flatten(), Linear(6 * 8 * 8, 1000, rng=rng)], name="small")
    for layer in net.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.uniform(-0.1, 0.1, layer.params["b"].shape).astype(np.float32)
    return net


def write_photos(folder, n=5, seed=0):
    """n small colour photos of different sizes and aspect ratios (blobs on a gradient)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        h, w = int(rng.integers(36, 70)), int(rng.integers(36, 70))
        yy, xx = np.mgrid[:h, :w]
        img = np.stack([xx / w, yy / h, np.full((h, w), i / n)], axis=2)
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 60] = rng.uniform(0, 1, 3)
        path = folder / f"photo{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        files.append(str(path))
    return files


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    run = d / "run"
    write_photo_run(small_net(), run, info={"arch": "small"}, preprocessing=SMALL)
    return run, write_photos(d / "images")


# --- preprocessing and labels -------------------------------------------------------------------------------

def test_class_names_ship_with_the_package():
    names = imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench" and names[281] == "tabby" and names[999] == "toilet tissue"


def test_preprocessing_normalises_with_torchvision_mean_and_std():
    colour = np.array([200, 100, 30], dtype=np.uint8)
    x = preprocess_image(np.broadcast_to(colour, (300, 500, 3)))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    want = (colour / 255 - np.array(DEFAULT_PREPROCESSING["mean"])) / np.array(DEFAULT_PREPROCESSING["std"])
    np.testing.assert_allclose(x, np.broadcast_to(want[:, None, None], x.shape), rtol=1e-6)


@pytest.mark.parametrize("h,w", [(60, 120), (120, 60), (40, 40)])
def test_short_side_resize_then_centre_crop(h, w):
    """A mirror-symmetric photo stays mirror-symmetric: the crop is centred; the short side fills the crop."""
    yy, xx = np.mgrid[:h, :w]
    img = ((np.abs(xx - (w - 1) / 2) / w + np.abs(yy - (h - 1) / 2) / h) * 255).astype(np.uint8)
    x = preprocess_image(img, SMALL)
    assert x.shape == (3, 32, 32)
    np.testing.assert_allclose(x, x[:, :, ::-1], atol=2e-2)
    np.testing.assert_allclose(x, x[:, ::-1, :], atol=2e-2)
    # no flips or transposes: a photo darker on the left and at the top stays so
    marked = (np.clip(xx / w + yy / h, 0, 1) * 255).astype(np.uint8)[:, :, None].repeat(3, axis=2)
    y = preprocess_image(marked, SMALL)[0]
    assert y[:, :8].mean() < y[:, -8:].mean() and y[:8].mean() < y[-8:].mean()


def test_preprocessing_equals_torchvision_where_installed(monkeypatch):
    """torchvision's Resize(256), CenterCrop(224), ToTensor, Normalize on the bundled photos, where it is installed
    (it is not a dependency; checked by hand against torchvision 0.29.1: identical to the last bit on all 13)."""
    monkeypatch.delitem(sys.modules, "torch")             # this one test may use torch
    T = pytest.importorskip("torchvision.transforms")
    from PIL import Image
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(DEFAULT_PREPROCESSING["mean"], DEFAULT_PREPROCESSING["std"])])
    for f in bundled_photos()[:4]:
        with Image.open(f) as im:
            np.testing.assert_allclose(preprocess_image(f), tf(im.convert("RGB")).numpy(), atol=1e-6)


def test_bad_images_and_preprocessing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        preprocess_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        preprocess_image(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="crop"):
        preprocess_image(np.zeros((40, 40, 3)), {"resize": 32, "crop": 64})


def test_top_predictions_are_sorted_probabilities():
    logits = np.random.default_rng(0).standard_normal((3, 1000))
    top = top_predictions(logits, imagenet_class_names(), k=5)
    for row, z in zip(top, logits):
        assert [c for c, _, _ in row] == list(np.argsort(-z)[:5])
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose([q for _, _, q in row], p[[c for c, _, _ in row]], rtol=1e-12)


# --- streaming over a folder ---------------------------------------------------------------------------------

class CountingPhotoSet(PhotoSet):
    most = 0

    def _read(self, indices):
        CountingPhotoSet.most = max(CountingPhotoSet.most, len(indices))
        return super()._read(indices)


def test_topk_streams_over_photos_in_bounded_batches(photo_run, tmp_path):
    from minicnn.visualize import top_k
    _, _ = photo_run
    files = write_photos(tmp_path / "many", n=11, seed=3)
    net = small_net()
    photos = CountingPhotoSet(files, SMALL, cache_size=0)
    CountingPhotoSet.most = 0
    streamed = top_k(net, photos, "pool2", k=3, batch_size=4, show_progress=False)
    assert CountingPhotoSet.most <= 4                      # never more than a batch of photos read at once
    whole = top_k(net, load_images(files, SMALL), "pool2", k=3, batch_size=64, show_progress=False)
    np.testing.assert_array_equal(streamed.indices, whole.indices)
    np.testing.assert_allclose(streamed.values, whole.values, rtol=1e-6)
    np.testing.assert_allclose(streamed.projections, whole.projections, rtol=1e-5, atol=1e-7)


def test_bundled_photos_are_the_default_set():
    files = bundled_photos()
    names = " ".join(os.path.basename(f) for f in files)
    assert len(files) >= 8
    for want in ("astronaut", "chelsea", "coffee", "rocket", "china", "flower"):
        assert want in names


# --- the commands ---------------------------------------------------------------------------------------------

def test_predict_prints_top5(photo_run, capsys):
    from minicnn.train import load_run
    run, files = photo_run
    assert main(["predict", str(run), *files[:2]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 * 6
    net = load_run(run, load_data=False).net
    best = int(np.argmax(net.forward(load_images(files[:1], SMALL))[0]))
    assert out[0] == files[0]
    assert out[1].strip().startswith("1.") and out[1].endswith(f"{imagenet_class_names()[best]} ({best})")


def test_visualize_images_draws_every_figure(photo_run, tmp_path, capsys):
    run, files = photo_run
    out = tmp_path / "gallery"
    rc = main(["visualize", str(run), "--images", os.path.dirname(files[0]), "--out", str(out), "--no-progress",
               "--batch-size", "2"])
    assert rc == 0
    page = (out / "index.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    for item in ("filters", "activations", "topk_layer1", "topk_layer2", "projections", "saliency", "occlusion",
                 "invariance"):
        assert any(p.startswith(item) for p in pngs), item
        assert item in page
    assert all((out / p).stat().st_size > 1000 for p in pngs)
    assert set(PHOTO_ITEMS) == {"filters", "activations", "topk", "projections", "saliency", "occlusion",
                                "invariance"}


def test_visualize_an_imported_run_defaults_to_the_bundled_photos(photo_run, tmp_path, capsys):
    run, _ = photo_run
    out = tmp_path / "g"
    assert main(["visualize", str(run), "--what", "topk", "--out", str(out), "--no-progress"]) == 0
    page = (out / "index.html").read_text()
    assert f"{len(bundled_photos())} photos" in page and "astronaut" in page
    assert sorted(p.name for p in out.glob("*.png")) == ["topk_layer1_pool1.png", "topk_layer2_pool2.png"]


def test_visualize_images_errors(photo_run, tmp_path, capsys):
    run, files = photo_run
    assert main(["visualize", str(run), "--images", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["visualize", str(run), "--images", os.path.dirname(files[0]), "--what", "tsne"]) == 2
    assert "unknown figure" in capsys.readouterr().err


def test_evaluate_images_by_class_folder(photo_run, tmp_path, capsys):
    import shutil
    from minicnn.train import load_run
    run, files = photo_run
    net = load_run(run, load_data=False).net
    preds = net.forward(load_images(files, SMALL)).argmax(axis=1)
    names = imagenet_class_names()
    for i, (f, p) in enumerate(zip(files, preds)):        # two photos filed under their predicted class
        label = int(p) if i < 2 else (int(p) + 1) % 1000
        d = tmp_path / "val" / (names[label] if i % 2 else str(label))
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d)
    assert main(["evaluate", str(run), "--images", str(tmp_path / "val")]) == 0
    out = capsys.readouterr().out
    assert f"({len(files)} images)" in out and f"top-1 {100 * 2 / len(files):.2f}%" in out
    assert main(["evaluate", str(run)]) == 2
    assert "--images" in capsys.readouterr().err


def tiny_tv(num_classes=1000, input_shape=(3, 224, 224), seed=0, init="he"):
    """A tiny network for 224x224 photos: the import command's whole path at a fraction of AlexNet's 244 MB."""
    from minicnn.models import _Builder
    b = _Builder(input_shape, seed, init)
    b.conv(1, 4, 11, stride=4, pad=2).pool(1, 3, 2).conv(2, 5, 3, pad=1).pool(2, 3, 2)
    b.fc(8, num_classes, relu=False)
    return b.build("tiny_tv")


def test_import_command_without_torch(tmp_path, capsys, monkeypatch):
    """import, summary, predict from the command line on an .npz in torchvision's layout (a tiny architecture
    registered for the test; VGG-16 and AlexNet take the same path in test_weights_import.py)."""
    from minicnn import models
    from minicnn.weights.importer import ARCHITECTURES
    monkeypatch.setitem(models.MODELS, "tiny_tv", tiny_tv)
    monkeypatch.setitem(ARCHITECTURES, "tiny_tv", ("tiny_tv", {"torchvision": {
        "features.0": ("conv1", "conv"), "features.3": ("conv2", "conv"), "classifier.1": ("fc8", "linear")}},
        (3, 224, 224)))
    rng = np.random.default_rng(7)
    state = {"features.0.weight": rng.standard_normal((4, 3, 11, 11)).astype(np.float32) * 0.1,
             "features.0.bias": rng.uniform(0, 0.1, 4).astype(np.float32),
             "features.3.weight": rng.standard_normal((5, 4, 3, 3)).astype(np.float32) * 0.3,
             "features.3.bias": rng.uniform(0, 0.1, 5).astype(np.float32),
             "classifier.1.weight": rng.standard_normal((1000, 5 * 13 * 13)).astype(np.float32) * 0.1,
             "classifier.1.bias": rng.standard_normal(1000).astype(np.float32)}
    np.savez(tmp_path / "tiny.npz", **state)
    run = tmp_path / "run"
    assert main(["import", "tiny_tv", str(tmp_path / "tiny.npz"), "--out", str(run)]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["imported"]["arch"] == "tiny_tv" and info["imported"]["layout"] == "torchvision"
    assert info["preprocessing"]["resize"] == 256 and info["preprocessing"]["crop"] == 224
    assert info["preprocessing"]["mean"] == DEFAULT_PREPROCESSING["mean"]
    assert info["class_names"] == imagenet_class_names()
    capsys.readouterr()
    assert main(["summary", str(run)]) == 0
    n_params = sum(v.size for v in state.values())
    assert f"{n_params:,}" in capsys.readouterr().out
    from minicnn.train import load_run
    loaded = load_run(run, load_data=False)
    net = loaded.net
    assert loaded.meta["class_names"] == info["class_names"] and loaded.meta["input_shape"] == [3, 224, 224]
    np.testing.assert_array_equal(net["fc8"].params["W"], state["classifier.1.weight"].T)
    np.testing.assert_array_equal(net["conv1"].params["W"], state["features.0.weight"])
    photo = write_photos(tmp_path / "p", n=1)[0]
    best = int(np.argmax(net.forward(load_images([photo]))[0]))
    assert main(["predict", str(run), photo, "--top", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(f"{imagenet_class_names()[best]} ({best})")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_import_command_refuses_a_pickle_that_runs_code(tmp_path, capsys):
    marker, out = tmp_path / "pwned", tmp_path / "run"
    with zipfile.ZipFile(tmp_path / "vgg16-397923af.pth", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"features.0.weight": _RunsCode(marker)}, protocol=2))
    assert main(["import", "vgg16", str(tmp_path / "vgg16-397923af.pth"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and "vgg16-397923af.pth" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not out.exists()


def test_imported_network_never_overwrites_a_trained_run(photo_run, tmp_path):
    from minicnn.train import save_checkpoint
    trained = tmp_path / "trained"
    save_checkpoint(trained / "best.npz", small_net(), meta={"data": {"name": "shapes"}})
    before = (trained / "best.npz").read_bytes()
    with pytest.raises(ValueError, match="already holds a trained run"):
        write_photo_run(small_net(seed=1), trained, preprocessing=SMALL)
    assert (trained / "best.npz").read_bytes() == before
    run, _ = photo_run                     # an imported run may be re-imported in place
    write_photo_run(small_net(), run, info={"arch": "small"}, preprocessing=SMALL)


def test_import_command_misuse(tmp_path, capsys):
    assert main(["import", "resnet50", str(tmp_path / "x.pth"), "--out", str(tmp_path / "r")]) == 2
    assert "unknown architecture" in capsys.readouterr().err
    assert main(["import", "vgg16", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.pth" in capsys.readouterr().err
    assert main(["import", "vgg16"]) == 2        # argparse's error, as one line and a status (no SystemExit)
    assert "required" in capsys.readouterr().err
