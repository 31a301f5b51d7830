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


def test_shipped_network_is_a_five_layer_zf_network(shipped):
    assert shipped.net.name == "zfnet_small"
    convs = [l for l in shipped.net.layers if type(l).__name__ == "Conv2D"]
    assert len(convs) == 5 and convs[0].params["W"].shape == (32, 1, 5, 5)
    assert shipped.x_test.shape == (1000, 1, 32, 32) and shipped.x_test.dtype == np.float32
    assert shipped.meta["recipe"]["epochs"] >= 1 and shipped.evolution is not None


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
    assert main(["gallery", "--what", "filters,evolution", "--out", str(out), "--no-progress"]) == 0
    assert (out / "filters_conv1.png").stat().st_size > 1000 and (out / "evolution.png").exists()
    html = (out / "index.html").read_text()
    assert "Fashion-MNIST" in html and "Look for oriented edge" in html
    assert main(["gallery", "--what", "nonsense", "--out", str(out)]) == 2
    assert "unknown gallery item" in capsys.readouterr().err
