/*
 * Fused element-wise LSTM kernels for one time step, written once (a macro template) for float
 * and double.
 *
 * Gate blocks follow PyTorch's order [i, f, g, o], each H wide, in a row of 4H:
 *     i, f, o = sigmoid(a),  g = tanh(a),  c' = f c + i g,  r = o tanh(c')
 * Backward works from the stored activations (s (1 - s) for sigmoids, 1 - t^2 for tanh).
 *
 * Sigmoid and tanh come from one branch-free expm1 (Cody-Waite range reduction, a Taylor
 * polynomial, times 2^n), since libm's scalar expf/tanhf cost more than the whole recurrent GEMM
 * at small sizes. Accuracy: a few ulp, relative, for sigmoid and tanh over the whole range; no
 * overflow (the argument is clamped where the result is already 0, 1 or -1 to working precision).
 *
 * Two builds of the forward pass, which holds the five exponentials of a step:
 * - portable C that the compiler vectorises; on x86-64 Linux with GCC it is compiled for
 *   AVX-512, AVX2+FMA and the baseline, and the loader picks the best the CPU has (target_clones);
 * - with AVX-512 (lstm_cpu.h), the same maths on 512-bit vectors written out: 2^n is one vscalef
 *   instead of exponent-bit arithmetic and its range checks, and the last columns of a row are
 *   masked instead of run one by one. Measured at H = 64: the pass takes 25% less time.
 */
#ifndef LSTM_FAST_KERNELS_H
#define LSTM_FAST_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lstm_cpu.h"

static const char *lstm_fast_dispatch = LSTM_DISPATCH_NAME;

/* 1/k! for k = 2 .. 13: the Taylor coefficients of e^r - 1 - r. */
static const double lstm_inv_factorial[] = {
    1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880,
    1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};

/* expm1(x) = 2^n (q + 1) - 1 with x = n ln2 + r, |r| <= ln2 / 2, q = e^r - 1 = r + r^2 P(r) by its
 * Taylor series to r^DEGREE (Horner: one FMA a term). Exact-ish near 0 (n = 0 gives q itself), so
 * tanh and sigmoid keep their relative accuracy there. */
#define LSTM_DEFINE_EXPM1(T, SUF, UINT, MAGIC, EXP_BIAS, MANT_BITS, LO, HI, LN2_HI, LN2_LO, DEGREE)\
static inline T lstm_expm1_##SUF(T x)                                                            \
{                                                                                                \
    const T log2e = (T)1.4426950408889634074;                                                    \
    x = x < (T)(LO) ? (T)(LO) : x;                                                               \
    x = x > (T)(HI) ? (T)(HI) : x;                                                               \
    /* n = round(x / ln2): adding 1.5 * 2^MANT_BITS leaves n in the low mantissa bits */         \
    T shifted = x * log2e + (T)(MAGIC);                                                          \
    T n = shifted - (T)(MAGIC);                                                                  \
    T r = (x - n * (T)(LN2_HI)) - n * (T)(LN2_LO);                                               \
    T p = (T)lstm_inv_factorial[(DEGREE) - 2];                                                   \
    _Pragma("GCC unroll 16")                                                                     \
    for (int k = (DEGREE) - 1; k >= 2; k--)                                                      \
        p = p * r + (T)lstm_inv_factorial[k - 2];                                                \
    T q = r + (r * r) * p;                                                                       \
    UINT bits_shifted, bits_magic, bits_scale;                                                   \
    T magic = (T)(MAGIC), scale;                                                                 \
    memcpy(&bits_shifted, &shifted, sizeof(T));                                                  \
    memcpy(&bits_magic, &magic, sizeof(T));                                                      \
    bits_scale = (bits_shifted - bits_magic + (UINT)(EXP_BIAS)) << (MANT_BITS);                  \
    memcpy(&scale, &bits_scale, sizeof(T));                                                      \
    return scale * q + (scale - (T)1);                                                           \
}

/* expm1's constants, for both builds: the clamp (where e^x - 1 is -1, or overflows), ln 2 in two
 * parts (n ln2_hi is exact) and the Taylor degree. float: to r^7 (truncation < 2e-8 relative);
 * double: to r^13 (truncation < 2e-17 relative). */
#define LSTM_EXPM1_CONSTANTS_f -87.0, 88.0, 0.693145751953125, 1.428606765330187e-06, 7
#define LSTM_EXPM1_CONSTANTS_d -708.0, 709.0, 0.6931471803691238164901733,                     \
                               1.9082149292705877000220e-10, 13
#define LSTM_EXPAND(M, ...) M(__VA_ARGS__)

LSTM_EXPAND(LSTM_DEFINE_EXPM1, float, f, uint32_t, 12582912.0, 127, 23, LSTM_EXPM1_CONSTANTS_f)
LSTM_EXPAND(LSTM_DEFINE_EXPM1, double, d, uint64_t, 6755399441055744.0, 1023, 52,
            LSTM_EXPM1_CONSTANTS_d)

#define LSTM_DEFINE_KERNELS(T, SUF)                                                              \
/* sigmoid(x) = 1 / (1 + e^-x) = 1 / (2 + expm1(-x)) */                                         \
static inline T lstm_sigmoid_##SUF(T x) { return (T)1 / ((T)2 + lstm_expm1_##SUF(-x)); }         \
/* tanh(x) = u / (u + 2), u = expm1(2x) */                                                       \
static inline T lstm_tanh_##SUF(T x)                                                             \
{                                                                                                \
    T u = lstm_expm1_##SUF((T)2 * x);                                                            \
    return u / (u + (T)2);                                                                       \
}                                                                                                \
                                                                                                 \
/* One step forward for one sequence: the body of lstm_gates_forward; `store` is a constant   \
 * where it is inlined, so the compiler makes one branch-free loop for each case. */             \
static inline void lstm_row_forward_##SUF(                                                       \
    ptrdiff_t H, const T *restrict bias, const T *restrict a, T *restrict act, T *restrict c,    \
    T *restrict h, T *restrict tc_out, const int store)                                          \
{                                                                                                \
    for (ptrdiff_t j = 0; j < H; j++) {                                                          \
        T i = lstm_sigmoid_##SUF(a[j] + bias[j]);                                                \
        T f = lstm_sigmoid_##SUF(a[H + j] + bias[H + j]);                                        \
        T g = lstm_tanh_##SUF(a[2 * H + j] + bias[2 * H + j]);                                   \
        T o = lstm_sigmoid_##SUF(a[3 * H + j] + bias[3 * H + j]);                                \
        T c_new = f * c[j] + i * g;                                                              \
        T tc = lstm_tanh_##SUF(c_new);                                                           \
        c[j] = c_new;                                                                            \
        h[j] = o * tc;                                                                           \
        if (store) {                                                                             \
            act[j] = i;                                                                          \
            act[H + j] = f;                                                                      \
            act[2 * H + j] = g;                                                                  \
            act[3 * H + j] = o;                                                                  \
            tc_out[j] = tc;                                                                      \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* One step forward for `rows` sequences.                                                        \
 *   gates (rows x 4H): pre-activations without bias.  cell (rows x H): c_{t-1} in, c_t out.    \
 *   hidden (rows x H, row stride ld_hidden) and, unless NULL, out (row stride ld_out):          \
 *   r_t = o tanh(c_t).                                                                          \
 *   act (rows x 4H): the activated gates [i, f, g, o], and tanh_cell, cell_prev (rows x H):     \
 *   tanh(c_t) and c_{t-1}, stored for backward; all three NULL for inference. */                \
LSTM_DISPATCH static void lstm_gates_forward_portable_##SUF(                                     \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict bias, const T *restrict gates,                \
    T *restrict act, T *restrict cell, T *restrict hidden, ptrdiff_t ld_hidden, T *restrict out, \
    ptrdiff_t ld_out, T *restrict tanh_cell, T *restrict cell_prev)                              \
{                                                                                                \
    if (cell_prev != NULL)                                                                       \
        memcpy(cell_prev, cell, (size_t)(rows * H) * sizeof(T));                                 \
    for (ptrdiff_t b = 0; b < rows; b++) {                                                       \
        T *h = hidden + b * ld_hidden;                                                           \
        if (act != NULL)                                                                         \
            lstm_row_forward_##SUF(H, bias, gates + b * 4 * H, act + b * 4 * H, cell + b * H,    \
                                   h, tanh_cell + b * H, 1);                                     \
        else                                                                                     \
            lstm_row_forward_##SUF(H, bias, gates + b * 4 * H, NULL, cell + b * H, h, NULL, 0);  \
        if (out != NULL)                                                                         \
            memcpy(out + b * ld_out, h, (size_t)H * sizeof(T));                                  \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* One step backward for `rows` sequences.                                                       \
 *   d_hidden (rows x H): dL/dr_t.  gates (rows x 4H): activated [i, f, g, o] in, dL/da_t out.    \
 *   tanh_cell (rows x H): tanh(c_t) in, r_t = o tanh(c_t) out (what dW_hr needs).               \
 *   d_cell (rows x H): dL/dc_t from step t+1 in, dL/dc_{t-1} out.                               \
 *   d_cell_step (rows x H), unless NULL: the whole dL/dc_t (for introspection). */             \
LSTM_DISPATCH static void lstm_gates_backward_##SUF(                                             \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict d_hidden, T *restrict gates,                  \
    T *restrict tanh_cell, const T *restrict cell_prev, T *restrict d_cell,                      \
    T *restrict d_cell_step)                                                                     \
{                                                                                                \
    for (ptrdiff_t b = 0; b < rows; b++) {                                                       \
        T *restrict ai = gates + b * 4 * H, *restrict af = ai + H;                               \
        T *restrict ag = ai + 2 * H, *restrict ao = ai + 3 * H;                                  \
        T *restrict tc = tanh_cell + b * H, *restrict dc = d_cell + b * H;                       \
        const T *restrict dr = d_hidden + b * H, *restrict cp = cell_prev + b * H;               \
        for (ptrdiff_t j = 0; j < H; j++) {                                                      \
            T i = ai[j], f = af[j], g = ag[j], o = ao[j], t = tc[j];                             \
            T d_c = dc[j] + dr[j] * o * ((T)1 - t * t);                                          \
            ai[j] = d_c * g * i * ((T)1 - i);                                                    \
            af[j] = d_c * cp[j] * f * ((T)1 - f);                                                \
            ag[j] = d_c * i * ((T)1 - g * g);                                                    \
            ao[j] = dr[j] * t * o * ((T)1 - o);                                                  \
            dc[j] = d_c * f;                                                                     \
            tc[j] = o * t;                                                                       \
            if (d_cell_step != NULL)                                                             \
                d_cell_step[b * H + j] = d_c;                                                    \
        }                                                                                        \
    }                                                                                            \
}

LSTM_DEFINE_KERNELS(float, f)
LSTM_DEFINE_KERNELS(double, d)

#if LSTM_HAVE_PACKED
#include <immintrin.h>

#define LSTM_AVX512 static inline __attribute__((target("avx512f"), always_inline))

/* The AVX-512 build of expm1, sigmoid, tanh and the forward pass: the maths above, on VL lanes of
 * type V (intrinsics with suffix PS, masks of type MASK). */
#define LSTM_DEFINE_AVX512(T, SUF, V, PS, MASK, LO, HI, LN2_HI, LN2_LO, DEGREE)                  \
LSTM_AVX512 V lstm_expm1_##SUF##_avx512(V x)                                                     \
{                                                                                                \
    /* clamped (max, then min, pass NaN on), n = round(x / ln2), r = x - n ln2 */                \
    x = _mm512_min_##PS(_mm512_set1_##PS((T)(HI)), _mm512_max_##PS(_mm512_set1_##PS((T)(LO)), x));\
    V n = _mm512_roundscale_##PS(_mm512_mul_##PS(x, _mm512_set1_##PS((T)1.4426950408889634074)),\
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);                 \
    V r = _mm512_fnmadd_##PS(n, _mm512_set1_##PS((T)(LN2_HI)), x);                               \
    r = _mm512_fnmadd_##PS(n, _mm512_set1_##PS((T)(LN2_LO)), r);                                 \
    /* q = e^r - 1 = r + r^2 P(r) */                                                             \
    V p = _mm512_set1_##PS((T)lstm_inv_factorial[(DEGREE) - 2]);                                 \
    _Pragma("GCC unroll 16")                                                                     \
    for (int k = (DEGREE) - 1; k >= 2; k--)                                                      \
        p = _mm512_fmadd_##PS(p, r, _mm512_set1_##PS((T)lstm_inv_factorial[k - 2]));             \
    V q = _mm512_fmadd_##PS(_mm512_mul_##PS(r, r), p, r);                                        \
    /* 2^n (q + 1) - 1 = 2^n q + (2^n - 1) */                                                    \
    V scale = _mm512_scalef_##PS(_mm512_set1_##PS((T)1), n);                                     \
    return _mm512_fmadd_##PS(scale, q, _mm512_sub_##PS(scale, _mm512_set1_##PS((T)1)));         \
}                                                                                                \
                                                                                                 \
/* sigmoid(x) = 1 / (2 + expm1(-x)) */                                                           \
LSTM_AVX512 V lstm_sigmoid_##SUF##_avx512(V x)                                                   \
{                                                                                                \
    V e = lstm_expm1_##SUF##_avx512(_mm512_sub_##PS(_mm512_setzero_##PS(), x));                  \
    return _mm512_div_##PS(_mm512_set1_##PS((T)1), _mm512_add_##PS(e, _mm512_set1_##PS((T)2))); \
}                                                                                                \
                                                                                                 \
/* tanh(x) = u / (u + 2), u = expm1(2x) */                                                       \
LSTM_AVX512 V lstm_tanh_##SUF##_avx512(V x)                                                      \
{                                                                                                \
    V u = lstm_expm1_##SUF##_avx512(_mm512_add_##PS(x, x));                                      \
    return _mm512_div_##PS(u, _mm512_add_##PS(u, _mm512_set1_##PS((T)2)));                      \
}                                                                                                \
                                                                                                 \
/* The mask of the first min(n, VL) lanes. */                                                    \
LSTM_AVX512 MASK lstm_first_lanes_##SUF(ptrdiff_t n)                                             \
{                                                                                                \
    enum { VL = 64 / sizeof(T) };                                                                \
    return n >= VL ? (MASK)-1 : (MASK)((1u << n) - 1);                                           \
}                                                                                                \
                                                                                                 \
/* lstm_gates_forward, VL columns at a time (the last ones masked). */                           \
__attribute__((target("avx512f"))) static void lstm_gates_forward_avx512_##SUF(                 \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict bias, const T *restrict gates,                \
    T *restrict act, T *restrict cell, T *restrict hidden, ptrdiff_t ld_hidden, T *restrict out, \
    ptrdiff_t ld_out, T *restrict tanh_cell, T *restrict cell_prev)                              \
{                                                                                                \
    enum { VL = 64 / sizeof(T) };                                                                \
    if (cell_prev != NULL)                                                                       \
        memcpy(cell_prev, cell, (size_t)(rows * H) * sizeof(T));                                 \
    for (ptrdiff_t b = 0; b < rows; b++) {                                                       \
        const T *a = gates + b * 4 * H;                                                          \
        T *c = cell + b * H, *h = hidden + b * ld_hidden;                                        \
        T *s = act != NULL ? act + b * 4 * H : NULL;                                             \
        for (ptrdiff_t j = 0; j < H; j += VL) {                                                  \
            MASK m = lstm_first_lanes_##SUF(H - j);                                              \
            /* a_gate + bias_gate for gate k of [i, f, g, o] */                                  \
            V pre[4];                                                                            \
            _Pragma("GCC unroll 4")                                                              \
            for (int k = 0; k < 4; k++)                                                          \
                pre[k] = _mm512_add_##PS(_mm512_maskz_loadu_##PS(m, a + k * H + j),              \
                                         _mm512_maskz_loadu_##PS(m, bias + k * H + j));          \
            V i = lstm_sigmoid_##SUF##_avx512(pre[0]);                                           \
            V f = lstm_sigmoid_##SUF##_avx512(pre[1]);                                           \
            V g = lstm_tanh_##SUF##_avx512(pre[2]);                                              \
            V o = lstm_sigmoid_##SUF##_avx512(pre[3]);                                           \
            /* c' = f c + i g,  r = o tanh(c') */                                                \
            V c_new = _mm512_fmadd_##PS(f, _mm512_maskz_loadu_##PS(m, c + j),                   \
                                        _mm512_mul_##PS(i, g));                                  \
            V tc = lstm_tanh_##SUF##_avx512(c_new);                                              \
            _mm512_mask_storeu_##PS(c + j, m, c_new);                                            \
            V r = _mm512_mul_##PS(o, tc);                                                        \
            _mm512_mask_storeu_##PS(h + j, m, r);                                                \
            if (out != NULL)                                                                     \
                _mm512_mask_storeu_##PS(out + b * ld_out + j, m, r);                             \
            if (act != NULL) {  /* training: keep what backward needs */                         \
                _mm512_mask_storeu_##PS(s + j, m, i);                                            \
                _mm512_mask_storeu_##PS(s + H + j, m, f);                                        \
                _mm512_mask_storeu_##PS(s + 2 * H + j, m, g);                                    \
                _mm512_mask_storeu_##PS(s + 3 * H + j, m, o);                                    \
                _mm512_mask_storeu_##PS(tanh_cell + b * H + j, m, tc);                           \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* sig = sigmoid(x), th = tanh(x) for n elements (for tests). */                                 \
__attribute__((target("avx512f"))) static void lstm_activations_avx512_##SUF(                   \
    ptrdiff_t n, const T *x, T *sig, T *th)                                                      \
{                                                                                                \
    enum { VL = 64 / sizeof(T) };                                                                \
    for (ptrdiff_t j = 0; j < n; j += VL) {                                                      \
        MASK m = lstm_first_lanes_##SUF(n - j);                                                  \
        V v = _mm512_maskz_loadu_##PS(m, x + j);                                                 \
        _mm512_mask_storeu_##PS(sig + j, m, lstm_sigmoid_##SUF##_avx512(v));                     \
        _mm512_mask_storeu_##PS(th + j, m, lstm_tanh_##SUF##_avx512(v));                         \
    }                                                                                            \
}

LSTM_EXPAND(LSTM_DEFINE_AVX512, float, f, __m512, ps, __mmask16, LSTM_EXPM1_CONSTANTS_f)
LSTM_EXPAND(LSTM_DEFINE_AVX512, double, d, __m512d, pd, __mmask8, LSTM_EXPM1_CONSTANTS_d)

#define LSTM_USE_AVX512_GATES() (lstm_packed_vector_bytes() == 64)
/* The dispatchers below go to the AVX-512 build when the kernel choice has it. */
#define LSTM_FORWARD_AVX512(SUF)                                                                 \
    if (LSTM_USE_AVX512_GATES()) {                                                               \
        lstm_gates_forward_avx512_##SUF(rows, H, bias, gates, act, cell, hidden, ld_hidden, out, \
                                        ld_out, tanh_cell, cell_prev);                           \
        return;                                                                                  \
    }
#define LSTM_ACTIVATIONS_AVX512(SUF)                                                             \
    if (avx512 && LSTM_USE_AVX512_GATES()) {                                                     \
        lstm_activations_avx512_##SUF(n, x, sig, th);                                            \
        return 1;                                                                                \
    }
#else
#define LSTM_USE_AVX512_GATES() 0
#define LSTM_FORWARD_AVX512(SUF)
#define LSTM_ACTIVATIONS_AVX512(SUF) (void)avx512;
#endif /* LSTM_HAVE_PACKED */

/* The forward pass the kernel choice (lstm_cpu.h) asks for: AVX-512 or portable. */
#define LSTM_DEFINE_DISPATCH(T, SUF)                                                             \
static void lstm_gates_forward_##SUF(                                                            \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict bias, const T *restrict gates,                \
    T *restrict act, T *restrict cell, T *restrict hidden, ptrdiff_t ld_hidden, T *restrict out, \
    ptrdiff_t ld_out, T *restrict tanh_cell, T *restrict cell_prev)                              \
{                                                                                                \
    LSTM_FORWARD_AVX512(SUF)                                                                     \
    lstm_gates_forward_portable_##SUF(rows, H, bias, gates, act, cell, hidden, ld_hidden, out,   \
                                      ld_out, tanh_cell, cell_prev);                             \
}                                                                                                \
                                                                                                 \
/* sig = sigmoid(x), th = tanh(x) for n elements, by the AVX-512 build if `avx512` and the       \
 * kernel choice has it, else by the portable one (for tests). Returns which one ran. */         \
static int lstm_activations_##SUF(ptrdiff_t n, const T *x, T *sig, T *th, int avx512)            \
{                                                                                                \
    LSTM_ACTIVATIONS_AVX512(SUF)                                                                 \
    for (ptrdiff_t j = 0; j < n; j++) {                                                          \
        sig[j] = lstm_sigmoid_##SUF(x[j]);                                                       \
        th[j] = lstm_tanh_##SUF(x[j]);                                                           \
    }                                                                                            \
    return 0;                                                                                    \
}

LSTM_DEFINE_DISPATCH(float, f)
LSTM_DEFINE_DISPATCH(double, d)

/* Which build runs the forward pass. */
static const char *lstm_gate_kernel(void)
{
    return LSTM_USE_AVX512_GATES() ? "avx512" : lstm_fast_dispatch;
}

#endif /* LSTM_FAST_KERNELS_H */
