// relu.cu -- ReLU backward under the three rules of ARCHITECTURE.md section 5.
//
// Element type T is set at compile time ("#define T float" or double, put before this text by
// backend.kernel_source). ONE grid-stride loop over the elements;
// x is the forward input (the ReLU cache), dy the signal coming down, dx the result (any shape, flattened).
//
//   rule  name          dx[i] = dy[i] where ...       used by
//   0     "backprop"    x[i] > 0                     training, saliency (Simonyan et al.)
//   1     "deconvnet"   dy[i] > 0                    Zeiler-Fergus projection
//   2     "guided"      x[i] > 0 and dy[i] > 0       guided backpropagation (Springenberg et al.)
// and 0 elsewhere. NaN compares false, so a NaN gate blocks (as in the NumPy op).

extern "C" __global__ void relu_backward(const T* x, const T* dy, T* dx, long long total, int rule)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const bool forward_open = x[i] > (T)0;
        const bool signal_positive = dy[i] > (T)0;
        bool pass;
        if (rule == 0) pass = forward_open;
        else if (rule == 1) pass = signal_positive;
        else pass = forward_open && signal_positive;
        dx[i] = pass ? dy[i] : (T)0;
    }
}
