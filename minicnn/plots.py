"""Learning curves: loss and top-1 error per epoch, train and validation, written as a PNG (matplotlib, Agg)."""
from __future__ import annotations

import os

__all__ = ["plot_history"]


def plot_history(history, path, title=None):
    """Draw a run's history (a list of per-epoch dicts as the Trainer writes them) to ``path`` (PNG).

    Left panel: cross-entropy loss; middle: top-1 accuracy (%); right: learning rate (log scale).
    Keys read: epoch, train_loss, val_loss, train_top1, val_top1, lr. Returns ``path``.
    """
    if not history:
        raise ValueError("plot_history: the history is empty; train at least one epoch first")
    # No matplotlib.use(): a bare Figure renders PNG with Agg on savefig, and switching the global backend
    # would break pyplot in a notebook (its inline backend).
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend

    epochs = [h["epoch"] for h in history]

    def series(key, scale=1.0):
        return [h[key] * scale if h.get(key) is not None else float("nan") for h in history]

    fig = Figure(figsize=(12, 3.6), dpi=100)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    ax_loss.plot(epochs, series("train_loss"), "o-", label="train", ms=3)
    ax_loss.plot(epochs, series("val_loss"), "s-", label="validation", ms=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    ax_acc.plot(epochs, series("train_top1", 100), "o-", label="train (running, augmented)", ms=3)
    ax_acc.plot(epochs, series("val_top1", 100), "s-", label="validation", ms=3)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("top-1 accuracy (%)")
    ax_acc.legend()
    ax_lr.plot(epochs, series("lr"), "o-", color="tab:gray", ms=3)
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return path
