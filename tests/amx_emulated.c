/*
 * The engine's AMX products run on a scalar emulation of the tile unit, against the AVX-512
 * products of the same numerics, so that their layouts (tile loads, strides, edges, the order of
 * the packed operands) are checked on CPUs without AMX (test_amx_emulated.py compiles and runs
 * this; the CPU needs AVX512-BF16 and VNNI for the rest of each kernel and for the references).
 *
 * The emulation follows Intel's description of each instruction: eight tiles of up to 16 rows of
 * 64 bytes, shaped by the configuration; tdpbf16ps adds to each float32 element of C the products
 * of bf16 pairs of A's row and B's column, pair by pair; tdpbssd the sums of four int8 products.
 *
 * Prints one line per product kind: the kind, the number of shapes run and the largest difference
 * from the reference, relative to its largest element.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

static struct {
    int rows, colsb;
    uint8_t data[16][64];
} emu_tile[8];

static void emu_loadconfig(const void *config)
{
    const uint8_t *c = (const uint8_t *)config;
    for (int t = 0; t < 8; t++) {
        uint16_t colsb;
        memcpy(&colsb, c + 16 + 2 * t, 2);
        emu_tile[t].colsb = colsb;
        emu_tile[t].rows = c[48 + t];
        if (colsb > 64 || c[48 + t] > 16)
            abort();
    }
}

static void emu_loadd(int t, const void *base, long stride)
{
    for (int r = 0; r < emu_tile[t].rows; r++)
        memcpy(emu_tile[t].data[r], (const uint8_t *)base + r * stride, emu_tile[t].colsb);
}

static void emu_stored(int t, void *base, long stride)
{
    for (int r = 0; r < emu_tile[t].rows; r++)
        memcpy((uint8_t *)base + r * stride, emu_tile[t].data[r], emu_tile[t].colsb);
}

static void emu_zero(int t)
{
    memset(emu_tile[t].data, 0, sizeof emu_tile[t].data);
}

static float emu_bf16(const uint8_t *p)
{
    uint16_t h;
    uint32_t bits;
    float f;
    memcpy(&h, p, 2);
    bits = (uint32_t)h << 16;
    memcpy(&f, &bits, 4);
    return f;
}

static void emu_dpbf16ps(int c, int a, int b)
{
    for (int m = 0; m < emu_tile[c].rows; m++)
        for (int n = 0; n < emu_tile[c].colsb / 4; n++) {
            float acc;
            memcpy(&acc, emu_tile[c].data[m] + 4 * n, 4);
            for (int k = 0; k < emu_tile[a].colsb / 4; k++) {
                acc += emu_bf16(emu_tile[a].data[m] + 4 * k) * emu_bf16(emu_tile[b].data[k] + 4 * n);
                acc += emu_bf16(emu_tile[a].data[m] + 4 * k + 2)
                       * emu_bf16(emu_tile[b].data[k] + 4 * n + 2);
            }
            memcpy(emu_tile[c].data[m] + 4 * n, &acc, 4);
        }
}

static void emu_dpbssd(int c, int a, int b)
{
    for (int m = 0; m < emu_tile[c].rows; m++)
        for (int n = 0; n < emu_tile[c].colsb / 4; n++) {
            int32_t acc;
            memcpy(&acc, emu_tile[c].data[m] + 4 * n, 4);
            for (int k = 0; k < emu_tile[a].colsb / 4; k++)
                for (int i = 0; i < 4; i++)
                    acc += (int8_t)emu_tile[a].data[m][4 * k + i]
                           * (int8_t)emu_tile[b].data[k][4 * n + i];
            memcpy(emu_tile[c].data[m] + 4 * n, &acc, 4);
        }
}

#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#undef _tile_dpbssd
#define _tile_loadconfig(config) emu_loadconfig(config)
#define _tile_release() ((void)0)
#define _tile_loadd(t, base, stride) emu_loadd(t, base, stride)
#define _tile_stored(t, base, stride) emu_stored(t, base, stride)
#define _tile_zero(t) emu_zero(t)
#define _tile_dpbf16ps(c, a, b) emu_dpbf16ps(c, a, b)
#define _tile_dpbssd(c, a, b) emu_dpbssd(c, a, b)

#include "lstm_int8.h"

static float *random_floats(long n, unsigned *seed)
{
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (long i = 0; i < n; i++)
        a[i] = (float)rand_r(seed) / RAND_MAX * 2 - 1;
    return a;
}

static double max_relative(long n, const float *got, const float *want)
{
    double scale = 0, worst = 0;
    for (long i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (long i = 0; i < n; i++)
        worst = fmax(worst, fabs(got[i] - want[i]) / (scale > 0 ? scale : 1));
    return worst;
}

static const long heights[] = {1, 5, 16, 17, 32, 33, 45};
static const long widths[] = {16, 20, 32, 48, 100};
static const long depths[] = {1, 31, 32, 64, 100};
#define COUNT(a) (long)(sizeof(a) / sizeof((a)[0]))

/* C = beta C + A1 op(B1) + A2 op(B2) on AMX against AVX512-BF16. */
static double bf16_products(unsigned *seed, int *runs)
{
    double worst = 0;
    for (int h = 0; h < COUNT(heights); h++)
        for (int w = 0; w < COUNT(widths); w++)
            for (int d = 0; d < COUNT(depths); d++)
                for (int beta = 0; beta < 2; beta++) {
                    long M = heights[h], N = widths[w], K1 = depths[d], K2 = depths[(d + 2) % 5];
                    float *A = random_floats(M * (K1 + K2), seed);
                    float *B1 = random_floats(K1 * N, seed), *B2 = random_floats(K2 * N, seed);
                    float *C = random_floats(M * N, seed), *want = malloc(M * N * 4);
                    uint16_t *p1 = malloc(lstm_bf16_packed_size(K1, N) * 2);
                    uint16_t *p2 = malloc(lstm_bf16_packed_size(K2, N) * 2);
                    uint16_t *buf = malloc(lstm_bf16_buffer_size(K1, K2) * 2);
                    lstm_pack_bf16(0, K1, N, B1, N, p1);
                    lstm_pack_bf16(0, K2, N, B2, N, p2);
                    memcpy(want, C, M * N * 4);
                    lstm_gemm_bf16(LSTM_BF16_AVX512, M, N, K1, A, K1 + K2, p1, K2, A + K1,
                                   K1 + K2, p2, (float)beta, want, N, buf);
                    lstm_gemm_bf16(LSTM_BF16_AMX, M, N, K1, A, K1 + K2, p1, K2, A + K1,
                                   K1 + K2, p2, (float)beta, C, N, buf);
                    worst = fmax(worst, max_relative(M * N, C, want));
                    ++*runs;
                    free(A); free(B1); free(B2); free(C); free(want); free(p1); free(p2);
                    free(buf);
                }
    return worst;
}

/* C = beta C + diag(a) Q(A) Q(B) diag(w) on AMX against AVX512-VNNI: the same exact int sums,
 * scaled alike (up to the compiler fusing a multiply and an add). Columns from c0 = 16 of a
 * wider packed form, too. */
static double int8_products(unsigned *seed, int *runs)
{
    double worst = 0;
    for (int h = 0; h < COUNT(heights); h++)
        for (int w = 0; w < COUNT(widths); w++)
            for (int d = 0; d < COUNT(depths); d++)
                for (int beta = 0; beta < 2; beta++) {
                    long M = heights[h], N = widths[w], K = depths[d], c0 = beta ? 16 : 0;
                    long N_all = N + c0;
                    float *A = random_floats(M * K, seed), *B = random_floats(K * N_all, seed);
                    float *C = random_floats(M * N, seed), *want = malloc(M * N * 4);
                    void *packed = malloc(lstm_i8_packed_bytes(K, N_all));
                    void *buf = malloc(LSTM_I8_MB * (4 + lstm_i8_depth(K)));
                    lstm_pack_i8(0, K, N_all, B, N_all, packed);
                    memcpy(want, C, M * N * 4);
                    lstm_gemm_i8(LSTM_I8_VNNI, M, N, K, A, K, packed, N_all, c0, (float)beta,
                                 want, N, buf);
                    lstm_gemm_i8(LSTM_I8_AMX, M, N, K, A, K, packed, N_all, c0, (float)beta, C,
                                 N, buf);
                    worst = fmax(worst, max_relative(M * N, C, want));
                    ++*runs;
                    free(A); free(B); free(C); free(want); free(packed); free(buf);
                }
    return worst;
}

/* C = beta C + A^T B and C2 = beta C2 + A2^T B (the weight gradients), with B's column sums,
 * on AMX against AVX512-BF16; K beyond one block of 256 rows, too. */
static double tn_products(unsigned *seed, int *runs)
{
    static const long ks[] = {1, 7, 32, 33, 300, 600};
    double worst = 0;
    for (int h = 0; h < COUNT(heights); h++)
        for (int w = 0; w < COUNT(widths); w++)
            for (int d = 0; d < COUNT(ks); d++) {
                long M = heights[h], M2 = heights[(h + 3) % COUNT(heights)], N = widths[w];
                long K = ks[d];
                int beta = (h + w + d) % 2;
                float *A = random_floats(K * M, seed), *A2 = random_floats(K * M2, seed);
                float *B = random_floats(K * N, seed);
                float *C = random_floats((M + M2 + 1) * N, seed), *want = malloc((M + M2 + 1) * N * 4);
                void *buf = malloc(lstm_bf16_tn_buffer_bytes(M, M2));
                memcpy(want, C, (M + M2 + 1) * N * 4);
                lstm_bf16_gemm_tn(LSTM_BF16_AVX512, M, N, K, A, M, B, N, (float)beta, want, N, M2,
                                  A2, M2, want + M * N, N, want + (M + M2) * N, buf);
                lstm_bf16_gemm_tn(LSTM_BF16_AMX, M, N, K, A, M, B, N, (float)beta, C, N, M2, A2,
                                  M2, C + M * N, N, C + (M + M2) * N, buf);
                worst = fmax(worst, max_relative((M + M2) * N, C, want));
                worst = fmax(worst, max_relative(N, C + (M + M2) * N, want + (M + M2) * N));
                ++*runs;
                free(A); free(A2); free(B); free(C); free(want); free(buf);
            }
    return worst;
}

int main(void)
{
    unsigned seed = 1;
    int runs = 0;
#if !LSTM_HAVE_PACKED
    printf("skip: the vector kernels need GCC 12 or later on x86-64\n");
    return 0;
#endif
    if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512vnni")) {
        printf("skip: no AVX512-BF16 and VNNI\n");
        return 0;
    }
    double e = bf16_products(&seed, &runs);
    printf("bf16_products %d %.3g\n", runs, e);
    runs = 0;
    e = int8_products(&seed, &runs);
    printf("int8_products %d %.3g\n", runs, e);
    runs = 0;
    e = tn_products(&seed, &runs);
    printf("tn_products %d %.3g\n", runs, e);
    return 0;
}
