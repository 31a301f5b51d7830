"""Exercises of notebook 06 (occlusion and correspondence): the occlusion loop of ZF Fig. 7 (d) and the sign-change
score of ZF Table 1, checked against ``minicnn.visualize.occlusion`` and ``correspondence`` on a small network."""
from __future__ import annotations

import numpy as np

from .. import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential
from ..ops import softmax
from . import register
from ._compare import as_array, assert_close


def _occlusion_net():
    rng = np.random.default_rng(12)
    return Sequential([Conv2D(2, 4, 3, pad=1, rng=rng, name="conv1"), ReLU(name="relu1"),
                       MaxPool2D(2, 2, name="pool1"), Flatten(name="flat"),
                       Linear(4 * 5 * 5, 3, rng=rng, name="fc")]).astype(np.float64)


def check_occlusion(occlusion_map):
    from ..visualize import occlusion            # imported when this check runs: the other notebooks never need it
    net = _occlusion_net()
    rng = np.random.default_rng(13)
    image = rng.standard_normal((2, 10, 10))

    def predict_proba(batch):
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1:] != image.shape:
            raise AssertionError(f"predict_proba takes a batch (N, 2, 10, 10), got shape {batch.shape}")
        return softmax(net.forward(batch), axis=1)

    for label, size, stride in [(0, 4, 2), (2, 3, 3), (1, 5, 1)]:
        before = image.copy()
        got = as_array(occlusion_map(predict_proba, image, label, size, stride), "your occlusion_map's result")
        if not np.array_equal(image, before):
            raise AssertionError("occlusion_map painted the square into `image` itself: occlude a copy")
        want = occlusion(net, image, label=label, size=size, stride=stride, fill=0.0, show_progress=False).probability
        case = f"10x10 image, square {size}, stride {stride}, class {label}"
        if got.shape != want.shape:
            raise AssertionError(f"{case}: your map has shape {got.shape}, expected {want.shape}: one square centred "
                                 f"on every row and column 0, {stride}, {2 * stride}, ... below 10")
        if not np.allclose(got, want, rtol=0, atol=1e-9):
            corner = solution_occlusion(predict_proba, image, label, size, stride, centred=False)
            if np.allclose(got, corner, rtol=0, atol=1e-9):
                raise AssertionError(f"{case}: your squares start at (cy, cx); they should be centred there, spanning "
                                     "rows cy - size//2 to cy - size//2 + size (clipped to the image)")
        assert_close(got, want, "occlusion map", case, tol=1e-9)
    return "three square sizes and strides, against minicnn.visualize.occlusion"


def solution_occlusion(predict_proba, image, label, size, stride, centred=True):
    C, H, W = image.shape
    centres_y, centres_x = np.arange(0, H, stride), np.arange(0, W, stride)
    out = np.zeros((len(centres_y), len(centres_x)))
    for i, cy in enumerate(centres_y):
        for j, cx in enumerate(centres_x):
            occluded = image.copy()
            y0, x0 = (cy - size // 2, cx - size // 2) if centred else (cy, cx)
            occluded[:, max(y0, 0):y0 + size, max(x0, 0):x0 + size] = 0.0       # clipped to the image
            out[i, j] = predict_proba(occluded[None])[0, label]
    return out


def check_sign_change(sign_change):
    from ..visualize import correspondence
    net = _occlusion_net()
    rng = np.random.default_rng(17)
    images = rng.standard_normal((5, 2, 10, 10))
    box = (2, 6, 3, 7)                                  # rows 2..5, columns 3..6, in every image
    for layer in ("relu1", "pool1"):                    # ReLU outputs: many units stay 0, so some changes are 0
        base = net.forward(images, until=layer).reshape(5, -1)
        occluded = images.copy()
        occluded[:, :, 2:6, 3:7] = 0.0
        changed = net.forward(occluded, until=layer).reshape(5, -1)
        got = sign_change(base.copy(), changed.copy())
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f"sign_change should return one number, got {type(got).__name__}") from None
        want = float(correspondence(net, images, {"part": box}, [layer], n_random=1).mean[0, 0])
        if not np.isclose(got, want, rtol=1e-12, atol=1e-12):
            eps = changed - base
            D, pairs = eps.shape[1], 5 * 4 // 2
            two_signs = np.mean([np.mean((eps[i] > 0) != (eps[j] > 0)) for i in range(5) for j in range(i + 1, 5)])
            hint = ""
            if np.isclose(got, want * D * pairs):
                hint = " That is ZF's unnormalised sum: divide by D (outputs) and by the number of pairs."
            elif np.isclose(got, two_signs):
                hint = (" You compared eps > 0 only: an output that did not change (eps = 0, common after a ReLU) "
                        "has sign 0, which differs from -1; use np.sign.")
            raise AssertionError(f"layer {layer} (D = {D} outputs, 5 images): your score {got:.6f} is wrong; "
                                 f"the fraction of outputs whose signs differ, averaged over the {pairs} pairs "
                                 f"i < j, is expected.{hint}")
    return "on a ReLU and a pooling layer, against visualize.correspondence"


def solution_sign_change(codes, occluded_codes):
    s = np.sign(occluded_codes - codes)                 # (N, D) in {-1, 0, +1}
    N = len(s)
    return np.mean([np.mean(s[i] != s[j]) for i in range(N) for j in range(i + 1, N)])


register("06.sign_change", "ZF's sign-change score for one occluded part", "sign_change", check_sign_change,
         solution_sign_change)
register("06.occlusion", "an occlusion map loop", "occlusion_map", check_occlusion, solution_occlusion)
