"""A/B of whole training steps between two source trees of minicnn, in one run; and thread scaling.

    git worktree add --detach /work/wt-baseline 43da644          # the older commit, once (never edited)
    python benchmarks/bench_ab.py --baseline /work/wt-baseline [--threads 2] [--reps 5] [--cases zfnet_small,alexnet]
    python benchmarks/bench_ab.py --sweep 1,2,4,8,16 [--baseline DIR]                       # thread scaling
    python benchmarks/bench_ab.py --baseline . --env-base MINICNN_CPU_PATH=readable          # one tree, two settings

**A/B** (``--baseline DIR``): the training step (``bench_ops.MinicnnStep``: forward in train mode, softmax
cross-entropy, backward without the input gradient, SGD with momentum) of each case is timed for the tree this
script belongs to ("new") and for ``DIR`` ("base"). Every measurement is a fresh subprocess whose ``PYTHONPATH``
is that tree alone (it checks which minicnn it imported), so neither side sees the other's modules or caches in
memory. The subprocesses are interleaved new, base, new, base, ... over ``--reps`` repetitions, so a change in the
machine's load falls on both sides alike. Each subprocess builds the network (seeded weights, the same on both
sides), runs ``--warmup`` untimed steps (a first step compiles what a tree compiles) and reports the median of
``--steps`` timed ones. The table gives the medians of each side and two ratios new / base: the ratio of the
medians and the median of the per-repetition ratios (the steadier one on a loaded machine). ``--env-new`` and
``--env-base NAME=VALUE`` (repeatable) add environment variables to one side's subprocesses, so that one tree can
also be compared with itself under two settings (the fast CPU path against the readable one, say).

Cases: ``zfnet_small`` (width 16, 10 classes, 3x32x32, batch 128: the demo network at the shape of issue 7's
training-step figures) and ``alexnet`` (1000 classes, 3x227x227, batch 4: the AlexNet shapes of bench_ops.py;
about 60M parameters, so its weights are drawn uniformly, which is quicker than a normal draw and times the same).

**Threads** (``--threads N``): ``MINICNN_NUM_THREADS=N`` and the BLAS's own variables (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) are set to N in every subprocess; without ``--threads`` the trees
pick their own defaults. ``--sweep 1,2,4,...`` times the step at each count for this tree (and the baseline, if
given) and, where PyTorch is importable, for the same network in PyTorch with ``torch.set_num_threads(N)``
(``bench_ops.torch_twin``), and prints steps/s and the speed-up over the first count. Each subprocess also
reports the thread counts it actually saw (minicnn's own, the BLAS's from threadpoolctl, PyTorch's).

Timings on a shared machine are noisy: read the ratios, not the absolute times, and say what the load was.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NEW_TREE = os.path.dirname(HERE)
MARK = "BENCH_AB_RESULT "
THREAD_VARIABLES = ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# name -> (model builder name, keyword arguments, input shape, batch, learning rate). AlexNet on one random batch
# at bench_ops' rate (0.01) diverges to NaN within four steps, which the loss refuses; the rate changes no cost.
CASES = {
    "zfnet_small": ("zfnet_small", dict(num_classes=10, width=16), (3, 32, 32), 128, 0.01),
    "alexnet": ("alexnet", dict(num_classes=1000), (3, 227, 227), 4, 1e-4),
}


# --- inside a subprocess: one tree, one case, one thread count ------------------------------------------------

def _thread_counts(torch=None):
    """The thread counts this process actually uses: minicnn's own, the BLAS's, PyTorch's (None when unknown)."""
    counts = {"minicnn": None, "blas": None, "torch": None}
    for module_name in ("minicnn.fast_cpu", "minicnn.ops._parallel"):   # the new layout, then the older one
        try:
            module = __import__(module_name, fromlist=["get_num_threads"])
            counts["minicnn"] = module.get_num_threads()
            break
        except (ImportError, AttributeError):
            continue
    try:
        from threadpoolctl import threadpool_info
        blas = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
        counts["blas"] = max(blas) if blas else None
    except ImportError:
        pass
    if torch is not None:
        counts["torch"] = torch.get_num_threads()
        del counts["minicnn"]             # minicnn only built the network here; its threads are not in play
    return counts


def _build(case, batch=None, seed=0):
    """The case's network (weights drawn uniformly with a fixed seed: the same on both sides), a batch, labels."""
    import numpy as np

    from minicnn.models import build
    model, kwargs, shape, default_batch, _ = CASES[case]
    batch = batch or default_batch
    net = build(model, input_shape=shape, seed=seed, init="zeros", **kwargs)
    rng = np.random.default_rng(seed)
    for key, value in net.named_params().items():
        if key.endswith(".W"):
            fan_in = int(np.prod(value.shape[1:])) if value.ndim == 4 else value.shape[0]
            limit = np.float32(np.sqrt(6.0 / fan_in))          # He-uniform: activations stay in range
            value[...] = rng.random(value.shape, dtype=np.float32) * (2 * limit) - limit
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    labels = rng.integers(0, kwargs["num_classes"], batch).astype(np.int64)
    return net, x, labels


def worker(case, framework, warmup, steps, batch=None):
    """Time ``steps`` training steps after ``warmup`` ones; print one result line (JSON) for the parent."""
    import minicnn
    from bench_ops import MOMENTUM, MinicnnStep, torch_twin

    net, x, labels = _build(case, batch)
    torch = None
    if framework == "torch":
        import torch
        threads = os.environ.get("MINICNN_NUM_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        model = torch_twin(net, torch).train()
        opt = torch.optim.SGD(model.parameters(), lr=CASES[case][4], momentum=MOMENTUM)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(tx), tl).backward()
            opt.step()
    else:
        # BENCH_AB_TUNE='{"name": value}' changes fast_cpu.tuning constants in this side's process only (an A/B of
        # one piece of the fast path: e.g. --env-base 'BENCH_AB_TUNE={"direct_image_bytes": 0}' turns the direct
        # C convolution off on the baseline side)
        tune = json.loads(os.environ.get("BENCH_AB_TUNE", "{}"))
        if tune:
            from minicnn.fast_cpu.tuning import TUNING
            for name, value in tune.items():
                setattr(TUNING, name, type(getattr(TUNING, name))(value))
        minicnn_step = MinicnnStep(net, lr=CASES[case][4])

        def step():
            minicnn_step(x, labels)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu_path = getattr(minicnn, "active_cpu_path", None)     # trees with two CPU paths say which one ran, and why
    cpu_path = cpu_path() if callable(cpu_path) else None
    if isinstance(cpu_path, (tuple, list)) and len(cpu_path) == 2:
        cpu_path = f"{cpu_path[0]} ({cpu_path[1]})"
    result = dict(case=case, framework=framework, minicnn_file=os.path.abspath(minicnn.__file__),
                  median=statistics.median(times), times=times, threads=_thread_counts(torch),
                  cpu_path=None if cpu_path is None else str(cpu_path))
    print(MARK + json.dumps(result), flush=True)


# --- the parent: subprocesses, interleaving, the table --------------------------------------------------------

class BenchError(RuntimeError):
    pass


def check_tree(path, what):
    """``path`` as an absolute source tree holding a minicnn package, or a BenchError saying what is wrong."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "minicnn", "__init__.py")):
        raise BenchError(f"{what} {path} is not a minicnn source tree (no minicnn/__init__.py in it)")
    return path


def measure(tree, case, framework, threads, warmup, steps, batch=None, extra_env=None, timeout=900):
    """One subprocess on ``tree``: its result dict. The tree alone is on PYTHONPATH (plus this folder, for the
    step definition), and the subprocess must have imported minicnn from that tree. ``extra_env`` is set last."""
    env = dict(os.environ, PYTHONPATH=tree)
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    env.update(extra_env or {})
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", case, "--framework", framework,
           "--warmup", str(warmup), "--steps", str(steps)] + (["--batch", str(batch)] if batch else [])
    with tempfile.TemporaryDirectory(prefix="bench_ab_") as cwd:   # nothing importable from the working folder
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"the {framework} {case} step on {tree} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    result = json.loads(lines[-1][len(MARK):])
    if not result["minicnn_file"].startswith(os.path.join(tree, "minicnn") + os.sep):
        raise BenchError(f"the subprocess for {tree} imported {result['minicnn_file']} instead")
    return result


def _describe_threads(result):
    return ", ".join(f"{k} {v}" for k, v in result["threads"].items() if v is not None) or "unknown"


def run_ab(new, base, cases, threads, reps, warmup, steps, batch=None, env_new=None, env_base=None, print_fn=print):
    """Interleaved new/base measurements of each case; returns {case: dict(new=[...], base=[...], ratios=[...])}."""
    envs = {"new": env_new or {}, "base": env_base or {}}
    label = {side: " ".join(f"{k}={v}" for k, v in envs[side].items()) for side in envs}
    print_fn(f"A/B: new = {new} {label['new']}\n     base = {base} {label['base']}\n     threads = {threads if threads else 'each tree default'}, "
             f"{reps} repetitions x {steps} timed steps after {warmup} warm-up, load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    summary = {}
    for case in cases:
        new_times, base_times, details = [], [], {}
        for rep in range(reps):
            order = (("new", new), ("base", base)) if rep % 2 == 0 else (("base", base), ("new", new))
            got = {}
            for side, tree in order:
                got[side] = measure(tree, case, "minicnn", threads, warmup, steps, batch, envs[side])
                details.setdefault(side, got[side])
            new_times.append(got["new"]["median"])
            base_times.append(got["base"]["median"])
        ratios = [a / b for a, b in zip(new_times, base_times)]
        summary[case] = dict(new=new_times, base=base_times, ratios=ratios, details=details)
        m_new, m_base = statistics.median(new_times), statistics.median(base_times)
        print_fn(f"{case:12s} step  new {m_new * 1e3:8.1f} ms   base {m_base * 1e3:8.1f} ms   "
                 f"new/base {m_new / m_base:5.2f} (median of per-repetition ratios {statistics.median(ratios):5.2f}, "
                 f"range {min(ratios):.2f}-{max(ratios):.2f})")
        for side in ("new", "base"):
            path = details[side]["cpu_path"]
            print_fn(f"{'':12s} {side:4s} threads seen: {_describe_threads(details[side])}"
                     + (f"; CPU path: {path}" if path else ""))
    return summary


def run_sweep(trees, cases, counts, reps, warmup, steps, with_torch, batch=None, print_fn=print):
    """Steps/s of each case at each thread count, for each tree and (optionally) PyTorch."""
    print_fn(f"thread sweep {counts}: median of {reps} subprocess(es) x {steps} timed steps, load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    sides = [(label, tree, "minicnn") for label, tree in trees]
    if with_torch:
        sides.append(("torch", trees[0][1], "torch"))
    table = {}
    for case in cases:
        for label, tree, framework in sides:
            rates = []
            for n in counts:
                medians = [measure(tree, case, framework, n, warmup, steps, batch) for _ in range(reps)]
                rates.append(1.0 / statistics.median(r["median"] for r in medians))
                print_fn(f"{case:12s} {label:6s} {n:3d} threads  {rates[-1]:8.3f} steps/s  "
                         f"x{rates[-1] / rates[0]:5.2f} over {counts[0]}  (seen: {_describe_threads(medians[0])})")
            table[case, label] = rates
    return table


def _counts(text):
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive thread counts separated by commas, got {text!r}")
    return counts


def _assignment(text):
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _cases(text):
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in CASES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"cases must be among {', '.join(CASES)}, got {text!r}")
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="source tree to compare with (e.g. a git worktree of an older commit)")
    parser.add_argument("--threads", type=int, help="thread count for both sides (default: each tree's own)")
    parser.add_argument("--sweep", type=_counts, help="thread counts, e.g. 1,2,4,8,16: steps/s at each")
    parser.add_argument("--cases", type=_cases, default=list(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--reps", type=int, default=3, help="subprocesses per side and case (default 3)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per subprocess (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--batch", type=int, help="batch size for every case (default: the case's own)")
    parser.add_argument("--env-new", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the new side's subprocesses (repeatable)")
    parser.add_argument("--env-base", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the baseline's subprocesses (repeatable)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out of the sweep")
    parser.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=("minicnn", "torch"), default="minicnn", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.framework, args.warmup, args.steps, args.batch)
        return 0
    for value, what in ((args.reps, "--reps"), (args.steps, "--steps")):
        if value < 1:
            parser.error(f"{what} must be >= 1, got {value}")
    if args.warmup < 0 or (args.threads is not None and args.threads < 1) or (args.batch is not None
                                                                              and args.batch < 1):
        parser.error("--warmup must be >= 0, --threads and --batch >= 1")
    if args.baseline is None and args.sweep is None:
        parser.error("give --baseline DIR (an A/B) or --sweep 1,2,... (thread scaling), or both")
    try:
        new = check_tree(NEW_TREE, "this script's tree")
        base = check_tree(args.baseline, "--baseline") if args.baseline else None
        if base is not None:
            run_ab(new, base, args.cases, args.threads, args.reps, args.warmup, args.steps, args.batch,
                   dict(args.env_new), dict(args.env_base))
        if args.sweep is not None:
            with_torch = False
            if not args.no_torch:
                try:
                    import torch  # noqa: F401
                    with_torch = True
                except Exception:
                    print("PyTorch is not importable here: the sweep times minicnn only")
            trees = [("new", new)] + ([("base", base)] if base else [])
            run_sweep(trees, args.cases, args.sweep, args.reps, args.warmup, args.steps, with_torch, args.batch)
    except BenchError as exc:
        print(f"bench_ab: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
