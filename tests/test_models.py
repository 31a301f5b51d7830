"""The model zoo reproduces the seeds' figures; the summary prints them."""
import numpy as np
import pytest

from minicnn import models
from minicnn.cli import main


@pytest.fixture(scope="module")
def alexnet_rows():
    return {r.name: r for r in models.alexnet().layer_info((3, 227, 227))}


def test_alexnet_conv1(alexnet_rows):
    r = alexnet_rows["conv1"]
    assert r.output_shape == (96, 55, 55)
    assert r.params == 34_944 and r.macs == 105_415_200
    assert r.rf == (11, 11) and r.jump == (4, 4)


def test_alexnet_totals(alexnet_rows):
    assert sum(r.params for r in alexnet_rows.values()) == 62_378_344
    assert alexnet_rows["pool5"].output_shape == (256, 6, 6)


def test_zfnet_fig3_shapes():
    rows = {r.name: r for r in models.zfnet().layer_info((3, 224, 224))}
    expected = {"conv1": (96, 110, 110), "pool1": (96, 55, 55), "conv2": (256, 26, 26), "pool2": (256, 13, 13),
                "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
                "flatten": (9216,), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)}
    for name, shape in expected.items():
        assert rows[name].output_shape == shape, name
    assert rows["fc6"].params == 9216 * 4096 + 4096


def test_vgg16_parameters_and_macs():
    rows = models.vgg16().layer_info((3, 224, 224))
    assert sum(r.params for r in rows) == 138_357_544
    assert sum(r.macs for r in rows) / 1e9 == pytest.approx(15.5, abs=0.05)


def test_lenet5_and_input_size_argument():
    assert models.lenet5().layer_info((1, 32, 32))[-1].output_shape == (10,)
    net = models.lenet5(num_classes=3, input_shape=(1, 28, 28))
    assert net["fc3"].config["in_features"] == 16 * 4 * 4
    y = net.forward(np.zeros((2, 1, 28, 28), np.float32))
    assert y.shape == (2, 3) and y.dtype == np.float32


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 32), (3, 64, 64), (1, 28, 28)])
def test_zfnet_small_runs_on_small_inputs(shape):
    net = models.zfnet_small(num_classes=5, input_shape=shape)
    assert net.forward(np.zeros((2,) + shape, np.float32)).shape == (2, 5)


def test_receptive_field_recurrence():
    rows = {r.name: r for r in models.zfnet().layer_info((3, 224, 224))}
    # conv1 7/2 -> 7, jump 2; pool1 3/2 -> 7 + 2*2 = 11, jump 4; conv2 5/2 -> 11 + 4*4 = 27, jump 8
    assert (rows["conv1"].rf, rows["pool1"].rf, rows["conv2"].rf) == ((7, 7), (11, 11), (27, 27))
    assert rows["conv2"].jump == (8, 8)


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match="available: lenet5, alexnet"):
        models.build("resnet")


def test_summary_command_prints_seed_figures(capsys):
    assert main(["summary", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "96x55x55" in out and "34,944" in out and "105,415,200" in out and "62,378,344" in out
    assert main(["summary", "lenet5", "--input", "1,28,28", "--classes", "4"]) == 0
    assert "16x4x4" in capsys.readouterr().out


def test_summary_command_rejects_small_input(capsys):
    assert main(["summary", "alexnet", "--input", "3,20,20"]) == 2
    err = capsys.readouterr().err
    assert "pool2" in err and "empty" in err


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "MaxPool2D" in out and "LRN" in out


def test_zfnet_medium_shapes_depth_and_cost():
    """The docstring's table: ZF's conv1 7x7/2 on 64x64, six convolutions, pool6 at 4x4; it is deeper than zfnet_small
    and, at width 32, costs less than 1.3x zfnet_small's 32x32 network."""
    rows = {r.name: r for r in models.zfnet_medium(input_shape=(1, 64, 64)).layer_info((1, 64, 64))}
    expected = {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (64, 16, 16), "pool2": (64, 8, 8),
                "conv3": (96, 8, 8), "conv5": (96, 8, 8), "conv6": (64, 8, 8), "pool6": (64, 4, 4), "fc7": (256,),
                "fc9": (10,)}
    for name, shape in expected.items():
        assert rows[name].output_shape == shape, name
    assert rows["conv1"].rf == (7, 7) and rows["relu3"].rf == (51, 51) and rows["pool6"].rf == (115, 115)
    small = models.zfnet_small(num_classes=10, input_shape=(1, 32, 32), width=32).layer_info((1, 32, 32))
    n_conv = lambda rs: sum(r.type == "Conv2D" for r in rs)  # noqa: E731
    assert n_conv(rows.values()) == n_conv(small) + 1 == 6
    assert sum(r.macs for r in rows.values()) < 1.3 * sum(r.macs for r in small)


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 48, 48)])
def test_zfnet_medium_runs(shape):
    net = models.zfnet_medium(num_classes=4, input_shape=shape, width=4, dropout=0.5)
    assert "drop7" in [l.name for l in net.layers]
    assert net.forward(np.zeros((2,) + shape, np.float32)).shape == (2, 4)


def test_summary_command_knows_zfnet_medium(capsys):
    assert main(["summary", "zfnet_medium"]) == 0
    out = capsys.readouterr().out
    assert "zfnet_medium: input (1, 64, 64)" in out and "conv6" in out and "64x4x4" in out
