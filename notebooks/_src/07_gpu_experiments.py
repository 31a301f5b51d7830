# %% [markdown]
# # 07 · The same experiments on the GPU
#
# **What this notebook teaches.** minicnn runs one source on two devices: every op asks `backend.xp(x)` for the
# array module that owns its input (NumPy on the CPU, CuPy on the GPU), so moving the *arrays* moves the
# computation. We move a network and its data to the GPU, train it there, project a feature map to pixels with the
# deconvnet there, check that the GPU gives the CPU's numbers, and time three workloads on both devices.
#
# Where no GPU is usable (no CuPy, or no CUDA device), the notebook says so in its first output and runs everything
# on the CPU; the GPU column of the timing table then reads "n/a — no GPU". Nothing else changes: that is the point
# of the design.
#
# **What you need.** Notebooks 04–05; `minicnn.backend` (`gpu_available`, `gpu_unavailable_reason`, `to_device`,
# `to_numpy`, `xp`), `Sequential.to`, `minicnn.train.Trainer(..., device=...)`, `minicnn.visualize.project`.
# For the GPU: an NVIDIA GPU and CuPy (`pip install cupy-cuda12x`); the hand-written kernels in
# `kernels/*.cu` are compiled on first use.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1: 16x16 digits, a few epochs, 10–15 s on a 2-core CPU). Larger values
# train longer and time larger batches.

# %%
import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from minicnn import backend, ops
from minicnn.data import Augment, load_dataset
from minicnn.models import zfnet_small
from minicnn.optim import SGD
from minicnn.schedule import make_schedule
from minicnn.train import Trainer, evaluate
from minicnn.visualize import project
from minicnn.visualize.plots import image_to_display, projection_to_display

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
EPOCHS = max(3, int(round(8 * SCALE)))
BATCH = int(64 * max(1, SCALE))                 # images per timed conv / projection call
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest"})
T0 = time.perf_counter()

GPU = backend.gpu_available()
DEVICE = "gpu" if GPU else "cpu"
if GPU:
    cp = backend.cupy()
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"GPU found: {name}, CuPy {cp.__version__}. The experiments below run on the GPU.")
else:
    display(Markdown("> **No GPU here: falling back to the CPU.** " + backend.gpu_unavailable_reason() + "."))
    print("NO GPU: " + backend.gpu_unavailable_reason() + ".\n"
          "Falling back to the CPU: every experiment below runs with NumPy, and the GPU column of the timing "
          "table reads 'n/a — no GPU'.")
print(f"scale {SCALE}: device {DEVICE!r}, {EPOCHS} epochs, timing batches of {BATCH}")

# %% [markdown]
# ## 1. Moving arrays and networks
#
# `backend.to_device(x, "gpu")` copies a NumPy array into GPU memory (a CuPy array); `to_device(x, "cpu")` and
# `to_numpy(x)` copy it back. `net.to("gpu")` moves every parameter of every layer. After that, a forward pass on a
# GPU array runs every op on the GPU: `conv2d_forward` builds its im2col matrix with a kernel and multiplies it
# with `@` (a cuBLAS GEMM on a CuPy array); pooling, LRN and the ReLU rules launch the kernels in
# `kernels/`. Mixing devices is an error (CuPy refuses to combine its arrays with NumPy's), not a silent
# copy: the data must live where the parameters live.
#
# The check below is the contract of a fallback: on a machine without a GPU, asking for one raises an error that
# says why, and the CPU path is what runs.

# %%
rng = np.random.default_rng(0)
x_cpu = rng.standard_normal((4, 1, 16, 16)).astype(np.float32)
x_dev = backend.to_device(x_cpu, DEVICE)
print(f"on {DEVICE}: {type(x_dev).__module__}.{type(x_dev).__name__}, array module {backend.xp(x_dev).__name__}")
if GPU:
    assert backend.is_gpu_array(x_dev) and np.array_equal(backend.to_numpy(x_dev), x_cpu)   # round trip is exact
else:
    try:
        backend.to_device(x_cpu, "gpu")
        raise AssertionError("to_device(x, 'gpu') should fail where no GPU is usable")
    except RuntimeError as err:
        print(f"to_device(x, 'gpu') -> RuntimeError: {err}")
    assert backend.xp(x_dev) is np

# %% [markdown]
# ## 2. Training on the device
#
# The recipe of notebook 04 (`zfnet_small`, width 8, on 16x16 digits; SGD with momentum, weight decay and
# feature-scale clipping; crops of ±1 pixel; the rate divided by 10 for the last
# third of the epochs). `Trainer(..., device=DEVICE)` moves the network with `net.to` and
# every mini-batch with `to_device`; augmentation and batching stay on the CPU (they are cheap), and losses come
# back as Python floats.

# %%
splits = load_dataset("digits", image_size=16, seed=0)

def train(device, epochs):
    net = zfnet_small(num_classes=splits.num_classes, input_shape=splits.input_shape, width=8, seed=0)
    opt = SGD(net, lr=0.05, momentum=0.9, weight_decay=5e-4, clip_radius=0.1)
    trainer = Trainer(net, splits, opt, schedule=make_schedule("step", opt, step_size=max(1, round(2 * epochs / 3))),
                      batch_size=32, epochs=epochs, augment=Augment(crop_pad=1), seed=0, device=device,
                      progress=False, verbose=False)
    history = trainer.fit()
    return net, history

net, history = train(DEVICE, EPOCHS)
test = evaluate(net, splits.test)
print(f"trained on {DEVICE}: test top-1 {100 * test['top1']:.1f}% (chance 10%); "
      f"seconds per epoch (incl. validation): {', '.join('%.2f' % h['seconds'] for h in history)}")

fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ep = [h["epoch"] for h in history]
ax[0].plot(ep, [h["train_loss"] for h in history], "o--", label="train")
ax[0].plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
ax[1].plot(ep, [100 * h["train_top1"] for h in history], "o--", label="train")
ax[1].plot(ep, [100 * h["val_top1"] for h in history], "s-", label="validation")
ax[0].set_ylabel("cross-entropy"); ax[1].set_ylabel("top-1 accuracy (%)")
for a in ax: a.set_xlabel("epoch"); a.set_xticks(ep); a.grid(alpha=.3); a.legend(fontsize=8)
fig.suptitle(f"zfnet_small on digits 16x16, trained on the {DEVICE.upper()}", fontsize=10)
plt.tight_layout(); plt.show()
assert test["top1"] > 0.5 and history[-1]["train_loss"] < history[0]["train_loss"]

# %% [markdown]
# ## 3. A deconvnet projection on the device
#
# `project` (notebook 05) runs the network's own backward with the deconvnet ReLU rule; it works on whichever
# device holds the network and returns a NumPy array. For six test digits we keep the strongest unit of the
# `relu5` map (the rectified conv5 output) with the largest total activation, and project it to pixels. On a GPU
# we also project with a CPU copy of the same weights:
# the two must agree to float32 rounding (cuBLAS sums in another order than NumPy's BLAS).

# %%
picks = [int(np.flatnonzero(splits.test.y == d)[0]) for d in (0, 2, 3, 5, 7, 9)]
x6, y6 = splits.test.x[picks], splits.test.y[picks]
maps = backend.to_numpy(net.forward(backend.to_device(x6, DEVICE), until="relu5"))      # (6, F, h, w)
channels = maps.sum(axis=(2, 3)).argmax(axis=1)
proj = project(net, x6, "relu5", channels)                                             # NumPy, shaped like x6

if GPU:
    net_cpu = copy.deepcopy(net).to("cpu")
    proj_cpu = project(net_cpu, x6, "relu5", channels)
    err = np.abs(proj - proj_cpu).max() / np.abs(proj_cpu).max()
    print(f"GPU vs CPU projection: largest difference / largest value = {err:.1e}")
    assert err < 1e-4
else:
    print("no GPU: the projection ran on the CPU (nothing to compare it with)")
assert proj.shape == x6.shape and np.isfinite(proj).all() and np.abs(proj).max() > 0

fig, ax = plt.subplots(2, 6, figsize=(10, 3.6))
for k in range(6):
    ax[0, k].imshow(image_to_display(x6[k], splits.mean), cmap="gray")
    ax[0, k].set_title(f"digit {splits.class_names[y6[k]]}", fontsize=9)
    ax[1, k].imshow(projection_to_display(proj[k]), cmap="gray", vmin=0, vmax=1)
    ax[1, k].set_title(f"relu5 map {channels[k]}", fontsize=9)
for a in ax.ravel(): a.set_xticks([]); a.set_yticks([])
fig.suptitle(f"deconvnet projections of the strongest relu5 unit, computed on the {DEVICE.upper()} "
             "(grey = 0)", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 4. Timing: CPU vs GPU
#
# Three workloads, each timed as the best of a few repetitions after one warm-up call (the warm-up compiles the
# CUDA kernels and fills cuBLAS's caches; GPU calls are asynchronous, so the clock stops only after
# `Device.synchronize()`):
#
# * **conv forward + backward**: `ops.conv2d_forward` and `ops.conv2d_backward` on a batch of 16-channel 16x16
#   maps with 32 3x3 filters (a small middle-layer convolution);
# * **training epoch**: one epoch of section 2 (1,259 images, batch 32, plus validation), from the training
#   history (the median over the epochs after the first, so the warm-up is not counted);
# * **projection**: `project` of one relu5 unit for a batch of digits (a forward and a deconvnet backward).
#
# At this size expect a GPU to gain far less than its peak suggests: with 16x16 images and batches of a few dozen
# (the batch size is printed in the first output), every GPU kernel is tiny and launch overhead dominates, so the
# speed-up should grow with the batch (`MINICNN_NB_SCALE=4` makes the timed batches four times larger) and with
# the image size. No test asserts a timing; these numbers describe this machine on this run.

# %%
def sync(device):
    if device == "gpu":
        backend.cupy().cuda.Device().synchronize()

def best_time(fn, device, repeat=3):
    fn(); sync(device)                                           # warm-up: kernel compilation, caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); sync(device); times.append(time.perf_counter() - t)
    return min(times)

def conv_fwd_bwd(device):
    r = np.random.default_rng(1)
    x = backend.to_device(r.standard_normal((BATCH, 16, 16, 16)).astype(np.float32), device)
    W = backend.to_device((0.1 * r.standard_normal((32, 16, 3, 3))).astype(np.float32), device)
    b = backend.to_device(np.zeros(32, np.float32), device)
    dy = backend.to_device(r.standard_normal((BATCH, 32, 16, 16)).astype(np.float32), device)
    def step():
        y, cache = ops.conv2d_forward(x, W, b, stride=1, pad=1)
        return ops.conv2d_backward(dy, cache)
    return best_time(step, device)

def projection(device, trained):
    n = trained if device == DEVICE else copy.deepcopy(trained).to(device)
    xb = np.resize(splits.test.x, (BATCH,) + splits.test.x.shape[1:])
    ch = np.resize(channels, BATCH)
    return best_time(lambda: project(n, xb, "relu5", ch), device)

def epoch_time(hist):
    return float(np.median([h["seconds"] for h in hist[1:]])) if len(hist) > 1 else hist[0]["seconds"]

devices = ["cpu", "gpu"] if GPU else ["cpu"]
timings = {d: {} for d in devices}
for d in devices:
    timings[d]["conv forward + backward"] = conv_fwd_bwd(d)
    timings[d]["training epoch"] = epoch_time(history if d == DEVICE else train(d, 2)[1])
    timings[d]["projection"] = projection(d, net)

workloads = list(timings["cpu"])
shapes = {"conv forward + backward": f"x ({BATCH}, 16, 16, 16), W (32, 16, 3, 3), pad 1",
          "training epoch": f"{len(splits.train)} images 1x16x16, batch 32, + validation",
          "projection": f"{BATCH} images 1x16x16, one relu5 unit each"}
rows = ["| workload | shape | CPU | GPU | GPU speed-up |", "|---|---|---:|---:|---:|"]
for w in workloads:
    c = timings["cpu"][w]
    g = f"{1e3 * timings['gpu'][w]:.1f} ms" if GPU else "n/a — no GPU"
    s = f"{c / timings['gpu'][w]:.1f}x" if GPU else "n/a"
    rows.append(f"| {w} | {shapes[w]} | {1e3 * c:.1f} ms | {g} | {s} |")
display(Markdown("\n".join(rows)))
assert all(t > 0 for d in timings.values() for t in d.values())

fig, ax = plt.subplots(figsize=(8, 2.8))
y = np.arange(len(workloads))
height = 0.8 / len(devices)
for k, d in enumerate(devices):
    ax.barh(y + k * height, [1e3 * timings[d][w] for w in workloads], height, label=d.upper())
if not GPU:
    for i in y:
        ax.text(1e3 * timings["cpu"][workloads[i]] * 1.1, i, "GPU: n/a (no GPU)", va="center", fontsize=8, color="gray")
ax.set_yticks(y + height * (len(devices) - 1) / 2, workloads)
ax.set_xscale("log"); ax.set_xlabel("milliseconds (log scale)"); ax.legend(fontsize=8, loc="lower right")
ax.set_xlim(1, ax.get_xlim()[1] * (6 if not GPU else 1))
ax.set_title("time per call: conv and projection best of 3 after a warm-up, epoch the median after the first",
             fontsize=9)
ax.invert_yaxis(); ax.grid(alpha=.3, axis="x")
plt.tight_layout(); plt.show()
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")

# %% [markdown]
# **Summary.** The same `Sequential`, `Trainer` and `project` run on either device; what changes is where the
# arrays live (`net.to`, `backend.to_device`). Where a GPU is present, its projections agree with the CPU's to
# float32 rounding, and the table shows what it buys at this size. If the first output above says "NO GPU", this
# copy was executed on a machine **without** a GPU: everything ran on the CPU, and the GPU column reads
# "n/a — no GPU". Run it on a machine with CuPy and a CUDA device to fill it in.

# %% [markdown]
# ## Exercises
#
# Both exercises run on any machine: their checks use NumPy, and where a GPU is usable the first is also checked
# on it. Write each function; the cell after it checks it (✓, or ✗ with what is wrong) without stopping the
# notebook. `show_solution("07.col2im_kernel")` prints a reference answer, for after an honest try.

# %%
from minicnn.exercises import check, show_solution

# %% [markdown]
# ### Exercise 1: a forward pass on a device, and back
#
# Run `net` on `x` on `device` ("cpu" or "gpu") and return the output as a NumPy array, leaving the network on the
# CPU afterwards (also if the forward pass fails). Section 1 has the tools: `net.to(device)`,
# `backend.to_device(x, device)`, `backend.to_numpy(y)`. On a machine without a GPU, asking for "gpu" must raise the
# `RuntimeError` that says why, not quietly run on the CPU: the check tests that too.

# %%
# Exercise 07.predict_on: a forward pass on a device, and back
from minicnn import backend

def predict_on(net, x, device):
    """net: a Sequential on the CPU; x: NumPy (N, C, H, W) -> NumPy output of net.forward, computed on `device`."""
    raise NotImplementedError("your code here")

# %%
check("07.predict_on", predict_on)

# %% [markdown]
# ### Exercise 2: col2im as a GPU kernel would compute it
#
# `kernels/im2col.cu` computes `col2im` with one thread per pixel of `dx`; each thread *gathers* every
# column entry that `im2col` copied from its pixel and writes only its own element, so no two threads write the
# same place (no atomic additions, and the result does not depend on thread order). Write that kernel's body in
# Python: one loop `for i in range(N * C * H * W)` over the flat index of `dx`, recovering `(n, c, y, x)` from `i`,
# and for every tap `(ky, kx)` whose window `(oy, ox)` covers the pixel (in padded coordinates
# `oy * sy + ky == y + ph`, with `0 <= oy < oh`; the same along x), add `cols[((c*kh + ky)*kw + kx) * (N*oh*ow) +
# (n*oh + oy)*ow + ox]`. The arrays are flat, as a kernel sees them. (Read the .cu file after you try.)

# %%
# Exercise 07.col2im_kernel: col2im as a gather kernel
def col2im_kernel(cols, dx, N, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow):
    """cols: flat (C*kh*kw * N*oh*ow,) input; dx: flat (N*C*H*W,) output, written in place. Returns nothing."""
    raise NotImplementedError("your code here")

# %%
check("07.col2im_kernel", col2im_kernel)

# %% [markdown]
# ### Questions
#
# **Q1.** The im2col kernel gathers too, but for it that is the natural choice. Why is a *scatter* col2im (one thread
# per column entry, adding into `dx`) a problem on a GPU, and what does it cost to avoid it by gathering?
#
# <details><summary>Answer</summary>
#
# Where windows overlap, several column entries belong to one pixel, so scatter threads would add into the same
# `dx` element at the same time. Plain `+=` then loses updates (a race); atomic additions fix that but serialise
# the colliding threads and, in floating point, make the result depend on the order in which they happen to run, so
# two runs can differ in the last bits. Gathering makes each thread do a little index arithmetic to find its
# contributors (and skip the taps that do not land on it), in exchange for exact, repeatable results.
# </details>
#
# **Q2.** In section 4's table, which workloads would you expect a GPU to speed up least at this size, and why?
#
# <details><summary>Answer</summary>
#
# The smallest ones: a conv layer on a batch of 16x16 images has too little work per call to fill thousands of GPU
# threads, and each call pays a fixed cost (kernel launches, and copies between host and device if the data are not
# already there). A training epoch of this small network is many such small calls. Speed-ups grow with the batch,
# the image size and the width of the layers (try a larger `MINICNN_NB_SCALE`).
# </details>
