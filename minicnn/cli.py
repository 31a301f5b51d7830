"""The ``minicnn`` command: demo, train, evaluate, visualize, summary, gradcheck, bench, import, predict.

Each sub-command is a thin wrapper: it parses arguments and calls the library function that does the work,
imported only when that sub-command runs (so ``minicnn summary`` does not pay for matplotlib).
"""
from __future__ import annotations

import argparse
import os
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


def _positive_ints(text):
    """argparse type: comma-separated integers >= 1 (``--threads 1,2``)."""
    try:
        values = [int(p) for p in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1 (e.g. 1,2), got {text!r}")
    return text


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _layer_names(text):
    """argparse type: comma-separated layer names (``--freeze conv1,conv2``)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated layer names (e.g. conv1,conv2), got {text!r}")
    return names


def _layer_factors(text):
    """argparse type: ``fc8=10,fc7=2`` -> {"fc8": 10.0, "fc7": 2.0}, every factor a finite number > 0."""
    import math
    factors = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        try:
            factor = float(value)
        except ValueError:
            factor = math.nan
        if not eq or not name.strip() or not (math.isfinite(factor) and factor > 0):
            raise argparse.ArgumentTypeError(f"expected LAYER=FACTOR pairs with factors > 0 (e.g. fc8=10,fc7=2), "
                                             f"got {text!r}")
        factors[name.strip()] = factor
    return factors


def _sections(text):
    known = ("conv", "pool", "lrn", "train", "memory")
    unknown = sorted(set(text.split(",")) - set(known))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(map(repr, unknown))}; "
                                         f"choose from {','.join(known)}")
    return text


# --- summary ---------------------------------------------------------------------------------------------

_DEFAULT_INPUT = {"lenet5": (1, 32, 32), "alexnet": (3, 227, 227), "zfnet": (3, 224, 224), "vgg16": (3, 224, 224),
                  "zfnet_small": (3, 32, 32), "zfnet_medium": (1, 64, 64), "alexnet_tv": (3, 224, 224)}


def _summary_of_run(args):
    """``minicnn summary RUN``: the network of a run directory or checkpoint (e.g. one made by ``minicnn import``)."""
    from .train import load_run
    run = load_run(args.model, load_data=False)
    shape = args.input or tuple(run.meta.get("input_shape") or ())
    if len(shape) != 3:
        print(f"minicnn summary: {args.model} does not record its input shape; give --input C,H,W", file=sys.stderr)
        return 2
    run.net.summary(shape)
    return 0


def _cmd_summary(args):
    from .models import MODELS, build
    import os
    if args.model not in MODELS and os.path.exists(args.model):
        return _summary_of_run(args)
    if args.model not in MODELS:
        print(f"minicnn summary: unknown model {args.model!r}; available: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    shape = args.input or _DEFAULT_INPUT[args.model]
    kwargs = {"input_shape": shape, "init": "zeros"}      # shapes only: no random draws for VGG-16's 138 M weights
    if args.classes is not None:
        kwargs["num_classes"] = args.classes
    build(args.model, **kwargs).summary(shape)
    return 0


# --- gradcheck -------------------------------------------------------------------------------------------

def _cmd_gradcheck(args):
    from .gradcheck import gradcheck_table
    rows = gradcheck_table(seed=args.seed)
    width = max(len(r["config"]) for r in rows)
    lw = max(10, max(len(r["layer"]) for r in rows))
    print(f"{'layer':<{lw}} {'config':<{width}} {'max rel. error':>15}  result")
    failed = 0
    for r in rows:
        ok = r["error"] <= r["tolerance"]
        failed += not ok
        print(f"{r['layer']:<{lw}} {r['config']:<{width}} {r['error']:>15.2e}  {'pass' if ok else 'FAIL'}")
    print(f"{len(rows) - failed} passed, {failed} failed (float64, random upstream gradient, tolerance 1e-6)")
    return 1 if failed else 0


# --- train / evaluate / demo ------------------------------------------------------------------------------

def _cmd_train(args):
    from .experiment import train_run
    options = {k: getattr(args, k) for k in ("model", "data", "epochs", "lr", "momentum", "weight_decay", "batch_size",
                                             "image_size", "seed", "clip_radius", "schedule", "patience", "step_size",
                                             "crop_pad", "width", "dropout", "n_samples", "root", "val_fraction",
                                             "test_fraction", "colour_jitter", "rotate", "zoom", "freeze",
                                             "init_from")}
    if args.lr_mult:
        options["lr_mult"] = {name: f for given in args.lr_mult for name, f in given.items()}
    if args.no_hflip:
        options["hflip"] = False
    out = args.out or f"runs/{args.data or 'shapes'}-{args.model or 'zfnet_small'}"
    started = _started_callback()
    try:
        train_run(out, resume=args.resume, overwrite=args.overwrite, device=args.device,
                  progress=False if args.no_progress else None, ten_crop=args.ten_crop, callbacks=[started],
                  **options)
    except KeyboardInterrupt:
        print(f"\n{_interrupted_advice(out, started.began)}", file=sys.stderr)
        return 130
    print(f"run directory: {out} (summary.txt, curves.png, history.csv, checkpoint.npz, best.npz)")
    return 0


def _started_callback():
    """A Callback that notes whether ``fit`` began (so that the run directory's files are this run's)."""
    from .train import Callback

    class Started(Callback):
        began = False

        def on_train_begin(self, trainer):
            self.began = True
    return Started()


def _interrupted_advice(out, began):
    """What an interrupted ``minicnn train`` left behind, and the command that continues it: the truth in each case."""
    import os
    from .train import CHECKPOINT, CheckpointError, load_checkpoint
    if not began:
        return f"interrupted before training began; nothing in {out} was changed by this command"
    path = os.path.join(out, CHECKPOINT)
    try:
        epoch = load_checkpoint(path).epoch
    except (FileNotFoundError, CheckpointError):
        return (f"interrupted before epoch 1 finished: no checkpoint was written yet. Start the run again, with the "
                f"options saved in {os.path.join(out, 'run.json')}:  minicnn train --out {out} --resume")
    return (f"interrupted; {path} holds epoch {epoch}, the last finished one. Continue with:  "
            f"minicnn train --out {out} --resume")


def _cmd_evaluate(args):
    from .experiment import evaluate_run
    from .imagenet import evaluate_folder, is_photo_run
    if args.images is not None or is_photo_run(args.run):
        if args.images is None:
            print(f"minicnn evaluate: {args.run} is an imported network without a dataset; give --images DIR "
                  f"(one sub-folder per class, named by class name or index), or use minicnn predict",
                  file=sys.stderr)
            return 2
        r = evaluate_folder(args.run, args.images, which=args.checkpoint)
        print(f"{args.images} ({r['n']} images), {r['checkpoint']}: top-1 {100 * r['top1']:.2f}%  "
              f"top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}")
        return 0
    r = evaluate_run(args.run, ten_crop=args.ten_crop, which=args.checkpoint, split=args.split, root=args.root)
    print(f"{r['split']} split ({r['n']} images), {r['checkpoint']} (epoch {r['epoch']}): "
          f"top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}")
    if args.ten_crop:
        print(f"{r['ten_crop_views']}-view test-time averaging: top-1 {100 * r['ten_crop_top1']:.2f}%  "
              f"top-5 {100 * r['ten_crop_top5']:.2f}%  loss {r['ten_crop_loss']:.4f}")
    return 0


def _cmd_demo(args):
    from .demo import run_demo
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    try:
        run_demo(args.out, device=args.device, progress=False if args.no_progress else None,
                 overwrite=args.overwrite, **overrides)
    except KeyboardInterrupt:
        print(f"\ninterrupted; start the demo again with:  minicnn demo --out {args.out} --overwrite", file=sys.stderr)
        return 130
    return 0


def _add_train_parser(sub):
    p = sub.add_parser("train", help="train a zoo model on a dataset; writes checkpoints, history and curves")
    p.add_argument("--model", default=None, help="zoo model (default zfnet_small)")
    p.add_argument("--data", default=None, help="digits | faces | textures | photos | shapes | mnist | fashion-mnist | "
                                                 "cifar10 | folder (default shapes)")
    p.add_argument("--epochs", type=int, default=None, help="total epochs, also when resuming (default 15)")
    p.add_argument("--out", default=None, help="run directory (default runs/DATA-MODEL)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.02; ZF: 0.01 at batch 128)")
    p.add_argument("--momentum", type=float, default=None, help="default 0.9")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 weight decay (default 5e-4)")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 (ZF: 128)")
    p.add_argument("--image-size", type=int, default=None, help="resize images to SIZE x SIZE")
    p.add_argument("--seed", type=int, default=None, help="data split, initial weights, batch order (default 0)")
    p.add_argument("--clip-radius", type=float, default=None,
                   help="ZF filter-RMS clipping radius for conv filters (default 0.1; 0 turns it off)")
    p.add_argument("--schedule", choices=("plateau", "step", "constant"), default=None,
                   help="step (default): divide lr by 10 every --step-size epochs (default 2/3 of them); plateau: when validation accuracy stalls")
    p.add_argument("--patience", type=int, default=None, help="plateau patience in epochs (default 2)")
    p.add_argument("--step-size", type=int, default=None, help="step schedule period in epochs")
    p.add_argument("--crop-pad", type=int, default=None, help="random-crop augmentation: pad by this and crop back (default 2; 0: off)")
    p.add_argument("--no-hflip", action="store_true", help="no random horizontal flips even where the data allows them")
    p.add_argument("--colour-jitter", type=float, default=None, help="random per-image colour gain/offset strength "
                   "(default 0; 0.2 suits the photos data)")
    p.add_argument("--rotate", type=float, default=None, metavar="DEG", help="random rotation of each training image "
                   "by up to DEG degrees either way, in [0, 180] (default 0: off)")
    p.add_argument("--zoom", type=float, default=None, metavar="FRAC", help="random scaling of each training image "
                   "by a factor in [1 - FRAC, 1 + FRAC], FRAC in [0, 1) (default 0: off)")
    p.add_argument("--width", type=int, default=None, help="zfnet_small / zfnet_medium: conv1 filters "
                   "(default 16 / 32)")
    p.add_argument("--dropout", type=float, default=None, help="zfnet_small / zfnet_medium: dropout after "
                   "the first two fc layers (default 0; ZF: 0.5)")
    p.add_argument("--n-samples", type=int, default=None, help="dataset size for generated data (shapes, textures)")
    p.add_argument("--root", default=None, help="folder with local files (mnist, fashion-mnist, cifar10, folder)")
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--test-fraction", type=float, default=None)
    p.add_argument("--freeze", type=_layer_names, default=None, metavar="LAYERS",
                   help="fine-tuning: comma-separated layers that do not learn (e.g. conv1,conv2,conv3)")
    p.add_argument("--lr-mult", type=_layer_factors, action="append", default=None, metavar="LAYER=F",
                   help="fine-tuning: this layer learns at lr * F (e.g. fc8=10; comma-separate or repeat)")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="fine-tuning: start from a run directory, checkpoint or shipped network (fashion, photos); "
                        "layers of the same name and shape are copied, the rest start fresh")
    p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.npz with the options saved in the run")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (refused without it)")
    p.add_argument("--ten-crop", action="store_true", help="also report ZF ten-crop test accuracy at the end")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split (the same split it was trained with)")
    p.add_argument("run", help="run directory (or a checkpoint .npz)")
    p.add_argument("--ten-crop", action="store_true", help="also average over ZF's ten crops (five without flips)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="best.npz (default) or checkpoint.npz")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--root", default=None, help="where the local data files are now, if they moved")
    p.add_argument("--images", default=None, metavar="DIR", help="imported networks: a folder with one sub-folder "
                   "of images per class, named by class name or index")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("demo", help="the main job: train the small ZF-style network and write runs/demo/")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's number of epochs")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUT (refused without it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)


# --- bench -----------------------------------------------------------------------------------------------

def _cmd_bench(args):
    # benchmarks/ is not part of the installed package: the command runs the script of a source checkout.
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_ops.py"
    if not script.is_file():
        print(f"minicnn bench: {script} not found; run it from a source checkout of minicnn", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("minicnn_bench_ops", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module         # its dataclasses look their module up there
    spec.loader.exec_module(module)
    argv = ["--threads", args.threads, "--sections", args.sections]
    argv += ["--quick"] * args.quick + ["--no-torch"] * args.no_torch
    argv += ["--repeats", str(args.repeats)] if args.repeats else []
    argv += ["--only", args.only] if args.only else []
    module.main(argv)
    return 0


def _cmd_visualize(args):
    from .imagenet import is_photo_run
    from .visualize.gallery import gallery_from_run
    what = None if args.what is None else [w.strip() for w in args.what.split(",") if w.strip()]
    if args.images is not None or is_photo_run(args.run, args.checkpoint):
        from .visualize.photos import photo_gallery_from_run
        files = photo_gallery_from_run(args.run, args.images, what, out_dir=args.out, which=args.checkpoint,
                                       device=args.device, batch_size=args.batch_size,
                                       show_progress=not args.no_progress, verbose=True)
        print(f"wrote {len(files)} files; open {files[-1]}")
        return 0
    files = gallery_from_run(args.run, what, out_dir=args.out, which=args.checkpoint, device=args.device,
                             show_progress=not args.no_progress, verbose=True)
    print(f"wrote {len(files)} files; open {files[-1]}")
    return 0


def _add_visualize_parser(sub):
    p = sub.add_parser("visualize", help="Zeiler-Fergus figures of a trained run: PNGs and an index.html gallery")
    p.add_argument("run", help="run directory (runs/NAME) or a checkpoint .npz")
    p.add_argument("--what", default=None, help="comma-separated figures: filters, activations, topk, zf_fig2, saliency, "
                   "occlusion, invariance, evolution, correspondence, clipping, class_models, inversion, tsne, "
                   "probes, adversarial, sanity, or all (default: minicnn.visualize.DEFAULT_ITEMS, which leaves out the slow "
                   "clipping, class_models, inversion, tsne and probes)")
    p.add_argument("--out", default=None, help="gallery directory (default RUN/gallery); replaced atomically")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--images", default=None, metavar="DIR", help="imported networks: draw the figures from the "
                   "photos in DIR (default: the photos bundled with scikit-image, scikit-learn and matplotlib); "
                   "figures: filters, activations, topk, projections, saliency, occlusion, invariance")
    p.add_argument("--batch-size", type=int, default=8, help="--images: photos per forward pass (default 8)")
    p.set_defaults(func=_cmd_visualize)


# --- import / predict ------------------------------------------------------------------------------------

def _cmd_import(args):
    from .weights import import_run
    path = import_run(args.arch, args.file, args.out)
    print(f"imported {args.file} as {args.arch} into {args.out} ({path}); next:\n"
          f"  minicnn predict {args.out} IMAGE...\n  minicnn visualize {args.out} --images DIR")
    return 0


def _cmd_predict(args):
    from .imagenet import predict_files
    if args.top < 1:
        print(f"minicnn predict: --top must be >= 1, got {args.top}", file=sys.stderr)
        return 2
    for f, top in predict_files(args.run, args.images, k=args.top):
        print(f)
        for rank, (index, name, p) in enumerate(top, start=1):
            print(f"  {rank}. {100 * p:6.2f}%  {name} ({index})")
    return 0


def _add_import_parsers(sub):
    p = sub.add_parser("import", help="a torchvision/timm state dict (.pth, .safetensors, .npz) as a run directory",
                       description="Reads the file without PyTorch (a restricted unpickler admits tensors and "
                                   "ordered dicts only) and writes RUN/best.npz and RUN/run.json.")
    p.add_argument("arch", help="vgg16 | alexnet (torchvision's, = minicnn's alexnet_tv)")
    p.add_argument("file", help="e.g. ~/.cache/torch/hub/checkpoints/vgg16-397923af.pth or timm's model.safetensors")
    p.add_argument("--out", required=True, help="run directory to write")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("predict", help="top-5 ImageNet classes of image files, with an imported network")
    p.add_argument("run", help="run directory made by minicnn import")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top", type=int, default=5, help="how many classes per image (default 5)")
    p.set_defaults(func=_cmd_predict)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _cmd_gallery(args):
    from .visualize.gallery import gallery_pretrained
    what = None if args.what is None else [w.strip() for w in args.what.split(",") if w.strip()]
    files = gallery_pretrained(args.out, what, name=args.network, show_progress=not args.no_progress, verbose=True)
    print(f"wrote {len(files)} files; open {files[-1]}")
    return 0


def _add_gallery_parser(sub):
    p = sub.add_parser("gallery", help="Zeiler-Fergus figures of the network that ships with minicnn (no training, "
                                       "no data to download)")
    p.add_argument("--what", default=None, help="comma-separated figures (as for visualize; default: the demo's "
                   "figures plus probes)")
    p.add_argument("--network", choices=("fashion", "photos"), default="fashion", help="fashion (default): the "
                   "Fashion-MNIST network, with the colour network's conv1 filters; photos: the colour network")
    p.add_argument("--out", default=None, help="gallery directory (default runs/pretrained/gallery, "
                   "runs/pretrained/gallery-photos for --network photos)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_gallery)


def _cmd_info(args):
    """Versions, the CPU path that runs and why, threads, the C loops' build, the GPU."""
    import platform

    import numpy as np

    from . import __version__, backend
    from .fast_cpu import build, threads
    from .ops.dispatch import active_cpu_path
    path, why = active_cpu_path()              # builds the C loops if this is their first use here
    lines = [f"minicnn {__version__} (Python {platform.python_version()}, NumPy {np.__version__}, "
             f"{platform.machine()})",
             f"CPU path: {path} ({why})",
             f"threads: {threads.get_num_threads()} of {threads.usable_cores()} usable cores "
             f"(MINICNN_NUM_THREADS={os.environ.get('MINICNN_NUM_THREADS', 'unset')}); "
             f"BLAS threads: {threads.blas_thread_counts() or 'unknown (threadpoolctl found no BLAS)'}"]
    c = build.info()
    lines += [f"C compiler: {c['compiler']}", f"C flags: {c['flags']} (without -march=native where unknown)",
              f"C cache: {c['cache']}"]
    for ctype in ("float", "double"):
        lines.append(f"C loops ({ctype}): {' '.join(str(c[ctype]).split()) if c[ctype] else 'not built yet'}")
    lines.append(f"NumPy's BLAS gemm for the C loops: {c['blas gemm']}")
    lines.append(f"GPU: {'available' if backend.gpu_available() else backend.gpu_unavailable_reason()}")
    print("\n".join(lines))
    return 0


def build_parser():
    parser = _Parser(prog="minicnn", description="A convolutional-network framework written to be read.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs, memory and receptive fields of a zoo model")
    p.add_argument("model", help="lenet5 | alexnet | zfnet | vgg16 | zfnet_small | zfnet_medium | alexnet_tv, "
                   "or a run directory")
    p.add_argument("--input", type=_shape, default=None, help="input shape C,H,W (default: the model's own)")
    p.add_argument("--classes", type=int, default=None, help="number of classes (default: the model's own)")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("gradcheck", help="check every layer type's backward against numerical gradients")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser("info", help="versions, the CPU path in use and why, threads, the C loops' build, the GPU")
    p.set_defaults(func=_cmd_info)
    _add_visualize_parser(sub)
    _add_gallery_parser(sub)

    p = sub.add_parser("bench", help="CPU speed of conv, pooling, LRN and a training step vs sgemm and PyTorch",
                       description="Runs benchmarks/bench_ops.py (see its docstring for what the columns mean).")
    p.add_argument("--quick", action="store_true", help="tiny batches, one repeat: a smoke test")
    p.add_argument("--threads", type=_positive_ints, default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--repeats", type=_positive_int, default=None, help="timed runs per figure (default 7)")
    p.add_argument("--sections", type=_sections, default="conv,pool,lrn,train,memory",
                   help="subset of conv,pool,lrn,train,memory")
    p.add_argument("--only", default=None, help="only the rows whose label contains this text")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when importable")
    p.set_defaults(func=_cmd_bench)

    _add_train_parser(sub)
    _add_import_parsers(sub)
    return parser


# Errors that a user's input causes (a bad option, a missing or corrupt file, a run directory in the way): one
# line and exit status 2. Anything else is a bug in minicnn and keeps its traceback.
_USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError,
                IsADirectoryError, PermissionError, ImportError, FloatingPointError, MemoryError)


def _one_line(exc):
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status (2: misuse)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:               # --help (0) or a parse error (2, already printed on one line)
        return exc.code if isinstance(exc.code, int) else 0
    name = f"minicnn {args.command}"
    if getattr(args, "device", "cpu") == "gpu":
        from . import backend
        if not backend.gpu_available():
            print(f"{name}: error: --device gpu, but no GPU is usable here: "
                  f"{' '.join(str(backend.gpu_unavailable_reason()).split())}", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as exc:
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
