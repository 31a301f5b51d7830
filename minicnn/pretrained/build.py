"""Reproduce the network that ships with minicnn: ``python -m minicnn.pretrained.build [--root DIR] [--out DIR]``.

It trains ``zfnet_small`` (width 32) on Fashion-MNIST (Debian's ``dataset-fashion-mnist``, or the four IDX
files under ``--root``), recording feature evolution (ZF Fig. 4) as it goes, then writes the shipped file
``fashion_zf.npz`` (weights without optimiser state, training mean, class names, a fixed subset of the test
set and the feature-evolution snapshots). Resumes from ``OUT/checkpoint.npz`` when it exists.
``--export-only`` rewrites the shipped file from a finished run.
"""
from __future__ import annotations

import argparse
import os
import sys

# The exact recipe of the shipped weights. Everything else is ``minicnn.experiment.DEFAULTS`` (momentum 0.9,
# weight decay 5e-4, ZF filter-RMS clipping at 0.1, random 2-pixel crops, no flips for Fashion-MNIST).
# Three epochs, the rate divided by 10 for the third: 9 minutes an epoch on an idle 2-core CPU, 25 on one shared
# with three other jobs (about 27 CPU-minutes in all).
RECIPE = dict(model="zfnet_small", data="fashion-mnist", image_size=32, width=32, epochs=3, step_size=2,
              batch_size=64, lr=0.02, seed=0)
EVOLUTION_EPOCHS = (1, 2, 3)
FEATURE_LAYERS = ("pool1", "pool2", "relu3", "relu4", "pool5")    # ZF's layers 1-5 in zfnet_small
N_SHIPPED_TEST = 1000       # test images that ship (class-balanced, in the official order)


def train(out, root=None, verbose=True):
    from ..experiment import train_run
    from ..visualize.evolution import FeatureEvolution
    from ..visualize.gallery import EVOLUTION_FILE
    evo = FeatureEvolution(path=os.path.join(out, EVOLUTION_FILE), epochs=EVOLUTION_EPOCHS, n_probe=500,
                           features={layer: list(range(8)) for layer in FEATURE_LAYERS})
    resume = os.path.exists(os.path.join(out, "checkpoint.npz"))
    if resume and os.path.exists(evo.path):
        _restore_snapshots(evo, evo.path)
    return train_run(out, resume=resume, progress=False, verbose=verbose, callbacks=[evo],
                     **RECIPE, **({"root": root} if root else {}))


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
                                    "values": list(z[f"{n}/values"]), "images": list(z[f"{n}/images"])}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minicnn.pretrained.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/pretrained-fashion", help="run directory (default runs/pretrained-fashion)")
    p.add_argument("--root", default=None, help="Fashion-MNIST IDX folder (default: the Debian package's)")
    p.add_argument("--dest", default=None, help="where to write fashion_zf.npz (default: inside the package)")
    p.add_argument("--export-only", action="store_true", help="do not train; export OUT's best.npz")
    args = p.parse_args(argv)
    if not args.export_only:
        train(args.out, args.root)
    from . import export_run
    path = export_run(args.out, args.dest, n_test=N_SHIPPED_TEST, recipe=RECIPE)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
