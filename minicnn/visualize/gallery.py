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

__all__ = ["GALLERY_ITEMS", "DEFAULT_ITEMS", "feature_layers", "write_gallery", "gallery_from_run", "EVOLUTION_FILE"]

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


def _pick_examples(net, x, y, n, batch_size=256):
    """Indices of up to n images, correctly classified, of different classes where possible."""
    from ._common import as_batch
    preds = []
    for start in range(0, len(x), batch_size):
        xb, _ = as_batch(net, x[start:start + batch_size])
        preds.append(backend.to_numpy(net.forward(xb)).argmax(axis=1))
    preds = np.concatenate(preds)
    chosen, seen = [], set()
    for i in np.flatnonzero(preds == y):
        if int(y[i]) not in seen:
            chosen.append(int(i))
            seen.add(int(y[i]))
        if len(chosen) == n:
            return chosen
    rest = [i for i in range(len(x)) if i not in chosen]
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


def _topk(ctx):
    from .topk import top_k
    out = []
    for n, layer in enumerate(ctx["layers"][:3], start=1):
        res = top_k(ctx["net"], ctx["x_pool"], layer, k=9, mean=ctx["mean"], select=8,
                    show_progress=ctx["progress"])
        out.append((f"topk_layer{n}_{layer}.png", f"Top-9 projections, layer {n} ({layer})",
                    f"For the 8 most active maps of {layer}: the 9 strongest activations over "
                    f"{len(ctx['x_pool'])} validation images, projected to pixels by the deconvnet and cropped to the "
                    f"{res.projections.shape[-2]}x{res.projections.shape[-1]} receptive field (left), and the image "
                    f"patches under it (right) (ZF Fig. 2).", plots.plot_topk(res)))
    return out


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


def _occlusion(ctx):
    from .occlusion import occlusion
    from .project import project
    net, xs, ys = ctx["net"], ctx["x_examples"][:3], ctx["y_examples"][:3]
    H = xs.shape[2]
    size, stride = max(3, H // 4), max(1, H // 14)
    results, projections = [], []
    for x, y in zip(xs, ys):
        res = occlusion(net, x, int(y), size=size, stride=stride, show_progress=ctx["progress"])
        results.append(res)
        projections.append(project(net, x, res.layer, res.channel))
    fig = plots.plot_occlusion(results, xs, ctx["class_names"], projections, mean=ctx["mean"])
    return [("occlusion.png", "Occlusion sensitivity",
             f"A grey (dataset-mean) {size}x{size} square slid with stride {stride}: (b) total activation of the "
             f"strongest {results[0].layer} map, (c) that map's strongest unit projected, (d) probability of the "
             f"true class, (e) the most probable label (ZF Fig. 7).", fig)]


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
    from .evolution import FeatureEvolution, plot_evolution
    data = ctx.get("evolution")
    if data is None:
        return [(None, "Feature evolution", "Not recorded for this run: train with the "
                 "minicnn.visualize.FeatureEvolution callback (minicnn demo does) to get ZF Fig. 4.", None)]
    if isinstance(data, (str, os.PathLike)):
        data = FeatureEvolution.load(data)
    return [("evolution.png", "Feature evolution during training",
             "For a few maps of each layer (rows), the strongest activation over a fixed probe set projected by "
             "the deconvnet at several epochs (columns) (ZF Fig. 4).", plot_evolution(data))]


def _correspondence(ctx):
    from .correspondence import correspondence, plot_correspondence
    parts = ctx.get("parts")
    if not parts:
        return [(None, "Correspondence", "Needs aligned images with named parts (the faces dataset, "
                 "minicnn.data.FACE_PARTS); not available for this dataset.", None)]
    net, x, y = ctx["net"], ctx["x_pool"], ctx["y_pool"]
    pick = np.flatnonzero(y == ctx.get("parts_class", 0))[:5]
    layers = ctx["layers"][-1:] + [l.name for l in net.layers if isinstance(l, ReLU)][-1:]
    res = correspondence(net, x[pick], parts, layers)
    fig = plot_correspondence(res, x[pick[0]], parts, mean=ctx["mean"])
    return [("correspondence.png", "Correspondence of parts",
             "Mean feature sign change (normalised Hamming distance) when the same part is occluded in 5 "
             "aligned images, against random occlusions of the same size (ZF Table 1):\n" + res.table(), fig)]


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
    from .probes import linear_probes, plot_probes
    net, splits = ctx["net"], ctx["splits"]
    layers = ctx["layers"] + [l.name for l in net.layers if isinstance(l, ReLU)][-1:]
    res = linear_probes(net, splits.train.x[:1000], splits.train.y[:1000], ctx["x_test"], ctx["y_test"], layers,
                        max_dim=512)
    table = "\n".join(f"{l:<8} dim {d:>6}  SVM {100 * a:5.1f}%  softmax {100 * b:5.1f}%"
                       for l, d, a, b in zip(res.layers, res.dims, res.svm, res.softmax))
    return [("probes.png", "Linear probes", "Test accuracy of a linear SVM and a softmax classifier trained on each "
             "layer's fixed features (ZF Table 7 in small):\n" + table, plot_probes(res))]


def _adversarial(ctx):
    from .adversarial import fgsm, fgsm_accuracy, plot_fgsm
    net, x, y = ctx["net"], ctx["x_examples"][:4], ctx["y_examples"][:4]
    eps = 0.1
    x_adv, before, after = fgsm(net, x, y, eps)
    epsilons = [0.0, 0.02, 0.05, 0.1, 0.2]
    acc = fgsm_accuracy(net, ctx["x_test"], ctx["y_test"], epsilons)
    return [("adversarial.png", "Fast-gradient-sign adversarial examples",
             f"x + eps * sign(gradient of the loss), eps = {eps} (images are in [0, 1] before mean subtraction), and "
             f"test accuracy against eps (Goodfellow 2015).",
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


GALLERY_ITEMS = {"filters": _filters, "activations": _activations, "topk": _topk, "saliency": _saliency,
                 "occlusion": _occlusion, "invariance": _invariance, "evolution": _evolution,
                 "correspondence": _correspondence, "clipping": _clipping, "class_models": _class_models,
                 "inversion": _inversion, "tsne": _tsne, "probes": _probes, "adversarial": _adversarial,
                 "sanity": _sanity}
# The demo's gallery (quick); ``--what all`` adds the rest (clipping trains two networks; probes, inversion and
# class models run optimisations: tens of seconds each on a CPU).
DEFAULT_ITEMS = ("filters", "topk", "saliency", "occlusion", "invariance", "evolution", "activations",
                 "correspondence", "sanity", "adversarial")


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
                  n_examples=5, show_progress=False, verbose=False, parts=None):
    """Draw the chosen figures for a trained ``net`` into ``out_dir`` (PNGs + ``index.html``), atomically.

    splits: the ``minicnn.data.Splits`` it was trained on (val images feed the top-k pool, test images the
    examples); what: names from ``GALLERY_ITEMS`` (default ``DEFAULT_ITEMS``); evolution: a path to
    ``evolution.npz`` (``FeatureEvolution.save``) or its loaded dict; parts: {name: box} for correspondence
    (default: ``splits.info["face_parts"]`` when present). Returns the list of written file paths.
    """
    what = list(DEFAULT_ITEMS if what is None else what)
    if "all" in what:
        what = list(GALLERY_ITEMS)
    unknown = [w for w in what if w not in GALLERY_ITEMS]
    if unknown:
        raise ValueError(f"unknown gallery item(s) {', '.join(unknown)}; available: {', '.join(GALLERY_ITEMS)}")
    pool_x = splits.val.x[:max_pool_images]
    pool_y = splits.val.y[:max_pool_images]
    test = splits.test if len(getattr(splits.test, "y", [])) else splits.val
    pick = _pick_examples(net, test.x, test.y, n_examples)
    info = getattr(splits, "info", None) or {}
    ctx = {"net": net, "splits": splits, "mean": getattr(splits, "mean", None), "x_pool": pool_x, "y_pool": pool_y,
           "x_examples": test.x[pick], "y_examples": test.y[pick], "x_test": test.x, "y_test": test.y,
           "class_names": list(splits.class_names),
           "layers": feature_layers(net), "evolution": evolution, "progress": show_progress,
           "parts": parts if parts is not None else info.get("face_parts")}

    out_dir = os.path.abspath(os.fspath(out_dir))
    _check_replaceable(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        entries, notes = [], []
        for item in what:
            t0 = time.perf_counter()
            for fname, t, caption, fig in GALLERY_ITEMS[item](ctx):
                if fig is None:
                    notes.append((t, caption))
                    continue
                plots.save(fig, os.path.join(tmp, fname))
                entries.append((fname, t, caption))
            if verbose:
                print(f"  gallery: {item} ({time.perf_counter() - t0:.1f} s)", flush=True)
        with open(os.path.join(tmp, "index.html"), "w") as f:
            f.write(_html(title or f"{net.name} on {getattr(splits, 'name', 'data')}: what the network sees", entries,
                          notes))
        old = None
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "g"))
        os.rename(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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


# --- minicnn demo -----------------------------------------------------------------------------------------

def demo_callbacks(out_dir, epochs):
    """The callbacks ``minicnn demo`` trains with: feature evolution (ZF Fig. 4) at epochs 1, 2, 3, 5, 8, ... and
    the last, saved to ``out_dir/evolution.npz`` after each so that the gallery (and ``minicnn visualize``) can
    draw it."""
    from .evolution import FeatureEvolution
    marks = {e for e in (1, 2, 3, 5, 8, 12, 20, 30, 40, 64) if e <= epochs} | {int(epochs)}
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
