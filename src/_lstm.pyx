# The LSTM time loops for one layer and one direction, forward and backward (BPTT).
#
# Sequences arrive packed (as cuDNN and PyTorch's PackedSequence lay them out): sorted by length,
# longest first, time-major, step t holding rows offsets[t] .. offsets[t] + batch_sizes[t] - 1 of a
# (N x features) array.  At step t only the first batch_sizes[t] sequences are active, so every GEMM
# and the fused pass run on those rows alone: padded steps cost nothing and touch nothing.  Rows of
# the state buffers that are not active keep their value, which is how each sequence ends with its own
# final state (forward direction) and starts from h_0 at its own last step (reverse direction).
#
# Dimensions: T steps, B sequences, N packed rows, I input, H hidden, P = proj_size or H.
# Weights in PyTorch's layout: W_ih (4H x I), W_hh (4H x P), W_hr (P x H).

from cython cimport floating
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from _blas cimport gemm, gemm_packed, pack
from _gates cimport gates_forward, gates_backward, lstm_fast_dispatch, sigmoid, tanh_

cdef extern from *:
    """
    #ifdef _OPENMP
    #define LSTM_FAST_OPENMP 1
    #else
    #define LSTM_FAST_OPENMP 0
    #endif
    #ifdef __OPTIMIZE__
    #define LSTM_FAST_OPTIMIZE 1
    #else
    #define LSTM_FAST_OPTIMIZE 0
    #endif
    #ifdef __AVX2__
    #define LSTM_FAST_AVX2 1
    #else
    #define LSTM_FAST_AVX2 0
    #endif
    #ifdef __AVX512F__
    #define LSTM_FAST_AVX512F 1
    #else
    #define LSTM_FAST_AVX512F 0
    #endif
    #ifdef __VERSION__
    #define LSTM_FAST_COMPILER __VERSION__
    #else
    #define LSTM_FAST_COMPILER "unknown"
    #endif
    """
    const int LSTM_FAST_OPENMP, LSTM_FAST_OPTIMIZE, LSTM_FAST_AVX2, LSTM_FAST_AVX512F
    const char *LSTM_FAST_COMPILER


def build_info():
    """What the compiler saw when it built this module: OpenMP, optimisation, vector ISA."""
    return dict(compiler=LSTM_FAST_COMPILER.decode(), openmp=bool(LSTM_FAST_OPENMP),
                optimized=bool(LSTM_FAST_OPTIMIZE), avx2=bool(LSTM_FAST_AVX2),
                avx512f=bool(LSTM_FAST_AVX512F),
                kernel_dispatch=lstm_fast_dispatch.decode())


# Inference computes the input projection for about this many packed rows at a time (at least one
# step), so its workspace stays O(B*H) whatever the sequence length.
cdef enum:
    INFERENCE_CHUNK_ROWS = 1024


cdef floating *_alloc(Py_ssize_t n, floating *like) except? NULL nogil:
    """n elements of the dtype of `like` (only its type matters), or MemoryError."""
    cdef floating *p = <floating *> malloc(max(n, 1) * sizeof(floating))
    if p == NULL:
        with gil:
            raise MemoryError(f"lstm_fast: cannot allocate {n} elements of workspace")
    return p


def forward_layer(const floating[:, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[::1] b_ih,
                  const floating[::1] b_hh, const floating[:, ::1] w_hr,
                  const Py_ssize_t[::1] batch_sizes, const Py_ssize_t[::1] offsets,
                  floating[:, ::1] hidden, floating[:, ::1] cell,
                  floating[:, ::1] out, Py_ssize_t out_col, bint reverse,
                  floating[:, ::1] gates=None, floating[:, ::1] tanh_cell=None,
                  floating[:, ::1] cell_prev=None, floating[:, ::1] hidden_prev=None):
    """Run one layer-direction over packed sequences.

    x (N x I): packed input.  b_ih, b_hh (4H): biases, or None.  w_hr (P x H), or None.
    hidden (B x P), cell (B x H): h_0, c_0 in; h_n, c_n out.
    out (N x D*P): h_t written into columns out_col .. out_col + P - 1.
    gates (N x 4H), tanh_cell, cell_prev (N x H), hidden_prev (N x P): for training, where the
    activated gates, tanh(c_t), c_{t-1} and h_{t-1} of every step are stored for backward; None for
    inference, which keeps only the state and O(B*H) workspace.
    """
    cdef Py_ssize_t T = batch_sizes.shape[0]
    cdef Py_ssize_t N = x.shape[0], I = x.shape[1], H = cell.shape[1], P = hidden.shape[1]
    cdef Py_ssize_t B = hidden.shape[0], G = 4 * H
    cdef bint training = gates is not None
    cdef bint project = w_hr is not None
    cdef bint has_b_ih = b_ih is not None, has_b_hh = b_hh is not None
    cdef Py_ssize_t chunk, ci, start, stop, step, k, t, rows, row, first_row, b, j
    cdef floating *g_t
    cdef floating *r_t
    cdef int ld_r
    cdef floating *bias = NULL
    cdef floating *work = NULL
    cdef floating *hidden_raw = NULL
    cdef floating *w_hh_packed = NULL
    cdef floating *w_hr_packed = NULL

    if (w_ih.shape[0] != G or w_ih.shape[1] != I or w_hh.shape[0] != G or w_hh.shape[1] != P
            or offsets.shape[0] != T or out.shape[0] != N or out_col + P > out.shape[1]
            or (project and (w_hr.shape[0] != P or w_hr.shape[1] != H))
            or (has_b_ih and b_ih.shape[0] != G) or (has_b_hh and b_hh.shape[0] != G)
            or (training and (tanh_cell is None or cell_prev is None or hidden_prev is None
                              or gates.shape[0] != N or gates.shape[1] != G
                              or tanh_cell.shape[0] != N or cell_prev.shape[0] != N
                              or hidden_prev.shape[0] != N))):
        raise ValueError("forward_layer: inconsistent shapes")
    if training:
        chunk = T
    else:
        chunk = max(1, min(T, INFERENCE_CHUNK_ROWS // B))
    with nogil:
        try:
            bias = _alloc(G, bias)
            for j in range(G):
                bias[j] = (b_ih[j] if has_b_ih else 0) + (b_hh[j] if has_b_hh else 0)
            if not training:
                work = _alloc(min(N, chunk * B) * G, work)
            if project:
                hidden_raw = _alloc(B * H, hidden_raw)
                w_hr_packed = pack(True, H, P, &w_hr[0, 0], H)
            w_hh_packed = pack(True, P, G, &w_hh[0, 0], P)
            for ci in range((T + chunk - 1) // chunk):
                step = ci * chunk
                # Chunks of steps [start, stop), taken from the end for the reverse direction.
                if reverse:
                    start = max(0, T - step - chunk)
                    stop = T - step
                else:
                    start = step
                    stop = min(T, step + chunk)
                first_row = offsets[start]
                rows = offsets[stop - 1] + batch_sizes[stop - 1] - first_row
                g_t = &gates[first_row, 0] if training else work
                # G_x = X W_ih^T for every row of the chunk      (rows x I) (I x 4H)
                gemm(False, True, rows, G, I, 1, &x[first_row, 0], I, &w_ih[0, 0], I, 0, g_t, G)
                for k in range(stop - start):
                    t = stop - 1 - k if reverse else start + k
                    rows = batch_sizes[t]
                    row = offsets[t]
                    g_t = &gates[row, 0] if training else work + (row - first_row) * G
                    if training:
                        memcpy(&hidden_prev[row, 0], &hidden[0, 0], rows * P * sizeof(floating))
                    # G_t += h_{t-1} W_hh^T                       (b_t x P) (P x 4H)
                    gemm_packed(rows, G, P, &hidden[0, 0], P, w_hh_packed, True, &w_hh[0, 0], P,
                                1, g_t, G)
                    if project:
                        r_t = hidden_raw
                        ld_r = H
                    else:
                        r_t = &hidden[0, 0]
                        ld_r = P
                    gates_forward(rows, H, bias, g_t, &cell[0, 0], r_t, ld_r,
                                  &tanh_cell[row, 0] if training else NULL,
                                  &cell_prev[row, 0] if training else NULL)
                    if project:
                        # h_t = r_t W_hr^T                        (b_t x H) (H x P)
                        gemm_packed(rows, P, H, r_t, H, w_hr_packed, True, &w_hr[0, 0], H,
                                    0, &hidden[0, 0], P)
                    for b in range(rows):
                        memcpy(&out[row + b, out_col], &hidden[b, 0], P * sizeof(floating))
        finally:
            free(bias)
            free(work)
            free(hidden_raw)
            free(w_hh_packed)
            free(w_hr_packed)


def backward_layer(const floating[:, ::1] x, const floating[:, ::1] w_ih,
                   const floating[:, ::1] w_hh, const floating[:, ::1] w_hr,
                   const Py_ssize_t[::1] batch_sizes, const Py_ssize_t[::1] offsets,
                   const floating[:, ::1] d_out, Py_ssize_t out_col, bint reverse,
                   floating[:, ::1] d_hidden, floating[:, ::1] d_cell,
                   floating[:, ::1] gates, floating[:, ::1] tanh_cell,
                   const floating[:, ::1] cell_prev, const floating[:, ::1] hidden_prev,
                   floating[:, ::1] d_x, floating[:, ::1] d_w_ih, floating[:, ::1] d_w_hh,
                   floating[::1] d_b_ih, floating[::1] d_b_hh, floating[:, ::1] d_w_hr):
    """Backpropagate through one layer-direction after a training forward_layer.

    d_out (N x D*P): dL/doutput, columns out_col .. out_col + P - 1 are this direction's.
    d_hidden (B x P), d_cell (B x H): dL/dh_n, dL/dc_n in; dL/dh_0, dL/dc_0 out.
    gates, tanh_cell, cell_prev, hidden_prev: what forward_layer stored; gates and tanh_cell are
    overwritten (with dL/da and o tanh(c)), so a forward pass is backpropagated once.
    d_x (N x I), d_w_ih, d_w_hh, d_b_ih, d_b_hh (4H), d_w_hr: gradients, ADDED to; the bias and
    projection ones may be None (no bias, no projection; then w_hr is None too).
    """
    cdef Py_ssize_t T = batch_sizes.shape[0]
    cdef Py_ssize_t N = x.shape[0], I = x.shape[1], H = d_cell.shape[1], P = d_hidden.shape[1]
    cdef Py_ssize_t B = d_hidden.shape[0], G = 4 * H
    cdef bint project = w_hr is not None
    cdef bint has_b_ih = d_b_ih is not None, has_b_hh = d_b_hh is not None
    cdef Py_ssize_t step, t, rows, row, b, j
    cdef floating *g_t
    cdef floating *dr_t
    cdef floating *d_raw = NULL
    cdef floating *d_hidden_all = NULL
    cdef floating *w_hh_packed = NULL
    cdef floating *w_hr_packed = NULL

    if (gates.shape[0] != N or gates.shape[1] != G or tanh_cell.shape[0] != N
            or cell_prev.shape[0] != N or hidden_prev.shape[0] != N or d_out.shape[0] != N
            or d_x.shape[0] != N or d_x.shape[1] != I or out_col + P > d_out.shape[1]
            or d_w_ih.shape[0] != G or d_w_hh.shape[0] != G
            or (project and (d_w_hr is None or d_w_hr.shape[0] != P))):
        raise ValueError("backward_layer: inconsistent shapes")
    with nogil:
        try:
            w_hh_packed = pack(False, G, P, &w_hh[0, 0], P)
            if project:
                d_raw = _alloc(B * H, d_raw)
                d_hidden_all = _alloc(N * P, d_hidden_all)
                w_hr_packed = pack(False, P, H, &w_hr[0, 0], H)
            for step in range(T):
                t = step if reverse else T - 1 - step
                rows = batch_sizes[t]
                row = offsets[t]
                g_t = &gates[row, 0]
                # dL/dh_t = dL/dout_t + dL/dh_t (from step t+1)
                for b in range(rows):
                    for j in range(P):
                        d_hidden[b, j] += d_out[row + b, out_col + j]
                if project:
                    memcpy(&d_hidden_all[row * P], &d_hidden[0, 0], rows * P * sizeof(floating))
                    dr_t = d_raw
                    # dL/dr_t = dL/dh_t W_hr                       (b_t x P) (P x H)
                    gemm_packed(rows, H, P, &d_hidden[0, 0], P, w_hr_packed, False, &w_hr[0, 0],
                                H, 0, dr_t, H)
                else:
                    dr_t = &d_hidden[0, 0]
                gates_backward(rows, H, dr_t, g_t, &tanh_cell[row, 0], &cell_prev[row, 0],
                               &d_cell[0, 0])
                # dL/dh_{t-1} = dL/da_t W_hh                       (b_t x 4H) (4H x P)
                gemm_packed(rows, P, G, g_t, G, w_hh_packed, False, &w_hh[0, 0], P,
                            0, &d_hidden[0, 0], P)

            # dW_ih += dA^T X                                      (4H x N) (N x I)
            gemm(True, False, G, I, N, 1, &gates[0, 0], G, &x[0, 0], I, 1, &d_w_ih[0, 0], I)
            # dW_hh += dA^T H_prev                                 (4H x N) (N x P)
            gemm(True, False, G, P, N, 1, &gates[0, 0], G, &hidden_prev[0, 0], P,
                 1, &d_w_hh[0, 0], P)
            # dX += dA W_ih                                        (N x 4H) (4H x I)
            gemm(False, False, N, I, G, 1, &gates[0, 0], G, &w_ih[0, 0], I, 1, &d_x[0, 0], I)
            # db_ih += sum over rows of dA, and db_hh likewise
            if has_b_ih:
                for row in range(N):
                    for j in range(G):
                        d_b_ih[j] += gates[row, j]
            if has_b_hh:
                for row in range(N):
                    for j in range(G):
                        d_b_hh[j] += gates[row, j]
            if project:
                # dW_hr += dH^T R, R = o tanh(c) left in tanh_cell     (P x N) (N x H)
                gemm(True, False, P, H, N, 1, d_hidden_all, P, &tanh_cell[0, 0], H,
                     1, &d_w_hr[0, 0], H)
        finally:
            free(d_raw)
            free(d_hidden_all)
            free(w_hh_packed)
            free(w_hr_packed)


def activations(const floating[::1] x, floating[::1] sig, floating[::1] tanh_x):
    """sig = sigmoid(x), tanh_x = tanh(x) elementwise, by the engine's own kernels (for tests)."""
    cdef Py_ssize_t k
    for k in range(x.shape[0]):
        sig[k] = sigmoid(x[k])
        tanh_x[k] = tanh_(x[k])


def all_finite(const floating[::1] a):
    """True if no element of `a` is NaN or infinite (one pass, no temporary array)."""
    cdef Py_ssize_t k
    cdef floating total = 0
    with nogil:
        for k in range(a.shape[0]):
            total += a[k] * 0
    return total == 0
