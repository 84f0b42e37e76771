/*
 * Small-M matrix product with a packed right operand, for the per-step recurrent products:
 *
 *     C (M x N) = beta C + A (M x K) op(B) (K x N),  M = active sequences (1 .. a few hundred)
 *
 * OpenBLAS is slow at these shapes (BASELINE.md: M = 1 sgemm, 53% of its roof at M = 32), and the
 * right operand (a weight matrix) is the same for every step, so it is packed ONCE per call into
 * column panels of NB = 2 vector widths: panel p holds op(B)[k][p*NB .. p*NB + NB) for k = 0..K-1,
 * contiguous, zero beyond N (a last panel of at most one vector of columns is one vector wide). The
 * product then walks the panels; for each it computes tiles of up to MR = 12 rows (6 on AVX2) x NB
 * columns in 2 MR vector accumulators (one broadcast of A[r][k] times two vector loads of the panel
 * per k), so a panel is read from cache once per tile; a single row (batch 1) takes four panels
 * at a time instead, so that its sums do not wait on each other. Every sum starts from beta C and
 * adds its terms in k order, whatever the path, so a row's result does not depend on the other
 * rows. The same tiles serve the weight gradients (dW^T = X^T dA, A^T B with neither packed:
 * lstm_gemm_tn), so the engine never wakes BLAS's own threads.
 *
 * Written once with GCC vector extensions over float and double, compiled for AVX-512 (64-byte
 * vectors) and AVX2+FMA (32-byte vectors); the CPU is asked once which it has. Elsewhere (other
 * compilers, other CPUs) lstm_packed_size returns 0 and the caller uses BLAS instead.
 */
#ifndef LSTM_FAST_GEMM_H
#define LSTM_FAST_GEMM_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lstm_cpu.h"

#define LSTM_MR 12  /* the tallest tile of any ISA (the accumulator arrays' size) */
#define LSTM_NP 4
#define LSTM_KC 256

/* M rows are taken in LSTM_TILES(M, mr) tiles of nearly equal height (at most mr, the ISA's
 * tile height), tile i from row LSTM_TILE_ROW(M, i, tiles): 13 rows as 7 + 6, not 12 + 1, whose
 * single row would wait on the FMA latency at every k. */
#define LSTM_TILES(M, mr) (((M) + (mr) - 1) / (mr))
#define LSTM_TILE_ROW(M, i, tiles) ((M) * (i) / (tiles))

/* Columns of the packed panel that starts at column p of N, panels being nb wide: a last panel of
 * at most one vector (nb / 2) is packed one vector wide (half a panel would be zeros, multiplied
 * all the same). lstm_pack and lstm_gemm_nn both follow it. */
#define LSTM_PANEL_COLS(N, p, nb) ((N) - (p) <= (nb) / 2 ? (nb) / 2 : (nb))

#if LSTM_HAVE_PACKED

/* The arguments lstm_tile_any passes on to lstm_tile after the row and vector counts. */
#define LSTM_TILE_ARGS K, A, ars, aks, panel, ldp, K2, A2, lda2, panel2, beta, C, ldc, ncols
/* CALL(n, ...) for n == rows (1..12) as a constant: a switch that compiles the tile CALL calls
 * once for each height, its loops over rows unrolled. */
#define LSTM_FOR_HEIGHT(rows, CALL, ...)                                                         \
    switch (rows) {                                                                              \
    case 12: CALL(12, __VA_ARGS__); break; case 11: CALL(11, __VA_ARGS__); break;                \
    case 10: CALL(10, __VA_ARGS__); break; case 9: CALL(9, __VA_ARGS__); break;                  \
    case 8: CALL(8, __VA_ARGS__); break; case 7: CALL(7, __VA_ARGS__); break;                    \
    case 6: CALL(6, __VA_ARGS__); break; case 5: CALL(5, __VA_ARGS__); break;                    \
    case 4: CALL(4, __VA_ARGS__); break; case 3: CALL(3, __VA_ARGS__); break;                    \
    case 2: CALL(2, __VA_ARGS__); break; case 1: CALL(1, __VA_ARGS__); break;                    \
    default: break;                                                                              \
    }

/* The packed kernel's tile of height n: none above the ISA's MR is ever called, and the constant
 * condition keeps them from being compiled at all. */
#define LSTM_TILE_CALL(n, SUF, ISA, NV, MR)                                                      \
    if ((n) <= (MR)) lstm_tile_##SUF##_##ISA(n, NV, LSTM_TILE_ARGS)

/* One tile: rows (<= MR) x ncols (<= nv vectors) of C from one panel of nv (1 or 2; both
 * constants where inlined) vectors' width, ldp apart from one k to the next, plus (when K2 > 0) a
 * second product A2 (rows x K2) times a panel of a second packed operand. A[r][k] is
 * A[r * ars + k * aks]: A row-major (ars = lda, aks = 1) or transposed (ars = 1, aks = lda).
 * MR, the ISA's tallest tile, keeps its 2 MR accumulators, two panel vectors and a broadcast in
 * the vector registers: 12 rows of the 32 AVX-512 ones, 6 of the 16 AVX2 ones (12 there would
 * spill accumulators to the stack at every k). */
#define LSTM_DEFINE_TILE(T, SUF, ISA, TARGET, BYTES, MR)                                         \
typedef T lstm_vec_##SUF##_##ISA __attribute__((vector_size(BYTES)));                           \
                                                                                                 \
static inline __attribute__((always_inline, target(TARGET))) void lstm_tile_##SUF##_##ISA(       \
    const int rows, const int nv, ptrdiff_t K, const T *A, ptrdiff_t ars, ptrdiff_t aks,         \
    const T *panel, ptrdiff_t ldp, ptrdiff_t K2, const T *A2, ptrdiff_t lda2, const T *panel2,   \
    T beta, T *C, ptrdiff_t ldc, ptrdiff_t ncols)                                                \
{                                                                                                \
    typedef lstm_vec_##SUF##_##ISA V;                                                            \
    enum { VL = BYTES / sizeof(T) };                                                             \
    V acc0[LSTM_MR], acc1[LSTM_MR];                                                              \
    /* The sums start from beta C, so a product computed in two calls (G = A1 B1, then G += A2 B2)\
     * adds the same terms in the same order as one call over both: results do not depend on     \
     * whether a product was split, or on the batch size that decided it. */                     \
    _Pragma("GCC unroll 12")                                                                     \
    for (int r = 0; r < rows; r++) {                                                             \
        const T *c = C + r * ldc;                                                                \
        if (beta == (T)0) {                                                                      \
            acc0[r] = acc1[r] = (V){0};                                                          \
        } else if (ncols == nv * VL) {                                                           \
            memcpy(&acc0[r], c, BYTES);                                                          \
            acc0[r] *= beta;                                                                     \
            if (nv == 2) {                                                                       \
                memcpy(&acc1[r], c + VL, BYTES);                                                 \
                acc1[r] *= beta;                                                                 \
            }                                                                                    \
        } else {                                                                                 \
            T tile[2 * VL];                                                                      \
            for (ptrdiff_t j = 0; j < 2 * VL; j++)                                               \
                tile[j] = j < ncols ? beta * c[j] : (T)0;                                        \
            memcpy(&acc0[r], tile, BYTES);                                                       \
            memcpy(&acc1[r], tile + VL, BYTES);                                                  \
        }                                                                                        \
    }                                                                                            \
    for (ptrdiff_t k = 0; k < K; k++) {                                                          \
        V b0, b1;                                                                                \
        memcpy(&b0, panel + k * ldp, BYTES);                                                     \
        if (nv == 2)                                                                             \
            memcpy(&b1, panel + k * ldp + VL, BYTES);                                            \
        _Pragma("GCC unroll 12")                                                                 \
        for (int r = 0; r < rows; r++) {                                                         \
            T a = A[r * ars + k * aks];                                                          \
            acc0[r] += a * b0;                                                                   \
            if (nv == 2)                                                                         \
                acc1[r] += a * b1;                                                               \
        }                                                                                        \
    }                                                                                            \
    for (ptrdiff_t k = 0; k < K2; k++) {                                                         \
        V b0, b1;                                                                                \
        memcpy(&b0, panel2 + k * nv * VL, BYTES);                                                \
        if (nv == 2)                                                                             \
            memcpy(&b1, panel2 + k * nv * VL + VL, BYTES);                                       \
        _Pragma("GCC unroll 12")                                                                 \
        for (int r = 0; r < rows; r++) {                                                         \
            T a = A2[r * lda2 + k];                                                              \
            acc0[r] += a * b0;                                                                   \
            if (nv == 2)                                                                         \
                acc1[r] += a * b1;                                                               \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 12")                                                                     \
    for (int r = 0; r < rows; r++) {                                                             \
        T *c = C + r * ldc;                                                                      \
        if (ncols == nv * VL) {                                                                  \
            memcpy(c, &acc0[r], BYTES);                                                          \
            if (nv == 2)                                                                         \
                memcpy(c + VL, &acc1[r], BYTES);                                                 \
        } else {                                                                                 \
            T tile[2 * VL];                                                                      \
            memcpy(tile, &acc0[r], BYTES);                                                       \
            memcpy(tile + VL, &acc1[r], BYTES);                                                  \
            for (ptrdiff_t j = 0; j < ncols; j++)                                                \
                c[j] = tile[j];                                                                  \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* A tile of any height 1..MR, two vectors wide, or one if ncols fits in one: the switches make  \
 * each height and width a constant for lstm_tile. */                                            \
static inline __attribute__((always_inline, target(TARGET))) void lstm_tile_any_##SUF##_##ISA(   \
    ptrdiff_t rows, ptrdiff_t K, const T *A, ptrdiff_t ars, ptrdiff_t aks, const T *panel,        \
    ptrdiff_t ldp, ptrdiff_t K2, const T *A2, ptrdiff_t lda2, const T *panel2, T beta, T *C,      \
    ptrdiff_t ldc, ptrdiff_t ncols)                                                              \
{                                                                                                \
    if (ncols > (ptrdiff_t)(BYTES / sizeof(T))) {                                                \
        LSTM_FOR_HEIGHT(rows, LSTM_TILE_CALL, SUF, ISA, 2, MR)                                   \
    } else {                                                                                     \
        LSTM_FOR_HEIGHT(rows, LSTM_TILE_CALL, SUF, ISA, 1, MR)                                   \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* One row of C over np (<= LSTM_NP, a constant where inlined) consecutive panels, ncols columns \
 * in all: a one-row tile would wait on the FMA latency at every k (its two sums depend on       \
 * themselves), np panels at once give 2 np independent sums. Same sums, same order as a tile. */\
static inline __attribute__((always_inline, target(TARGET))) void lstm_row_##SUF##_##ISA(        \
    const int np, ptrdiff_t K, const T *A, const T *panel, ptrdiff_t K2, const T *A2,            \
    const T *panel2, T beta, T *C, ptrdiff_t ncols)                                              \
{                                                                                                \
    typedef lstm_vec_##SUF##_##ISA V;                                                            \
    enum { VL = BYTES / sizeof(T), NB = 2 * VL };                                                \
    V acc[2 * LSTM_NP];                                                                          \
    T tile[NB * LSTM_NP];                                                                        \
    for (ptrdiff_t j = 0; j < NB * np; j++)                                                      \
        tile[j] = j < ncols && beta != (T)0 ? beta * C[j] : (T)0;                                \
    _Pragma("GCC unroll 8")                                                                      \
    for (int j = 0; j < 2 * np; j++)                                                             \
        memcpy(&acc[j], tile + j * VL, BYTES);                                                   \
    for (ptrdiff_t k = 0; k < K; k++) {                                                          \
        T a = A[k];                                                                              \
        _Pragma("GCC unroll 4")                                                                  \
        for (int j = 0; j < np; j++) {                                                           \
            V b0, b1;                                                                            \
            memcpy(&b0, panel + j * NB * K + k * NB, BYTES);                                     \
            memcpy(&b1, panel + j * NB * K + k * NB + VL, BYTES);                                \
            acc[2 * j] += a * b0;                                                                \
            acc[2 * j + 1] += a * b1;                                                            \
        }                                                                                        \
    }                                                                                            \
    for (ptrdiff_t k = 0; k < K2; k++) {                                                         \
        T a = A2[k];                                                                             \
        _Pragma("GCC unroll 4")                                                                  \
        for (int j = 0; j < np; j++) {                                                           \
            V b0, b1;                                                                            \
            memcpy(&b0, panel2 + j * NB * K2 + k * NB, BYTES);                                   \
            memcpy(&b1, panel2 + j * NB * K2 + k * NB + VL, BYTES);                              \
            acc[2 * j] += a * b0;                                                                \
            acc[2 * j + 1] += a * b1;                                                            \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 8")                                                                      \
    for (int j = 0; j < 2 * np; j++)                                                             \
        memcpy(tile + j * VL, &acc[j], BYTES);                                                   \
    for (ptrdiff_t j = 0; j < ncols; j++)                                                        \
        C[j] = tile[j];                                                                          \
}                                                                                                \
                                                                                                 \
/* C (M x N) = beta C + A (M x K) B + A2 (M x K2) B2, B and B2 packed by lstm_pack (K2 = 0: no   \
 * second product): M is small (the active sequences), so each panel is multiplied by every      \
 * MR-row tile of A while it is in cache. */                                                     \
__attribute__((target(TARGET))) static void lstm_gemm_nn_##SUF##_##ISA(                          \
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const T *A, ptrdiff_t lda, const T *packed,           \
    ptrdiff_t K2, const T *A2, ptrdiff_t lda2, const T *packed2, T beta, T *C, ptrdiff_t ldc)    \
{                                                                                                \
    enum { VL = BYTES / sizeof(T), nb = 2 * VL };                                                \
    /* Columns [0, wide) are in panels of nb, the rest in one narrow panel (LSTM_PANEL_COLS). */ \
    ptrdiff_t last = (N - 1) / nb * nb, wide = LSTM_PANEL_COLS(N, last, nb) < nb ? last : N;     \
    if (M == 1) {                                                                                \
        for (ptrdiff_t p = 0; p < wide; p += LSTM_NP * nb) {                                     \
            ptrdiff_t ncols = wide - p < LSTM_NP * nb ? wide - p : LSTM_NP * nb;                 \
            const T *b = packed + p * K, *b2 = packed2 + p * K2;                                 \
            switch ((ncols + nb - 1) / nb) {                                                     \
            case 4: lstm_row_##SUF##_##ISA(4, K, A, b, K2, A2, b2, beta, C + p, ncols); break;   \
            case 3: lstm_row_##SUF##_##ISA(3, K, A, b, K2, A2, b2, beta, C + p, ncols); break;   \
            case 2: lstm_row_##SUF##_##ISA(2, K, A, b, K2, A2, b2, beta, C + p, ncols); break;   \
            default: lstm_row_##SUF##_##ISA(1, K, A, b, K2, A2, b2, beta, C + p, ncols); break;  \
            }                                                                                    \
        }                                                                                        \
        if (wide < N)                                                                            \
            lstm_tile_any_##SUF##_##ISA(1, K, A, lda, 1, packed + wide * K, VL, K2, A2, lda2,    \
                                        packed2 + wide * K2, beta, C + wide, ldc, N - wide);     \
        return;                                                                                  \
    }                                                                                            \
    for (ptrdiff_t p = 0; p < N; p += nb)                                                        \
        for (ptrdiff_t i = 0, tiles = LSTM_TILES(M, MR); i < tiles; i++) {                       \
            ptrdiff_t m = LSTM_TILE_ROW(M, i, tiles), mr = LSTM_TILE_ROW(M, i + 1, tiles) - m;   \
            lstm_tile_any_##SUF##_##ISA(mr, K, A + m * lda, lda, 1, packed + p * K,              \
                                        LSTM_PANEL_COLS(N, p, nb), K2, A2 + m * lda2, lda2,      \
                                        packed2 + p * K2, beta, C + m * ldc + p, ldc,            \
                                        N - p < nb ? N - p : nb);                                \
        }                                                                                        \
}                                                                                                \
                                                                                                 \
/* C (M x ncols) = beta C + A^T block, A (kc x M) read in place, block (kc x ncols, rows NB      \
 * apart) copied by lstm_gemm_tn: every tile of C against the block while it is in L1. */        \
static inline __attribute__((always_inline, target(TARGET))) void lstm_tn_block_##SUF##_##ISA(   \
    ptrdiff_t M, ptrdiff_t kc, const T *A, ptrdiff_t lda, const T *block, T beta, T *C,          \
    ptrdiff_t ldc, ptrdiff_t ncols)                                                              \
{                                                                                                \
    for (ptrdiff_t i = 0, tiles = LSTM_TILES(M, MR); i < tiles; i++) {                           \
        ptrdiff_t m = LSTM_TILE_ROW(M, i, tiles);                                                \
        lstm_tile_any_##SUF##_##ISA(LSTM_TILE_ROW(M, i + 1, tiles) - m, kc, A + m, 1, lda, block, \
                                    2 * BYTES / sizeof(T), 0, NULL, 0, NULL, beta, C + m * ldc,  \
                                    ldc, ncols);                                                 \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* C (M x N) = beta C + A^T B and C2 (M2 x N) = beta C2 + A2^T B, A (K x M), A2 (K x M2) and B   \
 * (K x N) row-major, none packed (M2 = 0: no second product): the weight gradients as dW^T =    \
 * X^T dA, where K (every packed row) is long and B (dA) is read once. K is taken KC rows at a    \
 * time; each panel of that block of B is copied to a contiguous buffer (rows of B are 4H apart: \
 * read in place they fall into a few cache sets), which every MR-row tile of C and then of C2   \
 * multiplies while it is in L1. A's rows are read in place, MR elements of each. The copy also  \
 * sums B's columns into colsum (N; unless NULL): the bias gradient, with no pass of its own. */ \
__attribute__((target(TARGET))) static void lstm_gemm_tn_##SUF##_##ISA(                          \
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const T *A, ptrdiff_t lda, const T *B, ptrdiff_t ldb, \
    T beta, T *C, ptrdiff_t ldc, ptrdiff_t M2, const T *A2, ptrdiff_t lda2, T *C2, ptrdiff_t ldc2,\
    T *colsum)                                                                                   \
{                                                                                                \
    typedef lstm_vec_##SUF##_##ISA V;                                                            \
    enum { VL = BYTES / sizeof(T), NB = 2 * VL };                                                \
    T block[LSTM_KC * NB] __attribute__((aligned(64)));                                          \
    for (ptrdiff_t k0 = 0; k0 < K; k0 += LSTM_KC) {                                              \
        ptrdiff_t kc = K - k0 < LSTM_KC ? K - k0 : LSTM_KC;                                      \
        T b = k0 == 0 ? beta : (T)1;                                                             \
        for (ptrdiff_t p = 0; p < N; p += NB) {                                                  \
            ptrdiff_t ncols = N - p < NB ? N - p : NB;                                           \
            T sums[NB] = {0};                                                                    \
            if (ncols == NB) {  /* in vectors: GCC leaves the loop below scalar for double */   \
                V s0 = {0}, s1 = {0}, b0, b1;                                                    \
                for (ptrdiff_t k = 0; k < kc; k++) {                                             \
                    memcpy(&b0, B + (k0 + k) * ldb + p, BYTES);                                  \
                    memcpy(&b1, B + (k0 + k) * ldb + p + VL, BYTES);                             \
                    memcpy(block + k * NB, &b0, BYTES);                                          \
                    memcpy(block + k * NB + VL, &b1, BYTES);                                     \
                    s0 += b0;                                                                    \
                    s1 += b1;                                                                    \
                }                                                                                \
                memcpy(sums, &s0, BYTES);                                                        \
                memcpy(sums + VL, &s1, BYTES);                                                   \
            } else                                                                               \
                for (ptrdiff_t k = 0; k < kc; k++)                                               \
                    for (ptrdiff_t j = 0; j < NB; j++) {                                         \
                        block[k * NB + j] = j < ncols ? B[(k0 + k) * ldb + p + j] : (T)0;        \
                        sums[j] += block[k * NB + j];                                            \
                    }                                                                            \
            if (colsum != NULL)                                                                  \
                for (ptrdiff_t j = 0; j < ncols; j++)                                            \
                    colsum[p + j] = (k0 == 0 ? (T)0 : colsum[p + j]) + sums[j];                  \
            lstm_tn_block_##SUF##_##ISA(M, kc, A + k0 * lda, lda, block, b, C + p, ldc, ncols);  \
            lstm_tn_block_##SUF##_##ISA(M2, kc, A2 + k0 * lda2, lda2, block, b, C2 + p, ldc2,    \
                                        ncols);                                                  \
        }                                                                                        \
    }                                                                                            \
}

LSTM_DEFINE_TILE(float, f, avx512, "arch=x86-64-v4", 64, 12)
LSTM_DEFINE_TILE(double, d, avx512, "arch=x86-64-v4", 64, 12)
LSTM_DEFINE_TILE(float, f, avx2, "arch=x86-64-v3", 32, 6)
LSTM_DEFINE_TILE(double, d, avx2, "arch=x86-64-v3", 32, 6)

#endif /* LSTM_HAVE_PACKED */

#define LSTM_DEFINE_PACKED_API(T, SUF)                                                           \
/* Columns per panel: a product over columns [c0, c1), c0 a multiple of this, is                  \
 * lstm_gemm_packed(trans_a, M, c1 - c0, K, A, lda, packed + c0 * K, beta, C + c0, ldc). */      \
static ptrdiff_t lstm_panel_width_##SUF(void)                                                     \
{                                                                                                \
    return 2 * lstm_packed_vector_bytes() / (ptrdiff_t)sizeof(T);                                \
}                                                                                                \
                                                                                                 \
/* Elements of the packed form of a (K x N) right operand. */                                    \
static ptrdiff_t lstm_packed_size_##SUF(ptrdiff_t K, ptrdiff_t N)                                \
{                                                                                                \
    ptrdiff_t nb = lstm_panel_width_##SUF();                                                     \
    return nb ? (N + nb - 1) / nb * nb * K : N * K;                                              \
}                                                                                                \
                                                                                                 \
/* packed <- op(B) (K x N) in panels; op(B) = B (row-major K x N) or B^T (B row-major N x K).     \
 * Where no packed kernel runs, "packed" is op(B) itself, row-major, for BLAS. */                \
static void lstm_pack_##SUF(int trans, ptrdiff_t K, ptrdiff_t N, const T *B, ptrdiff_t ldb,      \
                            T *packed)                                                           \
{                                                                                                \
    ptrdiff_t nb = lstm_panel_width_##SUF();                                                     \
    if (nb == 0)                                                                                 \
        nb = N;                                                                                  \
    for (ptrdiff_t p = 0; p < N; p += nb, packed += nb * K) {                                    \
        ptrdiff_t w = N - p < nb ? N - p : nb;  /* columns of B in this panel; zeros after */   \
        ptrdiff_t width = LSTM_PANEL_COLS(N, p, nb);                                             \
        if (w < width)                                                                           \
            memset(packed, 0, (size_t)(width * K) * sizeof(T));                                 \
        if (trans)  /* column j of op(B) is row j of B: each panel row gathers one column */    \
            for (ptrdiff_t k = 0; k < K; k++)                                                    \
                for (ptrdiff_t j = 0; j < w; j++)                                                \
                    packed[k * width + j] = B[(p + j) * ldb + k];                                \
        else        /* row k of the panel is w contiguous elements of row k of B */             \
            for (ptrdiff_t k = 0; k < K; k++)                                                    \
                memcpy(packed + k * width, B + k * ldb + p, (size_t)w * sizeof(T));              \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* C (M x N) = beta C + A (M x K) op(B), op(B) packed by lstm_pack. */                            \
static void lstm_gemm_packed_##SUF(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const T *A,            \
                                   ptrdiff_t lda, const T *packed, T beta, T *C, ptrdiff_t ldc)  \
{                                                                                                \
    LSTM_PACKED_DISPATCH(SUF)                                                                    \
}                                                                                                \
                                                                                                 \
/* C (M x N) = beta C + A (M x K) B + A2 (M x K2) B2, both packed by lstm_pack, in one pass over \
 * C (a packed kernel must run: callers check lstm_panel_width first). */                       \
static void lstm_gemm_packed2_##SUF(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const T *A,           \
                                    ptrdiff_t lda, const T *packed, ptrdiff_t K2, const T *A2,   \
                                    ptrdiff_t lda2, const T *packed2, T beta, T *C,              \
                                    ptrdiff_t ldc)                                               \
{                                                                                                \
    LSTM_PACKED2_DISPATCH(SUF)                                                                   \
}                                                                                                \
                                                                                                 \
/* C (M x N) = beta C + A^T B and C2 (M2 x N) = beta C2 + A2^T B, A (K x M), A2 (K x M2), B      \
 * (K x N), all row-major and unpacked: two products with the same B, which is read once; colsum \
 * (N) = the sums of B's columns, unless NULL (a packed kernel must run: callers check           \
 * lstm_panel_width first). */                                                                   \
static void lstm_gemm_tn2_##SUF(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const T *A, ptrdiff_t lda,\
                                const T *B, ptrdiff_t ldb, T beta, T *C, ptrdiff_t ldc,          \
                                ptrdiff_t M2, const T *A2, ptrdiff_t lda2, T *C2, ptrdiff_t ldc2,\
                                T *colsum)                                                       \
{                                                                                                \
    LSTM_TN2_DISPATCH(SUF)                                                                       \
}

#if LSTM_HAVE_PACKED
#define LSTM_PACKED_DISPATCH(SUF)                                                                \
    (lstm_packed_vector_bytes() == 64 ? lstm_gemm_nn_##SUF##_avx512 : lstm_gemm_nn_##SUF##_avx2)( \
        M, N, K, A, lda, packed, 0, NULL, 0, NULL, beta, C, ldc);
#define LSTM_PACKED2_DISPATCH(SUF)                                                               \
    (lstm_packed_vector_bytes() == 64 ? lstm_gemm_nn_##SUF##_avx512 : lstm_gemm_nn_##SUF##_avx2)( \
        M, N, K, A, lda, packed, K2, A2, lda2, packed2, beta, C, ldc);
#define LSTM_TN2_DISPATCH(SUF)                                                                   \
    (lstm_packed_vector_bytes() == 64 ? lstm_gemm_tn_##SUF##_avx512 : lstm_gemm_tn_##SUF##_avx2)( \
        M, N, K, A, lda, B, ldb, beta, C, ldc, M2, A2, lda2, C2, ldc2, colsum);
#else
#define LSTM_PACKED_DISPATCH(SUF) (void)M; (void)N; (void)K; (void)A; (void)lda; (void)packed;   \
    (void)beta; (void)C; (void)ldc;
#define LSTM_PACKED2_DISPATCH(SUF) (void)M; (void)N; (void)K; (void)A; (void)lda; (void)packed;  \
    (void)K2; (void)A2; (void)lda2; (void)packed2; (void)beta; (void)C; (void)ldc;
#define LSTM_TN2_DISPATCH(SUF) (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; \
    (void)beta; (void)C; (void)ldc; (void)M2; (void)A2; (void)lda2; (void)C2; (void)ldc2;        \
    (void)colsum;
#endif

LSTM_DEFINE_PACKED_API(float, f)
LSTM_DEFINE_PACKED_API(double, d)

#endif /* LSTM_FAST_GEMM_H */
