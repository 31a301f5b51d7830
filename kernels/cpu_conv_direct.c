/* A direct convolution (stride 1) for small layers, forward and backward: no column matrix.

   minicnn/ops/conv.py's definition, for stride 1: y[i, f, oy, ox] = b[f] + sum over (c, ky, kx) of
   W[f, c, ky, kx] * xpad[i, c, oy + ky, ox + kx]. Built by minicnn/fast_cpu/build.py with -DT=float or -DT=double and
   called through ctypes (no GIL) on a range of images, so that minicnn's threads share a batch.

   Why: on small layers (issue 7's 64x6x12x12 input, 5x5 kernel) im2col + GEMM spends its time streaming the
   column matrix (2.4 MB there, 25x the input) through memory, and on this 2-core machine two threads streaming at
   once slow each other down ~1.5x. Here everything one image needs (its padded planes, dy, the weights) stays in
   the L1/L2 cache, the running sums stay in registers, and two threads scale as compute does.

   Layout of the padded copies, one image: xp (C, Hp, Wp), Hp = oh + kh - 1, Wp = owp + kw - 1, owp = ow rounded up
   to LANES (the backward rounds Wp up to a cache line), the input at (ph, pw) and zeros around it, so that every
   vector load of LANES outputs' inputs is in bounds and the lanes past ow see zeros. */
#include "cpu_common.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")
/* Keep v in a register: otherwise GCC folds its load into each multiply-add that uses it, loading it again each
   time, and the loads, not the multipliers, set the pace. */
#if defined(__AVX__)
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define IN_REGISTER(v) ((void)0)                       /* a 32-byte vector fits no register of the plain target */
#endif

static inline i64 round_up(i64 a, i64 b) { return (a + b - 1) / b * b; }

#define LINE ((i64)(64 / sizeof(T)))                   /* values in a cache line */

static inline T lane_sum(vT v)
{
    T s = 0;
    for (i64 l = 0; l < LANES; l++) s += v[l];
    return s;
}

/* xp (C, Hp, Wp) = image x (C, H, W) with ph rows and pw columns of zeros before it, zeros after. */
static void pad_image(const T *x, T *xp, i64 C, i64 H, i64 W, i64 ph, i64 pw, i64 Hp, i64 Wp)
{
    for (i64 j = 0; j < C * Hp * Wp; j++) xp[j] = 0;
    i64 cols = W < Wp - pw ? W : Wp - pw;
    for (i64 c = 0; c < C; c++)
        for (i64 r = 0; r < H && r + ph < Hp; r++)
            copy_run(xp + (c * Hp + r + ph) * Wp + pw, x + (c * H + r) * W, cols);
}

/* --- forward ------------------------------------------------------------------------------------------------

   LANES outputs of a row at a time, 8 filters at a time, their 8 running sums in registers, each input vector
   loaded once for the 8 filters. Wt8: the weights reordered by fast_cpu/conv.py into blocks of 8 filters,
   (F/8 rounded up, C*kh*kw, 8), zero past F. */
#define FB 8
int conv_direct(const T *x, const T *Wt8, const T *b, T *y, i64 C, i64 H, i64 W, i64 F, i64 kh, i64 kw, i64 ph,
                i64 pw, i64 oh, i64 ow, i64 n0, i64 n1)
{
    i64 K = C * kh * kw, owp = round_up(ow, LANES), Hp = oh + kh - 1, Wp = owp + kw - 1;
    T *xp = malloc((C * Hp * Wp + LANES) * sizeof(T));
    if (!xp) return -1;
    for (i64 i = n0; i < n1; i++) {
        pad_image(x + i * C * H * W, xp, C, H, W, ph, pw, Hp, Wp);
        for (i64 f0 = 0; f0 < F; f0 += FB) {
            const T *w = Wt8 + (f0 / FB) * K * FB;
            for (i64 oy = 0; oy < oh; oy++)
                for (i64 j = 0; j < owp; j += LANES) {
                    vT acc[FB];
                    for (int q = 0; q < FB; q++) acc[q] = (vT){0} + (b && f0 + q < F ? b[f0 + q] : 0);
                    const T *wk = w;
                    for (i64 c = 0; c < C; c++)
                        for (i64 ky = 0; ky < kh; ky++) {
                            const T *row = xp + (c * Hp + oy + ky) * Wp + j;
                            for (i64 kx = 0; kx < kw; kx++, wk += FB) {
                                vT v = load(row + kx);
                                for (int q = 0; q < FB; q++) acc[q] += wk[q] * v;
                            }
                        }
                    i64 valid = ow - j < LANES ? ow - j : LANES;
                    for (int q = 0; q < FB && f0 + q < F; q++) {
                        T *dst = y + ((i * F + f0 + q) * oh + oy) * ow + j;
                        if (valid == LANES)
                            store(dst, acc[q]);
                        else
                            for (i64 l = 0; l < valid; l++) dst[l] = acc[q][l];
                    }
                }
        }
    }
    free(xp);
    return 0;
}

/* --- backward ------------------------------------------------------------------------------------------------

   dW[f, c, ky, kx] = sum over (i, oy, ox) of dy[i, f, oy, ox] * xpad[i, c, oy + ky, ox + kx]
   dx[i, c, y, x]   = sum over (f, ky, kx) of W[f, c, ky, kx] * dy[i, f, y + ph - ky, x + pw - kx]   (dy 0 outside)

   Both read dy from dyl (Fr, oh, Lp) per image: each row of dy after `lead` zeros (kw - 1 rounded up to a vector,
   so that dW's loads of dy are aligned) and zeros after, Fr = F rounded up to a dW filter block (zero rows).
   dx is a gather (each output row sums what reaches it), not a scatter of kh*kw shifted adds into dx: its sums
   stay in registers and each output vector is stored once. Only the rows of dy that reach an output row are
   visited, so no multiply is spent on the zero rows a 'full' correlation of padded dy would compute; the
   columns are computed LANES at a time, W rounded up.

   In both, the running sums of a call are a block of 8 to 12 vectors in registers where the sizes allow: an FMA
   takes 4 cycles and two can start each cycle, so fewer independent sums would leave the multipliers waiting. And
   loads, more than multiplies, set the pace here: each vector loaded serves several multiply-adds, and
   IN_REGISTER keeps the compiler from loading it again for each (issue 7's 12x12 conv, dx alone, one thread:
   1.0 -> 0.7 ms). */

/* dW taps (c, ky, kx0..kx0+KW-1) of filters f0..f0+FBK-1, one image: FBK * KW sums of LANES columns, read from acc
   (their running totals over the images so far, vectors indexed (f, ky, kx)) into registers and written back (KW
   and FBK are constants in each call below, so that the compiler keeps them in registers); one load of x per tap
   and one of dy per filter for FBK * KW multiply-adds. */
INLINE void dW_taps(const T *xp, const T *dyl, vT *acc, i64 ky, i64 f0, i64 kx0, const int KW, const int FBK,
                    i64 kh, i64 kw, i64 oh, i64 owp, i64 Wp, i64 lead, i64 Lp)
{
    vT sum[4][5];                                      /* [FBK][KW], the largest blocks dW_channel uses */
    UNROLL
    for (int q = 0; q < FBK; q++)
        UNROLL
        for (int t = 0; t < KW; t++) sum[q][t] = acc[((f0 + q) * kh + ky) * kw + kx0 + t];
    for (i64 j = 0; j < owp; j += LANES) {          /* oy inner: the longer loop, a pointer step a row */
        const T *xr = xp + ky * Wp + kx0 + j, *dr = dyl + f0 * oh * Lp + lead + j;
        for (i64 oy = 0; oy < oh; oy++, xr += Wp, dr += Lp) {
            vT d[4];
            UNROLL
            for (int q = 0; q < FBK; q++) d[q] = load(dr + q * oh * Lp);
            UNROLL
            for (int t = 0; t < KW; t++) {
                vT xv = load(xr + t);
                IN_REGISTER(xv);
                UNROLL
                for (int q = 0; q < FBK; q++) sum[q][t] += d[q] * xv;
            }
        }
    }
    UNROLL
    for (int q = 0; q < FBK; q++)
        UNROLL
        for (int t = 0; t < KW; t++) acc[((f0 + q) * kh + ky) * kw + kx0 + t] = sum[q][t];
}

/* One image's share of dW's channel c into acc (Fr * kh * kw vectors): xp the channel's padded plane (Hp, Wp).
   The kw taps of a row in one pass where kw is 3 or 5 (the common kernels; 12 and 10 sums), else two at a time
   (8 sums) and the odd one alone. */
static void dW_channel(const T *xp, const T *dyl, vT *acc, i64 Fr, i64 kh, i64 kw, i64 oh, i64 owp, i64 Wp,
                       i64 lead, i64 Lp)
{
#define DW_TAPS(kx0, KW, FBK)                                                                                     \
    for (i64 f0 = 0; f0 < Fr; f0 += FBK) dW_taps(xp, dyl, acc, ky, f0, kx0, KW, FBK, kh, kw, oh, owp, Wp, lead, Lp)
    for (i64 ky = 0; ky < kh; ky++) {
        if (kw == 5) {
            DW_TAPS(0, 5, 2);
        } else if (kw == 3) {
            DW_TAPS(0, 3, 4);
        } else {
            for (i64 kx = 0; kx + 2 <= kw; kx += 2) DW_TAPS(kx, 2, 4);
            if (kw % 2) DW_TAPS(kw - 1, 1, 4);
        }
    }
#undef DW_TAPS
}

#define DW_FILTER_ROUND 4                              /* dyl's filters rounded up to the largest dW filter block */

/* dx rows of one image, channels c0..c0+CB-1, columns NV vectors at a time: CB x NV running sums in registers
   (constants in each call, as in dW_taps); per (f, ky, kx) NV loads of dy and CB of weights. */
INLINE void dx_channels(const T *dyl, const T *Wf, T *dx, i64 c0, const int CB, const int NV, i64 C, i64 H, i64 W,
                        i64 kh, i64 kw, i64 ph, i64 pw, i64 oh, i64 F, i64 lead, i64 Lp)
{
    for (i64 y = 0; y < H; y++) {
        i64 r = y + ph;                                /* the row in padded coordinates: oy = r - ky */
        i64 ky0 = r - (oh - 1) > 0 ? r - (oh - 1) : 0, ky1 = r < kh - 1 ? r : kh - 1;
        for (i64 u = 0; u < W; u += NV * LANES) {
            vT total[8][4], sum[8][4];                 /* [CB][NV], the largest blocks dx_image uses */
            UNROLL
            for (int q = 0; q < CB; q++)
                UNROLL
                for (int v = 0; v < NV; v++) total[q][v] = (vT){0};
            for (i64 ky = ky0; ky <= ky1; ky++) {     /* a kernel row's sum, then the total: shorter float chains */
                UNROLL
                for (int q = 0; q < CB; q++)
                    UNROLL
                    for (int v = 0; v < NV; v++) sum[q][v] = (vT){0};
                for (i64 kx = 0; kx < kw; kx++) {      /* f inner: the longer loop, a pointer step a filter */
                    const T *d = dyl + (r - ky) * Lp + lead + pw + u - kx;          /* ox = x + pw - kx */
                    const T *w = Wf + (c0 * kh + ky) * kw + kx;
                    for (i64 f = 0; f < F; f++, d += oh * Lp, w += C * kh * kw) {
                        vT dv[4];
                        UNROLL
                        for (int v = 0; v < NV; v++) {
                            dv[v] = load(d + v * LANES);
                            IN_REGISTER(dv[v]);
                        }
                        UNROLL
                        for (int q = 0; q < CB; q++) {
                            T wq = w[q * kh * kw];
                            UNROLL
                            for (int v = 0; v < NV; v++) sum[q][v] += wq * dv[v];
                        }
                    }
                }
                UNROLL
                for (int q = 0; q < CB; q++)
                    UNROLL
                    for (int v = 0; v < NV; v++) total[q][v] += sum[q][v];
            }
            UNROLL
            for (int q = 0; q < CB; q++)
                UNROLL
                for (int v = 0; v < NV; v++) {
                    i64 x0 = u + v * LANES, valid = W - x0 < LANES ? W - x0 : LANES;
                    T *dst = dx + ((c0 + q) * H + y) * W + x0;
                    if (valid == LANES)
                        store(dst, total[q][v]);
                    else
                        for (i64 l = 0; l < valid; l++) dst[l] = total[q][v][l];
                }
        }
    }
}

/* Vectors of columns a dx row is computed in (1, 2 or 4: up to 4 * LANES columns), and channels per call then
   (8, 6 or 3: 8 to 12 sums). */
static i64 dx_vectors(i64 W) { return W <= LANES ? 1 : W <= 2 * LANES ? 2 : 4; }
static i64 dx_channel_block(i64 nv) { return nv == 1 ? 8 : nv == 2 ? 6 : 3; }

/* dx of one image (C, H, W), channel blocks of dx_channel_block(). */
static void dx_image(const T *dyl, const T *Wf, T *dx, i64 C, i64 H, i64 W, i64 kh, i64 kw, i64 ph, i64 pw,
                     i64 oh, i64 F, i64 lead, i64 Lp)
{
    i64 nv = dx_vectors(W), block = dx_channel_block(nv);
#define DX(CB, NV) dx_channels(dyl, Wf, dx, c0, CB, NV, C, H, W, kh, kw, ph, pw, oh, F, lead, Lp)
#define DX_UP_TO_3(NV) case 1: DX(1, NV); break; case 2: DX(2, NV); break; case 3: DX(3, NV); break
    for (i64 c0 = 0; c0 < C; c0 += block) {
        i64 cb = C - c0 < block ? C - c0 : block;
        if (nv == 1) {
            switch (cb) {
                DX_UP_TO_3(1);
            case 4: DX(4, 1); break;
            case 5: DX(5, 1); break;
            case 6: DX(6, 1); break;
            case 7: DX(7, 1); break;
            default: DX(8, 1);
            }
        } else if (nv == 2) {
            switch (cb) {
                DX_UP_TO_3(2);
            case 4: DX(4, 2); break;
            case 5: DX(5, 2); break;
            default: DX(6, 2);
            }
        } else {
            switch (cb) {
                DX_UP_TO_3(4);
            }
        }
    }
#undef DX_UP_TO_3
#undef DX
}

/* dW's running sums move into double totals (F, C*kh*kw) every this many images, and start again from 0: a lane
   of a running sum otherwise adds up a whole batch in float32 (issue 7's 28x28 conv at batch 128: 9216 terms a
   lane, dW 3x further from float64 than the GEMM path's). */
#define DW_FLUSH_IMAGES 8

static void flush_dW(vT *acc, double *dW_totals, i64 C, i64 F, i64 Fr, i64 taps)
{
    for (i64 c = 0; c < C; c++)
        for (i64 f = 0; f < F; f++)
            for (i64 t = 0; t < taps; t++) {
                vT *sum = acc + (c * Fr + f) * taps + t;
                dW_totals[(f * C + c) * taps + t] += lane_sum(*sum);
                *sum = (vT){0};
            }
}

/* The backward of images n0..n1-1 from dy (N, F, oh, ow): dW (F, C*kh*kw) += and db (F) += their share (skipped
   when NULL), dx (N, C, H, W) = their input gradient (skipped when NULL). Wf: the weights (F, C, kh, kw). Returns
   -1 where scratch memory could not be had.

   Image by image: the image's dy (dyl) and padded x stay in the L1 cache while every channel's taps pass over
   them, and dW's running sums (one vector per (f, c, ky, kx): F*C*kh*kw*32 bytes, 77 KB for 16 filters of 6x5x5)
   in the L2 cache; every DW_FLUSH_IMAGES images their lanes are summed into double totals. */
int conv_direct_backward(const T *dy, const T *x, const T *Wf, T *dx, T *dW, T *db, i64 C, i64 H, i64 W, i64 F,
                         i64 kh, i64 kw, i64 ph, i64 pw, i64 oh, i64 ow, i64 n0, i64 n1)
{
    i64 owp = round_up(ow, LANES), Hp = oh + kh - 1, Wp = round_up(owp + kw - 1, LINE);
    i64 Fr = round_up(F, DW_FILTER_ROUND), lead = round_up(kw - 1, LANES);
    i64 dx_cols = pw + round_up(W, dx_vectors(W) * LANES);
    i64 Lp = round_up(lead + (dx_cols > owp ? dx_cols : owp), LINE);  /* what dW (owp) and dx read of a dy row */
    i64 taps = Fr * kh * kw;                           /* dW sums of one channel */
    T *xp = malloc((C * Hp * Wp + LANES) * sizeof(T)), *dyl = malloc((Fr * oh * Lp + LANES) * sizeof(T));
    vT *acc = dW ? aligned_alloc(sizeof(vT), C * taps * sizeof(vT)) : NULL;   /* vT wants its own alignment */
    double *totals = calloc(F + (dW ? F * C * kh * kw : 0), sizeof(double));   /* db, then dW: see flush_dW */
    if (!xp || !dyl || (dW && !acc) || !totals) {
        free(xp);
        free(dyl);
        free(acc);
        free(totals);
        return -1;
    }
    for (i64 j = 0; dW && j < C * taps; j++) acc[j] = (vT){0};
    for (i64 j = 0; j < Fr * oh * Lp + LANES; j++) dyl[j] = 0;
    for (i64 i = n0; i < n1; i++) {
        for (i64 f = 0; f < F; f++) {
            const T *src = dy + (i * F + f) * oh * ow;
            for (i64 oy = 0; oy < oh; oy++) {
                copy_run(dyl + (f * oh + oy) * Lp + lead, src + oy * ow, ow);
                for (i64 ox = 0; ox < ow; ox++) totals[f] += src[oy * ow + ox];
            }
        }
        if (dW) {
            pad_image(x + i * C * H * W, xp, C, H, W, ph, pw, Hp, Wp);
            for (i64 c = 0; c < C; c++)
                dW_channel(xp + c * Hp * Wp, dyl, acc + c * taps, Fr, kh, kw, oh, owp, Wp, lead, Lp);
            if ((i - n0) % DW_FLUSH_IMAGES == DW_FLUSH_IMAGES - 1 || i == n1 - 1)
                flush_dW(acc, totals + F, C, F, Fr, kh * kw);
        }
        if (dx) dx_image(dyl, Wf, dx + i * C * H * W, C, H, W, kh, kw, ph, pw, oh, F, lead, Lp);
    }
    for (i64 f = 0; db && f < F; f++) db[f] += (T)totals[f];
    for (i64 j = 0; dW && j < F * C * kh * kw; j++) dW[j] += (T)totals[F + j];
    free(xp);
    free(dyl);
    free(acc);
    free(totals);
    return 0;
}
