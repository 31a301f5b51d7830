"""Visualization benchmarks on the demo network (zfnet_small, width 16, 1x28x28 digits, 10 classes).

    python benchmarks/bench_visualize.py [--run runs/demo] [--images 1000] [--device cpu|gpu] [--threads N]

Times (wall clock, best of --repeats):
  * top-9 pass: the 9 strongest activations of every map of the first three feature layers (pool1, pool2, relu3)
    over N images (batched forwards), then deconvnet projections + receptive-field crops for 8 maps per layer;
  * a full occlusion map: a 7x7 grey square at every pixel (stride 1: 28 x 28 = 784 occluded copies), and the
    gallery's setting (stride 2);
  * one projection and one saliency map (single image), for scale.
Weights come from --run when given (a trained demo), else the untrained demo architecture (the cost is the same).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="trained run directory (default: untrained demo network)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--threads", default=None, help="sets OMP/OPENBLAS threads before NumPy loads")
    args = parser.parse_args(argv)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = args.threads

    from minicnn import backend
    from minicnn.models import zfnet_small
    from minicnn.visualize import occlusion, project, saliency, top_activations, top_k
    from minicnn.visualize.gallery import feature_layers

    shape = (1, 28, 28)
    if args.run:
        from minicnn.train import load_run
        run = load_run(args.run, load_data=False)
        net, shape = run.net, tuple(run.meta.get("input_shape", shape))   # the run's own image size
    else:
        net = zfnet_small(num_classes=10, input_shape=shape, width=16)
    if args.device == "gpu":
        net.to("gpu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images,) + shape).astype(np.float32) * 0.3
    layers = feature_layers(net)[:3]
    H, W = shape[1:]
    print(f"device {args.device}; {net.name}, {net.num_params():,} parameters; {args.images} images "
          f"{'x'.join(map(str, shape))}; "
          f"layers {', '.join(layers)}; best of {args.repeats}")

    def sync():
        if args.device == "gpu":
            backend.cupy().cuda.Device().synchronize()

    rows = []

    def timed(name, fn):
        fn()          # warm-up (kernel compilation, caches)
        t = best_of(lambda: (fn(), sync()), args.repeats)
        rows.append((name, t))
        print(f"  {name:<58} {t:8.3f} s", flush=True)

    timed(f"top-9 activations, all maps of {len(layers)} layers, {args.images} images",
          lambda: [top_activations(net, x, l, k=9, show_progress=False) for l in layers])
    timed(f"top-9 + projections/crops of 8 maps x {len(layers)} layers, {args.images} images",
          lambda: [top_k(net, x, l, k=9, select=8, show_progress=False) for l in layers])
    timed(f"occlusion map, 7x7 square, stride 1 ({H * W} occluded images)",
          lambda: occlusion(net, x[0], size=7, stride=1, show_progress=False))
    timed(f"occlusion map, 7x7 square, stride 2 ({((H + 1) // 2) * ((W + 1) // 2)}, the gallery's)",
          lambda: occlusion(net, x[0], size=7, stride=2, show_progress=False))
    timed("one deconvnet projection (relu3, 1 image)", lambda: project(net, x[0], layers[-1], 0))
    timed("one saliency map (1 image)", lambda: saliency(net, x[0]))
    return rows


if __name__ == "__main__":
    main()
