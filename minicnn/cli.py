"""The ``minicnn`` command: demo, train, evaluate, visualize, summary, gradcheck, bench.

Each sub-command is a thin wrapper: it parses arguments and calls the library function that does the work,
imported only when that sub-command runs (so ``minicnn summary`` does not pay for matplotlib).
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _shape(text):
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 3,224,224), got {text!r}") from None
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers C,H,W, got {text!r}")
    return parts


# --- summary ---------------------------------------------------------------------------------------------

_DEFAULT_INPUT = {"lenet5": (1, 32, 32), "alexnet": (3, 227, 227), "zfnet": (3, 224, 224), "vgg16": (3, 224, 224),
                  "zfnet_small": (3, 32, 32)}


def _cmd_summary(args):
    from .models import MODELS, build
    if args.model not in MODELS:
        print(f"minicnn summary: unknown model {args.model!r}; available: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    shape = args.input or _DEFAULT_INPUT[args.model]
    kwargs = {"input_shape": shape}
    if args.classes is not None:
        kwargs["num_classes"] = args.classes
    build(args.model, **kwargs).summary(shape)
    return 0


# --- gradcheck -------------------------------------------------------------------------------------------

def _cmd_gradcheck(args):
    from .gradcheck import gradcheck_table
    rows = gradcheck_table(seed=args.seed)
    width = max(len(r["config"]) for r in rows)
    print(f"{'layer':<10} {'config':<{width}} {'max rel. error':>15}  result")
    failed = 0
    for r in rows:
        ok = r["error"] <= r["tolerance"]
        failed += not ok
        print(f"{r['layer']:<10} {r['config']:<{width}} {r['error']:>15.2e}  {'pass' if ok else 'FAIL'}")
    print(f"{len(rows) - failed} passed, {failed} failed (float64, random upstream gradient, tolerance 1e-6)")
    return 1 if failed else 0


def _cmd_visualize(args):
    from .visualize.gallery import gallery_from_run
    what = None if args.what is None else [w.strip() for w in args.what.split(",") if w.strip()]
    files = gallery_from_run(args.run, what, out_dir=args.out, which=args.checkpoint, device=args.device,
                             show_progress=not args.no_progress, verbose=True)
    print(f"wrote {len(files)} files; open {files[-1]}")
    return 0


def _add_visualize_parser(sub):
    p = sub.add_parser("visualize", help="Zeiler-Fergus figures of a trained run: PNGs and an index.html gallery")
    p.add_argument("run", help="run directory (runs/NAME) or a checkpoint .npz")
    p.add_argument("--what", default=None, help="comma-separated figures: filters, activations, topk, saliency, "
                   "occlusion, invariance, evolution, correspondence, clipping, class_models, inversion, tsne, "
                   "probes, adversarial, sanity (default: all but clipping; see minicnn.visualize.GALLERY_ITEMS)")
    p.add_argument("--out", default=None, help="gallery directory (default RUN/gallery); replaced atomically")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_visualize)


def build_parser():
    parser = argparse.ArgumentParser(prog="minicnn", description="A convolutional-network framework written to be read.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs, memory and receptive fields of a zoo model")
    p.add_argument("model", help="lenet5 | alexnet | zfnet | vgg16 | zfnet_small")
    p.add_argument("--input", type=_shape, default=None, help="input shape C,H,W (default: the model's own)")
    p.add_argument("--classes", type=int, default=None, help="number of classes (default: the model's own)")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("gradcheck", help="check every layer type's backward against numerical gradients")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_gradcheck)
    _add_visualize_parser(sub)

    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        print(f"minicnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
