"""The gallery: every figure of ``minicnn.visualize`` for one trained network, as PNGs plus an ``index.html``.

Written atomically: everything goes into a temporary directory beside the target, which is renamed into place
only when every figure succeeded; a failure removes the temporary directory and leaves the previous gallery
(if any) untouched, so there is never a half-written gallery.
"""
from __future__ import annotations

import html
import os
import shutil
import tempfile
import time

import numpy as np

from .. import backend
from ..layers import LRN, Conv2D, Flatten, Linear, MaxPool2D, ReLU
from . import plots
from ._common import replace_directory

__all__ = ["GALLERY_ITEMS", "DEFAULT_ITEMS", "PRETRAINED_ITEMS", "feature_layers", "write_gallery", "gallery_from_run",
           "gallery_pretrained", "pretrained_gallery_dir", "PHOTOS_ITEMS", "EVOLUTION_FILE", "LOOK_AT"]

EVOLUTION_FILE = "evolution.npz"


def feature_layers(net):
    """One layer per convolution block: the last ReLU or MaxPool2D after each Conv2D (before the next Conv2D
    or Flatten), i.e. the rectified, pooled maps ZF call "layer 1", "layer 2", ..."""
    names, current = [], None
    for layer in net.layers:
        if isinstance(layer, (Conv2D, Flatten, Linear)):
            if current:
                names.append(current)
            current = None
        if isinstance(layer, (ReLU, MaxPool2D)) and not isinstance(layer, LRN):
            current = layer.name if any(isinstance(l, Conv2D) for l in net.layers[:net.index(layer)]) else None
        if isinstance(layer, (Flatten, Linear)):
            break
    if current:
        names.append(current)
    return names


# Upper bounds on the images any one gallery item looks at, so that drawing the gallery costs the same on a
# 10,000-image test set as on a 500-image one (FGSM over a full 10k test set took 70 s of a 90 s gallery).
MAX_SEARCH_IMAGES = 2000     # examples are picked among the first this many test images
MAX_EVAL_IMAGES = 1000       # FGSM accuracy, t-SNE, linear-probe test images
MAX_PROBE_TRAIN = 1000       # linear-probe training images


def _pick_examples(net, x, y, n, batch_size=256, prefer=None):
    """Indices of up to n images, correctly classified, of different classes where possible (searched among
    the first ``MAX_SEARCH_IMAGES``); ``prefer``: class labels to take first, in that order."""
    from ._common import as_batch
    x, y = x[:MAX_SEARCH_IMAGES], y[:MAX_SEARCH_IMAGES]
    preds = []
    for start in range(0, len(x), batch_size):
        xb, _ = as_batch(net, x[start:start + batch_size])
        preds.append(backend.to_numpy(net.forward(xb)).argmax(axis=1))
    preds = np.concatenate(preds)
    chosen, seen = [], set()
    correct = np.flatnonzero(preds == y)
    for k in (prefer or ()):
        hits = correct[y[correct] == k]
        if len(hits) and len(chosen) < n and int(k) not in seen:
            chosen.append(int(hits[0]))
            seen.add(int(k))
    for i in correct:
        if int(y[i]) not in seen:
            chosen.append(int(i))
            seen.add(int(y[i]))
        if len(chosen) == n:
            return chosen
    rest = [i for i in range(min(len(x), n + len(chosen))) if i not in chosen]
    return (chosen + rest)[:n]


# --- one function per gallery item: (context) -> list of (file name, title, caption, figure) -----------------

def _filters(ctx):
    net = ctx["net"]
    convs = [l.name for l in net.layers if isinstance(l, Conv2D)]
    out = [("filters_conv1.png", "First-layer filters", f"The {net[convs[0]].params['W'].shape[0]} filters of "
            f"{convs[0]}, each scaled about grey (ZF Fig. 6 c).", plots.plot_filters(net, convs[0]))]
    return out


def _activations(ctx):
    net, x = ctx["net"], ctx["x_examples"][0]
    return [(f"activations_{layer}.png", f"Feature maps of {layer}", f"Every map of {layer} for one test image.",
             plots.plot_activations(net, x, layer, mean=ctx["mean"])) for layer in ctx["layers"][:3]]


MAX_FIG2_LAYERS = 6      # ZF's five conv layers; zfnet_medium's six


def _topk_results(ctx):
    """Top-9 of the 8 most active maps of every feature layer (computed once, shared by topk and zf_fig2)."""
    from .topk import top_k
    if "topk_results" not in ctx:
        ctx["topk_results"] = [top_k(ctx["net"], ctx["x_pool"], layer, k=9, mean=ctx["mean"], select=8,
                                     show_progress=ctx["progress"]) for layer in ctx["layers"][:MAX_FIG2_LAYERS]]
    return ctx["topk_results"]


def _topk(ctx):
    out = []
    for n, res in enumerate(_topk_results(ctx), start=1):
        layer = res.layer
        out.append((f"topk_layer{n}_{layer}.png", f"Top-9 projections, layer {n} ({layer})",
                    f"For the 8 most active maps of {layer}: the 9 strongest activations over "
                    f"{len(ctx['x_pool'])} held-out images, projected to pixels by the deconvnet and cropped to the "
                    f"{res.projections.shape[-2]}x{res.projections.shape[-1]} receptive field (left), and the image "
                    f"patches under it (right); light blue is outside the image (ZF Fig. 2).", plots.plot_topk(res)))
    return out


def _zf_fig2(ctx):
    results = _topk_results(ctx)
    return [("zf_fig2.png", f"ZF Fig. 2: layers 1-{len(results)}",
             f"Layers 1-{len(results)} ({', '.join(r.layer for r in results)}): "
             f"for 4 maps each, the top-9 deconvnet projections beside their image patches, over "
             f"{len(ctx['x_pool'])} held-out images; light blue is outside the image.",
             plots.plot_zf_fig2(results))]


def _saliency(ctx):
    from .project import input_gradient, saliency
    net, x, y = ctx["net"], ctx["x_examples"], ctx["y_examples"]
    maps = {"saliency |grad|": saliency(net, x, y), "guided backprop": input_gradient(net, x, y, "guided")[0],
            "deconvnet": input_gradient(net, x, y, "deconvnet")[0], "gradient": input_gradient(net, x, y)[0]}
    names = ctx["class_names"]
    fig = plots.plot_saliency(x, maps, names, mean=ctx["mean"], titles=[names[int(c)] for c in y])
    return [("saliency.png", "Saliency, guided backprop, deconvnet",
             "The pre-softmax score of the true class sent back to the pixels with the three ReLU rules: "
             "Simonyan saliency (max over channels of |gradient|), Springenberg's guided backprop, the ZF deconvnet, "
             "and the signed plain gradient.", fig)]


MAX_OCCLUSION_CANDIDATES = 10   # images screened (coarse grid) for the occlusion figure


def _occlusion(ctx):
    """ZF Fig. 7 for three images: of the first correctly classified test image of each class (at most
    ``MAX_OCCLUSION_CANDIDATES``), screened on a coarse grid, the three whose p(true) falls most."""
    from .occlusion import occlusion
    from .project import project
    net, cand_x, cand_y = ctx["net"], ctx["x_candidates"], ctx["y_candidates"]
    H = cand_x.shape[2]
    size, stride = max(3, (3 * H) // 8), max(1, H // 14)     # 12x12 on 32x32: a part of an object
    drops = [float(r.base_probability - r.probability.min()) for r in
             (occlusion(net, x, int(y), size=size, stride=2 * stride, show_progress=False)
              for x, y in zip(cand_x, cand_y))]
    order = np.argsort(drops, kind="stable")[::-1][:3]
    xs, ys = cand_x[order], cand_y[order]
    results, projections = [], []
    for x, y in zip(xs, ys):
        res = occlusion(net, x, int(y), size=size, stride=stride, show_progress=ctx["progress"])
        results.append(res)
        projections.append(project(net, x, res.layer, res.channel))
    fig = plots.plot_occlusion(results, xs, ctx["class_names"], projections, mean=ctx["mean"])
    return [("occlusion.png", "Occlusion sensitivity",
             f"A grey (dataset-mean) {size}x{size} square slid with stride {stride}: (b) total activation of the "
             f"strongest {results[0].layer} map, (c) that map's strongest unit projected, (d) probability of the "
             f"true class, (e) the most probable label (ZF Fig. 7). The three images are, of the first correctly "
             f"classified test image of each of {len(cand_y)} classes, those whose p(true) falls most "
             f"(drops {', '.join(f'{drops[i]:.2f}' for i in order)}; the median over all {len(cand_y)} was "
             f"{float(np.median(drops)):.2f}).", fig)]


def _invariance(ctx):
    from .invariance import invariance, plot_invariance
    net, x, y = ctx["net"], ctx["x_examples"][:5], ctx["y_examples"][:5]
    results = [invariance(net, x, y, kind) for kind in ("translate", "scale", "rotate")]
    fig = plot_invariance(results, mean=ctx["mean"], class_names=ctx["class_names"])
    low, high = list(results[0].distances)
    return [("invariance.png", "Invariance to translation, scale, rotation",
             f"Euclidean distance between the {low} and {high} feature vectors of each image and its transformed "
             f"copies, and the probability of the true class (ZF Fig. 5).", fig)]


def _evolution(ctx):
    from .evolution import FeatureEvolution, plot_evolution, plot_settling, settling
    data = ctx.get("evolution")
    if data is None:
        return [(None, "Feature evolution", "Not recorded for this run: train with the "
                 "minicnn.visualize.FeatureEvolution callback (minicnn demo does) to get ZF Fig. 4.", None)]
    if isinstance(data, (str, os.PathLike)):
        data = FeatureEvolution.load(data)
    items = [("evolution.png", "Feature evolution during training",
              "For a few maps of each layer (rows), the strongest activation over a fixed probe set projected by "
              "the deconvnet at several epochs (columns) (ZF Fig. 4).", plot_evolution(data))]
    if settling(data):
        items.append(("evolution_settling.png", "When each layer settles",
                      "For every map of each layer, the correlation of its responses to the probe images with its "
                      "responses at the end of training, averaged over the layer's maps.", plot_settling(data)))
    return items


def _correspondence(ctx):
    """ZF Table 1 on ``N_CORRESPONDENCE`` images of one class whose named parts sit at the same place in every image
    (faces; Fashion-MNIST's ankle boots), against random object regions drawn per image, as ZF's Fig. 8 does."""
    from .correspondence import correspondence, plot_correspondence
    parts = ctx.get("parts")
    if not parts:
        return [(None, "Correspondence", "Needs aligned images with named parts (the faces dataset, "
                 "minicnn.data.FACE_PARTS; the shipped Fashion-MNIST network's ankle boots, minicnn.data."
                 "FASHION_PARTS); not available for this dataset.", None)]
    net, x, y = ctx["net"], ctx["x_pool"], ctx["y_pool"]
    cls = ctx.get("parts_class") or 0
    pick = np.flatnonzero(y == cls)[:N_CORRESPONDENCE]
    relus = [l.name for l in net.layers if isinstance(l, ReLU)]
    layers = list(dict.fromkeys(ctx["layers"][2:3] + ctx["layers"][-1:] + relus[-1:]))
    on = None
    if ctx.get("parts_on_object") and ctx.get("mean") is not None:     # random boxes centred on the object
        raw = (x[pick] + np.asarray(ctx["mean"])[None]).mean(axis=1)
        on = raw > OBJECT_THRESHOLD
    res = correspondence(net, x[pick], parts, layers, random="per_image", random_on=on,
                         fill=ctx.get("parts_fill", 0.0))
    fig = plot_correspondence(res, x[pick[0]], parts, mean=ctx["mean"], fill=ctx.get("parts_fill", 0.0))
    name = ctx["class_names"][cls]
    return [("correspondence.png", "Correspondence of parts",
             f"Mean feature sign change (normalised Hamming distance over all pairs) when the same part is occluded "
             f"in {len(pick)} aligned '{name}' images, against a random box of the same size drawn in each image "
             f"{'on the object ' if on is not None else ''}(ZF Table 1, Fig. 8):\n" + res.table(), fig)]


N_CORRESPONDENCE = 12     # images of the class (66 pairs); ZF used 5 dogs (10 pairs)
OBJECT_THRESHOLD = 0.2    # a pixel of a [0, 1] image belongs to the object above this (Fashion-MNIST: black ground)


def _clipping(ctx):
    from .clipping import plot_clipping, train_clipping_pair
    import copy
    net = ctx["net"]
    if ctx.get("splits") is None:
        return [(None, "Feature-scale clipping", "Needs the training data.", None)]
    fresh = copy.deepcopy(net)
    rng = np.random.default_rng(0)
    for layer in fresh.layers:          # same architecture, fresh weights: both runs start from one init
        if isinstance(layer, (Conv2D, Linear)):
            W = layer.params["W"]
            fan_in = int(np.prod(W.shape[1:])) if W.ndim == 4 else W.shape[0]
            layer.params["W"] = backend.xp(W).asarray(rng.standard_normal(W.shape) * np.sqrt(2 / fan_in), dtype=W.dtype)
            layer.params["b"] = layer.params["b"] * 0
    clipped, unclipped, _, _ = train_clipping_pair(fresh, ctx["splits"], epochs=1, lr=5e-2, max_images=600)
    return [("clipping.png", "Feature-scale clipping",
             "First-layer filters after one short epoch at a high learning rate, from the same initial weights, "
             "with and without ZF's filter-RMS clipping at 0.1 (ZF Fig. 6 a/c).", plot_clipping(clipped, unclipped))]


def _class_models(ctx):
    from .class_model import class_model, plot_class_models
    names = ctx["class_names"]
    xs, _ = class_model(ctx["net"], list(range(len(names))), ctx["x_pool"].shape[1:], steps=120, blur_every=4,
                        jitter=1)
    return [("class_models.png", "Class models", "For each class, an input synthesised by gradient ascent on the "
             "pre-softmax class score with L2 decay, blur and jitter (Simonyan 2014 Fig. 1; Yosinski 2015).",
             plot_class_models(xs, names, ctx["mean"]))]


def _inversion(ctx):
    from .inversion import invert, plot_inversions
    net, x = ctx["net"], ctx["x_examples"][:3]
    layers = ctx["layers"][:2] + [l.name for l in net.layers if isinstance(l, ReLU)][-1:]
    rec = {layer: invert(net, x, layer, steps=120)[0] for layer in layers}
    return [("inversion.png", "Inverting the code", "Images reconstructed from their code at several layers by "
             "gradient descent with a total-variation prior (Mahendran & Vedaldi 2015): detail fades with depth.",
             plot_inversions(x, rec, layers, ctx["mean"]))]


def _tsne(ctx):
    from .embedding import plot_tsne, tsne
    net = ctx["net"]
    layer = [l.name for l in net.layers if isinstance(l, ReLU)][-1]
    x, y = ctx["x_test"][:300], ctx["y_test"][:300]
    coords = tsne(net, x, layer)
    return [("tsne.png", f"t-SNE of {layer}", f"Test images placed by a t-SNE of their {layer} codes; frame colour "
             "is the true class.", plot_tsne(coords, x, y, ctx["class_names"], ctx["mean"], layer))]


def _probes(ctx):
    """ZF Table 7 in small, bounded: a ridge-regression linear classifier (one closed-form solve a layer, no
    iterative fitting) on at most ``MAX_PROBE_TRAIN`` training and ``MAX_EVAL_IMAGES`` test images."""
    from .probes import linear_probes, plot_probes
    net, splits = ctx["net"], ctx["splits"]
    layers = ctx["layers"] + [l.name for l in net.layers if isinstance(l, ReLU)][len(ctx["layers"]):]
    res = linear_probes(net, splits.train.x[:MAX_PROBE_TRAIN], splits.train.y[:MAX_PROBE_TRAIN],
                        ctx["x_test"][:MAX_EVAL_IMAGES], ctx["y_test"][:MAX_EVAL_IMAGES], layers, max_dim=512,
                        methods=("ridge",))
    n_train, n_test = min(len(splits.train.y), MAX_PROBE_TRAIN), min(len(ctx["y_test"]), MAX_EVAL_IMAGES)
    table = "\n".join(f"{l:<8} dim {d:>6}  ridge probe {100 * a:5.1f}%"
                      for l, d, a in zip(res.layers, res.dims, res.ridge))
    return [("probes.png", "Linear probes", f"Test accuracy ({n_test} images) of a linear classifier (ridge regression "
             f"onto one-hot labels, closed form) trained on {n_train} images' fixed features of each layer, wide "
             f"layers averaged down to 512 features (ZF Table 7 in small):\n" + table, plot_probes(res))]


def _adversarial(ctx):
    from .adversarial import fgsm, fgsm_accuracy, plot_fgsm
    net, x, y = ctx["net"], ctx["x_examples"][:4], ctx["y_examples"][:4]
    eps = 0.1
    x_adv, before, after = fgsm(net, x, y, eps)
    epsilons = [0.0, 0.02, 0.05, 0.1, 0.2]
    x_eval, y_eval = ctx["x_test"][:MAX_EVAL_IMAGES], ctx["y_test"][:MAX_EVAL_IMAGES]
    acc = fgsm_accuracy(net, x_eval, y_eval, epsilons)
    return [("adversarial.png", "Fast-gradient-sign adversarial examples",
             f"x + eps * sign(gradient of the loss), eps = {eps} (images are in [0, 1] before mean subtraction), and "
             f"accuracy against eps on {len(y_eval)} test images (Goodfellow 2015).",
             plot_fgsm(x, x_adv, before, after, y, ctx["class_names"], epsilons, acc, ctx["mean"], eps))]


def _sanity(ctx):
    from .sanity import cascading_randomization, plot_cascade
    x, y = ctx["x_examples"][:4], ctx["y_examples"][:4]
    res = cascading_randomization(ctx["net"], x, y)
    summary = "\n".join(f"{m:<16} " + " ".join(f"{v:5.2f}" for v in sim.mean(axis=1))
                         for m, sim in res.similarity.items())
    return [("sanity.png", "Sanity check: cascading randomisation",
             "Weights re-drawn from the top layer down; a trustworthy map must change (Adebayo et al. 2018). Mean "
             "rank correlation with the trained network's map per stage (" + ", ".join(res.stages) + "):\n" +
             summary, plot_cascade(res, x[0], ctx["mean"]))]


GALLERY_ITEMS = {"filters": _filters, "activations": _activations, "topk": _topk, "zf_fig2": _zf_fig2,
                 "saliency": _saliency,
                 "occlusion": _occlusion, "invariance": _invariance, "evolution": _evolution,
                 "correspondence": _correspondence, "clipping": _clipping, "class_models": _class_models,
                 "inversion": _inversion, "tsne": _tsne, "probes": _probes, "adversarial": _adversarial,
                 "sanity": _sanity}
# The demo's gallery (quick); ``--what all`` adds the rest (clipping trains two networks; probes, inversion and
# class models run optimisations: tens of seconds each on a CPU).
DEFAULT_ITEMS = ("filters", "topk", "zf_fig2", "saliency", "occlusion", "invariance", "evolution", "activations",
                 "correspondence", "sanity", "adversarial")


# One line per item, written under its figure (so a slide keeps it) and first in its caption: what to look at.
LOOK_AT = {
    "filters": "Look for oriented edge and bar detectors and blob (centre-surround) filters; noise means undertrained.",
    "activations": "Look at which maps respond to the object's outline, which to its texture, which stay dark.",
    "topk": "Look whether the 9 patches of a map share a part or texture, and whether the projection traces it.",
    "zf_fig2": "Read down the rows: edges at layer 1, then parts, then whole object shapes; receptive fields grow.",
    "saliency": "Look where the class evidence sits: guided backprop and the deconvnet draw outlines, |gradient| speckles.",
    "occlusion": "Look where the grey square makes p(true class) fall (blue in d) and which label takes over (e).",
    "invariance": "Look how far the features move under each transform, and at which size p(true) gives way.",
    "evolution": "Read each row left to right (epochs): layer 1 barely changes after epoch 1, higher layers keep changing.",
    "evolution_settling": "Look at the order in which the lines reach 1: a layer that gets there first settled first.",
    "correspondence": "Lower is more consistent: a part whose occlusion changes the code the same way in every image.",
    "clipping": "Compare the two filter banks: without clipping a few filters grow large and dominate.",
    "class_models": "Look for the class's typical outline emerging from the optimised image.",
    "inversion": "Look how much detail each layer's code keeps: lower layers reconstruct the image, higher ones its gist.",
    "tsne": "Look whether the classes form separate clusters in the top layer's code.",
    "probes": "Look at accuracy against depth: features become more linearly separable higher up.",
    "adversarial": "Look how a barely visible perturbation changes the label, and how fast accuracy falls with eps.",
    "sanity": "A trustworthy map must change as the weights are randomised from the top down.",
    "colour_filters": "Look for colour: single-colour blobs and colour-opponent pairs beside light-dark oriented "
                      "edges (ZF Fig. 6c).",
}


def _html(title, entries, notes):
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "figure{margin:2em 0}img{max-width:100%;border:1px solid #ccc}pre{background:#f4f4f4;padding:.5em}"
             "figcaption{color:#333}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts.append("<ul>" + "".join(f"<li><a href='#{html.escape(f)}'>{html.escape(t)}</a></li>"
                                  for f, t, _ in entries) + "</ul>")
    for fname, t, caption in entries:
        cap = html.escape(caption).split("\n", 1)
        body = cap[0] + (f"<pre>{cap[1]}</pre>" if len(cap) > 1 else "")
        parts.append(f"<figure id='{html.escape(fname)}'><h2>{html.escape(t)}</h2>"
                     f"<img src='{html.escape(fname)}' alt='{html.escape(t)}'><figcaption>{body}</figcaption></figure>")
    if notes:
        parts.append("<h2>Not drawn</h2><ul>" + "".join(f"<li><b>{html.escape(t)}</b>: {html.escape(c)}</li>"
                                                        for t, c in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _check_replaceable(out_dir):
    """The gallery replaces ``out_dir`` as a whole, so ``out_dir`` must be missing, empty, or an earlier gallery
    (index.html and PNGs, nothing else): ``--out runs/demo`` must never delete a run, ``--out ~`` a home."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ValueError(f"gallery directory {out_dir} is an existing file")
    entries = os.listdir(out_dir)
    foreign = [e for e in entries if not (os.path.isfile(os.path.join(out_dir, e)) and e.endswith((".png", ".html")))]
    if entries and (foreign or "index.html" not in entries):
        shown = ", ".join(sorted(foreign or entries)[:5])
        raise ValueError(f"gallery directory {out_dir} exists and is not a minicnn gallery (it holds {shown}"
                         f"{', ...' if len(foreign or entries) > 5 else ''}); the gallery replaces its directory "
                         f"as a whole, so choose a new or empty one")


def write_gallery(net, splits, out_dir, what=None, *, evolution=None, title=None, max_pool_images=1000,
                  n_examples=5, show_progress=False, verbose=False, parts=None, prefer_classes=None, items=None,
                  parts_class=None, parts_on_object=False, parts_fill=0.0):
    """Draw the chosen figures for a trained ``net`` into ``out_dir`` (PNGs + ``index.html``), atomically.

    splits: the ``minicnn.data.Splits`` it was trained on (val images feed the top-k pool, test images the
    examples); what: names from ``GALLERY_ITEMS`` (default ``DEFAULT_ITEMS``); evolution: a path to
    ``evolution.npz`` (``FeatureEvolution.save``) or its loaded dict; parts: {name: box} for correspondence
    (default: ``splits.info["face_parts"]`` when present), of the images of class ``parts_class`` (default 0),
    random boxes centred on the object when ``parts_on_object`` (pixels above ``OBJECT_THRESHOLD``), occluded parts
    painted with ``parts_fill`` (0: the mean; a (C, H, W) image, e.g. ``-mean``: black); prefer_classes: labels
    whose test images are the
    examples first (occlusion shows the first three); items: {name: function(ctx)} added to (or replacing)
    ``GALLERY_ITEMS`` for this gallery. Returns the list of written file paths.
    """
    available = {**GALLERY_ITEMS, **(items or {})}
    what = list(DEFAULT_ITEMS if what is None else what)
    if "all" in what:
        what = list(available)
    unknown = [w for w in what if w not in available]
    if unknown:
        raise ValueError(f"unknown gallery item(s) {', '.join(unknown)}; available: {', '.join(available)}")
    pool_x = splits.val.x[:max_pool_images]
    pool_y = splits.val.y[:max_pool_images]
    test = splits.test if len(getattr(splits.test, "y", [])) else splits.val
    pick = _pick_examples(net, test.x, test.y, n_examples, prefer=prefer_classes)
    n_classes = len(splits.class_names)
    candidates = _pick_examples(net, test.x, test.y, min(n_classes, MAX_OCCLUSION_CANDIDATES))
    info = getattr(splits, "info", None) or {}
    ctx = {"net": net, "splits": splits, "mean": getattr(splits, "mean", None), "x_pool": pool_x, "y_pool": pool_y,
           "x_examples": test.x[pick], "y_examples": test.y[pick], "x_test": test.x, "y_test": test.y,
           "x_candidates": test.x[candidates], "y_candidates": test.y[candidates],
           "class_names": list(splits.class_names),
           "layers": feature_layers(net), "evolution": evolution, "progress": show_progress,
           "parts": parts if parts is not None else info.get("face_parts"), "parts_class": parts_class,
           "parts_on_object": parts_on_object, "parts_fill": parts_fill}

    out_dir = os.path.abspath(os.fspath(out_dir))
    _check_replaceable(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        entries, notes = [], []
        for item in what:
            t0 = time.perf_counter()
            for fname, t, caption, fig in available[item](ctx):
                if fig is None:
                    notes.append((t, caption))
                    continue
                look = LOOK_AT.get(os.path.splitext(fname)[0], LOOK_AT.get(item))   # a figure's own line first
                if look:
                    plots.add_caption(fig, look)
                    caption = f"{look} {caption}"
                plots.save(fig, os.path.join(tmp, fname))
                entries.append((fname, t, caption))
            if verbose:
                print(f"  gallery: {item} ({time.perf_counter() - t0:.1f} s)", flush=True)
        with open(os.path.join(tmp, "index.html"), "w") as f:
            f.write(_html(title or f"{net.name} on {getattr(splits, 'name', 'data')}: what the network sees", entries,
                          notes))
        replace_directory(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [os.path.join(out_dir, f) for f, _, _ in entries] + [os.path.join(out_dir, "index.html")]


def gallery_from_run(run_dir, what=None, out_dir=None, which="best", device="cpu", **kwargs):
    """``minicnn visualize runs/NAME``: reload the run (weights and data split) and write its gallery into
    ``out_dir`` (default ``runs/NAME/gallery``). Uses ``runs/NAME/evolution.npz`` when the run recorded one."""
    from ..train import load_run
    run = load_run(run_dir, which=which)
    if device != "cpu":
        run.net.to(device)
    evo = os.path.join(os.fspath(run_dir), EVOLUTION_FILE)
    kwargs.setdefault("evolution", evo if os.path.exists(evo) else None)
    return write_gallery(run.net, run.splits, out_dir or os.path.join(os.fspath(run_dir), "gallery"), what, **kwargs)


# --- the shipped networks ------------------------------------------------------------------------------

# The Fashion-MNIST network's gallery: the demo's figures plus the colour network's conv1 filters (Fashion-MNIST is
# grey, so its own filters have no colour), the linear probes (ridge, closed form: seconds) and the class models
# (10 s; on the 64x64 network the dress's A-line, the trousers' gap and the shirts' sleeves show).
PRETRAINED_ITEMS = (("filters", "colour_filters") + tuple(i for i in DEFAULT_ITEMS if i != "filters")
                    + ("probes", "class_models"))
# The photos network's: no occlusion (listed, to say why), no correspondence (no named parts).
PHOTOS_ITEMS = ("filters", "topk", "zf_fig2", "saliency", "evolution", "activations", "invariance", "occlusion",
                "sanity", "adversarial")
# Occlusion examples: ankle boot, bag, sneaker first (objects with parts: shaft, handle, sole), then the rest.
PRETRAINED_EXAMPLES = (9, 8, 7, 0, 3)
CORRESPONDENCE_CLASS = "Ankle boot"    # its images are aligned pixel for pixel (minicnn.data.FASHION_PARTS)
PRETRAINED_GALLERY = os.path.join("runs", "pretrained", "gallery")
PHOTOS_GALLERY = os.path.join("runs", "pretrained", "gallery-photos")


def _colour_filters(ctx):
    """The colour network's conv1 filters, for the Fashion-MNIST network's gallery."""
    from ..pretrained import load
    p = load("photos", ctx.get("pretrained_folder"))
    W = p.net["conv1"].params["W"]
    acc = p.meta.get("test_top1")
    return [("filters_conv1_photos.png", "First-layer filters of the colour network",
             f"The {W.shape[0]} {W.shape[2]}x{W.shape[3]} conv1 filters of the second shipped network, "
             f"{p.net.name} trained on colour photographs (minicnn gallery --network photos"
             + (f"; {100 * acc:.1f}% test top-1 on which of {len(p.class_names)} photographs a crop comes from"
                if acc is not None else "") + "), each scaled about grey.",
             plots.plot_filters(p.net, "conv1", title=f"photos network: conv1 filters ({W.shape[0]}, "
                                f"{W.shape[2]}x{W.shape[3]}, colour)"))]


def _photos_occlusion_note(ctx):
    return [(None, "Occlusion sensitivity", "Not drawn for the photos network: its task is which photograph a crop "
             "comes from, and every part of a crop carries the photograph's colours and texture, so covering a part "
             "hardly moves p(true) (ZF Fig. 7 needs objects). The Fashion-MNIST network's gallery (minicnn gallery) "
             "has it.", None)]


def pretrained_gallery_dir(name="fashion"):
    """Default directory of ``minicnn gallery [--network NAME]``."""
    from ..pretrained import canonical_name
    return PRETRAINED_GALLERY if canonical_name(name, "gallery") == "fashion-zf" else PHOTOS_GALLERY


def gallery_pretrained(out_dir=None, what=None, name="fashion", folder=None, **kwargs):
    """``minicnn gallery [--network fashion|photos]``: the figures of a network that ships with minicnn
    (:mod:`minicnn.pretrained`), drawn from its shipped test images, with the feature evolution recorded while it
    trained. No training, no data files needed. The Fashion-MNIST network's gallery also shows the colour
    network's conv1 filters. folder: where the shipped files are (default: the package's). Returns the files
    written (the last is ``index.html``)."""
    from ..pretrained import NAMES, canonical_name, load
    key = canonical_name(name, "gallery")
    p = load(key, folder)
    kwargs.setdefault("evolution", p.evolution)
    acc = p.meta.get("test_top1")
    W = p.net["conv1"].params["W"]
    C, H, Wd = p.mean.shape
    if key == "fashion-zf":
        from ..data import fashion_parts
        kwargs.setdefault("prefer_classes", PRETRAINED_EXAMPLES)
        # correspondence on ankle boots, parts erased to the black background, random boxes on the boot
        kwargs.setdefault("parts", fashion_parts(H, CORRESPONDENCE_CLASS))
        kwargs.setdefault("parts_class", list(p.class_names).index(CORRESPONDENCE_CLASS))
        kwargs.setdefault("parts_on_object", True)
        kwargs.setdefault("parts_fill", -p.mean)
        items, default, data = {"colour_filters": _colour_filters}, PRETRAINED_ITEMS, "Fashion-MNIST"
        if folder is not None:      # the colour network's filters come from the same folder, when it holds them
            items["colour_filters"] = lambda ctx: _colour_filters({**ctx, "pretrained_folder": folder})
            if not os.path.exists(os.path.join(os.fspath(folder), NAMES["photos-zf"][0])):
                default = tuple(i for i in default if i != "colour_filters")
    else:
        items, default = {"occlusion": _photos_occlusion_note}, PHOTOS_ITEMS
        data = f"{len(p.class_names)} colour photographs, {H}x{Wd} crops"
    kwargs.setdefault("title", f"The shipped network ({p.net.name}, width {W.shape[0]}, {data}"
                      + (f", {100 * acc:.1f}% test top-1" if acc is not None else "") + "): what it sees")
    what = list(default if what is None else what)
    return write_gallery(p.net, p.splits(), out_dir or pretrained_gallery_dir(key), what, items=items, **kwargs)


# --- minicnn demo -----------------------------------------------------------------------------------------

def demo_callbacks(out_dir, epochs):
    """The callbacks ``minicnn demo`` trains with: feature evolution (ZF Fig. 4) before the first step and at epochs
    1, 2, 3, 5, 8, ... and the last, saved to ``out_dir/evolution.npz`` after each so that the gallery (and
    ``minicnn visualize``) can draw it, and when each layer settles."""
    from .evolution import FeatureEvolution
    marks = {e for e in (0, 1, 2, 3, 5, 8, 12, 20, 30, 40, 64) if e <= epochs} | {int(epochs)}
    return [FeatureEvolution(path=os.path.join(os.fspath(out_dir), EVOLUTION_FILE), epochs=sorted(marks))]


def demo_gallery(out_dir, trainer, device="cpu", verbose=True):
    """The end of ``minicnn demo``: the default gallery of the trained network (the trainer's final weights) into
    ``out_dir/gallery``. Returns the files written (the last is ``index.html``)."""
    t0 = time.perf_counter()
    evo = os.path.join(os.fspath(out_dir), EVOLUTION_FILE)
    files = write_gallery(trainer.net, trainer.splits, os.path.join(os.fspath(out_dir), "gallery"),
                          evolution=evo if os.path.exists(evo) else None, verbose=False)
    if verbose:
        print(f"gallery: {len(files) - 1} figures in {time.perf_counter() - t0:.1f} s -> {files[-1]}", flush=True)
    return files
