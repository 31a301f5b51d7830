# %% [markdown]
# # 01 · Backpropagation through a convolution
#
# **What this notebook teaches.** A convolutional layer is a weighted moving sum. Its backward pass is two more
# moving sums: the weight gradient correlates the input with the output gradient, and the input gradient
# correlates the (zero-padded, for strides dilated) output gradient with the *flipped* filters. We derive both,
# check them against `minicnn.ops.conv2d_backward` and against central differences, then draw how `im2col`
# turns the whole layer into one matrix product and confirm that the naive loop and the im2col version agree.
#
# **What you need.** NumPy indexing and the chain rule. Shapes follow the package notation:
# `x` is `(N, C, H, W)`, weights `W` are `(F, C, kh, kw)`, output `y` is `(N, F, oh, ow)` with
# $o_h = \lfloor (H + 2p_h - k_h)/s_y \rfloor + 1$.
#
# **Scale.** `MINICNN_NB_SCALE` (default 1) scales the sizes of the timing experiment and the number of random
# configurations; the default runs in seconds on a laptop CPU.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import minicnn
from minicnn import ops
from minicnn.gradcheck import numerical_gradient, relative_error

SCALE = float(os.environ.get("MINICNN_NB_SCALE", "1"))
# The readable CPU path: every op here runs the NumPy code in minicnn/ops/ that this notebook explains, so a
# breakpoint or a print placed there is hit (the default fast path gives the same numbers from C loops).
minicnn.cpu_path("readable")
rng = np.random.default_rng(0)
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest"})
print(f"scale {SCALE}")

# %% [markdown]
# ## 1. The forward pass: a weighted moving sum
#
# For one image, with the input zero-padded to $\tilde x$ and strides $s_y, s_x$:
#
# $$y_{f,i,j} \;=\; b_f + \sum_{c=0}^{C-1}\sum_{u=0}^{k_h-1}\sum_{v=0}^{k_w-1} W_{f,c,u,v}\;\tilde x_{c,\;s_y i+u,\;s_x j+v}.$$
#
# Every output pixel reads one window of the input through the same weights. Deep-learning "convolution" is this
# *cross-correlation*: the kernel is not flipped in the forward pass. Below, a vertical-edge filter slides over an
# image of a bright square; the framed window produces the framed output value.

# %%
img = np.zeros((1, 1, 10, 10))
img[0, 0, 3:8, 2:7] = 1.0                              # a bright square
edge = np.array([[[[1.0, 0.0, -1.0]] * 3]])           # (F=1, C=1, 3, 3): responds to left-to-right darkening
y, _ = ops.conv2d_forward(img, edge)
y_naive = ops.conv2d_forward_naive(img, edge)
assert np.allclose(y, y_naive)

i, j = 3, 5                                            # an output position on the square's right edge
window = img[0, 0, i:i + 3, j:j + 3]
assert np.isclose(y[0, 0, i, j], (edge[0, 0] * window).sum())

fig, ax = plt.subplots(1, 3, figsize=(10, 3.4))
ax[0].imshow(img[0, 0], cmap="gray"); ax[0].set_title("input x (10x10)")
ax[0].add_patch(Rectangle((j - .5, i - .5), 3, 3, fill=False, ec="tab:red", lw=2))
ax[1].imshow(edge[0, 0], cmap="RdBu_r", vmin=-1, vmax=1); ax[1].set_title("kernel W (3x3)")
for (u, v), w in np.ndenumerate(edge[0, 0]):
    ax[1].text(v, u, f"{w:+.0f}", ha="center", va="center", color="w" if w else "k", fontsize=12)
im = ax[2].imshow(y[0, 0], cmap="RdBu_r", vmin=-3, vmax=3); ax[2].set_title("y = x ⋆ W (8x8)")
ax[2].add_patch(Rectangle((j - .5, i - .5), 1, 1, fill=False, ec="tab:red", lw=2))
fig.colorbar(im, ax=ax[2], fraction=0.046)
for a in ax: a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()
print(f"y[{i},{j}] = sum(W * window) = {y[0, 0, i, j]:+.1f}")

# %% [markdown]
# ## 2. The two gradients, derived
#
# Let $L$ be the loss and $\delta_{f,i,j} = \partial L/\partial y_{f,i,j}$ the upstream gradient (`dy`). The forward
# formula is linear in $W$ and in $\tilde x$, so each gradient collects, over all outputs that used a quantity,
# $\delta$ times whatever multiplied it.
#
# **Weights.** $W_{f,c,u,v}$ multiplies $\tilde x_{c,\,s_y i+u,\,s_x j+v}$ in output $(f,i,j)$, for every $i,j$
# (and every image $n$):
#
# $$\frac{\partial L}{\partial W_{f,c,u,v}} = \sum_{n}\sum_{i,j} \delta_{n,f,i,j}\;\tilde x_{n,c,\;s_y i+u,\;s_x j+v},
# \qquad \frac{\partial L}{\partial b_f} = \sum_{n,i,j}\delta_{n,f,i,j}.$$
#
# For stride 1 this is the cross-correlation of the input with the output gradient: $\delta$ plays the kernel
# and slides over $\tilde x$. (For stride $s$, $\delta$ is first *dilated*: $s-1$ zeros between its entries.)
#
# **Input.** Pixel $\tilde x_{c,a,b}$ is read by output $(f,i,j)$ through tap $(u,v) = (a - s_y i,\; b - s_x j)$
# whenever that tap lies in the kernel:
#
# $$\frac{\partial L}{\partial \tilde x_{c,a,b}} = \sum_{f}\sum_{u,v} W_{f,c,u,v}\;\delta_{f,\;(a-u)/s_y,\;(b-v)/s_x},$$
#
# counting only terms where the indices of $\delta$ are integers in range. Take stride 1 and pad $\delta$ with
# $k-1$ zeros on every side ($\hat\delta_{m,n} = \delta_{m-k_h+1,\,n-k_w+1}$); substituting
# $u' = k_h-1-u$, $v' = k_w-1-v$ gives
#
# $$\frac{\partial L}{\partial \tilde x_{c,a,b}} = \sum_{f}\sum_{u',v'} \underbrace{W_{f,c,\;k_h-1-u',\;k_w-1-v'}}_{\text{flipped filter}}\;\hat\delta_{f,\;a+u',\;b+v'} ,$$
#
# again a cross-correlation, now of the padded output gradient with the filters **rotated by 180°** and with the
# roles of $f$ and $c$ exchanged (the kernel is $W^{\text{flip}}_{c,f} $, of shape `(C, F, kh, kw)`). For stride
# $s$, dilate $\delta$ first; rows of $\tilde x$ that no window reached (when $s$ does not divide $H+2p-k$) get zero.
# Finally crop the padding $p$ away: $\partial L/\partial x$ is the centre of $\partial L/\partial \tilde x$.
#
# Why the flip? Seen from one output, the backward pass *scatters*: $\delta_{f,i,j}$ stamps a copy of $W_f$ onto
# its window. Seen from one input pixel, it *gathers* those stamps, and reading a stamped kernel from the pixel's
# point of view runs over it backwards. The picture shows both views for a single non-zero $\delta$.

# %%
W_asym = np.array([[[[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, -1.0]]]])   # asymmetric, so a flip shows
x0 = rng.standard_normal((1, 1, 7, 7))
y0, cache0 = ops.conv2d_forward(x0, W_asym)
dy_impulse = np.zeros_like(y0)
dy_impulse[0, 0, 2, 1] = 1.0                               # one output pixel: window rows 2..4, cols 1..3
dx_impulse, _, _ = ops.conv2d_backward(dy_impulse, cache0)
assert np.array_equal(dx_impulse[0, 0, 2:5, 1:4], W_asym[0, 0])   # scatter: W itself lands on the window
assert np.count_nonzero(dx_impulse) == np.count_nonzero(W_asym)

fig, ax = plt.subplots(1, 4, figsize=(12, 3.2))
panels = [(W_asym[0, 0], "W"), (W_asym[0, 0, ::-1, ::-1], "W rotated 180° (gather kernel)"),
          (dy_impulse[0, 0], "dy: one output pixel"), (dx_impulse[0, 0], "dx = conv2d_backward(dy)")]
for a, (arr, title) in zip(ax, panels):
    a.imshow(arr, cmap="RdBu_r", vmin=-3, vmax=3); a.set_title(title, fontsize=10)
    for (r, c), v in np.ndenumerate(arr):
        if v: a.text(c, r, f"{v:g}", ha="center", va="center")
    a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()

# %% [markdown]
# Now the general case, with channels, filters, stride and padding. The two functions below implement the derived
# formulas with nothing but `conv2d_forward` (cross-correlation), padding and dilation, and are compared with
# minicnn's `conv2d_backward` and with float64 central differences of $\sum y \cdot \delta$ for a random $\delta$.

# %%
def dilate(dy, stride, extra=(0, 0)):
    """Insert stride-1 zeros between the entries of dy (N, F, oh, ow); append `extra` zero rows/cols at the end."""
    (sy, sx), (ey, ex) = stride, extra
    N, F, oh, ow = dy.shape
    out = np.zeros((N, F, (oh - 1) * sy + 1 + ey, (ow - 1) * sx + 1 + ex), dtype=dy.dtype)
    out[:, :, :(oh - 1) * sy + 1:sy, :(ow - 1) * sx + 1:sx] = dy
    return out


def grads_by_correlation(x, W, dy, stride, pad):
    """dx and dW of a strided, padded convolution, as correlations (section 2)."""
    (sy, sx), (ph, pw) = stride, pad
    F, C, kh, kw = W.shape
    N, _, H, Wd = x.shape
    oh, ow = dy.shape[2:]
    rest = (H + 2 * ph - kh - (oh - 1) * sy, Wd + 2 * pw - kw - (ow - 1) * sx)  # rows/cols no window reached
    d = dilate(dy, stride, rest)
    # input gradient: pad by k-1, correlate with the 180°-rotated filters with F and C swapped, crop the padding
    W_flip = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy()          # (C, F, kh, kw)
    d_pad = np.pad(d, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    dx_tilde, _ = ops.conv2d_forward(d_pad, W_flip)                      # (N, C, H + 2ph, W + 2pw)
    dx = dx_tilde[:, :, ph:ph + H, pw:pw + Wd]
    # weight gradient: correlate the padded input with the dilated dy; images play the channel axis
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    d_valid = d[:, :, :d.shape[2] - rest[0], :d.shape[3] - rest[1]]    # drop the appended zeros again
    dW_t, _ = ops.conv2d_forward(x_pad.transpose(1, 0, 2, 3).copy(), d_valid.transpose(1, 0, 2, 3).copy())
    dW = dW_t.transpose(1, 0, 2, 3)[:, :, :kh, :kw]                      # (F, C, kh, kw); taps >= k do not exist
    return dx, dW


cases = [dict(N=2, C=3, F=4, H=7, W=6, k=(3, 3), stride=(1, 1), pad=(0, 0)),
         dict(N=2, C=2, F=3, H=8, W=7, k=(3, 2), stride=(2, 1), pad=(1, 0)),
         dict(N=1, C=2, F=2, H=9, W=9, k=(5, 5), stride=(2, 2), pad=(2, 2)),
         dict(N=1, C=1, F=2, H=8, W=8, k=(3, 3), stride=(3, 3), pad=(1, 1))]
print(f"{'case':<42} {'dx vs minicnn':>14} {'dW vs minicnn':>14} {'dx vs numeric':>14} {'dW vs numeric':>14}")
for cfg in cases:
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"]))
    W = rng.standard_normal((cfg["F"], cfg["C"], *cfg["k"]))
    b = rng.standard_normal(cfg["F"])
    y, cache = ops.conv2d_forward(x, W, b, cfg["stride"], cfg["pad"])
    dy = rng.standard_normal(y.shape)                                  # random upstream gradient (see notebook 03)
    dx_ref, dW_ref, db_ref = ops.conv2d_backward(dy, cache)
    dx, dW = grads_by_correlation(x, W, dy, cfg["stride"], cfg["pad"])
    f = lambda: ops.conv2d_forward(x, W, b, cfg["stride"], cfg["pad"])[0]
    dx_num, dW_num = numerical_gradient(f, x, dy), numerical_gradient(f, W, dy)
    errs = [relative_error(dx, dx_ref), relative_error(dW, dW_ref),
            relative_error(dx_ref, dx_num), relative_error(dW_ref, dW_num)]
    assert errs[0] < 1e-12 and errs[1] < 1e-12, errs       # the formulas are minicnn's backward, up to rounding
    assert errs[2] < 1e-7 and errs[3] < 1e-7, errs         # and both agree with central differences
    assert np.allclose(db_ref, dy.sum(axis=(0, 2, 3)))
    label = f"{cfg['C']}->{cfg['F']} k{cfg['k']} s{cfg['stride']} p{cfg['pad']} on {cfg['H']}x{cfg['W']}"
    print(f"{label:<42} " + " ".join(f"{e:>14.1e}" for e in errs))

# %% [markdown]
# ## 3. im2col: the whole layer as one matrix product
#
# The sum in the forward formula is a dot product between the flattened filter $W_f$ (length $C k_h k_w$) and the
# flattened window. `im2col` copies every window into a column of a matrix `cols` of shape
# $(C k_h k_w,\; N o_h o_w)$; then all filters on all windows are one GEMM:
#
# $$Y = W_{\text{mat}}\,\text{cols},\qquad W_{\text{mat}} \in \mathbb{R}^{F\times C k_h k_w},\; Y \in \mathbb{R}^{F \times N o_h o_w}.$$
#
# The backward pass follows from the matrix form: $dW_{\text{mat}} = dY\,\text{cols}^\top$ and
# $d\,\text{cols} = W_{\text{mat}}^\top dY$; then `col2im`, the adjoint of `im2col`, adds every entry of
# $d\,\text{cols}$ back onto the pixel it was copied from. A pixel that sits in several windows receives several
# contributions: that sum is the scatter of section 2. The left panel shows a 4x4 image with its pixels numbered;
# the middle panel shows `cols` for a 3x3 kernel at stride 1 (each column is one window, the framed column is
# the framed window); the right panel shows `col2im` of a matrix of ones, which counts the windows covering each
# pixel.

# %%
x_num = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
cols = ops.im2col(x_num, 3, stride=1, pad=0)                 # (1*3*3, 1*2*2)
assert cols.shape == (9, 4)
assert np.array_equal(cols[:, 3], x_num[0, 0, 1:4, 1:4].ravel())     # column 3 = window at (1, 1)
def col2im_of_ones(shape, k, stride, pad):
    n_cols = ops.im2col(np.zeros(shape), k, stride, pad).shape
    return ops.col2im(np.ones(n_cols), shape, k, stride, pad)

coverage = col2im_of_ones((1, 1, 7, 7), 3, stride=1, pad=1)
coverage_s2 = col2im_of_ones((1, 1, 7, 7), 3, stride=2, pad=0)

fig, ax = plt.subplots(1, 4, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 0.7, 1, 1]})
ax[0].imshow(x_num[0, 0], cmap="YlGnBu", vmin=-12, vmax=30)
for (r, c), v in np.ndenumerate(x_num[0, 0]): ax[0].text(c, r, f"{v:.0f}", ha="center", va="center")
ax[0].add_patch(Rectangle((0.5, 0.5), 3, 3, fill=False, ec="tab:red", lw=2)); ax[0].set_title("x (4x4), window (1,1)")
ax[1].imshow(cols, cmap="YlGnBu", vmin=-12, vmax=30, aspect="auto")
for (r, c), v in np.ndenumerate(cols): ax[1].text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=9)
ax[1].add_patch(Rectangle((2.5, -0.5), 1, 9, fill=False, ec="tab:red", lw=2))
ax[1].set_title("cols (9x4)"); ax[1].set_xlabel("window (oy, ox)"); ax[1].set_ylabel("tap (ky, kx)")
ax[1].set_xticks(range(4), ["0,0", "0,1", "1,0", "1,1"]); ax[1].set_yticks(range(9), [f"{u},{v}" for u in range(3) for v in range(3)])
for a, cov, title in [(ax[2], coverage, "col2im(ones): 3x3, stride 1, pad 1"), (ax[3], coverage_s2, "3x3, stride 2")]:
    a.imshow(cov[0, 0], cmap="viridis", vmin=0, vmax=9); a.set_title(title, fontsize=10)
    for (r, c), v in np.ndenumerate(cov[0, 0]): a.text(c, r, f"{v:.0f}", ha="center", va="center", color="w" if v < 5 else "k", fontsize=8)
for a in (ax[0], ax[2], ax[3]): a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()
assert coverage[0, 0, 1:-1, 1:-1].min() == 9 and coverage[0, 0, 0, 0] == 4   # interior: 9 windows; corner: 4

# %% [markdown]
# `col2im` is the adjoint of `im2col`: $\langle \text{im2col}(x), c\rangle = \langle x, \text{col2im}(c)\rangle$
# for every $x$ and $c$. That identity is what makes $d\,\text{cols} \mapsto dx$ correct, and it is cheap to check.

# %%
for k, s, p in [(3, 1, 1), (3, 2, 0), (5, 2, 2), (2, 3, 1)]:
    x = rng.standard_normal((2, 3, 9, 8))
    c = rng.standard_normal(ops.im2col(x, k, s, p).shape)
    lhs, rhs = np.sum(ops.im2col(x, k, s, p) * c), np.sum(x * ops.col2im(c, x.shape, k, s, p))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs), (k, s, p, lhs, rhs)
    print(f"k={k} s={s} p={p}:  <im2col(x), c> = {lhs:+.6f}   <x, col2im(c)> = {rhs:+.6f}")

# %% [markdown]
# ## 4. Naive loop and im2col agree, and one is much faster
#
# `conv2d_forward_naive` and `conv2d_backward_naive` implement the formulas window by window. On random
# configurations they agree with the im2col versions to rounding error; the timing shows why frameworks use the
# GEMM (one large matrix product keeps BLAS busy; a Python loop over windows does not).

# %%
n_random = int(20 * SCALE)
worst = 0.0
for _ in range(n_random):
    N, C, F = rng.integers(1, 4, size=3)
    kh, kw = rng.integers(1, 6, size=2)
    sy, sx = rng.integers(1, 4, size=2)
    ph, pw = rng.integers(0, 3, size=2)
    H, Wd = rng.integers(max(kh, kw), 13, size=2)
    x = rng.standard_normal((N, C, H, Wd)); W = rng.standard_normal((F, C, kh, kw)); b = rng.standard_normal(F)
    y, cache = ops.conv2d_forward(x, W, b, (sy, sx), (ph, pw))
    dy = rng.standard_normal(y.shape)
    dx, dW, db = ops.conv2d_backward(dy, cache)
    dx_n, dW_n, db_n = ops.conv2d_backward_naive(dy, x, W, (sy, sx), (ph, pw))
    errs = [relative_error(y, ops.conv2d_forward_naive(x, W, b, (sy, sx), (ph, pw))),
            relative_error(dx, dx_n), relative_error(dW, dW_n), relative_error(db, db_n)]
    worst = max(worst, *errs)
assert worst < 1e-12
print(f"{n_random} random configurations: largest relative difference naive vs im2col = {worst:.1e}")

def best_of(fn, repeats=5):
    fn()                                                    # warm-up: first calls allocate and load code
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)

try:                                    # time per core: one BLAS thread (a shared machine makes threads noisy)
    from threadpoolctl import threadpool_limits
except ImportError:
    import contextlib
    threadpool_limits = lambda limits: contextlib.nullcontext()

sizes = [8, 16, 32, 64] + ([128] if SCALE >= 2 else [])
rows = []
for size in sizes:
    x = rng.standard_normal((8, 16, size, size)).astype(np.float32)
    W = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    with threadpool_limits(1):
        t_naive = best_of(lambda: ops.conv2d_forward_naive(x, W, pad=1))
        t_gemm = best_of(lambda: ops.conv2d_forward(x, W, pad=1))
    rows.append((size, t_naive, t_gemm))
print(f"{'input':>10} {'naive (ms)':>12} {'im2col (ms)':>12} {'ratio':>7}")
for size, tn, tg in rows:
    print(f"{'8x16x%dx%d' % (size, size):>10} {1e3 * tn:>12.2f} {1e3 * tg:>12.2f} {tn / tg:>7.1f}")

fig, ax = plt.subplots(figsize=(5, 3.4))
ax.plot([r[0] for r in rows], [1e3 * r[1] for r in rows], "o-", label="naive loop over windows")
ax.plot([r[0] for r in rows], [1e3 * r[2] for r in rows], "s-", label="im2col + one GEMM")
ax.set_xscale("log", base=2); ax.set_yscale("log"); ax.set_xlabel("image side (8 images, 16→32 channels, 3x3)")
ax.set_ylabel("forward time (ms)"); ax.legend(); ax.grid(alpha=.3); plt.tight_layout(); plt.show()

# %% [markdown]
# **Summary.** Forward: correlate input with filters. Backward to the weights: correlate input with the output
# gradient. Backward to the input: correlate the padded (and, for strides, dilated) output gradient with the
# 180°-rotated filters, channels and filters swapped. With im2col all three are matrix products, and `col2im`'s
# adding of overlapping windows is exactly the scatter the derivation predicts. Next: notebook 02 (pooling
# switches and the ReLU rules).

# %% [markdown]
# ## Exercises
#
# Each exercise is a function for you to write. The cell after it calls `check(...)`, which prints ✓ when your
# function is right and, when it is not, ✗ with what is wrong (which shape or entry, the relative error). A check
# never stops the notebook. Stuck after an honest try? `show_solution("01.col2im")` prints a reference answer.

# %%
from minicnn.exercises import check, show_solution

# %% [markdown]
# ### Exercise 1: write `col2im`
#
# `ops.im2col(x, k, stride, pad)` copies every $k\times k$ window of `x` (N, C, H, W) into a column of `cols`
# (C·k·k, N·oh·ow), rows ordered (c, ky, kx) and columns (n, oy, ox). Write its adjoint: add every entry of `cols`
# back onto the pixel it was copied from, and drop the padding. Section 3 shows the layout; a loop over the
# $k^2$ taps, each one strided slice, is enough.

# %%
# Exercise 01.col2im: col2im, the adjoint of im2col
def col2im(cols, x_shape, k, stride, pad):
    """cols (C*k*k, N*oh*ow) -> dx of shape x_shape = (N, C, H, W); a k x k kernel, one stride, one pad."""
    raise NotImplementedError("your code here")

# %%
check("01.col2im", col2im)

# %% [markdown]
# ### Exercise 2: the input gradient, with the flipped kernel
#
# For stride 1 and no padding, section 2 derived $\partial L/\partial x$ as a *full* correlation: pad `dy` with
# $k-1$ zeros on every side and correlate it with the filters rotated by 180°, filters and channels swapped.
# Write it with `ops.conv2d_forward` (a correlation) and NumPy slicing. The check compares it with central
# differences of $\sum y\cdot\delta$ for a random $\delta$, and tells you if you forgot the flip.

# %%
# Exercise 01.conv_dx: the input gradient with the flipped kernel
from minicnn import ops

def conv_dx(dy, W):
    """dy (N, F, oh, ow), W (F, C, kh, kw) -> dx (N, C, oh + kh - 1, ow + kw - 1), for stride 1 and no padding."""
    raise NotImplementedError("your code here")

# %%
check("01.conv_dx", conv_dx)

# %% [markdown]
# ### Exercise 3: AlexNet's conv1 before `summary`
#
# AlexNet's first layer takes a 227x227x3 image and applies 96 filters of 11x11 at stride 4 without padding. How
# large is its output, and how many parameters (weights and biases) does it hold? Work it out on paper, then write
# the general rule. The check tries AlexNet's, ZF's, VGG's and LeNet's first layers and one where the stride does
# not divide. Then compare with what `summary` prints.

# %%
# Exercise 01.conv_numbers: a layer's output size and parameter count
def conv_numbers(H, C, F, k, stride, pad):
    """A square H x H input with C channels, F filters of k x k -> (output side, number of parameters)."""
    raise NotImplementedError("your code here")

# %%
check("01.conv_numbers", conv_numbers)

# %%
from minicnn import Conv2D, Sequential                  # what the library says about that layer

Sequential([Conv2D(3, 96, 11, stride=4, name="conv1")]).summary((3, 227, 227));

# %% [markdown]
# ### Questions
#
# **Q1.** In section 2's table, the formulas agree with minicnn's backward to about $10^{-16}$ but with central
# differences only to about $10^{-10}$. Why the difference, and why is $10^{-10}$ still convincing?
#
# <details><summary>Answer</summary>
#
# The correlation formulas and `conv2d_backward` compute the same sums in a different order, so they differ only by
# float64 rounding ($\sim 10^{-16}$ relative). Central differences are an approximation: their truncation error is
# $O(\varepsilon^2)$ (zero here, because a convolution is linear) and their rounding error is about
# machine-epsilon $\times |f| / \varepsilon \approx 10^{-16}\cdot 10/10^{-6}$, i.e. $10^{-9}$–$10^{-10}$. A wrong
# formula (a missing flip, a wrong offset) gives an error of order 1, nine orders of magnitude away.
# </details>
#
# **Q2.** With a 3x3 kernel at stride 2, some pixels belong to one window, some to two, some to four (the right
# panel of section 3). What does that mean for the input gradient, and for the checkerboard artefacts that strided
# "transposed convolutions" are known for?
#
# <details><summary>Answer</summary>
#
# `col2im` adds one contribution per covering window, so even a constant `dy` gives an uneven `dx`: pixels on the
# shared rows and columns receive two or four times as much as the others. A transposed convolution (used to
# upsample in decoders and in the deconvnet) is exactly this backward pass, and when the kernel size is not a
# multiple of the stride the uneven coverage shows as a checkerboard pattern.
# </details>

