"""Softmax cross-entropy: the loss and its gradient with respect to the logits in one pass."""
from __future__ import annotations

from .. import backend
from ._checks import check_float_array
from .activation import log_softmax

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(logits, labels, name="softmax_cross_entropy"):
    """Mean cross-entropy of integer labels under softmax(logits).

    logits: (N, K) float32 or float64, labels: (N,) int in [0, K) -> (loss: float scalar array, dlogits: (N, K)).
    dlogits = (softmax(logits) - onehot(labels)) / N. Stable for logits of +-1e4 (log-sum-exp with max shift).

    Unlike the ops and layers, which pass NaN and inf through and accept an empty batch, the loss refuses both:
    the mean over N = 0 rows does not exist, and NaN logits mean a diverged network, which training must stop on.
    """
    xp = backend.xp(logits)
    check_float_array(logits, 2, name, what="logits", layout="(N, classes)")
    if logits.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name}: logits must be float32 or float64, got dtype {logits.dtype}")
    if logits.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty (logits of shape {tuple(logits.shape)}); a mean loss needs "
                         f"at least one row")
    if logits.shape[1] == 0:
        raise ValueError(f"{name}: logits of shape {tuple(logits.shape)} have no classes")
    labels = xp.asarray(labels)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"{name}: labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    N, K = logits.shape
    if N and (int(labels.min()) < 0 or int(labels.max()) >= K):
        raise ValueError(f"{name}: labels must lie in [0, {K}), got range [{int(labels.min())}, {int(labels.max())}]")
    if not bool(xp.isfinite(logits).all()):
        raise ValueError(f"{name}: logits contain NaN or inf (the network diverged, or its input did)")
    logp = log_softmax(logits, axis=1)
    rows = xp.arange(N)
    loss = -logp[rows, labels].mean()
    dlogits = xp.exp(logp)
    dlogits[rows, labels] -= 1
    dlogits /= N
    return loss, dlogits
