"""Exercises for the teaching notebooks: a function the student writes, a check that says whether it is right, and a
reference solution.

A notebook shows only the stub, in a code cell whose first line names the exercise::

    # Exercise 02.guided_relu: the guided ReLU backward
    def guided_relu_backward(dy, x):
        raise NotImplementedError("your code here")

and, in the next cell, the check::

    check("02.guided_relu", guided_relu_backward)     # shows ✓ or ✗ and why

A check never raises: an unfinished stub gives a ✗ with a hint, so the notebook still runs top to bottom. The test
suite (tests/test_exercises.py) takes every stub from the committed notebooks and proves that it fails its check and
that the reference solution passes it, so no check can be one that never fails. Solutions are here for teachers and
for after an honest try: ``show_solution("02.guided_relu")`` prints one.

Exercises live in one module per notebook (``nb01.py``, ``nb02.py``, ...), each calling :func:`register`. Names are
``"NN.short_name"`` with NN the notebook's number.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

__all__ = ["Exercise", "Result", "register", "check", "solution", "show_solution", "exercises"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``check(fn)`` raises AssertionError with a message for the student when ``fn`` is wrong;
    ``solution`` is the reference answer; ``function`` is the name the notebook's stub defines."""
    name: str
    title: str
    function: str
    check: Callable[[Callable], object]
    solution: Callable


@dataclass(frozen=True)
class Result:
    """The outcome of :func:`check`. True when the answer passed; shown as one line in a notebook."""
    name: str
    passed: bool
    message: str

    def __bool__(self):
        return self.passed

    def __repr__(self):
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.name}: {self.message}"

    __str__ = __repr__


_REGISTRY: dict[str, Exercise] = {}
_LOADED = False


def register(name, title, function, check_fn, solution_fn):
    """Add an exercise. ``check_fn(fn)`` must raise AssertionError (with a message a student can act on) when ``fn``
    is wrong and may return a short success detail (str) when it is right."""
    number, _, short = name.partition(".")
    if not (len(number) == 2 and number.isdigit() and short.isidentifier()):
        raise ValueError(f"exercise name {name!r}: expected 'NN.short_name', NN the notebook number")
    if name in _REGISTRY:
        raise ValueError(f"exercise {name!r} is registered twice")
    _REGISTRY[name] = Exercise(name, title, function, check_fn, solution_fn)


def _load():
    """Import every ``nbNN`` module of this package once, so that their exercises are registered."""
    global _LOADED
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            if module.name.startswith("nb"):
                importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True


def exercises(notebook=None):
    """All registered exercises (sorted by name), or those of one notebook (``notebook="02"``)."""
    _load()
    return [e for n, e in sorted(_REGISTRY.items()) if notebook is None or n.startswith(f"{notebook}.")]


def _get(name):
    _load()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"no exercise named {name!r}; known: {known}")
    return _REGISTRY[name]


def check(name, fn):
    """Check the student's ``fn`` for exercise ``name``. Returns a :class:`Result` (never raises for a wrong or
    unfinished answer, so the notebook keeps running)."""
    exercise = _get(name)
    if not callable(fn):
        return Result(name, False, f"expected your function {exercise.function}(...), got {type(fn).__name__}")
    try:
        detail = exercise.check(fn)
    except NotImplementedError:
        return Result(name, False, f"not done yet: replace the `raise NotImplementedError` in {exercise.function} "
                                   "with your code")
    except AssertionError as error:
        return Result(name, False, str(error) or "wrong answer")
    except Exception as error:     # the student's code crashed: say how, not a traceback into the checker
        if _raised_by_checker(error, fn):
            return Result(name, False, f"the check could not use what {exercise.function} returned "
                                       f"({type(error).__name__}: {error}); compare it with what the stub's "
                                       "docstring asks for")
        return Result(name, False, f"{exercise.function} raised {type(error).__name__}: {error}")
    return Result(name, True, f"correct{f' ({detail})' if detail else ''}")


def _raised_by_checker(error, fn):
    """True when ``error`` did not come from inside the student's ``fn`` (no frame of the traceback runs its code):
    the check choked on what ``fn`` returned. A TypeError outside ``fn`` is most often the check calling a function
    that takes other arguments than the stub's, so that one stays the student's."""
    code = getattr(fn, "__code__", None)
    if code is None or isinstance(error, TypeError):
        return False
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return False
        tb = tb.tb_next
    return True


def solution(name):
    """The reference solution of exercise ``name`` (a function)."""
    return _get(name).solution


def show_solution(name):
    """Print the source of the reference solution of exercise ``name``."""
    print(inspect.getsource(solution(name)))
