/* Max pooling with switches and its backward (unpooling) for the CPU, as C with 32-byte vectors.

   The loops of minicnn/ops/pool.py's readable ops, one image plane at a time, compiled by the system's C compiler
   on first use (minicnn/fast_cpu/build.py) with -DT=float or -DT=double, as the .cu kernels are. Called through
   ctypes, which releases the GIL, on a range of planes [r0, r1): minicnn's threads split the planes between them.

   Why this layout. Each plane is first split by stride phase into a small grid that stays in the L1 cache
   (minicnn/fast_cpu/pool.py explains the phase grid): P[qy*sx + qx][a][b] = xpad[a*sy + qy][b*sx + qx].
   Window tap t of output (oy, ox) then reads P at runs[t] + oy*Wq + ox, so over the outputs of a plane, taken
   on an (oh, Wq) grid, every tap is ONE contiguous run. A contiguous run is what a vector instruction loads:
   8 floats (or 4 doubles) of 8 outputs per load, compared and selected all at once, where a loop over the
   taps of one output at a time is scalar.
   Columns ow..Wq-1 of that grid are junk, dropped when the outputs are copied out.

   Bit for bit the readable ops: a strictly greater value wins (the first maximum wins a tie), a NaN wins over
   a number and then stays (the first NaN wins: NaN propagates), cells outside the input are -inf, and the
   backward adds the taps onto +0.0 in the readable op's order. */
#include "cpu_common.h"

static inline vT select_where(vI mask, vT a, vT b) { return (vT)(((vI)a & mask) | ((vI)b & ~mask)); }

/* Half-vectors for stride 2: 8 consecutive values split into their even and odd lanes (4 each). */
typedef T v8T __attribute__((vector_size(8 * sizeof(T))));
typedef T v4T __attribute__((vector_size(4 * sizeof(T))));

static inline v8T load8(const T *p) { v8T v; memcpy(&v, p, sizeof v); return v; }
static inline v4T even(v8T v) { return __builtin_shufflevector(v, v, 0, 2, 4, 6); }
static inline v4T odd(v8T v) { return __builtin_shufflevector(v, v, 1, 3, 5, 7); }

/* The phase rows [a0, a1) of phase offset q holding input pixels: 0 <= a*s + q - p < size, clipped to n. */
static void valid(i64 q, i64 s, i64 p, i64 size, i64 n, i64 *a0, i64 *a1)
{
    i64 lo = q >= p ? 0 : (p - q + s - 1) / s;
    i64 hi = size - 1 + p - q < 0 ? 0 : (size - 1 + p - q) / s + 1;
    if (hi > n) hi = n;
    *a0 = lo;
    *a1 = hi > lo ? hi : lo;
}

typedef struct {
    i64 H, W, oh, ow, sy, sx, ph, pw, Hq, Wq;
    i64 *rows, *cols;     /* per phase offset q: rows[2q], rows[2q+1] = valid(q, sy, ...); cols likewise */
} geometry;

/* The valid phase rows and columns, once per call: the divisions in valid() cost more than a small plane. */
static void find_valid(geometry *g)
{
    for (i64 q = 0; q < g->sy; q++) valid(q, g->sy, g->ph, g->H, g->Hq, &g->rows[2 * q], &g->rows[2 * q + 1]);
    for (i64 q = 0; q < g->sx; q++) valid(q, g->sx, g->pw, g->W, g->Wq, &g->cols[2 * q], &g->cols[2 * q + 1]);
}

/* Input column j of a row lands in phase (j + pw) % 2 at b = (j + pw) / 2 when sx = 2: one 8-wide load fills
   4 cells of both phases. Cells at b >= Wq hold pixels no window reads; they are skipped. */
static void split_row_2(const T *restrict row, i64 W, i64 pw, i64 Wq, T *restrict even_out, T *restrict odd_out)
{
    i64 j = 0;
    if (pw & 1) {                                        /* column 0 is odd in the padded row */
        if (pw / 2 < Wq) odd_out[pw / 2] = row[0];
        j = 1;
    }
    for (; j + 8 <= W && (j + pw) / 2 + 4 <= Wq; j += 8) {
        v8T v = load8(row + j);
        v4T e = even(v), o = odd(v);
        memcpy(even_out + (j + pw) / 2, &e, sizeof e);
        memcpy(odd_out + (j + pw) / 2, &o, sizeof o);
    }
    for (; j < W; j++) {
        i64 b = (j + pw) / 2;
        if (b < Wq) ((j + pw) & 1 ? odd_out : even_out)[b] = row[j];
    }
}

/* P (sy*sx phases of Hq x Wq) from one plane x (H x W), fill where no pixel lands. */
static void split_plane(const T *x, const geometry *g, T fill, T *P)
{
    i64 n = g->sy * g->sx * g->Hq * g->Wq + LANES;      /* + the slack past the grid */
    for (i64 i = 0; i < n; i++) P[i] = fill;
    for (i64 qy = 0; qy < g->sy; qy++) {
        i64 a0 = g->rows[2 * qy], a1 = g->rows[2 * qy + 1];
        if (g->sx == 2) {                                /* both column phases of a row at once */
            T *P0 = P + qy * 2 * g->Hq * g->Wq, *P1 = P0 + g->Hq * g->Wq;
            for (i64 a = a0; a < a1; a++)
                split_row_2(x + (a * g->sy + qy - g->ph) * g->W, g->W, g->pw, g->Wq, P0 + a * g->Wq,
                            P1 + a * g->Wq);
            continue;
        }
        for (i64 qx = 0; qx < g->sx; qx++) {
            i64 b0 = g->cols[2 * qx], b1 = g->cols[2 * qx + 1];
            T *Pq = P + (qy * g->sx + qx) * g->Hq * g->Wq;
            for (i64 a = a0; a < a1; a++) {
                const T *restrict row = x + (a * g->sy + qy - g->ph) * g->W + qx - g->pw;
                T *restrict out = Pq + a * g->Wq;
                for (i64 b = b0; b < b1; b++) out[b] = row[b * g->sx];
            }
        }
    }
}

/* Scratch for one share of planes: the phase grid and two (oh, Wq) output grids, each padded so that a vector
   load or store that starts in it stays in it, and the valid rows and columns of the phases (``find_valid``).
   NULL if out of memory. */
static void *scratch(geometry *g, i64 *grid_cells, i64 *out_cells)
{
    *grid_cells = g->sy * g->sx * g->Hq * g->Wq + LANES;
    *out_cells = (g->oh * g->Wq + LANES - 1) / LANES * LANES;
    char *p = malloc((*grid_cells + *out_cells) * sizeof(T) + *out_cells * sizeof(IT) + 2 * VBYTES
                     + 2 * (g->sy + g->sx) * sizeof(i64));
    if (p) {
        g->rows = (i64 *)(p + (*grid_cells + *out_cells) * sizeof(T) + *out_cells * sizeof(IT) + 2 * VBYTES);
        g->cols = g->rows + 2 * g->sy;
        find_valid(g);
    }
    return p;
}

/* y, s (R, oh, ow) from x (R, H, W) for planes r0..r1-1. runs[t]: where tap t's run starts in the phase grid.
   Returns 0, or -1 if out of memory. */
int max_pool_forward(const T *x, T *y, int32_t *s, const i64 *runs, i64 ntaps, i64 H, i64 W, i64 oh, i64 ow,
                     i64 sy, i64 sx, i64 ph, i64 pw, i64 Hq, i64 Wq, i64 r0, i64 r1)
{
    geometry g = {H, W, oh, ow, sy, sx, ph, pw, Hq, Wq, NULL, NULL};
    i64 grid_cells, out_cells;
    T *P = scratch(&g, &grid_cells, &out_cells);
    if (!P) return -1;
    T *yg = P + grid_cells;
    IT *sg = (IT *)(yg + out_cells);
    for (i64 r = r0; r < r1; r++) {
        split_plane(x + r * H * W, &g, -INFINITY, P);
        for (i64 c = 0; c < out_cells; c += LANES) {     /* LANES outputs at a time, all taps */
            vT best = (vT){0} - INFINITY;
            vI tap = {0};
            for (i64 t = 0; t < ntaps; t++) {
                vT v = load(P + runs[t] + c);
                /* strictly greater (false for ties), or a NaN over a number: the first NaN wins and stays */
                vI wins = (v > best) | ((v != v) & (best == best));
                best = select_where(wins, v, best);
                tap = (((vI){0} + (IT)t) & wins) | (tap & ~wins);
            }
            store(yg + c, best);
            memcpy(sg + c, &tap, sizeof tap);
        }
        for (i64 oy = 0; oy < oh; oy++) {            /* plain loops: rows are short, a memcpy call is not */
            T *yo = y + (r * oh + oy) * ow;
            int32_t *so = s + (r * oh + oy) * ow;
            for (i64 ox = 0; ox < ow; ox++) {
                yo[ox] = yg[oy * Wq + ox];
                so[ox] = (int32_t)sg[oy * Wq + ox];
            }
        }
    }
    free(P);
    return 0;
}

/* dx (R, H, W) from dy, s (R, oh, ow) for planes r0..r1-1: every dy added at the input pixel its switch names.

   A scatter, one output at a time, visiting the outputs in reverse row-major order. That is what makes it bit for
   bit the readable op, which adds the taps onto +0.0 in increasing tap order: of two windows that share a pixel,
   the one further down (or right) reaches it at the smaller tap, so in reverse order every pixel receives its
   shares in increasing tap order. A switch into the padding (a window with no pixel above -inf) adds nothing.
   Unlike the forward this needs no vectors: each output is one load, one add and one store, and what the phase
   grid saves the forward (a pass over the plane per tap) would cost here. The sums go to a scratch plane that
   stays in the cache and is copied out whole: scattered straight into dx, the loop ran 1.8-3x slower depending on
   how the caller's arrays happened to sit relative to each other modulo 4 KiB (stores and later loads whose
   addresses share their low 12 bits stall the loads). */
int max_pool_backward(const T *dy, const int32_t *s, T *dx, i64 kh, i64 kw, i64 H, i64 W, i64 oh, i64 ow, i64 sy,
                      i64 sx, i64 ph, i64 pw, i64 r0, i64 r1)
{
    i64 *tap_y = malloc(2 * kh * kw * sizeof(i64) + H * W * sizeof(T)), *tap_x = tap_y + kh * kw;
    if (!tap_y) return -1;
    T *acc = (T *)(tap_x + kh * kw);                  /* the plane's sums (H, W) */
    for (i64 t = 0; t < kh * kw; t++) {              /* the tap's offset from its window's corner, padding off */
        tap_y[t] = t / kw - ph;
        tap_x[t] = t % kw - pw;
    }
    for (i64 r = r0; r < r1; r++) {
        const T *d = dy + r * oh * ow;
        const int32_t *sw = s + r * oh * ow;
        for (i64 i = 0; i < H * W; i++) acc[i] = 0;
        for (i64 oy = oh - 1; oy >= 0; oy--)
            for (i64 ox = ow - 1; ox >= 0; ox--) {
                i64 o = oy * ow + ox, t = sw[o], iy = oy * sy + tap_y[t], ix = ox * sx + tap_x[t];
                /* A switch into the padding adds +0.0 to pixel 0 instead of branching around the add: the same
                   bits (a sum that starts at +0.0 is never -0.0), and no branch to mispredict. */
                int inside = (uint64_t)iy < (uint64_t)H && (uint64_t)ix < (uint64_t)W;
                acc[inside ? iy * W + ix : 0] += inside ? d[o] : 0;
            }
        copy_run(dx + r * H * W, acc, H * W);
    }
    free(tap_y);
    return 0;
}
