# %% [markdown]
# # 02 · Max-pooling switches, unpooling, and the three ReLU rules
#
# **What this notebook teaches.** Max pooling is not invertible, but it can remember *where* each maximum came
# from: the **switches**. Unpooling puts a value back at its switch, and that is exactly the gradient of max
# pooling. A ReLU's backward pass can gate the signal in three ways (backprop, deconvnet, guided), and the
# Zeiler–Fergus deconvnet turns out to be nothing but the network's ordinary backward pass with the deconvnet
# rule in every ReLU. We check each claim with `assert`s and build a deconvnet projection two ways.
#
# **What you need.** Notebook 01 (the backward of a convolution), NumPy. Shapes are `(N, C, H, W)`.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1) scales the size of the test image in section 4.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import minicnn
from minicnn import Conv2D, MaxPool2D, ReLU, Sequential, ops
from minicnn.gradcheck import distinct_values, numerical_gradient, relative_error

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
# The readable CPU path: every op here runs the NumPy code in minicnn/ops/ that this notebook explains, so a
# breakpoint or a print placed there is hit (the default fast path gives the same numbers from C loops).
minicnn.cpu_path("readable")
rng = np.random.default_rng(0)
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest"})


def annotate(ax, arr, fmt="{:.0f}", color="k", fontsize=9, skip_zero=False):
    for (r, c), v in np.ndenumerate(arr):
        if not (skip_zero and v == 0):
            ax.text(c, r, fmt.format(v), ha="center", va="center", color=color, fontsize=fontsize)


def switch_positions(cache):
    """Absolute input coordinates (row, col) of every switch: window origin + (s // kw, s % kw) - padding."""
    (kh, kw), (sy, sx), (ph, pw) = cache.kernel, cache.stride, cache.pad
    oh, ow = cache.out_shape[2:]
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    s = cache.switches
    return oy * sy + s // kw - ph, ox * sx + s % kw - pw

# %% [markdown]
# ## 1. Max pooling records switches
#
# For a $k\times k$ window at stride $s$, $y_{i,j} = \max_{0 \le u,v < k} x_{s i+u,\, s j+v}$. The forward pass also
# stores, for every output cell, the window-local index of the winner, $\text{switch}_{i,j} = u^* k + v^*$
# (int32; on ties the first maximum in row-major order wins). Below: a 6x6 input with distinct values, 2x2
# windows at stride 2. Each window is framed; its winner is circled; the switch map holds $u^*k+v^*$.

# %%
x = rng.permutation(36).astype(np.float64).reshape(1, 1, 6, 6)
y, cache = ops.max_pool2d_forward(x, 2, 2)
rows, cols = switch_positions(cache)
assert cache.switches.dtype == np.int32
assert np.array_equal(y[0, 0], x[0, 0][rows[0, 0], cols[0, 0]])     # the switch points at the maximum

fig, ax = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.5, 1, 1]})
ax[0].imshow(x[0, 0], cmap="Greys", vmin=-10, vmax=50); annotate(ax[0], x[0, 0])
for i in range(3):
    for j in range(3):
        ax[0].add_patch(Rectangle((2 * j - .5, 2 * i - .5), 2, 2, fill=False, ec="tab:blue", lw=2))
ax[0].scatter(cols[0, 0], rows[0, 0], s=400, facecolors="none", edgecolors="tab:red", lw=2)
ax[0].set_title("x: 2x2 windows, winners circled")
ax[1].imshow(y[0, 0], cmap="Greys", vmin=-10, vmax=50); annotate(ax[1], y[0, 0]); ax[1].set_title("y = max pool")
ax[2].imshow(cache.switches[0, 0], cmap="Pastel2", vmin=0, vmax=7); annotate(ax[2], cache.switches[0, 0])
ax[2].set_title("switches (u*k + v)")
for a in ax: a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()

# ties: a constant window picks its first position
_, tie_cache = ops.max_pool2d_forward(np.ones((1, 1, 4, 4)), 2, 2)
assert (tie_cache.switches == 0).all()

# %% [markdown]
# ## 2. Unpooling, and why it is the gradient of max pooling
#
# Unpooling is the approximate inverse that the switches allow: place $y_{i,j}$ at its switch, zeros elsewhere.
# It recovers the winners exactly and loses everything else.
#
# The gradient of max pooling is the same map. Locally (no ties), $y_{i,j} = x_{p(i,j)}$ where $p(i,j)$ is the
# switch position, so $\partial y_{i,j}/\partial x_a = [a = p(i,j)]$ and
#
# $$\frac{\partial L}{\partial x_a} = \sum_{i,j} \delta_{i,j}\,[a = p(i,j)] ,$$
#
# i.e. "put each $\delta_{i,j}$ at its switch, adding where several windows chose the same pixel". In minicnn the
# two are literally one function: `unpool2d is max_pool2d_backward`.

# %%
assert ops.unpool2d is ops.max_pool2d_backward
x_rec = ops.unpool2d(y, cache)
winners = np.zeros_like(x, dtype=bool)
winners[0, 0, rows[0, 0], cols[0, 0]] = True
assert np.array_equal(x_rec[winners], x[winners]) and not x_rec[~winners].any()

# overlapping windows (3x3, stride 2, as in AlexNet and ZF): one pixel can win two windows; unpooling adds
x7 = distinct_values((1, 1, 7, 7), rng, spacing=1.0)
y7, cache7 = ops.max_pool2d_forward(x7, 3, 2)
counts = ops.unpool2d(np.ones_like(y7), cache7)             # how many windows each pixel won
dy7 = rng.standard_normal(y7.shape)
dx7 = ops.max_pool2d_backward(dy7, cache7)
assert np.isclose(dx7.sum(), dy7.sum())                     # unpooling moves mass, it never creates it
dx7_num = numerical_gradient(lambda: ops.max_pool2d_forward(x7, 3, 2)[0], x7, dy7)
err = relative_error(dx7, dx7_num)
assert err < 1e-8
print(f"max-pool backward vs central differences (3x3, stride 2): relative error {err:.1e}")
print(f"pixels that won two windows: {int((counts == 2).sum())}, three or more: {int((counts >= 3).sum())}")

fig, ax = plt.subplots(1, 4, figsize=(13, 3.4))
ax[0].imshow(x[0, 0], cmap="Greys", vmin=-10, vmax=50); annotate(ax[0], x[0, 0]); ax[0].set_title("x")
ax[1].imshow(y[0, 0], cmap="Greys", vmin=-10, vmax=50); annotate(ax[1], y[0, 0]); ax[1].set_title("y = max pool 2x2")
ax[2].imshow(x_rec[0, 0], cmap="Greys", vmin=-10, vmax=50); annotate(ax[2], x_rec[0, 0], skip_zero=True)
ax[2].set_title("unpool(y): winners back in place")
ax[3].imshow(counts[0, 0], cmap="viridis", vmin=0, vmax=3); annotate(ax[3], counts[0, 0], color="w", skip_zero=True)
ax[3].set_title("3x3/2 on 7x7: windows won per pixel", fontsize=10)
for a in ax: a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3. Three backward rules for a ReLU
#
# The forward pass is always $y = \max(x, 0)$. What differs is how a signal $\delta$ coming down is gated:
#
# | rule | passes $\delta$ where | used by |
# |---|---|---|
# | `"backprop"` | $x > 0$ (the forward input) | training; saliency maps (Simonyan et al.) |
# | `"deconvnet"` | $\delta > 0$ (the signal itself) | Zeiler–Fergus projections |
# | `"guided"` | $x > 0$ and $\delta > 0$ | guided backpropagation (Springenberg et al.) |
#
# Backprop is the true derivative. The deconvnet treats the way down as its own ReLU network that keeps only
# positive reconstructions, so its output does not depend on $x$ at all; guided backprop applies both gates.
# Below, one forward input and one downward signal, and the three outputs.

# %%
t = np.linspace(0, 1, 60)
x_sig = np.sin(2 * np.pi * 2.3 * t) + 0.3 * rng.standard_normal(t.size)
d_sig = np.cos(2 * np.pi * 1.7 * t + 0.5) + 0.3 * rng.standard_normal(t.size)
out = {rule: ops.relu_backward(d_sig, x_sig, rule) for rule in ops.RELU_RULES}

assert np.array_equal(out["backprop"], np.where(x_sig > 0, d_sig, 0))
assert np.array_equal(out["deconvnet"], np.maximum(d_sig, 0))
assert np.array_equal(out["deconvnet"], ops.relu_backward(d_sig, -x_sig, "deconvnet"))  # x does not matter
assert np.array_equal(out["guided"], ops.relu_backward(out["deconvnet"], x_sig, "backprop"))  # both gates
assert (out["guided"] >= 0).all() and (out["deconvnet"] >= 0).all()

fig, ax = plt.subplots(5, 1, figsize=(9, 7), sharex=True)
series = [(x_sig, "forward input x", "tab:gray"), (d_sig, "signal δ coming down", "tab:purple"),
          (out["backprop"], "backprop: δ·[x>0]", "tab:blue"), (out["deconvnet"], "deconvnet: δ·[δ>0]", "tab:orange"),
          (out["guided"], "guided: δ·[x>0]·[δ>0]", "tab:green")]
for a, (s, label, color) in zip(ax, series):
    a.fill_between(t, 0, 1, where=x_sig > 0, color="tab:gray", alpha=.12, transform=a.get_xaxis_transform(), step="mid")
    a.bar(t, s, width=t[1] - t[0], color=color); a.axhline(0, color="k", lw=.6)
    a.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9); a.set_ylim(-1.8, 1.8); a.set_yticks([])
ax[0].set_title("shaded: where the forward input x > 0")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 4. The deconvnet is the backward pass with another rule
#
# Zeiler and Fergus project one activation back to pixel space by running the layers in reverse:
# **unpool** with the switches, **rectify**, and **filter with the transposed filters**. Compare with the backward
# pass: max-pool backward *is* unpooling with the switches (section 2); the backward of a convolution to its input
# *is* filtering with the transposed, 180°-rotated filters (notebook 01); and rectifying the signal *is* the
# deconvnet ReLU rule (section 3). So the projection is
#
# ```python
# net.forward(image); keep one activation, zero the rest -> dy
# net.backward(dy, rule="deconvnet", start=layer, param_grads=False)
# ```
#
# and the same call with `rule="guided"` or `"backprop"` gives guided backpropagation or a saliency map.
# A small two-stage network with hand-made oriented-edge filters in its first layer (so the result is easy to
# read) shows it, and the same projection written out op by op gives the identical array.

# %%
size = int(48 * max(1.0, SCALE) ** 0.5)
yy, xx = np.mgrid[0:size, 0:size] / size
image = ((xx - .3) ** 2 + (yy - .35) ** 2 < .04).astype(np.float64)                 # a disc
image += ((np.abs((xx - .68) + (yy - .62)) < .05) & (np.abs(xx - .68) < .22))        # a diagonal bar
image[int(.7 * size):int(.9 * size), int(.12 * size):int(.35 * size)] += 1.0         # a square
image = image[None, None] + 0.05 * rng.standard_normal((1, 1, size, size))

edges = np.zeros((4, 1, 5, 5))
edges[0, 0, :, :2], edges[0, 0, :, 3:] = 1, -1                            # vertical edge
edges[1] = edges[0].transpose(0, 2, 1)                                     # horizontal edge
edges[2, 0] = np.sign(np.subtract.outer(np.arange(5), np.arange(5)))       # diagonal edges
edges[3, 0] = edges[2, 0, :, ::-1]

net = Sequential([Conv2D(1, 4, 5, pad=2, name="conv1"), ReLU(name="relu1"), MaxPool2D(3, 2, name="pool1"),
                  Conv2D(4, 6, 3, pad=1, rng=np.random.default_rng(1), name="conv2"), ReLU(name="relu2"),
                  MaxPool2D(2, 2, name="pool2")]).astype(np.float64)
net["conv1"].params["W"][...] = edges / 10
net["conv1"].params["b"][...] = -0.2

net.forward(image)
act = net["relu2"].cache.clip(min=0)                      # relu2's output = max(its input, 0)
f, r, c = np.unravel_index(np.argmax(act[0]), act.shape[1:])
dy = np.zeros_like(act)
dy[0, f, r, c] = act[0, f, r, c]                          # keep one activation, zero the rest
proj = {rule: net.backward(dy, rule=rule, start="relu2", param_grads=False) for rule in ops.RELU_RULES}

# the same projection, op by op (ZF's recipe), from the caches the forward pass left in each layer
d = ops.relu_backward(dy, net["relu2"].cache, "deconvnet")                        # rectify
d, _, _ = ops.conv2d_backward(d, net["conv2"].cache, param_grads=False)           # transposed filters
d = ops.unpool2d(d, net["pool1"].cache)                                           # unpool with switches
d = ops.relu_backward(d, net["relu1"].cache, "deconvnet")                         # rectify
d, _, _ = ops.conv2d_backward(d, net["conv1"].cache, param_grads=False)           # transposed filters
assert np.array_equal(d, proj["deconvnet"])

# a projection never leaves the unit's receptive field
info = {row.name: row for row in net.layer_info((1, size, size))}["relu2"]
cy, cx = info.start[0] + r * info.jump[0], info.start[1] + c * info.jump[1]
top, left = int(np.ceil(cy - (info.rf[0] - 1) / 2)), int(np.ceil(cx - (info.rf[1] - 1) / 2))
outside = np.ones((size, size), dtype=bool)
outside[max(top, 0):top + info.rf[0], max(left, 0):left + info.rf[1]] = False
for rule, p in proj.items():
    assert not p[0, 0][outside].any(), rule
print(f"unit: relu2 map {f} at ({r}, {c}); receptive field {info.rf[0]}x{info.rf[1]} px from ({top}, {left})")

# the whole feature map f: keep every activation of map f, zero the other maps
dy_map = np.zeros_like(act)
dy_map[0, f] = act[0, f]
proj_map = {rule: net.backward(dy_map, rule=rule, start="relu2", param_grads=False) for rule in ops.RELU_RULES}

fig, ax = plt.subplots(2, 4, figsize=(13, 6.6))
ax[0, 0].imshow(image[0, 0], cmap="gray"); ax[0, 0].set_title("input; framed: the unit's receptive field", fontsize=10)
ax[0, 0].add_patch(Rectangle((left - .5, top - .5), info.rf[1], info.rf[0], fill=False, ec="tab:red", lw=1.5))
ax[1, 0].imshow(act[0, f], cmap="magma"); ax[1, 0].set_title(f"relu2 feature map {f}", fontsize=10)
crop = (slice(max(top, 0), top + info.rf[0]), slice(max(left, 0), left + info.rf[1]))
for j, rule in enumerate(ops.RELU_RULES, start=1):
    for i, (p, title) in enumerate([(proj[rule][0, 0][crop], f'one unit, rule="{rule}" (zoom on frame)'),
                                    (proj_map[rule][0, 0], f'whole map {f}, rule="{rule}"')]):
        m = np.abs(p).max() or 1.0
        ax[i, j].imshow(p, cmap="RdBu_r", vmin=-m, vmax=m); ax[i, j].set_title(title, fontsize=10)
for a in ax.ravel(): a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()
for rule in ops.RELU_RULES:
    print(f"{rule:>9}: {np.count_nonzero(proj_map[rule]):4d} of {size * size} pixels reached by the map's projection")

# %% [markdown]
# Top row: one relu2 unit projected to the pixels (zoomed on its receptive field); it has learned nothing, but its
# conv1 stage detects edges, and the projection is the edge of the disc that the unit responds to. Bottom row:
# the whole feature map projected at once. The three rules differ only in the ReLU gates on the way down: the
# deconvnet ignores the forward pass and lets every positive signal through, so it reaches more pixels and looks
# more diffuse; guided backprop adds the forward gate and is the cleanest; backprop lets negative signals through
# wherever a unit was active. (Red and blue both appear under every rule, because the last step, the transposed
# first-layer filters, mixes signs.) Every projection stays inside the receptive field, and the op-by-op version
# equals `net.backward` bit for bit: nothing in the visualization is a separate implementation. Next: notebook 03
# (testing gradients).

# %% [markdown]
# ## Exercises
#
# Write each function; the cell after it checks it (✓, or ✗ with what is wrong) without stopping the notebook.
# `show_solution("02.unpool")` prints a reference answer, for after an honest try.

# %%
from minicnn.exercises import check, show_solution

# %% [markdown]
# ### Exercise 1: the guided ReLU backward
#
# Section 3's table: backprop passes `dy` where the forward input `x > 0`, the deconvnet where `dy > 0`, guided
# backpropagation where both hold. Write the guided rule without `ops.relu_backward`. Like every backward, it must
# return a new array and leave `dy` as it was.

# %%
# Exercise 02.guided_relu: the guided ReLU backward
def guided_relu_backward(dy, x):
    """dy, x: arrays of one shape (x is the ReLU's forward input) -> dx, the same shape."""
    raise NotImplementedError("your code here")

# %%
check("02.guided_relu", guided_relu_backward)

# %% [markdown]
# ### Exercise 2: unpooling with switches
#
# Given the pooled values `y` (N, C, oh, ow) and the `switches` of the forward pass (window-local winner
# `u * k + v`, section 1), place each value at its switch in an array of `x_shape`, zeros elsewhere. No padding;
# `k x k` windows at stride `stride`. Careful with overlapping windows (3x3 at stride 2, as in AlexNet and ZF): the
# check includes them.

# %%
# Exercise 02.unpool: unpooling with switches
def unpool(y, switches, x_shape, k, stride):
    """y (N, C, oh, ow), switches (N, C, oh, ow) int -> (N, C, H, W) with each y value at its switch."""
    raise NotImplementedError("your code here")

# %%
check("02.unpool", unpool)

# %% [markdown]
# ### Questions
#
# **Q1.** With 3x3 windows at stride 2, can one input pixel receive more than one value when unpooling? Can it with
# 2x2 windows at stride 2?
#
# <details><summary>Answer</summary>
#
# With 3x3 at stride 2 neighbouring windows share a row or column of pixels, so a pixel that is the maximum of two
# (or four) windows is the switch of each of them and receives the sum of their values. With 2x2 at stride 2 the
# windows tile the image without overlap: every pixel belongs to exactly one window and receives at most one value.
# </details>
#
# **Q2.** Section 4 found that a projection with `rule="deconvnet"` reaches more pixels than one with `"guided"`.
# Must it always (same network, image and starting unit)? Argue from the two gates.
#
# <details><summary>Answer</summary>
#
# No. Both rules zero everything outside their gate, but after the first ReLU
# the signals differ, so the next layer's `dy > 0` test is applied to different numbers, and a pixel reached under
# one rule need not be reached under the other. What is true is local: at a single ReLU, for the same incoming
# `dy`, the guided gate (`x > 0` and `dy > 0`) passes a subset of what the deconvnet gate (`dy > 0`) passes. The
# larger counts in section 4 are a measurement, not a theorem; check such claims before you believe them.
# </details>

