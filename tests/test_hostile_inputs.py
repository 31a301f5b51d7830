"""Nonsense is refused by name (layer or argument, expected and actual value); empty batches are valid input for
every layer and the whole network; losses refuse them; loaders refuse labels and sizes that do not fit."""
import math
import pickle
import warnings

import numpy as np
import pytest

from minicnn import layers as L
from minicnn.data import ArrayDataset, Splits, load_dataset, read_cifar10, read_mnist
from minicnn.models import MODELS, build
from minicnn.net import Sequential
from minicnn.ops import softmax_cross_entropy
from minicnn import cpu_path
from minicnn.optim import SGD
from minicnn.schedule import ReduceOnPlateau
from minicnn.train import Trainer, evaluate, predict_logits

from test_data_loaders import mnist_arrays, write_cifar, write_mnist
from test_train import synthetic_splits, tiny_net


# --- layer and model construction ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: L.Linear(0, 5, name="fc"), r"Linear 'fc': in_features must be an integer >= 1, got 0"),
    (lambda: L.Linear(5, 0, name="fc"), r"Linear 'fc': out_features must be an integer >= 1, got 0"),
    (lambda: L.Linear(2.5, 3, name="fc"), r"in_features.*2\.5"),
    (lambda: L.Linear(-3, 3), r"in_features.*-3"),
    (lambda: L.Conv2D(0, 4, 3, name="c"), r"Conv2D 'c': in_channels must be an integer >= 1, got 0"),
    (lambda: L.Conv2D(3, 1.5, 3, name="c"), r"out_channels.*1\.5"),
    (lambda: L.BatchNorm(0, name="bn"), r"BatchNorm 'bn': num_features.*0"),
    (lambda: L.BatchNorm(3, eps=0.0, name="bn"), r"eps must be > 0"),
    (lambda: L.BatchNorm(3, momentum=math.nan, name="bn"), r"momentum.*nan"),
    (lambda: L.LRN(k=math.nan, name="n"), r"LRN 'n': k must be a finite number, got nan"),
    (lambda: L.LRN(beta=math.inf, name="n"), r"beta.*inf"),
    (lambda: L.Dropout("half", name="d"), r"Dropout 'd'.*'half'"),
    (lambda: L.Conv2D(1, 1, 3, init=math.nan), r"standard deviation.*nan"),
    (lambda: L.Linear(2, 2, init=-1.0), r"standard deviation.*-1"),
])
def test_layer_constructors_refuse_nonsense(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 0}, r"num_classes must be an integer >= 1, got 0"),
    ({"num_classes": -1}, r"num_classes.*-1"),
    ({"num_classes": 2.5}, r"num_classes.*2\.5"),
    ({"input_shape": (32, 32)}, r"input_shape must be three positive integers \(C, H, W\), got \(32, 32\)"),
    ({"input_shape": (3, 0, 32)}, r"input_shape.*\(3, 0, 32\)"),
    ({"input_shape": 32}, r"input_shape.*32"),
])
def test_models_refuse_nonsense_by_argument(model, kwargs, match):
    with pytest.raises(ValueError, match=f"{model}: {match}"):
        build(model, init="zeros", **kwargs)


# --- empty batches (N = 0) -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, shape", [("zfnet_small", (3, 32, 32)), ("lenet5", (1, 32, 32))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("readable", [False, True])
def test_forward_of_an_empty_batch_is_empty(model, shape, dtype, readable):
    net = build(model, input_shape=shape, num_classes=7).astype(dtype)
    x = np.zeros((0, *shape), dtype)
    for train in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if readable:
                with cpu_path("readable"):
                    y = net.forward(x, train=train)
            else:
                y = net.forward(x, train=train)
        assert y.shape == (0, 7) and y.dtype == dtype
    assert predict_logits(build(model, input_shape=shape, num_classes=7), np.zeros((0, *shape), np.float32)).shape \
        == (0, 7)


def test_every_layer_forwards_an_empty_batch():
    cases = [(L.Conv2D(2, 3, 3, pad=1), (0, 2, 5, 5), (0, 3, 5, 5)), (L.Linear(4, 3), (0, 4), (0, 3)),
             (L.ReLU(), (0, 2, 3, 3), (0, 2, 3, 3)), (L.MaxPool2D(2), (0, 2, 4, 4), (0, 2, 2, 2)),
             (L.AvgPool2D(2), (0, 2, 4, 4), (0, 2, 2, 2)), (L.LRN(), (0, 6, 3, 3), (0, 6, 3, 3)),
             (L.Dropout(0.5), (0, 4), (0, 4)), (L.Flatten(), (0, 2, 3, 3), (0, 18)),
             (L.BatchNorm(2), (0, 2, 3, 3), (0, 2, 3, 3)), (L.BatchNorm(4), (0, 4), (0, 4))]
    for layer, shape, out in cases:
        for train in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                y = layer.forward(np.zeros(shape, np.float32), train=train)
            assert y.shape == out, (layer, train)


def test_batch_norm_running_statistics_ignore_an_empty_batch():
    bn = L.BatchNorm(3)
    bn.buffers["running_mean"][:] = [0.5, -1.0, 2.0]
    before = {k: v.copy() for k, v in bn.buffers.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn.forward(np.zeros((0, 3, 4, 4), np.float32), train=True)
    for key, value in bn.buffers.items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("shape", [(1, 3, 2, 2), (1, 3, 1, 3), (2, 3, 1, 1), (5, 3, 2, 1)])
def test_batch_norm_running_variance_is_the_unbiased_batch_variance(shape):
    """Including batch size 1, where the statistics come from the spatial positions alone."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float64)
    bn = L.BatchNorm(3, momentum=0.25).astype(np.float64)
    bn.buffers["running_var"][:] = [1.0, 2.0, 0.5]
    bn.buffers["running_mean"][:] = [0.1, 0.2, 0.3]
    y = bn.forward(x, train=True)
    flat = x.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.75 * np.array([1.0, 2.0, 0.5]) + 0.25 * flat.var(1, ddof=1))
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.75 * np.array([0.1, 0.2, 0.3]) + 0.25 * flat.mean(1))
    # training normalises with the biased batch variance (the statistics of this batch, not an estimate)
    expected = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.transpose(1, 0, 2, 3).reshape(3, -1), expected, rtol=1e-10)


def test_batch_norm_refuses_to_train_on_one_value_per_feature():
    """N = 1 of (N, D): the batch variance is 0 (the output would be beta whatever the input) and the running
    variance would be pulled towards 0. Refused by name, leaving the running statistics as they were."""
    bn = L.BatchNorm(4)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    with pytest.raises(ValueError, match=r"BatchNorm: training needs more than one value per channel.*\(1, 4\)"):
        bn.forward(np.arange(4, dtype=np.float32)[None], train=True)
    for key, value in bn.buffers.items():
        np.testing.assert_array_equal(value, before[key])
    assert bn.forward(np.arange(4, dtype=np.float32)[None], train=False).shape == (1, 4)   # evaluation is fine


def test_loss_refuses_an_empty_batch_and_half_precision():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"softmax_cross_entropy: the batch is empty \(logits of shape \(0, 3\)\)"):
            softmax_cross_entropy(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))
    with pytest.raises(TypeError, match="float32 or float64, got dtype float16"):
        softmax_cross_entropy(np.zeros((2, 3), np.float16), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="no classes"):
        softmax_cross_entropy(np.zeros((2, 0), np.float32), np.zeros(2, np.int64))


def test_evaluate_an_empty_split():
    ds = ArrayDataset(np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64))
    res = evaluate(tiny_net(), ds)
    assert res["n"] == 0 and math.isnan(res["top1"])


# --- training data -------------------------------------------------------------------------------------------------

def test_trainer_refuses_nan_images_before_training():
    splits = synthetic_splits()
    splits.train.x[5, 0, 2, 2] = np.nan
    net = tiny_net()
    before = net.state_dict()
    with pytest.raises(ValueError, match=r"1 train image\(s\) contain NaN or inf \(the first is image 5\)"):
        Trainer(net, splits, SGD(net), epochs=1, progress=False, verbose=False).fit()
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_plateau_schedule_without_validation_images_is_refused():
    s = synthetic_splits()
    empty = ArrayDataset(np.zeros((0, *s.train.x.shape[1:]), np.float32), np.zeros(0, np.int64))
    splits = Splits(train=s.train, val=empty, test=s.test, class_names=s.class_names, mean=s.mean, name="x",
                    hflip=True)
    net = tiny_net()
    opt = SGD(net)
    with pytest.raises(ValueError, match="validation set is empty"):
        Trainer(net, splits, opt, schedule=ReduceOnPlateau(opt), epochs=1, progress=False, verbose=False).fit()


# --- loaders -------------------------------------------------------------------------------------------------------

def test_mnist_labels_outside_the_classes(tmp_path):
    xtr, ytr, xte, yte = mnist_arrays()
    ytr = ytr.copy()
    ytr[7] = 10
    write_mnist(tmp_path / "m", (xtr, ytr, xte, yte))
    with pytest.raises(ValueError, match=r"train labels must lie in 0\.\.9, but label 7 is 10 \(train-labels"):
        read_mnist(tmp_path / "m")
    yte = yte.copy()
    yte[0] = 255
    write_mnist(tmp_path / "f", (xtr, np.arange(len(xtr), dtype=np.uint8) % 10, xte, yte))
    with pytest.raises(ValueError, match=r"test labels.*label 0 is 255"):
        load_dataset("fashion-mnist", root=tmp_path / "f")


def test_mnist_train_and_test_images_of_different_sizes(tmp_path):
    xtr, ytr, xte, yte = mnist_arrays()
    write_mnist(tmp_path, (xtr, ytr, xte[:, :20, :20], yte))
    with pytest.raises(ValueError, match=r"train images are 28x28, test images 20x20"):
        load_dataset("mnist", root=tmp_path)


def test_cifar_float_labels_are_not_truncated(tmp_path):
    write_cifar(tmp_path, n_per_batch=10, batches=1)
    with open(tmp_path / "data_batch_1", "rb") as f:
        batch = pickle.load(f)
    batch[b"labels"] = [float(v) for v in batch[b"labels"]]          # whole numbers: the same labels
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(batch, f)
    expected = read_cifar10(tmp_path)[1]
    batch[b"labels"][3] = 2.7
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(ValueError, match=r"data_batch_1.*labels must be integers, but label 3 is 2\.7"):
        read_cifar10(tmp_path)
    np.testing.assert_array_equal(expected, np.arange(10) % 10)
    batch[b"labels"][3] = "cat"
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(ValueError, match=r"data_batch_1.*integers"):
        read_cifar10(tmp_path)


# --- further hostile input through the public API --------------------------------------------------------------------

def test_trainer_refuses_an_optimizer_of_another_network():
    splits, net, other = synthetic_splits(), tiny_net(0), tiny_net(1)
    with pytest.raises(ValueError, match="the optimizer updates the network .*another object"):
        Trainer(net, splits, SGD(other), epochs=1, progress=False, verbose=False)
    opt = SGD(net)
    with pytest.raises(ValueError, match="schedule drives the learning rate of another optimizer"):
        Trainer(net, splits, opt, schedule=ReduceOnPlateau(SGD(net)), epochs=1, progress=False, verbose=False)
    with pytest.raises(TypeError, match="optimizer must be an optimiser"):
        Trainer(net, splits, None, epochs=1, progress=False, verbose=False)


def test_network_dtype_and_architecture_errors():
    net = tiny_net()
    with pytest.raises(TypeError, match=r"astype: parameters are float32 or float64, got int32"):
        net.astype(np.int32)
    with pytest.raises(TypeError, match="float16"):
        net.astype(np.float16)
    assert net["conv1"].params["W"].dtype == np.float32
    with pytest.raises(ValueError, match=r"architecture entry 1 must be a dict with a 'type'"):
        Sequential.from_config([{"type": "ReLU", "name": "r"}, {"name": "x"}])
    with pytest.raises(ValueError, match=r"architecture entry 0"):
        Sequential.from_config(["ReLU"])


def test_metric_and_evaluation_arguments():
    from minicnn.train import topk_correct
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"k must be an integer >= 1, got 0"):
        topk_correct(logits, np.array([0, 1]), 0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got range \[0, 3\]"):
        topk_correct(logits, np.array([0, 3]), 1)
    splits = synthetic_splits()
    with pytest.raises(ValueError, match="crop_pad must be an integer >= 0, got -1"):
        evaluate(tiny_net(), splits.test, ten_crop=True, crop_pad=-1)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        evaluate(tiny_net(), splits.test, batch_size=0)


def test_data_arguments():
    from minicnn.data import stratified_subset
    with pytest.raises(ValueError, match=r"stratified_subset: n must be >= 0, got -1"):
        stratified_subset(np.arange(10), -1)
    with pytest.raises(ValueError, match=r"seed must be >= 0.*-1"):
        load_dataset("digits", seed=-1)


def test_a_damaged_history_json_does_not_make_the_run_unusable(tmp_path):
    from test_train import make_trainer
    from minicnn.train import load_run
    trainer = make_trainer(None, epochs=1)
    trainer.fit()
    trainer.save(tmp_path / "best.npz")
    (tmp_path / "history.json").write_text('[{"epoch": 1, "lr"')
    with pytest.warns(UserWarning, match="history.json is not valid JSON"):
        run = load_run(tmp_path, load_data=False)
    assert [row["epoch"] for row in run.history] == [1]


def test_flatten_backward_names_the_expected_gradient_shape():
    flat = L.Flatten(name="flatten")
    flat.forward(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"Flatten 'flatten': upstream gradient must have shape \(2, 48\), got \(2, 47\)"):
        flat.backward(np.zeros((2, 47), np.float32))
    assert flat.backward(np.ones((2, 48), np.float32)).shape == (2, 3, 4, 4)


def test_relative_error_never_passes_a_gradient_that_is_not_a_number():
    from minicnn.gradcheck import relative_error
    for a, n in (([0.0, 0.0], [np.nan, 0.0]), ([np.nan, 0.0], [0.0, 0.0]), ([1.0, 2.0], [1.0, np.inf]),
                 ([np.inf], [np.inf])):
        err = relative_error(np.array(a), np.array(n))
        assert not err <= 1e-6, (a, n, err)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_numpy_scalars_are_numbers_too():
    splits, net = synthetic_splits(n=24), tiny_net()
    trainer = Trainer(net, splits, SGD(net, lr=np.float32(0.05)), batch_size=np.int64(8), epochs=np.int32(1),
                      progress=False, verbose=False)
    trainer.fit()
    assert trainer.batch_size == 8 and type(trainer.epochs) is int


def test_make_splits_refuses_labels_without_a_class_name():
    from minicnn.data import make_splits
    x = np.zeros((6, 1, 4, 4), np.float32)
    y = np.array([0, 1, 2, 0, 1, 3])
    with pytest.raises(ValueError, match=r"test labels in \[3, 3\], outside 0\.\.2 for its 3 class names"):
        make_splits(x, y, train_idx=[0, 1, 2], val_idx=[3, 4], test_idx=[5], class_names=["a", "b", "c"], name="d",
                    hflip=False)


def test_mnist_images_without_pixels(tmp_path):
    xtr, ytr, xte, yte = mnist_arrays()
    write_mnist(tmp_path, (xtr[:, :0, :], ytr, xte[:, :0, :], yte))
    with pytest.raises(ValueError, match="have no pixels"):
        read_mnist(tmp_path)


def test_trainer_refuses_empty_training_sets_and_float_labels():
    from types import SimpleNamespace
    s = synthetic_splits(n=24)
    net = tiny_net()
    empty = ArrayDataset(np.zeros((0, *s.train.x.shape[1:]), np.float32), np.zeros(0, np.int64))
    splits = Splits(train=empty, val=s.val, test=s.test, class_names=s.class_names, mean=s.mean, name="x", hflip=True)
    with pytest.raises(ValueError, match=r"no training batch \(train images: 0"):
        Trainer(net, splits, SGD(net), epochs=1, progress=False, verbose=False).fit()
    with pytest.raises(ValueError, match=r"no training batch \(train images: 12, batch_size 16, drop_last=True\)"):
        Trainer(net, s, SGD(net), batch_size=16, epochs=1, drop_last=True, progress=False, verbose=False).fit()
    floats = SimpleNamespace(train=SimpleNamespace(x=s.train.x, y=s.train.y + 0.7), val=s.val, mean=s.mean, name="f")
    before = net.state_dict()
    with pytest.raises(TypeError, match="train labels must be integers, got dtype float64"):
        Trainer(net, floats, SGD(net), epochs=1, progress=False, verbose=False).fit()
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
