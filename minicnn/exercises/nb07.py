"""Exercises of notebook 07 (the GPU): a forward pass on a chosen device and back, and col2im written the way a GPU
kernel is (one loop over output elements, each gathering its inputs). Both checks run on NumPy, so they work on a
machine without a GPU; where one is usable, the device exercise is also checked on it."""
from __future__ import annotations

import numpy as np

from .. import Conv2D, Flatten, Linear, ReLU, Sequential, backend, ops
from . import register
from ._compare import as_array, assert_close


def _small_net():
    rng = np.random.default_rng(14)
    return Sequential([Conv2D(1, 3, 3, pad=1, rng=rng, name="conv1"), ReLU(name="relu1"), Flatten(name="flat"),
                       Linear(3 * 6 * 6, 4, rng=rng, name="fc")])


def check_predict_on(predict_on):
    x = np.random.default_rng(15).standard_normal((5, 1, 6, 6)).astype(np.float32)
    net = _small_net()
    want = net.forward(x)
    devices = ["cpu"] + (["gpu"] if backend.gpu_available() else [])
    for device in devices:
        x_in = x.copy()
        got = predict_on(net, x_in, device)
        if backend.is_gpu_array(got):
            raise AssertionError(f"on {device!r}: the result is still a GPU array; bring it back with "
                                 "backend.to_numpy (or to_device(y, 'cpu'))")
        got = as_array(got, f"your predict_on's result on {device!r}")
        if not np.array_equal(x_in, x):
            raise AssertionError(f"on {device!r}: predict_on changed x")
        on_gpu = [name for name, W in net.named_params().items() if backend.is_gpu_array(W)]
        if on_gpu:
            raise AssertionError(f"after predict_on(..., {device!r}) the parameters {', '.join(on_gpu)} are still on "
                                 "the GPU: move the network back with net.to('cpu')")
        assert_close(got, want, "logits", f"device {device!r}", tol=1e-5)   # float32 on another device: rounding
    if not backend.gpu_available():
        try:
            predict_on(_small_net(), x.copy(), "gpu")
        except RuntimeError:
            pass                          # the fallback contract: asking for a missing GPU is an error that says why
        else:
            raise AssertionError("predict_on(net, x, 'gpu') ran on a machine without a usable GPU; it should move "
                                 "the data with backend.to_device, which raises RuntimeError there")
    return f"on {', '.join(devices)}; the network ends back on the CPU"


def solution_predict_on(net, x, device):
    net.to(device)                                  # parameters to the device
    try:
        y = net.forward(backend.to_device(x, device))     # the data must live where the parameters live
        return backend.to_numpy(y)
    finally:
        net.to("cpu")                               # back, also when the forward fails


# (N, C, H, W), (kh, kw), (sy, sx), (ph, pw): overlap, no overlap, non-square kernel and stride, padding
KERNEL_CASES = [((1, 1, 5, 5), (3, 3), (1, 1), (0, 0)), ((2, 2, 6, 7), (2, 2), (2, 2), (0, 0)),
                ((1, 2, 7, 6), (3, 2), (2, 1), (1, 0)), ((2, 1, 5, 6), (3, 3), (2, 2), (1, 1))]


def check_col2im_kernel(col2im_kernel):
    rng = np.random.default_rng(16)
    for x_shape, k, s, p in KERNEL_CASES:
        N, C, H, W = x_shape
        oh, ow = ops.conv_output_shape(x_shape, k, s, p)
        cols = rng.standard_normal((C * k[0] * k[1], N * oh * ow))
        flat_cols = cols.ravel().copy()
        dx = np.zeros(N * C * H * W)
        result = col2im_kernel(flat_cols, dx, N, C, H, W, k[0], k[1], s[0], s[1], p[0], p[1], oh, ow)
        if result is not None:
            raise AssertionError("a kernel returns nothing: write the results into dx[i]")
        if not np.array_equal(flat_cols, cols.ravel()):
            raise AssertionError("the kernel wrote into cols, its input")
        want = ops.col2im(cols, x_shape, k, s, p).ravel()
        assert_close(dx.reshape(x_shape), want.reshape(x_shape), "dx", f"x_shape {x_shape}, kernel {k}, stride {s}, "
                     f"pad {p}", tol=1e-12)
    return f"{len(KERNEL_CASES)} configurations against ops.col2im, strides, padding and overlap included"


def solution_col2im_kernel(cols, dx, N, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow):
    ncols = N * oh * ow
    for i in range(N * C * H * W):                   # one "thread" per pixel of dx
        x, y = i % W, (i // W) % H
        c, n = (i // (W * H)) % C, i // (W * H * C)
        py, px = y + ph, x + pw                      # the pixel in padded coordinates
        total = 0.0
        for ky in range(kh):
            if (py - ky) < 0 or (py - ky) % sy:
                continue
            oy = (py - ky) // sy                     # the window row whose tap ky lands on this pixel
            if oy >= oh:
                continue
            for kx in range(kw):
                if (px - kx) < 0 or (px - kx) % sx:
                    continue
                ox = (px - kx) // sx
                if ox >= ow:
                    continue
                total += cols[((c * kh + ky) * kw + kx) * ncols + (n * oh + oy) * ow + ox]
        dx[i] = total                                # each thread writes only its own element: no atomics


register("07.predict_on", "a forward pass on a device, and back", "predict_on", check_predict_on,
         solution_predict_on)
register("07.col2im_kernel", "col2im as a gather kernel", "col2im_kernel", check_col2im_kernel,
         solution_col2im_kernel)
