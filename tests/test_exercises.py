"""Every notebook exercise can fail and can pass.

The stubs are taken from the committed notebooks (what a student opens): a code cell whose first line is
``# Exercise NN.name: title``. Each stub must fail its check, and the reference solution in
``minicnn.exercises`` must pass it; so a check that cannot fail, or a solution that does not solve, fails here.
"""
from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from minicnn.exercises import check, exercises, solution

nbformat = pytest.importorskip("nbformat")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
MARKER = re.compile(r"#\s*Exercise\s+(\d\d\.\w+)\s*:")


def _stub_cells():
    """{exercise name: (notebook file name, cell source, source of the cell after it)} over every notebook."""
    found = {}
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        for i, cell in enumerate(cells):
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            match = MARKER.match(first) if cell.cell_type == "code" else None
            if match:
                name = match.group(1)
                assert name not in found, f"exercise {name} appears twice ({found[name][0]} and {path.name})"
                after = cells[i + 1].source if i + 1 < len(cells) else ""
                found[name] = (path.name, cell.source, after)
    return found


STUBS = _stub_cells()
NAMES = sorted({e.name for e in exercises()} | set(STUBS))


def _stub_function(name):
    notebook, source, _ = STUBS[name]
    namespace = {"np": np}                # a stub cell imports what it needs beyond NumPy
    exec(compile(source, f"{notebook}:{name}", "exec"), namespace)
    function = {e.name: e.function for e in exercises()}[name]
    assert function in namespace, f"{notebook}: the cell of {name} does not define {function}()"
    return namespace[function]


@pytest.mark.parametrize("name", NAMES)
def test_exercise_stub_fails_and_solution_passes(name):
    assert name in STUBS, f"exercise {name} is registered in minicnn.exercises but no notebook has its stub cell"
    assert name in {e.name for e in exercises()}, f"{STUBS[name][0]} has a stub for {name}, which has no check"
    stub = check(name, _stub_function(name))
    assert not stub.passed, f"{name}: the notebook's stub passes its own check: {stub}"
    reference = check(name, solution(name))
    assert reference.passed, f"{name}: the reference solution fails: {reference}"


@pytest.mark.parametrize("name", NAMES)
def test_exercise_is_checked_right_after_its_stub(name):
    notebook, _, after = STUBS.get(name, ("?", "", ""))
    assert f'check("{name}"' in after, f"{notebook}: the cell after the stub of {name} should call check(\"{name}\", ...)"


def test_check_reports_a_crash_without_raising():
    if not NAMES:
        pytest.skip("no exercises yet")
    result = check(NAMES[0], lambda *args, **kwargs: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message


def test_check_says_when_the_checker_itself_chokes_on_an_answer():
    """A check that crashes on a strange answer must not blame the student's code for raising."""
    from minicnn import exercises as ex

    def checker(fn):
        return fn().shape          # a float has no .shape: the checker, not the student's code, raises

    ex.register("99.probe", "probe", "probe", checker, lambda: np.zeros(1))
    try:
        result = check("99.probe", lambda: 1.0)
        assert not result.passed and "could not use what probe returned" in result.message, result
        crash = check("99.probe", lambda: 1 / 0)
        assert "probe raised ZeroDivisionError" in crash.message, crash
    finally:
        del ex._REGISTRY["99.probe"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_checked_exercises_and_a_question(path):
    """Issue 18: each notebook ends with at least two checked exercises and an inline question whose answer is in
    a collapsed cell, so every notebook can be worked through, not only read."""
    checked = [name for name, (notebook, _, _) in STUBS.items() if notebook == path.name]
    assert len(checked) >= 2, f"{path.name}: {len(checked)} checked exercises ({checked}); at least two expected"
    cells = nbformat.read(path, as_version=4).cells
    answers = [c for c in cells if c.cell_type == "markdown" and "<details>" in c.source]
    assert answers, f"{path.name}: no inline question with a collapsed <details> answer"
