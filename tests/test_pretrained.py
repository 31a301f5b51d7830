"""The network that ships with minicnn (issue 17): loads without training or data files, and its stated test
accuracy is reproduced on the shipped test images."""
import json
import os

import numpy as np
import pytest

import minicnn
from minicnn.pretrained import NAMES, load, package_file
from minicnn.train import evaluate


@pytest.fixture(scope="module")
def shipped():
    return minicnn.load_pretrained()


def test_shipped_files_are_package_data_and_small():
    for name in NAMES["fashion-zf"] + ("LICENSE-fashion-mnist", "RESULTS.json"):
        assert os.path.isfile(package_file(name)), name
    total = sum(os.path.getsize(package_file(n)) for n in NAMES["fashion-zf"])
    assert total < 10e6, total
    assert "Zalando" in open(package_file("LICENSE-fashion-mnist")).read()


def test_shipped_network_reproduces_its_stated_accuracy(shipped):
    # The figure stated in RESULTS.json (and README) for the 1,000 shipped test images, reproduced here from the
    # published uint8 images through Pretrained.prepare and the shipped weights.
    with open(package_file("RESULTS.json")) as f:
        stated = json.load(f)
    assert stated["subset_n"] == len(shipped.y_test) == 1000
    res = evaluate(shipped.net, shipped.splits().val)
    assert res["n"] == 1000
    assert abs(res["top1"] - stated["subset_top1"]) <= 1e-3       # at most one image may flip with BLAS rounding
    assert stated["test_top1"] > 0.85 and stated["test_n"] == 10000
    assert np.bincount(shipped.y_test).tolist() == [100] * 10     # class-balanced


def test_shipped_network_is_deeper_and_wider_than_the_demo_net_with_zf_conv1(shipped):
    # issue 17: deeper and wider than the demo's zfnet_small (width 16, five conv layers), 48-64 px input
    from minicnn.demo import DEMO_SETTINGS
    assert shipped.net.name == "zfnet_medium"
    convs = [l for l in shipped.net.layers if type(l).__name__ == "Conv2D"]
    assert len(convs) == 6 and convs[0].params["W"].shape == (32, 1, 7, 7) and convs[0].config["stride"] == (2, 2)
    assert convs[0].params["W"].shape[0] > DEMO_SETTINGS["width"]
    assert shipped.x_test.shape == (1000, 1, 64, 64) and shipped.x_test.dtype == np.float32
    assert shipped.meta["recipe"]["epochs"] >= 1 and shipped.evolution is not None


def test_shipped_conv1_filters_are_smooth_patterns_not_noise(shipped):
    # issue 17: conv1 shows edges, bars and blobs. Neighbouring taps of such a filter move together; in He's random
    # noise they do not (correlation ~0). The weights shipped before conv1 was started small had a median of 0.21.
    W = shipped.net["conv1"].params["W"][:, 0].astype(np.float64)
    a = W - W.mean(axis=(1, 2), keepdims=True)
    neighbours = ((a[:, :, 1:] * a[:, :, :-1]).sum((1, 2)) + (a[:, 1:] * a[:, :-1]).sum((1, 2))) / (
        2 * (a * a).sum((1, 2)))
    assert np.median(neighbours) > 0.5 and (neighbours > 0.4).mean() >= 0.9, np.round(np.sort(neighbours), 2)


def test_shipped_feature_evolution_shows_the_higher_layers_settling_later(shipped):
    # ZF Fig. 4's claim, on the shipped recording: from the random network (epoch 0) to the end, every epoch, with
    # the response profiles that ``settling`` needs; after one epoch the layers are ordered by depth at both ends.
    from minicnn.visualize import FeatureEvolution, settling
    evo = FeatureEvolution.load(shipped.evolution)
    epochs = list(range(shipped.meta["trained_epochs"] + 1))
    assert all(v["epochs"] == epochs and v["profiles"] is not None for v in evo.values())
    after_one = {layer: sims[1] for layer, (_, sims) in settling(evo).items()}
    layers = list(after_one)
    assert layers[0] == "pool1" and layers[-1] == "pool6"
    assert after_one["pool1"] > after_one["pool2"] > after_one["relu3"] > max(after_one["relu5"], after_one["pool6"])


def test_prepare_and_load_reject_bad_input(shipped):
    with pytest.raises(ValueError, match=r"expected images \(N, H, W\)"):
        shipped.prepare(np.zeros((2, 3, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="unknown network 'imagenet'"):
        load("imagenet")
    with pytest.raises(FileNotFoundError, match="minicnn.pretrained.build"):
        load("fashion-zf", folder=os.path.dirname(__file__))


def test_minicnn_gallery_draws_the_shipped_network(tmp_path, capsys):
    from minicnn.cli import main
    out = tmp_path / "g"
    assert main(["gallery", "--what", "filters,colour_filters,evolution", "--out", str(out), "--no-progress"]) == 0
    assert (out / "filters_conv1.png").stat().st_size > 1000 and (out / "evolution.png").exists()
    assert (out / "evolution_settling.png").stat().st_size > 1000
    # the colour network's conv1 filters beside the grey ones (Fashion-MNIST has no colour), in the default set too
    assert (out / "filters_conv1_photos.png").stat().st_size > 1000
    from minicnn.visualize.gallery import PRETRAINED_ITEMS
    assert PRETRAINED_ITEMS[:2] == ("filters", "colour_filters")
    html = (out / "index.html").read_text()
    assert "Fashion-MNIST" in html and "Look for oriented edge" in html and "Look for colour" in html
    assert main(["gallery", "--what", "nonsense", "--out", str(out)]) == 2
    assert "unknown gallery item" in capsys.readouterr().err


# --- the colour network (photos) ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photos():
    return minicnn.load_pretrained("photos")


def test_names_and_aliases_load_the_same_networks(shipped, photos):
    from minicnn.pretrained import canonical_name
    assert canonical_name("fashion") == "fashion-zf" and canonical_name("photos") == "photos-zf"
    assert shipped.name == "fashion-zf" and photos.name == "photos-zf"
    assert load("photos-zf").meta["test_top1"] == photos.meta["test_top1"]
    with pytest.raises(ValueError, match="unknown network 'colour'.*fashion, photos"):
        minicnn.load_pretrained("colour")
    for name in NAMES["photos-zf"] + ("RESULTS-photos.json",):
        assert os.path.isfile(package_file(name)), name
    assert os.path.getsize(package_file(NAMES["photos-zf"][0])) < 3.5e6


def test_photos_network_reproduces_its_stated_accuracy(photos):
    # RESULTS-photos.json states the accuracy on the shipped uint8 crops of the test split; reproduce it from them.
    with open(package_file("RESULTS-photos.json")) as f:
        stated = json.load(f)
    assert stated["command"] == "python -m minicnn.pretrained.build --network photos"
    assert stated["recipe"]["data"] == "photos" and stated["recipe"]["colour_jitter"] > 0
    res = evaluate(photos.net, photos.splits().val)
    assert res["n"] == stated["subset_n"] == len(photos.y_test)
    assert abs(res["top1"] - stated["subset_top1"]) <= 1.5 / res["n"]     # one crop may flip with BLAS rounding
    k = len(photos.class_names)
    assert stated["test_top1"] > 3 / k                                        # far above chance (1 / 21)
    assert np.bincount(photos.y_test, minlength=k).min() >= 10                # every photograph has test crops


def test_photos_network_shapes(photos):
    assert photos.net.name == "zfnet_small"
    convs = [l for l in photos.net.layers if type(l).__name__ == "Conv2D"]
    assert len(convs) == 5 and convs[0].params["W"].shape[1:] == (3, 5, 5)
    n = len(photos.y_test)
    assert photos.raw_test.shape == (n, 3, 48, 48) and photos.raw_test.dtype == np.uint8
    assert photos.x_test.shape == (n, 3, 48, 48) and photos.x_test.dtype == np.float32
    assert photos.mean.shape == (3, 48, 48)
    assert photos.net.forward(photos.x_test[:2]).shape == (2, len(photos.class_names))
    assert photos.data_name == "photos" and photos.evolution is not None
    with pytest.raises(ValueError, match=r"expected images \(N, 3, H, W\)"):
        photos.prepare(np.zeros((2, 48, 48), np.uint8))


def test_minicnn_gallery_network_photos(tmp_path):
    from minicnn.cli import main
    out = tmp_path / "p"
    assert main(["gallery", "--network", "photos", "--what", "filters,occlusion", "--out", str(out),
                 "--no-progress"]) == 0
    assert (out / "filters_conv1.png").stat().st_size > 1000 and not (out / "occlusion.png").exists()
    html = (out / "index.html").read_text()
    assert "colour photographs" in html and "Not drawn for the photos network" in html


def test_build_scales_first_filters_only_on_a_fresh_run():
    # the recipes start conv1 small (photos: a tenth of He's scale, fashion: a fiftieth); resuming must not shrink
    # the trained filters again
    from types import SimpleNamespace

    from minicnn.models import build
    from minicnn.pretrained.build import NETWORKS, ScaleFirstFilters
    assert NETWORKS["photos"]["conv1_init_scale"] == 0.1 and NETWORKS["fashion"]["conv1_init_scale"] == 0.02
    net = build("zfnet_small", num_classes=3, input_shape=(3, 16, 16), width=2)
    w = net["conv1"].params["W"].copy()
    w2 = net["conv2"].params["W"].copy()
    ScaleFirstFilters(0.1).on_train_begin(SimpleNamespace(epoch=0, net=net))
    np.testing.assert_allclose(net["conv1"].params["W"], 0.1 * w, rtol=1e-6)
    np.testing.assert_array_equal(net["conv2"].params["W"], w2)
    ScaleFirstFilters(0.1).on_train_begin(SimpleNamespace(epoch=4, net=net))
    np.testing.assert_allclose(net["conv1"].params["W"], 0.1 * w, rtol=1e-6)


def test_fashion_parts_scale_and_correspondence_on_ankle_boots(shipped):
    # ZF Table 1 on the shipped network: occluding the same part of 8 aligned ankle boots changes the top conv
    # layer's code more consistently than a random box on each boot (the baseline ZF's Fig. 8 draws per image)
    from minicnn.data import FASHION_PARTS, fashion_parts
    from minicnn.visualize.correspondence import correspondence
    from minicnn.visualize.gallery import OBJECT_THRESHOLD, feature_layers
    assert fashion_parts(28, "Pullover") == FASHION_PARTS["Pullover"]
    H = shipped.x_test.shape[2]
    parts = fashion_parts(H)
    assert all(0 <= r0 < r1 <= H and 0 <= c0 < c1 <= H for r0, r1, c0, c1 in parts.values())
    with pytest.raises(ValueError, match="no parts for class 'Bag'"):
        fashion_parts(32, "Bag")
    boots = np.flatnonzero(shipped.y_test == shipped.class_names.index("Ankle boot"))[:8]
    x = shipped.x_test[boots]
    on = (x + shipped.mean[None]).mean(axis=1) > OBJECT_THRESHOLD
    top = feature_layers(shipped.net)[-1]
    res = correspondence(shipped.net, x, parts, [top], n_random=4, fill=-shipped.mean, random="per_image",
                         random_on=on)
    n_parts = len(parts)
    assert res.mean[:n_parts, 0].max() < res.mean[n_parts:, 0].min()
