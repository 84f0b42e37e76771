# Fused element-wise LSTM gate kernels for one time step (vectorised C in lstm_kernels.h),
# one entry point over float and double.
#
# Gate blocks follow PyTorch's order [i, f, g, o], each H wide, in a row of 4H:
#   i, f, o = sigmoid(a),  g = tanh(a),  c' = f c + i g,  r = o tanh(c')

from cython cimport floating

cdef extern from "lstm_kernels.h" nogil:
    const char *lstm_gate_kernel()
    int lstm_activations_f(Py_ssize_t n, const float *x, float *sig, float *th, int avx512)
    int lstm_activations_d(Py_ssize_t n, const double *x, double *sig, double *th, int avx512)
    void lstm_gates_forward_f(Py_ssize_t rows, Py_ssize_t H, const float *bias,
                              const float *gates, float *act, float *cell, float *hidden,
                              Py_ssize_t ld_hidden, float *out, Py_ssize_t ld_out,
                              float *tanh_cell, float *cell_prev)
    void lstm_gates_forward_d(Py_ssize_t rows, Py_ssize_t H, const double *bias,
                              const double *gates, double *act, double *cell, double *hidden,
                              Py_ssize_t ld_hidden, double *out, Py_ssize_t ld_out,
                              double *tanh_cell, double *cell_prev)
    void lstm_gates_backward_f(Py_ssize_t rows, Py_ssize_t H, const float *d_hidden,
                               float *gates, float *tanh_cell, const float *cell_prev,
                               float *d_cell)
    void lstm_gates_backward_d(Py_ssize_t rows, Py_ssize_t H, const double *d_hidden,
                               double *gates, double *tanh_cell, const double *cell_prev,
                               double *d_cell)


cdef inline int activations_(Py_ssize_t n, const floating *x, floating *sig, floating *th,
                             bint avx512) noexcept nogil:
    """sig = sigmoid(x), th = tanh(x) (n elements) by the AVX-512 build of the forward pass if
    avx512 and the kernel choice has it (returns 1), else by the portable one (returns 0)."""
    if floating is float:
        return lstm_activations_f(n, x, sig, th, avx512)
    else:
        return lstm_activations_d(n, x, sig, th, avx512)


cdef inline void gates_forward(Py_ssize_t rows, Py_ssize_t H, const floating *bias,
                               const floating *gates, floating *act, floating *cell,
                               floating *hidden, Py_ssize_t ld_hidden, floating *out,
                               Py_ssize_t ld_out, floating *tanh_cell,
                               floating *cell_prev) noexcept nogil:
    """gates (rows x 4H) pre-activations; c_{t-1} -> c_t; hidden and (unless NULL) out get
    r_t = o tanh(c_t), rows ld_hidden and ld_out apart.

    For backward (training), act (rows x 4H) receives the activated gates, tanh_cell and cell_prev
    (rows x H) tanh(c_t) and c_{t-1}; for inference all three are NULL.
    """
    if floating is float:
        lstm_gates_forward_f(rows, H, bias, gates, act, cell, hidden, ld_hidden, out, ld_out,
                             tanh_cell, cell_prev)
    else:
        lstm_gates_forward_d(rows, H, bias, gates, act, cell, hidden, ld_hidden, out, ld_out,
                             tanh_cell, cell_prev)


cdef inline void gates_backward(Py_ssize_t rows, Py_ssize_t H, const floating *d_hidden,
                                floating *gates, floating *tanh_cell,
                                const floating *cell_prev, floating *d_cell) noexcept nogil:
    """dL/dr_t and dL/dc_t -> dL/da_t (over gates), dL/dc_{t-1} (over d_cell), r_t (over tanh_cell)."""
    if floating is float:
        lstm_gates_backward_f(rows, H, d_hidden, gates, tanh_cell, cell_prev, d_cell)
    else:
        lstm_gates_backward_d(rows, H, d_hidden, gates, tanh_cell, cell_prev, d_cell)
