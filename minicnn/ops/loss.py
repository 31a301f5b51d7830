"""Softmax cross-entropy: the loss and its gradient with respect to the logits in one pass."""
from __future__ import annotations

from .. import backend
from ._checks import check_float_array
from .activation import log_softmax

__all__ = ["softmax_cross_entropy"]


def softmax_cross_entropy(logits, labels, name="softmax_cross_entropy"):
    """Mean cross-entropy of integer labels under softmax(logits).

    logits: (N, K) float, labels: (N,) int in [0, K) -> (loss: float scalar array, dlogits: (N, K)).
    dlogits = (softmax(logits) - onehot(labels)) / N. Stable for logits of +-1e4 (log-sum-exp with max shift).
    """
    xp = backend.xp(logits)
    check_float_array(logits, 2, name, what="logits", layout="(N, classes)")
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
