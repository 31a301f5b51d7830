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
# `minicnn.visualize`: `project`, `top_k`, `receptive_field`, `plot_evolution`, `guided_backprop`, `saliency`,
# `input_gradient` and the `plot_*` helpers. The network is the one that ships with minicnn
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
                               plot_topk, project, receptive_field, saliency, top_k)
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
# conv1, conv2 and conv6, LRN after the first two poolings, two fully connected layers of 256), trained for two
# epochs on the 60,000 Fashion-MNIST images upsampled to 64x64, with ZF's recipe (momentum 0.9, weight decay,
# filter-RMS clipping at 0.1, random crops). It loads in a fraction of a second. A `FeatureEvolution` callback
# recorded, after every epoch, the deconvnet projection of the strongest activation of eight maps per layer over
# 500 fixed validation images (section 5). Its "layers" in ZF's sense are the rectified (and pooled) maps after
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
# Read the patches first: a pool1 projection is only its conv1 filter (see above). At layer 1 the nine patches of
# a map share a small local pattern, an edge or bar of one orientation and polarity or a corner, and come from
# many classes. At layer 2 the maps pick larger pieces: the parallel vertical edges of trouser legs, the curved
# outline of a shoulder or a toe. From layer 3 on, most maps' nine images are of one or two kinds, and the
# projections trace that part in each patch rather than showing one fixed picture: at relu3 the diagonal of a
# boot's heel (map 40), at relu4 sandal straps, at relu5 trouser legs and boot shafts, at pool6 whole ankle boots,
# bags, tops. The mean purity printed above rises with depth overall, from 0.44 at pool1 to 0.75 at pool6, but not
# at every step: pool2, relu3 and relu5 sit at 0.64-0.65 and relu4 falls back to 0.60 (its maps mix sandals, bags
# and T-shirts that share straps and edges). Deeper layers are more class-specific, as ZF observed, on the whole.
# Purity is a rough proxy: eight maps of nine images each, and some classes share parts (sandals, sneakers and boots
# have soles; shirts, T-shirts, pullovers and coats have sleeves), so a map can be about a part and still mix
# classes. Note also the receptive fields: from relu4 on they are larger than the 64x64 image, so the projections
# are small pictures inside wide light-blue frames, and at relu5-pool6 they are grainier than at layers 2-3.
# The cell below checks the direction of the claim on these numbers.

# %%
print({layer: round(v, 2) for layer, v in purity.items()})
assert purity[LAYERS[3]] > purity["pool1"] and purity[TOP] > purity["pool1"]

# %% [markdown]
# ### Layer 1 in colour
#
# Fashion-MNIST is grey, so the shipped network's conv1 filters (first figure) can only be light-dark patterns. ZF's Fig. 6
# shows colour: blobs of one colour, colour-opponent pairs and light-dark edges. The second network that ships with
# minicnn, `zfnet_small` trained on crops of 21 colour photographs (`minicnn.load_pretrained("photos")`), has them
# (second figure). For each filter, the cell prints how much of its energy is colour: the norm of the filter minus its mean
# over the three channels, over the filter's norm (0: grey, the same pattern in R, G and B).

# %%
photos = minicnn.load_pretrained("photos")
display(plot_filters(net, "conv1", title="Fashion-MNIST network: conv1 (32 grey 7x7 filters)"))
display(plot_filters(photos.net, "conv1", title="photos network: conv1 (24 colour 5x5 filters)"))
Wc = photos.net["conv1"].params["W"].reshape(photos.net["conv1"].params["W"].shape[0], 3, -1)
colour = np.sqrt(((Wc - Wc.mean(axis=1, keepdims=True)) ** 2).sum((1, 2)) / (Wc ** 2).sum((1, 2)))
print("colour fraction of each photos conv1 filter, sorted:", np.round(np.sort(colour), 2))
assert (colour > 0.5).sum() >= 5 and (colour < 0.3).sum() >= 3      # colour blobs and grey edges, both

# %% [markdown]
#
# ## 5. Feature evolution during training (ZF Fig. 4)
#
# Recorded while the shipped network trained: for eight maps per layer (rows) and its two epochs (columns), the
# deconvnet projection of the map's strongest activation over 500 fixed validation images, each tile on its own
# contrast. ZF saw the lower layers settle within a few epochs and the upper layers only after many (40-50 on
# ImageNet). Under the figure, a number for "how much the picture still changes": one minus the cosine similarity
# of a map's projection at two consecutive epochs (0 = unchanged; it jumps when the strongest probe image itself
# changes).

# %%
evo = FeatureEvolution.load(pre.evolution)
display(plot_evolution(evo))
change_last = {}
for layer in LAYERS:
    crops = evo[layer]["crops"]                                     # (epochs, maps, C, rh, rw)
    flat = crops.reshape(len(crops), crops.shape[1], -1)
    unit = flat / (np.linalg.norm(flat, axis=2, keepdims=True) + 1e-12)
    change = 1 - (unit[1:] * unit[:-1]).sum(2).mean(1)             # mean over the maps, per pair of epochs
    change_last[layer] = float(change[-1])
    steps = ", ".join(f"{e0}->{e1}: {d:.2f}" for e0, e1, d in zip(evo[layer]["epochs"], evo[layer]["epochs"][1:], change))
    print(f"{layer:6s} 1 - cosine between consecutive projections (mean of 8 maps)   {steps}")

# %% [markdown]
# With only two epochs this is ZF's Fig. 4 in miniature (their upper layers needed 40-50 epochs to settle), and the
# numbers say less than the paper's figure. In the figure, pool1's rows show the same 7x7 pattern at both epochs
# (its printed change, 0.26, comes mostly from the pattern moving by a pixel or two, a new switch position);
# pool2 changes least (0.19). The upper layers change more: relu3 0.54, relu4 and relu5 about 0.3, pool6 0.46,
# where for several maps the strongest probe image itself is a different garment after the second epoch. So the top
# layers are still being shaped when the lower ones have settled, but not in a clean order from layer to layer.

# %%
assert change_last[TOP] > change_last["pool1"]

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
# Guided backprop and the deconvnet started from the class score draw nearly the same picture, the outline of the
# garment with its distinctive parts (the boot's shaft and toe, the bag's handle, the sneaker's laces and sole);
# the plain gradient differs from both (cosines well below 1) and saliency, its magnitude, speckles over much of
# the object. Why are the first two so close? Where a max pool sits on a ReLU (relu1, relu2, relu6), the signal
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
# The probe accuracy rises from the pixels (69%) through pool1 (76%) and pool2 (78%) to about 81% at relu3-pool6
# and is highest at the first fully connected layer (relu7, 85.5%; relu8 84%), where the classes are most nearly
# linearly separable: ZF's Table 7 trend. It is not monotone in between: relu3 to pool6 sit within a point or two
# of each other (four to eight test images), and averaging 6,144 features down to 512 costs the wide middle layers
# some detail. On Fashion-MNIST the pixels alone already give about 70%, so depth adds about fifteen points here;
# on ImageNet it added far more. (The gallery's "Linear probes" figure is this probe.)

# %%
assert probe[FC_RELUS[-1]][1] > probe["input"][1] + 0.05 and probe["pool2"][1] > probe["input"][1]

# %% [markdown]
# **Summary.** Sections 1 and 3: the deconvnet projection is the network's backward pass with one rule changed
# (unpooling *is* max-pool backward with the switches, the transposed filters *are* conv backward, LRN is passed as
# the identity), and the cell in section 3 reproduced `project` from `forward(until=...)` and `backward(start=...)`
# exactly, with nothing outside the unit's receptive field. Section 4 is ZF Fig. 2 on the shipped network: edges
# and corners at layer 1 (whose projections are the filters themselves), pieces of garments at layer 2, parts and
# whole shapes at layers 3-6, with the top-9 lists more uniform at the top than at the bottom; the colour network
# shows ZF Fig. 6's colour filters. Section 5 is ZF Fig. 4 in two epochs: the upper layers still change when the
# lower ones have settled. Section 6 contrasts the rules started from a class score; section 7 shows the class
# becoming more linearly readable with depth.
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
