"""Visualisations checked against what their docstrings say they compute (not only their shapes): each test
builds the documented quantity by hand from forward and backward passes and compares."""
import os

import numpy as np
import pytest

from minicnn import LRN, Dropout
from minicnn.gradcheck import distinct_values
from minicnn.visualize import correspondence, invariance, project, saliency, transform
from minicnn.visualize.project import input_gradient

from test_visualize_analyses import small_net
from test_visualize_project import tiny_net


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def manual_projection(net, x, layer, channel, rule, skip):
    """Forward x, keep the strongest activation of ``channel`` at ``layer``, walk the layers below it backwards
    with ``rule``, treating the layer types in ``skip`` as the identity."""
    a = net.forward(x, until=layer)
    dy = np.zeros_like(a)
    r, c = np.unravel_index(np.argmax(a[0, channel]), a.shape[2:])
    dy[0, channel, r, c] = a[0, channel, r, c]
    for i in range(net.index(layer), -1, -1):
        if not isinstance(net.layers[i], skip):
            dy = net.layers[i].backward(dy, rule=rule, param_grads=False)
    return dy


@pytest.mark.parametrize("layer", ["conv2", "relu2"])
def test_deconvnet_passes_lrn_as_the_identity_by_default(layer):
    """Zeiler & Fergus's projection (and ARCHITECTURE.md section 5): LRN is the identity on the way down, by default."""
    rng = np.random.default_rng(11)
    net = tiny_net(lrn=True)              # LRN(n=3, k=1, alpha=0.5): strong enough that its backward shows
    x = distinct_values((1, 1, 9, 9), rng, spacing=0.05)
    got = project(net, x[0], layer, 2, rule="deconvnet")
    identity = manual_projection(net, x, layer, 2, "deconvnet", (LRN, Dropout))[0]
    through = manual_projection(net, x, layer, 2, "deconvnet", (Dropout,))[0]
    assert np.abs(identity - through).max() > 1e-3 * np.abs(identity).max(), "LRN must matter for this test"
    np.testing.assert_allclose(got, identity, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(project(net, x[0], layer, 2, rule="deconvnet", through_lrn=True), through,
                               rtol=1e-12, atol=1e-14)
    # the gradient rules go through LRN's true backward by default (so backprop is exactly the gradient)
    np.testing.assert_allclose(project(net, x[0], layer, 2, rule="guided"),
                               manual_projection(net, x, layer, 2, "guided", (Dropout,))[0], rtol=1e-12, atol=1e-14)


def test_saliency_is_the_channel_max_of_the_absolute_backward():
    rng = np.random.default_rng(12)
    net = small_net(C=3).astype(np.float64)               # colour: the max over channels must see |.| first
    x = distinct_values((2, 3, 12, 12), rng)
    logits = net.forward(x)
    dy = np.zeros_like(logits)
    dy[[0, 1], [2, 1]] = 1.0
    dx = net.backward(dy, param_grads=False)
    assert (np.abs(dx).max(axis=1) != np.abs(dx.max(axis=1))).any(), "needs pixels whose largest |gradient| is < 0"
    np.testing.assert_allclose(saliency(net, x, [2, 1]), np.abs(dx).max(axis=1), rtol=1e-12)
    grad, target = input_gradient(net, x)                        # default target: the predicted class
    assert target.tolist() == logits.argmax(1).tolist()


def test_invariance_is_the_distance_and_probability_of_each_transformed_image():
    rng = np.random.default_rng(13)
    net = small_net().astype(np.float64)
    x = rng.standard_normal((3, 1, 12, 12))
    labels = np.array([2, 0, 1])
    amounts = [0, 2, -3]
    res = invariance(net, x, labels, "translate", amounts=amounts, layers=["relu1", "fc1"])
    plain = softmax(net.forward(x))
    np.testing.assert_allclose(res.probability[:, 0], plain[np.arange(3), labels], rtol=1e-10)
    for i in range(3):
        for t, amount in enumerate(amounts):
            moved = transform(x[i], "translate", amount)[None]
            np.testing.assert_allclose(res.examples[i, t], moved[0], rtol=1e-6, atol=1e-6)
            p = softmax(net.forward(moved))[0, labels[i]]
            assert res.probability[i, t] == pytest.approx(p, rel=1e-10)
            for layer in ("relu1", "fc1"):
                d = np.linalg.norm(net.forward(moved, until=layer) - net.forward(x[i:i + 1], until=layer))
                assert res.distances[layer][i, t] == pytest.approx(d, rel=1e-9, abs=1e-12)
    assert res.probability[:, 1:].std() > 0 and (res.distances["relu1"][:, 1:] > 0).all()


def test_correspondence_is_the_mean_pairwise_sign_disagreement_of_the_changes():
    rng = np.random.default_rng(14)
    net = small_net().astype(np.float64)
    x = rng.standard_normal((3, 1, 12, 12))
    box = (3, 7, 2, 6)
    res = correspondence(net, x, {"part": box}, ["relu2"], n_random=1, fill=0.25)
    occluded = x.copy()
    occluded[:, :, 3:7, 2:6] = 0.25
    eps = (net.forward(occluded, until="relu2") - net.forward(x, until="relu2")).reshape(3, -1)
    s = np.sign(eps)
    pairs = [np.mean(s[i] != s[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert res.rows[0] == "part" and res.pairs[0] == 3
    assert res.mean[0, 0] == pytest.approx(np.mean(pairs), rel=1e-12)
    assert res.std[0, 0] == pytest.approx(np.std(pairs), rel=1e-12, abs=1e-15)
    assert 0 < res.mean[0, 0] < 1


def test_the_gallery_never_replaces_a_directory_that_is_not_a_gallery(tmp_path):
    from minicnn.train import save_checkpoint
    from minicnn.visualize import write_gallery
    from test_visualize_analyses import synthetic_splits
    splits, net = synthetic_splits(), small_net()
    run = tmp_path / "run"
    save_checkpoint(run / "best.npz", net)
    (run / "run.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match=r"exists and is not a minicnn gallery \(it holds best\.npz"):
        write_gallery(net, splits, run, ["filters"])
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before            # the run survives
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ValueError, match="is an existing file"):
        write_gallery(net, splits, notes, ["filters"])
    gallery = tmp_path / "gallery"
    write_gallery(net, splits, gallery, ["filters"])
    (gallery / "stale.png").write_bytes(b"from an earlier gallery")
    write_gallery(net, splits, gallery, ["filters"])                             # an earlier gallery is replaced
    assert sorted(os.listdir(gallery)) == ["filters_conv1.png", "index.html"]
    (tmp_path / "empty").mkdir()
    write_gallery(net, splits, tmp_path / "empty", ["filters"])


def test_visualization_arguments_are_checked_by_name():
    from minicnn.visualize import top_k
    net = small_net()
    x = np.random.default_rng(15).standard_normal((4, 1, 12, 12)).astype(np.float32)
    with pytest.raises(ValueError, match=r"k must be an integer >= 1, got 0"):
        top_k(net, x, "conv1", k=0, show_progress=False)
    with pytest.raises(ValueError, match=r"labels must be 4 integers \(one per image\)"):
        invariance(net, x, [0], "rotate", amounts=[0, 10])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2, got \[0, 1, 2, 9\]"):
        invariance(net, x, [0, 1, 2, 9], "rotate", amounts=[0, 10])
    with pytest.raises(ValueError, match="at least one image and one amount"):
        invariance(net, x, [0, 1, 2, 0], "rotate", amounts=[])
    with pytest.raises(ValueError, match="rotate amount must be a finite number, got nan"):
        transform(x[0], "rotate", float("nan"))


def test_projections_of_an_empty_batch_are_empty():
    from minicnn import cpu_path
    net = small_net()
    with cpu_path("readable"):           # the readable ops accept N = 0 
        assert project(net, np.zeros((0, 1, 12, 12), np.float32), "conv2", 0).shape == (0, 1, 12, 12)
        assert saliency(net, np.zeros((0, 1, 12, 12), np.float32)).shape == (0, 12, 12)
