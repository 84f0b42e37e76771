# Fused element-wise gate kernels of the LSTM, GRU and RNN for one time step (vectorised C in
# lstm_kernels.h and cell_kernels.h), one entry point over float and double.
#
# Gate blocks follow PyTorch's order, each H wide: the LSTM's [i, f, g, o] in a row of 4H,
#   i, f, o = sigmoid(a),  g = tanh(a),  c' = f c + i g,  r = o tanh(c');
# the GRU's [r, z, n] in 3H and the RNN's one block (cell_kernels.h has their maths).
# cell_forward and cell_backward run the pass of the cell a time loop is given.

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
                               float *d_cell, float *d_cell_step)
    void lstm_gates_backward_d(Py_ssize_t rows, Py_ssize_t H, const double *d_hidden,
                               double *gates, double *tanh_cell, const double *cell_prev,
                               double *d_cell, double *d_cell_step)


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
                                const floating *cell_prev, floating *d_cell,
                                floating *d_cell_step) noexcept nogil:
    """dL/dr_t and dL/dc_t -> dL/da_t (over gates), dL/dc_{t-1} (over d_cell), r_t (over
    tanh_cell)."""
    if floating is float:
        lstm_gates_backward_f(rows, H, d_hidden, gates, tanh_cell, cell_prev, d_cell, d_cell_step)
    else:
        lstm_gates_backward_d(rows, H, d_hidden, gates, tanh_cell, cell_prev, d_cell, d_cell_step)


cdef extern from "cell_kernels.h" nogil:
    void gru_gates_forward_f(Py_ssize_t rows, Py_ssize_t H, const float *bias, const float *gates,
                             const float *rec, float *act, float *hidden_gates, float *hidden,
                             Py_ssize_t ld_hidden, float *out, Py_ssize_t ld_out)
    void gru_gates_forward_d(Py_ssize_t rows, Py_ssize_t H, const double *bias,
                             const double *gates, const double *rec, double *act,
                             double *hidden_gates, double *hidden, Py_ssize_t ld_hidden,
                             double *out, Py_ssize_t ld_out)
    void gru_gates_backward_f(Py_ssize_t rows, Py_ssize_t H, float *d_hidden, float *gates,
                              float *hidden_gates, const float *hidden_prev)
    void gru_gates_backward_d(Py_ssize_t rows, Py_ssize_t H, double *d_hidden, double *gates,
                              double *hidden_gates, const double *hidden_prev)
    void rnn_gates_forward_f(Py_ssize_t rows, Py_ssize_t H, const float *bias, const float *gates,
                             float *act, float *hidden, Py_ssize_t ld_hidden, float *out,
                             Py_ssize_t ld_out, int relu)
    void rnn_gates_forward_d(Py_ssize_t rows, Py_ssize_t H, const double *bias,
                             const double *gates, double *act, double *hidden,
                             Py_ssize_t ld_hidden, double *out, Py_ssize_t ld_out, int relu)
    void rnn_gates_backward_f(Py_ssize_t rows, Py_ssize_t H, const float *d_hidden, float *gates,
                              int relu)
    void rnn_gates_backward_d(Py_ssize_t rows, Py_ssize_t H, const double *d_hidden,
                              double *gates, int relu)


cdef inline void gru_forward(Py_ssize_t rows, Py_ssize_t H, const floating *bias,
                             const floating *gates, const floating *rec, floating *act,
                             floating *hidden_gates, floating *hidden, Py_ssize_t ld_hidden,
                             floating *out, Py_ssize_t ld_out) noexcept nogil:
    """GRU step: gates, rec (rows x 3H) x W_ih^T and h W_hh^T; h_{t-1} -> h_t in hidden (and out
    unless NULL). For training, act <- [r, z, n] and hidden_gates' n block <- W_hn h + b_hn."""
    if floating is float:
        gru_gates_forward_f(rows, H, bias, gates, rec, act, hidden_gates, hidden, ld_hidden, out,
                            ld_out)
    else:
        gru_gates_forward_d(rows, H, bias, gates, rec, act, hidden_gates, hidden, ld_hidden, out,
                            ld_out)


cdef inline void gru_backward(Py_ssize_t rows, Py_ssize_t H, floating *d_hidden, floating *gates,
                              floating *hidden_gates,
                              const floating *hidden_prev) noexcept nogil:
    """dL/dh_t (over d_hidden: dL/dh_t z) -> the gradients of the input's pre-activations (over
    gates) and of the recurrent ones (over hidden_gates)."""
    if floating is float:
        gru_gates_backward_f(rows, H, d_hidden, gates, hidden_gates, hidden_prev)
    else:
        gru_gates_backward_d(rows, H, d_hidden, gates, hidden_gates, hidden_prev)


cdef inline void rnn_forward(Py_ssize_t rows, Py_ssize_t H, const floating *bias,
                             const floating *gates, floating *act, floating *hidden,
                             Py_ssize_t ld_hidden, floating *out, Py_ssize_t ld_out,
                             bint relu) noexcept nogil:
    """RNN step: h_t = tanh (or relu) of gates + bias into hidden (and out unless NULL), and act
    for training unless NULL."""
    if floating is float:
        rnn_gates_forward_f(rows, H, bias, gates, act, hidden, ld_hidden, out, ld_out, relu)
    else:
        rnn_gates_forward_d(rows, H, bias, gates, act, hidden, ld_hidden, out, ld_out, relu)


cdef inline void rnn_backward(Py_ssize_t rows, Py_ssize_t H, const floating *d_hidden,
                              floating *gates, bint relu) noexcept nogil:
    """gates: h_t in, dL/da_t out."""
    if floating is float:
        rnn_gates_backward_f(rows, H, d_hidden, gates, relu)
    else:
        rnn_gates_backward_d(rows, H, d_hidden, gates, relu)


# The cells, as the `kind` argument of forward_layer and backward_layer names them.
cdef enum:
    CELL_LSTM = 0
    CELL_GRU = 1
    CELL_RNN_TANH = 2
    CELL_RNN_RELU = 3


cdef inline int _n_gates(int kind) noexcept nogil:
    """Gate blocks of a cell: LSTM 4, GRU 3, RNN 1."""
    return 4 if kind == CELL_LSTM else 3 if kind == CELL_GRU else 1


cdef inline void _cell_forward(int kind, Py_ssize_t rows, Py_ssize_t H, const floating *bias,
                               const floating *g_t, const floating *rec, floating *act,
                               floating *hidden_gates, floating *cell, floating *hidden,
                               Py_ssize_t ld_hidden, floating *out, Py_ssize_t ld_out,
                               floating *tanh_cell, floating *cell_prev) noexcept nogil:
    """The cell's gate pass for one step's rows: pre-activations g_t (and rec, the GRU's
    recurrent ones) -> h_t (r_t when projecting) and the LSTM's c_t; what training keeps."""
    if kind == CELL_LSTM:
        gates_forward(rows, H, bias, g_t, act, cell, hidden, ld_hidden, out, ld_out, tanh_cell,
                      cell_prev)
    elif kind == CELL_GRU:
        gru_forward(rows, H, bias, g_t, rec, act, hidden_gates, hidden, ld_hidden, out, ld_out)
    else:
        rnn_forward(rows, H, bias, g_t, act, hidden, ld_hidden, out, ld_out,
                    kind == CELL_RNN_RELU)


cdef inline void _cell_backward(int kind, Py_ssize_t rows, Py_ssize_t H, floating *d_hidden,
                                floating *gates, floating *hidden_gates, floating *tanh_cell,
                                const floating *cell_prev, floating *d_cell,
                                const floating *hidden_prev,
                                floating *d_cell_step) noexcept nogil:
    """The cell's backward pass for one step's rows: dL/dh_t (dL/dr_t when projecting) and the
    LSTM's dL/dc_t -> the pre-activations' gradients, over what the forward stored (and the
    LSTM's whole dL/dc_t into d_cell_step unless NULL)."""
    if kind == CELL_LSTM:
        gates_backward(rows, H, d_hidden, gates, tanh_cell, cell_prev, d_cell, d_cell_step)
    elif kind == CELL_GRU:
        gru_backward(rows, H, d_hidden, gates, hidden_gates, hidden_prev)
    else:
        rnn_backward(rows, H, d_hidden, gates, kind == CELL_RNN_RELU)
