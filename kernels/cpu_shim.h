// cpu_shim.h -- compile minicnn's CUDA kernels as plain C++ so they can be tested without a GPU.
//
//     g++ -O2 -shared -fPIC -x c++ -include cpu_shim.h pool_double.cu -o pool_double.so
//
// where pool_double.cu is backend.kernel_source("pool.cu", "float64"): the kernel file after a "#define T double"
// line (the same text the GPU loader compiles).
//
// Every kernel in this folder is one grid-stride loop,
//
//     for (i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x)
//
// so with a single "thread" (threadIdx = blockIdx = 0, blockDim = gridDim = 1) the loop visits every output
// element in order, on the CPU. The kernels themselves are not changed; this header only supplies the few CUDA
// names they use. The result is an ordinary shared library whose extern "C" functions ctypes can call on NumPy
// buffers (tests/test_kernels.py). Never included by the GPU build: NVRTC / nvcc know these names already.
#ifndef MINICNN_CPU_SHIM_H
#define MINICNN_CPU_SHIM_H

#ifdef __CUDACC__
#error "cpu_shim.h is for the C++ (CPU) build only"
#endif

#include <cmath>

// Kernel qualifiers become nothing: a __global__ function is a plain C function.
#define __global__
#define __device__
#define __forceinline__ inline

// The launch geometry of one thread in one block.
struct minicnn_dim3 { unsigned int x, y, z; };
static const minicnn_dim3 threadIdx = {0, 0, 0};
static const minicnn_dim3 blockIdx = {0, 0, 0};
static const minicnn_dim3 blockDim = {1, 1, 1};
static const minicnn_dim3 gridDim = {1, 1, 1};

// CUDA's device math overloads pow(float, float); in C++ that overload lives in std.
using std::pow;

#endif
