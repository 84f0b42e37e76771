/*
 * The input check for NaN and infinity, in one pass with no temporary array: those are the
 * values whose exponent bits are all ones, so the loop ORs an integer test over the raw bits,
 * which the compiler vectorises (a floating-point x * 0 sum would stay scalar: its adds may not
 * be reordered).
 */
#ifndef LSTM_FAST_CHECKS_H
#define LSTM_FAST_CHECKS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lstm_cpu.h"

#define LSTM_DEFINE_ALL_FINITE(T, SUF, UINT, EXPONENT)                                           \
/* 1 if none of a[0 .. n) is NaN or infinite, else 0 */                                          \
LSTM_DISPATCH static int lstm_all_finite_##SUF(const T *a, ptrdiff_t n)                          \
{                                                                                                \
    UINT bad = 0;                                                                                \
    for (ptrdiff_t i = 0; i < n; i++) {                                                          \
        UINT bits;                                                                               \
        memcpy(&bits, a + i, sizeof bits);                                                       \
        bad |= (UINT)((bits & (EXPONENT)) == (EXPONENT));                                        \
    }                                                                                            \
    return bad == 0;                                                                             \
}

LSTM_DEFINE_ALL_FINITE(float, f, uint32_t, 0x7f800000u)
LSTM_DEFINE_ALL_FINITE(double, d, uint64_t, 0x7ff0000000000000ull)

#endif /* LSTM_FAST_CHECKS_H */
