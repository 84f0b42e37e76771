/*
 * int8 products for reduced-precision inference (the scheme of fbgemm's and ONNX Runtime's
 * dynamically quantised LSTMs):
 *
 *     C (M x N) = beta C + sum over segments s of  diag(a_s) (Q(A_s) Q(B_s)) diag(w_s)
 *
 * op(B) (K x N) is quantised once, when packed, per output column j (a channel of the layer):
 * w_j = max_k |B[k][j]| / 127, Q(B)[k][j] = round(B[k][j] / w_j). Each row r of each A segment
 * (x_t, h_{t-1}, r_t: float32) is quantised as the product reads it, with its own scale a_r =
 * max_k |A[r][k]| / 127. Rounding is to nearest even, into [-127, 127]; an all-zero row or column
 * has scale 0 and quantises to zeros. The sums of products are exact (int32), then scaled in
 * float32 and added to C one segment after the other.
 *
 * Three routes, with the same numbers:
 *   - AMX tiles (tdpbssd, signed x signed into int32): blocks of 32 rows x 32 columns;
 *   - AVX512-VNNI (vpdpbusd, unsigned x signed): tiles of up to 12 rows x 32 columns. Its left
 *     operand is unsigned, so a row goes in as Q(A) + 128 (in [1, 255]) and the product takes
 *     back 128 sum_k Q(B)[k][j], a column sum kept with the packed form;
 *   - float32: the engine's float32 products of the quantised values as floats, exact while a
 *     sum stays below 2^24 (K up to 1040 at full scale; beyond, float32 rounds it by 6e-8).
 * The packed form starts with the N column scales (padded to 16), then the N column sums
 * (int32, padded alike; the float32 route has none), then the quantised operand: for AMX and
 * VNNI in panels of 16 columns, K padded to a multiple of 64, each group of 4 k one row of 16
 * columns x 4 (element (k, j) at [j / 16][k / 4][j % 16][k % 4]: the order both read); for the
 * float32 route as lstm_gemm.h packs float32 operands.
 */
#ifndef LSTM_FAST_INT8_H
#define LSTM_FAST_INT8_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lstm_bf16.h"

#define LSTM_I8_NB 16
#define LSTM_I8_KB 64
#define LSTM_I8_MB 32

enum { LSTM_I8_FLOAT32 = 4, LSTM_I8_VNNI = 5, LSTM_I8_AMX = 6, LSTM_I8_AVX_VNNI = 7 };

static inline ptrdiff_t lstm_i8_depth(ptrdiff_t K)
{
    return (K + LSTM_I8_KB - 1) / LSTM_I8_KB * LSTM_I8_KB;
}

/* Elements (padded) of the column scales, and of the column sums, of a packed form. */
static inline ptrdiff_t lstm_i8_scales(ptrdiff_t N)
{
    return (N + 15) / 16 * 16;
}

/* Bytes of the AMX and VNNI packed form of a (K x N) operand, scales and sums included. */
static ptrdiff_t lstm_i8_packed_bytes(ptrdiff_t K, ptrdiff_t N)
{
    return lstm_i8_scales(N) * (ptrdiff_t)(sizeof(float) + sizeof(int32_t))
           + lstm_i8_depth(K) * ((N + LSTM_I8_NB - 1) / LSTM_I8_NB * LSTM_I8_NB);
}

/* x quantised with scale s (0: zero), to nearest even, clamped to [-127, 127]. */
static inline float lstm_i8_quantize(float x, float s)
{
    if (s == 0.0f)
        return 0.0f;
    float q = nearbyintf(x / s);
    return q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
}

/* The scale of n values, `stride` apart: their largest magnitude / 127. */
static inline float lstm_i8_scale(const float *a, ptrdiff_t n, ptrdiff_t stride)
{
    float m = 0.0f;
    for (ptrdiff_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i * stride]));
    return m / 127.0f;
}

/* scales (N) <- the column scales of op(B) (K x N; B row-major K x N, or N x K if trans). */
static void lstm_i8_column_scales(int trans, ptrdiff_t K, ptrdiff_t N, const float *B,
                                  ptrdiff_t ldb, float *scales)
{
    memset(scales, 0, (size_t)lstm_i8_scales(N) * sizeof(float));
    for (ptrdiff_t j = 0; j < N; j++)
        scales[j] = trans ? lstm_i8_scale(B + j * ldb, K, 1) : lstm_i8_scale(B + j, K, ldb);
}

/* The column sums and the quantised operand of the AMX and VNNI packed form. */
static int32_t *lstm_i8_sums(void *packed, ptrdiff_t N)
{
    return (int32_t *)((float *)packed + lstm_i8_scales(N));
}

static int8_t *lstm_i8_quantized(void *packed, ptrdiff_t N)
{
    return (int8_t *)(lstm_i8_sums(packed, N) + lstm_i8_scales(N));
}

/* AMX and VNNI packed form (see the top) of op(B). */
static void lstm_pack_i8(int trans, ptrdiff_t K, ptrdiff_t N, const float *B, ptrdiff_t ldb,
                         void *packed)
{
    float *scales = (float *)packed;
    int32_t *sums = lstm_i8_sums(packed, N);
    int8_t *q = lstm_i8_quantized(packed, N);
    ptrdiff_t depth = lstm_i8_depth(K);
    lstm_i8_column_scales(trans, K, N, B, ldb, scales);
    memset(sums, 0, (size_t)lstm_i8_scales(N) * sizeof(int32_t));
    memset(q, 0, (size_t)(depth * ((N + LSTM_I8_NB - 1) / LSTM_I8_NB * LSTM_I8_NB)));
    for (ptrdiff_t j = 0; j < N; j++)
        for (ptrdiff_t k = 0; k < K; k++) {
            int8_t v = (int8_t)lstm_i8_quantize(trans ? B[j * ldb + k] : B[k * ldb + j],
                                                scales[j]);
            q[j / LSTM_I8_NB * LSTM_I8_NB * depth + k / 4 * 4 * LSTM_I8_NB + j % LSTM_I8_NB * 4
              + k % 4] = v;
            sums[j] += v;
        }
}

/* float32-route packed form: the scales, then op(B) packed as lstm_pack_f packs it, each
 * element then quantised in place with its column's scale (walking lstm_pack_f's panels). */
static void lstm_pack_i8_float(int trans, ptrdiff_t K, ptrdiff_t N, const float *B,
                               ptrdiff_t ldb, void *packed)
{
    float *scales = (float *)packed, *q = scales + lstm_i8_scales(N);
    ptrdiff_t nb = lstm_panel_width_f();
    lstm_i8_column_scales(trans, K, N, B, ldb, scales);
    lstm_pack_f(trans, K, N, B, ldb, q);
    if (nb == 0)  /* BLAS: one row-major panel */
        nb = N;
    for (ptrdiff_t p = 0; p < N; p += nb, q += nb * K) {
        ptrdiff_t width = nb == N ? N : LSTM_PANEL_COLS(N, p, nb);
        for (ptrdiff_t k = 0; k < K; k++)
            for (ptrdiff_t j = 0; j < width && p + j < N; j++)
                q[k * width + j] = lstm_i8_quantize(q[k * width + j], scales[p + j]);
    }
}

/* q (rows x K, row-major) <- rows of A quantised, as floats; scales (rows) their scales. */
LSTM_DISPATCH static void lstm_i8_rows_float(ptrdiff_t rows, ptrdiff_t K, const float *A,
                                             ptrdiff_t lda, float *q, float *scales)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        scales[r] = lstm_i8_scale(A + r * lda, K, 1);
        for (ptrdiff_t k = 0; k < K; k++)
            q[r * K + k] = lstm_i8_quantize(A[r * lda + k], scales[r]);
    }
}

/* lstm_i8_rows_avx512's quantised rows (see it) in portable C, for the 256-bit kernels: the same
 * scales, the same rounding, the same layout. */
LSTM_DISPATCH static void lstm_i8_rows_bytes(ptrdiff_t rows, ptrdiff_t K, const float *A,
                                             ptrdiff_t lda, int offset, ptrdiff_t rs,
                                             ptrdiff_t gs, int8_t *q, float *scales)
{
    ptrdiff_t depth = lstm_i8_depth(K);
    for (ptrdiff_t r = 0; r < rows; r++) {
        scales[r] = lstm_i8_scale(A + r * lda, K, 1);
        for (ptrdiff_t k = 0; k < depth; k++)
            q[r * rs + k / 4 * gs + k % 4] = (int8_t)(uint8_t)(
                (k < K ? (int)lstm_i8_quantize(A[r * lda + k], scales[r]) : 0) + offset);
    }
}

/* C (rows x N) = beta C + diag(row) acc diag(col), acc (rows x N, ld N). */
LSTM_DISPATCH static void lstm_i8_dequantize(ptrdiff_t rows, ptrdiff_t N, const float *acc,
                                             ptrdiff_t ld_acc, const float *row,
                                             const float *col, float beta, float *C,
                                             ptrdiff_t ldc)
{
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t j = 0; j < N; j++)
            C[r * ldc + j] = (beta != 0 ? C[r * ldc + j] : 0.0f)
                             + row[r] * col[j] * acc[r * ld_acc + j];
}

#if LSTM_HAVE_PACKED

#define LSTM_I8_TARGET "avx512f,avx512bw,avx512vl"
#define LSTM_VNNI_TARGET LSTM_I8_TARGET ",avx512vnni"

/* q <- rows 0 .. rows - 1 of A quantised to int8 plus `offset` (0 for AMX's signed operand, 128
 * for VNNI's unsigned one), as bytes: (r, k) at r * rs + k / 4 * gs + k % 4 (AMX: rows of depth
 * bytes; VNNI: each group of 4 k of the MB rows together, so a tile's broadcasts walk one
 * pointer). Padding after K holds the offset (a zero). scales (rows) <- their scales:
 * lstm_i8_quantize 16 at a time (the same division, the same rounding to nearest even under the
 * default MXCSR, clamped to [-127, 127]). */
__attribute__((target(LSTM_I8_TARGET))) static void lstm_i8_rows_avx512(
    ptrdiff_t rows, ptrdiff_t K, const float *A, ptrdiff_t lda, int offset, ptrdiff_t rs,
    ptrdiff_t gs, int8_t *q, float *scales)
{
    ptrdiff_t depth = lstm_i8_depth(K);
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512i shift = _mm512_set1_epi32(offset);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *a = A + r * lda;
        __m512 m = _mm512_setzero_ps();
        for (ptrdiff_t k = 0; k < K; k += 16) {
            __mmask16 lanes = lstm_bf16_lanes(K - k);
            m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(lanes, a + k)));
        }
        scales[r] = _mm512_reduce_max_ps(m) / 127.0f;
        __m512 s = _mm512_set1_ps(scales[r] != 0.0f ? scales[r] : 1.0f);
        for (ptrdiff_t k = 0; k < depth; k += 16) {
            __mmask16 lanes = scales[r] != 0.0f ? lstm_bf16_lanes(K - k) : 0;
            __m512 x = _mm512_div_ps(_mm512_maskz_loadu_ps(lanes, a + k), s);
            x = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT
                                                                       | _MM_FROUND_NO_EXC),
                                            lo), hi);
            /* in [-127, 255]: its low byte is the value, signed or (offset 128) unsigned */
            __m128i bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(x), shift));
            int8_t *dst = q + r * rs + k / 4 * gs;
            if (gs == 4) {
                _mm_storeu_si128((__m128i *)dst, bytes);
            } else {
                int8_t four[16];
                _mm_storeu_si128((__m128i *)four, bytes);
                for (int g = 0; g < 4; g++)
                    memcpy(dst + g * gs, four + 4 * g, 4);
            }
        }
    }
}

/* Exact int sums scaled into C: C[r][j] = beta C[r][j] + (a_r w_j) acc[r][j] for columns 0 .. 15
 * (lanes m0) and the next 16 (nv == 2) of a row, less 128 s_j (sums s: VNNI's rows, offset by
 * 128 to be unsigned) unless sums is NULL (AMX's, signed). As lstm_i8_dequantize computes it. */
static inline __attribute__((always_inline, target(LSTM_I8_TARGET))) void lstm_i8_store(
    const int nv, __m512i acc0, __m512i acc1, float row_scale, const float *col,
    const int32_t *sums, __mmask16 m0, __mmask16 m1, float beta, float *c)
{
    for (int v = 0; v < nv; v++) {
        __mmask16 m = v ? m1 : m0;
        __m512i exact = v ? acc1 : acc0;
        if (sums != NULL) {
            __m512i sum = _mm512_maskz_loadu_epi32(m, sums + 16 * v);
            exact = _mm512_sub_epi32(exact, _mm512_slli_epi32(sum, 7));
        }
        __m512 scale = _mm512_mul_ps(_mm512_set1_ps(row_scale),
                                     _mm512_maskz_loadu_ps(m, col + 16 * v));
        __m512 out = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(exact));
        if (beta != 0)
            out = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + 16 * v), out);
        _mm512_mask_storeu_ps(c + 16 * v, m, out);
    }
}

/* One 32 x 32 block of one segment with AMX: acc (32 x 32 int32) <- rows 0-15 (and 16-31 if
 * `two`) of q times one panel from column n0 (two if `wide`). */
static inline __attribute__((always_inline, target(LSTM_AMX_TARGET ",amx-int8"))) void
lstm_i8_amx_block(const int two, const int wide, const int8_t *q, ptrdiff_t depth,
                  const int8_t *b, int32_t *acc)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (ptrdiff_t k = 0; k < depth; k += LSTM_I8_KB) {
        _tile_loadd(4, q + k, depth);
        _tile_loadd(6, b + k * LSTM_I8_NB, 64);
        _tile_dpbssd(0, 4, 6);
        if (wide) {
            _tile_loadd(7, b + (depth + k) * LSTM_I8_NB, 64);
            _tile_dpbssd(1, 4, 7);
        }
        if (two) {
            _tile_loadd(5, q + 16 * depth + k, depth);
            _tile_dpbssd(2, 5, 6);
        }
        if (two && wide)
            _tile_dpbssd(3, 5, 7);
    }
    _tile_stored(0, acc, 128);
    if (wide)
        _tile_stored(1, acc + 16, 128);
    if (two)
        _tile_stored(2, acc + 16 * 32, 128);
    if (two && wide)
        _tile_stored(3, acc + 16 * 32 + 16, 128);
}

/* C (M x N) = beta C + diag(a) Q(A) Q(B) diag(w) with AMX tiles: columns c0 .. c0 + N - 1 (c0 a
 * panel's first, a multiple of 16) of a form packed by lstm_pack_i8 (N_all columns); buf: MB
 * float scales and MB x depth int8. */
__attribute__((target(LSTM_AMX_TARGET ",amx-int8"))) static void lstm_gemm_i8_amx(
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda, const void *packed,
    ptrdiff_t N_all, ptrdiff_t c0, float beta, float *C, ptrdiff_t ldc, void *buf)
{
    ptrdiff_t depth = lstm_i8_depth(K);
    const float *col = (const float *)packed + c0;
    const int8_t *quantized = lstm_i8_quantized((void *)packed, N_all) + c0 * depth;
    float *rows_scale = (float *)buf;
    int8_t *q = (int8_t *)(rows_scale + LSTM_I8_MB);
    int32_t acc[32 * 32] __attribute__((aligned(64)));
    lstm_amx_load_config();
    for (ptrdiff_t m0 = 0; m0 < M; m0 += LSTM_I8_MB) {
        ptrdiff_t rows = M - m0 < LSTM_I8_MB ? M - m0 : LSTM_I8_MB;
        memset(q + rows * depth, 0, (size_t)((LSTM_I8_MB - rows) * depth));
        lstm_i8_rows_avx512(rows, K, A + m0 * lda, lda, 0, depth, 4, q, rows_scale);
        for (ptrdiff_t n0 = 0; n0 < N; n0 += 2 * LSTM_I8_NB) {
            int wide = N - n0 > LSTM_I8_NB;
            __mmask16 lanes0 = lstm_bf16_lanes(N - n0), lanes1 = lstm_bf16_lanes(N - n0 - 16);
            const int8_t *b = quantized + n0 * depth;
            if (rows > 16 && wide)
                lstm_i8_amx_block(1, 1, q, depth, b, acc);
            else if (rows > 16)
                lstm_i8_amx_block(1, 0, q, depth, b, acc);
            else if (wide)
                lstm_i8_amx_block(0, 1, q, depth, b, acc);
            else
                lstm_i8_amx_block(0, 0, q, depth, b, acc);
            for (ptrdiff_t r = 0; r < rows; r++) {  /* scaled while the sums are in L1 */
                __m512i sum0 = _mm512_load_si512(acc + 32 * r);
                float *c = C + (m0 + r) * ldc + n0;
                if (wide)
                    lstm_i8_store(2, sum0, _mm512_load_si512(acc + 32 * r + 16), rows_scale[r],
                                  col + n0, NULL, lanes0, lanes1, beta, c);
                else
                    lstm_i8_store(1, sum0, sum0, rows_scale[r], col + n0, NULL, lanes0, 0, beta,
                                  c);
            }
        }
    }
    _tile_release();
}

/* *acc += the sums of four products of unsigned a and signed b bytes, lane by lane (vpdpbusd).
 * In assembly: through the intrinsic, GCC 12 moves each accumulator between two registers at
 * every use, an extra instruction for each multiply-add (the kernel ran at 45% of the peak). */
static inline __attribute__((always_inline, target(LSTM_VNNI_TARGET))) void lstm_i8_dpbusd(
    __m512i *acc, __m512i a, __m512i b)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(*acc) : "v"(a), "v"(b));
}

/* One vpdpbusd tile: `rows` (<= 12) rows of q (Q(A) + 128, in groups of 4 k of MB rows) times
 * `nv` (1 or 2) panels b from column n0 of N, into C from beta C (rows and nv constants where
 * inlined). */
static inline __attribute__((always_inline, target(LSTM_VNNI_TARGET))) void lstm_i8_vnni_tile(
    const int rows, const int nv, const uint8_t *q, ptrdiff_t K, ptrdiff_t depth, const int8_t *b,
    const float *row_scale, const float *col, const int32_t *sums, ptrdiff_t n0, ptrdiff_t N,
    float beta, float *C, ptrdiff_t ldc)
{
    __m512i acc0[12], acc1[12];
    ptrdiff_t k4 = (K + 3) / 4 * 4;  /* the padding to depth (zeros in B) adds nothing */
    __mmask16 m0 = lstm_bf16_lanes(N - n0), m1 = lstm_bf16_lanes(N - n0 - LSTM_I8_NB);
    _Pragma("GCC unroll 12")
    for (int r = 0; r < rows; r++)
        acc0[r] = acc1[r] = _mm512_setzero_si512();
    for (ptrdiff_t k = 0; k < k4; k += 4) {
        /* 16 columns x 4 k of each panel: sum_k (Q(A)[r][k] + 128) Q(B)[k][j] */
        __m512i b0 = _mm512_loadu_si512(b + k * LSTM_I8_NB), b1;
        if (nv == 2)
            b1 = _mm512_loadu_si512(b + (depth + k) * LSTM_I8_NB);
        _Pragma("GCC unroll 12")
        for (int r = 0; r < rows; r++) {
            int32_t four;
            memcpy(&four, q + k * LSTM_I8_MB + 4 * r, sizeof four);
            __m512i ar = _mm512_set1_epi32(four);
            lstm_i8_dpbusd(&acc0[r], ar, b0);
            if (nv == 2)
                lstm_i8_dpbusd(&acc1[r], ar, b1);
        }
    }
    _Pragma("GCC unroll 12")
    for (int r = 0; r < rows; r++)
        lstm_i8_store(nv, acc0[r], acc1[r], row_scale[r], col + n0, sums + n0, m0, m1,
                           beta, C + r * ldc + n0);
}

/* A single row (batch 1) of q times np (1-4) panels b from column n0 of N, into C from beta C:
 * its k groups alternate between two sums a panel, so 2 np sums are in flight instead of a
 * tile's two, which would wait on vpdpbusd's latency at every k (as lstm_gemm.h's single row).
 * Integer sums: the order changes nothing. */
static inline __attribute__((always_inline, target(LSTM_VNNI_TARGET))) void lstm_i8_vnni_row(
    const int np, const uint8_t *q, ptrdiff_t K, ptrdiff_t depth, const int8_t *b,
    float row_scale, const float *col, const int32_t *sums, ptrdiff_t n0, ptrdiff_t N,
    float beta, float *C)
{
    __m512i acc[4][2];
    ptrdiff_t k4 = (K + 3) / 4 * 4;
    for (int p = 0; p < np; p++)
        acc[p][0] = acc[p][1] = _mm512_setzero_si512();
    for (ptrdiff_t k = 0; k < k4; k += 8) {
        for (int h = 0; h < 2 && k + 4 * h < k4; h++) {  /* groups k / 4 and the next */
            int32_t four;
            memcpy(&four, q + (k + 4 * h) * LSTM_I8_MB, sizeof four);
            __m512i a = _mm512_set1_epi32(four);
            _Pragma("GCC unroll 4")
            for (int p = 0; p < np; p++)
                lstm_i8_dpbusd(&acc[p][h], a, _mm512_loadu_si512(
                                                  b + (p * depth + k + 4 * h) * LSTM_I8_NB));
        }
    }
    _Pragma("GCC unroll 4")
    for (int p = 0; p < np; p++) {
        ptrdiff_t j = n0 + p * LSTM_I8_NB;
        lstm_i8_store(1, _mm512_add_epi32(acc[p][0], acc[p][1]), acc[p][1], row_scale,
                           col + j, sums + j, lstm_bf16_lanes(N - j), 0, beta, C + j);
    }
}

#define LSTM_I8_VNNI_ROW_CASE(P)                                                                 \
    case P:                                                                                      \
        lstm_i8_vnni_row(P, q, K, depth, b, row_scale[0], col, sums, n0, N, beta, C);            \
        break;

#define LSTM_I8_VNNI_TILE(R, nv)                                                                 \
    lstm_i8_vnni_tile(R, nv, q + 4 * m, K, depth, b, row_scale + m, col, sums, n0, N, beta,      \
                      C + m * ldc, ldc)

/* C (M x N) = beta C + diag(a) Q(A) Q(B) diag(w) with vpdpbusd: columns c0 .. c0 + N - 1 (c0 a
 * multiple of 16) of a form packed by lstm_pack_i8 (N_all columns), MB rows at a time in tiles
 * of nearly equal height (at most 12 rows) by 32 columns; buf as for lstm_gemm_i8_amx. */
__attribute__((target(LSTM_VNNI_TARGET))) static void lstm_gemm_i8_vnni(
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda, const void *packed,
    ptrdiff_t N_all, ptrdiff_t c0, float beta, float *C, ptrdiff_t ldc, void *buf)
{
    ptrdiff_t depth = lstm_i8_depth(K);
    const float *col = (const float *)packed + c0;
    const int32_t *sums = lstm_i8_sums((void *)packed, N_all) + c0;
    const int8_t *quantized = lstm_i8_quantized((void *)packed, N_all) + c0 * depth;
    float *row_scale = (float *)buf;
    uint8_t *q = (uint8_t *)(row_scale + LSTM_I8_MB);
    for (ptrdiff_t m0 = 0; m0 < M; m0 += LSTM_I8_MB, A += LSTM_I8_MB * lda, C += LSTM_I8_MB * ldc) {
        ptrdiff_t rows = M - m0 < LSTM_I8_MB ? M - m0 : LSTM_I8_MB, tiles = LSTM_TILES(rows, 12);
        lstm_i8_rows_avx512(rows, K, A, lda, 128, 4, 4 * LSTM_I8_MB, (int8_t *)q, row_scale);
        for (ptrdiff_t n0 = 0; rows == 1 && n0 < N; n0 += 4 * LSTM_I8_NB) {
            const int8_t *b = quantized + n0 * depth;
            switch ((N - n0 + LSTM_I8_NB - 1) / LSTM_I8_NB) {
                LSTM_I8_VNNI_ROW_CASE(1) LSTM_I8_VNNI_ROW_CASE(2) LSTM_I8_VNNI_ROW_CASE(3)
                default: LSTM_I8_VNNI_ROW_CASE(4)
            }
        }
        for (ptrdiff_t n0 = 0; rows > 1 && n0 < N; n0 += 2 * LSTM_I8_NB) {
            const int8_t *b = quantized + n0 * depth;
            for (ptrdiff_t i = 0; i < tiles; i++) {
                ptrdiff_t m = LSTM_TILE_ROW(rows, i, tiles);
                ptrdiff_t mr = LSTM_TILE_ROW(rows, i + 1, tiles) - m;
                if (N - n0 > LSTM_I8_NB) {
                    LSTM_FOR_HEIGHT(mr, LSTM_I8_VNNI_TILE, 2)
                } else {
                    LSTM_FOR_HEIGHT(mr, LSTM_I8_VNNI_TILE, 1)
                }
            }
        }
    }
}

/* 256-bit vpdpbusd: AVX-VNNI's VEX form, for CPUs that have it without AVX-512, and the same
 * code in the EVEX form (AVX512-VNNI with AVX512-VL) where LSTM_FAST_KERNEL=avx_vnni forces it on
 * an AVX-512 CPU, so that it is tested there. The AVX512-VNNI kernel's scheme at half the width:
 * rows quantised + 128 (lstm_i8_rows_bytes), tiles of up to 6 rows x one panel (16 columns: two
 * vectors of 8 columns x 4 k; 12 sums, two panel vectors and a broadcast fill the 16 registers),
 * a single row over up to 4 panels (8 sums in flight), the same exact sums and scaling. */
#define LSTM_I8_VNNI256_TILE(R, ISA)                                                             \
    if ((R) <= 6)                                                                                \
        lstm_i8_tile256_##ISA(R, q + 4 * m, k4, b, row_scale + m, col + n0, sums + n0, N - n0,   \
                              beta, C + m * ldc + n0, ldc)

#define LSTM_I8_VNNI256_ROW_CASE(P, ISA)                                                         \
    case P:                                                                                      \
        lstm_i8_row256_##ISA(P, q, k4, depth, b, row_scale[0], col, sums, n0, N, beta, C);       \
        break;

#define LSTM_DEFINE_I8_VNNI256(ISA, TARGET, DPBUSD)                                              \
static inline __attribute__((always_inline, target(TARGET))) void lstm_i8_dpbusd_##ISA(           \
    __m256i *acc, __m256i a, __m256i b)                                                          \
{                                                                                                \
    __asm__(DPBUSD " %2, %1, %0" : "+x"(*acc) : "x"(a), "x"(b));                                 \
}                                                                                                \
                                                                                                 \
/* C[j] = beta C[j] + (a w_j) (acc[j] - 128 s_j) for the ncols (<= 16 here) of a panel. */       \
static inline __attribute__((always_inline, target(TARGET))) void lstm_i8_store256_##ISA(         \
    __m256i acc0, __m256i acc1, float row_scale, const float *col, const int32_t *sums,           \
    ptrdiff_t ncols, float beta, float *c)                                                       \
{                                                                                                \
    __m256 a = _mm256_set1_ps(row_scale), out[2];                                                \
    for (int v = 0; v < 2; v++) {                                                                \
        __m256i sum = _mm256_loadu_si256((const __m256i *)(sums + 8 * v));                       \
        __m256i exact = _mm256_sub_epi32(v ? acc1 : acc0, _mm256_slli_epi32(sum, 7));            \
        out[v] = _mm256_mul_ps(_mm256_mul_ps(a, _mm256_loadu_ps(col + 8 * v)),                    \
                               _mm256_cvtepi32_ps(exact));                                       \
    }                                                                                            \
    if (ncols >= 16) {                                                                           \
        for (int v = 0; v < 2; v++)                                                              \
            _mm256_storeu_ps(c + 8 * v, beta != 0 ? _mm256_add_ps(_mm256_loadu_ps(c + 8 * v),    \
                                                                  out[v]) : out[v]);             \
    } else {                                                                                     \
        float o[16];                                                                             \
        _mm256_storeu_ps(o, out[0]);                                                             \
        _mm256_storeu_ps(o + 8, out[1]);                                                         \
        for (ptrdiff_t j = 0; j < ncols; j++)                                                    \
            c[j] = beta != 0 ? c[j] + o[j] : o[j];                                               \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* A tile: `rows` (<= 6, a constant where inlined) rows of q times one panel b (ncols of its     \
 * columns in C), into C from beta C. */                                                         \
static inline __attribute__((always_inline, target(TARGET))) void lstm_i8_tile256_##ISA(          \
    const int rows, const uint8_t *q, ptrdiff_t k4, const int8_t *b, const float *row_scale,      \
    const float *col, const int32_t *sums, ptrdiff_t ncols, float beta, float *C, ptrdiff_t ldc) \
{                                                                                                \
    __m256i acc0[6], acc1[6];                                                                    \
    _Pragma("GCC unroll 6")                                                                      \
    for (int r = 0; r < rows; r++)                                                               \
        acc0[r] = acc1[r] = _mm256_setzero_si256();                                              \
    for (ptrdiff_t k = 0; k < k4; k += 4) {                                                      \
        /* columns 0-7 and 8-15 x 4 k: sum_k (Q(A)[r][k] + 128) Q(B)[k][j] */                    \
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + k * LSTM_I8_NB));                  \
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + k * LSTM_I8_NB + 32));             \
        _Pragma("GCC unroll 6")                                                                  \
        for (int r = 0; r < rows; r++) {                                                         \
            int32_t four;                                                                        \
            memcpy(&four, q + k * LSTM_I8_MB + 4 * r, sizeof four);                              \
            __m256i ar = _mm256_set1_epi32(four);                                                \
            lstm_i8_dpbusd_##ISA(&acc0[r], ar, b0);                                              \
            lstm_i8_dpbusd_##ISA(&acc1[r], ar, b1);                                              \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 6")                                                                      \
    for (int r = 0; r < rows; r++)                                                               \
        lstm_i8_store256_##ISA(acc0[r], acc1[r], row_scale[r], col, sums, ncols, beta,          \
                               C + r * ldc);                                                     \
}                                                                                                \
                                                                                                 \
/* A single row of q times np (1-4) panels b from column n0 of N, into C from beta C. */         \
static inline __attribute__((always_inline, target(TARGET))) void lstm_i8_row256_##ISA(           \
    const int np, const uint8_t *q, ptrdiff_t k4, ptrdiff_t depth, const int8_t *b,               \
    float row_scale, const float *col, const int32_t *sums, ptrdiff_t n0, ptrdiff_t N,            \
    float beta, float *C)                                                                        \
{                                                                                                \
    __m256i acc[4][2];                                                                           \
    _Pragma("GCC unroll 4")                                                                      \
    for (int p = 0; p < np; p++)                                                                 \
        acc[p][0] = acc[p][1] = _mm256_setzero_si256();                                          \
    for (ptrdiff_t k = 0; k < k4; k += 4) {                                                      \
        int32_t four;                                                                            \
        memcpy(&four, q + k * LSTM_I8_MB, sizeof four);                                          \
        __m256i a = _mm256_set1_epi32(four);                                                     \
        _Pragma("GCC unroll 4")                                                                  \
        for (int p = 0; p < np; p++) {                                                           \
            const int8_t *g = b + (p * depth + k) * LSTM_I8_NB;                                  \
            lstm_i8_dpbusd_##ISA(&acc[p][0], a, _mm256_loadu_si256((const __m256i *)g));         \
            lstm_i8_dpbusd_##ISA(&acc[p][1], a, _mm256_loadu_si256((const __m256i *)(g + 32)));  \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 4")                                                                      \
    for (int p = 0; p < np; p++) {                                                               \
        ptrdiff_t j = n0 + p * LSTM_I8_NB;                                                       \
        lstm_i8_store256_##ISA(acc[p][0], acc[p][1], row_scale, col + j, sums + j, N - j, beta,  \
                               C + j);                                                           \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* lstm_gemm_i8_vnni's product (its arguments, its buffer) on 256-bit vectors. */                \
__attribute__((target(TARGET))) static void lstm_gemm_i8_vnni256_##ISA(                          \
    ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A0, ptrdiff_t lda, const void *packed,    \
    ptrdiff_t N_all, ptrdiff_t c0, float beta, float *C0, ptrdiff_t ldc, void *buf)              \
{                                                                                                \
    ptrdiff_t depth = lstm_i8_depth(K), k4 = (K + 3) / 4 * 4;                                    \
    const float *col = (const float *)packed + c0;                                               \
    const int32_t *sums = lstm_i8_sums((void *)packed, N_all) + c0;                              \
    const int8_t *quantized = lstm_i8_quantized((void *)packed, N_all) + c0 * depth;             \
    float *row_scale = (float *)buf;                                                             \
    uint8_t *q = (uint8_t *)(row_scale + LSTM_I8_MB);                                            \
    for (ptrdiff_t m0 = 0; m0 < M; m0 += LSTM_I8_MB) {                                           \
        ptrdiff_t rows = M - m0 < LSTM_I8_MB ? M - m0 : LSTM_I8_MB, tiles = LSTM_TILES(rows, 6); \
        const float *A = A0 + m0 * lda;                                                          \
        float *C = C0 + m0 * ldc;                                                                \
        lstm_i8_rows_bytes(rows, K, A, lda, 128, 4, 4 * LSTM_I8_MB, (int8_t *)q, row_scale);     \
        for (ptrdiff_t n0 = 0; rows == 1 && n0 < N; n0 += 4 * LSTM_I8_NB) {                      \
            const int8_t *b = quantized + n0 * depth;                                            \
            switch ((N - n0 + LSTM_I8_NB - 1) / LSTM_I8_NB) {                                    \
                LSTM_I8_VNNI256_ROW_CASE(1, ISA) LSTM_I8_VNNI256_ROW_CASE(2, ISA)                \
                LSTM_I8_VNNI256_ROW_CASE(3, ISA)                                                 \
                default: LSTM_I8_VNNI256_ROW_CASE(4, ISA)                                        \
            }                                                                                    \
        }                                                                                        \
        for (ptrdiff_t n0 = 0; rows > 1 && n0 < N; n0 += LSTM_I8_NB) {                           \
            const int8_t *b = quantized + n0 * depth;                                            \
            for (ptrdiff_t i = 0; i < tiles; i++) {                                              \
                ptrdiff_t m = LSTM_TILE_ROW(rows, i, tiles);                                     \
                ptrdiff_t mr = LSTM_TILE_ROW(rows, i + 1, tiles) - m;                            \
                LSTM_FOR_HEIGHT(mr, LSTM_I8_VNNI256_TILE, ISA)                                   \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}

LSTM_DEFINE_I8_VNNI256(vex, "avx2,fma,avxvnni", "%{vex%} vpdpbusd")  /* braces escaped for asm */
LSTM_DEFINE_I8_VNNI256(evex, "avx2,fma,avx512f,avx512vl,avx512vnni", "vpdpbusd")

/* The int8 peak of one core with vpdpbusd (see LSTM_DOT_CHAINS): 16 lanes, each four
 * multiply-adds of u8 by s8. */
LSTM_DOT_CHAINS(lstm_i8_chains_vnni, LSTM_VNNI_TARGET, __m512i, __m512i, _mm512_set1_epi32,
                _mm512_dpbusd_epi32, _mm512_add_epi32, _mm512_reduce_add_epi32, 0x01020304,
                0x01010101u, 16 * 4 * 2)

/* The sum of the 8 lanes of a 256-bit vector of int32. */
__attribute__((target("avx2"))) static inline int32_t lstm_i8_sum256(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

/* The 256-bit vpdpbusd's peak (8 lanes of four multiply-adds), in both encodings. */
LSTM_DOT_CHAINS(lstm_i8_chains_vex256, "avx2,fma,avxvnni", __m256i, __m256i, _mm256_set1_epi32,
                _mm256_dpbusd_avx_epi32, _mm256_add_epi32, lstm_i8_sum256, 0x01020304, 0x01010101u,
                8 * 4 * 2)
LSTM_DOT_CHAINS(lstm_i8_chains_evex256, "avx2,fma,avx512f,avx512vl,avx512vnni", __m256i, __m256i,
                _mm256_set1_epi32, _mm256_dpbusd_epi32, _mm256_add_epi32, lstm_i8_sum256,
                0x01020304, 0x01010101u, 8 * 4 * 2)

/* The int8 peak of one core: tdpbssd back to back on four tiles (see lstm_bf16_chains_amx);
 * returns the operations done (a multiply-add is two). */
__attribute__((target(LSTM_AMX_TARGET ",amx-int8"), noinline)) static double lstm_i8_chains_amx(
    long iters, float *sink)
{
    int8_t operand[16 * 64] __attribute__((aligned(64)));
    int32_t out[16 * 16] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 64; i++)
        operand[i] = (int8_t)(i % 7);
    lstm_amx_load_config();
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, operand, 64); _tile_loadd(5, operand, 64);
    _tile_loadd(6, operand, 64); _tile_loadd(7, operand, 64);
    for (long i = 0; i < iters; i++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *sink = (float)out[0];
    return 4.0 * 2 * 16 * 16 * 64 * (double)iters;
}

#endif /* LSTM_HAVE_PACKED */

/* Whether this CPU has vpdpbusd on 512-bit vectors (AVX512-VNNI), and LSTM_FAST_KERNEL allows
 * it: unset, "amx", or one of the AVX-512 dot-product kernels ("avx512_vnni", "avx512_bf16"). */
static int lstm_i8_vnni(void)
{
    static int vnni = -1;
    if (vnni < 0) {
        const char *want = getenv("LSTM_FAST_KERNEL");
        vnni = 0;
#if LSTM_HAVE_PACKED
        __builtin_cpu_init();
        vnni = (want == NULL || strcmp(want, "amx") == 0 || strcmp(want, "avx512_vnni") == 0
                || strcmp(want, "avx512_bf16") == 0)
               && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx512vl") && lstm_packed_vector_bytes() == 64;
#else
        (void)want;
#endif
    }
    return vnni;
}

/* Which 256-bit vpdpbusd this CPU runs, asked once: 1 AVX-VNNI's (VEX), where LSTM_FAST_KERNEL is
 * unset, "amx" or "avx_vnni"; 2 the EVEX form, where "avx_vnni" forces it on a CPU with
 * AVX512-VNNI and AVX512-VL but not AVX-VNNI; else 0. */
static int lstm_i8_avx_vnni(void)
{
    static int isa = -1;
    if (isa < 0) {
        const char *want = getenv("LSTM_FAST_KERNEL");
        int forced = want != NULL && strcmp(want, "avx_vnni") == 0;
        isa = 0;
#if LSTM_HAVE_PACKED
        __builtin_cpu_init();
        if ((want == NULL || strcmp(want, "amx") == 0 || forced)
            && __builtin_cpu_supports("avxvnni") && __builtin_cpu_supports("avx2")
            && __builtin_cpu_supports("fma"))
            isa = 1;
        else if (forced && __builtin_cpu_supports("avx512vnni")
                 && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2")
                 && __builtin_cpu_supports("fma"))
            isa = 2;
#else
        (void)forced;
#endif
    }
    return isa;
}

/* The route below the AMX tiles: vpdpbusd on 512-bit vectors, else 256-bit, else float32. */
static int lstm_i8_dot_route(void)
{
    return lstm_i8_vnni() ? LSTM_I8_VNNI : lstm_i8_avx_vnni() ? LSTM_I8_AVX_VNNI : LSTM_I8_FLOAT32;
}

/* The int8 unit of this CPU, asked once: AMX-INT8 where the CPU has it and Linux grants it
 * (as for bf16), else AVX512-VNNI, else AVX-VNNI, else none (the float32 route);
 * LSTM_FAST_KERNEL as for bf16 ("avx512_vnni" as "avx512_bf16": the AVX-512 dot-product units,
 * no AMX; "avx_vnni" the 256-bit vpdpbusd). */
static int lstm_i8_unit(int *forced)
{
    static int unit = 0;
    int bf16 = lstm_bf16_unit(forced);
    if (unit == 0) {
        unit = lstm_i8_dot_route();
#if LSTM_HAVE_PACKED
        if (bf16 == LSTM_BF16_AMX && __builtin_cpu_supports("amx-int8"))
            unit = LSTM_I8_AMX;
#else
        (void)bf16;
#endif
    }
    return unit;
}

/* Whether int8 route `route` runs on this CPU (and under LSTM_FAST_KERNEL). */
static int lstm_i8_runs(int route)
{
    return route == LSTM_I8_FLOAT32 || (route == LSTM_I8_VNNI && lstm_i8_vnni())
           || (route == LSTM_I8_AVX_VNNI && lstm_i8_avx_vnni())
           || (route == LSTM_I8_AMX && lstm_i8_unit(NULL) == LSTM_I8_AMX);
}

static const char *lstm_i8_unit_name(int unit)
{
    return unit == LSTM_I8_AMX ? "amx" : unit == LSTM_I8_VNNI ? "avx512_vnni"
           : unit == LSTM_I8_AVX_VNNI ? "avx_vnni" : "float32";
}

/* The int8 route of a product whose rows are a batch of `batch`: AMX tiles from
 * LSTM_AMX_MIN_BATCH (or forced), below it vpdpbusd where the CPU has it: four multiply-adds
 * of a lane an instruction, against the FMA's one, pay from a single row. */
static int lstm_i8_route(ptrdiff_t batch)
{
    int forced, unit = lstm_i8_unit(&forced);
    if (unit == LSTM_I8_AMX && (forced || batch >= LSTM_AMX_MIN_BATCH))
        return LSTM_I8_AMX;
    return lstm_i8_dot_route();
}

/* C (M x N) = beta C + diag(a) Q(A) Q(B) diag(w) on `route` (AMX or VNNI): columns c0 ..
 * c0 + N - 1 (c0 a multiple of 16) of a form packed by lstm_pack_i8 (N_all columns); buf: the
 * caller's MB float scales and MB x lstm_i8_depth(K) bytes, one buffer per thread. */
static void lstm_gemm_i8(int route, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A,
                         ptrdiff_t lda, const void *packed, ptrdiff_t N_all, ptrdiff_t c0,
                         float beta, float *C, ptrdiff_t ldc, void *buf)
{
    if (M <= 0 || N <= 0)
        return;
#if LSTM_HAVE_PACKED
    if (route == LSTM_I8_AMX)
        lstm_gemm_i8_amx(M, N, K, A, lda, packed, N_all, c0, beta, C, ldc, buf);
    else if (route == LSTM_I8_VNNI)
        lstm_gemm_i8_vnni(M, N, K, A, lda, packed, N_all, c0, beta, C, ldc, buf);
    else if (route == LSTM_I8_AVX_VNNI && lstm_i8_avx_vnni() == 2)
        lstm_gemm_i8_vnni256_evex(M, N, K, A, lda, packed, N_all, c0, beta, C, ldc, buf);
    else if (route == LSTM_I8_AVX_VNNI)
        lstm_gemm_i8_vnni256_vex(M, N, K, A, lda, packed, N_all, c0, beta, C, ldc, buf);
#else
    (void)route; (void)K; (void)A; (void)lda; (void)packed; (void)N_all; (void)c0; (void)beta;
    (void)C; (void)ldc; (void)buf;
#endif
}

/* The int8 unit's probe (see lstm_chains_threads). */
static double lstm_i8_chains_threads(long iters, int threads, double *sink)
{
    double (*chains)(long, float *) = NULL;
#if LSTM_HAVE_PACKED
    int unit = lstm_i8_unit(NULL);
    chains = unit == LSTM_I8_AMX ? lstm_i8_chains_amx
             : unit == LSTM_I8_VNNI ? lstm_i8_chains_vnni
             : unit == LSTM_I8_AVX_VNNI && lstm_i8_avx_vnni() == 2 ? lstm_i8_chains_evex256
             : unit == LSTM_I8_AVX_VNNI ? lstm_i8_chains_vex256 : NULL;
#endif
    return lstm_chains_threads(chains, iters, threads, sink);
}

#endif /* LSTM_FAST_INT8_H */
