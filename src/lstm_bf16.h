/*
 * bfloat16 products for reduced-precision inference:
 *
 *     C (M x N) = beta C + A1 (M x K1) op(B1) + A2 (M x K2) op(B2),   beta 0 or 1
 *
 * op(B) is rounded to bf16 once, when packed; A (float32: x_t, h_{t-1}, r_t) is rounded to bf16
 * (to nearest even, as vcvtne2ps2bf16 does) as the product reads it, into a buffer the caller
 * gives. Products of two bf16 are exact in float32; the sums are float32, from beta C, in k order.
 *
 * Three routes, with those numerics (only the order of the float32 sums differs):
 *   - AMX tiles (tdpbf16ps): blocks of 32 rows x 32 columns in four 16 x 16 float32 tiles;
 *   - AVX512-BF16 (vdpbf16ps): tiles of up to 12 rows x 32 columns in 24 vector sums;
 *   - float32: the engine's float32 products (lstm_gemm.h, or BLAS) on the rounded values, which
 *     they multiply exactly: for CPUs without the bf16 units, and for small batches, where a
 *     tile's 16 rows would be mostly empty (see lstm_bf16_route).
 * The first two read one packed layout: panels of NB = 16 columns (one AMX tile's width, one
 * 512-bit vector's float lanes), K padded with zeros to a multiple of KB = 32 (one tile's depth),
 * and within a panel the k pairs one after another, each 16 columns x 2 k (64 bytes): element
 * (k, j) of op(B) at [j / 16][k / 2][j % 16][k % 2] (the "VNNI" order the tile and vdpbf16ps
 * read). The float32 route packs the rounded weights as lstm_gemm.h packs float32 ones.
 * The bf16 units flush subnormal inputs and results to zero; the float32 route keeps those below
 * 1e-38 that rounding leaves (none: rounding flushes subnormal inputs too, as the units do).
 */
#ifndef LSTM_FAST_BF16_H
#define LSTM_FAST_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <time.h>

#include "lstm_peak.h"

#define LSTM_BF16_NB 16
#define LSTM_BF16_KB 32
#define LSTM_BF16_MB 32

enum { LSTM_BF16_FLOAT32 = 1, LSTM_BF16_AVX512 = 2, LSTM_BF16_AMX = 3 };

/* K padded to whole tiles' depth. */
static inline ptrdiff_t lstm_bf16_depth(ptrdiff_t K)
{
    return (K + LSTM_BF16_KB - 1) / LSTM_BF16_KB * LSTM_BF16_KB;
}

/* uint16 elements of the packed form of a (K x N) right operand. */
static ptrdiff_t lstm_bf16_packed_size(ptrdiff_t K, ptrdiff_t N)
{
    return lstm_bf16_depth(K) * ((N + LSTM_BF16_NB - 1) / LSTM_BF16_NB * LSTM_BF16_NB);
}

/* uint16 elements of the row buffer a product of depths K1 + K2 needs (one per thread). */
static ptrdiff_t lstm_bf16_buffer_size(ptrdiff_t K1, ptrdiff_t K2)
{
    return LSTM_BF16_MB * (lstm_bf16_depth(K1) + lstm_bf16_depth(K2));
}

/* x rounded to bfloat16 as vcvtne2ps2bf16 rounds it: to nearest even; zero and subnormals to a
 * zero of their sign; NaN stays NaN (quiet). */
static inline uint16_t lstm_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float lstm_bf16_value(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* packed <- op(B) (K x N) rounded to bf16, laid out as above; op(B) = B (row-major K x N) or B^T
 * (trans: B row-major N x K). */
static void lstm_pack_bf16(int trans, ptrdiff_t K, ptrdiff_t N, const float *B, ptrdiff_t ldb,
                           uint16_t *packed)
{
    ptrdiff_t depth = lstm_bf16_depth(K);
    memset(packed, 0, (size_t)lstm_bf16_packed_size(K, N) * sizeof(uint16_t));
    for (ptrdiff_t j = 0; j < N; j++)
        for (ptrdiff_t k = 0; k < K; k++)
            packed[j / LSTM_BF16_NB * LSTM_BF16_NB * depth + k / 2 * 2 * LSTM_BF16_NB
                   + j % LSTM_BF16_NB * 2 + k % 2] = lstm_bf16(trans ? B[j * ldb + k]
                                                                   : B[k * ldb + j]);
}

/* The segments of one product: A1 (K1 wide) then A2 (K2 wide; K2 = 0: none), their packed
 * operands, and the depths and row width of the buffer they are converted into. */
typedef struct {
    ptrdiff_t K1, lda1, K2, lda2, d1, d2, width;
    const float *A1, *A2;
    const uint16_t *B1, *B2;
} lstm_bf16_operands;

static lstm_bf16_operands lstm_bf16_operands_of(ptrdiff_t K1, const float *A1, ptrdiff_t lda1,
                                                const uint16_t *B1, ptrdiff_t K2, const float *A2,
                                                ptrdiff_t lda2, const uint16_t *B2)
{
    lstm_bf16_operands o = {K1, lda1, K2, lda2, lstm_bf16_depth(K1), lstm_bf16_depth(K2), 0,
                            A1, A2, B1, B2};
    o.width = o.d1 + o.d2;
    return o;
}

/* The float32 route's operands: a (n) rounded to bf16 values in place (packed weights), and
 * buf (rows x (K1 + K2)) <- rows m0 .. m0 + rows - 1 of [A1 | A2] rounded. */
LSTM_DISPATCH static void lstm_bf16_round(ptrdiff_t n, float *a)
{
    for (ptrdiff_t i = 0; i < n; i++)
        a[i] = lstm_bf16_value(lstm_bf16(a[i]));
}

LSTM_DISPATCH static void lstm_bf16_round_rows(ptrdiff_t m0, ptrdiff_t rows, ptrdiff_t K1,
                                               const float *A1, ptrdiff_t lda1, ptrdiff_t K2,
                                               const float *A2, ptrdiff_t lda2, float *buf)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = buf + r * (K1 + K2);
        for (ptrdiff_t k = 0; k < K1; k++)
            row[k] = lstm_bf16_value(lstm_bf16(A1[(m0 + r) * lda1 + k]));
        for (ptrdiff_t k = 0; k < K2; k++)
            row[K1 + k] = lstm_bf16_value(lstm_bf16(A2[(m0 + r) * lda2 + k]));
    }
}

#if LSTM_HAVE_PACKED
#include <immintrin.h>

#define LSTM_BF16_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"
#define LSTM_AMX_TARGET "avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16"

/* The first n of 16 lanes (all from 16 up, none from 0 down), as a mask. */
static inline __mmask16 lstm_bf16_lanes(ptrdiff_t n)
{
    return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* buf (MB x width) <- rows m0 .. m0 + rows - 1 of [A1 | A2] in bf16, each segment padded with
 * zeros to its depth, and zero rows after them: 32 floats a conversion. */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_rows_avx512(
    const lstm_bf16_operands *o, ptrdiff_t m0, ptrdiff_t rows, uint16_t *buf)
{
    memset(buf + rows * o->width, 0, (size_t)((LSTM_BF16_MB - rows) * o->width) * 2);
    for (ptrdiff_t r = 0; r < rows; r++)
        for (int s = 0; s < 2; s++) {
            ptrdiff_t K = s ? o->K2 : o->K1, depth = s ? o->d2 : o->d1;
            const float *a = s ? o->A2 + (m0 + r) * o->lda2 : o->A1 + (m0 + r) * o->lda1;
            uint16_t *dst = buf + r * o->width + (s ? o->d1 : 0);
            for (ptrdiff_t k = 0; k < depth; k += 32) {
                __m512 a0 = _mm512_maskz_loadu_ps(lstm_bf16_lanes(K - k), a + k);
                __m512 a1 = _mm512_maskz_loadu_ps(lstm_bf16_lanes(K - k - 16), a + k + 16);
                _mm512_storeu_si512(dst + k, (__m512i)_mm512_cvtne2ps_pbh(a1, a0));
            }
        }
}

/* One vdpbf16ps tile: `rows` (<= 12) rows of buf times `nv` (1 or 2) panels from column n0 of
 * N, into C from beta C (rows and nv constants where inlined). */
static inline __attribute__((always_inline, target(LSTM_BF16_TARGET))) void lstm_bf16_tile_avx512(
    const int rows, const int nv, const lstm_bf16_operands *o, const uint16_t *buf, ptrdiff_t n0,
    ptrdiff_t N, float beta, float *C, ptrdiff_t ldc)
{
    __m512 acc0[12], acc1[12];
    __mmask16 m0 = lstm_bf16_lanes(N - n0), m1 = lstm_bf16_lanes(N - n0 - LSTM_BF16_NB);
    _Pragma("GCC unroll 12")
    for (int r = 0; r < rows; r++) {
        acc0[r] = beta != 0 ? _mm512_maskz_loadu_ps(m0, C + r * ldc + n0) : _mm512_setzero_ps();
        if (nv == 2)
            acc1[r] = beta != 0 ? _mm512_maskz_loadu_ps(m1, C + r * ldc + n0 + LSTM_BF16_NB)
                                : _mm512_setzero_ps();
    }
    for (int s = 0; s < 2; s++) {
        ptrdiff_t depth = s ? o->d2 : o->d1;
        const uint16_t *a = buf + (s ? o->d1 : 0);
        const uint16_t *b = (s ? o->B2 : o->B1) + n0 * depth;  /* panel n0 / 16, then the next */
        for (ptrdiff_t k = 0; k < depth; k += 2) {
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + k * LSTM_BF16_NB), b1;
            if (nv == 2)
                b1 = (__m512bh)_mm512_loadu_si512(b + (depth + k) * LSTM_BF16_NB);
            _Pragma("GCC unroll 12")
            for (int r = 0; r < rows; r++) {
                int32_t pair;
                memcpy(&pair, a + r * o->width + k, sizeof pair);
                __m512bh ar = (__m512bh)_mm512_set1_epi32(pair);
                acc0[r] = _mm512_dpbf16_ps(acc0[r], ar, b0);
                if (nv == 2)
                    acc1[r] = _mm512_dpbf16_ps(acc1[r], ar, b1);
            }
        }
    }
    _Pragma("GCC unroll 12")
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(C + r * ldc + n0, m0, acc0[r]);
        if (nv == 2)
            _mm512_mask_storeu_ps(C + r * ldc + n0 + LSTM_BF16_NB, m1, acc1[r]);
    }
}

#define LSTM_BF16_TILE(R, nv)                                                                    \
    lstm_bf16_tile_avx512(R, nv, o, buf + m * o->width, n0, N, beta, C + m * ldc, ldc)

/* The rows in buf (<= MB) times columns [0, N) with vdpbf16ps: tiles of nearly equal height (at
 * most 12 rows) by 32 columns (16 for a last panel alone). */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_block_avx512(
    const lstm_bf16_operands *o, ptrdiff_t rows, ptrdiff_t N, const uint16_t *buf, float beta,
    float *C, ptrdiff_t ldc)
{
    ptrdiff_t tiles = LSTM_TILES(rows, 12);
    for (ptrdiff_t n0 = 0; n0 < N; n0 += 2 * LSTM_BF16_NB) {
        for (ptrdiff_t i = 0; i < tiles; i++) {
            ptrdiff_t m = LSTM_TILE_ROW(rows, i, tiles), mr = LSTM_TILE_ROW(rows, i + 1, tiles) - m;
            if (N - n0 > LSTM_BF16_NB) {
                LSTM_FOR_HEIGHT(mr, LSTM_BF16_TILE, 2)
            } else {
                LSTM_FOR_HEIGHT(mr, LSTM_BF16_TILE, 1)
            }
        }
    }
}

/* AMX: tiles 0-3 hold C (rows 0-15 and 16-31 of a block, columns n0 .. n0 + 15 and + 16 ..
 * + 31), 4-5 the two row halves of buf, 6-7 two panels of B; each is 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} lstm_amx_config;

/* Every product here configures the eight tiles alike: 16 rows of 64 bytes. */
__attribute__((target("amx-tile"))) static inline void lstm_amx_load_config(void)
{
    lstm_amx_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
}

/* Where the tiles read and write a 32 x 32 block of C that has `rows` x `cols` in C (row-major,
 * ldc): C itself if that fills the tiles used (`two` row halves, `wide` two panels), else a copy
 * in the caller's `edge` (32 x 32, zeros outside C). */
typedef struct {
    float *c;
    ptrdiff_t ld;
    int full;
} lstm_amx_c;

/* Tiles 0-3 <- beta times the block of C (see lstm_amx_c; two and wide constants where inlined). */
static inline __attribute__((always_inline, target(LSTM_AMX_TARGET))) lstm_amx_c lstm_amx_c_load(
    const int two, const int wide, float *C, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols,
    float beta, float *edge)
{
    lstm_amx_c t = {C, ldc, rows >= (two ? 32 : 16) && cols >= (wide ? 32 : 16)};
    if (!t.full) {
        t.c = edge;
        t.ld = 32;
        memset(edge, 0, 32 * 32 * sizeof(float));
        for (ptrdiff_t r = 0; beta != 0 && r < rows; r++)
            memcpy(edge + r * 32, C + r * ldc, (size_t)cols * sizeof(float));
    }
    ptrdiff_t stride = t.ld * (ptrdiff_t)sizeof(float);
    if (beta != 0 || !t.full) {
        _tile_loadd(0, t.c, stride);
        if (wide)
            _tile_loadd(1, t.c + 16, stride);
        if (two)
            _tile_loadd(2, t.c + 16 * t.ld, stride);
        if (two && wide)
            _tile_loadd(3, t.c + 16 * t.ld + 16, stride);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    return t;
}

/* The block of C <- tiles 0-3 (through the edge copy if there was one). */
static inline __attribute__((always_inline, target(LSTM_AMX_TARGET))) void lstm_amx_c_store(
    const int two, const int wide, lstm_amx_c t, float *C, ptrdiff_t ldc, ptrdiff_t rows,
    ptrdiff_t cols)
{
    ptrdiff_t stride = t.ld * (ptrdiff_t)sizeof(float);
    _tile_stored(0, t.c, stride);
    if (wide)
        _tile_stored(1, t.c + 16, stride);
    if (two)
        _tile_stored(2, t.c + 16 * t.ld, stride);
    if (two && wide)
        _tile_stored(3, t.c + 16 * t.ld + 16, stride);
    if (!t.full)
        for (ptrdiff_t r = 0; r < rows; r++)
            memcpy(C + r * ldc, t.c + r * 32, (size_t)cols * sizeof(float));
}

/* One block of C: rows 0-15 (and 16-31 if `two`) of buf times one panel from column n0 (two if
 * `wide`), from beta C, over both segments (two and wide constants where inlined). */
static inline __attribute__((always_inline, target(LSTM_AMX_TARGET))) void lstm_bf16_amx_block(
    const int two, const int wide, const lstm_bf16_operands *o, const uint16_t *buf,
    ptrdiff_t rows, ptrdiff_t n0, ptrdiff_t N, float beta, float *C, ptrdiff_t ldc)
{
    float edge[32 * 32] __attribute__((aligned(64)));
    ptrdiff_t cols = N - n0 < 32 ? N - n0 : 32;
    ptrdiff_t a_stride = o->width * (ptrdiff_t)sizeof(uint16_t);
    lstm_amx_c t = lstm_amx_c_load(two, wide, C + n0, ldc, rows, cols, beta, edge);
    for (int s = 0; s < 2; s++) {
        ptrdiff_t depth = s ? o->d2 : o->d1;
        const uint16_t *a = buf + (s ? o->d1 : 0);
        const uint16_t *b = (s ? o->B2 : o->B1) + n0 * depth;  /* panel n0 / 16, then the next */
        for (ptrdiff_t k = 0; k < depth; k += LSTM_BF16_KB) {
            _tile_loadd(4, a + k, a_stride);
            _tile_loadd(6, b + k * LSTM_BF16_NB, 64);
            _tile_dpbf16ps(0, 4, 6);
            if (wide) {
                _tile_loadd(7, b + (depth + k) * LSTM_BF16_NB, 64);
                _tile_dpbf16ps(1, 4, 7);
            }
            if (two) {
                _tile_loadd(5, a + 16 * o->width + k, a_stride);
                _tile_dpbf16ps(2, 5, 6);
            }
            if (two && wide)
                _tile_dpbf16ps(3, 5, 7);
        }
    }
    lstm_amx_c_store(two, wide, t, C + n0, ldc, rows, cols);
}

/* The whole product with AMX tiles, MB rows at a time. */
__attribute__((target(LSTM_AMX_TARGET))) static void lstm_bf16_gemm_amx(
    const lstm_bf16_operands *o, ptrdiff_t M, ptrdiff_t N, float beta, float *C, ptrdiff_t ldc,
    uint16_t *buf)
{
    lstm_amx_load_config();
    for (ptrdiff_t m0 = 0; m0 < M; m0 += LSTM_BF16_MB) {
        ptrdiff_t rows = M - m0 < LSTM_BF16_MB ? M - m0 : LSTM_BF16_MB;
        float *c = C + m0 * ldc;
        lstm_bf16_rows_avx512(o, m0, rows, buf);
        for (ptrdiff_t n0 = 0; n0 < N; n0 += 2 * LSTM_BF16_NB) {
            int wide = N - n0 > LSTM_BF16_NB;
            if (rows > 16 && wide)
                lstm_bf16_amx_block(1, 1, o, buf, rows, n0, N, beta, c, ldc);
            else if (rows > 16)
                lstm_bf16_amx_block(1, 0, o, buf, rows, n0, N, beta, c, ldc);
            else if (wide)
                lstm_bf16_amx_block(0, 1, o, buf, rows, n0, N, beta, c, ldc);
            else
                lstm_bf16_amx_block(0, 0, o, buf, rows, n0, N, beta, c, ldc);
        }
    }
    _tile_release();
}

/* The whole product with vdpbf16ps, MB rows at a time. */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_gemm_avx512(
    const lstm_bf16_operands *o, ptrdiff_t M, ptrdiff_t N, float beta, float *C, ptrdiff_t ldc,
    uint16_t *buf)
{
    for (ptrdiff_t m0 = 0; m0 < M; m0 += LSTM_BF16_MB) {
        ptrdiff_t rows = M - m0 < LSTM_BF16_MB ? M - m0 : LSTM_BF16_MB;
        lstm_bf16_rows_avx512(o, m0, rows, buf);
        lstm_bf16_block_avx512(o, rows, N, buf, beta, C + m0 * ldc, ldc);
    }
}

/* The weight gradients' products, C = beta C + A^T B (A K x M, B K x N, row-major: X^T dA and
 * the like, K every packed row), on vdpbf16ps: K is taken KC rows at a time, and in a block each
 * pair of rows k, k + 1 of A, and of each 32-column panel of B, is rounded and interleaved into
 * 32-bit pairs (the order vdpbf16ps reads: k low, k + 1 high; a last odd row pairs with zero). */
#define LSTM_BF16_KC 256

/* Bytes of the buffer lstm_bf16_gemm_tn takes: A's and A2's pairs of a block (rows rounded up
 * to 16 for the AMX tiles), and B's panel. */
static ptrdiff_t lstm_bf16_tn_buffer_bytes(ptrdiff_t M, ptrdiff_t M2)
{
    return LSTM_BF16_KC / 2 * ((M + 15) / 16 * 16 + (M2 + 15) / 16 * 16 + 2 * LSTM_BF16_NB)
           * (ptrdiff_t)sizeof(uint32_t);
}

/* dst (w 32-bit lanes) <- (bf16(r0[j]), bf16(r1[j])) for j < n, zeros from n; r1 NULL: zeros. */
__attribute__((target(LSTM_BF16_TARGET))) static inline void lstm_bf16_pairs(
    ptrdiff_t n, ptrdiff_t w, const float *r0, const float *r1, uint32_t *dst)
{
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                           24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                           16, 0);
    for (ptrdiff_t j = 0; j < w; j += 16) {
        __mmask16 in = lstm_bf16_lanes(n - j);
        __m512 lo = _mm512_maskz_loadu_ps(in, r0 + j);
        __m512 hi = r1 != NULL ? _mm512_maskz_loadu_ps(in, r1 + j) : _mm512_setzero_ps();
        /* 16 bf16 of r0, then 16 of r1; interleaved: element 2j from r0, 2j + 1 from r1 */
        __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        _mm512_mask_storeu_epi32(dst + j, lstm_bf16_lanes(w - j),
                                 _mm512_permutexvar_epi16(order, both));
    }
}

/* One tile of C = beta C + A^T B: `rows` (<= 12) rows of A^T from pairs a (a row's pair i at
 * a[i * lda]) times 16 nv (1 or 2) columns of pairs b (pair i at b[i * 32]), `ncols` of them in
 * C (rows and nv constants where inlined). */
static inline __attribute__((always_inline, target(LSTM_BF16_TARGET))) void lstm_bf16_tn_tile(
    const int rows, const int nv, ptrdiff_t pairs, const uint32_t *a, ptrdiff_t lda,
    const uint32_t *b, float beta, float *C, ptrdiff_t ldc, ptrdiff_t ncols)
{
    __m512 acc0[12], acc1[12];
    __mmask16 m0 = lstm_bf16_lanes(ncols), m1 = lstm_bf16_lanes(ncols - LSTM_BF16_NB);
    _Pragma("GCC unroll 12")
    for (int r = 0; r < rows; r++) {
        acc0[r] = beta != 0 ? _mm512_maskz_loadu_ps(m0, C + r * ldc) : _mm512_setzero_ps();
        if (nv == 2)
            acc1[r] = beta != 0 ? _mm512_maskz_loadu_ps(m1, C + r * ldc + LSTM_BF16_NB)
                                : _mm512_setzero_ps();
    }
    for (ptrdiff_t i = 0; i < pairs; i++) {
        /* sum over k of A[k][r] B[k][j], two k at a time            (rows x 2) (2 x 16 nv) */
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + i * 2 * LSTM_BF16_NB), b1;
        if (nv == 2)
            b1 = (__m512bh)_mm512_loadu_si512(b + i * 2 * LSTM_BF16_NB + LSTM_BF16_NB);
        _Pragma("GCC unroll 12")
        for (int r = 0; r < rows; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[i * lda + r]);
            acc0[r] = _mm512_dpbf16_ps(acc0[r], ar, b0);
            if (nv == 2)
                acc1[r] = _mm512_dpbf16_ps(acc1[r], ar, b1);
        }
    }
    _Pragma("GCC unroll 12")
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, acc0[r]);
        if (nv == 2)
            _mm512_mask_storeu_ps(C + r * ldc + LSTM_BF16_NB, m1, acc1[r]);
    }
}

#define LSTM_BF16_TN_TILE(R, nv)                                                                 \
    lstm_bf16_tn_tile(R, nv, pairs, a + m, M, b, beta, C + m * ldc, ldc, ncols)

/* C (M x ncols) = beta C + A^T B for one block: A's pairs a (pair i of row m at a[i * M + m]),
 * one panel's pairs b, in tiles of nearly equal height (at most 12 rows). */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_tn_block(
    ptrdiff_t M, ptrdiff_t pairs, const uint32_t *a, const uint32_t *b, float beta, float *C,
    ptrdiff_t ldc, ptrdiff_t ncols)
{
    for (ptrdiff_t i = 0, tiles = LSTM_TILES(M, 12); i < tiles; i++) {
        ptrdiff_t m = LSTM_TILE_ROW(M, i, tiles), mr = LSTM_TILE_ROW(M, i + 1, tiles) - m;
        if (ncols > LSTM_BF16_NB) {
            LSTM_FOR_HEIGHT(mr, LSTM_BF16_TN_TILE, 2)
        } else {
            LSTM_FOR_HEIGHT(mr, LSTM_BF16_TN_TILE, 1)
        }
    }
}

/* sums (n <= 32) <- [sums +] the sums of the n columns of rows (kc x n, ld ldb), in k order. */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_column_sums(
    ptrdiff_t kc, ptrdiff_t n, const float *rows, ptrdiff_t ldb, int add, float *sums)
{
    __mmask16 m0 = lstm_bf16_lanes(n), m1 = lstm_bf16_lanes(n - LSTM_BF16_NB);
    __m512 s0 = add ? _mm512_maskz_loadu_ps(m0, sums) : _mm512_setzero_ps();
    __m512 s1 = add ? _mm512_maskz_loadu_ps(m1, sums + LSTM_BF16_NB) : _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < kc; k++) {
        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, rows + k * ldb));
        s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, rows + k * ldb + LSTM_BF16_NB));
    }
    _mm512_mask_storeu_ps(sums, m0, s0);
    _mm512_mask_storeu_ps(sums + LSTM_BF16_NB, m1, s1);
}

/* A's rows k0 .. k0 + kc - 1 (M wide) as pairs: pair i of row m at pairs[i * M + m]. */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_row_pairs(
    ptrdiff_t kc, ptrdiff_t M, const float *A, ptrdiff_t lda, uint32_t *pairs)
{
    for (ptrdiff_t k = 0; k < kc; k += 2)
        lstm_bf16_pairs(M, M, A + k * lda, k + 1 < kc ? A + (k + 1) * lda : NULL,
                        pairs + k / 2 * M);
}

/* B's panel of a block (kc rows, ncols <= 32 columns from `rows`, ld ldb) as pairs b (pair i of
 * column j at b[i * 32 + j]), and zero pairs after them up to `padded`. */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_panel_pairs(
    ptrdiff_t kc, ptrdiff_t padded, ptrdiff_t ncols, const float *rows, ptrdiff_t ldb,
    uint32_t *b)
{
    for (ptrdiff_t k = 0; k < kc; k += 2)
        lstm_bf16_pairs(ncols, 2 * LSTM_BF16_NB, rows + k * ldb,
                        k + 1 < kc ? rows + (k + 1) * ldb : NULL, b + k / 2 * 2 * LSTM_BF16_NB);
    memset(b + (kc + 1) / 2 * 2 * LSTM_BF16_NB, 0,
           (size_t)(padded - (kc + 1) / 2) * 2 * LSTM_BF16_NB * sizeof(uint32_t));
}

/* C (M x N) = beta C + A^T B and C2 (M2 x N) = beta C2 + A2^T B with vdpbf16ps, the operands
 * rounded to bf16 (see above), from float32 arrays as lstm_gemm_tn2 takes them (M2 = 0: no
 * second product); colsum (N; unless NULL) <- the float32 sums of B's columns. buf: the caller's
 * lstm_bf16_tn_buffer_bytes(M, M2). */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_gemm_tn_avx512(
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda, const float *B,
    ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc, ptrdiff_t M2, const float *A2,
    ptrdiff_t lda2, float *C2, ptrdiff_t ldc2, float *colsum, void *buf)
{
    uint32_t *a = (uint32_t *)buf, *a2 = a + LSTM_BF16_KC / 2 * M;
    uint32_t *b = a2 + LSTM_BF16_KC / 2 * M2;
    for (ptrdiff_t k0 = 0; k0 < K; k0 += LSTM_BF16_KC) {
        ptrdiff_t kc = K - k0 < LSTM_BF16_KC ? K - k0 : LSTM_BF16_KC, pairs = (kc + 1) / 2;
        float first = k0 == 0 ? beta : 1.0f;
        lstm_bf16_row_pairs(kc, M, A + k0 * lda, lda, a);
        if (M2 > 0)
            lstm_bf16_row_pairs(kc, M2, A2 + k0 * lda2, lda2, a2);
        for (ptrdiff_t p = 0; p < N; p += 2 * LSTM_BF16_NB) {
            ptrdiff_t ncols = N - p < 2 * LSTM_BF16_NB ? N - p : 2 * LSTM_BF16_NB;
            const float *rows = B + k0 * ldb + p;
            lstm_bf16_panel_pairs(kc, pairs, ncols, rows, ldb, b);
            if (colsum != NULL)
                lstm_bf16_column_sums(kc, ncols, rows, ldb, k0 > 0, colsum + p);
            lstm_bf16_tn_block(M, pairs, a, b, first, C + p, ldc, ncols);
            if (M2 > 0)
                lstm_bf16_tn_block(M2, pairs, a2, b, first, C2 + p, ldc2, ncols);
        }
    }
}

/* A's rows k0 .. k0 + kc - 1 (M wide) as the rows of A^T that AMX tiles load: pair i of row m at
 * t[m * KC / 2 + i]; pairs from (kc + 1) / 2 to `padded`, and rows from M to a multiple of 16,
 * zero. Each 16 pairs of a row pair of A go to 16 rows of t at once (a scatter). */
__attribute__((target(LSTM_BF16_TARGET))) static void lstm_bf16_amx_rows_t(
    ptrdiff_t kc, ptrdiff_t padded, ptrdiff_t M, const float *A, ptrdiff_t lda, uint32_t *t)
{
    const ptrdiff_t kp = LSTM_BF16_KC / 2, rows = (M + 15) / 16 * 16;
    const __m512i apart = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                              5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32((int)kp));
    uint32_t pairs[16] __attribute__((aligned(64)));
    for (ptrdiff_t k = 0; k < kc; k += 2)
        for (ptrdiff_t m = 0; m < rows; m += 16) {
            lstm_bf16_pairs(M - m, 16, A + k * lda + m, k + 1 < kc ? A + (k + 1) * lda + m : NULL,
                            pairs);
            _mm512_i32scatter_epi32(t + m * kp + k / 2, apart, _mm512_load_si512(pairs), 4);
        }
    for (ptrdiff_t m = 0; m < rows; m++)
        memset(t + m * kp + (kc + 1) / 2, 0, (size_t)(padded - (kc + 1) / 2) * sizeof(uint32_t));
}

/* C (M x ncols) = beta C + A^T B for one block with AMX tiles: rows of A^T t (see
 * lstm_bf16_amx_rows_t, `padded` pairs), one panel's pairs b (see lstm_bf16_panel_pairs), 32
 * rows x 32 columns at a time. */
__attribute__((target(LSTM_AMX_TARGET))) static void lstm_bf16_tn_amx_block(
    ptrdiff_t M, ptrdiff_t padded, const uint32_t *t, const uint32_t *b, float beta, float *C,
    ptrdiff_t ldc, ptrdiff_t ncols)
{
    const ptrdiff_t stride = LSTM_BF16_KC / 2 * (ptrdiff_t)sizeof(uint32_t);
    float edge[32 * 32] __attribute__((aligned(64)));
    int wide = ncols > LSTM_BF16_NB;
    for (ptrdiff_t m0 = 0; m0 < M; m0 += 32) {
        ptrdiff_t rows = M - m0 < 32 ? M - m0 : 32;
        int two = rows > 16;
        const uint32_t *a = t + m0 * LSTM_BF16_KC / 2;
        float *c = C + m0 * ldc;
        lstm_amx_c tiles = lstm_amx_c_load(two, wide, c, ldc, rows, ncols, beta, edge);
        for (ptrdiff_t i = 0; i < padded; i += 16) {
            /* sum over 32 k of A[k][m] B[k][j]             (16 x 32) (32 x 16), up to 4 tiles */
            _tile_loadd(4, a + i, stride);
            _tile_loadd(6, b + i * 2 * LSTM_BF16_NB, 2 * LSTM_BF16_NB * sizeof(uint32_t));
            _tile_dpbf16ps(0, 4, 6);
            if (wide) {
                _tile_loadd(7, b + i * 2 * LSTM_BF16_NB + LSTM_BF16_NB,
                            2 * LSTM_BF16_NB * sizeof(uint32_t));
                _tile_dpbf16ps(1, 4, 7);
            }
            if (two) {
                _tile_loadd(5, a + 16 * LSTM_BF16_KC / 2 + i, stride);
                _tile_dpbf16ps(2, 5, 6);
            }
            if (two && wide)
                _tile_dpbf16ps(3, 5, 7);
        }
        lstm_amx_c_store(two, wide, tiles, c, ldc, rows, ncols);
    }
}

/* lstm_bf16_gemm_tn_avx512's products with AMX tiles (its arguments, its buffer). */
__attribute__((target(LSTM_AMX_TARGET))) static void lstm_bf16_gemm_tn_amx(
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda, const float *B,
    ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc, ptrdiff_t M2, const float *A2,
    ptrdiff_t lda2, float *C2, ptrdiff_t ldc2, float *colsum, void *buf)
{
    uint32_t *a = (uint32_t *)buf, *a2 = a + LSTM_BF16_KC / 2 * ((M + 15) / 16 * 16);
    uint32_t *b = a2 + LSTM_BF16_KC / 2 * ((M2 + 15) / 16 * 16);
    lstm_amx_load_config();
    for (ptrdiff_t k0 = 0; k0 < K; k0 += LSTM_BF16_KC) {
        ptrdiff_t kc = K - k0 < LSTM_BF16_KC ? K - k0 : LSTM_BF16_KC;
        ptrdiff_t padded = ((kc + 1) / 2 + 15) / 16 * 16;  /* pairs: whole tiles of 16 */
        float first = k0 == 0 ? beta : 1.0f;
        lstm_bf16_amx_rows_t(kc, padded, M, A + k0 * lda, lda, a);
        if (M2 > 0)
            lstm_bf16_amx_rows_t(kc, padded, M2, A2 + k0 * lda2, lda2, a2);
        for (ptrdiff_t p = 0; p < N; p += 2 * LSTM_BF16_NB) {
            ptrdiff_t ncols = N - p < 2 * LSTM_BF16_NB ? N - p : 2 * LSTM_BF16_NB;
            const float *rows = B + k0 * ldb + p;
            lstm_bf16_panel_pairs(kc, padded, ncols, rows, ldb, b);
            if (colsum != NULL)
                lstm_bf16_column_sums(kc, ncols, rows, ldb, k0 > 0, colsum + p);
            lstm_bf16_tn_amx_block(M, padded, a, b, first, C + p, ldc, ncols);
            if (M2 > 0)
                lstm_bf16_tn_amx_block(M2, padded, a2, b, first, C2 + p, ldc2, ncols);
        }
    }
    _tile_release();
}

/* The bf16 peak of one core: back-to-back tdpbf16ps on four tiles from two A and two B tiles
 * already loaded (AMX), or twelve independent vdpbf16ps chains (AVX512-BF16), nothing else: the
 * ceiling of any bf16 product here, as lstm_peak.h's FMA chains are of float32 ones. Returns the
 * flops done (0 without a bf16 unit) and a value that depends on them through *sink. */
__attribute__((target(LSTM_AMX_TARGET), noinline)) static double lstm_bf16_chains_amx(
    long iters, float *sink)
{
    uint16_t operand[16 * 32] __attribute__((aligned(64)));
    float out[16 * 16] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++)
        operand[i] = lstm_bf16(1e-3f * (float)(i % 7));
    lstm_amx_load_config();
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, operand, 64); _tile_loadd(5, operand, 64);
    _tile_loadd(6, operand, 64); _tile_loadd(7, operand, 64);
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *sink = out[0];
    return 4.0 * 2 * 16 * 16 * 32 * (double)iters;
}

/* NAME(iters, sink): twelve independent chains acc = DOT(acc, a, b) of a dot-product instruction
 * on ACC sums set by SET, a and b OPERAND vectors of the 32-bit patterns A_BITS and B_BITS (set by
 * SET_bits) (b's known only
 * at run time, through *sink, so that nothing folds), nothing else; the sums end in *sink.
 * Returns the operations done: OPS each instruction. Through the intrinsics, whose chains GCC
 * keeps in registers (lstm_int8.h's asm vpdpbusd, given array elements, went through the stack
 * and measured 40% of the unit). */
#define LSTM_DOT_CHAINS(NAME, TARGET, ACC, OPERAND, SET, DOT, ADD, REDUCE, A_BITS, B_BITS, OPS)  \
__attribute__((target(TARGET), noinline)) static double NAME(long iters, float *sink)           \
{                                                                                                \
    ACC acc[12];                                                                                 \
    OPERAND a = (OPERAND)SET##_bits(A_BITS);                                                     \
    OPERAND b = (OPERAND)SET##_bits((int)((B_BITS) + (uint32_t)(*sink != 0)));                   \
    for (int c = 0; c < 12; c++)                                                                 \
        acc[c] = SET(c);                                                                         \
    for (long i = 0; i < iters; i++) {                                                           \
        _Pragma("GCC unroll 12")                                                                 \
        for (int c = 0; c < 12; c++)                                                             \
            acc[c] = DOT(acc[c], a, b);                                                          \
    }                                                                                            \
    ACC s = acc[0];                                                                              \
    for (int c = 1; c < 12; c++)                                                                 \
        s = ADD(s, acc[c]);                                                                      \
    *sink = (float)REDUCE(s);                                                                    \
    return 12.0 * (OPS) * (double)iters;                                                         \
}

/* Every lane of a vector of 32-bit patterns set to `bits`, for LSTM_DOT_CHAINS. */
#define _mm512_set1_ps_bits _mm512_set1_epi32
#define _mm512_set1_epi32_bits _mm512_set1_epi32
#define _mm256_set1_epi32_bits _mm256_set1_epi32

/* vdpbf16ps: 16 lanes, each two multiply-adds of bf16 pairs. */
LSTM_DOT_CHAINS(lstm_bf16_chains_avx512, LSTM_BF16_TARGET, __m512, __m512bh, _mm512_set1_ps,
                _mm512_dpbf16_ps, _mm512_add_ps, _mm512_reduce_add_ps, 0x3c003c00, 0x3a003a00u,
                16 * 2 * 2)

#include <sys/syscall.h>
#include <unistd.h>

/* Linux lends a process the AMX tile state only when asked (arch_prctl); 1 if granted. */
static int lstm_amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

#endif /* LSTM_HAVE_PACKED */

/* The bf16 unit of this CPU (LSTM_BF16_*), asked once: AMX where the CPU has it and Linux grants
 * it, else AVX512-BF16, else none (the float32 route). LSTM_FAST_KERNEL forces one: "amx",
 * "avx512_bf16" or "avx512_vnni" (the AVX-512 dot-product units, no AMX), or any of the lesser
 * kernels ("avx512", "avx2", "blas": the float32 route, on that kernel); *forced says whether
 * it was forced (it then runs at every batch). */
static int lstm_bf16_unit(int *forced)
{
    static int unit = 0, was_forced = 0;
    if (unit == 0) {
        const char *want = getenv("LSTM_FAST_KERNEL");
        int amx = want == NULL || strcmp(want, "amx") == 0;
        int dot = amx || strcmp(want, "avx512_bf16") == 0 || strcmp(want, "avx512_vnni") == 0;
        was_forced = want != NULL;
        unit = LSTM_BF16_FLOAT32;
#if LSTM_HAVE_PACKED
        __builtin_cpu_init();
        if (dot && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl") && lstm_packed_vector_bytes() == 64)
            unit = LSTM_BF16_AVX512;
        if (unit == LSTM_BF16_AVX512 && amx && __builtin_cpu_supports("amx-bf16")
            && __builtin_cpu_supports("amx-tile") && lstm_amx_permitted())
            unit = LSTM_BF16_AMX;
#endif
    }
    if (forced != NULL)
        *forced = was_forced;
    return unit;
}

static const char *lstm_bf16_unit_name(int unit)
{
    return unit == LSTM_BF16_AMX ? "amx" : unit == LSTM_BF16_AVX512 ? "avx512_bf16" : "float32";
}

/* Batches from which the tiles pay: below it a 16-row tile is mostly empty, and the float32 (or
 * vdpbf16ps) units did the steps faster (batch 1 measured 0.3-0.7x float32 through the tiles,
 * batch 16 2.5x). */
#define LSTM_AMX_MIN_BATCH 8

/* Whether vdpbf16ps outruns the float32 FMAs on this CPU, measured once: its chains against
 * lstm_fma_rate. It does twice the multiply-adds of an FMA an instruction,
 * but some cores issue it at half their FMA rate (measured 86 against 151 GF/s on an AMX Xeon). */
static int lstm_bf16_dot_pays(void)
{
    static int pays = -1;
    if (pays < 0) {
        pays = 0;
#if LSTM_HAVE_PACKED
        double best = 0;
        for (int run = 0; run < 3; run++) {  /* the best of three, as lstm_fma_rate */
            float sink = 0;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            double flops = lstm_bf16_chains_avx512(30000, &sink);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (lstm_seconds(&t0, &t1) > 0 && flops / lstm_seconds(&t0, &t1) > best)
                best = flops / lstm_seconds(&t0, &t1);
        }
        pays = best > 1.25 * lstm_fma_rate();
#endif
    }
    return pays;
}

/* The route of a product whose rows are a batch of `batch` sequences (a choice per call of
 * the engine, whose packed weights follow it). */
static int lstm_bf16_route(ptrdiff_t batch)
{
    int forced, unit = lstm_bf16_unit(&forced);
    if (forced || unit == LSTM_BF16_FLOAT32)
        return unit;
    if (unit == LSTM_BF16_AMX && batch >= LSTM_AMX_MIN_BATCH)
        return LSTM_BF16_AMX;
    return lstm_bf16_dot_pays() ? LSTM_BF16_AVX512 : LSTM_BF16_FLOAT32;
}

/* C (M x N) = beta C + A1 (M x K1) op(B1) + A2 (M x K2) op(B2) on the bf16 units (`route` AMX or
 * AVX512), B1 and B2 packed by lstm_pack_bf16 (K2 = 0: no second product); beta 0 or 1; buf: the
 * caller's lstm_bf16_buffer_size(K1, K2) elements, one buffer per thread. */
static void lstm_gemm_bf16(int route, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K1, const float *A1,
                           ptrdiff_t lda1, const uint16_t *B1, ptrdiff_t K2, const float *A2,
                           ptrdiff_t lda2, const uint16_t *B2, float beta, float *C,
                           ptrdiff_t ldc, uint16_t *buf)
{
    lstm_bf16_operands o = lstm_bf16_operands_of(K1, A1, lda1, B1, K2, A2, lda2, B2);
    if (M <= 0 || N <= 0)
        return;
#if LSTM_HAVE_PACKED
    if (route == LSTM_BF16_AMX)
        lstm_bf16_gemm_amx(&o, M, N, beta, C, ldc, buf);
    else if (route == LSTM_BF16_AVX512)
        lstm_bf16_gemm_avx512(&o, M, N, beta, C, ldc, buf);
#else
    (void)route; (void)o; (void)beta; (void)C; (void)ldc; (void)buf;
#endif
}

/* The weight gradients' products C = beta C + A^T B, C2 = beta C2 + A2^T B (and colsum) on the
 * bf16 units, `route` AMX or AVX512 (see lstm_bf16_gemm_tn_avx512, whose arguments and buffer
 * both take). */
static void lstm_bf16_gemm_tn(int route, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                              ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C,
                              ptrdiff_t ldc, ptrdiff_t M2, const float *A2, ptrdiff_t lda2,
                              float *C2, ptrdiff_t ldc2, float *colsum, void *buf)
{
#if LSTM_HAVE_PACKED
    if (route == LSTM_BF16_AMX)
        lstm_bf16_gemm_tn_amx(M, N, K, A, lda, B, ldb, beta, C, ldc, M2, A2, lda2, C2, ldc2,
                              colsum, buf);
    else if (route == LSTM_BF16_AVX512)
        lstm_bf16_gemm_tn_avx512(M, N, K, A, lda, B, ldb, beta, C, ldc, M2, A2, lda2, C2, ldc2,
                                 colsum, buf);
#else
    (void)route; (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C;
    (void)ldc; (void)M2; (void)A2; (void)lda2; (void)C2; (void)ldc2; (void)colsum; (void)buf;
#endif
}

/* `chains` (a unit's probe: lstm_bf16_chains_amx and the like; NULL: none) on `threads` threads
 * at once (OpenMP, where built with it); returns the operations of all, 0 for none. */
static double lstm_chains_threads(double (*chains)(long, float *), long iters, int threads,
                                  double *sink)
{
    double ops = 0, value = 0;
#ifdef _OPENMP
    #pragma omp parallel num_threads(threads) reduction(+:ops, value)
#else
    (void)threads;
#endif
    {
        float mine = 0;
        if (chains != NULL)
            ops += chains(iters, &mine);
        value += mine;
    }
    *sink = value;
    return ops;
}

/* The bf16 unit's probe (see lstm_chains_threads). */
static double lstm_bf16_chains_threads(long iters, int threads, double *sink)
{
    double (*chains)(long, float *) = NULL;
#if LSTM_HAVE_PACKED
    int unit = lstm_bf16_unit(NULL);
    chains = unit == LSTM_BF16_AMX ? lstm_bf16_chains_amx
             : unit == LSTM_BF16_AVX512 ? lstm_bf16_chains_avx512 : NULL;
#endif
    return lstm_chains_threads(chains, iters, threads, sink);
}

#endif /* LSTM_FAST_BF16_H */
