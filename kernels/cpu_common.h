/* What the CPU loops (cpu_*.c) share: the element type T (-DT=float or -DT=double, as for the .cu kernels), 64-bit
   sizes, and GCC's vector types of 32 bytes (8 floats or 4 doubles: an AVX register where -march=native has AVX). */
#ifndef MINICNN_CPU_COMMON_H
#define MINICNN_CPU_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
/* GCC would turn short copy loops back into memcpy calls, which cost more than a run of 4 or 8 values */
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#ifndef T
#define T float
#endif

typedef int64_t i64;
#define VBYTES 32
#define LANES ((i64)(VBYTES / sizeof(T)))

/* IT: the integer of T's width. vT: LANES values of T; vI: the integer vector of the same lanes, which is what a
   comparison of two vT yields (-1 where true, 0 where false). */
#define float_INT int32_t
#define double_INT int64_t
#define INT_OF(type) INT_OF_(type)
#define INT_OF_(type) type##_INT
typedef INT_OF(T) IT;
typedef T vT __attribute__((vector_size(VBYTES)));
typedef IT vI __attribute__((vector_size(VBYTES)));

static inline vT load(const T *p) { vT v; memcpy(&v, p, sizeof v); return v; }        /* unaligned */
static inline void store(T *p, vT v) { memcpy(p, &v, sizeof v); }

/* dst[0:n] = src[0:n] (or += with add), a vector of LANES at a time and the rest one by one: the runs in
   im2col, col2im and the direct convolution are short (8 to 32 values), and both a memcpy call and the compiler's
   own loop versioning cost more than the copy. */
static inline void copy_run(T *restrict dst, const T *restrict src, i64 n)
{
    i64 j = 0;
    for (; j + LANES <= n; j += LANES) {
        store(dst + j, load(src + j));
    }
    for (; j < n; j++) dst[j] = src[j];
}

static inline void add_run(T *restrict dst, const T *restrict src, i64 n)
{
    i64 j = 0;
    for (; j + LANES <= n; j += LANES) {
        store(dst + j, load(dst + j) + load(src + j));
    }
    for (; j < n; j++) dst[j] += src[j];
}

#endif
