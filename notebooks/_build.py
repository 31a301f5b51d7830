"""Build the teaching notebooks from their sources in ``_src/`` and execute them, so the committed files carry outputs.

Each source is a plain Python file in the "percent" format: a line ``# %%`` starts a code cell and
``# %% [markdown]`` a Markdown cell, whose lines are written as comments (``# `` is stripped).

    python notebooks/_build.py                 # build and execute every notebook
    python notebooks/_build.py 01 03           # only those whose name starts with 01 or 03
    python notebooks/_build.py --no-execute    # write the notebooks without outputs
    python notebooks/_build.py --figures DIR   # also dump every PNG output to DIR (to look at them)

Notebooks execute in a temporary directory with the default (small) ``MINICNN_NB_SCALE``; nothing is left on disk
but the .ipynb files. This script is not part of the package and not needed to run the notebooks.
"""
from __future__ import annotations

import argparse
import base64
import os
import pathlib
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def parse(source: str):
    """Split a percent-format source into nbformat cells."""
    cells, kind, lines = [], None, []

    def flush():
        text = "\n".join(lines).strip("\n")
        if kind is None or not text.strip():
            return
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cells.append(nbformat.v4.new_code_cell(text))

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(src: pathlib.Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(src.read_text())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb, timeout=600):
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
    with tempfile.TemporaryDirectory() as tmp:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
    for cell in nb.cells:            # keep diffs small: drop per-run timing metadata
        cell.metadata.pop("execution", None)
    return nb


def dump_figures(nb, stem, outdir: pathlib.Path):
    outdir.mkdir(parents=True, exist_ok=True)
    k = 0
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                k += 1
                (outdir / f"{stem}_cell{i:02d}_{k}.png").write_bytes(base64.b64decode(png))
    return k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", help="prefixes of notebooks to build")
    ap.add_argument("--no-execute", action="store_true")
    ap.add_argument("--figures", type=pathlib.Path, default=None)
    args = ap.parse_args(argv)
    for src in sorted((HERE / "_src").glob("*.py")):
        if args.only and not any(src.stem.startswith(p) for p in args.only):
            continue
        nb = build(src)
        if not args.no_execute:
            t0 = time.perf_counter()
            execute(nb)
            print(f"{src.stem}: executed in {time.perf_counter() - t0:.1f} s", flush=True)
        if args.figures is not None:
            print(f"  {dump_figures(nb, src.stem, args.figures)} figures -> {args.figures}")
        nbformat.validate(nb)
        nbformat.write(nb, HERE / f"{src.stem}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
