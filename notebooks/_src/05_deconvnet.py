# %% [markdown]
# # 05 · The deconvnet: what a trained unit responds to
#
# **What this notebook teaches.** The visualizations of Zeiler & Fergus (2014) on a network trained here: the
# deconvnet projection of one activation down to the pixels, the top-9 activations of a feature map with their
# projections and image patches cropped to the receptive field (their Fig. 2), how the projections of a few
# feature maps change during training (their Fig. 4), and, for comparison, guided backpropagation (Springenberg
# et al. 2015) and saliency (Simonyan et al. 2014). All of them are the network's own backward pass with a
# different ReLU rule; one cell checks that identity numerically.
#
# **What you need.** Notebook 02 (switches and the three ReLU rules) and 04 (the training recipe);
# `minicnn.visualize`: `project`, `top_k`, `receptive_field`, `FeatureEvolution`, `plot_evolution`,
# `guided_backprop`, `saliency`, `input_gradient` and the `plot_*` helpers. The data (scikit-learn's digits) ships
# offline.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1: 24x24 digits, width 8, 8 epochs, about 20 s on 2 cores). At 2 or
# more the network is twice as wide and trains for 10 epochs per unit of scale.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from minicnn.data import Augment, load_dataset
from minicnn.layers import LRN
from minicnn.models import zfnet_small
from minicnn.optim import SGD
from minicnn.schedule import StepLR
from minicnn.train import Trainer, evaluate, predict_logits
from minicnn.visualize import (FeatureEvolution, guided_backprop, input_gradient, plot_evolution, plot_saliency,
                               plot_topk, project, receptive_field, saliency, top_k)

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
IMAGE, WIDTH = 24, (8 if SCALE < 2 else 16)
EPOCHS = 8 if SCALE < 2 else int(round(10 * SCALE))
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest"})
print(f"scale {SCALE}: {IMAGE}x{IMAGE} digits, width {WIDTH}, {EPOCHS} epochs")

# %% [markdown]
# ## 1. The deconvnet is a backward pass
#
# To see what a unit $a$ at layer $\ell$ responds to in an image $x$, ZF run the network forward, keep that one
# activation, set every other activation of layer $\ell$ to zero, and map the result back to the pixels through
# the layers below, in reverse:
#
# * **max pooling** is undone by *unpooling*: each value goes back to the position recorded in the forward
#   pass's *switches* (the argmax of its window) — exactly max-pool backward;
# * **convolution** is undone by the *transposed* filters — exactly conv backward to the input (no bias);
# * **ReLU** is undone by rectifying the signal coming down. This is the only step that differs from backprop.
#
# Writing $r$ for the signal coming down into a ReLU whose forward input was $z$, the three rules are
#
# $$\text{backprop: } r\cdot[z>0], \qquad \text{deconvnet: } r\cdot[r>0], \qquad
# \text{guided: } r\cdot[z>0]\cdot[r>0] .$$
#
# So the deconvnet projection of a unit *is* the input gradient of that unit, computed with the `"deconvnet"`
# rule in every ReLU (and LRN passed as the identity: the paper's deconvnet has no step that undoes the
# normalization). With `rule="backprop"` it is the ordinary
# gradient $\partial a / \partial x$ (Simonyan's saliency, before the absolute value); with `"guided"` it is
# guided backpropagation. `minicnn.visualize` calls `net.forward` and `net.backward(dy, rule=...)`; it has no
# backward of its own.
#
# ## 2. A network to look at
#
# `zfnet_small` on 24x24 digits with the recipe of notebook 04 (clipping radius 0.1, momentum, weight decay, crops),
# here at learning rate 0.02, divided by 10 for the last quarter of the epochs. A `FeatureEvolution` callback
# records, at a few epochs, the
# deconvnet projection of the strongest activation of four maps per layer over a fixed probe set of validation
# images (epoch 0, the random initial network, is recorded by hand before training).

# %%
splits = load_dataset("digits", image_size=IMAGE, seed=0)
net = zfnet_small(num_classes=splits.num_classes, input_shape=splits.input_shape, width=WIDTH, dropout=0.0, seed=0)
print(" -> ".join(net.names))

LAYERS = ["pool1", "pool2", "relu3"]                       # ZF's "layer 1, 2, 3": rectified (and pooled) maps
marks = sorted({e for e in (1, 2, 4, 8, 16, 32) if e <= EPOCHS} | {EPOCHS})
evolution = FeatureEvolution(probe=splits.val.x[:200], features={l: [0, 1, 2, 3] for l in LAYERS}, epochs=marks)
evolution.record(net, 0)

opt = SGD(net, lr=2e-2, momentum=0.9, weight_decay=5e-4, clip_radius=0.1)
trainer = Trainer(net, splits, opt, schedule=StepLR(opt, step_size=max(1, 3 * EPOCHS // 4)), batch_size=32,
                  epochs=EPOCHS, augment=Augment(crop_pad=2), seed=0, callbacks=[evolution], progress=False)
trainer.fit()
test = evaluate(net, splits.test)
print(f"test top-1 {100 * test['top1']:.1f}%")
assert test["top1"] > 0.8, test

# %% [markdown]
# ## 3. Check: projection = backward pass with a different rule
#
# Take one test image and the strongest unit of map 5 at `relu3`. By hand: forward up to `relu3`
# (`net.forward(x, until="relu3")`), put a one-hot at that unit and call `net.backward(..., start="relu3")`. With
# the backprop rule this must equal `project(..., rule="backprop", scale="unit")` — the input gradient of the unit.
# With the deconvnet rule, the kept activation's value sent down and LRN as the identity, it must equal the ZF
# projection `project(..., rule="deconvnet")`. The two are different images: the deconvnet ignores which ReLUs
# were off in the forward pass. In the figure, red is positive and blue negative, each panel on its own symmetric
# scale.

# %%
x = splits.test.x[:1]                                      # (1, 1, 24, 24), mean-subtracted
layer, channel = "relu3", 5
a = net.forward(x, until=layer)                            # (1, 24, 6, 6)
r, c = np.unravel_index(np.argmax(a[0, channel]), a.shape[2:])
onehot = np.zeros_like(a)
onehot[0, channel, r, c] = 1.0

by_hand = net.backward(onehot, rule="backprop", param_grads=False, start=layer)
by_project = project(net, x, layer, channel, position=(r, c), rule="backprop", scale="unit")
assert np.allclose(by_hand, by_project, rtol=1e-5, atol=1e-7), np.abs(by_hand - by_project).max()

deconv_hand = net.backward(onehot * a, rule="deconvnet", param_grads=False, start=layer, passthrough=(LRN,))
deconv_project = project(net, x, layer, channel, rule="deconvnet")   # position None: the strongest unit
assert np.allclose(deconv_hand, deconv_project, rtol=1e-5, atol=1e-7)

# the projection is zero outside the unit's receptive field, as the geometry says
r0, r1, c0, c1 = receptive_field(net, splits.input_shape, layer, (r, c))
inside = np.zeros(x.shape[2:], bool)
inside[max(r0, 0):r1, max(c0, 0):c1] = True
assert not deconv_project[..., ~inside].any() and not by_project[..., ~inside].any()

print(f"unit {layer}[{channel}, {r}, {c}] = {a[0, channel, r, c]:.3f}; receptive field rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1}")
print(f"backprop:  project == forward(until) + backward(onehot, start): max |diff| {np.abs(by_hand - by_project).max():.1e}")
print(f"deconvnet: project == backward(rule='deconvnet', LRN as identity): max |diff| {np.abs(deconv_hand - deconv_project).max():.1e}")
cos = (by_project * deconv_project).sum() / np.linalg.norm(by_project) / np.linalg.norm(deconv_project)
print(f"cosine(gradient, deconvnet projection) = {cos:.2f}: related, not the same")

fig, ax = plt.subplots(1, 4, figsize=(9, 2.6))
ax[0].imshow(x[0, 0] + splits.mean[0], cmap="gray")
ax[0].set_title(f"{layer}[{channel}, {r}, {c}]: receptive\nfield in orange", fontsize=9)
ax[0].add_patch(plt.Rectangle((c0 - .5, r0 - .5), c1 - c0, r1 - r0, fill=False, color="tab:orange", lw=2))
for a_, img, title in [(ax[1], by_hand[0, 0], "backward(onehot),\nrule='backprop'"),
                       (ax[2], by_project[0, 0], "project(rule='backprop',\nscale='unit')"),
                       (ax[3], deconv_project[0, 0], "project(rule='deconvnet')\n(ZF projection)")]:
    m = np.abs(img).max()
    a_.imshow(img, cmap="RdBu_r", vmin=-m, vmax=m); a_.set_title(title, fontsize=9)
for a_ in ax: a_.set_xticks([]); a_.set_yticks([])
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 4. Top-9 activations per feature map (ZF Fig. 2)
#
# For each feature map: over the whole validation set, the nine images in which the map's maximum is largest
# (at most one unit per image). In each map's left 3x3 block, the deconvnet projection of that unit, cropped to its
# receptive field; in the right block, the image patch under the receptive field (mean added back), in the same
# order. Projections are drawn about grey
# (lighter = positive). `select=4` keeps the four maps with the largest mean top-9 activation, so dead maps do not
# fill the figure. The receptive field grows with depth (7, 19 and 27 pixels here): at `relu3` it is larger than
# the 24x24 image, and the white border of the patches is outside the image.

# %%
tops = {}
for layer in LAYERS:
    res = top_k(net, splits.val.x, layer, k=9, mean=splits.mean, select=4, show_progress=False)
    tops[layer] = res
    ok = res.indices >= 0
    assert ok.all() and (np.diff(res.values, axis=1) <= 0).all()       # nine images per map, strongest first
    assert all(len(set(row)) == 9 for row in res.indices)              # nine different images
    fig = plot_topk(res)
    display(fig)
    labels = [[splits.class_names[splits.val.y[i]] for i in row] for row in res.indices]
    for ch, lab in zip(res.channels, labels):
        print(f"{layer} map {ch:2d}: top-9 digits {' '.join(lab)}")

# %% [markdown]
# In the first layer the projections are small oriented strokes and blobs, the same few pixels for all nine
# images; in the second they are pieces of strokes — corners, curves, ends — and the top-9 images of a map
# often share a digit; by the third layer a map responds to larger parts of particular digits, and the list
# of digits printed under each figure becomes more uniform. This is ZF's observation that deeper layers are
# more class-specific, on a much smaller network.
#
# ## 5. Feature evolution during training (ZF Fig. 4)
#
# For four maps per layer (rows) and the recorded epochs (columns, 0 = initial weights): the deconvnet projection
# of the map's strongest activation over the 200 probe images, each tile on its own contrast. ZF saw the lower
# layers settle within a few epochs and the upper layers only after many (40–50 on ImageNet). Under the figure,
# a number for "how much the picture still changes": one minus the cosine similarity of a map's projection at two
# consecutive recordings (0 = unchanged; it jumps when the strongest probe image itself changes).

# %%
fig = plot_evolution(evolution)
display(fig)
snap = evolution.as_dict()
for layer in LAYERS:
    assert snap[layer]["epochs"] == [0] + marks
    crops = snap[layer]["crops"]                                    # (epochs, maps, C, rh, rw)
    # how much each map's projection still changes between the last two recordings (1 - cosine similarity)
    flat = crops.reshape(len(crops), crops.shape[1], -1)
    unit = flat / (np.linalg.norm(flat, axis=2, keepdims=True) + 1e-12)
    change = 1 - (unit[1:] * unit[:-1]).sum(2).mean(1)             # mean over the maps, per pair of recordings
    steps = ", ".join(f"{e0}->{e1}: {d:.2f}" for e0, e1, d in zip(snap[layer]["epochs"], snap[layer]["epochs"][1:], change))
    print(f"{layer:6s} 1 - cosine between consecutive projections (mean of 4 maps)   {steps}")

# %% [markdown]
# ## 6. Class evidence: saliency, guided backpropagation, deconvnet
#
# The same backward, started from the class score $S_c$ (pre-softmax) instead of one hidden unit:
#
# * **saliency** (Simonyan): $\max_\text{channels} |\partial S_c / \partial x|$ — `saliency(net, x)`;
# * **guided backprop** (Springenberg): the backward with the `"guided"` rule — `guided_backprop(net, x)`;
# * **deconvnet from the class score**: `input_gradient(net, x, rule="deconvnet")`.
#
# Each row is a test image and its predicted class. Signed maps are drawn about grey (lighter = raising the score),
# saliency on a hot scale.

# %%
xs = splits.test.x[:6]
pred = predict_logits(net, xs).argmax(axis=1)
maps = {
    "saliency": saliency(net, xs),
    "guided backprop": guided_backprop(net, xs),
    "deconvnet (class score)": input_gradient(net, xs, rule="deconvnet")[0],
    "gradient (signed)": input_gradient(net, xs, rule="backprop")[0],
}
titles = [f"true {splits.class_names[t]}, pred {splits.class_names[p]}" for t, p in zip(splits.test.y[:6], pred)]
fig = plot_saliency(xs, maps, list(maps), mean=splits.mean, titles=titles)
display(fig)

assert np.allclose(maps["saliency"], np.abs(maps["gradient (signed)"]).max(axis=1))   # saliency = |gradient|
grad_t, targets = input_gradient(net, xs)
assert (targets == pred).all()                                                     # default target: predicted class

def cosine(u, v):
    u, v = u.reshape(len(u), -1), v.reshape(len(v), -1)
    return (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))

print("cosine(guided, deconvnet) per image:", np.round(cosine(maps["guided backprop"], maps["deconvnet (class score)"]), 2))
print("cosine(guided, gradient)  per image:", np.round(cosine(maps["guided backprop"], maps["gradient (signed)"]), 2))

# %% [markdown]
# Guided backprop and the deconvnet started from the class score are nearly the same picture here (cosines close
# to 1 above), while the plain gradient differs from both (cosines well below 1). Why so close? Where a max pool
# sits on a ReLU (relu1, relu2, relu5), the signal coming down reaches only the switch positions, the windows'
# winners, whose forward input is positive unless the whole window was zero after the ReLU; so the forward mask
# that guided backprop adds rarely removes anything there, and the two rules differ mostly at relu3, relu4 and the
# fc ReLUs. The gradient keeps negative signals coming down and is the noisiest; saliency, its magnitude, spreads
# over much of the image, not only the strokes.
#
# **Summary.** Sections 1 and 3: the deconvnet projection is the network's backward pass with one rule changed
# (unpooling *is* max-pool backward with the switches, the transposed filters *are* conv backward), and the cell in
# section 3 reproduced `project` from `forward(until=...)` and `backward(start=...)` exactly, with nothing outside
# the unit's receptive field. Section 4 is ZF Fig. 2 on digits: small strokes and edges in layer 1, stroke parts
# and curves in layer 2 (in this run one map already fires only on zeros), larger digit parts in layer 3, whose
# top-9 images are, for most of the maps shown, mostly one or two digits. Section 5 is ZF Fig. 4: on the whole, the
# lower the layer, the less its projections change from one recording to the next; pool1 settles (its change falls
# towards zero although the recordings grow further apart: epochs 1, 2, 4, 8, ...), while the higher layers are
# still changing at the last epochs, as ZF's upper layers were. Section 6 contrasts the rules started from a class
# score.
# Next: notebook 06 (occlusion, invariance, correspondence).
