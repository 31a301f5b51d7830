"""Linear probes: how linearly separable the classes are in each layer's features (ZF Table 7, in small).

ZF train a linear SVM or softmax on top of fixed features from layers 1-7 and find accuracy rising with
depth. ``linear_probes`` does the same for any chosen layers (and the raw pixels), on standardised features, with
any of three linear classifiers: ``"svm"`` (scikit-learn's ``LinearSVC``), ``"softmax"`` (multinomial
``LogisticRegression``) and ``"ridge"`` (least squares onto one-hot labels in closed form, no scikit-learn: one
linear solve per layer, fast enough for the default gallery). scikit-learn is imported here only, when asked for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embedding import layers_codes
from .plots import figure

__all__ = ["ProbeResult", "linear_probes", "plot_probes"]


METHODS = ("svm", "softmax", "ridge")


@dataclass
class ProbeResult:
    """layers: names ("input" for pixels); dims: feature sizes; svm, softmax, ridge: test accuracies (fractions)
    per layer, None for a method that was not run."""
    layers: list
    dims: list
    svm: list | None
    softmax: list | None
    ridge: list | None = None

    def accuracies(self):
        """{method: accuracies} for the methods that were run, in ``METHODS`` order."""
        return {m: getattr(self, m) for m in METHODS if getattr(self, m) is not None}


def ridge_classifier_accuracy(ftr, ytr, fte, yte, lam=10.0):
    """Test accuracy of a ridge-regression classifier: W = (A^T A + lam I)^-1 A^T Y with A the training features
    (N, D) plus a bias column and Y the one-hot labels (N, K); the prediction is argmax of [F 1] W."""
    a = np.hstack([ftr, np.ones((len(ftr), 1))])
    b = np.hstack([fte, np.ones((len(fte), 1))])
    k = int(max(ytr.max(), yte.max())) + 1
    Y = np.eye(k)[ytr]
    W = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ Y)
    return float(((b @ W).argmax(axis=1) == yte).mean())


def _pool(codes, max_dim):
    """Average neighbouring features down to at most ``max_dim`` (keeps probes fast on wide layers)."""
    D = codes.shape[1]
    if D <= max_dim:
        return codes
    groups = -(-D // max_dim)
    pad = groups * max_dim - D
    padded = np.pad(codes, ((0, 0), (0, pad)))
    return padded.reshape(len(codes), max_dim, groups).mean(axis=2)


def linear_probes(net, train_x, train_y, test_x, test_y, layers, include_input=True, max_dim=4096, C=1.0, seed=0,
                  methods=("svm", "softmax"), ridge_lambda=10.0):
    """Fit linear classifiers (``methods``, from :data:`METHODS`) on each layer's (flattened, standardised) features
    of the training images and report test accuracy. Returns a ``ProbeResult``. Features wider than ``max_dim`` are
    averaged in neighbouring groups first (documented loss of detail, for speed). C: the SVM's and softmax's inverse
    regularisation; ridge_lambda: the ridge classifier's penalty."""
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"linear_probes: methods must be a non-empty subset of {METHODS}, got {methods!r}")
    if "svm" in methods or "softmax" in methods:
        try:
            from sklearn.linear_model import LogisticRegression
            from sklearn.svm import LinearSVC
        except ImportError:
            raise ImportError('linear_probes: "svm" and "softmax" need scikit-learn: pip install "minicnn[data]" '
                              '(methods=("ridge",) does not)') from None
    train_y, test_y = np.asarray(train_y).astype(np.int64), np.asarray(test_y).astype(np.int64)
    names, dims = [], []
    acc = {m: [] for m in methods}
    sources = ([("input", train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1))] if include_input else [])
    if layers:
        codes_tr, codes_te = layers_codes(net, train_x, layers), layers_codes(net, test_x, layers)
        sources += [(layer, codes_tr[layer], codes_te[layer]) for layer in codes_tr]
    for name, ftr, fte in sources:
        dims.append(int(ftr.shape[1]))
        ftr, fte = _pool(np.asarray(ftr, np.float64), max_dim), _pool(np.asarray(fte, np.float64), max_dim)
        mu, sd = ftr.mean(axis=0), ftr.std(axis=0) + 1e-6        # standardised on the training features
        ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
        if "svm" in methods:
            acc["svm"].append(float(LinearSVC(C=C, dual="auto", max_iter=1000, random_state=seed).fit(ftr, train_y)
                                    .score(fte, test_y)))
        if "softmax" in methods:
            acc["softmax"].append(float(LogisticRegression(C=C, max_iter=300).fit(ftr, train_y).score(fte, test_y)))
        if "ridge" in methods:
            acc["ridge"].append(ridge_classifier_accuracy(ftr, train_y, fte, test_y, ridge_lambda))
        names.append(name)
    return ProbeResult(names, dims, acc.get("svm"), acc.get("softmax"), acc.get("ridge"))


LABELS = {"svm": ("o-", "linear SVM"), "softmax": ("s-", "softmax"), "ridge": ("d-", "ridge (least squares)")}


def plot_probes(result):
    """Test accuracy of each probe per layer."""
    fig = figure(7, 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(result.layers))
    for method, values in result.accuracies().items():
        style, label = LABELS[method]
        ax.plot(x, 100 * np.asarray(values), style, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{l}\n({d})" for l, d in zip(result.layers, result.dims)], fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("Linear probes on each layer's features (ZF Table 7 in small)", fontsize=9)
    return fig
