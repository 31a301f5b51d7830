# %% [markdown]
# # 03 · Testing gradients: done right, then by property
#
# **What this notebook teaches.** A hand-written backward pass is checked against central differences of its own
# forward pass. Three details decide whether that check means anything: **float64** (float32 differences are
# noise at the tolerance we need), a **random upstream gradient** (an all-ones gradient hides whole classes of
# bugs), and **inputs without ties** (max pooling and ReLU are not differentiable at ties and at 0, so a correct
# backward "fails" there). Then we let `hypothesis` draw layer configurations, and watch it catch, and shrink to a
# minimal example, a deliberately broken backward.
#
# **What you need.** Notebooks 01–02; `minicnn.gradcheck` (`numerical_gradient`, `check_op`, `relative_error`,
# `distinct_values`, `conv_configs`, `pool_configs`); hypothesis (a test dependency).
#
# **Scale.** `MINICNN_NB_SCALE` (default 1) multiplies the number of hypothesis examples.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import ops
from minicnn.gradcheck import (GRADCHECK_TOLERANCE, check_op, conv_configs, distinct_values, gradcheck_table,
                               numerical_gradient, pool_configs, relative_error)

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
N_EXAMPLES = max(5, int(25 * SCALE))
# The readable CPU path: every op here runs the NumPy code in minicnn/ops/ that this notebook explains, so a
# breakpoint or a print placed there is hit (the default fast path gives the same numbers from C loops).
minicnn.cpu_path("readable")
rng = np.random.default_rng(0)
plt.rcParams.update({"figure.dpi": 80})
# derandomize: the same examples every run; database=None: hypothesis writes nothing to disk
SETTINGS = dict(max_examples=N_EXAMPLES, deadline=None, derandomize=True, database=None)
print(f"scale {SCALE}: {N_EXAMPLES} hypothesis examples per property; tolerance {GRADCHECK_TOLERANCE:g}")

# %% [markdown]
# ## 1. What is compared
#
# A backward pass does not return a Jacobian; it returns a vector–Jacobian product. For an op $y = f(x)$ and an
# upstream gradient $\delta$ (shaped like $y$), `backward(δ)` must equal the gradient of the scalar
#
# $$s(x) = \sum_k y_k(x)\,\delta_k, \qquad \frac{\partial s}{\partial x_i} = \sum_k \delta_k \frac{\partial y_k}{\partial x_i} .$$
#
# The central difference $\big(s(x + \varepsilon e_i) - s(x - \varepsilon e_i)\big)/2\varepsilon$ has truncation error
# $O(\varepsilon^2)$ and rounding error $O(u/\varepsilon)$, with $u$ the unit roundoff ($6\cdot10^{-8}$ in float32,
# $1.1\cdot10^{-16}$ in float64). The best $\varepsilon$ balances the two near $u^{1/3}$, where the error is of order
# $u^{2/3}$: around $10^{-5}$ in float32 and $10^{-10}$ in float64. A tolerance of $10^{-6}$ is therefore out of
# reach in float32 whatever $\varepsilon$ is. The plot shows both regimes for a local response normalisation
# (LRN, a non-linear op; for a convolution, which is linear in $x$, the truncation error vanishes and only
# rounding is left). The measure is `relative_error`: the largest deviation divided by the
# largest gradient entry, $\max|a-n| / \max(\max|a|, \max|n|)$, which does not blow up where the gradient is 0.

# %%
def central_difference(f, x, dy, eps):
    """Like gradcheck.numerical_gradient, but in x's own dtype (numerical_gradient refuses float32 on purpose)."""
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + x.dtype.type(eps); plus = np.sum(f() * dy, dtype=x.dtype)
        flat[i] = old - x.dtype.type(eps); minus = np.sum(f() * dy, dtype=x.dtype)
        flat[i] = old
        grad.reshape(-1)[i] = (float(plus) - float(minus)) / (2 * eps)
    return grad

lrn = dict(n=3, k=1.0, alpha=1.0, beta=0.75)             # a non-linear op (a conv is linear in x: no truncation)
x64 = rng.standard_normal((2, 6, 3, 3))
dy64 = rng.standard_normal(x64.shape)
eps_grid = np.logspace(-10, -1, 19)
curves = {}
for dtype in (np.float32, np.float64):
    x, dy = x64.astype(dtype), dy64.astype(dtype)
    y, cache = ops.lrn_forward(x, **lrn)
    dx = ops.lrn_backward(dy, cache)
    f = lambda: ops.lrn_forward(x, **lrn)[0]
    curves[dtype.__name__] = [relative_error(dx, central_difference(f, x, dy, e)) for e in eps_grid]

best32, best64 = min(curves["float32"]), min(curves["float64"])
assert best32 > 10 * GRADCHECK_TOLERANCE      # float32 cannot pass a 1e-6 check at any eps
assert best64 < 1e-8                          # float64 passes with room to spare

fig, ax = plt.subplots(figsize=(6, 3.8))
for name, marker in [("float32", "o"), ("float64", "s")]:
    ax.loglog(eps_grid, curves[name], marker + "-", label=name)
ax.axhline(GRADCHECK_TOLERANCE, color="k", ls="--", lw=1, label="tolerance 1e-6")
ax.set_xlabel("ε"); ax.set_ylabel("relative error of dx (LRN)"); ax.legend(); ax.grid(alpha=.3)
ax.set_title("central differences: rounding (left) vs truncation (right)", fontsize=10)
plt.tight_layout(); plt.show()
print(f"best relative error: float32 {best32:.1e}, float64 {best64:.1e}")

# %% [markdown]
# ## 2. A random upstream gradient, not all ones
#
# **Softmax.** With $p = \mathrm{softmax}(z)$, the Jacobian is $\partial p_k/\partial z_i = p_k([k=i] - p_i)$, so
#
# $$\frac{\partial s}{\partial z_i} = \sum_k \delta_k\, p_k([k=i] - p_i) = p_i\Big(\delta_i - \sum_k p_k \delta_k\Big).$$
#
# A plausible bug subtracts the *plain* mean of $\delta$ instead of the $p$-weighted one: $p_i(\delta_i - \bar\delta)$.
# With $\delta = \mathbf 1$, both expressions are exactly zero, and so is the true gradient (the outputs of a softmax
# always sum to one, so $s \equiv 1$). An all-ones check cannot tell the right backward from the wrong one. A random
# $\delta$ can.

# %%
def softmax_forward(z):
    p = ops.softmax(z, axis=1)
    return p, p

def softmax_backward(dy, p):
    return p * (dy - (p * dy).sum(axis=1, keepdims=True))

def softmax_backward_broken(dy, p):
    return p * (dy - dy.mean(axis=1, keepdims=True))          # plain mean instead of the p-weighted mean

z = rng.standard_normal((4, 5))
p, _ = softmax_forward(z)
f = lambda: softmax_forward(z)[0]
print(f"{'upstream gradient':<20} {'backward':<8} {'max|analytic - numeric|':>24} {'relative error':>15}  verdict")
verdicts = {}
for dy_name, dy in [("all ones", np.ones_like(p)), ("random", rng.standard_normal(p.shape))]:
    numeric = numerical_gradient(f, z, dy)
    for bw_name, bw in [("correct", softmax_backward), ("broken", softmax_backward_broken)]:
        analytic = bw(dy, p)
        abs_err = np.abs(analytic - numeric).max()
        ok = np.allclose(analytic, numeric, rtol=GRADCHECK_TOLERANCE, atol=1e-8)
        verdicts[dy_name, bw_name] = ok
        print(f"{dy_name:<20} {bw_name:<8} {abs_err:>24.1e} {relative_error(analytic, numeric):>15.1e}  "
              f"{'pass' if ok else 'FAIL'}")
assert verdicts["all ones", "correct"] and verdicts["all ones", "broken"]       # all ones: the bug hides
assert verdicts["random", "correct"] and not verdicts["random", "broken"]      # random: the bug is caught

# %% [markdown]
# (With all ones the *relative* error is meaningless: both gradients are zero up to noise of $10^{-11}$, so the
# check compares noise with noise. That is one more reason not to use it.)
#
# **Convolution without the kernel flip.** Notebook 01 derived $\partial L/\partial x$ as a correlation of the
# padded $\delta$ with the 180°-rotated filters. Forgetting the rotation is a classic bug, and it is invisible
# whenever the test filters happen to be symmetric under rotation (a constant or centred-blob initialisation, for
# example). Random filters expose it.

# %%
def conv_forward(x, W):
    return ops.conv2d_forward(x, W, pad=1)

def make_conv_backward(flip):
    def backward(dy, cache):
        W = cache.W
        kh, kw = W.shape[2:]
        W_t = (W[:, :, ::-1, ::-1] if flip else W).transpose(1, 0, 2, 3).copy()   # (C, F, kh, kw)
        dy_pad = np.pad(dy, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
        dx_full, _ = ops.conv2d_forward(dy_pad, W_t)
        _, dW, _ = ops.conv2d_backward(dy, cache, need_dx=False)
        return dx_full[:, :, 1:-1, 1:-1], dW                                       # crop pad=1
    return backward

x = rng.standard_normal((2, 2, 6, 6))
W_random = rng.standard_normal((3, 2, 3, 3))
W_symmetric = W_random + W_random[:, :, ::-1, ::-1]          # invariant under a 180° rotation
results = {}
for w_name, W in [("symmetric filters", W_symmetric), ("random filters", W_random)]:
    for bw_name, flip in [("with flip", True), ("no flip (bug)", False)]:
        results[w_name, bw_name] = check_op(conv_forward, make_conv_backward(flip), [x, W], wrt=(0, 1),
                                            rng=np.random.default_rng(1))
        print(f"{w_name:<18} {bw_name:<14} relative error {results[w_name, bw_name]:.1e}")
assert results["symmetric filters", "no flip (bug)"] < GRADCHECK_TOLERANCE     # hidden by symmetric filters
assert results["random filters", "no flip (bug)"] > 0.1                        # caught by random ones
assert results["random filters", "with flip"] < GRADCHECK_TOLERANCE

# %% [markdown]
# ## 3. Inputs without ties
#
# Max pooling is not differentiable where two entries of a window tie for the maximum, nor is a ReLU at 0. At a tie,
# $+\varepsilon$ makes the perturbed entry the winner and $-\varepsilon$ does not, so the central difference is
# $\tfrac12$ for *each* tied entry, while the backward (correctly, by convention) sends the whole gradient to the
# first maximum. A correct backward then fails the check. Images with flat regions, or integer-valued test data,
# are full of ties. `distinct_values` draws values that are all different and at least 0.05 apart (≫ ε), and never
# 0. The same backward passes on those.

# %%
pool_fwd = lambda x: ops.max_pool2d_forward(x, 2, 2)
relu_fwd = lambda x: ops.relu_forward(x)
relu_bwd = lambda dy, cache: ops.relu_backward(dy, cache)
tied = rng.integers(0, 3, size=(1, 2, 6, 6)).astype(np.float64)          # small integers: many ties
tied_relu = rng.integers(-1, 2, size=(2, 10)).astype(np.float64)          # many exact zeros
clean = distinct_values((1, 2, 6, 6), rng)
clean_relu = distinct_values((2, 10), rng)
assert len(np.unique(clean)) == clean.size and (clean != 0).all()
errors = {
    ("max pool 2x2", "ties"): check_op(pool_fwd, ops.max_pool2d_backward, [tied]),
    ("max pool 2x2", "distinct values"): check_op(pool_fwd, ops.max_pool2d_backward, [clean]),
    ("relu", "exact zeros"): check_op(relu_fwd, relu_bwd, [tied_relu]),
    ("relu", "distinct values"): check_op(relu_fwd, relu_bwd, [clean_relu]),
}
for (op, inp), e in errors.items():
    print(f"{op:<14} on {inp:<16} relative error {e:.1e}")
assert errors["max pool 2x2", "ties"] > 0.1 and errors["relu", "exact zeros"] > 0.1
assert errors["max pool 2x2", "distinct values"] < GRADCHECK_TOLERANCE
assert errors["relu", "distinct values"] < GRADCHECK_TOLERANCE

# %% [markdown]
# ## 4. Properties over configurations, with hypothesis
#
# Hand-picked shapes miss the corner that is wrong: a kernel wider than tall, stride larger than the kernel, padding
# on one axis only, a last window that does not fit. `hypothesis` draws configurations from a strategy
# (`conv_configs()` draws batch, channels, filters, image size, kernel, stride and padding, always with a non-empty
# output) and checks a property on each. The property here: the backward agrees with central differences,
# on tie-free float64 inputs, with a random upstream gradient, for every argument (x, W, b).

# %%
conv_errors, pool_errors = [], []

def conv_with_bias(x, W, b, stride, pad):
    return ops.conv2d_forward(x, W, b, stride, pad)

def conv_grads(dy, cache):
    return ops.conv2d_backward(dy, cache)

@settings(**SETTINGS)
@given(cfg=conv_configs(), seed=st.integers(0, 2**32 - 1))
def conv_backward_matches_central_differences(cfg, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"]))
    W = r.standard_normal((cfg["F"], cfg["C"], cfg["kh"], cfg["kw"]))
    b = r.standard_normal(cfg["F"])
    err = check_op(conv_with_bias, conv_grads, [x, W, b, cfg["stride"], cfg["pad"]], wrt=(0, 1, 2), rng=r)
    conv_errors.append((cfg, err))
    assert err < GRADCHECK_TOLERANCE, (cfg, err)

@settings(**SETTINGS)
@given(cfg=pool_configs(), seed=st.integers(0, 2**32 - 1))
def maxpool_backward_matches_central_differences(cfg, seed):
    r = np.random.default_rng(seed)
    x = distinct_values((cfg["N"], cfg["C"], cfg["H"], cfg["W"]), r)
    fwd = lambda x: ops.max_pool2d_forward(x, cfg["kernel"], cfg["stride"], cfg["pad"], cfg["ceil_mode"])
    err = check_op(fwd, ops.max_pool2d_backward, [x], rng=r)
    pool_errors.append((cfg, err))
    assert err < GRADCHECK_TOLERANCE, (cfg, err)

conv_backward_matches_central_differences()
maxpool_backward_matches_central_differences()
print(f"conv2d: {len(conv_errors)} configurations, worst relative error {max(e for _, e in conv_errors):.1e}")
print(f"max pool: {len(pool_errors)} configurations, worst relative error {max(e for _, e in pool_errors):.1e}")
print("e.g.", conv_errors[-1][0])

fig, ax = plt.subplots(figsize=(6.5, 3.6))
bins = np.arange(-16, 0.5, 0.5)
log_err = lambda errs: np.log10(np.maximum([e for _, e in errs], 1e-16))   # an exact 0 is drawn at 1e-16
ax.hist([log_err(conv_errors), log_err(pool_errors)], bins=bins,
        label=["conv2d (x, W, b)", "max pool (x)"], stacked=True)
ax.axvline(np.log10(GRADCHECK_TOLERANCE), color="k", ls="--", label="tolerance")
ax.set_xlim(-16.5, -3); ax.set_xlabel("log10 relative error (exact 0 drawn at -16)"); ax.set_ylabel("configurations")
ax.legend(loc="upper right")
ax.set_title("hypothesis-drawn configurations: all far below the tolerance", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 5. Hypothesis catches a broken backward, and shrinks it
#
# `col2im` must *add* each column entry onto its pixel, because a pixel shared by overlapping windows collects a
# contribution from each. Writing `=` instead of `+=` keeps only the last window's contribution. The bug is
# invisible whenever windows do not overlap (kernel 1, or stride ≥ kernel), which includes many hand-written test
# cases. Below, a conv backward built on such a `col2im`; hypothesis finds a failing configuration and then
# *shrinks* it to a minimal one, which reads like a bug report: the smallest overlap there is.

# %%
def col2im_overwrites(cols, x_shape, kernel, stride, pad):
    """col2im with the classic bug: `=` where overlapping windows must add (`+=`)."""
    N, C, H, W = x_shape
    (kh, kw), (sy, sx), (ph, pw) = kernel, stride, pad
    oh, ow = (H + 2 * ph - kh) // sy + 1, (W + 2 * pw - kw) // sx + 1
    cols6 = cols.reshape(C, kh, kw, N, oh, ow)
    dx_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for ky in range(kh):
        for kx in range(kw):
            dx_pad[:, :, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx] = \
                cols6[:, ky, kx].transpose(1, 0, 2, 3)                     # BUG: should be +=
    return dx_pad[:, :, ph:ph + H, pw:pw + W]

def conv_backward_broken(dy, cache):
    F = cache.W.shape[0]
    dy_rows = dy.transpose(1, 0, 2, 3).reshape(F, -1)
    dcols = cache.W.reshape(F, -1).T @ dy_rows
    return col2im_overwrites(dcols, cache.x_shape, cache.W.shape[2:], cache.stride, cache.pad)

def conv_x(x, W, stride, pad):
    return ops.conv2d_forward(x, W, None, stride, pad)

@settings(**SETTINGS)
@given(cfg=conv_configs(), seed=st.integers(0, 2**32 - 1))
def broken_backward_matches_central_differences(cfg, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"]))
    W = r.standard_normal((cfg["F"], cfg["C"], cfg["kh"], cfg["kw"]))
    err = check_op(conv_x, conv_backward_broken, [x, W, cfg["stride"], cfg["pad"]], wrt=(0,), rng=r)
    assert err < GRADCHECK_TOLERANCE, f"relative error {err:.2f}"

try:
    broken_backward_matches_central_differences()
    caught = None
except AssertionError as error:
    caught = error
assert caught is not None, "hypothesis should have caught the broken col2im"
print("hypothesis reports:", caught)
for note in getattr(caught, "__notes__", []):
    print(note)

# %% [markdown]
# The shrunk example has the smallest overlap there is: a two-tap kernel at stride 1 along one axis (so
# neighbouring windows share a pixel), the smallest image that allows two windows, one image, one channel and one
# filter. Everything hypothesis could remove without making the failure disappear, it removed.
#
# ## 6. Every layer, the same way
#
# `minicnn.gradcheck.check_layer` applies the same recipe to a whole layer (input and every parameter, on a float64
# copy), and `gradcheck_table` runs it over one or more configurations of every layer type; it is what the
# `minicnn gradcheck` command prints.

# %%
table = gradcheck_table(seed=0)
labels = [f"{row['layer']}  {row['config']}".strip() for row in table]
errs = np.array([row["error"] for row in table])
assert (errs < GRADCHECK_TOLERANCE).all()

fig, ax = plt.subplots(figsize=(8, 5))
ax.barh(range(len(errs)), errs, color="tab:blue")
ax.set_xscale("log"); ax.axvline(GRADCHECK_TOLERANCE, color="k", ls="--", label="tolerance 1e-6")
ax.set_yticks(range(len(errs)), labels, fontsize=8); ax.invert_yaxis()
ax.set_xlim(1e-13, 1e-4); ax.set_xlabel("relative error (input and parameter gradients)"); ax.legend(loc="lower right")
plt.tight_layout(); plt.show()

# %% [markdown]
# **Summary.** Check `backward(δ)` against central differences of $\sum y\cdot\delta$ in float64, with a random
# $\delta$ and random parameters, on inputs without ties; measure the error relative to the size of the gradient;
# then let hypothesis vary the configuration. Each of those choices caught a real bug above that the weaker
# choice missed. The test suite (`tests/`) applies exactly this recipe to every op and layer.

# %% [markdown]
# ## Exercises
#
# Write each function; the cell after it checks it (✓, or ✗ with what is wrong) without stopping the notebook.
# `show_solution("03.numerical_gradient")` prints a reference answer, for after an honest try.

# %%
from minicnn.exercises import check, show_solution

# %% [markdown]
# ### Exercise 1: a numerical gradient with central differences
#
# Write the tool this notebook is built on: the gradient of $s = \sum_k f()_k\,\delta_k$ with respect to every
# entry of `x`, by central differences (section 1). `f` takes no arguments and reads `x`, so perturb `x` **in
# place**, one entry at a time, and put each entry back. The check compares your result with the exact
# vector-Jacobian products of softmax and LRN, to $10^{-8}$, and tells you if you used a one-sided difference.

# %%
# Exercise 03.numerical_gradient: a numerical gradient with central differences
def numerical_gradient(f, x, dy, eps=1e-6):
    """Gradient of sum(f() * dy) with respect to the float64 array x (which f reads); x is restored afterwards."""
    raise NotImplementedError("your code here")

# %%
check("03.numerical_gradient", numerical_gradient)

# %% [markdown]
# ### Exercise 2: find the planted bug
#
# The function below is meant to return the gradient of the mean cross-entropy
# $L = -\frac1N\sum_n \log \mathrm{softmax}(z_n)_{y_n}$ with respect to the logits, $(p - \text{onehot}(y))/N$. It
# runs, returns the right shape, and is wrong. Find the bug with a gradient check (your `numerical_gradient` from
# exercise 1 on `ops.softmax_cross_entropy(logits, labels)[0]`, with `dy = 1.0`), then fix it in place.

# %%
# Exercise 03.planted_bug: find the planted bug
def softmax_cross_entropy_backward(logits, labels):
    """logits (N, K) float64, labels (N,) int -> dlogits (N, K), the gradient of the mean cross-entropy."""
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)       # shift for stability: softmax is unchanged by it
    p = np.exp(z)
    p /= p.sum(axis=0, keepdims=True)
    p[np.arange(N), labels] -= 1.0
    return p / N

# %%
check("03.planted_bug", softmax_cross_entropy_backward)

# %% [markdown]
# ### Questions
#
# **Q1.** A student checks max-pool backward (2x2 windows, stride 2) on `x = np.ones((1, 1, 4, 4))` and a random
# $\delta$, and gets a large relative error. Is the backward wrong?
#
# <details><summary>Answer</summary>
#
# Not necessarily: the check is. At a tie the maximum is not differentiable. Raising any one of the four equal
# entries by $\varepsilon$ makes it the winner (slope 1), lowering it leaves another winner (slope 0), so the central
# difference gives every entry of the window $\delta/2$, while the backward, by the convention "first maximum wins",
# sends all of $\delta$ to the first entry and nothing to the others. Neither is "the" derivative, which does not
# exist there. Test on inputs without ties (`distinct_values`, section 3), spaced much further apart than
# $\varepsilon$.
# </details>
#
# **Q2.** In section 1's plot, the float64 error *rises* again as $\varepsilon$ shrinks below about $10^{-5}$. Why,
# and why does it rise on the right as well?
#
# <details><summary>Answer</summary>
#
# On the left, $s(x\pm\varepsilon e_i)$ are two nearly equal numbers, each known to about $u\,|s|$ ($u \approx
# 10^{-16}$); their difference divided by $2\varepsilon$ carries an error of order $u|s|/\varepsilon$, which grows
# as $\varepsilon$ shrinks. On the right the truncation error of the central difference, of order
# $\varepsilon^2 |s'''|$, dominates. Their sum is smallest in between, near $u^{1/3} \approx 10^{-5}$.
# </details>
