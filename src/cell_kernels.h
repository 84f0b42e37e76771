/*
 * Fused element-wise kernels of the GRU and the plain (Elman) RNN for one time step, beside the
 * LSTM's (lstm_kernels.h, whose sigmoid and tanh they use), written once for float and double.
 *
 * GRU, gate blocks in PyTorch's order [r, z, n], each H wide, in a row of 3H; the input's
 * products gx = x W_ih^T and the recurrent ones gh = h W_hh^T arrive apart, because the n block
 * multiplies its recurrent part by r:
 *     r = sigmoid(gx_r + gh_r + b_r),  z = sigmoid(gx_z + gh_z + b_z)
 *     n = tanh(gx_n + b_in + r (gh_n + b_hn)),  h' = (1 - z) n + z h
 * RNN: h' = tanh(a) or relu(a), a = x W_ih^T + h W_hh^T + b (one block, the products summed).
 *
 * Portable C that the compiler vectorises, compiled for AVX-512, AVX2+FMA and the baseline, the
 * loader picking the best the CPU has (LSTM_DISPATCH).
 */
#ifndef LSTM_FAST_CELL_KERNELS_H
#define LSTM_FAST_CELL_KERNELS_H

#include "lstm_kernels.h"

#define LSTM_DEFINE_CELL_KERNELS(T, SUF)                                                         \
/* GRU, one step forward for `rows` sequences.                                                   \
 *   gates, rec (rows x 3H): x W_ih^T and h W_hh^T, without bias.  bias (4H): b_ir + b_hr,       \
 *   b_iz + b_hz, b_in, b_hn.  hidden (rows x H, row stride ld_hidden): h_{t-1} in, h_t out, and \
 *   h_t into out too unless NULL (row stride ld_out).                                           \
 *   For backward (training): act (rows x 3H) <- [r, z, n], and the n block of hidden_gates      \
 *   (rows x 3H) <- gh_n + b_hn; both NULL for inference. */                                     \
LSTM_DISPATCH static void gru_gates_forward_##SUF(                                               \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict bias, const T *restrict gates,                \
    const T *restrict rec, T *restrict act, T *restrict hidden_gates, T *restrict hidden,        \
    ptrdiff_t ld_hidden, T *restrict out, ptrdiff_t ld_out)                                      \
{                                                                                                \
    for (ptrdiff_t b = 0; b < rows; b++) {                                                       \
        const T *restrict gx = gates + b * 3 * H, *restrict gh = rec + b * 3 * H;                \
        T *restrict h = hidden + b * ld_hidden;                                                  \
        for (ptrdiff_t j = 0; j < H; j++) {                                                      \
            T r = lstm_sigmoid_##SUF(gx[j] + gh[j] + bias[j]);                                   \
            T z = lstm_sigmoid_##SUF(gx[H + j] + gh[H + j] + bias[H + j]);                       \
            T hn = gh[2 * H + j] + bias[3 * H + j];                                              \
            T n = lstm_tanh_##SUF(gx[2 * H + j] + bias[2 * H + j] + r * hn);                     \
            T h_new = n + z * (h[j] - n);                                                        \
            h[j] = h_new;                                                                        \
            if (out != NULL)                                                                     \
                out[b * ld_out + j] = h_new;                                                     \
            if (act != NULL) {                                                                   \
                act[b * 3 * H + j] = r;                                                          \
                act[b * 3 * H + H + j] = z;                                                      \
                act[b * 3 * H + 2 * H + j] = n;                                                  \
                hidden_gates[b * 3 * H + 2 * H + j] = hn;                                        \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* GRU, one step backward for `rows` sequences.                                                  \
 *   d_hidden (rows x H): dL/dh_t in, its direct part of dL/dh_{t-1} (dL/dh_t z) out.             \
 *   gates (rows x 3H): [r, z, n] in, dL/d(gx + b_ih) out.                                       \
 *   hidden_gates (rows x 3H): gh_n + b_hn in its n block, dL/d(gh + b_hh) out.                  \
 *   hidden_prev (rows x H): h_{t-1}. */                                                         \
LSTM_DISPATCH static void gru_gates_backward_##SUF(                                              \
    ptrdiff_t rows, ptrdiff_t H, T *restrict d_hidden, T *restrict gates,                        \
    T *restrict hidden_gates, const T *restrict hidden_prev)                                     \
{                                                                                                \
    for (ptrdiff_t b = 0; b < rows; b++) {                                                       \
        T *restrict a = gates + b * 3 * H, *restrict ah = hidden_gates + b * 3 * H;              \
        T *restrict dh = d_hidden + b * H;                                                       \
        const T *restrict hp = hidden_prev + b * H;                                              \
        for (ptrdiff_t j = 0; j < H; j++) {                                                      \
            T r = a[j], z = a[H + j], n = a[2 * H + j], hn = ah[2 * H + j], d = dh[j];           \
            T d_n = d * ((T)1 - z) * ((T)1 - n * n);                                             \
            T d_r = d_n * hn * r * ((T)1 - r);                                                   \
            T d_z = d * (hp[j] - n) * z * ((T)1 - z);                                            \
            a[j] = ah[j] = d_r;                                                                  \
            a[H + j] = ah[H + j] = d_z;                                                          \
            a[2 * H + j] = d_n;                                                                  \
            ah[2 * H + j] = d_n * r;                                                             \
            dh[j] = d * z;                                                                       \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* RNN, one step forward for `rows` sequences: h_t = tanh(a) (relu(a) if relu), a = gates + bias \
 * (gates rows x H).  hidden, out as for the GRU; act (rows x H) <- h_t for backward, or NULL. */ \
LSTM_DISPATCH static void rnn_gates_forward_##SUF(                                               \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict bias, const T *restrict gates,                \
    T *restrict act, T *restrict hidden, ptrdiff_t ld_hidden, T *restrict out, ptrdiff_t ld_out, \
    int relu)                                                                                    \
{                                                                                                \
    for (ptrdiff_t b = 0; b < rows; b++) {                                                       \
        T *restrict h = hidden + b * ld_hidden;                                                  \
        for (ptrdiff_t j = 0; j < H; j++) {                                                      \
            T a = gates[b * H + j] + bias[j];                                                    \
            T h_new = relu ? (a > (T)0 ? a : (T)0) : lstm_tanh_##SUF(a);                         \
            h[j] = h_new;                                                                        \
            if (out != NULL)                                                                     \
                out[b * ld_out + j] = h_new;                                                     \
            if (act != NULL)                                                                     \
                act[b * H + j] = h_new;                                                          \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* RNN, one step backward: gates (rows x H) h_t in, dL/da_t = dL/dh_t f'(a_t) out, from        \
 * d_hidden (rows x H): 1 - h^2 for tanh, [h > 0] for relu (as torch: 0 at 0). */                \
LSTM_DISPATCH static void rnn_gates_backward_##SUF(                                              \
    ptrdiff_t rows, ptrdiff_t H, const T *restrict d_hidden, T *restrict gates, int relu)        \
{                                                                                                \
    for (ptrdiff_t k = 0; k < rows * H; k++) {                                                   \
        T h = gates[k];                                                                          \
        gates[k] = d_hidden[k] * (relu ? (h > (T)0 ? (T)1 : (T)0) : (T)1 - h * h);               \
    }                                                                                            \
}

LSTM_DEFINE_CELL_KERNELS(float, f)
LSTM_DEFINE_CELL_KERNELS(double, d)

#endif /* LSTM_FAST_CELL_KERNELS_H */
