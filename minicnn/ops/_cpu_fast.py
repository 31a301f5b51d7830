"""Fast CPU paths of conv2d, max pooling with switches and LRN: same results, fewer and cheaper passes.

The public ops (``ops/conv.py``, ``ops/pool.py``, ``ops/normalization.py``) keep their readable bodies; on NumPy
input they hand over to the functions here (``use(x)``), which compute the same thing. ``reference_paths()``
switches them off, which is how the tests compare each fast path with the readable one.

What each trick buys (2-core machine, float32; see benchmarks/RESULTS.md for the figures):

* Copies split over threads by channel or by sample (``_parallel.parallel_chunks``). NumPy releases the GIL
  inside copies and ufunc loops, so the copies around the GEMMs (im2col, col2im, layout transposes) and the
  whole of pooling and LRN use both cores, as BLAS does.
* col2im accumulates into a channel-major scratch (C, N, Hp, Wp), the same axis order as the column matrix
  (C, kh, kw, N, oh, ow): each tap is one ``+=`` of two like-ordered arrays, and the final crop is the one
  transpose into the NCHW output. The readable col2im adds a transposed view into a strided one per tap.
* The forward GEMM writes into a reused scratch (F, N*oh*ow); one pass then adds the bias *and* transposes to
  NCHW into the output (the readable path does them as two passes plus a copy).
* Temporaries that never leave an op (the transposed dy, the column gradient, pooling masks, LRN squares) live
  in reused scratch buffers: no fresh pages, so no page faults, on every call.
* Max pooling works on the valid part of each window tap instead of a -inf padded copy of the input, with
  ufuncs writing into ``out=``/``where=`` instead of boolean indexing; its backward adds ``dy`` where the switch
  matches with one masked ufunc per tap.
* LRN sums the channel window by shifted in-place adds (no padded copy), takes ``d**-0.75`` as two square roots
  (much cheaper than ``pow``) and caches the scale for the backward, which thus needs no power at all.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from ._parallel import blas_single_threaded, get_num_threads, parallel_chunks, scratch

__all__ = ["use", "reference_paths", "im2col_public", "conv2d_forward", "conv2d_backward",
           "max_pool2d_forward", "max_pool2d_backward", "lrn_forward", "lrn_backward", "channel_window_sum"]

_enabled = True
# Scratch buffers above this size are not kept between calls (a huge batch would otherwise pin its memory).
_SCRATCH_LIMIT = 64 << 20


def use(x):
    """True when the fast CPU path applies: a plain NumPy float array and fast paths not switched off."""
    return _enabled and type(x) is np.ndarray


@contextlib.contextmanager
def reference_paths():
    """Within this block the public ops run their readable bodies (for tests and for teaching)."""
    global _enabled
    old, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = old


def _temp(tag, shape, dtype):
    """A scratch buffer when small enough to keep, else a fresh array."""
    if int(np.prod(shape)) * np.dtype(dtype).itemsize <= _SCRATCH_LIMIT:
        return scratch(tag, shape, dtype)
    return np.empty(shape, dtype=dtype)


def _taps(kh, kw):
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx


# --- the stride-phase grid shared by convolution and pooling -------------------------------------------------

class _Grid:
    """Phase decomposition of a conv or pooling input, so that every window tap is one long contiguous run.

    The input padded (xp, ph/pw on top/left; with 0 for convolution, -inf for max pooling) is split by stride phase: P[qy, qx][a, b] =
    xp[a*sy + qy, b*sx + qx], each (Hq, Wq). Tap (ky, kx) of output (oy, ox) reads xp[oy*sy + ky, ox*sx + kx] =
    P[ky % sy, kx % sx][oy + ky//sy, ox + kx//sx], so over all outputs it reads the rows oy + ky//sy of one phase.
    Computing the outputs on an (oh, Wq) grid (columns ow..Wq-1 are junk, cropped at the end) turns that read
    into one flat run of oh*Wq elements per plane: each copy or ufunc pass then loops over N*C planes instead
    of N*C*oh short rows of ow elements -- the per-row overhead, not arithmetic, is what made im2col, col2im
    and pooling slow on small images. Convolution pays for it with Wq/ow more GEMM columns (junk, dropped).
    One extra -inf row keeps the last run of a tap with kx//sx > 0 inside the plane.
    """

    def __init__(self, x_shape, kernel, stride, pad, out):
        _, _, self.H, self.W = x_shape
        (self.kh, self.kw), (self.sy, self.sx), (self.ph, self.pw), (self.oh, self.ow) = kernel, stride, pad, out
        self.Hq = self.oh + (self.kh - 1) // self.sy + 1
        self.Wq = self.ow + (self.kw - 1) // self.sx
        self.L = self.oh * self.Wq
        self.phases = [(qy, qx) for qy in range(self.sy) for qx in range(self.sx)]
        # tap t -> (phase index, start of its run in the flattened phase)
        self.runs = [(qy * self.sx + qx, (ky // self.sy) * self.Wq + kx // self.sx)
                     for ky, kx in _taps(self.kh, self.kw) for qy, qx in [(ky % self.sy, kx % self.sx)]]

    def _blocks(self):
        """Per phase: the phase rows/columns that hold input pixels, and the input slices they come from."""
        for q, (qy, qx) in enumerate(self.phases):
            (a0, a1), (b0, b1) = _valid(qy, self.sy, self.ph, self.H, self.Hq), _valid(qx, self.sx, self.pw, self.W, self.Wq)
            if a0 == a1 or b0 == b1:
                continue
            i0, j0 = a0 * self.sy + qy - self.ph, b0 * self.sx + qx - self.pw
            rows = slice(i0, i0 + self.sy * (a1 - a0 - 1) + 1, self.sy)
            cols = slice(j0, j0 + self.sx * (b1 - b0 - 1) + 1, self.sx)
            yield q, (Ellipsis, slice(a0, a1), slice(b0, b1)), (Ellipsis, rows, cols)

    def split(self, a, fill, tag):
        """(..., H, W) -> phases (nq, ..., Hq*Wq) with ``fill`` where no input pixel lands."""
        lead = a.shape[:-2]
        P = _temp(tag, (len(self.phases),) + lead + (self.Hq, self.Wq), a.dtype)
        P.fill(fill)
        for q, inside, source in self._blocks():
            P[q][inside] = a[source]
        return P.reshape((len(self.phases),) + lead + (self.Hq * self.Wq,))

    def merge(self, P, out):
        """The inverse of split for the cells that hold input pixels: out (R, H, W) from phases (nq, R, Hq*Wq);
        input pixels beyond every window (stride > kernel, or the floor-mode remainder) get 0."""
        P = P.reshape(P.shape[:-1] + (self.Hq, self.Wq))
        if self.sy * self.Hq < self.ph + self.H or self.sx * self.Wq < self.pw + self.W:
            out.fill(0)
        for q, inside, source in self._blocks():
            out[source] = P[q][inside]

    def widen(self, a, fill, tag):
        """(R, oh, ow) -> (R, oh*Wq) on the output grid, ``fill`` in the junk columns."""
        g = _temp(tag, (a.shape[0], self.oh, self.Wq), a.dtype)
        g[:, :, self.ow:] = fill
        g[:, :, :self.ow] = a
        return g.reshape(a.shape[0], self.L)

    def crop(self, g, out):
        out[...] = g.reshape(g.shape[0], self.oh, self.Wq)[:, :, :self.ow]


# --- convolution -----------------------------------------------------------------------------------------------

# Images per GEMM: enough that the column matrix of one batch chunk is about this many bytes. The chunk's columns
# are written by im2col and read at once by the GEMM while still in the L3 cache, in a reused buffer; the whole
# batch's column matrix (131 MB for zfnet_small's conv2 at batch 128) would be fresh pages in DRAM on every call,
# and would stay in the cache until backward. Backward rebuilds a chunk's columns from the cached input.
_CHUNK_BYTES = 8 << 20


def _batches(N, bytes_per_image):
    """Batch chunks of about _CHUNK_BYTES of columns each, at least one per copy thread when N allows."""
    count = max(-(-N * bytes_per_image // _CHUNK_BYTES), get_num_threads())
    count = min(N, -(-count // get_num_threads()) * get_num_threads())      # a multiple of the thread count
    return [(N * i // count, N * (i + 1) // count) for i in range(count)]


def _over_chunks(chunks, do_chunk, elements):
    """Run ``do_chunk(n0, n1)`` for every batch chunk: in parallel, one single-threaded GEMM per thread, where
    threadpoolctl can limit the BLAS (see ``_parallel.blas_single_threaded``); else one after the other."""
    limit = blas_single_threaded() if get_num_threads() > 1 and len(chunks) > 1 else None
    if limit is None:
        for n0, n1 in chunks:
            do_chunk(n0, n1)
        return
    with limit:
        parallel_chunks(lambda a, b: [do_chunk(*chunks[i]) for i in range(a, b)], len(chunks), elements)


def _unfold(x, grid, kh, kw):
    """im2col of x (n, C, H, W) on the grid: scratch (C*kh*kw, n*Wq*oh), one contiguous run per (c, tap, image)."""
    n, C = x.shape[:2]
    cols = _temp("conv_cols", (C, kh, kw, n, grid.L), x.dtype)
    xt = x.transpose(1, 0, 2, 3)                       # (C, n, H, W) view: the column matrix's axis order

    def work(c0, c1):
        P = grid.split(xt[c0:c1], 0, "im2col_phases")
        for t, (q, start) in enumerate(grid.runs):
            cols[c0:c1, t // kw, t % kw] = P[q][:, :, start:start + grid.L]

    parallel_chunks(work, C, cols.size)
    return cols.reshape(C * kh * kw, n * grid.L)


def _fold(dcols, grid, kh, kw, dx):
    """col2im on the grid: dx (n, C, H, W) = the sum of every column entry onto its pixel."""
    n, C = dx.shape[:2]
    dcols5 = dcols.reshape(C, kh, kw, n, grid.L)
    dxt = dx.transpose(1, 0, 2, 3)

    def work(c0, c1):
        G = _temp("col2im_phases", (len(grid.phases), c1 - c0, n, grid.Hq * grid.Wq), dx.dtype)
        G.fill(0)
        for t, (q, start) in enumerate(grid.runs):
            G[q][:, :, start:start + grid.L] += dcols5[c0:c1, t // kw, t % kw]
        grid.merge(G, dxt[c0:c1])

    parallel_chunks(work, C, dcols.size)


def im2col_public(x, kernel, stride, pad):
    """The fast im2col in ``ops.im2col``'s layout (C*kh*kw, N*oh*ow), junk columns dropped: for tests."""
    kh, kw = kernel
    oh = (x.shape[2] + 2 * pad[0] - kh) // stride[0] + 1
    ow = (x.shape[3] + 2 * pad[1] - kw) // stride[1] + 1
    grid = _Grid(x.shape, kernel, stride, pad, (oh, ow))
    cols = _unfold(x, grid, kh, kw)
    wide = cols.reshape(cols.shape[0], x.shape[0], oh, grid.Wq)[:, :, :, :ow]
    return wide.copy().reshape(cols.shape[0], x.shape[0] * oh * ow)       # a copy: cols is scratch


def conv2d_forward(x, W, b, stride, pad, oh, ow):
    """y (N, F, oh, ow) and the grid, one GEMM per batch chunk; bias and NCHW layout in one pass."""
    N, C = x.shape[:2]
    F, _, kh, kw = W.shape
    grid = _Grid(x.shape, (kh, kw), stride, pad, (oh, ow))
    W2 = W.reshape(F, -1)
    y = np.empty((N, F, oh, ow), dtype=x.dtype)
    bias = None if b is None else b.reshape(1, F, 1, 1)

    def chunk(n0, n1):
        cols = _unfold(x[n0:n1], grid, kh, kw)
        rows = _temp("conv_fwd_rows", (F, cols.shape[1]), x.dtype)
        np.matmul(W2, cols, out=rows)                                           # the GEMM
        rows4 = rows.reshape(F, n1 - n0, oh, grid.Wq)

        def to_nchw(a, b_):                            # drop the junk columns, transpose, add the bias
            src = rows4[:, a:b_, :, :ow].transpose(1, 0, 2, 3)
            if bias is None:
                y[n0 + a:n0 + b_] = src
            else:
                np.add(src, bias, out=y[n0 + a:n0 + b_])

        parallel_chunks(to_nchw, n1 - n0, rows.size)

    _over_chunks(_batches(N, W2.shape[1] * grid.L * x.itemsize), chunk, F * N * grid.L)
    return y, grid


def conv2d_backward(dy, W, x, grid, need_dx, param_grads):
    """(dx, dW, db) as ``ops.conv2d_backward``, chunk by chunk of the batch, from the cached input x.

    dy goes onto the (F, n, oh, Wq) grid with zeros in the junk columns, so those columns add nothing to dW
    and their column gradient is exactly zero (col2im adds them harmlessly)."""
    N, F, oh, ow = dy.shape
    kh, kw = W.shape[2:]
    W2 = W.reshape(F, -1)
    K = W2.shape[1]
    dx = np.empty(x.shape, dtype=dy.dtype) if need_dx else None
    db = dy.sum(axis=(0, 2, 3)) if param_grads else None
    dW_parts = {}                                      # one partial dW per thread, summed at the end

    def chunk(n0, n1):
        rows = _temp("conv_bwd_dy", (F, n1 - n0, oh, grid.Wq), dy.dtype)

        def widen(f0, f1):
            rows[f0:f1, :, :, ow:] = 0
            rows[f0:f1, :, :, :ow] = dy[n0:n1, f0:f1].transpose(1, 0, 2, 3)

        parallel_chunks(widen, F, rows.size)
        rows2 = rows.reshape(F, -1)
        if param_grads:
            cols = _unfold(x[n0:n1], grid, kh, kw)
            part = dW_parts.get(threading.get_ident())
            if part is None:
                dW_parts[threading.get_ident()] = rows2 @ cols.T
            else:
                part += rows2 @ cols.T
        if need_dx:
            dcols = _temp("conv_bwd_dcols", (K, rows2.shape[1]), dy.dtype)
            np.matmul(W2.T, rows2, out=dcols)
            _fold(dcols, grid, kh, kw, dx[n0:n1])

    _over_chunks(_batches(N, K * grid.L * dy.itemsize), chunk, F * N * grid.L)
    dW = sum(dW_parts.values()).reshape(W.shape) if param_grads else None
    return dx, dW, db


# --- max pooling with switches ---------------------------------------------------------------------------------

def _valid(k, s, p, size, out):
    """For window tap k: the outputs o in [o0, o1) whose input index o*s + k - p lies inside [0, size)."""
    o0 = max(0, -((k - p) // s)) if k < p else 0          # ceil((p - k) / s)
    o1 = min(out, (size - 1 + p - k) // s + 1)
    return o0, max(o0, o1)


def max_pool2d_forward(x, kernel, stride, pad, out):
    """(y, switches) as ``ops.max_pool2d_forward``: taps in row-major order, a strictly greater value wins.

    On the phase grid (``_Grid``), per tap four unmasked ufunc passes (masked ``where=`` or boolean-index
    updates are ~10x slower): m = v > y;  y = fmax(y, v) (fmax skips NaN, as the strict comparison does);
    s = max(s, m * t) -- right because taps come in increasing order, so a new winner's t exceeds every
    earlier switch."""
    N, C, H, W = x.shape
    grid = _Grid(x.shape, kernel, stride, pad, out)
    x3 = x.reshape(N * C, H, W)
    y = np.empty((N, C) + tuple(out), dtype=x.dtype)
    switches = np.empty((N, C) + tuple(out), dtype=np.int32)
    y3, s3 = y.reshape((N * C,) + tuple(out)), switches.reshape((N * C,) + tuple(out))

    def work(r0, r1):
        R = r1 - r0
        P = grid.split(x3[r0:r1], -np.inf, "pool_phases")
        yg = _temp("pool_y", (R, grid.L), x.dtype)
        sg = _temp("pool_s", (R, grid.L), np.int32)
        mask = _temp("pool_mask", (R, grid.L), np.bool_)
        tap = _temp("pool_tap", (R, grid.L), np.int32)
        q, start = grid.runs[0]                        # tap 0 wins unless NaN, which fmax turns into -inf
        np.fmax(P[q][:, start:start + grid.L], -np.inf, out=yg)
        sg.fill(0)
        for t, (q, start) in enumerate(grid.runs[1:], start=1):
            v = P[q][:, start:start + grid.L]
            np.greater(v, yg, out=mask)
            np.fmax(yg, v, out=yg)
            np.multiply(mask, np.int32(t), out=tap)
            np.maximum(sg, tap, out=sg)
        grid.crop(yg, y3[r0:r1])
        grid.crop(sg, s3[r0:r1])

    parallel_chunks(work, N * C, 4 * x.size)
    return y, switches


def max_pool2d_backward(dy, switches, x_shape, kernel, stride, pad):
    """dx as ``ops.max_pool2d_backward``: per tap, dx[tap position] += dy * (switch == t), on the phase grid.

    Multiplying by the mask (a masked add is ~20x slower) is exact for finite dy; ``use_pool_backward``
    sends a dy with inf/NaN to the readable path, where a non-finite value reaches its switch cell only."""
    N, C, H, W = x_shape
    oh, ow = dy.shape[2:]
    grid = _Grid(x_shape, kernel, stride, pad, (oh, ow))
    dx = np.empty(x_shape, dtype=dy.dtype)
    d3, dy3, s3 = dx.reshape(N * C, H, W), dy.reshape(N * C, oh, ow), switches.reshape(N * C, oh, ow)

    def work(r0, r1):
        R = r1 - r0
        dyg = grid.widen(dy3[r0:r1], 0, "unpool_dy")          # junk columns carry 0: they add nothing
        sg = grid.widen(s3[r0:r1], -1, "unpool_s")
        G = _temp("unpool_phases", (len(grid.phases), R, grid.Hq * grid.Wq), dy.dtype)
        G.fill(0)
        mask = _temp("unpool_mask", (R, grid.L), np.bool_)
        part = _temp("unpool_part", (R, grid.L), dy.dtype)
        for t, (q, start) in enumerate(grid.runs):
            np.equal(sg, np.int32(t), out=mask)
            np.multiply(dyg, mask, out=part)
            G[q][:, start:start + grid.L] += part
        grid.merge(G, d3[r0:r1])

    parallel_chunks(work, N * C, 4 * dx.size)
    return dx


def use_pool_backward(dy, switches):
    """The fast unpooling multiplies dy by 0/1 masks, which is exact only for a finite dy."""
    return use(dy) and use(switches) and bool(np.isfinite(dy).all())


# --- LRN -------------------------------------------------------------------------------------------------------

def channel_window_sum(a, n, out):
    """out[:, c] = sum of a[:, c'] over |c' - c| <= n//2, by shifted in-place adds (no padded copy)."""
    np.copyto(out, a)
    for offset in range(1, n // 2 + 1):
        out[:, offset:] += a[:, :-offset]
        out[:, :-offset] += a[:, offset:]
    return out


def _neg_power(d, beta, out):
    """out = d ** -beta; for Krizhevsky's beta = 0.75 as 1 / (sqrt(d) * sqrt(sqrt(d))), ~5x cheaper than pow."""
    if beta == 0.75:
        r = np.sqrt(d, out=out)
        q = np.sqrt(r)
        np.multiply(r, q, out=out)
        return np.reciprocal(out, out=out)
    return np.power(d, -beta, out=out)


def lrn_forward(x, n, k, alpha, beta):
    """(y, d, scale) with d = k + alpha * window_sum(x^2), scale = d^-beta, y = x * scale."""
    y, d, scale = (np.empty_like(x) for _ in range(3))

    def work(n0, n1):
        xs, ds = x[n0:n1], d[n0:n1]
        sq = _temp("lrn_sq", xs.shape, x.dtype)
        np.multiply(xs, xs, out=sq)
        channel_window_sum(sq, n, out=ds)
        ds *= x.dtype.type(alpha)
        ds += x.dtype.type(k)
        _neg_power(ds, beta, out=scale[n0:n1])
        np.multiply(xs, scale[n0:n1], out=y[n0:n1])

    parallel_chunks(work, x.shape[0], 8 * x.size)
    return y, d, scale


def lrn_backward(dy, x, y, d, scale, n, alpha, beta):
    """dx = dy * scale - 2 alpha beta x * window_sum(dy * y / d)."""
    dx = np.empty_like(dy)

    def work(n0, n1):
        t = _temp("lrn_t", dy[n0:n1].shape, dy.dtype)
        coupling = _temp("lrn_coupling", dy[n0:n1].shape, dy.dtype)
        np.multiply(dy[n0:n1], y[n0:n1], out=t)
        np.divide(t, d[n0:n1], out=t)
        channel_window_sum(t, n, out=coupling)
        coupling *= x[n0:n1]
        coupling *= dy.dtype.type(-2 * alpha * beta)
        np.multiply(dy[n0:n1], scale[n0:n1], out=dx[n0:n1])
        dx[n0:n1] += coupling

    parallel_chunks(work, dy.shape[0], 8 * dy.size)
    return dx


# --- ReLU backward ---------------------------------------------------------------------------------------------

_SAME_SIZE_INT = {4: np.int32, 8: np.int64}


def use_relu_backward(dy, x):
    return use(dy) and use(x) and dy.dtype == x.dtype and dy.itemsize in _SAME_SIZE_INT


def relu_backward(dy, x, rule):
    """``where(gate, dy, 0)`` without ``np.where`` (~7x slower here than a plain ufunc pass): the gate becomes
    an all-ones/all-zeros integer mask that is ANDed with dy's bits. Exact for every dy, NaN and inf included
    (a closed gate gives +0.0, as where does), unlike ``dy * gate``."""
    ints = _SAME_SIZE_INT[dy.itemsize]
    dyf, xf = dy.reshape(-1), x.reshape(-1)
    out = np.empty(dy.shape, dtype=dy.dtype)
    outf = out.reshape(-1).view(ints)

    def work(a, b):
        gate = _temp("relu_gate", (b - a,), np.bool_)
        np.greater(dyf[a:b] if rule == "deconvnet" else xf[a:b], 0, out=gate)
        if rule == "guided":
            both = _temp("relu_gate2", (b - a,), np.bool_)
            np.greater(dyf[a:b], 0, out=both)
            np.logical_and(gate, both, out=gate)
        mask = _temp("relu_mask", (b - a,), ints)
        np.subtract(0, gate, out=mask, dtype=ints)                 # True -> -1 (all bits set), False -> 0
        np.bitwise_and(dyf[a:b].view(ints), mask, out=outf[a:b])

    parallel_chunks(work, dyf.size, 4 * dyf.size)
    return out


# --- fully connected -------------------------------------------------------------------------------------------

def _rows_in_threads(n, work, elements):
    """``work(a, b)`` over row ranges in minicnn's threads with the BLAS single-threaded where that can be set.

    Why for small GEMMs too: an OpenBLAS call with 2 threads leaves its worker spinning for up to ~0.1 s, and
    the copy threads of the conv, pooling and LRN that follow then share a core with it (a zfnet_small training
    step took 1.4x as long). With every GEMM of a step in our threads, the BLAS workers never wake."""
    limit = blas_single_threaded() if get_num_threads() > 1 else None
    if limit is None:
        work(0, n)
        return
    with limit:
        parallel_chunks(work, n, elements)


def linear_forward(x, W, b):
    """y = x @ W + b, rows of x split over the threads."""
    y = np.empty((x.shape[0], W.shape[1]), dtype=np.result_type(x, W))

    def work(a, c):
        np.matmul(x[a:c], W, out=y[a:c])
        if b is not None:
            y[a:c] += b

    _rows_in_threads(x.shape[0], work, y.size * 64)
    return y


def linear_backward(dy, x, W, need_dx, param_grads):
    """(dx, dW, db) of y = x @ W + b: dx by rows of dy, dW by its columns, each part in one thread."""
    dx = np.empty((dy.shape[0], W.shape[0]), dtype=np.result_type(dy, W)) if need_dx else None
    dW = np.empty((x.shape[1], dy.shape[1]), dtype=np.result_type(x, dy)) if param_grads else None

    def rows(a, c):
        np.matmul(dy[a:c], W.T, out=dx[a:c])

    def cols(a, c):
        np.matmul(x.T, dy[:, a:c], out=dW[:, a:c])

    if need_dx:
        _rows_in_threads(dy.shape[0], rows, dx.size * 64)
    if param_grads:
        _rows_in_threads(dy.shape[1], cols, dW.size * 64)
    return dx, dW, dy.sum(axis=0) if param_grads else None
