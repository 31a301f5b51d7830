"""Training throughput (images/s) and peak memory of the demo network (``minicnn demo``'s zfnet_small).

Two measurements:

1. ``steps``: full training steps (forward in train mode, softmax cross-entropy, backward without the input
   gradient, SGD update with momentum, weight decay and filter-RMS clipping) on random float32 batches of the
   demo's input shape; images/s = batch size / median step time over ``--repeats`` timed steps after a warm-up.
2. ``epoch``: one real ``Trainer`` epoch of the demo run (batching, augmentation, metrics, validation pass,
   checkpoint and history writes) on the demo's dataset; images/s = training images / epoch seconds.

Peak memory: the Python-heap peak of three training steps measured with ``tracemalloc`` from a fresh interpreter,
after one untraced step on a single image (which loads the C loops of the fast CPU path) and before the network is
built (NumPy reports its array allocations to it, so this is the arrays' high-water mark,
including the scratch buffers of minicnn/fast_cpu/threads.py, which a process that has already trained would not
allocate again), and the process's peak resident set size
(``resource.getrusage(...).ru_maxrss``, which also counts the interpreter, NumPy, BLAS and the dataset).

    python benchmarks/bench_train.py                    # prints a table
    python benchmarks/bench_train.py --write            # also rewrites the "Training" section of RESULTS.md

Timings on a shared machine are noisy: the script reports the median and the spread, and the machine's load.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minicnn.demo import DEMO_SETTINGS  # noqa: E402
from minicnn.models import build  # noqa: E402
from minicnn.ops.loss import softmax_cross_entropy  # noqa: E402
from minicnn.optim import SGD  # noqa: E402


def demo_net(input_shape, num_classes=10):
    kwargs = {k: DEMO_SETTINGS[k] for k in ("width", "dropout") if DEMO_SETTINGS.get(k) is not None}
    return build(DEMO_SETTINGS["model"], num_classes=num_classes, input_shape=input_shape, seed=0, **kwargs)


def train_step(net, opt, x, y):
    logits = net.forward(x, train=True)
    loss, dlogits = softmax_cross_entropy(logits, y)
    net.backward(dlogits, input_grad=False)
    opt.step()
    return float(loss)


def _step_setup(input_shape, batch_size):
    """The demo net, its optimiser and one random batch (seeded)."""
    rng = np.random.default_rng(0)
    net = demo_net(input_shape)
    opt = SGD(net, lr=DEMO_SETTINGS["lr"], momentum=DEMO_SETTINGS["momentum"],
              weight_decay=DEMO_SETTINGS["weight_decay"], clip_radius=DEMO_SETTINGS["clip_radius"])
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    y = rng.integers(0, 10, batch_size).astype(np.int64)
    return net, opt, x, y


def bench_steps(input_shape, batch_size, repeats, warmup=2):
    """Seconds per training step, and the tracemalloc peak (bytes) of three steps from a fresh interpreter."""
    net, opt, x, y = _step_setup(input_shape, batch_size)
    for _ in range(warmup):
        train_step(net, opt, x, y)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        train_step(net, opt, x, y)
        times.append(time.perf_counter() - t)
    peak = peak_of_steps(input_shape, batch_size)
    return times, peak, net.num_params()


def peak_of_steps(input_shape, batch_size, steps=3):
    """tracemalloc peak (bytes) of building the demo net and running ``steps`` training steps, in a fresh
    interpreter (see the module docstring)."""
    import json
    import subprocess
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import bench_train as b; "
            "print(json.dumps(b._traced_peak(tuple(json.loads(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4]))))")
    out = subprocess.run([sys.executable, "-c", code, HERE, json.dumps(list(input_shape)), str(batch_size),
                          str(steps)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _traced_peak(input_shape, batch_size, steps):
    net, opt, x, y = _step_setup(input_shape, 1)     # untraced: loads the C loops, with arrays of one image only
    train_step(net, opt, x, y)
    tracemalloc.start()
    net, opt, x, y = _step_setup(input_shape, batch_size)
    for _ in range(steps):
        train_step(net, opt, x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def bench_epoch():
    """One real demo epoch through the Trainer. Returns (seconds, training images)."""
    from minicnn.experiment import train_run
    settings = {**DEMO_SETTINGS, "epochs": 1}
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        r = train_run(out, progress=False, verbose=False, **settings)
        total = time.perf_counter() - t
        h = r["trainer"].history[0]
        return h["seconds"], len(r["trainer"].splits.train.y), total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default: the demo's and 128)")
    parser.add_argument("--no-epoch", action="store_true", help="skip the real-data epoch")
    parser.add_argument("--write", action="store_true", help="rewrite the Training section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    size = DEMO_SETTINGS.get("image_size") or 32
    channels = 1 if DEMO_SETTINGS["data"] in ("digits", "faces", "mnist") else 3
    input_shape = (channels, size, size)
    batch_sizes = ([int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes
                   else sorted({DEMO_SETTINGS["batch_size"], 128}))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = []
    rows = []
    for bs in batch_sizes:
        times, peak, params = bench_steps(input_shape, bs, args.repeats)
        med = statistics.median(times)
        rows.append((bs, bs / med, bs / min(times), bs / max(times), peak))
    epoch = None if args.no_epoch else bench_epoch()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

    net_desc = (f"{DEMO_SETTINGS['model']} width {DEMO_SETTINGS.get('width')}, dropout {DEMO_SETTINGS.get('dropout')}, "
                f"input {input_shape}, {params:,} parameters")
    lines.append(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                 f"Python {platform.python_version()}, NumPy {np.__version__}; 1-minute load average at start "
                 f"{load:.1f} (shared machine: figures are noisy).")
    lines.append(f"Network: the demo's {net_desc}; float32; SGD momentum 0.9, weight decay, filter-RMS clipping.")
    lines.append("")
    lines.append("| batch | images/s (median) | best | worst | tracemalloc peak, 3 steps from a fresh process |")
    lines.append("|---:|---:|---:|---:|---:|")
    for bs, med, best, worst, peak in rows:
        lines.append(f"| {bs} | {med:,.0f} | {best:,.0f} | {worst:,.0f} | {peak / 2**20:.1f} MiB |")
    lines.append("")
    if epoch is not None:
        sec, n, total = epoch
        lines.append(f"One real demo epoch ({DEMO_SETTINGS['data']}, {n} training images, batch "
                     f"{DEMO_SETTINGS['batch_size']}, with augmentation, validation pass and checkpoint writes): "
                     f"{sec:.1f} s = {n / sec:,.0f} training images/s (whole 1-epoch run incl. data loading "
                     f"{total:.1f} s).")
    lines.append(f"Peak resident set size of the benchmark process (ru_maxrss, everything incl. interpreter, "
                 f"libraries and dataset): {rss / 2**20:.0f} MiB.")
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text)
    return 0


def write_section(body):
    """Replace (or append) the '## Training' section of RESULTS.md, leaving the other sections as they are."""
    path = os.path.join(HERE, "RESULTS.md")
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    section = ("## Training\n\n`benchmarks/bench_train.py --write`: training throughput and peak memory of the "
               "`minicnn demo` network (see the script's docstring for what is timed).\n\n" + body.strip() + "\n")
    lines = old.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.strip() == "## Training"), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + section + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    with open(path, "w") as f:
        f.write(new)
    print(f"wrote the Training section of {path}")


if __name__ == "__main__":
    sys.exit(main())
