// lrn.cu -- local response normalisation across channels (Krizhevsky et al.), forward and backward.
//
// Element type T is set at compile time ("#define T float" or double, put before this text by
// backend.kernel_source). Every kernel is ONE grid-stride loop over
// its OUTPUT elements; each thread gathers its channel window itself (no atomics, no shared memory).
//
// Notation (as in minicnn/ops/normalization.py), for a window of n channels (n odd, half = n/2) centred on c,
// channels outside [0, C) counting as zero:
//   S_c = sum_{|c' - c| <= half} x_c'^2      d_c = k + alpha * S_c      y_c = x_c * d_c^(-beta)
//   dx_c = dy_c * d_c^(-beta) - 2*alpha*beta * x_c * sum_{|c' - c| <= half} dy_c' * y_c' / d_c'
// alpha is NOT divided by n (AlexNet paper, Chainer). k, alpha, beta arrive as double whatever T is.
// Element (n, c, h, w) lives at i = ((n*C + c)*H + h)*W + w, so its neighbour c' is at i + (c' - c)*H*W.

// ----------------------------------------------------------------------------------------------------------
// lrn_forward: one thread per element; writes y and the denominator d (the backward pass needs both).
// ----------------------------------------------------------------------------------------------------------
extern "C" __global__ void lrn_forward(const T* x, T* y, T* d,
                                       int N, int C, int H, int W, int n, double k, double alpha, double beta)
{
    const long long plane = (long long)H * W;                  // distance between neighbouring channels
    const long long total = (long long)N * C * plane;
    const int half = n / 2;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((i / plane) % C);
        const int lo = c - half < 0 ? 0 : c - half;
        const int hi = c + half > C - 1 ? C - 1 : c + half;
        T s = 0;
        for (int cc = lo; cc <= hi; ++cc) {
            const T v = x[i + (long long)(cc - c) * plane];
            s += v * v;
        }
        const T denom = (T)k + (T)alpha * s;
        d[i] = denom;
        y[i] = x[i] * pow(denom, (T)-beta);
    }
}

// ----------------------------------------------------------------------------------------------------------
// lrn_backward: one thread per element of dx. The window is symmetric, so the channels whose denominators
// contain x_c are exactly the channels in x_c's own window: gather dy_c' * y_c' / d_c' over it.
// ----------------------------------------------------------------------------------------------------------
extern "C" __global__ void lrn_backward(const T* x, const T* y, const T* d, const T* dy, T* dx,
                                        int N, int C, int H, int W, int n, double alpha, double beta)
{
    const long long plane = (long long)H * W;
    const long long total = (long long)N * C * plane;
    const int half = n / 2;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((i / plane) % C);
        const int lo = c - half < 0 ? 0 : c - half;
        const int hi = c + half > C - 1 ? C - 1 : c + half;
        T coupling = 0;
        for (int cc = lo; cc <= hi; ++cc) {
            const long long j = i + (long long)(cc - c) * plane;
            coupling += dy[j] * y[j] / d[j];
        }
        const T through = dy[i] * pow(d[i], (T)-beta);
        dx[i] = through - (T)(2.0 * alpha * beta) * x[i] * coupling;
    }
}
