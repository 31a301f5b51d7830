"""CPU speed of minicnn's ops against the machine's own sgemm and (when importable) PyTorch's CPU ops.

    python benchmarks/bench_ops.py [--quick] [--threads 1,2] [--repeats 7] [--sections conv,pool,lrn,train,memory]
    minicnn bench [same options]

Every figure is a median over ``--repeats`` timed runs after one warm-up run. Because absolute times on a shared
2-core machine drift with the load, each row also prints ratios measured in the same process a moment apart:

    %sgemm   time of the bare sgemm calls of the same shapes (np.matmul into a preallocated output, BLAS threads =
             the thread count) divided by the op's time: the share of the machine's GEMM throughput the op reaches.
    x torch  the op's time divided by PyTorch's CPU time for the same computation (< 1: minicnn is faster).

Both ratios are medians of per-repeat ratios, the two sides run alternately (``paired_ratio``), so that a load
change on a shared machine moves them much less than it moves the times.

Threads: the count is set for NumPy's BLAS (threadpoolctl), for minicnn's threads (minicnn.set_num_threads) and for
PyTorch (torch.set_num_threads) alike. PyTorch is not a minicnn dependency; it is imported only here.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

if __package__ in (None, "") and __name__ == "__main__":    # run as a script from a checkout: find the package
    import os
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minicnn import ops  # noqa: E402
from minicnn.models import lenet5, zfnet_small  # noqa: E402

# (label, N, C, F, H, W, kernel, stride, pad): the five shapes of issue 7, the convolutions of AlexNet (batch 4,
# 3x227x227; issue 2), and (added by ``zf_small_shapes`` from the model itself) those of zfnet_small at batch 128.
CONV_SHAPES = [
    ("issue1", 64, 1, 6, 28, 28, 5, 1, 0),
    ("issue2", 64, 6, 16, 12, 12, 5, 1, 0),
    ("issue3", 32, 3, 32, 32, 32, 7, 2, 3),
    ("issue4", 32, 32, 64, 16, 16, 3, 1, 1),
    ("issue5", 16, 64, 128, 32, 32, 3, 1, 1),
    ("alexnet.conv1", 4, 3, 96, 227, 227, 11, 4, 0),
    ("alexnet.conv2", 4, 96, 256, 27, 27, 5, 1, 2),
    ("alexnet.conv3", 4, 256, 384, 13, 13, 3, 1, 1),
    ("alexnet.conv4", 4, 384, 384, 13, 13, 3, 1, 1),
    ("alexnet.conv5", 4, 384, 256, 13, 13, 3, 1, 1),
]
ISSUE_CONV = [s[0] for s in CONV_SHAPES[:5]]

# (label, (N, C, H, W), kernel, stride, ceil_mode): 2x2/2 after the LeNet-like issue shapes, 3x3/2 (ceil mode, as
# in ZF) after the others, on the activations those convolutions produce.
POOL_SHAPES = [
    ("after issue1", (64, 6, 24, 24), 2, 2, False),
    ("after issue2", (64, 16, 8, 8), 2, 2, False),
    ("after issue3", (32, 32, 16, 16), 3, 2, True),
    ("after issue4", (32, 64, 16, 16), 3, 2, True),
    ("after issue5", (16, 128, 32, 32), 3, 2, True),
    ("alexnet.pool1", (4, 96, 55, 55), 3, 2, False),
]
# LRN n=5 (Krizhevsky's constants) where a ZF/AlexNet-style net puts it: after the 3x3/2 pools.
LRN_SHAPES = [
    ("after issue3", (32, 32, 8, 8)),
    ("after issue4", (32, 64, 8, 8)),
    ("after issue5", (16, 128, 16, 16)),
    ("alexnet.norm1", (4, 96, 27, 27)),
]
LRN_ARGS = dict(n=5, k=2.0, alpha=1e-4, beta=0.75)


def zf_small_shapes(batch=128, input_shape=(3, 32, 32)):
    """The conv, pool and LRN rows of the default zfnet_small, read off the model (so they follow its width)."""
    from minicnn import layers as L
    conv, pool, lrn = [], [], []
    for layer, shape in _layer_inputs(zfnet_small(num_classes=10, input_shape=input_shape), input_shape):
        if len(shape) != 3:
            break
        (C, H, W), label = shape, f"zf_small.{layer.name}"
        if isinstance(layer, L.Conv2D):
            (k, _), (s, _), (p, _) = layer.kernel, layer.stride, layer.pad
            conv.append((label, batch, C, layer.config["out_channels"], H, W, k, s, p))
        elif isinstance(layer, L.MaxPool2D):
            pool.append((label, (batch, C, H, W), layer.kernel[0], layer.stride[0], layer.ceil_mode))
        elif isinstance(layer, L.LRN) and layer.config == dict(LRN_ARGS):
            lrn.append((label, (batch, C, H, W)))
    return conv, pool, lrn


def _layer_inputs(net, shape):
    for layer in net:
        yield layer, shape
        shape = layer.output_shape(shape)


@dataclasses.dataclass
class Row:
    section: str
    label: str
    op: str
    threads: int
    seconds: float
    rate: float = float("nan")          # GFLOP/s or GB/s
    unit: str = ""
    sgemm_share: float = float("nan")   # sgemm time of the same shapes / op time
    torch_ratio: float = float("nan")   # op time / torch time


def median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# With more than one thread, a pause before each side of a pair: OpenBLAS's worker threads spin for up to 2^28
# cycles (~0.1 s) after a call and PyTorch's OpenMP threads for a while too, so without it one side would be timed
# while the other side's idle threads still hold a core.
PAIR_PAUSE_S = 0.1
# Each side is then timed in steady state, as a training loop runs it: first it runs untimed for WARM_S (the
# pause lets idle worker threads and cores go to sleep; on this virtual machine minicnn's Python worker threads,
# which sleep on a futex between calls, need ~10-20 ms of work before their hand-offs are fast again, while
# PyTorch's OpenMP threads spin; issue 7's 32x32->64 conv forward took 5.4 ms a call over the first 3 calls after
# the pause and 3.0 ms over 30), then the mean of a block of back-to-back calls lasting at least BLOCK_S.
# ``--cold`` times the first call after the pause instead (the protocol of the first benchmark runs), which
# measures waking idle threads and cores: it charges PyTorch's small ops up to several ms of OpenMP wake-up and
# minicnn's large ops their cold caches.
WARM_S = 0.02
BLOCK_S = 0.02
COLD = False


def _block_time(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _warm(fn, seconds):
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < seconds:
        fn()


def paired_ratio(fn, ref, repeats):
    """Median over repeats of time(fn) / time(ref), the two sides timed alternately: a ratio that load drifting
    on a shared machine moves far less than it moves either time."""
    import minicnn
    pause = PAIR_PAUSE_S if minicnn.get_num_threads() > 1 else 0.0
    calls = [1, 1]
    if not COLD:                                   # calls per block, from one warm call of each side
        calls = [min(500, max(3, math.ceil(BLOCK_S / max(_block_time(f, 1), 1e-6)))) for f in (fn, ref)]
    fn(), ref()
    ratios = []
    for _ in range(repeats):
        times = []
        for f, n in zip((fn, ref), calls):
            time.sleep(pause)
            if not COLD:
                _warm(f, WARM_S)
            times.append(_block_time(f, n))
        ratios.append(times[0] / times[1])
    return statistics.median(ratios)


def _import_torch():
    try:
        import torch
    except Exception:       # not installed, or a broken install: the torch columns stay empty
        return None
    return torch


@contextlib.contextmanager
def num_threads(n, torch):
    """Use ``n`` threads in NumPy's BLAS, minicnn's copy threads and PyTorch, restoring them afterwards."""
    from threadpoolctl import threadpool_limits

    import minicnn
    old_minicnn = minicnn.get_num_threads()
    old_torch = torch.get_num_threads() if torch is not None else None
    minicnn.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        minicnn.set_num_threads(old_minicnn)
        if torch is not None:
            torch.set_num_threads(old_torch)


# --- convolution -----------------------------------------------------------------------------------------------

def bench_conv(shape, threads, repeats, torch, rng):
    label, N, C, F, H, W, k, s, p = shape
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    Wt = (rng.standard_normal((F, C, k, k), dtype=np.float32) * np.float32(1 / math.sqrt(C * k * k)))
    b = rng.standard_normal(F, dtype=np.float32)
    oh, ow = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    dy = rng.standard_normal((N, F, oh, ow), dtype=np.float32)
    K, P = C * k * k, N * oh * ow
    flops_fwd = 2.0 * F * K * P
    flops_all = 3 * flops_fwd

    # The same GEMMs on operands laid out as im2col lays them out, output preallocated.
    A, B, G = (rng.standard_normal(shape_, dtype=np.float32) for shape_ in ((F, K), (K, P), (F, P)))
    out_y, out_dw, out_dc = (np.empty(shape_, dtype=np.float32) for shape_ in ((F, P), (F, K), (K, P)))
    def gemm_fwd():
        np.matmul(A, B, out=out_y)

    def gemm_all():
        np.matmul(A, B, out=out_y), np.matmul(G, B.T, out=out_dw), np.matmul(A.T, G, out=out_dc)

    def fwd():
        return ops.conv2d_forward(x, Wt, b, s, p)

    def fwd_bwd():
        _, cache = ops.conv2d_forward(x, Wt, b, s, p)
        return ops.conv2d_backward(dy, cache)

    t_fwd = median_time(fwd, repeats)
    t_all = median_time(fwd_bwd, repeats)
    rows = [Row("conv", label, "forward", threads, t_fwd, flops_fwd / t_fwd / 1e9, "GFLOP/s",
                1 / paired_ratio(fwd, gemm_fwd, repeats)),
            Row("conv", label, "fwd+bwd", threads, t_all, flops_all / t_all / 1e9, "GFLOP/s",
                1 / paired_ratio(fwd_bwd, gemm_all, repeats))]
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(Wt.copy()).requires_grad_()
        tb = torch.from_numpy(b.copy()).requires_grad_()
        tdy = torch.from_numpy(dy)
        conv = torch.nn.functional.conv2d

        def t_fwd_fn():
            with torch.no_grad():
                return conv(tx, tw, tb, s, p)

        def t_all_fn():
            tx.grad = tw.grad = tb.grad = None
            conv(tx, tw, tb, s, p).backward(tdy)

        rows[0].torch_ratio = paired_ratio(fwd, t_fwd_fn, repeats)
        rows[1].torch_ratio = paired_ratio(fwd_bwd, t_all_fn, repeats)
    return rows


# --- max pooling with switches, LRN ----------------------------------------------------------------------------

def _bandwidth_rows(section, name, threads, repeats, fwd, fwd_bwd, bytes_fwd, bytes_all):
    """The forward and forward+backward rows of a memory-bound op, rated in GB/s."""
    t_fwd, t_all = median_time(fwd, repeats), median_time(fwd_bwd, repeats)
    return [Row(section, name, "forward", threads, t_fwd, bytes_fwd / t_fwd / 1e9, "GB/s"),
            Row(section, name, "fwd+bwd", threads, t_all, bytes_all / t_all / 1e9, "GB/s")]


def _torch_ratios(rows, fwd, fwd_bwd, torch, t_op, x, dy, repeats):
    """Fill the two rows' ratios to PyTorch running ``t_op`` (tensor -> output, or a tuple whose first item is
    the output) on the same x and upstream gradient dy."""
    tx = torch.from_numpy(x).requires_grad_()
    tdy = torch.from_numpy(dy)

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    def t_fwd_fn():
        with torch.no_grad():
            return t_op(tx)

    def t_all_fn():
        tx.grad = None
        first(t_op(tx)).backward(tdy)

    rows[0].torch_ratio = paired_ratio(fwd, t_fwd_fn, repeats)
    rows[1].torch_ratio = paired_ratio(fwd_bwd, t_all_fn, repeats)


def bench_pool(shape, threads, repeats, torch, rng):
    label, xs, k, s, ceil = shape
    x = rng.standard_normal(xs, dtype=np.float32)
    y, cache = ops.max_pool2d_forward(x, k, s, 0, ceil)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    bytes_fwd = x.nbytes + y.nbytes + cache.switches.nbytes                # read x, write y and switches
    bytes_all = bytes_fwd + dy.nbytes + cache.switches.nbytes + x.nbytes    # + read dy, switches; write dx
    def fwd():
        return ops.max_pool2d_forward(x, k, s, 0, ceil)

    def fwd_bwd():
        return ops.max_pool2d_backward(dy, ops.max_pool2d_forward(x, k, s, 0, ceil)[1])

    name = f"{label} {k}x{k}/{s}{' ceil' if ceil else ''}"
    rows = _bandwidth_rows("pool", name, threads, repeats, fwd, fwd_bwd, bytes_fwd, bytes_all)
    if torch is not None:
        mp = torch.nn.functional.max_pool2d
        _torch_ratios(rows, fwd, fwd_bwd, torch, lambda t: mp(t, k, s, 0, ceil_mode=ceil, return_indices=True),
                      x, dy, repeats)
    return rows


def bench_lrn(shape, threads, repeats, torch, rng):
    label, xs = shape
    x = rng.standard_normal(xs, dtype=np.float32)
    dy = rng.standard_normal(xs, dtype=np.float32)
    bytes_fwd = 2 * x.nbytes                  # read x, write y
    bytes_all = bytes_fwd + 4 * x.nbytes      # + read dy, x, y (or the scale), write dx
    def fwd():
        return ops.lrn_forward(x, **LRN_ARGS)

    def fwd_bwd():
        return ops.lrn_backward(dy, ops.lrn_forward(x, **LRN_ARGS)[1])

    rows = _bandwidth_rows("lrn", f"{label} n=5", threads, repeats, fwd, fwd_bwd, bytes_fwd, bytes_all)
    if torch is not None:
        n = LRN_ARGS["n"]
        # minicnn's alpha is not divided by n; PyTorch's is: alpha_torch = alpha * n.
        _torch_ratios(rows, fwd, fwd_bwd, torch, lambda t: torch.nn.functional.local_response_norm(
            t, n, alpha=LRN_ARGS["alpha"] * n, beta=LRN_ARGS["beta"], k=LRN_ARGS["k"]), x, dy, repeats)
    return rows


# --- a full training step --------------------------------------------------------------------------------------

LR, MOMENTUM = 0.01, 0.9


class MinicnnStep:
    """Forward (train mode), softmax cross-entropy, backward without the input gradient, SGD with momentum."""

    def __init__(self, net, lr=LR):
        self.net, self.lr = net, np.float32(lr)
        self.velocity = {k: np.zeros_like(v) for k, v in net.named_params().items()}

    def __call__(self, x, labels):
        logits = self.net.forward(x, train=True)
        loss, dlogits = ops.softmax_cross_entropy(logits, labels)
        self.net.backward(dlogits, input_grad=False)
        params, grads = self.net.named_params(), self.net.named_grads()
        for key, v in self.velocity.items():     # v = mu v - lr g;  p += v   (in place: no fresh arrays)
            v *= np.float32(MOMENTUM)
            v -= self.lr * grads[key]
            params[key] += v
        return loss


def torch_twin(net, torch):
    """The same architecture and weights as a torch.nn.Sequential (linear weights transposed to (out, in))."""
    from minicnn import layers as L
    nn = torch.nn
    modules = []
    for layer in net:
        cfg = layer.config
        if isinstance(layer, L.Conv2D):
            m = nn.Conv2d(cfg["in_channels"], cfg["out_channels"], cfg["kernel"], cfg["stride"], cfg["pad"])
            m.weight.data = torch.from_numpy(layer.params["W"].copy())
            m.bias.data = torch.from_numpy(layer.params["b"].copy())
        elif isinstance(layer, L.Linear):
            m = nn.Linear(cfg["in_features"], cfg["out_features"])
            m.weight.data = torch.from_numpy(np.ascontiguousarray(layer.params["W"].T))
            m.bias.data = torch.from_numpy(layer.params["b"].copy())
        elif isinstance(layer, L.ReLU):
            m = nn.ReLU()
        elif isinstance(layer, L.MaxPool2D):
            m = nn.MaxPool2d(cfg["kernel"], cfg["stride"], cfg["pad"], ceil_mode=cfg["ceil_mode"])
        elif isinstance(layer, L.LRN):
            m = nn.LocalResponseNorm(cfg["n"], alpha=cfg["alpha"] * cfg["n"], beta=cfg["beta"], k=cfg["k"])
        elif isinstance(layer, L.Dropout):
            m = nn.Dropout(cfg["p"])
        elif isinstance(layer, L.Flatten):
            m = nn.Flatten()
        else:
            raise TypeError(f"torch_twin: no PyTorch counterpart for {layer.label}")
        modules.append(m)
    return nn.Sequential(*modules)


TRAIN_CASES = [  # (label, builder, input shape, batch)
    ("zfnet_small", lambda: zfnet_small(num_classes=10, input_shape=(3, 32, 32)), (3, 32, 32), 128),
    ("lenet5", lambda: lenet5(num_classes=10, input_shape=(1, 32, 32)), (1, 32, 32), 128),
]


def bench_train(case, threads, repeats, torch, rng, batch=None):
    label, build, shape, N = case
    N = batch or N
    net = build()
    x = rng.standard_normal((N,) + shape, dtype=np.float32)
    labels = rng.integers(0, 10, N).astype(np.int64)
    step = MinicnnStep(net)
    flops = 3 * 2.0 * N * sum(layer.macs(s) for layer, s in _layer_inputs(net, shape))
    t = median_time(lambda: step(x, labels), repeats)
    row = Row("train", f"{label} batch {N}", "step", threads, t, flops / t / 1e9, "GFLOP/s")
    if torch is not None:
        model = torch_twin(net, torch).train()
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)

        def t_step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(tx), tl)
            loss.backward()
            opt.step()

        row.torch_ratio = paired_ratio(lambda: step(x, labels), t_step, repeats)
    return [row]


def _arrays_in(obj, found):
    """Collect the distinct NumPy buffers reachable from a layer cache (dataclass, tuple, list, array)."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        found[id(base)] = base.nbytes
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            _arrays_in(getattr(obj, f.name), found)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _arrays_in(item, found)
    return found


def measure_memory(batch=128, threads=2):
    """Peak traced memory of a zfnet_small training step vs the floor (weights, grads, momentum, caches, batch).

    Measured in a fresh interpreter: scratch buffers (minicnn/fast_cpu/threads.py) that earlier sections allocated
    would otherwise be invisible to tracemalloc. One untraced step on a single image first loads the C loops."""
    import json
    import os
    import subprocess
    code = ("import json, os, sys; sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]; import bench_ops as b; "
            "print(json.dumps(b._memory_of_a_step(int(sys.argv[2]), int(sys.argv[3]))))")
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, here, str(batch), str(threads)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _memory_of_a_step(batch, threads):
    import minicnn
    minicnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    warm = rng.standard_normal((1, 3, 32, 32), dtype=np.float32)      # untraced: loads the C loops
    MinicnnStep(zfnet_small(num_classes=10, input_shape=(3, 32, 32)))(warm, np.zeros(1, np.int64))
    tracemalloc.start()
    net = zfnet_small(num_classes=10, input_shape=(3, 32, 32))
    x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int64)
    step = MinicnnStep(net)
    for _ in range(3):          # later steps replace the earlier caches and reuse recycled arrays: the steady state
        step(x, labels)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    params = sum(p.nbytes for p in net.named_params().values())
    state = _arrays_in([list(net.named_params().values()), list(net.named_grads().values()),
                        list(step.velocity.values())], {})
    caches = {k: v for k, v in _arrays_in([layer.cache for layer in net], {}).items() if k not in state}
    # distinct buffers only: a conv cache holds the weights themselves, a ReLU cache the previous output, ...
    floor = sum(state.values()) + sum(caches.values()) + x.nbytes
    return dict(peak=peak, floor=floor, params=params, caches=sum(caches.values()), batch=batch)


# --- driver ----------------------------------------------------------------------------------------------------

def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_rows(rows, out=None):
    out = out or sys.stdout
    print(f"{'section':<6} {'shape':<26} {'op':<8} {'thr':>3} {'median ms':>10} {'rate':>9} {'unit':<8} "
          f"{'%sgemm':>7} {'x torch':>8}", file=out)
    for r in rows:
        print(f"{r.section:<6} {r.label:<26} {r.op:<8} {r.threads:>3} {r.seconds * 1e3:>10.3f} {_fmt(r.rate, '9.1f')} "
              f"{r.unit:<8} {_fmt(100 * r.sgemm_share, '6.0f')}% {_fmt(r.torch_ratio, '8.2f')}", file=out)


def summarise(rows, out=None):
    """The issue-7 targets, at each thread count measured."""
    out = out or sys.stdout
    for t in sorted({r.threads for r in rows}):
        conv = {r.label: r for r in rows if r.section == "conv" and r.op == "fwd+bwd" and r.threads == t}
        issue = [conv[k] for k in ISSUE_CONV if k in conv]
        if issue and not math.isnan(issue[0].torch_ratio):
            ratios = [r.torch_ratio for r in issue]
            gmean = math.exp(sum(map(math.log, ratios)) / len(ratios))
            print(f"[{t} thr] conv fwd+bwd vs torch over the issue shapes: geometric mean {gmean:.2f}x "
                  f"(target <= 1.25), worst {max(ratios):.2f}x (target <= 1.6)", file=out)
        if "issue5" in conv:
            print(f"[{t} thr] largest issue shape: {100 * conv['issue5'].sgemm_share:.0f}% of sgemm on the same "
                  f"GEMMs (target >= 70%), {conv['issue5'].rate:.0f} GFLOP/s", file=out)
        for sec in ("pool", "lrn"):
            rs = [r for r in rows if r.section == sec and r.op == "fwd+bwd" and r.threads == t]
            listed = [r for r in rs if r.label.startswith("after issue")]     # the shapes issue 7 lists
            if listed and not math.isnan(listed[0].torch_ratio):
                worst = max(rs, key=lambda r: r.torch_ratio)
                print(f"[{t} thr] {sec} fwd+bwd vs torch on the issue shapes: worst "
                      f"{max(r.torch_ratio for r in listed):.2f}x (target <= 0.5); over all rows: "
                      f"{worst.torch_ratio:.2f}x ({worst.label})", file=out)
        for r in rows:
            if r.section == "train" and r.threads == t and not math.isnan(r.torch_ratio):
                print(f"[{t} thr] training step {r.label}: {r.torch_ratio:.2f}x torch"
                      f"{' (target <= 1.3)' if r.label.startswith('zfnet_small') else ''}", file=out)


def _loops_in_use():
    """Which CPU path the ops take here, and why (minicnn.active_cpu_path)."""
    import minicnn
    return "CPU path: %s (%s)" % minicnn.active_cpu_path()


def build_parser():
    p = argparse.ArgumentParser(prog="minicnn bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny batches, one repeat: a smoke test, not a measurement")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 7; 1 with --quick)")
    p.add_argument("--sections", default="conv,pool,lrn,train,memory",
                   help="any of conv,pool,lrn,train,memory (default: all)")
    p.add_argument("--only", default=None, help="run only the rows whose label contains this text")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is importable")
    p.add_argument("--cold", action="store_true",
                   help="ratios from the first call after a pause instead of warm back-to-back calls (see WARM_S)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    global COLD
    COLD = args.cold
    sections = set(args.sections.split(","))
    unknown = sections - {"conv", "pool", "lrn", "train", "memory"}
    if unknown:
        raise SystemExit(f"bench: unknown sections {sorted(unknown)}")
    threads = [int(t) for t in args.threads.split(",")]
    repeats = args.repeats or (1 if args.quick else 7)
    torch = None if args.no_torch else _import_torch()
    rng = np.random.default_rng(0)

    def shrink(n):       # --quick: the same rows on batch 1 and at most 16x16 pixels: a smoke test
        return min(n, 1) if args.quick else n

    def small(h, w):
        return (min(h, 16), min(w, 16)) if args.quick else (h, w)

    def keep(label):
        return args.only is None or args.only in label

    print(f"minicnn bench: {platform.processor() or platform.machine()}, {_cpu_model()}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not importable'}; median of {repeats}, float32; "
          f"{_loops_in_use()}")
    zf_conv, zf_pool, zf_lrn = zf_small_shapes()
    conv_shapes, pool_shapes, lrn_shapes = CONV_SHAPES + zf_conv, POOL_SHAPES + zf_pool, LRN_SHAPES + zf_lrn
    rows = []
    for t in threads:
        with num_threads(t, torch):
            if "conv" in sections:
                for shape in conv_shapes:
                    if keep(shape[0]):
                        label, N, C, F, H, W, k, s, p = shape
                        rows += bench_conv((label, shrink(N), C, F) + small(H, W) + (k, s, p), t, repeats, torch, rng)
            if "pool" in sections:
                for label, xs, k, s, ceil in pool_shapes:
                    if keep(label):
                        rows += bench_pool((label, (shrink(xs[0]), xs[1]) + small(*xs[2:]), k, s, ceil), t, repeats,
                                           torch, rng)
            if "lrn" in sections:
                for label, xs in lrn_shapes:
                    if keep(label):
                        rows += bench_lrn((label, (shrink(xs[0]), xs[1]) + small(*xs[2:])), t, repeats, torch, rng)
            if "train" in sections:
                for case in TRAIN_CASES:
                    if keep(case[0]):
                        rows += bench_train(case, t, repeats, torch, rng, batch=shrink(case[3]))
    print_rows(rows)
    summarise(rows)
    if "memory" in sections:
        m = measure_memory(batch=shrink(128), threads=max(threads))
        print(f"zfnet_small training step, batch {m['batch']}: peak traced memory {m['peak'] / 2**20:.1f} MiB; "
              f"floor {m['floor'] / 2**20:.1f} MiB (weights+grads+momentum 3 x {m['params'] / 2**20:.2f} MiB, "
              f"cached activations {m['caches'] / 2**20:.1f} MiB, input batch); peak/floor {m['peak'] / m['floor']:.2f}")
        rows.append(Row("memory", f"zfnet_small batch {m['batch']}", "peak/floor", max(threads), float("nan"),
                        m["peak"] / m["floor"], "x"))
    return rows


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" x{sum(1 for _ in open('/proc/cpuinfo') if _.startswith('processor'))}"
    except OSError:
        pass
    return "cpu unknown"


if __name__ == "__main__":
    main()
