# %% [markdown]
# # 10 · Beyond Zeiler & Fergus: what else a trained network can be asked
#
# **What this notebook teaches.** Six questions asked of a trained network after ZF's deconvnet, each answered with
# the same `forward` and `backward` the network trains with:
#
# 1. *What image does the network think is most like a class?* Class models by gradient ascent (Simonyan et al.
#    2014), with and without the regularisers of Yosinski et al. (2015).
# 2. *Can it be fooled?* Images that look like nothing yet are classified with full confidence (Nguyen et al.
#    2015), and why even a linear classifier is easy to fool in high dimension (Goodfellow et al. 2015).
# 3. *How small a change flips a decision?* The fast gradient sign method, FGSM (Goodfellow et al. 2015).
# 4. *What does a layer's code remember of the image?* Inversion with a total-variation prior (Mahendran & Vedaldi
#    2015).
# 5. *How does the network arrange images?* t-SNE of the last hidden layer's codes (van der Maaten & Hinton 2008).
# 6. *Do the saliency maps of notebook 05 explain the network at all?* The cascading-randomisation sanity check
#    (Adebayo et al. 2018). And, last, *how many of its units does the network use?* Dead units and sparsity.
#
# **What you need.** Notebooks 02 and 05 (the three ReLU rules, saliency); `minicnn.visualize`. The network is the
# one minicnn ships, trained on Fashion-MNIST (`minicnn.load_pretrained("fashion")`), with its 1,000 shipped test
# images: nothing is trained here and nothing is downloaded.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1: a few hundred images and short optimisations, about 100 s of CPU time
# on the 64-pixel network, one to three minutes of wall time on a busy 2-core machine); larger values use more images
# and more steps.
#
# **Exercises.** Three stubs (`10.fgsm_step`, `10.fooling_eps`, `10.activation_stats`) checked by `check(...)`, and
# one question with its answer folded away.

# %%
import copy
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import minicnn
from minicnn.exercises import check, show_solution
from minicnn.layers import Conv2D, Linear, ReLU
from minicnn.visualize import (cascading_randomization, class_model, fgsm, fgsm_accuracy, invert, layer_codes,
                               plot_cascade, plot_fgsm, plot_inversions, plot_tsne, tsne)
from minicnn.visualize.plots import image_to_display

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
N_IMAGES = int(min(1000, 200 * SCALE))           # images for t-SNE and FGSM accuracy
STEPS = int(80 * SCALE)                           # gradient steps of class models and inversions
plt.rcParams.update({"figure.dpi": 90, "image.interpolation": "nearest"})

pre = minicnn.load_pretrained("fashion")
net, x, y, names, mean = pre.net, pre.x_test, pre.y_test, pre.class_names, pre.mean
C, H, W = mean.shape
relus = [layer.name for layer in net.layers if isinstance(layer, ReLU)]
shapes = {r.name: r.output_shape for r in net.layer_info((C, H, W))}
conv_relus = [r for r in relus if len(shapes[r]) == 3]           # ReLUs on feature maps; the rest on fc layers
fc_relus = [r for r in relus if r not in conv_relus]
logits = net.forward(x)
print(f"{pre.name}: {net.name}, input {(C, H, W)}, {net.num_params():,} parameters; "
      f"top-1 on the {len(y)} shipped test images {(logits.argmax(1) == y).mean():.1%}")
print(f"ReLU layers: conv {conv_relus}, fc {fc_relus}; scale {SCALE}: {N_IMAGES} images, {STEPS} steps")


def probabilities(images):
    z = net.forward(np.asarray(images, dtype=np.float32)).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)

# %% [markdown]
# ## 1. Fooling images, and class models
#
# Gradient ascent on the input needs $\partial(\cdot)/\partial x$, which is `net.backward` started at the logits,
# the saliency of notebook 05. Two uses of it:
#
# - **Fooling images** (Nguyen et al. 2015, who also evolved them). Start from uniform noise, a valid image that looks
#   like nothing, and take small steps that raise the log-probability of one class, keeping every pixel in the valid
#   range. Nothing asks the result to look like anything.
# - **Class models** (Simonyan et al. 2014): maximise the pre-softmax score $S_c(x)$ with an L2 penalty; Yosinski et
#   al. (2015) add priors about natural images: blur the image every few steps (kill high frequencies) and jitter it
#   by a pixel or two before each step (no pattern that only works at one exact position). `class_model` does all of
#   it.
#
# Top row: the fooling images. Bottom row: the class models. Each title is the softmax probability the network gives
# the class the image was made for.

# %%
lo, hi = -mean, 1.0 - mean                        # the valid range of a pixel once the mean is subtracted
targets = np.arange(len(names))
rng = np.random.default_rng(0)
noise = (rng.uniform(0.0, 1.0, size=(len(targets), C, H, W)) - mean).astype(np.float32)
fool = noise.copy()
for step in range(max(10, STEPS // 2)):
    p = probabilities(fool)
    dlogits = -p                                   # d log p_target / d logits = onehot(target) - p
    dlogits[targets, targets] += 1.0
    g = net.backward(dlogits.astype(np.float32), param_grads=False)
    fool = np.clip(fool + 0.01 * np.sign(g), lo, hi).astype(np.float32)
prior, _ = class_model(net, targets.tolist(), (C, H, W), steps=STEPS, lr=0.5, l2=1e-2, blur_every=4,
                       blur_sigma=0.5, jitter=2, seed=1)
p_noise, p_fool, p_prior = probabilities(noise), probabilities(fool), probabilities(prior)

fig, axes = plt.subplots(2, len(targets), figsize=(1.25 * len(targets), 3.2))
for row, (images, p, label) in enumerate([(fool, p_fool, "fooling"), (prior, p_prior, "class model")]):
    for c, ax in enumerate(axes[row]):
        shown = images[c] + mean if row == 0 else image_to_display(images[c], mean)   # fooling: true grey levels
        ax.imshow(np.squeeze(shown), cmap="gray", **({"vmin": 0, "vmax": 1} if row == 0 else {}))
        ax.set_title(f"{names[c][:9]}\np={p[c, c]:.3f}", fontsize=7)
        ax.set_xticks([]); ax.set_yticks([])
    axes[row, 0].set_ylabel(label, fontsize=8)
plt.tight_layout()
plt.show()
print(f"the noise the fooling images started from: classified as {[names[k] for k in np.unique(p_noise.argmax(1))]}"
      f" with mean top probability {p_noise.max(1).mean():.2f}")
print(f"fooling images: mean probability of the intended class {np.diag(p_fool).mean():.4f} (lowest "
      f"{np.diag(p_fool).min():.4f}); largest change of a pixel from its noise {np.abs(fool - noise).max():.2f}")
print(f"class models: mean probability {np.diag(p_prior).mean():.4f}; their pixel values spread over "
      f"{prior.min():.0f}..{prior.max():.0f} (std {prior.std():.1f}) where real images lie in [0, 1] (std "
      f"{(x + mean).std():.2f}): the display rescales each tile")
assert np.diag(p_fool).min() > 0.99 and np.abs(fool - noise).max() <= 0.01 * max(10, STEPS // 2) + 1e-6
assert np.diag(p_prior).min() > 0.99 and prior.std() > 10 * (x + mean).std()   # certain, and far out of range

# %% [markdown]
# *What the figure shows.* Top row: valid images (grey levels in [0, 1], shown as they are) that are still noise to
# a human eye, with no stroke or outline a person would name, and that the network assigns to the class above them,
# every one with a probability above 0.99 (the printed mean and minimum; each pixel moved 0.01 per step, at most 0.4
# in all, from the noise it started as, which the network called "Bag" with p ≈ 0.87). That is Nguyen et al.'s
# finding in its gradient form. Bottom row: the class models are scored with certainty too, and the priors give
# them smooth large-scale structure (a few sharp dark blobs in every model, faint light strokes between them), but
# their pixels lie far outside the range of any real image (std 10, against 0.34 for real images), and even
# rescaled they are not pictures of clothing: no model shows the outline of its class. Neither row is what the network
# "sees" in a garment; both are inputs that happen to push its scores up.

# %% [markdown]
# ## 2. Why fooling is easy: the linear argument
#
# Goodfellow et al.'s explanation needs no deep network. Take a linear classifier, scores $s = Wx + b$, an image $x$
# of class $y$, and any other class $t$. Move every pixel by $\epsilon$ in the direction
# $\mathrm{sign}(w_t - w_y)$: the score difference $s_t - s_y$ grows by $\epsilon\,\|w_t - w_y\|_1$, because every one
# of the $D$ terms adds and none cancels. For fixed per-pixel weights, $\|w\|_1$ grows like $D$, so the step that
# flips the decision shrinks like $1/D$: many tiny changes add up.
#
# ### Exercise 10.fooling_eps
# Write `fooling_eps(x, W, b, true, target)`: the smallest $\epsilon$ for which $x + \epsilon\,
# \mathrm{sign}(W_{target} - W_{true})$ scores `target` at least as high as `true`. `W` is `(K, D)`, `x` is `(D,)`.

# %%
# Exercise 10.fooling_eps: the smallest sign step that fools a linear classifier
def fooling_eps(x, W, b, true, target):
    """x: (D,), W: (K, D), b: (K,). Return the smallest eps with (W @ x' + b)[target] >= (W @ x' + b)[true]."""
    raise NotImplementedError("your code here")

# %%
check("10.fooling_eps", fooling_eps)

# %% [markdown]
# Now on real data: softmax regression (scikit-learn) on the raw pixels of 600 of the shipped images, at three
# resolutions (7x7, 14x14 and 28x28 pixels: $D$ = 49, 196, 784), and for each correctly classified held-out image the
# smallest sign step to its runner-up class (the reference solution of the exercise).

# %%
from sklearn.linear_model import LogisticRegression

from minicnn.data._common import resize_images
from minicnn.exercises import solution

eps_of = solution("10.fooling_eps")
raw = pre.raw_test[:, None].astype(np.float32) / 255.0
n_fit = 600
linear = {}
for side in (7, 14, 28):
    pix = (raw if side == 28 else resize_images(raw, side)).reshape(len(raw), -1).astype(np.float64)
    clf = LogisticRegression(max_iter=300, C=1.0).fit(pix[:n_fit], y[:n_fit])
    Wl, bl = clf.coef_, clf.intercept_
    eps = []
    for i in range(n_fit, len(y)):
        s = Wl @ pix[i] + bl
        if s.argmax() == y[i]:
            runner_up = int(np.argsort(s)[-2])
            eps.append(eps_of(pix[i], Wl, bl, int(y[i]), runner_up))
    linear[side] = dict(W=Wl, b=bl, pix=pix, eps=np.array(eps), acc=clf.score(pix[n_fit:], y[n_fit:]))
    print(f"{side:>2}x{side:<2} D = {side * side:>3}: held-out accuracy {linear[side]['acc']:.1%}, "
          f"median fooling eps {np.median(eps):.4f} ({255 * np.median(eps):.1f} grey levels of 255)")

i = next(j for j in range(n_fit, len(y)) if (linear[28]["W"] @ linear[28]["pix"][j] + linear[28]["b"]).argmax() == y[j])
Wl, bl, xi = linear[28]["W"], linear[28]["b"], linear[28]["pix"][i]
s = Wl @ xi + bl
t = int(np.argsort(s)[-2])
e = 1.01 * eps_of(xi, Wl, bl, int(y[i]), t)
fooled = xi + e * np.sign(Wl[t] - Wl[int(y[i])])
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
axes[0].imshow(xi.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"{names[y[i]]} (linear: {names[s.argmax()]})", fontsize=8)
axes[1].imshow(np.sign(Wl[t] - Wl[int(y[i])]).reshape(28, 28), cmap="RdBu_r")
axes[1].set_title(f"sign(w_{names[t][:8]} - w_{names[y[i]][:8]})", fontsize=8)
axes[2].imshow(fooled.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
axes[2].set_title(f"+ {e:.3f} x sign: '{names[(Wl @ fooled + bl).argmax()]}'", fontsize=8)
for a in axes[:3]:
    a.set_xticks([]); a.set_yticks([])
sides = sorted(linear)
axes[3].boxplot([linear[sd]["eps"] for sd in sides], showfliers=False)
axes[3].set_xticks(np.arange(1, len(sides) + 1), [f"D={sd * sd}" for sd in sides])
axes[3].set_ylabel("smallest fooling eps")
axes[3].set_title("the step shrinks as D grows", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# *What the figure shows.* Left three panels: a held-out image, the sign pattern of the difference of two class
# templates, and the image moved by that pattern just far enough to change the linear classifier's answer; the
# change is a faint speckle. Right: the smallest such step for every correctly classified held-out image, at three
# resolutions. The median step falls as the number of pixels grows, as the $\|w\|_1 \propto D$ argument predicts
# (the printed medians above give the numbers; the fall is less than $1/D$ because the learned weights per pixel
# are not the same at each resolution).

# %% [markdown]
# ## 3. FGSM on the network
#
# A ReLU network is piecewise linear, so the same trick works on it: step every pixel by $\epsilon$ in the direction
# that increases the loss, $x' = x + \epsilon\,\mathrm{sign}(\nabla_x L)$, with $\nabla_x L$ from `net.backward`.
# The network's inputs are mean-subtracted images whose pixels were in [0, 1], so a valid pixel lies in
# $[-\text{mean}, 1 - \text{mean}]$.
#
# ### Exercise 10.fgsm_step
# Write `fgsm_step(x, grad, eps, lo, hi)`: one FGSM step, kept in the valid range `[lo, hi]` (arrays that broadcast
# against `x`).

# %%
# Exercise 10.fgsm_step: one FGSM step inside the valid pixel range
def fgsm_step(x, grad, eps, lo, hi):
    """x, grad: (N, C, H, W); eps: step size; lo, hi: the valid range of every pixel. Return the new images."""
    raise NotImplementedError("your code here")

# %%
check("10.fgsm_step", fgsm_step)

# %% [markdown]
# `minicnn.visualize.fgsm` takes the step (without the clip; the notebook clips its result so the images shown are
# valid ones); `fgsm_accuracy` measures the test accuracy after it.

# %%
EPSILONS = [0.0, 0.02, 0.05, 0.1]
sub = slice(0, N_IMAGES)
clean = float((logits[sub].argmax(1) == y[sub]).mean())          # eps = 0 needs no gradient
accuracy = np.concatenate([[clean], fgsm_accuracy(net, x[sub], y[sub], EPSILONS[1:])])
for eps_, acc in zip(EPSILONS, accuracy):
    print(f"eps {eps_:<5} ({255 * eps_:4.1f} grey levels): accuracy {acc:.1%} on {N_IMAGES} test images")
show = np.flatnonzero(logits.argmax(1) == y)[:4]
x_adv, before, _ = fgsm(net, x[show], y[show], 0.05)
x_adv = np.clip(x_adv, -mean, 1 - mean).astype(np.float32)
after = probabilities(x_adv)
display(plot_fgsm(x[show], x_adv, before, after, y[show], names, epsilons=EPSILONS, accuracy=accuracy, mean=mean,
                  eps=0.05))
assert np.all(np.diff(accuracy) < 0) and accuracy[2] < accuracy[0] / 2    # falls with eps; below half at 0.05

# %% [markdown]
# *What the figure shows.* Each row: a test image the network gets right, the sign of its loss gradient (the
# perturbation; grey is 0, where the gradient vanished), and the perturbed image with the network's answer and its
# confidence; the right panel is the accuracy on the first test images as $\epsilon$ grows. At $\epsilon = 0.05$
# (13 grey levels of 255) the perturbation is faint but visible, a mottled texture on the garments (clearest on the
# boot); on the black background most of it is clipped away (a pixel at 0 cannot go lower). Every garment is still
# what it was to the eye, yet the accuracy has fallen from 92% to about a third (32.5%, the printed numbers), and to
# 12.5% at $\epsilon = 0.1$. Not every row flips: here the T-shirt becomes a "Shirt" and the sneaker a "Sandal",
# both with p ≥ 0.97, while the ankle boot and the sandal (p = 1.00) keep their labels, the boot at p = 0.82.

# %% [markdown]
# ## 4. Inversion: what a code keeps
#
# Given the code $\phi_\ell(x_0)$ of an image at layer $\ell$, find an image $x$ with the same code,
# $\min_x \|\phi_\ell(x) - \phi_\ell(x_0)\|^2 / \|\phi_\ell(x_0)\|^2 + \lambda_{TV}\,TV(x)$, by gradient descent. The
# gradient of the first term is `net.backward` started at layer $\ell$; TV, the summed squared differences between
# neighbouring pixels, is the prior that natural images are mostly smooth. Without it, many noisy images share a
# code. The last column inverts the deepest conv code with the prior switched off.

# %%
layers = [conv_relus[0], conv_relus[len(conv_relus) // 2], conv_relus[-1], fc_relus[-1]]
originals = x[[0, 3]]
recon, code_error = {}, {}
for layer in layers:
    recon[layer], history = invert(net, originals, layer, steps=STEPS)
    code_error[layer] = history[-1]
    print(f"{layer}: relative code error of the first image after {STEPS} steps {history[-1]:.3f}")
no_tv, history = invert(net, originals, conv_relus[-1], steps=STEPS, tv=0.0)
recon[f"{conv_relus[-1]}, no TV"] = no_tv
print(f"{conv_relus[-1]} without TV: relative code error {history[-1]:.3f}")
display(plot_inversions(originals, recon, list(recon), mean=mean))


def roughness(img):
    """Mean squared difference between neighbouring pixels, over the mean squared pixel (about the mean)."""
    img = img - img.mean()
    return float(((np.diff(img, axis=-1) ** 2).mean() + (np.diff(img, axis=-2) ** 2).mean()) / (img ** 2).mean())


print("roughness (0 = smooth): original {:.2f}, {} with TV {:.2f}, without TV {:.2f}".format(
    roughness(originals[0]), conv_relus[-1], roughness(recon[conv_relus[-1]][0]), roughness(no_tv[0])))
assert code_error[layers[0]] == min(code_error.values())              # the first layer's code is the easiest to fit
assert roughness(no_tv[0]) > 2 * roughness(recon[conv_relus[-1]][0])   # without the prior: speckle

# %% [markdown]
# *What the figure shows.* From the first ReLU (its maps at half the input's resolution, 32 channels) the
# reconstruction is close to the image, stripes and folds included. Deeper codes keep much less: from relu4, relu6
# and relu8 the reconstructions are mottled texture in which the jacket (top row) cannot be made out, and the dress
# (bottom row) shows at most as a vague lighter region where it stands (from relu6 and relu8). This is a weaker
# result than Mahendran & Vedaldi's, whose deep inversions keep recognisable shapes. None of these optimisations has
# converged (the printed relative code errors of the first image run from 0.07 at relu1 to 0.50 at relu4 and 0.71
# at relu6), and more steps do not simply fix it: with fixed-size normalised steps and momentum 0.9, `invert` keeps
# moving, and at `MINICNN_NB_SCALE=2` (160 steps) we measured the error falling for relu4 (0.50 to 0.38) and relu8
# (0.27 to 0.21) but rising for relu6 (0.71 to 0.75). Read these reconstructions as what a short descent finds, not
# as the best image that fits each code. The last column, the deepest conv code inverted without the TV prior, is
# speckled noise with no garment visible (its roughness, printed, is several times that of the inversion with the
# prior). It does not fit the code better in these 80 steps (0.75 against 0.71); at 160 steps it does (we measured
# 0.58 against 0.75) and is still noise: the code alone does not pin the image down, and the prior chooses a smooth
# image among the many that fit about as well.

# %% [markdown]
# ## 5. t-SNE of the last hidden layer
#
# t-SNE places points in 2-D so that neighbours in the code space stay neighbours. Below: the shipped test images at
# their t-SNE positions, computed from the network's last hidden codes, framed in their true class's colour. Beside
# it, a number that does not depend on t-SNE's drawing: the accuracy of a 5-nearest-neighbour vote in the code space
# against in pixel space (leave one out).

# %%
codes = layer_codes(net, x[sub], fc_relus[-1])
pixels = x[sub].reshape(N_IMAGES, -1).astype(np.float64)


def knn_accuracy(features, labels, k=5):
    sq = (features ** 2).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * features @ features.T
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    votes = np.array([np.bincount(labels[row], minlength=len(names)).argmax() for row in nearest])
    return (votes == labels).mean()


knn_pixels, knn_codes = knn_accuracy(pixels, y[sub]), knn_accuracy(codes, y[sub])
print(f"5-NN leave-one-out accuracy on {N_IMAGES} images: pixels {knn_pixels:.1%}, {fc_relus[-1]} codes {knn_codes:.1%}")
assert knn_codes > knn_pixels + 0.15
coords = tsne(net, x[sub], fc_relus[-1])
display(plot_tsne(coords, x[sub], y[sub], names, mean=mean, layer=fc_relus[-1]))

# %% [markdown]
# *What the figure shows.* The codes group the images by class (frames of one colour together): footwear (sandal,
# sneaker, ankle boot) in one region, trousers and bags each in a cluster of their own, and the upper-body garments
# (T-shirt, pullover, coat, shirt) with the dresses in one large group, close to each other and partly mixed, which
# is where the network's own errors are. The nearest-neighbour numbers say the same without the drawing: a 5-NN
# vote is right for 91% of the images in the code space against 67.5% in pixel space.

# %% [markdown]
# ## 6. Sanity check: do the maps depend on the network?
#
# Adebayo et al. re-initialise the network's weights layer by layer, from the classifier down, and recompute each
# map. A map that explains the trained network must change as the network is destroyed. The similarity plotted is
# the Spearman rank correlation of each map with the trained network's map, averaged over a few images.

# %%
few = show[:3] if len(show) >= 3 else np.arange(3)
cascade = cascading_randomization(net, x[few], y[few])
for method, sim in cascade.similarity.items():
    print(f"{method:<16} rank correlation with the trained map, stage by stage: {np.round(sim.mean(axis=1), 2)}")
stage = {m: sim.mean(axis=1) for m, sim in cascade.similarity.items()}   # stage 0 = trained, then fc9, fc8, ...
grad_key, guided_key, deconv_key = list(stage)
assert stage[grad_key][1] < 0.5                      # the gradient changes as soon as the classifier is redrawn
assert stage[guided_key][1:7].min() > 0.85          # guided backprop: fc9 ... conv4 redrawn, it barely changes
assert stage[guided_key][-1] < stage[guided_key][1] and stage[deconv_key][-1] < stage[deconv_key][1]
display(plot_cascade(cascade, x[few[0]], mean=mean))

# %% [markdown]
# *What the figure shows.* The plain gradient (Simonyan's saliency) loses most of its resemblance to the trained
# map as soon as the classifier fc9 is randomised (rank correlation 0.40) and keeps falling slowly (about 0.18 at
# the end): it depends on the weights, as a map that explains the network should. Guided backpropagation hardly
# changes while the fc layers and conv6-conv4 are re-drawn (correlation 0.88 or more), falls only with conv3 and
# conv2 (0.82, 0.69), and still outlines the T-shirt when only conv1 is left trained (0.48 once conv1 goes too).
# The deconvnet drops to about 0.79 at the first step, stays near 0.77 through the fc layers, and then slides down
# through the conv layers (0.63 at conv6, 0.57-0.58 from conv5 to conv3) to 0.28. These two maps show the image's own structure more than what the network learned:
# Adebayo et al.'s finding, reproduced on minicnn's network.

# %% [markdown]
# **Question 10.1.** Guided backpropagation passes a gradient only where the forward input *and* the gradient coming
# down are positive (notebook 02). Why would that make its maps insensitive to the top layers' weights?
#
# <details><summary>Answer (click)</summary>
#
# The top layers' weights decide *which* signs arrive at each ReLU, but the guided rule then throws away every
# negative value at every ReLU on the way down. What survives is mostly set by the forward pass, the pattern of
# which units were active for this image, which depends on the lower layers and the image itself. So the map
# becomes a reconstruction of image structure (edges) that the lower layers respond to, nearly whatever the
# classifier is. The deconvnet rule keeps even less of the forward pass and is dominated by the filters.
# </details>

# %% [markdown]
# ## 7. Dead units and sparsity
#
# After a ReLU, a unit's output is often exactly zero. Two numbers per layer: the **sparsity**, the fraction of all
# its outputs that are zero; and the fraction of **dead** units, units that are zero for every image (for a conv
# layer a unit is a feature map: one filter at all positions). Dead units are parameters paid for and never used;
# a high learning rate can kill ReLUs for good (once no input makes them positive, no gradient reaches them).
#
# ### Exercise 10.activation_stats
# Write `activation_stats(a)`, for the ReLU outputs `a` of a batch, `(N, C, H, W)` or `(N, D)`: return
# `(sparsity, dead_fraction)`.

# %%
# Exercise 10.activation_stats: sparsity and dead units of a layer
def activation_stats(a):
    """a: ReLU outputs (N, C, H, W) or (N, D). Return (fraction of zeros, fraction of units zero for every image)."""
    raise NotImplementedError("your code here")

# %%
check("10.activation_stats", activation_stats)

# %% [markdown]
# On the shipped test images (500 at scale 1), for the trained network and for the same architecture freshly
# initialised (He):

# %%
stats_of = solution("10.activation_stats")
fresh = copy.deepcopy(net)                       # the same architecture, its weights redrawn (He), biases 0
init_rng = np.random.default_rng(0)
for layer in fresh.layers:
    if isinstance(layer, (Conv2D, Linear)):
        Wt = layer.params["W"]
        fan_in = int(np.prod(Wt.shape[1:])) if isinstance(layer, Conv2D) else int(Wt.shape[0])   # Linear: (in, out)
        layer.params["W"] = (init_rng.standard_normal(Wt.shape) * np.sqrt(2.0 / fan_in)).astype(Wt.dtype)
        layer.params["b"] = np.zeros_like(layer.params["b"])
N_STATS = int(min(len(x), 500 * SCALE))


def relu_outputs(model, images, batch=250):
    """{ReLU name: its outputs for all images}, in one pass through the layers (not one forward per ReLU)."""
    out = {name: [] for name in relus}
    for k in range(0, len(images), batch):
        a = images[k:k + batch]
        for layer in model.layers:
            a = layer.forward(a)
            if layer.name in out:
                out[layer.name].append(a)
    return {name: np.concatenate(parts) for name, parts in out.items()}


rows = {}
for label, model in (("trained", net), ("fresh (He init)", fresh)):
    acts = relu_outputs(model, x[:N_STATS])
    rows[label] = [stats_of(acts[name]) for name in relus]
print(f"{'layer':<8} {'units':>6} " + " ".join(f"{lab + ' sparsity':>24} {lab + ' dead':>20}" for lab in rows))
for j, name in enumerate(relus):
    cells = " ".join(f"{rows[lab][j][0]:>24.1%} {rows[lab][j][1]:>20.1%}" for lab in rows)
    print(f"{name:<8} {shapes[name][0]:>6} {cells}")
dead_trained = np.array([d for _, d in rows["trained"]])
fresh_dead = np.array([d for _, d in rows["fresh (He init)"]])
n_fc = len(fc_relus)
assert fresh_dead[-n_fc:].min() > 0.15 and dead_trained[-n_fc:].max() < 0.1   # training revives the fc units
assert np.isclose(dead_trained[0] * shapes[relus[0]][0], 1) and not dead_trained[1:-n_fc].any()   # one dead conv map: relu1's

fig, axes = plt.subplots(1, 2, figsize=(11, 3.0))
xs = np.arange(len(relus))
for k, lab in enumerate(rows):
    vals = np.array(rows[lab])
    axes[0].bar(xs + 0.4 * k - 0.2, 100 * vals[:, 0], 0.4, label=lab)
    axes[1].bar(xs + 0.4 * k - 0.2, 100 * vals[:, 1], 0.4, label=lab)
for ax, title in zip(axes, ["sparsity: % of outputs that are zero", "dead units: % zero on every test image"]):
    ax.set_xticks(xs)
    ax.set_xticklabels(relus, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# *What the figure shows.* Left: a freshly initialised ReLU network is roughly half zeros in every layer (43–52%: a
# random filter is about as likely to respond negatively as positively). Training makes every layer but the first
# sparser, most of all the last conv layer (85% zeros) and conv2 (73%), while conv1 stays near half (51%). Right,
# the surprise: it is the *fresh* network that has dead units, over a fifth of fc7 and fc8 (22% and 25%). After six
# random conv layers the codes of different images are all non-negative and point in nearly the same direction, so
# a random fc unit that is negative for one image is negative for all of them. Training spreads the codes apart and
# brings most of these units to life; the trained network has few units that never fire on these images (5% of fc7,
# 1% of fc8, and in the conv layers a single map, one of relu1's 32: the conv1 filter that died in training,
# notebook 05). A unit dead on this test subset may still fire on another image,
# so these counts are upper bounds on truly dead units.
