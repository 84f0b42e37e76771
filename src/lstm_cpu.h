/*
 * Which vector kernels run: the engine's products (lstm_gemm.h) and its gate pass
 * (lstm_kernels.h) are built for AVX-512 and for AVX2+FMA with GCC on x86-64, and the CPU is
 * asked once which it has. Elsewhere (other compilers, other CPUs) the products go to BLAS and
 * the gates to portable C.
 */
#ifndef LSTM_FAST_CPU_H
#define LSTM_FAST_CPU_H

#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define LSTM_HAVE_PACKED 1
#else
#define LSTM_HAVE_PACKED 0
#endif

#if LSTM_HAVE_PACKED

/* 64-byte vectors with AVX-512, 32-byte with AVX2+FMA, 0 where neither (BLAS is used then).
 * LSTM_FAST_KERNEL=avx2 or =blas in the environment (read once) picks a lesser one, for tests. */
static int lstm_packed_vector_bytes(void)
{
    static int bytes = -1;
    if (bytes < 0) {
        const char *want = getenv("LSTM_FAST_KERNEL");
        int avx2 = want == NULL || strcmp(want, "blas") != 0;
        int avx512 = avx2 && (want == NULL || strcmp(want, "avx2") != 0);
        __builtin_cpu_init();
        if (avx512 && __builtin_cpu_supports("avx512f"))
            bytes = 64;
        else if (avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            bytes = 32;
        else
            bytes = 0;
    }
    return bytes;
}

#else

static int lstm_packed_vector_bytes(void) { return 0; }

#endif /* LSTM_HAVE_PACKED */

/* Portable C loops that the compiler vectorises are built for AVX-512, AVX2+FMA and the baseline,
 * and the loader picks the best the CPU has (target_clones needs the loader's ifuncs: Linux). */
#if LSTM_HAVE_PACKED && defined(__linux__)
#define LSTM_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define LSTM_DISPATCH_NAME "x86-64-v4 (AVX-512) / x86-64-v3 (AVX2+FMA) / baseline, chosen at load"
#else
#define LSTM_DISPATCH
#define LSTM_DISPATCH_NAME "baseline only"
#endif

/* Bytes of one core's L2 cache, asked once: sysconf (glibc reads it from cpuid), else cpuid leaf
 * 0x80000006 (its size in KiB in ECX bits 31-16, on AMD and Intel alike), else 1 MiB. The
 * engine sizes what must stay in L2 from step to step by it (_team.pxd, _lstm.pyx). */
static long lstm_l2_bytes(void)
{
    static long bytes = 0;
    if (bytes == 0) {
        long size = 0;
#if (defined(__unix__) || defined(__APPLE__)) && defined(_SC_LEVEL2_CACHE_SIZE)
        size = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
#if defined(__GNUC__) && defined(__x86_64__)
        unsigned int eax, ebx, ecx, edx;
        if (size <= 0 && __get_cpuid(0x80000006, &eax, &ebx, &ecx, &edx))
            size = (long)(ecx >> 16) * 1024;
#endif
        bytes = size > 0 ? size : 1L << 20;
    }
    return bytes;
}

/* `bytes` of memory aligned to a cache line (64 bytes), to be released with free(); NULL if
 * memory is short. Vectors read from it never straddle two lines: a batch-1 step, which loads a
 * weight vector for every FMA, ran up to 30% slower whenever malloc's 16-byte alignment left the
 * packed weights off the lines. */
static void *lstm_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}

#endif /* LSTM_FAST_CPU_H */
