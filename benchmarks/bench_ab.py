"""A/B of a training step between two checkouts of minicnn (or two settings of one), in one run.

    python benchmarks/bench_ab.py OLD_TREE NEW_TREE [--model zfnet_small] [--batch 128] [--rounds 8]
    python benchmarks/bench_ab.py . . --env-b MINICNN_CPU_PATH=readable       # one checkout, two settings
    python benchmarks/bench_ab.py . . --tune-b direct_image_bytes=0          # a fast_cpu.tuning constant changed

Each round runs one fresh process per side, alternating which goes first; a process builds the model (seed 0),
runs two warm-up steps and times ``--steps`` steps (forward in train mode, softmax cross-entropy, backward without
the input gradient, SGD with momentum). Printed: each side's median step time and the median of the per-round
ratios B / A with its range, so that a load change on a shared machine moves the ratio less than the times.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from minicnn.models import build
from minicnn.ops.loss import softmax_cross_entropy
from minicnn.optim import SGD
model, batch, shape, steps = sys.argv[2], int(sys.argv[3]), tuple(int(s) for s in sys.argv[4].split("x")), int(sys.argv[5])
if json.loads(sys.argv[6]):
    from minicnn.fast_cpu.tuning import TUNING
    for name, value in json.loads(sys.argv[6]).items():
        setattr(TUNING, name, type(getattr(TUNING, name))(value))
rng = np.random.default_rng(0)
net = build(model, num_classes=10, input_shape=shape, seed=0)
opt = SGD(net, lr=0.01, momentum=0.9)
x = rng.standard_normal((batch, *shape)).astype(np.float32)
y = rng.integers(0, 10, batch)
def step():
    logits = net.forward(x, train=True)
    _, d = softmax_cross_entropy(logits, y)
    net.backward(d, input_grad=False)
    opt.step()
step(); step()
times = []
for _ in range(steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def run_side(tree, env_extra, tune, args):
    env = dict(os.environ, **env_extra)
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", CHILD, os.path.abspath(tree), args.model, str(args.batch), args.shape,
                          str(args.steps), json.dumps(tune)], capture_output=True, text=True, env=env, check=True).stdout
    return statistics.median(json.loads(out.strip().splitlines()[-1]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tree_a")
    p.add_argument("tree_b")
    p.add_argument("--model", default="zfnet_small")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--shape", default="3x32x32")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--env-a", action="append", default=[], help="NAME=VALUE for side A's processes")
    p.add_argument("--env-b", action="append", default=[], help="NAME=VALUE for side B's processes")
    p.add_argument("--tune-a", action="append", default=[], help="NAME=VALUE: a fast_cpu.tuning constant for side A")
    p.add_argument("--tune-b", action="append", default=[], help="NAME=VALUE: a fast_cpu.tuning constant for side B")
    args = p.parse_args(argv)
    envs = [dict(e.split("=", 1) for e in args.env_a), dict(e.split("=", 1) for e in args.env_b)]
    tunes = [dict(e.split("=", 1) for e in args.tune_a), dict(e.split("=", 1) for e in args.tune_b)]
    a_times, b_times = [], []
    for r in range(args.rounds):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        got = {}
        for side in order:
            got[side] = run_side([args.tree_a, args.tree_b][side], envs[side], tunes[side], args)
        a_times.append(got[0])
        b_times.append(got[1])
        print(f"round {r + 1}: A {got[0] * 1e3:.1f} ms, B {got[1] * 1e3:.1f} ms, B/A {got[1] / got[0]:.3f}", flush=True)
    ratios = [b / a for a, b in zip(a_times, b_times)]
    print(f"{args.model} batch {args.batch} {args.shape}: A median {statistics.median(a_times) * 1e3:.1f} ms, "
          f"B median {statistics.median(b_times) * 1e3:.1f} ms; B/A median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f}, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
