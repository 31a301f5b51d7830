"""The gallery: PNGs + index.html, written atomically; the ``minicnn visualize`` command; filter plots."""
import os

import pytest

from minicnn import Linear, Sequential
from minicnn.cli import main
from minicnn.optim import SGD
from minicnn.train import Trainer
from minicnn.visualize import plot_filters, plots, write_gallery
from minicnn.visualize.gallery import feature_layers

from test_visualize_analyses import small_net, synthetic_splits


@pytest.fixture(scope="module")
def trained():
    splits = synthetic_splits()
    net = small_net()
    Trainer(net, splits, SGD(net, lr=0.05), batch_size=16, epochs=2, progress=False, verbose=False).fit()
    return net, splits


def test_feature_layers_pick_one_rectified_layer_per_conv_block(trained):
    net, _ = trained
    assert feature_layers(net) == ["pool1", "pool2"]


def test_gallery_writes_every_figure_and_an_index(trained, tmp_path):
    net, splits = trained
    out = tmp_path / "gallery"
    files = write_gallery(net, splits, out, n_examples=3)
    names = sorted(os.listdir(out))
    assert "index.html" in names and files[-1].endswith("index.html")
    for expected in ("filters_conv1.png", "topk_layer1_pool1.png", "topk_layer2_pool2.png", "saliency.png",
                     "occlusion.png", "invariance.png", "correspondence.png", "activations_pool1.png"):
        assert expected in names
        assert (out / expected).stat().st_size > 1000
    html = (out / "index.html").read_text()
    assert "<img src='occlusion.png'" in html and "Feature evolution" in html     # evolution listed as not drawn
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []          # no temporary directory left


def test_a_failing_figure_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    net, splits = trained

    def boom(*args, **kwargs):
        raise RuntimeError("plotting failed")
    monkeypatch.setattr(plots, "plot_occlusion", boom)
    with pytest.raises(RuntimeError, match="plotting failed"):
        write_gallery(net, splits, tmp_path / "fresh", ["filters", "topk", "occlusion", "invariance"])
    assert os.listdir(tmp_path) == []                    # neither the gallery nor its temporary directory
    # an existing gallery survives a failed rewrite untouched
    old = tmp_path / "old"
    write_gallery(net, splits, old, ["filters"])
    before = sorted(os.listdir(old))
    with pytest.raises(RuntimeError):
        write_gallery(net, splits, old, ["filters", "occlusion"])
    assert sorted(os.listdir(old)) == before and sorted(os.listdir(tmp_path)) == ["old"]


def test_gallery_rejects_unknown_items(trained, tmp_path):
    net, splits = trained
    with pytest.raises(ValueError, match="available: filters, activations, topk"):
        write_gallery(net, splits, tmp_path / "g", ["filters", "deepdream"])
    assert os.listdir(tmp_path) == []


def test_plot_filters_needs_a_conv_layer(trained):
    net, _ = trained
    assert plot_filters(net, "conv2") is not None
    with pytest.raises(ValueError, match="conv layers: conv1, conv2"):
        plot_filters(net, "fc1")
    with pytest.raises(ValueError, match="conv layers: none"):
        plot_filters(Sequential([Linear(3, 2)]), "fc1")


def test_cli_visualize_writes_the_gallery_of_a_saved_run(tmp_path, monkeypatch, capsys):
    splits = synthetic_splits()
    net = small_net()
    run = tmp_path / "runs" / "bars"
    Trainer(net, splits, SGD(net, lr=0.05), batch_size=16, epochs=1, progress=False, verbose=False,
            out_dir=str(run)).fit()
    # load_run rebuilds the data split by name; serve the synthetic one
    monkeypatch.setattr("minicnn.train.load_data_for", lambda meta, root=None: splits)
    assert main(["visualize", str(run), "--what", "filters,saliency", "--no-progress"]) == 0
    assert sorted(os.listdir(run / "gallery")) == ["filters_conv1.png", "index.html", "saliency.png"]
    assert "wrote 3 files" in capsys.readouterr().out
    assert main(["visualize", str(run), "--what", "filters,nonsense"]) == 2
    assert "available: filters" in capsys.readouterr().err


def test_demo_records_feature_evolution_and_ends_with_the_gallery(tmp_path):
    from minicnn.demo import run_demo
    out = tmp_path / "demo"
    run_demo(str(out), epochs=2, width=4, image_size=12, n_samples=200, progress=False, verbose=False)
    from minicnn.visualize import FeatureEvolution
    evo = FeatureEvolution.load(str(out / "evolution.npz"))
    assert all(v["epochs"] == [0, 1, 2] and v["profiles"].shape[0] == 3 for v in evo.values())
    names = os.listdir(out / "gallery")
    for expected in ("index.html", "evolution.png", "evolution_settling.png", "filters_conv1.png", "topk_layer3_relu3.png", "occlusion.png",
                     "saliency.png", "invariance.png"):
        assert expected in names
    assert "gallery/index.html" in (out / "summary.txt").read_text()
