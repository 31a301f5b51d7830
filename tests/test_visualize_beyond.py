"""Beyond the paper (issue 4, item 8): class models, inversion, t-SNE, probes, FGSM, cascading randomisation."""
import numpy as np
import pytest

from minicnn.gradcheck import distinct_values, numerical_gradient, relative_error
from minicnn.ops import softmax_cross_entropy
from minicnn.visualize import (cascading_randomization, class_model, fgsm, invert, linear_probes, total_variation,
                               tsne)

from test_visualize_analyses import small_net, synthetic_splits


def test_total_variation_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    value, grad = total_variation(x)
    numeric = numerical_gradient(lambda: total_variation(x)[0], x, np.ones(2))
    assert relative_error(grad, numeric) < 1e-7
    assert total_variation(np.ones((1, 1, 4, 4)))[0][0] == 0


def test_class_model_raises_the_class_score():
    net = small_net()
    xs, scores = class_model(net, [0, 1, 2], (1, 12, 12), steps=30)
    assert xs.shape == (3, 1, 12, 12) and scores.shape == (30, 3)
    assert (scores[-1] >= scores[0]).all() and (scores[-1, 1:] > scores[0, 1:] + 10).all()
    x1, s1 = class_model(net, 2, (1, 12, 12), steps=30, blur_every=5, blur_sigma=0.5, jitter=1)
    assert x1.shape == (1, 12, 12) and s1[-1] > s1[0] + 1
    with pytest.raises(ValueError, match="target must lie in 0..2"):
        class_model(net, 5, (1, 12, 12), steps=1)


def test_inversion_reduces_the_code_error():
    rng = np.random.default_rng(1)
    net = small_net()
    x0 = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    rec, history = invert(net, x0, "relu1", steps=60, tv=0.1)
    assert rec.shape == x0.shape
    assert history[-1] < 0.3 * history[0]


def test_fgsm_steps_along_the_sign_of_the_loss_gradient():
    rng = np.random.default_rng(2)
    net = small_net().astype(np.float64)
    x = distinct_values((3, 1, 12, 12), rng)
    y = np.array([0, 1, 2])
    numeric = numerical_gradient(lambda: np.asarray(softmax_cross_entropy(net.forward(x), y)[0]), x, np.ones(()))
    x_adv, before, after = fgsm(net, x, y, 0.05)
    big = np.abs(numeric) > 1e-6                                # where the sign is well defined numerically
    np.testing.assert_allclose((x_adv - x)[big], 0.05 * np.sign(numeric[big]), atol=1e-12)
    loss = lambda p: -np.log(p[np.arange(3), y]).mean()
    assert loss(after) > loss(before)


def test_cascading_randomisation_leaves_the_net_alone_and_starts_at_one():
    rng = np.random.default_rng(3)
    net = small_net()
    before = {k: v.copy() for k, v in net.named_params().items()}
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    res = cascading_randomization(net, x, [0, 1])
    assert res.stages == ["trained", "fc2", "...fc1", "...conv2", "...conv1"]
    for m, sim in res.similarity.items():
        assert sim.shape == (5, 2)
        np.testing.assert_allclose(sim[0], 1.0)
    assert res.similarity["gradient"][-1].mean() < 0.99           # the plain gradient does change
    for k, v in net.named_params().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match="available: gradient, guided backprop, deconvnet"):
        cascading_randomization(net, x, [0, 1], methods=("lrp",))


def test_probes_and_tsne_shapes():
    splits = synthetic_splits(n=60)
    net = small_net()
    res = linear_probes(net, splits.train.x, splits.train.y, splits.test.x, splits.test.y, ["pool1", "relu3"],
                        max_dim=64)
    assert res.layers == ["input", "pool1", "relu3"] and res.dims == [144, 100, 8]
    assert all(0 <= a <= 1 for a in res.svm + res.softmax)
    assert res.svm[0] == 1.0                                  # bars are linearly separable in pixels
    coords = tsne(net, splits.train.x, "relu3", perplexity=5)
    assert coords.shape == (len(splits.train.x), 2) and np.isfinite(coords).all()
