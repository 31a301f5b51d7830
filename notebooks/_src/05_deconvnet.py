# %% [markdown]
# # 05 · The deconvnet: what a trained unit responds to
#
# **What this notebook teaches.** The visualizations of Zeiler & Fergus (2014) on a network trained here: the
# deconvnet projection of one activation down to the pixels, the top-9 activations of a feature map with their
# projections and image patches cropped to the receptive field (their Fig. 2), how the projections of a few
# feature maps change during training and in which order the layers settle (their Fig. 4), and, for comparison, guided backpropagation (Springenberg
# et al. 2015) and saliency (Simonyan et al. 2014). All of them are the network's own backward pass with a
# different ReLU rule; one cell checks that identity numerically.
#
# **What you need.** Notebook 02 (switches and the three ReLU rules) and 04 (the training recipe);
# `minicnn.visualize`: `project`, `top_k`, `receptive_field`, `plot_evolution`, `settling`, `guided_backprop`,
# `saliency`, `input_gradient` and the `plot_*` helpers. The network is the one that ships with minicnn
# (`minicnn.load_pretrained()`): `zfnet_medium` of width 32, six convolution layers with ZF's 7x7 stride-2 first
# layer, trained on Fashion-MNIST at 64x64 (recipe and command in `minicnn/pretrained/build.py`), with 1,000
# Fashion-MNIST test images it never saw; for colour first-layer filters, the second shipped network
# (`minicnn.load_pretrained("photos")`, trained on colour photographs). Nothing is trained or downloaded here.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1) sets how many of the shipped test images the top-9 search looks at
# (500 at 1, all 1,000 from 2); the network is the same at every scale.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import minicnn
from minicnn.layers import LRN
from minicnn.train import evaluate, predict_logits
from minicnn.visualize import (FeatureEvolution, guided_backprop, input_gradient, plot_evolution, plot_saliency,
                               plot_settling, plot_topk, project, receptive_field, saliency, settling, top_k)
from minicnn.visualize.gallery import feature_layers
from minicnn.visualize.plots import plot_filters, plot_zf_fig2

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
POOL = 500 if SCALE < 2 else 1000
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest"})
print(f"scale {SCALE}: top-9 over {POOL} shipped test images")

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
# The shipped network, `zfnet_medium`: ZF's layout in small with one convolution more than ZF's five (conv1 32
# filters 7x7 at stride 2 as in ZF, conv2 64 5x5, conv3-5 96 3x3, conv6 64 3x3, max pooling 3x3 stride 2 after
# conv1, conv2 and conv6, LRN after the first two poolings, two fully connected layers of 256), trained for five
# epochs on the 60,000 Fashion-MNIST images upsampled to 64x64, with ZF's recipe (momentum 0.9, weight decay,
# filter-RMS clipping at 0.1, random crops, the learning rate divided by 10 after the third epoch). Its conv1
# filters started small (a fiftieth of He's scale), as ZF's did, so that what they show is what training put
# there. It loads in a fraction of a second. A `FeatureEvolution` callback recorded, before the first step and
# after every epoch, the deconvnet projection of the strongest activation of eight maps per layer over 500 fixed
# validation images, and every map's responses to 200 of them (section 5). Its "layers" in ZF's sense are the rectified (and pooled) maps after
# each convolution: `feature_layers(net)` lists them.

# %%
pre = minicnn.load_pretrained()
net, splits = pre.net, pre.splits()
print(" -> ".join(net.names))
print(f"recipe: {pre.meta['recipe']}")
print(f"test top-1 when shipped: {100 * pre.meta['test_top1']:.2f}% on the {pre.meta['test_n']:,} official test images")
test = evaluate(net, splits.val)                     # all 1,000 shipped images
print(f"here, on the {test['n']} shipped test images: top-1 {100 * test['top1']:.1f}%")
assert abs(test["top1"] - pre.meta["subset_top1"]) < 1e-9
LAYERS = feature_layers(net)          # ZF's "layers": the rectified (and pooled) maps after each convolution
TOP = LAYERS[-1]                      # the last convolutional layer (ZF's layer 5)
RF = {r.name: r.rf[0] for r in net.layer_info(splits.input_shape)}
print("feature layers:", ", ".join(f"{l} (receptive field {RF[l]} px)" for l in LAYERS))

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
x = splits.test.x[:1]                                      # (1, 1, 64, 64), mean-subtracted
layer, channel = "relu3", 5
a = net.forward(x, until=layer)                            # (1, 96, 8, 8)
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
ax[0].imshow(x[0, 0] + splits.mean[0], cmap="gray")      # a
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
# For each feature map: over the shipped test images, the nine images in which the map's maximum is largest
# (at most one unit per image). In each map's left 3x3 block, the deconvnet projection of that unit, cropped to its
# receptive field; in the right block, the image patch under the receptive field (mean added back), in the same
# order. Each projection is contrast-enhanced on its own, as ZF show them (grey is 0, scaled by the 98th
# percentile of its absolute values, so a few extreme pixels clip). `select=8` keeps the eight maps with the
# largest mean top-9 activation, so dead maps do not fill the figure. The receptive field grows with depth (printed
# in section 2: 11, 35, 51, 67, 83 and 115 pixels); from relu4 on it is larger than the 64x64 image, and light blue
# marks the part of a field outside the image.
#
# One caution about layer 1. A `pool1` unit sees one 7x7 conv1 filter through a 3x3 pooling window, so its
# projection is that filter, scaled by the activation and placed at the switch position: the nine projections of
# a pool1 map are the same picture nine times. Only the patches beside them say anything about the images.
#
# How uniform is a map's top-9? The *purity* of a map is the fraction of its nine images that share the most
# common class; the cell prints its mean over the eight maps of each layer.

# %%
tops, purity = {}, {}
for layer in LAYERS:
    res = top_k(net, splits.val.x[:POOL], layer, k=9, mean=splits.mean, select=8, show_progress=False)
    tops[layer] = res
    ok = res.indices >= 0
    assert ok.all() and (np.diff(res.values, axis=1) <= 0).all()       # nine images per map, strongest first
    assert all(len(set(row)) == 9 for row in res.indices)              # nine different images
    labels = splits.val.y[res.indices]                                  # (8, 9)
    purity[layer] = float(np.mean([np.bincount(row).max() / 9 for row in labels]))
for layer in ("pool2", LAYERS[3]):
    display(plot_topk(tops[layer], max_channels=4))
for layer, res in tops.items():
    names = [" ".join(splits.class_names[splits.val.y[i]].split("/")[0][:7] for i in row[:5]) + " ..."
             for row in res.indices[:3]]
    print(f"{layer:6s} mean purity {purity[layer]:.2f}   e.g. " + " | ".join(names))

# %% [markdown]
# All six layers in one figure, four maps each, as ZF's Fig. 2 (five layers there):

# %%
display(plot_zf_fig2([tops[l] for l in LAYERS]))

# %% [markdown]
# Read the patches first: a pool1 projection is only its conv1 filter (see above), here a dark blob or a vertical
# bar. At layer 1 the nine patches of a map share a small local pattern (a vertical light-dark edge for maps 9 and
# 10, a dark region for maps 0 and 11) and come from many classes. At layer 2 the maps pick larger pieces: the
# parallel vertical edges of trouser legs (map 23), the horizontal edge of a sole or a hem (map 26), the corner of
# a bright garment on the dark ground. From layer 3 on, most maps' nine images are of one or two kinds, and the
# projections trace that part in each patch rather than showing one fixed picture: at relu3 the toe of a sneaker
# or boot (map 3) and the heel of a boot or a high-heeled sandal (map 54), at relu4 soles (map 18), sandal straps
# (map 19) and toes (map 29), at relu5 sandals (map 7) and trouser legs (map 26), at pool6 whole ankle boots (maps
# 6 and 23), dresses (map 36) and bags (map 38). The mean purity printed above rises with depth overall, from 0.56
# at pool1 to 0.86 at pool6, but not at every step: it barely moves from pool1 to relu4 (0.56-0.61; relu4 is back
# at 0.57, its map 38 mixing sandals, a dress, a T-shirt and a bag) and then jumps at relu5 (0.78) and pool6.
# Deeper layers are more class-specific, as ZF observed, on the whole, and here mostly in the last two layers.
# Purity is a rough proxy: eight maps of nine images each, and some classes share parts (sandals, sneakers and boots
# have soles; shirts, T-shirts, pullovers and coats have sleeves), so a map can be about a part and still mix
# classes. Note also the receptive fields: from relu4 on they are larger than the 64x64 image, so the projections
# are small pictures inside wide light-blue frames, and at relu5-pool6 they are grainier than at layers 2-3.
# The cell below checks the direction of the claim on these numbers.

# %%
print({layer: round(v, 2) for layer, v in purity.items()})
low, high = max(purity[l] for l in LAYERS[:4]), min(purity[l] for l in LAYERS[4:])
assert high > low + 0.1                      # relu5 and pool6 well above every layer from pool1 to relu4
assert purity[TOP] == max(purity.values()) and purity["pool1"] < purity[TOP]

# %% [markdown]
# ### Layer 1 in colour
#
# Fashion-MNIST is grey, so the shipped network's conv1 filters (first figure) can only be light-dark patterns, and
# they are the ones ZF's layer 1 has in grey: horizontal and vertical edges and bars of both polarities, and dark
# blobs. A few are still diffuse, and the speckled one (filter 7, second row; each filter is drawn on its own
# contrast) has all but vanished: its norm is the smallest by far (printed below), and map 7 of pool1 never fires
# on the shipped images (its tiles go blank in section 5's figure): a unit that died in training. Started from
# random noise at a fiftieth of He's scale, these are what the gradients put there. ZF's Fig. 6 shows colour: blobs
# of one colour, colour-opponent pairs and light-dark edges. The second network that ships with minicnn,
# `zfnet_small` trained on crops of 21 colour photographs (`minicnn.load_pretrained("photos")`), has them (second
# figure). For each filter, the cell prints how much of its energy is colour: the norm of the filter minus its mean
# over the three channels, over the filter's norm (0: grey, the same pattern in R, G and B).

# %%
photos = minicnn.load_pretrained("photos")
display(plot_filters(net, "conv1", title="Fashion-MNIST network: conv1 (32 grey 7x7 filters)"))
norms = np.sqrt((net["conv1"].params["W"] ** 2).sum(axis=(1, 2, 3)))
silent = np.flatnonzero(net.forward(splits.val.x, until="pool1").max(axis=(0, 2, 3)) <= 0)
print(f"conv1 filter norms: smallest {np.sort(norms)[0]:.2f} (filter {norms.argmin()}), next {np.sort(norms)[1]:.2f}, "
      f"largest {norms.max():.2f}; pool1 maps that are 0 on all {len(splits.val.x)} shipped images: {silent.tolist()}")
assert silent.tolist() == [int(norms.argmin())]      # the one silent map is the vanished filter
display(plot_filters(photos.net, "conv1", title="photos network: conv1 (24 colour 5x5 filters)"))
Wc = photos.net["conv1"].params["W"].reshape(photos.net["conv1"].params["W"].shape[0], 3, -1)
colour = np.sqrt(((Wc - Wc.mean(axis=1, keepdims=True)) ** 2).sum((1, 2)) / (Wc ** 2).sum((1, 2)))
print("colour fraction of each photos conv1 filter, sorted:", np.round(np.sort(colour), 2))
assert (colour > 0.5).sum() >= 5 and (colour < 0.3).sum() >= 3      # colour blobs and grey edges, both

# %% [markdown]
#
# ## 5. Feature evolution during training (ZF Fig. 4)
#
# Recorded while the shipped network trained: before the first step (epoch 0, the random network) and after each
# of its five epochs. The first figure is ZF's Fig. 4: for eight maps per layer (rows) and the six recordings
# (columns), the deconvnet projection of the map's strongest activation over 500 fixed validation images, each
# tile on its own contrast. ZF saw the lower layers settle within a few epochs and the upper layers only after
# many (40-50 on ImageNet).
#
# Whether a tile has "settled" is hard to judge by eye: a tile changes completely when another of the 500 images
# becomes the strongest, even if the map itself hardly changed. So the recording also kept, for every map of each
# layer, its *response profile*: its largest activation on each of 200 probe images. `settling(evo)` correlates
# each map's profile at an epoch with its profile at the end of training and averages over the layer's maps; 1
# means the maps already respond to the 200 images as they will at the end (up to scale and offset).
# `plot_settling(evo)` draws one line per layer.

# %%
evo = FeatureEvolution.load(pre.evolution)
display(plot_evolution(evo))
display(plot_settling(evo))
settle = settling(evo)                        # {layer: (epochs, mean correlation with the final responses)}
epochs = settle[LAYERS[0]][0]
print("correlation of each layer's responses with its final ones (mean over its maps, 200 probe images)")
print(f"{'epoch':>6s} " + " ".join(f"{l:>6s}" for l in LAYERS))
for e, epoch in enumerate(epochs):
    print(f"{epoch:>6d} " + " ".join(f"{settle[l][1][e]:6.2f}" for l in LAYERS))
P = np.asarray(evo["pool1"]["profiles"], np.float64)   # (epochs, 200 images, 32 maps)
common = np.corrcoef(P[0].mean(axis=1), P[-1].mean(axis=1))[0, 1]
print(f"pool1's mean response over its 32 maps, image by image: correlation {common:.2f} between epoch 0 and the end")

# %% [markdown]
# In the first figure, every tile at epoch 0 is noise: the random network. pool1's tiles take their pattern (a blob,
# a horizontal edge or bar) at epoch 1 and keep it, moved by a pixel at most, apart from map 7, which goes blank
# (the filter that died, section 4); most of pool2's are fixed from epoch 2, while from relu4 up several maps still
# change their picture (another probe image, another part) at epoch 3 or 4. The curves say what the tiles only hint
# at: **the layers settle in depth order.** After the first epoch pool1's
# responses already correlate 0.87 with their final ones, pool2's 0.80, relu3's 0.74, relu4's 0.67 and relu5's
# 0.61; after the second, pool1 is at 0.98 and relu5 at 0.76. At every recording before the last, each layer from
# pool1 to relu5 is nearer its end state than the layer above it. pool6 does not extend the ladder: it is the
# farthest from its end in the random network (0.08), but from epoch 1 on it moves with relu5 (0.62 against 0.61,
# 0.78 against 0.76), within 0.03 at every epoch. Two cautions. "Final" means epoch 5, not a converged network,
# and the learning rate drops tenfold after epoch 3, which brings every layer within 0.03 of its end by epoch 4:
# this is ZF's ordering compressed into five epochs, not their 40-50. And the random network is not at 0: its
# pool1 already correlates 0.55 with the trained one, because how strongly a first-layer map responds to an image
# depends partly on the image alone (how much of it is garment, how much contrast it has), whatever the filter:
# averaged over the 32 maps, pool1's responses are nearly the same in the random and the trained network (the last
# printed line).

# %%
ladder = LAYERS[:-1]                                   # pool1 .. relu5
for e in range(len(epochs) - 1):                       # every recording before the last (where all are 1)
    row = [settle[l][1][e] for l in ladder]
    assert all(a > b for a, b in zip(row, row[1:])), (int(epochs[e]), np.round(row, 3))   # strictly in depth order
assert settle[TOP][1][0] == min(settle[l][1][0] for l in LAYERS)        # pool6: farthest at epoch 0 ...
assert all(abs(settle[TOP][1][e] - settle[ladder[-1]][1][e]) < 0.03 for e in range(1, len(epochs)))  # ... then with relu5

# %% [markdown]
#
# ## 6. Class evidence: saliency, guided backpropagation, deconvnet
#
# The same backward, started from the class score $S_c$ (pre-softmax) instead of one hidden unit:
#
# * **saliency** (Simonyan): $\max_\text{channels} |\partial S_c / \partial x|$ — `saliency(net, x)`;
# * **guided backprop** (Springenberg): the backward with the `"guided"` rule — `guided_backprop(net, x)`;
# * **deconvnet from the class score**: `input_gradient(net, x, rule="deconvnet")`.
#
# One more difference between the last two: the deconvnet passes the LRN layers as the identity (ZF's deconvnet
# has no step that undoes the normalisation), while guided backprop, like the plain gradient, goes through LRN's
# true backward. Each row is a test image and its predicted class. Signed maps are drawn about grey (lighter =
# raising the score), saliency on a hot scale.

# %%
picks = [int(np.flatnonzero(splits.val.y == k)[0]) for k in (9, 8, 0, 7, 3, 1)]   # boot, bag, T-shirt, sneaker, dress, trouser
xs = splits.val.x[picks]
pred = predict_logits(net, xs).argmax(axis=1)
maps = {
    "saliency": saliency(net, xs),
    "guided backprop": guided_backprop(net, xs),
    "deconvnet (class score)": input_gradient(net, xs, rule="deconvnet")[0],
    "gradient (signed)": input_gradient(net, xs, rule="backprop")[0],
}
titles = [f"true {splits.class_names[t]}, pred {splits.class_names[p]}" for t, p in zip(splits.val.y[picks], pred)]
fig = plot_saliency(xs, maps, list(maps), mean=splits.mean, titles=titles)
display(fig)

assert np.allclose(maps["saliency"], np.abs(maps["gradient (signed)"]).max(axis=1))   # saliency = |gradient|
grad_t, targets = input_gradient(net, xs)
assert (targets == pred).all()                                                     # default target: predicted class
# guided backprop goes through LRN's true backward: passing LRN as the identity gives another map
guided_identity = input_gradient(net, xs, rule="guided", through_lrn=False)[0]
assert not np.allclose(guided_identity, maps["guided backprop"])

def cosine(u, v):
    u, v = u.reshape(len(u), -1), v.reshape(len(v), -1)
    return (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))

cos_gd = cosine(maps["guided backprop"], maps["deconvnet (class score)"])
cos_gg = cosine(maps["guided backprop"], maps["gradient (signed)"])
print("cosine(guided, deconvnet) per image:", np.round(cos_gd, 2))
print("cosine(guided, gradient)  per image:", np.round(cos_gg, 2))
print("cosine(guided with LRN's backward, guided with LRN as identity):",
      np.round(cosine(maps["guided backprop"], guided_identity), 3))

# %% [markdown]
# Guided backprop and the deconvnet started from the class score draw nearly the same picture (cosines 0.71 to
# 0.97), the outline of the garment with a few strong marks on its distinctive parts (the front of the boot's shaft
# and its heel, the bag's handle, the sneaker's collar, the dress's right edge, which the network misreads as a
# shirt's); the plain gradient differs from both (cosines 0.03 to 0.39) and saliency, its magnitude, speckles over
# much of the object. Why are the first two so close? Where a max pool sits on a ReLU (relu1, relu2, relu6), the signal
# coming down reaches only the switch positions, whose forward input is positive unless the whole window was zero,
# so the forward mask that guided backprop adds rarely removes anything there; the rules differ mostly at relu3-relu5
# and the fc ReLUs. As for LRN: with minicnn's defaults (k = 2, alpha = 1e-4) the normalisation is almost a
# constant division by $2^{0.75}$, so its true backward changes the size of the guided map, not its direction
# (cosine 1.00 above); with a large alpha the two would differ.
#
# ## 7. Linear probes: how far up is the class linearly readable? (ZF Table 7)
#
# ZF trained a linear classifier on the fixed features of each layer and found accuracy rising with depth. Here a
# ridge-regression classifier (least squares onto one-hot labels, $W = (F^\top F + \lambda I)^{-1} F^\top Y$, a
# linear classifier in closed form) is fitted on the standardised features of the first 600 shipped test images
# and scored on the other 400. Wide layers are averaged down to at most 512 features first (neighbouring units).
# The task, ten kinds of clothing at 28x28, is one where pixels already go a long way: the point is how much each
# layer adds. With 400 test images one image is 0.25%, and differences of 2-3% are within the noise.

# %%
from minicnn.visualize.embedding import layer_codes


def pooled(f, max_dim=512):
    groups = -(-f.shape[1] // max_dim)
    pad = groups * max_dim - f.shape[1] if groups > 1 else 0
    return np.pad(f, ((0, 0), (0, pad))).reshape(len(f), -1, groups).mean(axis=2) if groups > 1 else f


def ridge_probe(ftr, ytr, fte, yte, lam=10.0):
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    a, b = (ftr - mu) / sd, (fte - mu) / sd
    a, b = np.hstack([a, np.ones((len(a), 1))]), np.hstack([b, np.ones((len(b), 1))])
    Y = np.eye(ytr.max() + 1)[ytr]
    W = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ Y)
    return float(((b @ W).argmax(1) == yte).mean())


FC_RELUS = [l.name for l in net.layers if type(l).__name__ == "ReLU"][len(LAYERS):]   # after fc7, fc8
probe_layers = ["input"] + LAYERS + FC_RELUS
tr, te = splits.train, splits.test
probe = {}
for layer in probe_layers:
    ftr = tr.x.reshape(len(tr.x), -1).astype(np.float64) if layer == "input" else layer_codes(net, tr.x, layer)
    fte = te.x.reshape(len(te.x), -1).astype(np.float64) if layer == "input" else layer_codes(net, te.x, layer)
    probe[layer] = (ftr.shape[1], ridge_probe(pooled(ftr), tr.y, pooled(fte), te.y))
    print(f"{layer:6s} {probe[layer][0]:6d} features   probe test top-1 {100 * probe[layer][1]:5.1f}%")
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.plot(range(len(probe_layers)), [100 * probe[l][1] for l in probe_layers], "o-")
ax.set_xticks(range(len(probe_layers)), probe_layers)
ax.set_ylabel("probe test top-1 (%)"); ax.set_title("Linear probes on the shipped network (400 test images)")
ax.grid(alpha=0.3); plt.tight_layout(); plt.show()

# %% [markdown]
# The probe accuracy rises from the pixels (69%) through pool1 (76.5%) and pool2 (80.5%) to 82% at relu4-relu5,
# 85% at pool6 and its highest at the last hidden layer (relu8, 87.5%; relu7 86.5%), where the classes are most
# nearly linearly separable: ZF's Table 7 trend. Between neighbouring layers the steps are small (pool2 and relu3
# tie, relu5 is one image below relu4), within the noise of 400 test images, and averaging 6,144 features down to
# 512 costs the wide middle layers some detail. On Fashion-MNIST the pixels alone already give about 70%, so depth
# adds about eighteen points here; on ImageNet it added far more. (The gallery's "Linear probes" figure is this
# probe.)

# %%
assert probe[FC_RELUS[-1]][1] > probe["input"][1] + 0.1 and probe["pool2"][1] > probe["input"][1]
assert probe[FC_RELUS[-1]][1] == max(p for _, p in probe.values())          # best at the last hidden layer
assert probe[TOP][1] > max(probe[l][1] for l in LAYERS[:-1])                # pool6 above every lower conv layer

# %% [markdown]
# **Summary.** Sections 1 and 3: the deconvnet projection is the network's backward pass with one rule changed
# (unpooling *is* max-pool backward with the switches, the transposed filters *are* conv backward, LRN is passed as
# the identity), and the cell in section 3 reproduced `project` from `forward(until=...)` and `backward(start=...)`
# exactly, with nothing outside the unit's receptive field. Section 4 is ZF Fig. 2 on the shipped network: edges,
# bars and blobs at layer 1 (whose projections are the conv1 filters themselves), pieces of garments at layer 2,
# parts and whole shapes at layers 3-6, with the top-9 lists more uniform in the last two layers than below; the
# colour network shows ZF Fig. 6's colour filters. Section 5 is ZF Fig. 4 over five epochs, with a number for it:
# the layers settle in depth order, pool1 first, relu5 and pool6 last. Section 6 contrasts the rules started from
# a class score; section 7 shows the class becoming more linearly readable with depth.
# Next: notebook 06 (occlusion, invariance, correspondence).

# %% [markdown]
# ## Exercises
#
# Write each function; the cell after it checks it (✓, or ✗ with what is wrong) without stopping the notebook.
# `show_solution("05.receptive_field")` prints a reference answer, for after an honest try.

# %%
from minicnn.exercises import check, show_solution

# %% [markdown]
# ### Exercise 1: the receptive field of every layer
#
# A unit of layer $l$ sees $r_l$ input pixels along each axis, and neighbouring units of layer $l$ are $j_l$ input
# pixels apart (the *jump*). Starting from the pixels ($r_0 = j_0 = 1$), a layer with a $k$-wide window at stride
# $s$ gives $r_l = r_{l-1} + (k-1)\,j_{l-1}$ and $j_l = j_{l-1}\,s$: its $k$ taps sit $j_{l-1}$ pixels apart.
# Padding moves the field but does not change its size. Write the recurrence for a list of `(kernel, stride)`
# pairs; the check compares every layer of AlexNet's and ZF's stacks with what `Sequential.summary` computes (the
# RF and jump columns, as in the summary of the shipped network below).

# %%
# Exercise 05.receptive_field: the receptive field of every layer
def receptive_field(layers):
    """layers: [(kernel, stride), ...] of every windowed layer, bottom to top -> [(rf, jump), ...], one per layer."""
    raise NotImplementedError("your code here")

# %%
check("05.receptive_field", receptive_field)

# %%
net.summary(splits.input_shape);

# %% [markdown]
# ### Exercise 2: project a feature map with the deconvnet rule, by hand
#
# The network for this exercise is small: `conv1 → relu1 → pool1 → lrn1 → conv2 → relu2`. Run
# `net.forward(image)`, keep the whole feature map `f` of relu2's output (its activations), set the other maps to
# zero, and take that signal down to the pixels the deconvnet's way, one op at a time: rectify, transposed filters,
# (LRN: see section 3), unpool with the switches, rectify, transposed filters. After the forward pass every layer
# holds what its backward needs in `net[name].cache`; the ops are `ops.relu_backward`, `ops.conv2d_backward` (with
# `param_grads=False`) and `ops.unpool2d`. The check compares with `net.backward(..., rule="deconvnet")` and says
# which rule you used if it is another one.

# %%
# Exercise 05.project_map: project one feature map with the deconvnet rule, by hand
from minicnn import ops

def project_map(net, image, f):
    """net: conv1, relu1, pool1, lrn1, conv2, relu2 (float64); image (1, C, H, W) -> projection (1, C, H, W)."""
    raise NotImplementedError("your code here")

# %%
check("05.project_map", project_map)

# %% [markdown]
# ### Questions
#
# **Q1.** In section 4, the nine layer-1 (pool1) projections of one map look the same for every image, apart from
# where they sit and how bright they are. Why, from the three steps of the projection?
#
# <details><summary>Answer</summary>
#
# One pool1 activation is sent down. Unpooling puts it at its switch: a single relu1 pixel. Rectification keeps it
# (it is an activation, so positive). The transposed conv1 filter then stamps filter $W_f$ around that pixel, scaled
# by the activation. The result is always the conv1 filter itself, only moved and scaled: a layer-1 projection
# shows the filter, not the image (ZF's layer-1 panels are filters for that reason).
# </details>
#
# **Q2.** By your `receptive_field`, a pool5 unit of ZF's stack sees a 171x171 window of the 224x224 input. Does
# it weigh all of those pixels alike? And how does the classifier come to see the whole image?
#
# <details><summary>Answer</summary>
#
# The receptive field is the set of pixels that *can* influence the unit, not how strongly. Pixels near its centre
# reach it through many more paths (every overlapping window on the way up) than pixels near its border, so the
# influence is concentrated in the middle and falls off towards the edge. The classifier sees everything because
# fc6 is connected to all 6x6 pool5 units, whose fields overlap and together cover the image (at a jump of 32
# pixels).
# </details>
