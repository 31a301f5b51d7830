"""Exercise of notebook 06 (occlusion): the occlusion loop of ZF Fig. 7 (d), checked against
``minicnn.visualize.occlusion`` on a small network."""
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
    from ..visualize import occlusion            # visualize sits above exercises' other imports; load it when used
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


register("06.occlusion", "an occlusion map loop", "occlusion_map", check_occlusion, solution_occlusion)
