/*
 * The FMA peak of one core: independent chains of vector fused multiply-adds, nothing else, at the
 * widest vector width the packed kernel uses here (lstm_gemm.h).  No product of matrices can run
 * faster on this core, so it is the hardware ceiling `lstm-fast bench` prints next to the BLAS
 * roof.
 * Twelve chains cover the FMA latency (4 cycles) times two pipes with room to spare.
 */
#ifndef LSTM_FAST_PEAK_H
#define LSTM_FAST_PEAK_H

#include <time.h>

#include "lstm_gemm.h"

#if LSTM_HAVE_PACKED

/* Runs `iters` rounds of 12 vector FMAs; returns a value that depends on all of them.  The chains
 * start from different values, derived from `seed` at run time, so none can be merged or folded.
 * noipa: a caller that times the chains and drops their value (lstm_bf16_dot_pays) would
 * otherwise see the call of a pure function removed, and an FMA peak of thousands of TF/s. */
#define LSTM_DEFINE_CHAINS(T, SUF, ISA, TARGET, BYTES)                                           \
__attribute__((target(TARGET), noipa)) static T lstm_fma_chains_##SUF##_##ISA(long iters,        \
                                                                                T seed)          \
{                                                                                                \
    typedef T V __attribute__((vector_size(BYTES)));                                             \
    const V x = (V){0} + (T)0.5, y = (V){0} + seed;  /* a <- a / 2 + seed tends to 2 seed */    \
    V a0 = y, a1 = y + 1, a2 = y + 2, a3 = y + 3, a4 = y + 4, a5 = y + 5, a6 = y + 6, a7 = y + 7, \
      a8 = y + 8, a9 = y + 9, a10 = y + 10, a11 = y + 11;                                       \
    for (long i = 0; i < iters; i++) {                                                           \
        a0 = a0 * x + y; a1 = a1 * x + y; a2 = a2 * x + y; a3 = a3 * x + y;                      \
        a4 = a4 * x + y; a5 = a5 * x + y; a6 = a6 * x + y; a7 = a7 * x + y;                      \
        a8 = a8 * x + y; a9 = a9 * x + y; a10 = a10 * x + y; a11 = a11 * x + y;                  \
    }                                                                                            \
    V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                          \
    return s[0];                                                                                 \
}

LSTM_DEFINE_CHAINS(float, f, avx512, "arch=x86-64-v4", 64)
LSTM_DEFINE_CHAINS(double, d, avx512, "arch=x86-64-v4", 64)
LSTM_DEFINE_CHAINS(float, f, avx2, "arch=x86-64-v3", 32)
LSTM_DEFINE_CHAINS(double, d, avx2, "arch=x86-64-v3", 32)

/* Floating-point operations done by lstm_fma_chains(iters): 12 FMAs of `lanes` elements, 2 each. */
#define LSTM_CHAIN_FLOPS(iters, lanes) (24.0 * (double)(iters) * (double)(lanes))

/* Runs the chains at the packed kernel's width; returns their flop count (0: no packed kernel),
 * and the chains' value (24 seed, once converged) through *sink so that nothing is optimised
 * away. */
static double lstm_fma_chains(int dbl, long iters, double seed, double *sink)
{
    int bytes = lstm_packed_vector_bytes();
    if (bytes == 64)
        *sink = dbl ? lstm_fma_chains_d_avx512(iters, seed)
                    : lstm_fma_chains_f_avx512(iters, (float)seed);
    else if (bytes == 32)
        *sink = dbl ? lstm_fma_chains_d_avx2(iters, seed)
                    : lstm_fma_chains_f_avx2(iters, (float)seed);
    else
        return 0;
    return LSTM_CHAIN_FLOPS(iters, bytes / (dbl ? sizeof(double) : sizeof(float)));
}

#else

static double lstm_fma_chains(int dbl, long iters, double seed, double *sink)
{
    (void)dbl; (void)iters; (void)seed;
    *sink = 0;
    return 0;
}

#endif /* LSTM_HAVE_PACKED */

/* The chains on `threads` threads at once (OpenMP, where built with it); returns the flops of
 * all. */
static double lstm_fma_chains_threads(int dbl, long iters, int threads, double *sink)
{
    double flops = 0, value = 0;
#ifdef _OPENMP
    #pragma omp parallel num_threads(threads) reduction(+:flops, value)
#else
    (void)threads;
#endif
    {
        double mine = 0;
        flops += lstm_fma_chains(dbl, iters, 1.0, &mine);
        value += mine;
    }
    *sink = value;
    return flops;
}

/* Seconds between two readings of the monotonic clock. */
static double lstm_seconds(const struct timespec *t0, const struct timespec *t1)
{
    return (double)(t1->tv_sec - t0->tv_sec) + 1e-9 * (double)(t1->tv_nsec - t0->tv_nsec);
}

/* The float32 FMA rate of one core (flop/s; 0 without a packed kernel), measured once: the best
 * of three runs of the chains of about a tenth of a millisecond each, so that one run slowed by
 * another tenant does not set it. How many FMA units a core has (one or two) shows here. */
static double lstm_fma_rate(void)
{
    static double rate = -1;
    if (rate < 0) {
        double best = 0, sink = 0;
        for (int run = 0; run < 3; run++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            double flops = lstm_fma_chains(0, 30000, 1.0, &sink);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double seconds = lstm_seconds(&t0, &t1);
            if (seconds > 0 && flops / seconds > best)
                best = flops / seconds;
        }
        rate = best;
    }
    return rate;
}

#endif /* LSTM_FAST_PEAK_H */
