# The time loops of one layer-direction, forward and backward (BPTT), and the weight
# gradients, as walked by each thread of an engine call (see _lstm.pyx): the products of every
# step (packed small-M GEMMs, _blas.pxd) and the cell's fused passes (_gates.pxd) on its rows.

from cython cimport floating
from libc.string cimport memcpy

from _blas cimport Products, product, tn_product
from _gates cimport CELL_GRU, _cell_backward, _cell_forward, _n_gates
from _team cimport _Split, _first, _split, _step_rows, lstm_barrier, lstm_team_barrier


cdef inline floating *_rows(floating *a, Py_ssize_t row, Py_ssize_t width) noexcept nogil:
    """Row `row` of a row-major array of `width` columns, or NULL for no array."""
    return a + row * width if a != NULL else NULL


cdef inline void _forward_steps(int part, int parts, bint by_rows, lstm_team_barrier *team,
                                int kind, Py_ssize_t T, Py_ssize_t chunk, bint hoist,
                                bint reverse, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H,
                                Py_ssize_t P, const Py_ssize_t *batch_sizes,
                                const Py_ssize_t *offsets, const floating *x,
                                const Products *products, const floating *bias,
                                floating *hidden, floating *cell, floating *hidden_raw,
                                floating *out, Py_ssize_t ld_out, floating *work, floating *rec,
                                floating *gates, floating *hidden_gates, floating *tanh_cell,
                                floating *cell_prev, floating *hidden_prev) noexcept nogil:
    """The forward time loop of a `kind` cell, as walked by part `part` of `parts` threads (see
    forward_layer).

    by_rows: the part runs its own sequences (rows) through every product and pass, alone, with
    no barrier; else each product is split between the parts by column panels and each
    element-wise pass by rows, with a barrier after each (see _split_by_rows).
    products: the packed weights and the precision of the products (see product).
    hoist: the input projection is computed for `chunk` steps at a time, before them; else
    (chunk = 1) each step computes x_t W_ih^T and h_{t-1} W_hh^T together, in one pass over G_t.
    work (one chunk's rows x G) receives the pre-activations, which the gate pass reads while
    they are in cache; the GRU's recurrent ones go to rec (B x G) instead (NULL for the others).
    gates (N x G), hidden_gates (GRU), tanh_cell, cell_prev (LSTM) and hidden_prev are where
    training stores what backward needs of every step (see forward_layer); NULL for inference.
    cell is NULL but for the LSTM; hidden_raw is NULL without projection.
    """
    cdef Py_ssize_t G = _n_gates(kind) * H, ci, start, stop, step, k, t, rows, row, first_row
    cdef Py_ssize_t b, r0, r1, lo, hi
    cdef bint training = gates != NULL, project = hidden_raw != NULL
    cdef floating *g_t
    cdef floating *r_t = hidden_raw if project else hidden
    cdef int ld_r = H if project else P
    cdef _Split sp = _split(part, parts, by_rows, B, T, batch_sizes, team)
    cdef int cpart = sp.cpart, cparts = sp.cparts, sync = sp.sync
    cdef Products p = products[0]
    if p.buf != NULL:
        p.buf += part * p.buf_size  # this thread's
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
        g_t = work
        if hoist:
            # G_x = X W_ih^T for every row of the chunk          (rows x I) (I x G)
            product(&p, rows, G, I, x + first_row * I, I, p.w_ih, 0, NULL, 0, NULL, 0, g_t, G,
                    part, parts)
            lstm_barrier(sp.team, parts)
        for k in range(stop - start):
            t = stop - 1 - k if reverse else start + k
            rows = batch_sizes[t]
            row = offsets[t]
            g_t = work + (row - first_row) * G
            _step_rows(&sp, rows, &lo, &hi, &r0, &r1)
            if kind == CELL_GRU:
                if not hoist:
                    # G_t = x_t W_ih^T                            (b_t x I) (I x G)
                    product(&p, hi - lo, G, I, x + (row + lo) * I, I, p.w_ih, 0, NULL, 0, NULL,
                            0, g_t + lo * G, G, cpart, cparts)
                # R_t = h_{t-1} W_hh^T, apart (r scales its n block)   (b_t x P) (P x G)
                product(&p, hi - lo, G, P, hidden + lo * P, P, p.w_hh, 0, NULL, 0, NULL, 0,
                        rec + lo * G, G, cpart, cparts)
            elif hoist:
                # G_t += h_{t-1} W_hh^T                           (b_t x P) (P x G)
                product(&p, hi - lo, G, P, hidden + lo * P, P, p.w_hh, 0, NULL, 0, NULL, 1,
                        g_t + lo * G, G, cpart, cparts)
            else:
                # G_t = x_t W_ih^T + h_{t-1} W_hh^T       (b_t x I) (I x G) + (b_t x P) (P x G)
                product(&p, hi - lo, G, I, x + (row + lo) * I, I, p.w_ih, P, hidden + lo * P, P,
                        p.w_hh, 0, g_t + lo * G, G, cpart, cparts)
            lstm_barrier(sp.team, sync)
            # Element-wise, on this part's rows: keep h_{t-1}; gates; c_t and r_t.
            if training:
                memcpy(hidden_prev + (row + r0) * P, hidden + r0 * P,
                       (r1 - r0) * P * sizeof(floating))
            _cell_forward(kind, r1 - r0, H, bias, g_t + r0 * G, _rows(rec, r0, G),
                          _rows(gates, row + r0, G), _rows(hidden_gates, row + r0, G),
                          _rows(cell, r0, H), r_t + r0 * ld_r, ld_r,
                          NULL if project else out + (row + r0) * ld_out, ld_out,
                          _rows(tanh_cell, row + r0, H), _rows(cell_prev, row + r0, H))
            if project:
                lstm_barrier(sp.team, sync)
                # h_t = r_t W_hr^T                                (b_t x H) (H x P)
                product(&p, hi - lo, P, H, r_t + lo * H, H, p.w_hr, 0, NULL, 0, NULL, 0,
                        hidden + lo * P, P, cpart, cparts)
                lstm_barrier(sp.team, sync)
                for b in range(r0, r1):
                    memcpy(out + (row + b) * ld_out, hidden + b * P, P * sizeof(floating))
            lstm_barrier(sp.team, sync)


cdef inline void _backward_steps(int part, int parts, bint by_rows, lstm_team_barrier *team,
                                 int kind, Py_ssize_t T, bint reverse,
                                 Py_ssize_t B, Py_ssize_t H, Py_ssize_t P,
                                 const Py_ssize_t *batch_sizes, const Py_ssize_t *offsets,
                                 const Products *products, const floating *d_out,
                                 Py_ssize_t ld_out, floating *d_hidden,
                                 floating *d_cell, floating *d_raw, floating *d_hidden_all,
                                 floating *gates, floating *hidden_gates, floating *tanh_cell,
                                 const floating *cell_prev, const floating *hidden_prev,
                                 floating *d_hidden_steps,
                                 floating *d_cell_steps) noexcept nogil:
    """The reverse time loop of a `kind` cell, as walked by part `part` of `parts` threads (see
    backward_layer; by_rows as in _forward_steps).

    d_hidden_steps (N x P) and the LSTM's d_cell_steps (N x H), unless NULL, receive every
    step's dL/dh_t and dL/dc_t (for introspection).
    products: W_hh and W_hr packed for the products of dL/dA_t and dL/dh_t (see product).

    d_raw (B x H) and d_hidden_all (N x P) are workspaces when projecting, else NULL. The GRU's
    dL/dh_{t-1} has a direct part (z dL/dh_t, left in d_hidden by its pass) besides the product.
    """
    cdef Py_ssize_t G = _n_gates(kind) * H, step, t, rows, row, b, j, r0, r1, lo, hi
    cdef bint project = d_raw != NULL, gru = kind == CELL_GRU
    cdef floating *dr_t = d_raw if project else d_hidden
    cdef floating *d_rec = hidden_gates if gru else gates
    cdef _Split sp = _split(part, parts, by_rows, B, T, batch_sizes, team)
    cdef int cpart = sp.cpart, cparts = sp.cparts, sync = sp.sync
    cdef Products p = products[0]
    if p.buf != NULL:
        p.buf += part * p.buf_size  # this thread's
    for step in range(T):
        t = step if reverse else T - 1 - step
        rows = batch_sizes[t]
        row = offsets[t]
        _step_rows(&sp, rows, &lo, &hi, &r0, &r1)
        # dL/dh_t = dL/dout_t + dL/dh_t (from step t+1), on this part's rows
        for b in range(r0, r1):
            for j in range(P):
                d_hidden[b * P + j] += d_out[(row + b) * ld_out + j]
        if d_hidden_steps != NULL:
            memcpy(d_hidden_steps + (row + r0) * P, d_hidden + r0 * P,
                   (r1 - r0) * P * sizeof(floating))
        if project:
            memcpy(d_hidden_all + (row + r0) * P, d_hidden + r0 * P,
                   (r1 - r0) * P * sizeof(floating))
            lstm_barrier(sp.team, sync)
            # dL/dr_t = dL/dh_t W_hr                               (b_t x P) (P x H)
            product(&p, hi - lo, H, P, d_hidden + lo * P, P, p.w_hr, 0, NULL, 0, NULL, 0,
                    d_raw + lo * H, H, cpart, cparts)
            lstm_barrier(sp.team, sync)
        _cell_backward(kind, r1 - r0, H, dr_t + r0 * H, gates + (row + r0) * G,
                       _rows(hidden_gates, row + r0, G), _rows(tanh_cell, row + r0, H),
                       _rows(cell_prev, row + r0, H), _rows(d_cell, r0, H),
                       hidden_prev + (row + r0) * P, _rows(d_cell_steps, row + r0, H))
        lstm_barrier(sp.team, sync)
        # dL/dh_{t-1} (+)= dL/dA_t W_hh, A_t the recurrent pre-activations   (b_t x G) (G x P)
        product(&p, hi - lo, P, G, d_rec + (row + lo) * G, G, p.w_hh, 0, NULL, 0, NULL,
                1 if gru else 0, d_hidden + lo * P, P, cpart, cparts)
        lstm_barrier(sp.team, sync)


cdef inline void _backward_weights(int part, int parts, int kind, Py_ssize_t N, Py_ssize_t I,
                                   Py_ssize_t H, Py_ssize_t P, const floating *gates,
                                   const floating *hidden_gates, const floating *x,
                                   const floating *hidden_prev, const Products *products,
                                   const floating *r, const floating *d_hidden_all, floating *d_x,
                                   floating *d_w_ih, floating *d_w_hh, floating *d_w_hr,
                                   floating *d_bias, floating *w_t, bint accumulate,
                                   bint finish) noexcept nogil:
    """The weight gradients, each one product over every packed row, split between `parts`.

    dW_ih and dW_hh are computed transposed, into w_t ((I + P) x G), then added: dA, as large as
    the whole sequence, is then the product's right operand, read once in column panels (and each
    part reads its own columns), while X and H_{t-1}, I + P wide, are the rows of the tiles.
    The GRU's recurrent pre-activations have gradients of their own (hidden_gates; NULL for the
    others): its d_bias holds db_ih (G) then db_hh (G); the others' bias gradients are one.
    With `accumulate`, w_t adds to what earlier runs of steps left there; only with `finish` is it
    added into dW_ih and dW_hh (a strided pass, once per layer call rather than once per run).
    r (N x H) is R = o tanh(c) when projecting, else NULL. products: W_ih packed for dX.
    """
    cdef Py_ssize_t G = _n_gates(kind) * H
    cdef Py_ssize_t j0 = _first(G, part, parts), j1 = _first(G, part + 1, parts)
    cdef Py_ssize_t n0 = _first(N, part, parts), n1 = _first(N, part + 1, parts)
    cdef Py_ssize_t h0 = _first(H, part, parts), h1 = _first(H, part + 1, parts)
    cdef floating beta = 1 if accumulate else 0
    cdef Products p = products[0]
    if p.buf != NULL:
        p.buf += part * p.buf_size  # this thread's
    if hidden_gates == NULL:
        # dW_ih^T = X^T dA, dW_hh^T = H_prev^T dA, cols j0..j1   (I x N) (N x G), (P x N) (N x G)
        # db = the sums of dA's columns, on the way
        tn_product(&p, I, j1 - j0, N, x, I, gates + j0, G, beta, w_t + j0, G,
                   P, hidden_prev, P, w_t + I * G + j0, G, d_bias + j0)
    else:
        # dW_ih^T = X^T dA_x, dW_hh^T = H_prev^T dA_h             (I x N) (N x G), (P x N) (N x G)
        tn_product(&p, I, j1 - j0, N, x, I, gates + j0, G, beta, w_t + j0, G, 0, NULL, 1, NULL,
                   1, d_bias + j0)
        tn_product(&p, P, j1 - j0, N, hidden_prev, P, hidden_gates + j0, G, beta,
                   w_t + I * G + j0, G, 0, NULL, 1, NULL, 1, d_bias + G + j0)
    if finish:
        _add_transposed(j0, j1, I, w_t, G, d_w_ih)
        _add_transposed(j0, j1, P, w_t + I * G, G, d_w_hh)
    # dX += dA W_ih, rows n0..n1                                   (N x G) (G x I)
    product(&p, n1 - n0, I, G, gates + n0 * G, G, p.w_ih, 0, NULL, 0, NULL, 1, d_x + n0 * I, I,
            0, 1)
    if r != NULL:
        # dW_hr += dH^T R, columns h0..h1                          (P x N) (N x H)
        tn_product(&p, P, h1 - h0, N, d_hidden_all, P, r + h0, H, 1, d_w_hr + h0, H, 0, NULL, 1,
                   NULL, 1, NULL)


cdef inline void _add_transposed(Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t n, const floating *src,
                                 Py_ssize_t ld_src, floating *dst) noexcept nogil:
    """dst[j, i] += src[i, j] for rows j0..j1 of dst (n columns); src has ld_src columns."""
    cdef Py_ssize_t i, j
    for j in range(j0, j1):
        for i in range(n):
            dst[j * n + i] += src[i * ld_src + j]
