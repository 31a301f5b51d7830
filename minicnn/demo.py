"""``minicnn demo``: the main job. Train the default small ZF-style network from scratch on colour data that ships
offline (crops of scikit-image's photographs) and write everything a reader wants to look at into ``runs/demo/``,
in under three minutes on a 2-core CPU.

    runs/demo/checkpoint.npz, best.npz   weights, optimiser state, architecture (``minicnn evaluate runs/demo``)
    runs/demo/history.json, history.csv  per-epoch loss and top-1/top-5 accuracy, train and validation
    runs/demo/curves.png                 learning curves
    runs/demo/summary.txt                what was trained, test accuracy, wall time, where the files are
    runs/demo/evolution.npz              feature evolution snapshots (ZF Fig. 4), recorded while training
    runs/demo/gallery/index.html         the Zeiler-Fergus figures (colour filters, top-9, saliency, ...)

The task is ``textures``: which of 10 scikit-image photographs (brick, grass, gravel, camera, coins, moon, coffee,
cat, astronaut, rocket) a 32x32 crop comes from, with train, val and test crops from disjoint tiles. It is colour,
so conv1 learns colour blobs and edges (ZF Fig. 6); any crop identifies its photograph, so occlusion says little
here. The networks that ship with minicnn (``minicnn gallery``) show the object-level figures.
"""
from __future__ import annotations

import os
import time

__all__ = ["run_demo", "DEMO_SETTINGS", "DEMO_CONV1_INIT_SCALE"]

# The demo's training run: zfnet_small (width 16) on 2,000 32x32 colour crops (1,400 train) of the 10 ``textures``
# photographs, 12 epochs with the rate divided by 10 after epoch 8, random crops, flips and colour jitter. One run
# (seed 0): 81.7% val, 74.0% test top-1 (300 test crops, chance 10%), 50 CPU-seconds of training; the whole demo,
# gallery included, took 71 s wall at load average 3 on the 2-core development machine.
DEMO_SETTINGS = dict(model="zfnet_small", data="textures", image_size=32, n_samples=2000, width=16, dropout=0.0,
                     epochs=12, batch_size=32, lr=2e-2, momentum=0.9, weight_decay=5e-4, clip_radius=0.1,
                     schedule="step", step_size=8, crop_pad=2, colour_jitter=0.2, seed=0)
# conv1 starts at a tenth of He's scale (ZF started at std 1e-2): in 12 short epochs He's random 5x5 colour noise
# would stay in place; started small, conv1 shows what the gradients put there (colour blobs and light-dark edges).
DEMO_CONV1_INIT_SCALE = 0.1


def run_demo(out_dir="runs/demo", device="cpu", *, progress=None, verbose=True, gallery=True, overwrite=False,
             conv1_init_scale=DEMO_CONV1_INIT_SCALE, **overrides):
    """Train the demo network into ``out_dir`` and print where the results are. Returns the results dict
    (test accuracy, wall time, ...; ``results["trainer"]`` is the Trainer, ``trainer.net`` the trained net).

    overrides: any option of ``minicnn.experiment.train_run`` (e.g. ``epochs=2`` for a quick look).
    gallery: also record feature evolution while training and draw the visualization gallery (``out_dir/gallery``).
    overwrite: replace a run already in ``out_dir`` (without it, such a directory is refused).
    conv1_init_scale: conv1's initial weights are multiplied by this (None or 1: He's scale as drawn).
    """
    from .experiment import train_run
    from .train import ScaleFirstFilters, check_run_dir
    check_run_dir(out_dir, overwrite=overwrite, hint="run the demo again with --overwrite to replace it "
                  "(Python: overwrite=True), or give another --out")
    start = time.perf_counter()
    settings = {**DEMO_SETTINGS, **overrides}
    callbacks = []
    if conv1_init_scale not in (None, 1):
        callbacks.append(ScaleFirstFilters(conv1_init_scale))
    if gallery:   # feature evolution (ZF Fig. 4) is recorded during training, for the gallery below
        from .visualize.gallery import demo_callbacks
        callbacks += demo_callbacks(out_dir, settings["epochs"])
    results = train_run(out_dir, device=device, progress=progress, verbose=verbose, callbacks=callbacks,
                        overwrite=overwrite, **settings)

    # --- visualization gallery hook -------------------------------------------------------------------
    # The visualization work adds the deconvnet gallery here: it receives the run directory and the
    # trainer (trained net, data splits) and returns a list of the files it wrote.
    extra_files = []
    if gallery:
        extra_files = _gallery(out_dir, results["trainer"], device=device, verbose=verbose)
    # ---------------------------------------------------------------------------------------------------

    results["demo_seconds"] = time.perf_counter() - start
    summary = os.path.join(out_dir, "summary.txt")
    with open(summary, "a") as f:
        f.write(f"\ndemo wall time: {results['demo_seconds']:.1f} s (training, evaluation and gallery)\n")
        for path in extra_files:
            f.write(f"  {path}\n")
    if verbose:
        print(f"\nminicnn demo finished in {results['demo_seconds']:.0f} s. Results are in {os.path.abspath(out_dir)}/:")
        for name in ("summary.txt", "curves.png", "history.csv", "history.json", "checkpoint.npz", "best.npz"):
            print(f"  {os.path.join(out_dir, name)}")
        for path in extra_files:
            print(f"  {path}")
        print(f"Evaluate again with:  minicnn evaluate {out_dir}")
        from .visualize.gallery import PHOTOS_GALLERY, PRETRAINED_GALLERY
        print("The networks that ship with minicnn draw richer figures without training (top-9 at every layer, "
              "occlusion and correspondence on objects):\n"
              f"  minicnn gallery                    ->  {PRETRAINED_GALLERY}/index.html   (trained on all of "
              "Fashion-MNIST)\n"
              f"  minicnn gallery --network photos   ->  {PHOTOS_GALLERY}/index.html   (colour photographs)")
    return results


def _gallery(out_dir, trainer, device="cpu", verbose=True):
    """Visualization gallery for the demo: ``out_dir/gallery/index.html`` and its PNGs. Returns the files written."""
    from .visualize.gallery import demo_gallery
    return demo_gallery(out_dir, trainer, device=device, verbose=verbose)
