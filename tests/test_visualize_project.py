"""Identities of the projections (issue 4, "Done when"): each is the network's own backward with a ReLU rule."""
import numpy as np
import pytest

from minicnn import LRN, Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential
from minicnn.gradcheck import distinct_values, numerical_gradient, relative_error
from minicnn.visualize import guided_backprop, input_gradient, project, saliency


def tiny_net(seed=0, bias=True, lrn=False):
    """conv(1->3, 3x3 pad 1) - relu - maxpool 3/2 (overlapping) - [LRN] - conv(3->4, 3x3) - relu - fc 5, float64."""
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, 3, 3, pad=1, rng=rng), ReLU(), MaxPool2D(3, 2)]
    if lrn:
        layers.append(LRN(n=3, k=1.0, alpha=0.5, beta=0.75))
    layers += [Conv2D(3, 4, 3, rng=rng), ReLU(), Flatten(), Linear(4 * 2 * 2, 5, rng=rng)]
    net = Sequential(layers, name="tiny").astype(np.float64)
    if bias:
        for layer in net:
            if "b" in layer.params:
                layer.params["b"] = rng.standard_normal(layer.params["b"].shape) * 0.1
    return net


def unit_gradient(net, x, layer, index):
    """Central-difference gradient of one unit of ``layer``'s output with respect to x (float64)."""
    probe = np.zeros(net.forward(x, until=layer).shape)
    probe[index] = 1.0
    return numerical_gradient(lambda: net.forward(x, until=layer), x, probe)


@pytest.mark.parametrize("lrn", [False, True])
@pytest.mark.parametrize("layer,channel", [("conv2", 1), ("relu2", 2), ("pool1", 0), ("fc1", 3)])
def test_backprop_projection_is_the_input_gradient_of_the_unit(layer, channel, lrn):
    rng = np.random.default_rng(1)
    net = tiny_net(lrn=lrn)
    x = distinct_values((1, 1, 9, 9), rng, spacing=0.05)
    a = net.forward(x, until=layer)
    if a.ndim == 2:
        index = (0, channel)
    else:
        row, col = np.unravel_index(np.argmax(a[0, channel]), a.shape[2:])
        index = (0, channel, row, col)
    numeric = unit_gradient(net, x.copy(), layer, index)
    assert np.abs(numeric).max() > 0, "the chosen unit must depend on the input for the test to mean anything"
    unit = project(net, x, layer, channel, rule="backprop", scale="unit")
    assert relative_error(unit, numeric) < 1e-6
    # The default scale sends the activation itself down (Zeiler & Fergus): a times the gradient.
    scaled = project(net, x, layer, channel, rule="backprop")
    assert relative_error(scaled, a[index] * numeric) < 1e-6


def test_backprop_projection_with_explicit_position_matches_that_unit():
    rng = np.random.default_rng(2)
    net = tiny_net()
    x = distinct_values((1, 1, 9, 9), rng)
    numeric = unit_gradient(net, x.copy(), "conv2", (0, 3, 1, 0))
    got = project(net, x, "conv2", 3, position=(1, 0), rule="backprop", scale="unit")
    assert relative_error(got, numeric) < 1e-6


def test_saliency_is_max_abs_gradient_of_the_presoftmax_score():
    rng = np.random.default_rng(3)
    net = tiny_net()
    x = distinct_values((1, 1, 9, 9), rng)
    numeric = unit_gradient(net, x.copy(), "fc1", (0, 4))
    grad, target = input_gradient(net, x, target=4)
    assert relative_error(grad, numeric) < 1e-6 and target.tolist() == [4]
    np.testing.assert_allclose(saliency(net, x, 4), np.abs(numeric).max(axis=1), atol=1e-8)
    # guided backprop is a different map on the same network (the rules differ somewhere)
    assert not np.allclose(guided_backprop(net, x, 4), grad)


def test_deconvnet_projection_depends_on_the_input_only_through_the_switches():
    """Two different inputs with equal switches and an equal kept activation project identically under the
    deconvnet rule, while their gradients (backprop) differ.

    Built deliberately on conv1 (1x1, weight 1, so its output is the image) - relu - maxpool 3/2 - conv2:
    in x1 the top-left pooling window is all negative (relu gives zeros, the tie goes to its first cell);
    x2 makes that first cell slightly positive (still the window's winner), lowers every cell that wins no
    window, and is rescaled (the net has no biases, so it is positively homogeneous) to restore the kept
    activation. The backprop gate at the top-left switch opens in x2 only; the deconvnet never looks.
    """
    rng = np.random.default_rng(4)
    conv1 = Conv2D(1, 1, 1, rng=rng)
    conv1.params["W"][...] = 1.0
    net = Sequential([conv1, ReLU(), MaxPool2D(3, 2), Conv2D(1, 3, 3, rng=rng)], name="switchnet").astype(np.float64)
    x1 = distinct_values((1, 1, 9, 9), rng)
    x1[:, :, :3, :3] = -np.abs(x1[:, :, :3, :3]) - 0.01
    channel = 1
    if net.forward(x1)[0, channel, 0, 0] < 0:
        net["conv2"].params["W"][channel] *= -1                    # make the kept unit active
    a1 = net.forward(x1)
    assert a1[0, channel, 0, 0] > 0
    s1 = net["pool1"].switches.copy()
    winners = np.zeros((9, 9), bool)
    for i in range(4):
        for j in range(4):
            ky, kx = divmod(int(s1[0, 0, i, j]), 3)
            winners[2 * i + ky, 2 * j + kx] = True
    x2 = x1.copy()
    x2[0, 0][~winners] -= 0.5
    x2[0, 0, 0, 0] = 0.02
    x2 *= a1[0, channel, 0, 0] / net.forward(x2)[0, channel, 0, 0]
    a2 = net.forward(x2)
    assert np.array_equal(net["pool1"].switches, s1)
    assert np.isclose(a2[0, channel, 0, 0], a1[0, channel, 0, 0])
    assert np.abs(x2 - x1).max() > 0.4
    p1 = project(net, x1, "conv2", channel, position=(0, 0), rule="deconvnet")
    p2 = project(net, x2, "conv2", channel, position=(0, 0), rule="deconvnet")
    np.testing.assert_allclose(p1, p2, rtol=1e-12, atol=1e-12)
    assert np.abs(p1).max() > 0
    g1 = project(net, x1, "conv2", channel, position=(0, 0), rule="backprop")
    g2 = project(net, x2, "conv2", channel, position=(0, 0), rule="backprop")
    assert g1[0, 0, 0, 0] == 0 and g2[0, 0, 0, 0] != 0, "the gradient does see the input beyond the switches"


def test_unpooling_puts_mass_only_at_switch_positions():
    rng = np.random.default_rng(5)
    net = Sequential([MaxPool2D(3, 2)], name="pool_only")
    x = distinct_values((2, 3, 9, 9), rng)
    got = project(net, x, "pool1", [1, 2], whole_map=True, rule="deconvnet")
    switches = net["pool1"].switches
    # where each output cell's switch points, in input coordinates
    allowed = np.zeros_like(x, dtype=bool)
    expected = np.zeros_like(x)
    y = net.forward(x)
    for n, c in ((0, 1), (1, 2)):
        for i in range(switches.shape[2]):
            for j in range(switches.shape[3]):
                ky, kx = divmod(int(switches[n, c, i, j]), 3)
                allowed[n, c, 2 * i + ky, 2 * j + kx] = True
                expected[n, c, 2 * i + ky, 2 * j + kx] += y[n, c, i, j]
    assert np.all(got[~allowed] == 0)
    np.testing.assert_allclose(got, expected)                    # overlapping windows add
    np.testing.assert_allclose(got.sum(axis=(2, 3))[[0, 1], [1, 2]], y.sum(axis=(2, 3))[[0, 1], [1, 2]])


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
def test_rules_differ_exactly_where_design_section_4_says(rule):
    """With the ReLU as the first layer, the projection is the ReLU's own backward: the signal g arriving
    from above (the conv's backward, the same for every rule) gated where §4's table says."""
    rng = np.random.default_rng(6)
    conv = Conv2D(2, 3, 3, pad=1, rng=rng)
    net = Sequential([ReLU(name="relu0"), conv], name="relu_first").astype(np.float64)
    above = Sequential([conv], name="above")                      # same layer object, same weights
    x = distinct_values((1, 2, 6, 6), rng)
    got = project(net, x, "conv1", 1, whole_map=True, rule=rule)
    g = project(above, np.maximum(x, 0), "conv1", 1, whole_map=True, rule="backprop")
    gate = {"backprop": x > 0, "deconvnet": g > 0, "guided": (x > 0) & (g > 0)}[rule]
    np.testing.assert_array_equal(got, np.where(gate, g, 0.0))
    # and the three gates are really different sets on this input
    assert (x > 0).sum() not in (0, x.size) and ((x > 0) != (g > 0)).any()


def test_errors_list_what_exists():
    net = tiny_net()
    x = np.zeros((1, 1, 9, 9))
    with pytest.raises(KeyError, match="layers are: conv1, relu1, pool1, conv2, relu2, flatten1, fc1"):
        project(net, x, "conv7", 0)
    with pytest.raises(ValueError, match="has 4 channels .*0..3"):
        project(net, x, "conv2", 4)
    with pytest.raises(ValueError, match="has 5 units"):
        project(net, x, "fc1", 5)
    with pytest.raises(ValueError, match=r"\(1, 2, 9, 9\) does not fit .*expected 1 channels"):
        project(net, np.zeros((1, 2, 9, 9)), "conv2", 0)
    with pytest.raises(ValueError, match="expected 16 input features"):
        project(net, np.zeros((1, 1, 12, 12)), "conv2", 0)
    with pytest.raises(ValueError, match="unknown ReLU rule"):
        project(net, x, "conv2", 0, rule="lrp")
    with pytest.raises(ValueError, match="ends in class scores.*'pool1'"):
        saliency(Sequential([Conv2D(1, 2, 3), MaxPool2D(2)]), np.zeros((1, 9, 9), np.float32))
    with pytest.raises(ValueError, match="target class must lie in 0..4"):
        saliency(net, x, 7)


def test_single_image_and_batch_agree():
    rng = np.random.default_rng(7)
    net = tiny_net()
    x = distinct_values((3, 1, 9, 9), rng)
    batch = project(net, x, "relu2", [0, 1, 2])
    for i in range(3):
        np.testing.assert_allclose(project(net, x[i], "relu2", i), batch[i])
