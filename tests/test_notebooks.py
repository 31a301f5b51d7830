"""Execute every teaching notebook in ``notebooks/`` top to bottom, one test per notebook.

Each notebook runs on a temporary copy with its working directory in ``tmp_path``, so the committed file is never
rewritten and nothing is left on disk. Any cell error (a failed ``assert`` included) fails the test.

Settings, from the environment:
    MINICNN_NB_SCALE     problem size inside the notebooks (default "1": small, for CI; larger values scale up)
    MINICNN_NB_TIMEOUT   seconds allowed per cell (default 240, multiplied by the scale)

The tests are independent and parametrised, so ``pytest -n 2`` (xdist) spreads the notebooks over workers.
"""
from __future__ import annotations

import os
import pathlib
import shutil

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def _scale():
    return float(os.environ.get("MINICNN_NB_SCALE", "1"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:                              # start from a clean slate: outputs must be reproduced
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # The kernel inherits this environment: the package under test, the scale, a non-interactive plot backend.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("MINICNN_NB_SCALE", str(_scale()))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path / ".hypothesis"))
    timeout = float(os.environ.get("MINICNN_NB_TIMEOUT", "240")) * max(1.0, _scale())
    client = nbclient.NotebookClient(nb, timeout=int(timeout), kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name}: a cell failed\n{error}", pytrace=False)
    # Every notebook teaches with at least one figure and at least one check that ran.
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name}: executed without producing a figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_carries_outputs(path):
    """The committed file renders on a code host: every code cell ran, in order, and the figures are inline PNGs."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: cells {[i for i, n in enumerate(counts) if n is None]} were not executed"
    assert counts == sorted(counts), f"{path.name}: cells were executed out of order"
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: the committed outputs contain an error"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), f"{path.name}: no inline figure"
