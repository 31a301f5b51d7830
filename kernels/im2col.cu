// im2col.cu -- unfold receptive fields into columns (im2col) and fold them back (col2im).
//
// Element type T is set at compile time: backend.kernel_source puts "#define T float" (or double) before
// this text, so one source serves both dtypes.
// Every kernel is ONE grid-stride loop over its OUTPUT elements: each thread computes whole output elements
// by gathering what they need, so no two threads write the same place (no atomics, deterministic results).
//
// Notation (as in minicnn/ops/conv.py):
//   x     (N, C, H, W)               input, C-contiguous
//   cols  (C*kh*kw, N*oh*ow)         row r = (c, ky, kx), column q = (n, oy, ox), both row-major
//   kernel kh x kw, stride sy, sx, zero padding ph, pw,  oh = (H + 2*ph - kh) / sy + 1 (likewise ow)
// Output position (oy, ox) with kernel tap (ky, kx) reads the input pixel
//   iy = oy*sy - ph + ky,  ix = ox*sx - pw + kx          (outside [0, H) x [0, W): padding, value 0)

// ----------------------------------------------------------------------------------------------------------
// im2col: one thread per element of cols.
//   i = r * (N*oh*ow) + q
//   r = (c*kh + ky)*kw + kx   ->  kx = r % kw, ky = (r / kw) % kh, c = r / (kw*kh)
//   q = (n*oh + oy)*ow + ox   ->  ox = q % ow, oy = (q / ow) % oh, n = q / (ow*oh)
//   cols[i] = x[n, c, iy, ix]  or 0 in the padding
// ----------------------------------------------------------------------------------------------------------
extern "C" __global__ void im2col(const T* x, T* cols,
                                  int N, int C, int H, int W, int kh, int kw,
                                  int sy, int sx, int ph, int pw, int oh, int ow)
{
    const long long ncols = (long long)N * oh * ow;
    const long long total = (long long)C * kh * kw * ncols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long r = i / ncols, q = i % ncols;
        const int kx = (int)(r % kw), ky = (int)((r / kw) % kh), c = (int)(r / ((long long)kw * kh));
        const int ox = (int)(q % ow), oy = (int)((q / ow) % oh), n = (int)(q / ((long long)ow * oh));
        const int iy = oy * sy - ph + ky, ix = ox * sx - pw + kx;
        const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
        cols[i] = inside ? x[(((long long)n * C + c) * H + iy) * W + ix] : (T)0;
    }
}

// ----------------------------------------------------------------------------------------------------------
// col2im: the adjoint of im2col. One thread per element of dx (N, C, H, W) -- a GATHER: the thread for pixel
// (n, c, y, x) visits every column entry that im2col copied from this pixel and adds them up.
//   i = ((n*C + c)*H + y)*W + x
//   In padded coordinates the pixel sits at (py, px) = (y + ph, x + pw). Tap ky of output row oy covers it
//   when oy*sy + ky == py, i.e. for each ky with (py - ky) >= 0, (py - ky) % sy == 0 and oy = (py - ky)/sy < oh.
//   Same along x. Each such (ky, kx, oy, ox) contributes cols[(c*kh + ky)*kw + kx, (n*oh + oy)*ow + ox].
// Overlapping receptive fields (stride < kernel) give several contributions, and they add.
// ----------------------------------------------------------------------------------------------------------
extern "C" __global__ void col2im(const T* cols, T* dx,
                                  int N, int C, int H, int W, int kh, int kw,
                                  int sy, int sx, int ph, int pw, int oh, int ow)
{
    const long long ncols = (long long)N * oh * ow;
    const long long total = (long long)N * C * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(i % W), y = (int)((i / W) % H);
        const int c = (int)((i / ((long long)W * H)) % C), n = (int)(i / ((long long)W * H * C));
        const int py = y + ph, px = x + pw;
        T sum = 0;
        for (int ky = 0; ky < kh; ++ky) {
            const int ty = py - ky;                       // = oy * sy for the output row that uses tap ky here
            if (ty < 0 || ty % sy != 0 || ty / sy >= oh) continue;
            const int oy = ty / sy;
            for (int kx = 0; kx < kw; ++kx) {
                const int tx = px - kx;
                if (tx < 0 || tx % sx != 0 || tx / sx >= ow) continue;
                const int ox = tx / sx;
                const long long r = ((long long)c * kh + ky) * kw + kx;
                const long long q = ((long long)n * oh + oy) * ow + ox;
                sum += cols[r * ncols + q];
            }
        }
        dx[i] = sum;
    }
}
