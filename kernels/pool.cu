// pool.cu -- max pooling with switches, and its backward (= Zeiler-Fergus unpooling).
//
// Element type T is set at compile time ("#define T float" or double, put before this text by
// backend.kernel_source). Every kernel is ONE grid-stride loop over
// its OUTPUT elements; each thread gathers what its element needs (no atomics, no shared memory).
//
// Notation (as in minicnn/ops/pool.py):
//   x (N, C, H, W) -> y, switches (N, C, oh, ow); window kh x kw, stride sy, sx, padding ph, pw.
//   Window (oy, ox) covers input rows iy = oy*sy - ph + ky (ky in [0, kh)) and columns ix = ox*sx - pw + kx.
//   Positions outside the input are -inf: they never win. oh, ow come from the caller (floor or ceil mode).
//   switch = ky*kw + kx of the winner, local to the window; on ties the FIRST maximum in row-major window
//   order wins (a later tap must be strictly greater to take over). NaN propagates: a NaN takes over from a
//   number and then stays, so a window holding NaN outputs NaN with its switch at the first NaN.

// -inf, written so that it needs no header (NVRTC compiles without the host's <cmath>): IEEE -1/0.
__device__ __forceinline__ T minicnn_negative_infinity()
{
    const T zero = 0;
    return (T)-1 / zero;
}

// ----------------------------------------------------------------------------------------------------------
// max_pool_forward: one thread per output cell.
//   i = ((n*C + c)*oh + oy)*ow + ox
//   scan the window row by row, keep the best value and its tap index  ->  y[i], switches[i]
// ----------------------------------------------------------------------------------------------------------
extern "C" __global__ void max_pool_forward(const T* x, T* y, int* switches,
                                            int N, int C, int H, int W, int kh, int kw,
                                            int sy, int sx, int ph, int pw, int oh, int ow)
{
    const long long total = (long long)N * C * oh * ow;
    const T neg_inf = minicnn_negative_infinity();
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ox = (int)(i % ow), oy = (int)((i / ow) % oh);
        const long long plane = i / ((long long)ow * oh);            // = n*C + c
        const T* xs = x + plane * H * W;                             // the (n, c) image
        T best = neg_inf;
        int arg = 0;
        for (int ky = 0; ky < kh; ++ky) {
            const int iy = oy * sy - ph + ky;
            for (int kx = 0; kx < kw; ++kx) {
                const int ix = ox * sx - pw + kx;
                const T v = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xs[(long long)iy * W + ix] : neg_inf;
                if (v > best || (v != v && best == best)) { best = v; arg = ky * kw + kx; }
            }
        }
        y[i] = best;
        switches[i] = arg;
    }
}

// ----------------------------------------------------------------------------------------------------------
// max_pool_backward (unpooling): one thread per INPUT pixel, a gather over the windows that cover it.
//   i = ((n*C + c)*H + y)*W + x;  padded coordinates (py, px) = (y + ph, x + pw)
//   Window row oy covers py when 0 <= ky = py - oy*sy < kh, i.e.  oy from ceil((py - kh + 1)/sy)
//   to floor(py/sy), clipped to [0, oh).
//   Same along x. A window sends its dy to this pixel when its switch is exactly this tap: ky*kw + kx.
//   Overlapping windows (stride < kernel) that all chose this pixel add up, in the NumPy op's order: it adds
//   tap by tap in row-major tap order, and a larger tap (ky, kx) is a window further up / left, so the windows
//   are visited bottom-up, right to left -- the same sums bit for bit.
// ----------------------------------------------------------------------------------------------------------
extern "C" __global__ void max_pool_backward(const T* dy, const int* switches, T* dx,
                                             int N, int C, int H, int W, int kh, int kw,
                                             int sy, int sx, int ph, int pw, int oh, int ow)
{
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(i % W), y = (int)((i / W) % H);
        const long long plane = i / ((long long)W * H);              // = n*C + c
        const T* dys = dy + plane * oh * ow;
        const int* sws = switches + plane * oh * ow;
        const int py = y + ph, px = x + pw;
        const int oy_lo = py >= kh ? (py - kh) / sy + 1 : 0;         // first window whose rows reach py
        const int oy_hi = py / sy < oh - 1 ? py / sy : oh - 1;       // last window that starts at or before py
        const int ox_lo = px >= kw ? (px - kw) / sx + 1 : 0;
        const int ox_hi = px / sx < ow - 1 ? px / sx : ow - 1;
        T sum = 0;
        for (int oy = oy_hi; oy >= oy_lo; --oy) {
            const int ky = py - oy * sy;
            for (int ox = ox_hi; ox >= ox_lo; --ox) {
                const int kx = px - ox * sx;
                const long long o = (long long)oy * ow + ox;
                if (sws[o] == ky * kw + kx) sum += dys[o];
            }
        }
        dx[i] = sum;
    }
}
