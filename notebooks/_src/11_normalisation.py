# %% [markdown]
# # 11 · Batch, layer and instance normalisation
#
# **What this notebook teaches.** Three normalisation layers that share one formula and differ only in *which
# numbers they average over*. Batch norm (Ioffe & Szegedy 2015) is in the CS543 and cs231n seed notes; layer norm
# (Ba et al. 2016) and instance norm (Ulyanov et al. 2016) are in the CENG403 notes. We
#
# 1. write the three down as the CENG403 notes do and read minicnn's code for them (one function serves all three);
# 2. draw the set of values each one pools, and check it numerically;
# 3. see the one property that sets batch norm apart: an image's output depends on the *other images of the batch*;
# 4. derive the backward pass and check all three against central differences (float64, random upstream gradient),
#    and see why an all-ones upstream gradient would check nothing here;
# 5. train the same small network four times — no normalisation, batch, layer, instance — on the same data, from
#    the same initial weights, on the same batches.
#
# **What you need.** Notebooks 01 and 03 (backward passes, gradient checks). `minicnn.ops.normalization`,
# `minicnn.layers.BatchNorm / LayerNorm / InstanceNorm`, `minicnn.gradcheck`.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1: scikit-learn's digits at 16x16, 4 epochs per network, about 20 s of
# CPU). Larger values train longer.

# %%
import inspect
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from minicnn import ops
from minicnn.data import load_dataset
from minicnn.exercises import check
from minicnn.gradcheck import check_layer, numerical_gradient
from minicnn.layers import BatchNorm, Conv2D, Flatten, InstanceNorm, LayerNorm, Linear, MaxPool2D, ReLU
from minicnn.net import Sequential
from minicnn.optim import SGD

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
EPOCHS = max(2, int(round(4 * SCALE)))
T0 = time.perf_counter()
plt.rcParams.update({"figure.dpi": 90})

# %% [markdown]
# ## 1. One formula, three sets
#
# For an input $x$ of shape $(N, C, H, W)$ — $N$ images, $C$ channels, $H \times W$ positions — each layer computes
# a mean and a variance over a set $S$ of positions, normalises, and then scales and shifts with learned
# per-channel parameters $\gamma_c, \beta_c$:
#
# $$\mu_S = \frac{1}{|S|}\sum_{i \in S} x_i, \qquad \sigma_S^2 = \frac{1}{|S|}\sum_{i\in S}(x_i - \mu_S)^2, \qquad
# \hat x_i = \frac{x_i - \mu_S}{\sqrt{\sigma_S^2 + \epsilon}}, \qquad y_{nchw} = \gamma_c\,\hat x_{nchw} + \beta_c .$$
#
# The CENG403 notes write out the three choices of $S$:
#
# | | statistics | pooled over ($S$) | one pair $(\mu, \sigma)$ per |
# |---|---|---|---|
# | **batch norm** | $\mu_c = \frac{1}{NHW}\sum_{n,h,w} x_{nchw}$ | images, rows, columns | channel $c$ |
# | **layer norm** | $\mu_n = \frac{1}{CHW}\sum_{c,h,w} x_{nchw}$ | channels, rows, columns | image $n$ |
# | **instance norm** | $\mu_{nc} = \frac{1}{HW}\sum_{h,w} x_{nchw}$ | rows, columns | image $n$ and channel $c$ |
#
# (and $\sigma^2$ over the same set). The variance is the biased one (divide by $|S|$), and $\epsilon = 10^{-5}$
# goes *inside* the square root, as in PyTorch. In minicnn the three are one function with a different `axes`
# argument; batch norm adds running statistics for evaluation, which the other two do not need:

# %%
from minicnn.ops import normalization
print(inspect.getsource(normalization._normalize_forward))
print(inspect.getsource(normalization.layer_norm_forward).split('"""')[0] + "...")
print(inspect.getsource(normalization.instance_norm_forward).split('"""')[0] + "...")

# %% [markdown]
# ## 2. What each one pools
#
# In the figure, each small square is one value $x_{nchw}$: rows of blocks are images $n$, columns of blocks are
# channels $c$, and inside a block are that map's $H \times W$ positions. The coloured squares are the set $S$ that
# *one* mean and variance are computed over — for the value marked with a dot.

# %%
N, C, H, W = 4, 5, 3, 3
sets = {"batch norm: S = (N, H, W)": lambda n, c: (slice(None), c),
        "layer norm: S = (C, H, W)": lambda n, c: (n, slice(None)),
        "instance norm: S = (H, W)": lambda n, c: (n, c)}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, (title, pick) in zip(axes, sets.items()):
    mark = np.zeros((N, C))
    mark[pick(1, 2)] = 1                                 # the set for the value at image 1, channel 2
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    x0, y0 = c * (W + 1) + w, (N - 1 - n) * (H + 1) + (H - 1 - h)
                    ax.add_patch(plt.Rectangle((x0, y0), 0.9, 0.9, color="tab:orange" if mark[n, c] else "0.85"))
    ax.plot(2 * (W + 1) + 1.45, (N - 2) * (H + 1) + 1.45, "k.", ms=8)
    ax.set_xlim(-0.5, C * (W + 1)); ax.set_ylim(-0.5, N * (H + 1))
    ax.set_xticks([c * (W + 1) + W / 2 for c in range(C)]); ax.set_xticklabels([f"c={c}" for c in range(C)])
    ax.set_yticks([(N - 1 - n) * (H + 1) + H / 2 for n in range(N)]); ax.set_yticklabels([f"n={n}" for n in range(N)])
    ax.set_aspect("equal"); ax.set_title(title, fontsize=10)
    for s in ax.spines.values(): s.set_visible(False)
fig.suptitle("the values pooled into one mean and variance (orange), for the value marked with a dot", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# Batch norm's orange column runs through *every image* of the batch: one channel across the batch. Layer norm's
# orange row stays inside *one image* but takes all its channels. Instance norm takes the smallest set: one map of
# one image. The check below makes the table numerical: after each layer (with $\gamma = 1, \beta = 0$), the values
# of every set $S$ have mean 0 and standard deviation 1, and only those sets.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((N, C, H, W)) * rng.uniform(0.5, 3, (N, C, 1, 1)) + rng.uniform(-2, 2, (N, C, 1, 1))
ones, zeros = np.ones(C), np.zeros(C)
outputs = {"batch": ops.batch_norm_forward(x, ones, zeros, np.zeros(C), np.ones(C), train=True)[0],
           "layer": ops.layer_norm_forward(x, ones, zeros)[0],
           "instance": ops.instance_norm_forward(x, ones, zeros)[0]}
axes_of = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}
print(f"{'':10s}" + "".join(f"{'std over ' + str(a):>22s}" for a in axes_of.values()))
for kind, y in outputs.items():
    print(f"{kind:10s}" + "".join(f"{y.std(axis=a).min():10.3f} .. {y.std(axis=a).max():6.3f}" for a in axes_of.values()))
    a = axes_of[kind]
    assert np.allclose(y.mean(axis=a), 0, atol=1e-12) and np.allclose(y.std(axis=a), 1, atol=1e-4)

# %% [markdown]
# Batch norm and layer norm each have exactly one column at 1.000 .. 1.000: their own set; over the other sets their
# outputs are spread anyhow (0.19 .. 1.36). Instance norm is at 1 in every column: each of its maps has mean 0 and
# standard deviation 1, so any union of whole maps has too. It is the strictest of the three — with $\gamma = 1,
# \beta = 0$ its output also satisfies the other two's statistics, and it removes the most information (every map's
# own brightness and contrast).
#
# ### Exercise 11.1 — which axes?
#
# For an input of shape `(N, C, H, W)`, return the axes each layer pools its statistics over, as a tuple for
# `x.mean(axis=...)`: `norm_axes("batch")`, `norm_axes("layer")`, `norm_axes("instance")`.

# %%
# Exercise 11.norm_axes: the axes each normalisation pools its statistics over
def norm_axes(kind):
    raise NotImplementedError("your code here")


# %%
print(check("11.norm_axes", norm_axes))

# %% [markdown]
# ### Exercise 11.2 — the layer-norm forward
#
# Write `layer_norm_forward(x, gamma, beta, eps=1e-5)` for `x` of shape `(N, C, H, W)` and `gamma, beta` of shape
# `(C,)`, from the formula above. The check compares it with minicnn's on inputs whose images and channels have
# different offsets and scales, so normalising over the wrong axes shows.

# %%
# Exercise 11.layer_norm_forward: the layer-norm forward
def layer_norm_forward(x, gamma, beta, eps=1e-5):
    raise NotImplementedError("your code here")


# %%
print(check("11.layer_norm_forward", layer_norm_forward))

# %% [markdown]
# ## 3. Batch norm looks at the other images
#
# Layer and instance norm compute an image's output from that image alone. Batch norm, in training, uses the
# statistics of the whole batch, so the same image gives a different output next to different companions, and it
# needs more than one value per channel (minicnn refuses a training batch with a single value per channel). In
# evaluation it uses running averages collected during training instead, so its output becomes a fixed function of
# the image again — and training and evaluation compute different things, a classic source of surprises.

# %%
image = x[:1]
companions_a, companions_b = x[1:], rng.standard_normal((3, C, H, W)) * 4 + 1
for kind in ("batch", "layer", "instance"):
    def run(batch):
        if kind == "batch":
            return ops.batch_norm_forward(batch, ones, zeros, np.zeros(C), np.ones(C), train=True)[0][0]
        return (ops.layer_norm_forward if kind == "layer" else ops.instance_norm_forward)(batch, ones, zeros)[0][0]
    change = np.abs(run(np.concatenate([image, companions_a])) - run(np.concatenate([image, companions_b]))).max()
    print(f"{kind:8s} norm: image 0's output changes by {change:.3f} when the other images change")
    assert (change > 0.1) == (kind == "batch")

# %% [markdown]
# ## 4. Backward, and a gradient check that can fail
#
# With $g = \gamma_c\, \partial L/\partial y$ (the gradient reaching $\hat x$) and means taken over the same set $S$,
#
# $$\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma_S^2 + \epsilon}}\Big(g - \operatorname{mean}_S g
# - \hat x\, \operatorname{mean}_S(g\,\hat x)\Big), \qquad \frac{\partial L}{\partial \gamma_c} =
# \sum_{n,h,w} \frac{\partial L}{\partial y}\hat x, \qquad \frac{\partial L}{\partial \beta_c} =
# \sum_{n,h,w}\frac{\partial L}{\partial y} .$$
#
# The first term is what a fixed $\mu$ and $\sigma$ would give; the two subtracted means are the paths through
# $\mu_S$ and through $\sigma_S^2$, which every $x_i$ in $S$ also moves. minicnn's code is that line:

# %%
print(inspect.getsource(normalization._normalize_backward))

# %% [markdown]
# `check_layer` compares every gradient (input, $\gamma$, $\beta$) with central differences, in float64, with a
# random upstream gradient, on inputs without ties (notebook 03). Batch norm is checked in training mode, where the
# batch statistics depend on $x$.

# %%
for layer, shape, train in [(BatchNorm(3), (4, 3, 3, 3), True), (LayerNorm(3), (2, 3, 3, 4), False),
                            (InstanceNorm(3), (2, 3, 4, 3), False)]:
    layer.params["gamma"][:] = rng.uniform(0.5, 2, 3); layer.params["beta"][:] = rng.uniform(-1, 1, 3)
    errors = check_layer(layer, rng.standard_normal(shape), rng=rng, train=train, details=True)
    print(f"{type(layer).__name__:12s} " + "  ".join(f"d{k}: {e:.1e}" for k, e in errors.items()))
    assert max(errors.values()) < 1e-6

# %% [markdown]
# **Why the upstream gradient must be random.** If $\partial L/\partial y$ is the same number everywhere in $S$ (the
# all-ones trap of notebook 03), then $g$ is constant over $S$, so $g - \operatorname{mean}_S g = 0$, and
# $\operatorname{mean}_S(g \hat x) = g\, \operatorname{mean}_S \hat x = 0$: the true $\partial L/\partial x$ is
# exactly zero. A "backward" that returns zeros — or forgets the whole formula — would pass such a check. (It is also
# why a loss that only adds up a normalised layer's outputs cannot train the layers below it.)

# %%
y, cache = ops.layer_norm_forward(x, ones, zeros)
dx_ones = ops.layer_norm_backward(np.ones_like(y), cache)[0]
broken = lambda dy: np.zeros_like(dy)                                   # a backward that does nothing  # noqa: E731
print(f"true dx for an all-ones upstream gradient: max |dx| = {np.abs(dx_ones).max():.1e} (zero up to rounding)")
for name, dy in [("all-ones", np.ones_like(y)), ("random", rng.standard_normal(y.shape))]:
    numeric = numerical_gradient(lambda: ops.layer_norm_forward(x, ones, zeros)[0], x, dy)
    gap = np.abs(broken(dy) - numeric).max()
    print(f"{name:9s} upstream gradient: max |broken - numerical| = {gap:.1e}, max |numerical| = "
          f"{np.abs(numeric).max():.1e} -> the broken backward {'passes' if gap < 1e-6 else 'fails'}")
    assert (gap < 1e-6) == (name == "all-ones")

# %% [markdown]
# With an all-ones upstream gradient the numerical gradient is itself zero (up to the rounding of the central
# differences), so the broken backward agrees with it perfectly; with a random one the true gradient is of order 1
# and the broken backward is caught. (A *relative* error is no help in the all-ones case: it divides by the size of
# a gradient that is zero.)
#
# ### Exercise 11.3 — the layer-norm backward
#
# Write `layer_norm_backward(dy, x, gamma, eps=1e-5)` returning $\partial L/\partial x$ (recompute what you need
# from `x`). The check compares it with central differences of the forward, in float64, with a random `dy`.

# %%
# Exercise 11.layer_norm_backward: the layer-norm backward, checked numerically
def layer_norm_backward(dy, x, gamma, eps=1e-5):
    raise NotImplementedError("your code here")


# %%
print(check("11.layer_norm_backward", layer_norm_backward))

# %% [markdown]
# ## 5. Trained side by side
#
# The same small network four times: `conv 3x3 (8) – [norm] – ReLU – maxpool – conv 3x3 (16) – [norm] – ReLU –
# maxpool – fc`, where `[norm]` is nothing, `BatchNorm`, `LayerNorm` or `InstanceNorm`. Same initial weights (the
# normalisation layers start as the identity map's parameters $\gamma = 1, \beta = 0$), same batches in the same
# order, SGD with momentum at two learning rates: a moderate one, and one fifteen times larger. Data: scikit-learn's
# handwritten digits at 16x16, mean-subtracted (nothing is downloaded).

# %%
splits = load_dataset("digits", image_size=16, seed=0)
print(f"{len(splits.train)} training and {len(splits.test)} test digits of shape {splits.input_shape}; {EPOCHS} epochs")
NORMS = {"none": None, "batch norm": BatchNorm, "layer norm": LayerNorm, "instance norm": InstanceNorm}


def small_net(norm, seed=0):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, 8, 3, pad=1, rng=rng, name="conv1")]
    layers += [norm(8, name="norm1")] if norm else []
    layers += [ReLU(name="relu1"), MaxPool2D(2, name="pool1"), Conv2D(8, 16, 3, pad=1, rng=rng, name="conv2")]
    layers += [norm(16, name="norm2")] if norm else []
    layers += [ReLU(name="relu2"), MaxPool2D(2, name="pool2"), Flatten(name="flat"),
               Linear(16 * 4 * 4, 10, rng=rng, name="fc")]
    return Sequential(layers, name=f"net ({norm.__name__ if norm else 'no norm'})")


def train(norm, lr, epochs=EPOCHS, batch=32, seed=0):
    net = small_net(norm)
    opt = SGD(net, lr=lr, momentum=0.9, weight_decay=5e-4)
    order = np.random.default_rng(seed)
    losses, accs = [], []
    x_tr, y_tr = splits.train.x, splits.train.y
    for _ in range(epochs):
        perm = order.permutation(len(y_tr))
        for start in range(0, len(perm) - batch + 1, batch):
            b = perm[start:start + batch]
            loss, d = ops.softmax_cross_entropy(net.forward(x_tr[b], train=True), y_tr[b])
            net.backward(d, input_grad=False)
            opt.step()
            losses.append(float(loss))
        accs.append(float((net.forward(splits.test.x).argmax(axis=1) == splits.test.y).mean()))
    return losses, accs


LRS = (0.02, 0.3)
t = time.perf_counter()
runs = {(name, lr): train(norm, lr) for lr in LRS for name, norm in NORMS.items()}
print(f"8 trainings: {time.perf_counter() - t:.1f} s")
print(f"{'test accuracy after each epoch':32s}")
for (name, lr), (losses, accs) in runs.items():
    print(f"  lr {lr:<5g} {name:14s} " + "  ".join(f"{100 * a:5.1f}" for a in accs)
          + f"   (last training loss {np.mean(losses[-10:]):.3f})")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
smooth = lambda v, k=10: np.convolve(v, np.ones(k) / k, mode="valid")       # noqa: E731
colours = dict(zip(NORMS, ["0.3", "tab:blue", "tab:orange", "tab:green"]))
for ax, lr in zip(axes[:2], LRS):
    for name in NORMS:
        ax.plot(smooth(runs[(name, lr)][0]), color=colours[name], label=name)
    ax.set_yscale("log"); ax.set_xlabel("SGD step"); ax.set_ylabel("training loss (mean of 10 steps)")
    ax.set_title(f"training loss, lr {lr:g}", fontsize=10); ax.legend(fontsize=8)
for name in NORMS:
    for lr, style in zip(LRS, ["-", "--"]):
        ax = axes[2]
        ax.plot(range(1, EPOCHS + 1), [100 * a for a in runs[(name, lr)][1]], style, marker="o", ms=3,
                color=colours[name], label=f"{name}, lr {lr:g}")
axes[2].set_xlabel("epoch"); axes[2].set_ylabel("test accuracy (%)"); axes[2].legend(fontsize=7, ncol=2, loc="center")
axes[2].set_xticks(range(1, EPOCHS + 1))
axes[2].set_title("test accuracy (solid: lr %g, dashed: lr %g)" % LRS, fontsize=10)
plt.tight_layout(); plt.show()

final = {key: accs[-1] for key, (_, accs) in runs.items()}
assert final[("batch norm", LRS[0])] > final[("none", LRS[0])] - 0.02     # batch norm does not hurt at the same lr
assert final[("batch norm", LRS[1])] > final[("none", LRS[1])]            # and it keeps the larger rate usable

# %% [markdown]
# **What the figure shows** (numbers in the table above). At the moderate rate (left panel, solid lines on the
# right), all four networks learn. The three normalised ones reach a lower training loss sooner than the plain one,
# batch norm and instance norm the lowest, and batch norm ends with the best test accuracy (98.5% against 93.3%
# for no normalisation after 4 epochs; layer norm in between). At fifteen times the rate (middle panel, dashed
# lines), the plain network learns for a few dozen steps, then its loss jumps to 2.3 (= ln 10: it predicts the same
# class for everything) and it never recovers; layer norm dies the same way within the first steps. Batch and
# instance norm keep training (about 88–90% test accuracy): normalising each channel separately undoes the growth
# of any one filter's scale that a too-large step causes, which is the practical argument of Ioffe & Szegedy — higher
# learning rates become usable. Layer norm pools all channels of an image into one mean and variance, so a single
# channel that blows up still dominates the others after normalisation; it was designed for recurrent and
# fully-connected layers, where it is the usual choice, and is rarely better than batch norm in a CNN. One run per
# setting on 1,259 small images: treat differences of a point or two between the normalised networks as noise; the
# collapse at lr 0.3 and its absence with batch and instance norm are the robust part.
#
# ### Question 11.4
#
# You fine-tune a network with batch norm on a new task, on a GPU that only fits **two images per batch**. What
# goes wrong with batch norm, and which of the other two would you try instead?
#
# <details><summary>Answer (click)</summary>
#
# With two images, each channel's mean and variance come from 2·H·W values of just two images: noisy estimates that
# change from batch to batch, so the network trains on a jittery normalisation, and the running averages it uses at
# test time are averages of those noisy values — training and evaluation disagree. (With one image and 1x1 maps
# there is only one value per channel and the variance is zero.) Layer norm and instance norm compute each image's
# statistics from that image alone, so the batch size does not matter to them, and they compute the same thing in
# training and evaluation. Layer norm keeps the relative strengths of the channels (it normalises them together);
# instance norm removes each map's own mean and contrast, which suits style transfer (where it was introduced) but
# throws away "how strongly is this feature present", which a classifier often needs. Group norm (Wu & He 2018),
# between the two, was designed for exactly this small-batch case.
# </details>

# %%
print(f"notebook run time: {time.perf_counter() - T0:.0f} s at scale {SCALE}")
