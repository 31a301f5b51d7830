"""Reproduce a network that ships with minicnn: ``python -m minicnn.pretrained.build [--network fashion|photos]``.

``--network fashion`` (the default) trains ``zfnet_medium`` (width 32, six convolutions, ZF's 7x7 stride-2 conv1)
on Fashion-MNIST upsampled to 64x64 (Debian's ``dataset-fashion-mnist``, or the four IDX files under ``--root``);
``--network photos`` trains ``zfnet_small``
(width 24, 48x48 colour input) on the ``photos`` data, generated from the photographs the installed packages ship.
Either records feature evolution (ZF Fig. 4) as it goes, then writes the shipped files (weights without optimiser
state, training mean, class names; a fixed subset of the test set; the feature-evolution snapshots; RESULTS*.json).
Resumes from ``OUT/checkpoint.npz`` when it exists. ``--export-only`` rewrites the shipped files from a finished run.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..train import ScaleFirstFilters    # noqa: F401  (the recipe's conv1 scaling; imported from here by tests)

# The exact recipe of the shipped weights. Everything else is ``minicnn.experiment.DEFAULTS`` (momentum 0.9,
# weight decay 5e-4, ZF filter-RMS clipping at 0.1, random 2-pixel crops, no flips for Fashion-MNIST).
# Five epochs, the rate divided by 10 after the third; conv1 started at a fiftieth of He's scale
# (``ScaleFirstFilters``). From He's scale, conv1's 7x7 filters stayed mostly random noise: upsampled 28 px images hold
# almost nothing at the filters' finest frequencies, so no gradient removes that noise (weight decay does, slowly).
# Started small, as ZF's were (std 1e-2), conv1 shows what the gradients put there: edges, bars and blobs. (A pilot
# of 175 steps: at a tenth of He's scale the bars were visible through the noise, at a fiftieth they were clean; the
# accuracy was the same.)
RECIPE = dict(model="zfnet_medium", data="fashion-mnist", image_size=64, width=32, epochs=5, step_size=3,
              batch_size=64, lr=0.02, seed=0)
CONV1_INIT_SCALE = 0.02
# Epoch 0 is the network before its first step; every epoch is recorded, so that ``settling`` shows the order in
# which the layers settle.
EVOLUTION_EPOCHS = (0, 1, 2, 3, 4, 5)
FEATURE_LAYERS = ("pool1", "pool2", "relu3", "relu4", "relu5", "pool6")   # every conv block of zfnet_medium
N_SHIPPED_TEST = 1000       # test images that ship (class-balanced, in the official order)

# The colour network: "which of the 21 shipped photographs is this crop from" (``minicnn.data.datasets.make_photos``,
# 6,000 multi-scale crops, split by tiles), colour jitter 0.2 and flips. It exists for its colour conv1 filters
# (Fashion-MNIST is grey); any crop identifies its photograph, so its occlusion maps say little.
PHOTOS_RECIPE = dict(model="zfnet_small", data="photos", image_size=48, width=24, n_samples=6000, epochs=12,
                     step_size=8, batch_size=32, lr=0.02, colour_jitter=0.2, seed=0)
PHOTOS_EVOLUTION_EPOCHS = (1, 2, 4, 8, 12)
PHOTOS_FEATURE_LAYERS = ("pool1", "pool2", "relu3", "relu4", "pool5")    # ZF's layers 1-5 in zfnet_small
# conv1's He-initialised weights scaled by this before the first step (None: left as drawn). Twelve epochs leave
# most of He's random 5x5 noise in place (weight decay removes about 2% of it); started small, as ZF's std 1e-2
# filters were, conv1 shows what the gradients put there.
PHOTOS_CONV1_INIT_SCALE = 0.1
N_SHIPPED_PHOTOS_TEST = 315  # 15 crops of each photograph's test tiles (uint8 48x48: about 2 MB uncompressed)

NETWORKS = {"fashion": dict(recipe=RECIPE, evolution=EVOLUTION_EPOCHS, features=FEATURE_LAYERS, n_test=N_SHIPPED_TEST,
                            conv1_init_scale=CONV1_INIT_SCALE,
                            out="runs/pretrained-fashion", command="python -m minicnn.pretrained.build"),
            "photos": dict(recipe=PHOTOS_RECIPE, evolution=PHOTOS_EVOLUTION_EPOCHS, features=PHOTOS_FEATURE_LAYERS,
                           n_test=N_SHIPPED_PHOTOS_TEST,
                           conv1_init_scale=PHOTOS_CONV1_INIT_SCALE,
                           out="runs/pretrained-photos", command="python -m minicnn.pretrained.build --network photos")}


def train(out, root=None, verbose=True, network="fashion"):
    from ..experiment import train_run
    from ..visualize.evolution import FeatureEvolution
    from ..visualize.gallery import EVOLUTION_FILE
    spec = NETWORKS[network]
    evo = FeatureEvolution(path=os.path.join(out, EVOLUTION_FILE), epochs=spec["evolution"], n_probe=500,
                           features={layer: list(range(8)) for layer in spec["features"]})
    resume = os.path.exists(os.path.join(out, "checkpoint.npz"))
    if resume and os.path.exists(evo.path):
        _restore_snapshots(evo, evo.path)
    callbacks = [evo]
    if spec.get("conv1_init_scale") is not None:
        callbacks.insert(0, ScaleFirstFilters(spec["conv1_init_scale"]))
    return train_run(out, resume=resume, progress=False, verbose=verbose, callbacks=callbacks,
                     **spec["recipe"], **({"root": root} if root else {}))


def _restore_snapshots(evo, path):
    """Put the snapshots an interrupted run saved back into ``evo``, so that resuming keeps the early epochs."""
    import json

    import numpy as np
    with np.load(path) as z:
        features = json.loads(str(z["features"]))
        for n, layer in enumerate(features):
            if f"{n}/crops" not in z:
                continue
            evo.snapshots[layer] = {"epochs": z[f"{n}/epochs"].tolist(), "crops": list(z[f"{n}/crops"]),
                                    "values": list(z[f"{n}/values"]), "images": list(z[f"{n}/images"]),
                                    "profiles": list(z[f"{n}/profiles"]) if f"{n}/profiles" in z else []}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minicnn.pretrained.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--network", choices=sorted(NETWORKS), default="fashion", help="which shipped network "
                   "(default fashion)")
    p.add_argument("--out", default=None, help="run directory (default runs/pretrained-NETWORK)")
    p.add_argument("--root", default=None, help="Fashion-MNIST IDX folder (default: the Debian package's)")
    p.add_argument("--dest", default=None, help="where to write the shipped files (default: inside the package)")
    p.add_argument("--export-only", action="store_true", help="do not train; export OUT's best.npz")
    args = p.parse_args(argv)
    spec = NETWORKS[args.network]
    out = args.out or spec["out"]
    if not args.export_only:
        train(out, args.root, network=args.network)
    from . import export_run
    recipe = dict(spec["recipe"], **({"conv1_init_scale": spec["conv1_init_scale"]}
                                     if spec.get("conv1_init_scale") is not None else {}))
    path = export_run(out, args.dest, n_test=spec["n_test"], recipe=recipe, name=args.network,
                      command=spec["command"])
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
