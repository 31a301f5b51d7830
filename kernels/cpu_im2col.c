/* im2col and col2im for the CPU as C loops (the column matrix with no junk columns), and a convolution's batch
   chunk, forward or backward, in one call. (The direct convolution of small stride-1 layers: cpu_conv_direct.c.)

   minicnn/ops/conv.py's readable layout: cols (C*kh*kw, n*oh*ow), row (c, ky, kx), column (image, oy, ox),
   cols[(c, ky, kx), (i, oy, ox)] = xpad[i, c, oy*sy + ky, ox*sx + kx] (0 in the padding). Built by
   minicnn/fast_cpu/build.py with -DT=float or -DT=double, called through ctypes (no GIL) a batch chunk at a
   time, so that minicnn's threads share the chunks.

   Why C here: every (row, image, oy) is one run of ow values, often short (8); a NumPy copy pays ~10 ns of loop
   setup per run, a compiled loop copies a run of 8 in a few cycles. */
#include "cpu_common.h"

/* The outputs ox in [*o0, *o1) whose input column ox*s - p + k lies in [0, size). */
static void inside(i64 k, i64 s, i64 p, i64 size, i64 out, i64 *o0, i64 *o1)
{
    i64 lo = k >= p ? 0 : (p - k + s - 1) / s;
    i64 hi = size - 1 + p - k < 0 ? 0 : (size - 1 + p - k) / s + 1;
    if (hi > out) hi = out;
    if (lo > hi) lo = hi;
    *o0 = lo;
    *o1 = hi;
}

/* cols (C*kh*kw, n*oh*ow) from x (n, C, H, W). */
static void im2col(const T *x, T *cols, i64 n, i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sy, i64 sx, i64 ph, i64 pw,
                   i64 oh, i64 ow)
{
    i64 P = n * oh * ow;
    for (i64 k = 0; k < C * kh * kw; k++) {
        i64 c = k / (kh * kw), ky = k / kw % kh, kx = k % kw;
        i64 x0, x1;
        inside(kx, sx, pw, W, ow, &x0, &x1);
        int whole_rows = sx == 1 && x0 == 0 && x1 == ow;      /* no column of this tap in the padding */
        for (i64 i = 0; i < n; i++) {
            const T *restrict plane = x + (i * C + c) * H * W;
            T *restrict dst = cols + k * P + i * oh * ow;
            for (i64 oy = 0; oy < oh; oy++, dst += ow) {
                i64 iy = oy * sy - ph + ky;
                if (iy < 0 || iy >= H) {
                    for (i64 ox = 0; ox < ow; ox++) dst[ox] = 0;
                    continue;
                }
                const T *restrict src = plane + iy * W - pw + kx;
                if (whole_rows) {
                    copy_run(dst, src, ow);
                    continue;
                }
                for (i64 ox = 0; ox < x0; ox++) dst[ox] = 0;
                if (sx == 1)
                    copy_run(dst + x0, src + x0, x1 - x0);
                else
                    for (i64 ox = x0; ox < x1; ox++) dst[ox] = src[ox * sx];
                for (i64 ox = x1; ox < ow; ox++) dst[ox] = 0;
            }
        }
    }
}

/* dx (n, C, H, W) from the column gradient: every entry added onto its pixel, entries in the padding dropped. */
static void col2im(const T *dcols, T *dx, i64 n, i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sy, i64 sx, i64 ph,
                   i64 pw, i64 oh, i64 ow)
{
    i64 P = n * oh * ow;
    for (i64 p = 0; p < C * n; p++) {
        i64 c = p / n, i = p % n;
        T *restrict plane = dx + (i * C + c) * H * W;
        memset(plane, 0, H * W * sizeof(T));
        for (i64 ky = 0; ky < kh; ky++)
            for (i64 kx = 0; kx < kw; kx++) {
                const T *restrict src = dcols + ((c * kh + ky) * kw + kx) * P + i * oh * ow;
                i64 x0, x1;
                inside(kx, sx, pw, W, ow, &x0, &x1);
                for (i64 oy = 0; oy < oh; oy++, src += ow) {
                    i64 iy = oy * sy - ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    T *restrict dst = plane + iy * W - pw + kx;
                    if (sx == 1)
                        add_run(dst + x0, src + x0, x1 - x0);
                    else
                        for (i64 ox = x0; ox < x1; ox++) dst[ox * sx] += src[ox];
                }
            }
    }
}

/* --- one batch chunk of a convolution in one call: im2col, the GEMMs (the BLAS's own, through a pointer) and the
   layout copies around them ---------------------------------------------------------------------------------

   minicnn/fast_cpu/conv.py runs one batch chunk per thread. As a chain of Python calls (im2col, matmul, a bias
   add, a transposing copy, ...) each step hands the GIL back and forth with the other thread's steps, and on a
   virtual machine each hand-off is a thread wake-up (20-100 us); one call per chunk hands it over once. `gemm`
   is the BLAS's cblas_?gemm with 64-bit integers (NumPy's bundled OpenBLAS), found by fast_cpu/build.py. */
typedef void (*gemm_fn)(int order, int trans_a, int trans_b, i64 M, i64 N, i64 K, T alpha, const T *A, i64 lda,
                        const T *B, i64 ldb, T beta, T *C, i64 ldc);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

/* y (n, F, oh, ow) = the convolution of x (n, C, H, W) with W2 (F, C*kh*kw), plus b (F, or NULL). cols (K, P) and
   rows (F, P) are the caller's buffers, P = n*oh*ow; cols holds the column matrix afterwards. */
void conv_forward_chunk(void *gemm, const T *x, const T *W2, const T *b, T *y, T *cols, T *rows, i64 n, i64 C,
                        i64 H, i64 W, i64 kh, i64 kw, i64 sy, i64 sx, i64 ph, i64 pw, i64 oh, i64 ow, i64 F)
{
    i64 K = C * kh * kw, L = oh * ow, P = n * L;
    im2col(x, cols, n, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow);
    ((gemm_fn)gemm)(ROW_MAJOR, NO_TRANS, NO_TRANS, F, P, K, 1, W2, K, cols, P, 0, rows, P);
    for (i64 i = 0; i < n; i++)                       /* (F, n, L) -> (n, F, L), with the bias */
        for (i64 f = 0; f < F; f++) {
            const T *restrict src = rows + f * P + i * L;
            T *restrict dst = y + (i * F + f) * L;
            T bias = b ? b[f] : 0;
            for (i64 j = 0; j < L; j++) dst[j] = src[j] + bias;
        }
}

/* The chunk's share of the backward from dy (n, F, oh, ow): dW (F, K) += dy_rows @ cols^T and db (F) += the sums
   of dy (both skipped when NULL), and dx (n, C, H, W) = col2im(W2^T @ dy_rows) (skipped when NULL). cols: the
   forward's column matrix, rebuilt from x first when `rebuild`; rows (F, P) and dcols (K, P) are scratch. */
void conv_backward_chunk(void *gemm, const T *dy, const T *x, const T *W2, T *cols, T *rows, T *dcols, T *dW,
                         T *db, T *dx, i64 rebuild, i64 n, i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 sy, i64 sx,
                         i64 ph, i64 pw, i64 oh, i64 ow, i64 F)
{
    i64 K = C * kh * kw, L = oh * ow, P = n * L;
    for (i64 i = 0; i < n; i++)                       /* (n, F, L) -> (F, n, L) */
        for (i64 f = 0; f < F; f++) {
            const T *restrict src = dy + (i * F + f) * L;
            T *restrict dst = rows + f * P + i * L;
            for (i64 j = 0; j < L; j++) dst[j] = src[j];
        }
    if (db)
        for (i64 f = 0; f < F; f++) {
            double sum = 0;                           /* double: P can be 10^5 terms */
            for (i64 j = 0; j < P; j++) sum += rows[f * P + j];
            db[f] += (T)sum;
        }
    if (dW) {
        if (rebuild) im2col(x, cols, n, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow);
        ((gemm_fn)gemm)(ROW_MAJOR, NO_TRANS, TRANS, F, K, P, 1, rows, P, cols, P, 1, dW, K);
    }
    if (dx) {
        ((gemm_fn)gemm)(ROW_MAJOR, TRANS, NO_TRANS, K, P, F, 1, W2, K, rows, P, 0, dcols, P);
        col2im(dcols, dx, n, C, H, W, kh, kw, sy, sx, ph, pw, oh, ow);
    }
}
