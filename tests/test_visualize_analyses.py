"""Top-k with receptive fields, occlusion, evolution, invariance, correspondence, clipping (issue 4)."""
import numpy as np
import pytest

from minicnn import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential
from minicnn.data import make_splits
from minicnn.gradcheck import distinct_values, numerical_gradient
from minicnn.optim import SGD
from minicnn.train import Trainer
from minicnn.visualize import (FeatureEvolution, correspondence, crop, invariance, occlusion, plot_evolution,
                               plot_settling, project, receptive_field, settling, top_activations, top_k, transform)
from minicnn.visualize.occlusion import occlusion_squares


def small_net(seed=0, classes=3, C=1, size=12):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(C, 4, 3, pad=1, rng=rng), ReLU(), MaxPool2D(3, 2), Conv2D(4, 5, 3, pad=1, rng=rng), ReLU(),
              MaxPool2D(2, 2), Flatten()]
    hw = ((size - 3) // 2 + 1) // 2
    layers += [Linear(5 * hw * hw, 8, rng=rng), ReLU(), Linear(8, classes, rng=rng)]
    return Sequential(layers, name="small")


def synthetic_splits(n=90, size=12, classes=3, seed=0, C=1):
    """Bars at class-dependent places: learnable in a few SGD steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.uniform(0, 0.2, (n, C, size, size)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, 2 + 3 * c:4 + 3 * c, 2:size - 2] += 0.8
    idx = rng.permutation(n)
    return make_splits(x, y, train_idx=idx[:n // 2], val_idx=idx[n // 2:3 * n // 4], test_idx=idx[3 * n // 4:],
                       class_names=[f"bar{c}" for c in range(classes)], name="bars", hflip=False,
                       info={"face_parts": {"top": (0, 3, 0, 12), "middle": (5, 8, 3, 9)}})


# --- receptive fields and crops ---------------------------------------------------------------------------

@pytest.mark.parametrize("layer,pos", [("conv1", (0, 0)), ("conv2", (1, 2)), ("conv3", (0, 0)), ("conv3", (2, 1))])
def test_receptive_field_is_the_support_of_the_units_gradient(layer, pos):
    """With positive weights, no ReLU and no max pooling, a unit's gradient is non-zero exactly on its
    receptive field (clipped to the image): the box from layer geometry must equal that support."""
    rng = np.random.default_rng(0)
    net = Sequential([Conv2D(1, 2, 3, pad=1, rng=rng), Conv2D(2, 2, 3, stride=2, rng=rng),
                      Conv2D(2, 1, 4, stride=1, pad=2, rng=rng)], name="geom").astype(np.float64)
    for layer_ in net:
        layer_.params["W"] = np.abs(layer_.params["W"]) + 0.1
    x = np.ones((1, 1, 13, 13))
    out = net.forward(x, until=layer)
    probe = np.zeros(out.shape)
    probe[(0, 0) + pos] = 1
    support = np.abs(numerical_gradient(lambda: net.forward(x, until=layer), x, probe))[0, 0] > 1e-8
    r0, r1, c0, c1 = receptive_field(net, (1, 13, 13), layer, pos)
    expected = np.zeros((13, 13), bool)
    expected[max(r0, 0):r1, max(c0, 0):c1] = True
    np.testing.assert_array_equal(support, expected)


def test_crop_pads_outside_the_image():
    img = np.arange(2 * 4 * 5, dtype=np.float64).reshape(2, 4, 5)
    out = crop(img, (-1, 2, 3, 7), fill=np.nan)
    assert out.shape == (2, 3, 4)
    assert np.isnan(out[:, 0]).all() and np.isnan(out[:, :, 2:]).all()
    np.testing.assert_array_equal(out[:, 1:, :2], img[:, 0:2, 3:5])


def test_receptive_field_errors():
    net = small_net()
    with pytest.raises(ValueError, match="outside the 12x12 map"):
        receptive_field(net, (1, 12, 12), "conv1", (12, 0))
    with pytest.raises(KeyError, match="layers are: conv1, relu1, pool1"):
        receptive_field(net, (1, 12, 12), "conv9", (0, 0))


# --- top-k --------------------------------------------------------------------------------------------------

def test_top_activations_match_brute_force_one_per_image():
    rng = np.random.default_rng(1)
    net = small_net()
    x = rng.standard_normal((23, 1, 12, 12)).astype(np.float32)
    channels, values, indices, positions = top_activations(net, x, "relu2", k=4, batch_size=5, show_progress=False)
    a = net.forward(x, until="relu2").astype(np.float64)
    per_image = a.reshape(23, 5, -1).max(axis=2)                # (N, M)
    for m in channels:
        order = np.argsort(-per_image[:, m], kind="stable")[:4]
        np.testing.assert_allclose(values[m], per_image[order, m], rtol=1e-6)
        assert len(set(indices[m].tolist())) == 4               # at most one unit per image
        for j in range(4):
            n, (r, c) = indices[m, j], positions[m, j]
            assert a[n, m, r, c] == pytest.approx(values[m, j])


def test_top_k_crops_are_the_projections_cut_to_the_receptive_field():
    rng = np.random.default_rng(2)
    net = small_net()
    x = rng.standard_normal((15, 1, 12, 12)).astype(np.float32)
    mean = np.full((1, 12, 12), 0.25, np.float32)
    res = top_k(net, x, "pool2", channels=[1, 3], k=3, mean=mean, batch_size=4, show_progress=False)
    assert res.projections.shape[:2] == (2, 3) and res.patches.shape == res.projections.shape
    for m, ch in enumerate(res.channels):
        for j in range(3):
            n = res.indices[m, j]
            full = project(net, x[n], "pool2", int(ch), position=res.positions[m, j])
            box = receptive_field(net, x.shape[1:], "pool2", res.positions[m, j])
            np.testing.assert_allclose(res.projections[m, j], crop(full, box), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(res.patches[m, j], crop(x[n] + mean, box, np.nan))
    # fewer images than k: missing slots are marked
    few = top_k(net, x[:2], "conv1", channels=[0], k=3, show_progress=False)
    assert few.indices[0].tolist()[2] == -1 and np.isnan(few.values[0, 2])
    sel = top_k(net, x, "relu1", k=2, select=2, show_progress=False)
    assert len(sel.channels) == 2


def test_top_k_errors_list_what_exists():
    net = small_net()
    x = np.zeros((4, 1, 12, 12), np.float32)
    with pytest.raises(ValueError, match="has 4 channels .*0..3"):
        top_k(net, x, "conv1", channels=[7], show_progress=False)
    with pytest.raises(ValueError, match="expected 1 channels"):
        top_k(net, np.zeros((4, 3, 12, 12), np.float32), "conv1", show_progress=False)


# --- occlusion ---------------------------------------------------------------------------------------------

def test_occlusion_with_a_zero_size_square_changes_nothing():
    rng = np.random.default_rng(3)
    net = small_net().astype(np.float64)
    x = distinct_values((1, 12, 12), rng)
    res = occlusion(net, x, label=1, size=0, stride=3, batch_size=5, show_progress=False)
    assert res.activation.shape == (4, 4)
    np.testing.assert_allclose(res.activation, res.base_activation, rtol=1e-12)
    np.testing.assert_allclose(res.probability, res.base_probability, rtol=1e-12)
    assert (res.predicted == res.base_predicted).all()


def test_occlusion_grid_cells_are_forward_passes_of_occluded_images():
    rng = np.random.default_rng(4)
    net = small_net().astype(np.float64)
    x = distinct_values((1, 12, 12), rng)
    res = occlusion(net, x, label=2, size=4, stride=3, layer="relu2", channel=1, fill=0.5, batch_size=7,
                    show_progress=False)
    rows, cols, rbox, cbox = occlusion_squares(12, 12, 4, 3)
    assert rbox[0].tolist() == [0, 2] and rbox[1].tolist() == [1, 5]     # centred, clipped at the border
    for i in range(len(rows)):
        for j in range(len(cols)):
            occluded = x.copy()
            occluded[:, rbox[i, 0]:rbox[i, 1], cbox[j, 0]:cbox[j, 1]] = 0.5
            a = net.forward(occluded[None], until="relu2")[0, 1].sum()
            z = net.forward(occluded[None])[0]
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            assert res.activation[i, j] == pytest.approx(a, rel=1e-10)
            assert res.probability[i, j] == pytest.approx(p[2], rel=1e-10)
            assert res.predicted[i, j] == p.argmax()
    assert np.ptp(res.activation) > 0


def test_occlusion_errors():
    net = small_net()
    x = np.zeros((1, 12, 12), np.float32)
    with pytest.raises(ValueError, match="has no feature maps; layers with maps: conv1, relu1, pool1"):
        occlusion(net, x, layer="fc1", show_progress=False)
    with pytest.raises(ValueError, match="ends in class scores"):
        occlusion(Sequential([Conv2D(1, 2, 3)]), x, show_progress=False)
    with pytest.raises(ValueError, match="one image"):
        occlusion(net, np.zeros((2, 1, 12, 12), np.float32), show_progress=False)
    with pytest.raises(ValueError, match="label must lie in 0..2"):
        occlusion(net, x, label=3, show_progress=False)


# --- feature evolution callback ------------------------------------------------------------------------------

def test_feature_evolution_records_at_the_chosen_epochs_and_round_trips(tmp_path):
    splits = synthetic_splits()
    net = small_net()
    path = tmp_path / "evolution.npz"
    evo = FeatureEvolution(splits.val.x, {"relu1": [0, 2], "pool2": [1]}, epochs=[1, 3], path=str(path))
    evo.record(net, 0)
    trainer = Trainer(net, splits, SGD(net, lr=0.05), batch_size=16, epochs=3, callbacks=[evo], progress=False,
                      verbose=False)
    trainer.fit()
    assert evo.snapshots["relu1"]["epochs"] == [0, 1, 3]
    loaded = FeatureEvolution.load(str(path))
    assert loaded["relu1"]["crops"].shape[:2] == (3, 2) and loaded["pool2"]["crops"].shape[:2] == (3, 1)
    np.testing.assert_array_equal(loaded["pool2"]["crops"], evo.as_dict()["pool2"]["crops"])
    # the weights changed, so the projection of the strongest relu1 unit changed between epoch 0 and 3
    assert not np.allclose(loaded["relu1"]["crops"][0], loaded["relu1"]["crops"][2])
    assert plot_evolution(loaded) is not None


def test_feature_evolution_records_epoch_0_and_response_profiles_that_round_trip(tmp_path):
    splits = synthetic_splits()
    net = small_net()
    path = tmp_path / "evolution.npz"
    evo = FeatureEvolution(splits.val.x, {"relu1": [0], "pool2": [1]}, epochs=[0, 2], path=str(path), n_profile=10)
    Trainer(net, splits, SGD(net, lr=0.05), batch_size=16, epochs=2, callbacks=[evo], progress=False,
            verbose=False).fit()
    assert evo.snapshots["relu1"]["epochs"] == [0, 2]         # epoch 0: recorded when the fresh run began
    loaded = FeatureEvolution.load(str(path))
    profiles = loaded["pool2"]["profiles"]
    assert profiles.shape == (2, 10, net.forward(splits.val.x[:1], until="pool2").shape[1])
    # the last profile is the layer's per-map maximum over positions on the first 10 probe images (float16)
    a = net.forward(splits.val.x[:10], until="pool2")
    np.testing.assert_allclose(profiles[-1], a.reshape(10, a.shape[1], -1).max(axis=2), rtol=2e-3, atol=1e-3)
    curves = settling(loaded)
    assert set(curves) == {"relu1", "pool2"} and curves["pool2"][1][-1] == pytest.approx(1.0)
    assert curves["relu1"][1][0] < 0.999                      # training moved relu1's responses
    assert plot_settling(loaded) is not None


def test_settling_orders_layers_by_when_their_responses_stop_changing():
    rng = np.random.default_rng(0)
    final = rng.standard_normal((30, 4))
    early = np.stack([rng.standard_normal((30, 4)), final + 0.01 * rng.standard_normal((30, 4)), final])
    late = np.stack([rng.standard_normal((30, 4)), rng.standard_normal((30, 4)), final])
    dead = final.copy()
    dead[:, 0] = 3.0                                          # map 0 gives one value on every image: left out
    with_dead = np.stack([dead, dead])
    data = {name: {"epochs": [0, 1, 2][-len(p):], "profiles": p, "channels": [0], "crops": None}
            for name, p in (("low", early), ("high", late), ("dead", with_dead))}
    data["old"] = {"epochs": [1], "profiles": None, "channels": [0], "crops": None}   # no profiles: not shown
    # resumed from a recording without profiles: fewer profiles than epochs, not shown
    data["resumed"] = {"epochs": [0, 1, 2], "profiles": early[1:], "channels": [0], "crops": None}
    curves = settling(data)
    assert list(curves) == ["low", "high", "dead"]
    assert curves["low"][1][1] > 0.99 > abs(curves["high"][1][1])
    np.testing.assert_allclose(curves["dead"][1], [1.0, 1.0])
    all_dead = {"x": {"epochs": [0, 1], "profiles": np.ones((2, 5, 3)), "channels": [0], "crops": None}}
    assert np.isnan(settling(all_dead)["x"][1]).all()
    with pytest.raises(ValueError, match="no response profiles"):
        plot_settling({"old": data["old"]})


def test_feature_evolution_checks_features_against_the_net():
    splits = synthetic_splits()
    with pytest.raises(ValueError, match="has 4 channels"):
        FeatureEvolution(splits.val.x, {"conv1": [9]}).record(small_net(), 1)


# --- invariance -------------------------------------------------------------------------------------------

def test_transform_identities_and_directions():
    rng = np.random.default_rng(5)
    img = rng.standard_normal((2, 9, 9))
    for kind, amount in (("translate", 0), ("scale", 1), ("rotate", 0)):
        np.testing.assert_allclose(transform(img, kind, amount), img, atol=1e-12)
    np.testing.assert_allclose(transform(img, "translate", 2)[:, 2:], img[:, :-2], atol=1e-12)   # down by 2
    np.testing.assert_allclose(transform(img, "rotate", 90)[0], np.rot90(img[0]), atol=1e-9)     # counter-clockwise
    with pytest.raises(ValueError, match="translate.*scale.*rotate"):
        transform(img, "shear", 1)


def test_invariance_distance_is_zero_for_the_identity_and_grows():
    rng = np.random.default_rng(6)
    net = small_net()
    x = rng.standard_normal((3, 1, 12, 12)).astype(np.float32)
    res = invariance(net, x, [0, 1, 2], "translate", amounts=[0, 2, 4])
    assert list(res.distances) == ["relu1", "relu3"]
    assert res.distances["relu1"].shape == (3, 3) and res.probability.shape == (3, 3)
    np.testing.assert_allclose(res.distances["relu1"][:, 0], 0, atol=1e-5)
    assert (res.distances["relu1"][:, 2] > 0).all()
    assert np.allclose(res.probability.sum(), res.probability.sum()) and (res.probability <= 1).all()


# --- correspondence -----------------------------------------------------------------------------------------

def test_correspondence_identical_images_agree_perfectly_and_scores_are_fractions():
    rng = np.random.default_rng(7)
    net = small_net()
    img = rng.standard_normal((1, 12, 12)).astype(np.float32)
    same = np.repeat(img[None], 4, axis=0)
    parts = {"eye": (2, 5, 2, 6), "mask": np.pad(np.ones((3, 3), bool), ((6, 3), (6, 3)))}
    res = correspondence(net, same, parts, ["relu2", "fc1"], n_random=3)
    assert res.rows == ["eye", "mask", "random 3x4", "random 3x3"]
    np.testing.assert_array_equal(res.mean, 0)              # same image, same occlusion: same sign changes
    assert res.pairs[0] == 6 and res.pairs[2] == 18
    varied = correspondence(net, rng.standard_normal((4, 1, 12, 12)).astype(np.float32), parts, ["relu2"])
    assert ((varied.mean >= 0) & (varied.mean <= 1)).all() and varied.mean.max() > 0
    assert "eye" in varied.table()
    with pytest.raises(ValueError, match="must lie inside the 12x12 image"):
        correspondence(net, same, {"bad": (0, 13, 0, 2)}, ["relu2"])


def test_correspondence_per_image_random_boxes_are_a_baseline_for_aligned_images():
    # identical (perfectly aligned) images: a random box shared by all is itself a corresponding part (score 0);
    # boxes drawn per image occlude different regions, so their sign changes disagree
    rng = np.random.default_rng(3)
    net = small_net()
    same = np.repeat(rng.standard_normal((1, 1, 12, 12)).astype(np.float32), 4, axis=0)
    parts = {"eye": (2, 5, 2, 6)}
    shared = correspondence(net, same, parts, ["relu2"], n_random=4)
    per_image = correspondence(net, same, parts, ["relu2"], n_random=4, random="per_image")
    assert shared.mean[1, 0] == 0 and per_image.mean[1, 0] > 0.05
    assert per_image.rows == ["eye", "random 3x4 per image"] and per_image.mean[0, 0] == 0
    # random_on: one allowed centre, the same in every image -> every random box is the same box again
    on = np.zeros((4, 12, 12), bool)
    on[:, 7, 7] = True
    pinned = correspondence(net, same, parts, ["relu2"], n_random=2, random="per_image", random_on=on)
    assert pinned.mean[1, 0] == 0
    # a (C, H, W) fill paints that image into the part: filling with the image itself changes nothing (0 changes,
    # which agree); a filled part that does change the code still agrees across identical images
    res = correspondence(net, same, parts, ["relu2"], n_random=1, fill=same[0])
    assert res.mean[0, 0] == 0
    with pytest.raises(ValueError, match="random must be 'shared' or 'per_image'"):
        correspondence(net, same, parts, ["relu2"], random="each")
    with pytest.raises(ValueError, match="random_on must be a bool array of shape"):
        correspondence(net, same, parts, ["relu2"], random_on=np.ones((4, 11, 12), bool))
    with pytest.raises(ValueError, match="fill must be a number or an image"):
        correspondence(net, same, parts, ["relu2"], fill=np.zeros((1, 11, 12), np.float32))


# --- linear probes ------------------------------------------------------------------------------------------

def test_ridge_probe_is_least_squares_onto_one_hot_labels_and_needs_no_sklearn_fit():
    from minicnn.visualize.probes import linear_probes, plot_probes, ridge_classifier_accuracy
    rng = np.random.default_rng(0)
    # separable by the first feature's sign: a ridge classifier with a tiny penalty gets every test point right;
    # labels that are pure noise give about chance
    ftr, fte = rng.standard_normal((200, 5)), rng.standard_normal((100, 5))
    ytr, yte = (ftr[:, 0] > 0).astype(np.int64), (fte[:, 0] > 0).astype(np.int64)
    assert ridge_classifier_accuracy(ftr, ytr, fte, yte, lam=1e-3) == 1.0
    noise = ridge_classifier_accuracy(ftr, rng.integers(0, 2, 200), fte, rng.integers(0, 2, 100), lam=1e-3)
    assert 0.3 < noise < 0.7
    # the closed form equals numpy's least squares on the same design matrix when the penalty is ~0
    a = np.hstack([ftr, np.ones((200, 1))])
    W, *_ = np.linalg.lstsq(a, np.eye(2)[ytr], rcond=None)
    expected = float(((np.hstack([fte, np.ones((100, 1))]) @ W).argmax(1) == yte).mean())
    assert ridge_classifier_accuracy(ftr, ytr, fte, yte, lam=1e-9) == expected
    # through a network: pixels and layers, ridge only (svm/softmax stay None), and the figure draws it
    net = small_net()
    x = rng.standard_normal((40, 1, 12, 12)).astype(np.float32)
    y = np.arange(40) % 3
    res = linear_probes(net, x[:30], y[:30], x[30:], y[30:], ["relu2", "relu3"], methods=("ridge",))
    assert res.layers == ["input", "relu2", "relu3"] and res.svm is None and res.softmax is None
    assert len(res.ridge) == 3 and all(0 <= a <= 1 for a in res.ridge) and list(res.accuracies()) == ["ridge"]
    assert plot_probes(res) is not None
    with pytest.raises(ValueError, match="methods must be a non-empty subset"):
        linear_probes(net, x[:30], y[:30], x[30:], y[30:], ["relu2"], methods=("lasso",))
