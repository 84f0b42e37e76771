# Fused element-wise LSTM gate kernels for one time step, written once for float and double.
#
# Gate blocks follow PyTorch's order [i, f, g, o], each H wide, in a row of 4H.
#   i, f, o = sigmoid(a),  g = tanh(a),  c' = f c + i g,  r = o tanh(c')
# Backward from the stored activations (s (1 - s) for sigmoids, 1 - t^2 for tanh).

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating sigmoid(floating x) noexcept nogil:
    """1 / (1 + e^-x), evaluated so that e^|x| never overflows."""
    cdef floating z
    if x >= 0:
        return 1 / (1 + _exp(-x))
    z = _exp(x)
    return z / (1 + z)


cdef inline void gates_forward(Py_ssize_t rows, Py_ssize_t H, const floating *bias,
                               floating *gates, floating *cell, floating *hidden, int ld_hidden,
                               floating *tanh_cell, floating *cell_prev) noexcept nogil:
    """One step for `rows` sequences.

    gates (rows x 4H): pre-activations without bias in, activated [i, f, g, o] out.
    cell (rows x H): c_{t-1} in, c_t out.  hidden (rows x H, row stride ld_hidden): r_t = o tanh(c_t).
    tanh_cell, cell_prev (rows x H): tanh(c_t) and c_{t-1} stored for backward, or NULL.
    """
    cdef Py_ssize_t b, j
    cdef floating *a
    cdef floating i, f, g, o, c, tc
    for b in range(rows):
        a = gates + b * 4 * H
        for j in range(H):
            i = sigmoid(a[j] + bias[j])
            f = sigmoid(a[H + j] + bias[H + j])
            g = _tanh(a[2 * H + j] + bias[2 * H + j])
            o = sigmoid(a[3 * H + j] + bias[3 * H + j])
            if cell_prev != NULL:
                cell_prev[b * H + j] = cell[b * H + j]
            c = f * cell[b * H + j] + i * g
            tc = _tanh(c)
            cell[b * H + j] = c
            hidden[b * ld_hidden + j] = o * tc
            if tanh_cell != NULL:
                tanh_cell[b * H + j] = tc
            a[j] = i
            a[H + j] = f
            a[2 * H + j] = g
            a[3 * H + j] = o


cdef inline void gates_backward(Py_ssize_t rows, Py_ssize_t H, const floating *d_hidden,
                                floating *gates, floating *tanh_cell,
                                const floating *cell_prev, floating *d_cell) noexcept nogil:
    """Backward of one step for `rows` sequences.

    d_hidden (rows x H): dL/dr_t.  gates (rows x 4H): activated [i, f, g, o] in, dL/da_t out.
    d_cell (rows x H): dL/dc_t from step t+1 in, dL/dc_{t-1} out.
    """
    cdef Py_ssize_t b, j
    cdef floating *a
    cdef floating i, f, g, o, tc, dr, dc
    for b in range(rows):
        a = gates + b * 4 * H
        for j in range(H):
            i = a[j]
            f = a[H + j]
            g = a[2 * H + j]
            o = a[3 * H + j]
            tc = tanh_cell[b * H + j]
            dr = d_hidden[b * H + j]
            dc = d_cell[b * H + j] + dr * o * (1 - tc * tc)
            a[j] = dc * g * i * (1 - i)
            a[H + j] = dc * cell_prev[b * H + j] * f * (1 - f)
            a[2 * H + j] = dc * i * (1 - g * g)
            a[3 * H + j] = dr * tc * o * (1 - o)
            d_cell[b * H + j] = dc * f
            tanh_cell[b * H + j] = o * tc
