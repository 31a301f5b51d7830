# %% [markdown]
# # 09 · Architectures by the numbers
#
# **What this notebook teaches.** How big the classic networks are, counted four ways (output shapes, parameters,
# multiply-accumulates, activation memory) and with their receptive fields; how to derive AlexNet's famous first
# numbers (a 55x55 output, 35K parameters) by hand; where three different "VGG-16 memory" figures come from; and two
# of Zeiler & Fergus's architecture experiments redone at a scale a CPU can afford: the first layer at 11x11
# stride 4 against 7x7 stride 2 (their Fig. 6b-e, aliasing), and a Table 3-style ablation (remove layers, shrink
# layers) with accuracy against parameters.
#
# **What you need.** Notebook 01 (a convolution's output size) and 04 (training). `Sequential.summary` /
# `layer_info` and `minicnn summary MODEL` give every figure below; the models are in `minicnn.models`. The training
# data is the 1,000 Fashion-MNIST test images that ship with minicnn (`minicnn.load_pretrained("fashion")`): nothing
# is downloaded.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1: a few epochs per network, about 30 s of CPU time, under a minute on 2
# cores). Larger values train longer and wider.
#
# **Exercises.** Two stubs (`09.conv_numbers`, `09.receptive_field`) checked by `check(...)`, and two questions
# with their answers folded away. `show_solution("09.conv_numbers")` prints a reference solution, after an honest
# try.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn.data import Augment
from minicnn.data._common import resize_images
from minicnn.data.splits import ArrayDataset, Splits
from minicnn.exercises import check, show_solution
from minicnn.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from minicnn.models import alexnet, lenet5, vgg16, zfnet
from minicnn.net import Sequential
from minicnn.optim import SGD
from minicnn.train import Trainer, evaluate

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
EPOCHS = max(3, int(round(6 * SCALE)))
plt.rcParams.update({"figure.dpi": 90, "image.interpolation": "nearest"})
print(f"scale {SCALE}: {EPOCHS} epochs per trained network")

# %% [markdown]
# ## 1. Four networks in one table
#
# `net.summary(input_shape)` prints one row per layer; `net.layer_info(input_shape)` returns the same rows as
# objects (`output_shape`, `params`, `macs`, `activation_bytes`, `rf`, `jump`). All figures are per image, float32.
# The models are built at their papers' input sizes: LeNet-5 32x32 grey, AlexNet 227x227 (the seed's size; the paper
# says 224, which does not give 55), ZFNet and VGG-16 224x224.

# %%
MODELS = {"LeNet-5": (lenet5, (1, 32, 32), 10), "AlexNet": (alexnet, (3, 227, 227), 1000),
          "ZFNet": (zfnet, (3, 224, 224), 1000), "VGG-16": (vgg16, (3, 224, 224), 1000)}
info = {}
for label, (builder, shape, classes) in MODELS.items():
    info[label] = builder(num_classes=classes, input_shape=shape).layer_info(shape)


def totals(rows):
    conv = [r for r in rows if r.type == "Conv2D"]
    fc = [r for r in rows if r.type == "Linear"]
    last_conv = conv[-1]
    return dict(params=sum(r.params for r in rows), fc_params=sum(r.params for r in fc),
                macs=sum(r.macs for r in rows), conv_macs=sum(r.macs for r in conv),
                act=sum(r.activation_bytes for r in rows), rf=last_conv.rf[0], layers=len(conv) + len(fc))


print(f"{'network':<8} {'weight layers':>13} {'parameters':>13} {'in fc':>6} {'MACs':>15} {'in conv':>8} "
      f"{'act. memory':>12} {'RF of last conv':>16}")
for label, rows in info.items():
    t = totals(rows)
    print(f"{label:<8} {t['layers']:>13} {t['params']:>13,} {t['fc_params'] / t['params']:>6.0%} {t['macs']:>15,} "
          f"{t['conv_macs'] / t['macs']:>8.0%} {t['act'] / 2**20:>8.1f} MiB {t['rf']:>13} px")

# %% [markdown]
# Layer by layer, AlexNet is the seed's "full (simplified) AlexNet architecture" table: 55x55x96 after conv1,
# 27x27x96 after pool1, 13x13 from conv3 to conv5, 6x6x256 = 9,216 values into fc6. (`net.summary(shape)` prints
# the same table for any network; `minicnn summary vgg16` does it in a shell.)

# %%
_ = alexnet().summary((3, 227, 227))

# %% [markdown]
# The pattern that every lecture on these networks points at is in the two percentage columns: the fully connected
# layers hold most of the **parameters** (AlexNet 94%, VGG-16 89%), the convolutions do almost all of the
# **arithmetic** (95% of AlexNet's multiply-accumulates, 99% of VGG-16's). The figure shows it layer by layer.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for ax, label in zip(axes, ["AlexNet", "VGG-16"]):
    rows = [r for r in info[label] if r.type in ("Conv2D", "Linear")]
    names = [r.name for r in rows]
    p = np.array([r.params for r in rows], float)
    m = np.array([r.macs for r in rows], float)
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, 100 * p / p.sum(), 0.4, label="share of parameters")
    ax.bar(xs + 0.2, 100 * m / m.sum(), 0.4, label="share of multiply-accumulates")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=60, fontsize=7)
    ax.set_ylabel("% of the network's total")
    ax.set_title(f"{label}: {p.sum() / 1e6:.1f}M parameters, {m.sum() / 1e9:.2f} G MACs per image", fontsize=9)
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# *What the figure shows:* in both networks the blue bars (parameters) pile up on `fc6` (AlexNet: 38M of 62M;
# VGG-16: 103M of 138M) while the orange bars (arithmetic) are spread over the convolutions and are small on the
# fully connected layers (AlexNet's fc6, the largest, does 3% of the arithmetic with 60% of the parameters). Table 3
# of Zeiler & Fergus (section 6) removes exactly those expensive-in-parameters layers.

# %% [markdown]
# ## 2. AlexNet's first layer by hand: 55x55 and 35K
#
# The seed's question: the input is 227x227x3, conv1 has 96 filters of 11x11 applied at stride 4 with no padding.
#
# - **Output size.** A window of width $k$ fits at positions $0, s, 2s, \dots$ as long as it stays inside the
#   (padded) image: $o = \lfloor (H + 2p - k)/s \rfloor + 1 = (227 - 11)/4 + 1 = 55$.
# - **Parameters.** Each filter spans all input channels: $11 \cdot 11 \cdot 3 = 363$ weights, plus one bias; 96
#   filters give $96 \cdot 364 = 34{,}944$ parameters, the seed's "35K" (it counts the 34,848 weights only).
# - **Multiply-accumulates.** Every one of the $55 \cdot 55 \cdot 96$ outputs takes 363: 105.4 M, the "105.42M
#   MACC" of the seed's network-analysis screenshot.

# %% [markdown]
# ### Exercise 09.conv_numbers
# Write `conv_numbers(H, W, C, F, k, stride, pad)` returning `(oh, ow, params)` for a convolution with `F` filters
# of `k x k` on a `C x H x W` input: the output height and width, and the number of parameters (weights and
# biases). The check compares it with minicnn's `Conv2D` on seven layers, AlexNet's conv1 among them.

# %%
# Exercise 09.conv_numbers: a convolution's output size and parameters
def conv_numbers(H, W, C, F, k, stride, pad):
    """Return (oh, ow, params) of a conv layer: F filters k x k, on a C x H x W input, with stride and pad."""
    raise NotImplementedError("your code here")

# %%
check("09.conv_numbers", conv_numbers)

# %% [markdown]
# Whatever you wrote, the library agrees with the hand derivation:

# %%
alex = {r.name: r for r in info["AlexNet"]}
oh = (227 + 2 * 0 - 11) // 4 + 1
params = 96 * (11 * 11 * 3 + 1)
macs = 55 * 55 * 96 * 11 * 11 * 3
print(f"by hand: {oh}x{oh}x96, {params:,} parameters ({96 * 11 * 11 * 3:,} weights), {macs:,} MACs")
print(f"summary: {alex['conv1'].output_shape}, {alex['conv1'].params:,} parameters, {alex['conv1'].macs:,} MACs")
assert alex["conv1"].output_shape == (96, oh, oh) and alex["conv1"].params == params and alex["conv1"].macs == macs
assert alex["pool1"].output_shape[1:] == ((55 - 3) // 2 + 1,) * 2 == (27, 27)      # the seed's next question

# %% [markdown]
# ## 3. Receptive fields
#
# A unit's **receptive field** is the square of input pixels that can influence it. Going up through a layer of
# kernel $k$ and stride $s$, a unit sees $k$ units of the layer below, which are `jump` input pixels apart (the
# product of all strides below); so $r \leftarrow r + (k-1)\,j$ and then $j \leftarrow j\,s$. The summary's last two
# columns are exactly these $r$ and $j$.
#
# ### Exercise 09.receptive_field
# Write `receptive_field(layers)`: given a list of `(kernel, stride)` pairs from the input up (convolutions and
# poolings alike; padding does not change the size), return `(rf, jump)` of the top layer's units.

# %%
# Exercise 09.receptive_field: the receptive field of a stack
def receptive_field(layers):
    """layers: [(kernel, stride), ...] from the input up. Return (rf, jump) in input pixels."""
    raise NotImplementedError("your code here")

# %%
check("09.receptive_field", receptive_field)

# %% [markdown]
# Why VGG stacks 3x3 convolutions: three of them see 7x7 pixels, as one 7x7 layer does, with fewer parameters
# ($3 \cdot 9 C^2 = 27C^2$ against $49C^2$ for $C$ channels in and out) and two more non-linearities. The RF column
# of `summary` for VGG's first block, and for ZF against AlexNet at conv5:

# %%
vgg = {r.name: r for r in info["VGG-16"]}
zf = {r.name: r for r in info["ZFNet"]}
print("VGG-16 conv1_1, conv1_2, conv2_1 receptive fields:", [vgg[n].rf[0] for n in ("conv1_1", "conv1_2", "conv2_1")])
print(f"three 3x3 convs with 256 channels: {3 * 9 * 256**2:,} weights; one 7x7: {49 * 256**2:,}")
print(f"conv5 receptive field: AlexNet {alex['conv5'].rf[0]} px (jump {alex['conv5'].jump[0]}), "
      f"ZFNet {zf['conv5'].rf[0]} px (jump {zf['conv5'].jump[0]})")
assert vgg["conv2_1"].rf[0] == 10 and 3 * 9 < 49

# %% [markdown]
# ## 4. VGG-16's memory: three numbers, reconciled
#
# The seed (Jain's lecture, after cs231n) lists VGG-16 layer by layer, `memory: 224*224*64 = 3.2M` and so on, and
# ends with **"TOTAL memory: 24M * 4 bytes ≈ 93MB / image (only forward!)"**. `minicnn summary vgg16` says
# **109.4 MiB**. And the seed's own rows add up to neither. Line by line:

# %%
seed_rows = [("INPUT", (224, 224, 3))] + [("CONV3-64", (224, 224, 64))] * 2 + [("POOL2", (112, 112, 64))] \
    + [("CONV3-128", (112, 112, 128))] * 2 + [("POOL2", (56, 56, 128))] + [("CONV3-256", (56, 56, 256))] * 3 \
    + [("POOL2", (28, 28, 256))] + [("CONV3-512", (28, 28, 512))] * 3 + [("POOL2", (14, 14, 512))] \
    + [("CONV3-512", (14, 14, 512))] * 3 + [("POOL2", (7, 7, 512))] + [("FC", (4096,))] * 2 + [("FC", (1000,))]
seed_values = [int(np.prod(s)) for _, s in seed_rows]
seed_total = sum(seed_values)
print(f"the seed's {len(seed_rows)} rows add up to {seed_total:,} values = {4 * seed_total / 1e6:.1f} MB "
      f"= {4 * seed_total / 2**20:.1f} MiB in float32")
print(f"the seed's total: 24M values x 4 B = {24e6 * 4 / 1e6:.0f} MB = {24e6 * 4 / 2**20:.1f} MiB "
      f"(its '93 MB' is 24.4M values in MiB)")

rows = info["VGG-16"]
by_type = {}
for r in rows:
    by_type.setdefault(r.type, 0)
    by_type[r.type] += r.activation_bytes // 4
mini_total = sum(by_type.values())
print(f"\nminicnn summary vgg16: {mini_total:,} values = {4 * mini_total / 2**20:.1f} MiB, by layer type:")
for t, v in by_type.items():
    print(f"  {t:<10} {v:>12,} values  {4 * v / 2**20:6.1f} MiB")
# The seed's rows are minicnn's rows without the separate ReLU, Dropout and Flatten outputs, plus the input image.
in_place = by_type["Conv2D"] + by_type["MaxPool2D"] + by_type["Linear"]
print(f"\nconv + pool + fc outputs (ReLU in place) + input image: {in_place:,} + {224 * 224 * 3:,} "
      f"= {in_place + 224 * 224 * 3:,} values")
assert in_place + 224 * 224 * 3 == seed_total
assert abs(4 * mini_total / 2**20 - 109.4) < 0.05
conv_outputs = by_type["Conv2D"]
print(f"the seed's rows with every conv output counted twice (conv and ReLU apart): "
      f"{seed_total + conv_outputs:,} values, still not 24M")

# %% [markdown]
# So, exactly:
#
# | figure | values | bytes (float32) | what it counts |
# |---|---|---|---|
# | sum of the seed's rows | 15,237,608 | 61.0 MB = 58.1 MiB | the input, each conv output once, each pool output, the three fc outputs |
# | the seed's total | "24M" | "93 MB" | not the sum of its rows; 24M x 4 B is 96 MB = 91.6 MiB, and 93 MiB would be 24.4M values. It is more than all the rows together, so no reading of the rows gives it, and counting every conv output twice (conv and ReLU apart, as minicnn does) gives 28.8M, not 24M either: best read as a slip carried from slide to slide |
# | `minicnn summary vgg16` | 28,676,072 | 114.7 MB = 109.4 MiB | every layer's output as its own array: each ReLU output apart from its conv output (13.5M values again), Dropout and Flatten outputs too; no input image |
#
# The third row is the first without the input image and with the ReLU, Dropout and Flatten outputs added, exactly
# (checked by the `assert` above): frameworks that apply ReLU *in place* (Caffe, PyTorch's `inplace=True`) store
# one array per conv layer, as the seed's rows do; minicnn keeps the ReLU's input because its backward (and the
# three ReLU rules of notebook 02) need it. Training needs more again: the backward pass keeps every cached input
# and produces a gradient of the same size per layer, and minicnn's im2col buffers are larger still (9x a conv
# layer's input for 3x3 kernels).

# %% [markdown]
# **Question 09.1.** VGG-16 has 138M parameters (528 MiB in float32) and needs 58-109 MiB of activations per image.
# For a batch of 64 images in training, which dominates the memory: parameters or activations? And which layers of
# VGG-16 are to blame for each?
#
# <details><summary>Answer (click)</summary>
#
# Activations: 64 x 58 MiB is 3.7 GiB for the forward pass alone (roughly twice that with the gradients), against
# 0.5 GiB of weights (plus as much again for the gradients and for SGD's momentum). The activation memory is in the
# first two blocks (conv1_1 and conv1_2 alone produce 6.4M values per image, 42% of the seed's total), the parameters
# are in fc6 (103M of 138M). Early layers are expensive in memory and arithmetic; late layers in parameters.
# </details>

# %% [markdown]
# ## 5. Zeiler & Fergus Fig. 6: conv1 at 11x11 stride 4 against 7x7 stride 2
#
# ZF's visualisations of AlexNet's first two layers (their Fig. 6b, d) showed first-layer filters that are either
# very high or very low frequency, "dead" filters, and aliasing artefacts in layer 2, which they put down to the
# large stride 4 of conv1. They changed conv1 to 7x7 at stride 2 (and conv2 to stride 2), and the features became
# cleaner (Fig. 6c, e) and the error lower.
#
# **Aliasing, first.** A convolution at stride $s$ samples its output every $s$ pixels; a pattern of frequency above
# the Nyquist limit $1/(2s)$ cycles per pixel cannot be represented at that spacing and shows up as a false, slower
# one. At stride 4 that limit is 1/8 cycle/pixel (a period of 8 pixels); at stride 2 it is 1/4. Here are the two
# first layers trained from the same start on the same data: 56x56 images (the shipped Fashion-MNIST test images,
# upsampled from 28x28), 600 for training, 100 for validation, 300 for testing. Both networks are
# conv1 - ReLU - pool 3/2 - conv2 (32 filters 5x5) - ReLU - pool 3/2 - fc 64 - fc 10; the 7x7/2 network's conv2 has
# stride 2 as in ZF, so both reach 3x3 maps before the fully connected layers. conv1 starts at a tenth of He's scale
# so that the filters we look at are what training put there, not the initial noise.

# %%
pre = minicnn.load_pretrained("fashion")          # only its shipped test images are used here
SIZE = 56
x_all = resize_images(pre.raw_test[:, None].astype(np.float32) / 255.0, SIZE)
y_all = pre.y_test.astype(np.int64)
order = np.random.default_rng(0).permutation(len(y_all))
part = {"train": order[:600], "val": order[600:700], "test": order[700:]}


def make_splits(x):
    mean = x[part["train"]].mean(axis=0)
    ds = {k: ArrayDataset(np.ascontiguousarray(x[i] - mean), y_all[i].copy()) for k, i in part.items()}
    return Splits(ds["train"], ds["val"], ds["test"], list(pre.class_names), mean, "fashion (shipped test images)",
                  hflip=False)


fashion56 = make_splits(x_all)
print(fashion56)


def first_layer_net(kernel, stride, pad, conv2_stride, conv2_pad, width=16, seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, width, kernel, stride, pad, rng=rng, name="conv1"), ReLU(name="relu1"),
              MaxPool2D(3, 2, ceil_mode=True, name="pool1"),
              Conv2D(width, 2 * width, 5, conv2_stride, conv2_pad, rng=rng, name="conv2"), ReLU(name="relu2"),
              MaxPool2D(3, 2, ceil_mode=True, name="pool2"), Flatten(name="flatten")]
    layers[0].params["W"] *= 0.1
    flat = Sequential(layers).layer_info((1, size, size))[-1].output_shape[0]
    layers += [Linear(flat, 64, rng=rng, name="fc6"), ReLU(name="relu6"), Linear(64, 10, rng=rng, name="fc8")]
    return Sequential(layers, name=f"conv1 {kernel}x{kernel}/{stride}")


WIDTH1 = 16 if SCALE < 2 else 32
pair = {"11x11 stride 4 (AlexNet)": first_layer_net(11, 4, 0, 1, 2, WIDTH1),
        "7x7 stride 2 (ZF)": first_layer_net(7, 2, 1, 2, 1, WIDTH1)}
initial = {label: net["conv1"].params["W"].copy() for label, net in pair.items()}
results = {}
for label, net in pair.items():
    print(f"--- {label}")
    net.summary((1, SIZE, SIZE), print_fn=lambda text: print("\n".join(text.splitlines()[3:5])))
    trainer = Trainer(net, fashion56, SGD(net, lr=0.02, momentum=0.9, weight_decay=5e-4), batch_size=32,
                      epochs=EPOCHS, augment=Augment(crop_pad=2), seed=0, progress=False, verbose=False)
    history = trainer.fit()
    results[label] = dict(test=evaluate(net, fashion56.test), val=[h["val_top1"] for h in history])
    print(f"test top-1 {results[label]['test']['top1']:.1%} ({results[label]['test']['n']} images), "
          f"val top-1 by epoch {np.round(results[label]['val'], 2).tolist()}")

# %% [markdown]
# The filters themselves (each scaled to its own range: grey is zero):

# %%
fig, axes = plt.subplots(2, 1, figsize=(12, 2.6))
for ax, (label, net) in zip(axes, pair.items()):
    W = net["conv1"].params["W"][:, 0]
    k = W.shape[-1]
    tiles = np.ones((k + 2, len(W) * (k + 2))) * 0.5
    for i, w in enumerate(W):
        tiles[1:k + 1, i * (k + 2) + 1:i * (k + 2) + 1 + k] = 0.5 + 0.5 * w / (np.abs(w).max() + 1e-12)
    ax.imshow(tiles, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"conv1 {label}: {len(W)} filters", fontsize=9)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Spectra.** For each filter, the power of its 2-D Fourier transform (zero-padded to 64x64); the dashed square is
# the band a layer of that stride can represent, $|f_x|, |f_y| \le 1/(2s)$. Energy outside it is aliased: the
# filter responds to detail that its output grid cannot hold, which then appears as a coarser false pattern.

# %%
def power_spectra(W, n=64):
    """W: (F, C, k, k) -> (F, n, n) power summed over channels, zero frequency in the middle."""
    return np.fft.fftshift((np.abs(np.fft.fft2(W, s=(n, n))) ** 2).sum(axis=1), axes=(1, 2))


def aliased_fraction(W, stride, n=64):
    """Fraction of each filter's power at frequencies its stride cannot represent: (F,)."""
    P = power_spectra(W, n)
    f = np.fft.fftshift(np.fft.fftfreq(n))
    outside = np.maximum(np.abs(f)[:, None], np.abs(f)[None, :]) > 1 / (2 * stride)
    return (P * outside).sum(axis=(1, 2)) / P.sum(axis=(1, 2))


strides = {"11x11 stride 4 (AlexNet)": 4, "7x7 stride 2 (ZF)": 2}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, (label, net) in zip(axes[:2], pair.items()):
    P = power_spectra(net["conv1"].params["W"]).mean(axis=0)
    ax.imshow(np.log10(P + 1e-12 * P.max()), cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5))
    b = 1 / (2 * strides[label])
    ax.plot([-b, b, b, -b, -b], [-b, -b, b, b, -b], "c--", lw=1.2)
    ax.set_title(f"{label}\nmean log power, Nyquist band dashed", fontsize=9)
    ax.set_xlabel("cycles / pixel")
for label, net in pair.items():
    s = strides[label]
    after = aliased_fraction(net["conv1"].params["W"], s)
    before = aliased_fraction(initial[label], s)
    results[label].update(aliased=after, aliased_init=before)
    axes[2].hist(after, bins=np.linspace(0, 1, 21), alpha=0.6, label=f"{label}: mean {after.mean():.2f} "
                 f"(at init {before.mean():.2f})")
axes[2].set_xlabel("fraction of a filter's power beyond its stride's Nyquist limit")
axes[2].set_ylabel("filters")
axes[2].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# **The aliasing itself, made visible.** A grating of 0.2 cycles per pixel (a period of 5 pixels) is below the
# Nyquist limit of stride 2 (0.25) and above that of stride 4 (0.125). Filter it with each network's conv1 filter
# that responds most to it, and sample the response as the layer does. At stride 2 the samples follow the 5-pixel
# oscillation; at stride 4 they trace a wave with a period of 20 pixels that is not in the image at all
# ($|0.2 - 1/4| = 0.05$ cycles per pixel).

# %%
cols = np.arange(SIZE)
grating = np.cos(2 * np.pi * 0.2 * cols)[None, None, None, :] * np.ones((1, 1, SIZE, 1))
grating = grating.astype(np.float32)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), sharey=False)
for ax, (label, net) in zip(axes, pair.items()):
    conv = net["conv1"]
    k, s = conv.params["W"].shape[-1], strides[label]
    dense = Conv2D(1, conv.params["W"].shape[0], k, 1, 0, rng=np.random.default_rng(0))
    dense.params["W"], dense.params["b"] = conv.params["W"], np.zeros_like(conv.params["b"])
    response = dense.forward(grating)[0, :, SIZE // 2 - k // 2]          # one row of every filter's response
    f = int(np.argmax(response.std(axis=1)))
    positions = np.arange(response.shape[1]) + (k - 1) / 2                # centre of each window in the image
    ax.plot(positions, response[f], color="0.7", label="response at every pixel (stride 1)")
    ax.plot(positions[::s], response[f, ::s], "o-", color="C3", label=f"what the layer keeps (stride {s})")
    ax.set_title(f"{label}: filter {f} on a 0.2 cycle/px grating", fontsize=9)
    ax.set_xlabel("image column")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
plt.tight_layout()
plt.show()

# %%
print(f"{'first layer':<26} {'test top-1':>10} {'parameters':>11} {'conv1 MACs':>11} {'aliased power':>14} "
      f"{'never active':>13}")
for label, net in pair.items():
    relu1 = net.forward(fashion56.test.x, until="relu1")
    dead = int((relu1.max(axis=(0, 2, 3)) <= 0).sum())
    info1 = {r.name: r for r in net.layer_info((1, SIZE, SIZE))}
    print(f"{label:<26} {results[label]['test']['top1']:>10.1%} {net.num_params():>11,} {info1['conv1'].macs:>11,} "
          f"{results[label]['aliased'].mean():>14.2f} {dead:>7} of {len(relu1[0])}")
n_test = len(fashion56.test)
se = np.sqrt(0.7 * 0.3 / n_test)                 # standard error of one accuracy near 70%
(a_label, a), (z_label, z) = results.items()
gap = z["test"]["top1"] - a["test"]["top1"]
print(f"\n7x7/2 minus 11x11/4: {gap:+.1%} test top-1, {gap / (np.sqrt(2) * se):+.1f} standard errors of a difference "
      f"({np.sqrt(2) * se:.1%} on {n_test} images): "
      f"{'within noise' if abs(gap) < 2 * np.sqrt(2) * se else 'beyond noise'}")
print(f"aliased power, mean over filters: {a['aliased'].mean():.2f} at stride 4, {z['aliased'].mean():.2f} at stride 2")

# %% [markdown]
# *What was found, at this scale.* The filter spectra show the effect ZF describe: the 11x11 stride-4 filters keep
# a larger share of their power beyond what their stride can represent (0.40 of it in our run) than the 7x7 stride-2
# filters do beyond theirs (0.26). For both, the fraction is far lower than at the random start (0.94 and 0.72:
# white noise spreads its power evenly over all frequencies), because training smooths the filters; but it stays
# higher at stride 4, and the filter strip shows why: many 11x11 filters are still speckled. The grating panel shows
# what that power turns into: a slow false wave in the stride-4 output.
#
# The **accuracies**, on the other hand, are within noise of each other (the printed difference, in standard
# errors, on 300 test images after a few epochs): on upsampled 28x28 clothing images, whose fine detail is limited,
# we cannot confirm ZF's accuracy gain (on ImageNet their changes together took AlexNet's 40.5% top-1 error to
# 38.4%, Table 3). Nor did we see ZF's "dead" filters at stride 4: in our run the "never active" column (conv1 maps
# that are zero on every test image) came out the other way round, 0 of 16 at stride 4 and 2 of 16 at stride 2.
# With `MINICNN_NB_SCALE=2` (12 epochs, 32 filters) our run gave the same picture: 0.35 against 0.24 aliased power,
# 74.3% against 74.7% test accuracy, no filter never active in either network.

# %% [markdown]
# ## 6. A Table 3-style ablation
#
# ZF's Table 3 removes or resizes layers of their network and of AlexNet and reports the error. Two findings: the
# fully connected layers 6 and 7 can go with a small loss (most of the parameters, little of the accuracy), and
# removing the middle convolutions (3, 4) or both costs much more; making conv3-5 *wider* helped. Here is the same
# experiment on a small ZF-pattern network (conv1 8@5x5, conv2 16@5x5, conv3-5 24-24-16 @3x3, fc6 and fc7 64 units)
# on the 28x28 images, same data split, same seeds, same recipe.

# %%
fashion28 = make_splits(pre.raw_test[:, None].astype(np.float32) / 255.0)
W = 8 if SCALE < 2 else 16


def ablation_net(conv345=(3 * W, 3 * W, 2 * W), fc=(8 * W, 8 * W), seed=0):
    """conv1 W@5x5 - pool - conv2 2W@5x5 - pool - conv3..5 (3x3, the widths in conv345; None removes one) - pool -
    fc layers (the widths in fc) - fc8. Every conv and fc layer is followed by a ReLU."""
    rng = np.random.default_rng(seed)
    layers = [Conv2D(1, W, 5, 1, 2, rng=rng, name="conv1"), ReLU(name="relu1"),
              MaxPool2D(3, 2, ceil_mode=True, name="pool1"),
              Conv2D(W, 2 * W, 5, 1, 2, rng=rng, name="conv2"), ReLU(name="relu2"),
              MaxPool2D(3, 2, ceil_mode=True, name="pool2")]
    channels = 2 * W
    for i, width in enumerate(conv345, start=3):
        if width:
            layers += [Conv2D(channels, width, 3, 1, 1, rng=rng, name=f"conv{i}"), ReLU(name=f"relu{i}")]
            channels = width
    layers += [MaxPool2D(3, 2, ceil_mode=True, name="pool5"), Flatten(name="flatten")]
    features = Sequential(layers).layer_info((1, 28, 28))[-1].output_shape[0]
    for i, width in enumerate(fc, start=6):
        layers += [Linear(features, width, rng=rng, name=f"fc{i}"), ReLU(name=f"relu{i}")]
        features = width
    layers.append(Linear(features, 10, rng=rng, name="fc8"))
    return Sequential(layers)


variants = {"as designed": ablation_net(),
            "removed fc6, fc7": ablation_net(fc=()),
            "removed conv3, conv4": ablation_net(conv345=(None, None, 2 * W)),
            "conv3-5 shrunk to W, W, W": ablation_net(conv345=(W, W, W)),
            "removed conv3, conv4, fc6, fc7": ablation_net(conv345=(None, None, 2 * W), fc=())}
table = {}
for label, net in variants.items():
    trainer = Trainer(net, fashion28, SGD(net, lr=0.02, momentum=0.9, weight_decay=5e-4), batch_size=32,
                      epochs=EPOCHS, augment=Augment(crop_pad=2), seed=0, progress=False, verbose=False)
    history = trainer.fit()
    table[label] = dict(params=net.num_params(), train=history[-1]["train_top1"],
                        test=evaluate(net, fashion28.test)["top1"])
base = table["as designed"]["test"]
print(f"{'variant':<32} {'parameters':>10} {'train top-1':>11} {'test top-1':>10} {'vs designed':>12}")
for label, r in table.items():
    d = (r["test"] - base) / (np.sqrt(2) * np.sqrt(0.7 * 0.3 / n_test))
    print(f"{label:<32} {r['params']:>10,} {r['train']:>11.1%} {r['test']:>10.1%} {d:>+9.1f} s.e.")
print("(train top-1: the last epoch's running accuracy on augmented batches; s.e.: of a difference of two accuracies)")

fig, ax = plt.subplots(figsize=(7, 3.4))
for i, (label, r) in enumerate(table.items()):
    ax.scatter(r["params"], 100 * r["test"], s=40, color=f"C{i}", label=label)
se = np.sqrt(0.7 * 0.3 / n_test)
for i, (label, r) in enumerate(table.items()):
    ax.errorbar(r["params"], 100 * r["test"], yerr=100 * se, color=f"C{i}", capsize=3)
ax.set_xscale("log")
ax.set_xlabel("parameters (log scale)")
ax.set_ylabel("test top-1 (%)")
ax.set_title(f"Ablation: test top-1 on {n_test} images ± one standard error ({EPOCHS} epochs each)", fontsize=9)
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# *What the table and the figure show.* Removing fc6 and fc7 takes away 43% of this network's parameters; the
# conv3-5 variants change the convolutional part, which holds few parameters but most of the arithmetic. Read the
# accuracies against the error bars (one standard error, 2.6 points on 300 images) and the last column (the
# difference from the designed network in standard errors of a difference): in our run no variant is more than one
# standard error away from the designed network. So, at this scale, only half of ZF's finding can be seen: the fully
# connected layers can go without a measurable loss (ZF: +4.3 points of error on ImageNet, for 90% of AlexNet's
# parameters), but removing conv3 and conv4, ZF's most expensive cut, also costs nothing measurable here. On 600
# images of 28x28 pixels and a few epochs, the two convolutional layers that remain already see most of the image
# (the receptive fields of section 3) and the task does not need more depth; the ablation is a weak test of a
# finding made on ImageNet with 70 epochs, and the table says so rather than reproducing it. At
# `MINICNN_NB_SCALE=2` (12 epochs, twice the width) our run ordered the variants differently again, and again none
# was more than 1.3 standard errors from the designed network (76.7%).

# %% [markdown]
# **Question 09.2.** In ZF's Table 3, removing fc6 and fc7 from AlexNet lowered the *training* error from 35.1% to
# 27.4% but raised the validation error from 40.5% to 44.8%. How can removing layers make the training error lower?
#
# <details><summary>Answer (click)</summary>
#
# The paper does not say how it measured the training error, but its networks use dropout (0.5) in fc6 and fc7, the
# regulariser that hides half of those units at every step. Take the layers away and the dropout goes with them:
# what is left fits the training set more easily and generalises worse, hence the higher validation error. (Removing
# fc7 alone gives the same 27.4% training error with an unchanged validation error.) Capacity and regularisation
# leave together, so a training error is not a measure of capacity here.
# </details>
