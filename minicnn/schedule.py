"""Learning-rate schedules, stepped once per epoch by the Trainer.

- ``ConstantLR``: leaves the rate alone.
- ``StepLR``: multiply the rate by ``gamma`` every ``step_size`` epochs (lr_e = lr_0 * gamma ** (e // step_size)).
- ``ReduceOnPlateau``: divide the rate by 10 (``factor=0.1``) when a validation metric has not improved for
  ``patience`` epochs, as Krizhevsky and Zeiler & Fergus did by hand ("annealed manually ... when the
  validation error stopped improving").

Every schedule has ``step(epoch, metric=None)`` (called after epoch ``epoch`` finished, ``metric`` being the
monitored validation value) and ``state_dict()`` / ``load_state_dict()`` so a resumed run continues exactly.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["ConstantLR", "StepLR", "ReduceOnPlateau", "make_schedule", "SCHEDULES"]


def _finite(value, name, where, positive=False):
    """``value`` as a finite float (> 0 when ``positive``), or a ValueError naming it."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and not value > 0):
        raise ValueError(f"{where}: {name} must be a finite {'positive ' if positive else ''}number, got {value!r}")
    return float(value)


def _count(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{where}: {name} must be an integer >= 0, got {value!r}")
    return int(value)


class _Schedule:
    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected an optimiser with an 'lr' attribute, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)

    def step(self, epoch, metric=None):
        raise NotImplementedError

    def config(self):
        return {}

    def state_dict(self):
        return {"base_lr": self.base_lr}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` wrote; every value is checked before any is set."""
        self._set_state(self._checked_state(state))

    def _checked_state(self, state):
        if not isinstance(state, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a dict, got {type(state).__name__}")
        where = f"{type(self).__name__}.load_state_dict"
        return {"base_lr": _finite(state.get("base_lr", self.base_lr), "base_lr", where, positive=True)}

    def _set_state(self, checked):
        for key, value in checked.items():
            setattr(self, key, value)


class ConstantLR(_Schedule):
    """The learning rate never changes."""

    def step(self, epoch, metric=None):
        return self.optimizer.lr


class StepLR(_Schedule):
    """lr = base_lr * gamma ** (epochs_done // step_size), with epochs counted from 1."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer (epochs), got {step_size!r}")
        self.step_size, self.gamma = step_size, _finite(gamma, "gamma", "StepLR", positive=True)

    def step(self, epoch, metric=None):
        """Called after epoch ``epoch`` (1-based) finished: sets the rate for epoch ``epoch + 1``."""
        self.optimizer.lr = self.base_lr * self.gamma ** (int(epoch) // self.step_size)
        return self.optimizer.lr

    def config(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class ReduceOnPlateau(_Schedule):
    """Multiply the rate by ``factor`` (default 1/10) once more than ``patience`` epochs in a row did not improve.

    mode: "max" (accuracy) or "min" (loss). An epoch improves when the metric beats the best so far by more
    than ``threshold`` (absolute). After a reduction the count restarts; the rate never goes below ``min_lr``.
    """

    def __init__(self, optimizer, patience=3, factor=0.1, mode="max", threshold=1e-4, min_lr=1e-6):
        super().__init__(optimizer)
        if mode not in ("max", "min"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'max' or 'min', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"ReduceOnPlateau: patience must be an integer >= 0, got {patience!r}")
        if not 0 < _finite(factor, "factor", "ReduceOnPlateau") < 1:
            raise ValueError(f"ReduceOnPlateau: factor must lie in (0, 1), got {factor!r}")
        if _finite(threshold, "threshold", "ReduceOnPlateau") < 0:
            raise ValueError(f"ReduceOnPlateau: threshold must be >= 0, got {threshold!r}")
        if _finite(min_lr, "min_lr", "ReduceOnPlateau") < 0:
            raise ValueError(f"ReduceOnPlateau: min_lr must be >= 0, got {min_lr!r}")
        self.patience, self.factor, self.mode = patience, float(factor), mode
        self.threshold, self.min_lr = float(threshold), float(min_lr)
        self.best = -math.inf if mode == "max" else math.inf
        self.bad_epochs = 0
        self.reductions = 0

    def _improves(self, metric):
        if self.mode == "max":
            return metric > self.best + self.threshold
        return metric < self.best - self.threshold

    def step(self, epoch, metric=None):
        if metric is None:
            raise ValueError("ReduceOnPlateau.step: needs the monitored validation metric, got None")
        metric = float(metric)
        if math.isnan(metric):
            raise ValueError("ReduceOnPlateau.step: the monitored metric is NaN (an empty validation set, or a "
                             "diverged network); a plateau cannot be judged on it")
        if self._improves(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                new = max(self.optimizer.lr * self.factor, self.min_lr)
                if new < self.optimizer.lr:
                    self.reductions += 1
                self.optimizer.lr = new
                self.bad_epochs = 0
        return self.optimizer.lr

    def config(self):
        return {"patience": self.patience, "factor": self.factor, "mode": self.mode,
                "threshold": self.threshold, "min_lr": self.min_lr}

    def state_dict(self):
        return {**super().state_dict(), "best": self.best, "bad_epochs": self.bad_epochs, "reductions": self.reductions}

    def _checked_state(self, state):
        checked = super()._checked_state(state)
        where = f"{type(self).__name__}.load_state_dict"
        best = state.get("best", self.best)
        # best is -inf (mode "max") or +inf ("min") until the first epoch; NaN never compares, so it is refused.
        if isinstance(best, bool) or not isinstance(best, numbers.Real) or math.isnan(best):
            raise ValueError(f"{where}: best must be a number, got {best!r}")
        checked.update(best=float(best), bad_epochs=_count(state.get("bad_epochs", 0), "bad_epochs", where),
                       reductions=_count(state.get("reductions", 0), "reductions", where))
        return checked


SCHEDULES = {"constant": ConstantLR, "step": StepLR, "plateau": ReduceOnPlateau}


def make_schedule(name, optimizer, **kwargs):
    """Build a schedule by name: "constant", "step" (step_size=, gamma=) or "plateau" (patience=, factor=, ...)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; available: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](optimizer, **kwargs)
