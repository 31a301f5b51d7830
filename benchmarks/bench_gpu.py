"""GPU benchmark: conv / max-pool / LRN forward+backward on the AlexNet and ZFNet layer shapes.

minicnn on CuPy (cuBLAS GEMM around the hand-written im2col/col2im kernels; pooling and LRN kernels) against
PyTorch on the same GPU (cuDNN for convolution and pooling; PyTorch's LRN is built from its own pooling ops, not
cuDNN). float32, batch 128 by default, timed with CUDA events after warm-up, median of --repeat runs. The ratio
is minicnn time / PyTorch time (1.0 = as fast, 3.0 = three times slower). Also checks, untimed, that both
frameworks compute the same forward output and input gradient.

    python benchmarks/bench_gpu.py [--batch 128] [--repeat 10] [--models alexnet zfnet] [--json out.json]

Needs a CUDA device with CuPy (pip install -e ".[gpu]"); PyTorch is optional (imported here only) -- without
it only minicnn's times are printed. Exits with a message and status 2 where no GPU is usable.
"""
from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from minicnn import backend, layers, models  # noqa: E402

BENCHED = (layers.Conv2D, layers.MaxPool2D, layers.LRN)


def layer_cases(model_names):
    """(model, layer, per-sample input shape) for every conv, max-pool and LRN layer of each model."""
    cases = []
    for model_name in model_names:
        build = getattr(models, model_name)
        net = build()
        shape = tuple(inspect.signature(build).parameters["input_shape"].default)     # the model's own input
        for layer in net.layers:
            if isinstance(layer, BENCHED):
                cases.append((model_name, layer, shape))
            shape = layer.output_shape(shape)
    return cases


def time_cuda(fn, event_cls, elapsed, repeat, warmup=2):
    """Median milliseconds of fn() between two CUDA events (the GPU's own clock)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = event_cls(), event_cls()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(elapsed(start, end))
    return statistics.median(times)


def minicnn_step(layer, x, dy):
    """minicnn's forward then backward (input gradient and, for conv, dW and db), all on CuPy arrays."""
    def step():
        layer.forward(x)
        return layer.backward(dy)
    return step


def torch_forward(torch, layer, weights):
    """The same layer in PyTorch: forward, then backward of sum(y * dy) (i.e. y.backward(dy))."""
    F = torch.nn.functional
    cfg = layer.config

    if isinstance(layer, layers.Conv2D):
        W, b = weights

        def forward(t):
            return F.conv2d(t, W, b, stride=cfg["stride"], padding=cfg["pad"])
    elif isinstance(layer, layers.MaxPool2D):
        def forward(t):
            return F.max_pool2d(t, cfg["kernel"], cfg["stride"], cfg["pad"], ceil_mode=cfg["ceil_mode"])
    else:
        # minicnn's alpha is not divided by n; PyTorch divides it: alpha_torch = alpha * n.
        def forward(t):
            return F.local_response_norm(t, cfg["n"], alpha=cfg["alpha"] * cfg["n"], beta=cfg["beta"], k=cfg["k"])
    return forward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["alexnet", "zfnet"])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    if not backend.gpu_available():
        print(f"bench_gpu: no usable GPU, nothing to measure: {backend.gpu_unavailable_reason()}", file=sys.stderr)
        return 2
    cp = backend.cupy()
    device = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"]
    device = device.decode() if isinstance(device, bytes) else device
    try:
        import torch
        if not torch.cuda.is_available():
            raise ImportError("torch.cuda.is_available() is False")
        torch.backends.cudnn.benchmark = True
    except ImportError as exc:
        print(f"bench_gpu: PyTorch with CUDA not available ({exc}); timing minicnn only", file=sys.stderr)
        torch = None

    print(f"device: {device}; CuPy {cp.__version__}"
          + (f"; PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}" if torch else ""))
    print(f"forward+backward, float32, batch {args.batch}, median of {args.repeat} (ms)\n")
    header = f"{'model':<8} {'layer':<6} {'type':<10} {'input (C,H,W)':<15} {'minicnn':>9} {'torch':>9} {'ratio':>6} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))

    rng = np.random.default_rng(0)
    rows = []
    for model_name, layer, shape in layer_cases(args.models):
        layer.to("gpu")
        x_host = rng.standard_normal((args.batch, *shape), dtype=np.float32)
        x = cp.asarray(x_host)
        y = layer.forward(x)
        dy = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
        mine = time_cuda(minicnn_step(layer, x, dy), cp.cuda.Event, cp.cuda.get_elapsed_time, args.repeat)
        theirs = diff = None
        if torch is not None:
            dev = torch.device("cuda")
            xt = torch.as_tensor(x_host, device=dev).requires_grad_(True)
            dyt = torch.as_tensor(backend.to_numpy(dy), device=dev)
            weights = None
            if isinstance(layer, layers.Conv2D):
                weights = [torch.as_tensor(backend.to_numpy(layer.params[k]), device=dev).requires_grad_(True)
                           for k in ("W", "b")]
            forward = torch_forward(torch, layer, weights)

            def step():
                xt.grad = None
                forward(xt).backward(dyt)

            theirs = time_cuda(step, lambda: torch.cuda.Event(enable_timing=True),
                               lambda s, e: s.elapsed_time(e), args.repeat)
            # Same numbers? (untimed) forward output and input gradient.
            yt = forward(xt)
            xt.grad = None
            yt.backward(dyt)
            y_mine = layer.forward(x)
            dx_mine = layer.backward(dy)
            diff = max(float(np.abs(backend.to_numpy(y_mine) - yt.detach().cpu().numpy()).max()),
                       float(np.abs(backend.to_numpy(dx_mine) - xt.grad.cpu().numpy()).max()))
        ratio = mine / theirs if theirs else None
        row = dict(model=model_name, layer=layer.name, type=type(layer).__name__, input=list(shape),
                   batch=args.batch, minicnn_ms=mine, torch_ms=theirs, ratio=ratio, max_abs_diff=diff)
        rows.append(row)
        shape_s = "x".join(map(str, shape))
        print(f"{model_name:<8} {layer.name:<6} {row['type']:<10} {shape_s:<15} {mine:>9.2f} "
              + (f"{theirs:>9.2f} {ratio:>6.2f} {diff:>10.2e}" if theirs else f"{'-':>9} {'-':>6} {'-':>10}"))
        layer.to("cpu")
        del x, y, dy
        cp.get_default_memory_pool().free_all_blocks()

    if torch is not None:
        for kind in ("Conv2D", "MaxPool2D", "LRN"):
            mine = sum(r["minicnn_ms"] for r in rows if r["type"] == kind)
            theirs = sum(r["torch_ms"] for r in rows if r["type"] == kind)
            print(f"total {kind:<10} minicnn {mine:8.2f} ms   torch {theirs:8.2f} ms   ratio {mine / theirs:5.2f}")
    if args.json:
        args.json.write_text(json.dumps(dict(device=device, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
