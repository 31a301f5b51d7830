"""Importing torchvision-layout VGG-16 and AlexNet state dicts: logits equal PyTorch's, projections equal Captum's.

The reference networks are written here with torch.nn in torchvision's layout (features.N / classifier.N), with
random weights: torchvision is not needed. Tests that need PyTorch skip without it; the key and shape checks at
the end run everywhere. VGG-16 costs ~15 GFLOP per 224x224 image: one image, one module-scoped model.
"""
import os

import numpy as np
import pytest

from minicnn.weights import ImportMismatchError, convert_state_dict, import_weights

torch = None


def _torch():
    """PyTorch is imported when these tests run, not at collection (see test_visualize_captum.py)."""
    global torch
    torch = pytest.importorskip("torch")
    return torch


def torchvision_alexnet(seed=0):
    nn = _torch().nn
    torch.manual_seed(seed)

    class AlexNet(nn.Module):        # torchvision.models.AlexNet's layout and key names
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
    return _randomise_biases(AlexNet().eval())


def torchvision_vgg16(seed=0):
    nn = _torch().nn
    torch.manual_seed(seed)
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v

    class VGG(nn.Module):            # torchvision.models.VGG's layout and key names (configuration D)
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
    return _randomise_biases(VGG().eval())


def _randomise_biases(model):
    """PyTorch's default init; biases made clearly non-zero so that a dropped bias would show."""
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "bias") and m.bias is not None:
                m.bias.uniform_(-0.1, 0.1)
    return model


def timm_vgg16_layout(sd):
    """torchvision's VGG-16 keys -> timm's: fc6/fc7 stored as 7x7 and 1x1 convolutions (pre_logits), fc8 head.fc."""
    sd = dict(sd)
    sd["pre_logits.fc1.weight"] = sd.pop("classifier.0.weight").reshape(4096, 512, 7, 7)
    sd["pre_logits.fc1.bias"] = sd.pop("classifier.0.bias")
    sd["pre_logits.fc2.weight"] = sd.pop("classifier.3.weight").reshape(4096, 4096, 1, 1)
    sd["pre_logits.fc2.bias"] = sd.pop("classifier.3.bias")
    sd["head.fc.weight"], sd["head.fc.bias"] = sd.pop("classifier.6.weight"), sd.pop("classifier.6.bias")
    return sd


def save_state_dict(model, path, fmt, layout="torchvision"):
    """One state dict in the three formats users have: torch.save (zip), safetensors, npz."""
    sd = model.state_dict() if layout == "torchvision" else timm_vgg16_layout(model.state_dict())
    if fmt == "pth":
        torch.save(sd, path)
    elif fmt == "legacy.pth":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file
        save_file({k: v.contiguous().numpy() for k, v in sd.items()}, str(path))
    else:
        np.savez(path, **{k: v.numpy() for k, v in sd.items()})
    return path


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def alexnet_files(tmp_path_factory):
    model = torchvision_alexnet()
    d = tmp_path_factory.mktemp("alexnet")
    files = {fmt: save_state_dict(model, d / f"alexnet.{fmt}", fmt) for fmt in ("pth", "safetensors", "npz")}
    return model, files


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "npz"])
def test_alexnet_logits_equal_pytorch(alexnet_files, fmt):
    model, files = alexnet_files
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    net = import_weights("alexnet", files[fmt])
    assert net.name == "alexnet_tv"
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    ours = net.forward(x)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    assert ours.shape == (2, 1000)
    assert _rel(ours, theirs) < 1e-4


@pytest.fixture(scope="module")
def vgg16_reference(tmp_path_factory):
    model = torchvision_vgg16()
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    return model, x, logits, tmp_path_factory.mktemp("vgg16")


# safetensors in timm's layout (what timm's vgg16.tv_in1k model.safetensors holds), the others in torchvision's
@pytest.mark.parametrize("fmt,layout", [("pth", "torchvision"), ("safetensors", "timm"), ("npz", "torchvision")])
def test_vgg16_logits_equal_pytorch(vgg16_reference, fmt, layout):
    model, x, theirs, d = vgg16_reference
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    path = save_state_dict(model, d / f"vgg16.{fmt}", fmt, layout)
    try:
        net, info = import_weights("vgg16", path, return_info=True)
    finally:
        os.unlink(path)                  # 528 MB each: do not keep three
    assert info["layout"] == layout
    assert _rel(net.forward(x), theirs) < 1e-4


# --- projections against Captum, float64 --------------------------------------------------------------------

@pytest.fixture(scope="module")
def alexnet64():
    """The imported network and the torch model in float64. Converted in memory: the file formats are the
    logits tests' business, and a module fixture of its own keeps a second xdist worker from writing them again."""
    pytest.importorskip("captum.attr")
    from minicnn.models import build
    model = torchvision_alexnet(seed=1)
    state, _, _ = convert_state_dict({k: v.numpy() for k, v in model.state_dict().items()}, "alexnet")
    net = build("alexnet_tv", init="zeros")
    net.load_state_dict(state)
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224))
    return net.astype(np.float64), model.double().eval(), x


@pytest.mark.parametrize("rule,method", [("deconvnet", "Deconvolution"), ("guided", "GuidedBackprop"),
                                         ("backprop", "Saliency")])
def test_alexnet_projections_equal_captum(alexnet64, rule, method):
    import captum.attr
    from minicnn.visualize import input_gradient
    net, model, x = alexnet64
    ours, targets = input_gradient(net, x, None, rule=rule)
    kwargs = {"abs": False} if method == "Saliency" else {}
    theirs = getattr(captum.attr, method)(model).attribute(torch.from_numpy(x.copy()).requires_grad_(),
                                                           target=[int(t) for t in targets], **kwargs)
    theirs = theirs.detach().numpy()
    assert np.abs(theirs).max() > 0
    assert _rel(ours, theirs) < 1e-10


def test_alexnet_unit_projection_equals_captum(alexnet64):
    """ZF's single-unit projection (the strongest pool5 unit of one map) = Captum's Deconvolution of that unit."""
    import captum.attr
    from minicnn.visualize import project
    net, model, x = alexnet64
    a = net.forward(x[:1], until="pool5")[0]
    channel = int(a.reshape(a.shape[0], -1).max(axis=1).argmax())
    row, col = np.unravel_index(int(a[channel].argmax()), a.shape[1:])
    ours = project(net, x[0], "pool5", channel, scale="unit")
    features = torch.nn.Sequential(model.features, torch.nn.Flatten()).eval()
    target = int(np.ravel_multi_index((channel, row, col), a.shape))
    theirs = captum.attr.Deconvolution(features).attribute(torch.from_numpy(x[:1].copy()).requires_grad_(),
                                                           target=target).detach().numpy()[0]
    assert np.abs(theirs).max() > 0
    assert _rel(ours, theirs) < 1e-10


# --- keys and shapes (no PyTorch needed) ---------------------------------------------------------------------

def _zeros_state(arch):
    """A torchvision-layout state dict of the right shapes, zeros (np.zeros does not touch the memory)."""
    from minicnn.weights.importer import ARCHITECTURES
    from minicnn.models import build
    builder, layouts, shape = ARCHITECTURES[arch]
    net = build(builder, input_shape=shape, init="zeros")
    state = {}
    for module, (layer, kind) in layouts["torchvision"].items():
        W = net[layer].params["W"]
        state[f"{module}.weight"] = np.zeros(W.shape if kind == "conv" else W.shape[::-1], np.float32)
        state[f"{module}.bias"] = np.zeros(net[layer].params["b"].shape, np.float32)
    return state


def test_wrong_architecture_lists_the_keys_that_do_not_fit():
    state = _zeros_state("alexnet_tv")
    with pytest.raises(ImportMismatchError) as err:
        convert_state_dict(state, "vgg16", source="alexnet-owt-7be5be79.pth")
    msg = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "vgg16" in msg
    assert "features.2.weight" in msg           # a VGG key the file lacks
    assert "features.3.weight" in msg           # an AlexNet key VGG has no place for
    assert "alexnet_tv" in msg                  # and what the file is


def test_wrong_shape_names_file_key_and_both_shapes():
    state = _zeros_state("alexnet_tv")
    state["features.3.weight"] = np.zeros((192, 64, 3, 3), np.float32)
    with pytest.raises(ImportMismatchError, match=r"w\.pth: features\.3\.weight has shape \(192, 64, 3, 3\), but "
                                                  r"alexnet_tv's conv2 expects \(192, 64, 5, 5\)"):
        convert_state_dict(state, "alexnet", source="w.pth")
    state = _zeros_state("alexnet_tv")
    state["classifier.1.weight"] = np.zeros((9216, 4096), np.float32)          # stored (in, out): transposed
    with pytest.raises(ImportMismatchError, match=r"classifier\.1\.weight has shape \(9216, 4096\).*\(4096, 9216\)"):
        convert_state_dict(state, "alexnet", source="w.pth")


def test_linear_weights_are_transposed_and_other_class_counts_kept():
    state = _zeros_state("alexnet_tv")
    rng = np.random.default_rng(5)
    state["classifier.6.weight"] = rng.standard_normal((10, 4096)).astype(np.float32)
    state["classifier.6.bias"] = rng.standard_normal(10).astype(np.float32)
    out, layout, classes = convert_state_dict(state, "alexnet")
    assert classes == 10 and layout == "torchvision"
    np.testing.assert_array_equal(out["fc8.W"], state["classifier.6.weight"].T)
    assert out["fc8.W"].flags.c_contiguous


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'.*vgg16"):
        convert_state_dict({}, "resnet50")


def test_zoo_architectures_match_torchvision_parameter_counts():
    """torchvision's published num_params: 61,100,840 (alexnet), 138,357,544 (vgg16)."""
    from minicnn.models import build
    assert build("alexnet_tv", init="zeros").num_params() == 61_100_840
    assert build("vgg16", init="zeros").num_params() == 138_357_544
    assert not any(type(l).__name__ == "LRN" for l in build("alexnet_tv", init="zeros"))


def test_alexnet_tv_adaptive_pool():
    """Identity at 224; an AvgPool2D where the pool5 maps are a multiple of 6x6 (415 px: 12x12); else an error."""
    from minicnn.models import build
    assert "avgpool" not in build("alexnet_tv", init="zeros").names
    net = build("alexnet_tv", input_shape=(3, 415, 415), init="zeros")
    rows = {r.name: r for r in net.layer_info((3, 415, 415))}
    assert rows["pool5"].output_shape == (256, 12, 12) and rows["avgpool"].output_shape == (256, 6, 6)
    x = np.random.default_rng(0).standard_normal((1, 256, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(net["avgpool"].forward(x), x.reshape(1, 256, 6, 2, 6, 2).mean(axis=(3, 5)), atol=1e-6)
    with pytest.raises(ValueError, match=r"adaptive average pool to 6x6: the 7x7 maps of pool5"):
        build("alexnet_tv", input_shape=(3, 256, 256), init="zeros")
