"""Linear probes: how linearly separable the classes are in each layer's features (ZF Table 7, in small).

ZF train a linear SVM or softmax on top of fixed features from layers 1-7 and find accuracy rising with
depth. ``linear_probes`` does the same for any chosen layers (and the raw pixels), with scikit-learn's
``LinearSVC`` and multinomial ``LogisticRegression`` on standardised features; scikit-learn is imported here only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embedding import layer_codes
from .plots import figure

__all__ = ["ProbeResult", "linear_probes", "plot_probes"]


@dataclass
class ProbeResult:
    """layers: names ("input" for pixels); dims: feature sizes; svm, softmax: test accuracies (fractions)."""
    layers: list
    dims: list
    svm: list
    softmax: list


def _pool(codes, max_dim):
    """Average neighbouring features down to at most ``max_dim`` (keeps probes fast on wide layers)."""
    D = codes.shape[1]
    if D <= max_dim:
        return codes
    groups = -(-D // max_dim)
    pad = groups * max_dim - D
    padded = np.pad(codes, ((0, 0), (0, pad)))
    return padded.reshape(len(codes), max_dim, groups).mean(axis=2)


def linear_probes(net, train_x, train_y, test_x, test_y, layers, include_input=True, max_dim=4096, C=1.0, seed=0):
    """Fit a linear SVM and a softmax classifier on each layer's (flattened) features of the training images
    and report test accuracy. Returns a ``ProbeResult``. Features wider than ``max_dim`` are averaged in
    neighbouring groups first (documented loss of detail, for speed)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC
    except ImportError:
        raise ImportError('linear_probes needs scikit-learn: pip install "minicnn[data]"') from None
    names, dims, svm, soft = [], [], [], []
    sources = ([("input", train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1))] if include_input else [])
    for layer in layers:
        sources.append((layer, None, None))
    for name, ftr, fte in sources:
        if ftr is None:
            ftr, fte = layer_codes(net, train_x, name), layer_codes(net, test_x, name)
        dims.append(int(ftr.shape[1]))
        ftr, fte = _pool(ftr, max_dim), _pool(fte, max_dim)
        scaler = StandardScaler().fit(ftr)
        ftr, fte = scaler.transform(ftr), scaler.transform(fte)
        svm.append(float(LinearSVC(C=C, dual="auto", max_iter=1000, random_state=seed).fit(ftr, train_y)
                         .score(fte, test_y)))
        soft.append(float(LogisticRegression(C=C, max_iter=300).fit(ftr, train_y).score(fte, test_y)))
        names.append(name)
    return ProbeResult(names, dims, svm, soft)


def plot_probes(result):
    """Test accuracy of the linear SVM and the softmax probe per layer."""
    fig = figure(7, 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(result.layers))
    ax.plot(x, 100 * np.asarray(result.svm), "o-", label="linear SVM")
    ax.plot(x, 100 * np.asarray(result.softmax), "s-", label="softmax")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{l}\n({d})" for l, d in zip(result.layers, result.dims)], fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("Linear probes on each layer's features (ZF Table 7 in small)", fontsize=9)
    return fig
