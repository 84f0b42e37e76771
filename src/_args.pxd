# The checks of the engine's entry points: every array's dtype, shape and layout and every value
# of the packed layout, before a time loop runs (a wrong one is a ValueError or TypeError, never
# an access out of bounds).

cimport numpy as cnp

from _gates cimport CELL_GRU, CELL_LSTM, CELL_RNN_RELU, CELL_RNN_TANH

cdef inline int _array_type(object a, str name) except -1:
    """The dtype number of `a`, a float32 or float64 ndarray."""
    if not cnp.PyArray_Check(a) or cnp.PyArray_TYPE(a) not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        raise TypeError(f"{name} must be a float32 or float64 ndarray, got {type(a).__name__}")
    return cnp.PyArray_TYPE(a)


cdef inline Py_ssize_t _dim(object a, int axis) except -1:
    """Length of axis `axis` of ndarray `a` (0 when it has fewer axes: _data then refuses it)."""
    if not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(a) <= axis:
        return 0
    return cnp.PyArray_DIM(a, axis)


cdef inline str _describe(object a):
    """What `a` is, for an error message: dtype, shape and layout of an ndarray, else its type."""
    if not cnp.PyArray_Check(a):
        return type(a).__name__
    layout = "" if cnp.PyArray_IS_C_CONTIGUOUS(a) else ", not C-contiguous"
    flags = "" if cnp.PyArray_ISWRITEABLE(a) else ", read-only"
    flags += "" if cnp.PyArray_ISALIGNED(a) else ", not aligned"
    flags += "" if cnp.PyArray_ISNOTSWAPPED(a) else ", byte-swapped"
    return f"{a.dtype} array of shape {a.shape}{layout}{flags}"


cdef inline void *_data(object a, str fn, str name, int dtype, Py_ssize_t rows, Py_ssize_t cols,
                        bint optional, bint writable) except? NULL:
    """The data of `a`, checked: a C-contiguous, aligned, native-byte-order ndarray of `dtype`,
    shape (rows,) if cols < 0 else (rows, cols), not empty, writable if asked; None (NULL) if
    `optional`. `fn` names the entry point in the message."""
    if a is None and optional:
        return NULL
    if (not cnp.PyArray_Check(a) or cnp.PyArray_TYPE(a) != dtype
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
            or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_NDIM(a) != (1 if cols < 0 else 2)
            or cnp.PyArray_DIM(a, 0) != rows or (cols >= 0 and cnp.PyArray_DIM(a, 1) != cols)
            or rows == 0 or cols == 0 or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        want = f"({rows},)" if cols < 0 else f"({rows}, {cols})"
        raise ValueError(f"{fn}: {name} must be a C-contiguous{' writable' * writable} "
                         f"{cnp.PyArray_DescrFromType(dtype)} array of shape {want}, got "
                         f"{_describe(a)}")
    return cnp.PyArray_DATA(a)


cdef inline int _check_steps(str fn, const Py_ssize_t *batch_sizes, const Py_ssize_t *offsets,
                             Py_ssize_t T, Py_ssize_t N, Py_ssize_t B) except -1:
    """Raise a ValueError unless batch_sizes and offsets lay out N packed rows: step t has
    batch_sizes[t] rows (1 to B, never more than at t - 1) from row offsets[t], the steps back to
    back from row 0. The time loops index every array by these values alone."""
    cdef Py_ssize_t t, end = 0
    for t in range(T):
        if (batch_sizes[t] < 1 or batch_sizes[t] > (B if t == 0 else batch_sizes[t - 1])
                or offsets[t] != end):
            raise ValueError(
                f"{fn}: batch_sizes and offsets must lay out packed steps (1 <= batch_sizes[t] "
                f"<= batch_sizes[t-1] <= B = {B}, offsets[t] = sum(batch_sizes[:t])); step {t} "
                f"has batch_sizes {batch_sizes[t]} and offsets {offsets[t]}")
        end += batch_sizes[t]
    if end != N:
        raise ValueError(f"{fn}: batch_sizes add up to {end} rows, but x has {N}")
    return 0


# The products take their dimensions and leading dimensions as C ints.
cdef enum:
    MAX_DIM = 2147483647


cdef inline bint _check_kind(str fn, int kind) except -1:
    """Raise a ValueError unless `kind` names a cell (CELL_KINDS); True for the LSTM."""
    if kind not in (CELL_LSTM, CELL_GRU, CELL_RNN_TANH, CELL_RNN_RELU):
        raise ValueError(f"{fn}: kind must be one of 0 (lstm), 1 (gru), 2 (rnn_tanh), "
                         f"3 (rnn_relu) (CELL_KINDS), got {kind}")
    return kind == CELL_LSTM


cdef inline int _check_absent(str fn, int kind, list lstm_only, list gru_only) except -1:
    """Raise a ValueError if an array is given that the cell has no use for: one of lstm_only
    (the LSTM's cell state, projection, stored c) or gru_only (hidden_gates), (name, value)
    pairs."""
    for name, a in ((lstm_only if kind != CELL_LSTM else [])
                    + (gru_only if kind != CELL_GRU else [])):
        if a is not None:
            raise ValueError(f"{fn}: {name} must be None for kind {kind}")
    return 0


cdef inline int _check_layout(str fn, Py_ssize_t out_col, Py_ssize_t ld_out, Py_ssize_t N,
                              Py_ssize_t I, Py_ssize_t G, Py_ssize_t H, Py_ssize_t P,
                              bint project) except -1:
    """Raise a ValueError if this direction's columns out_col .. out_col + P - 1 do not fit in
    the output's ld_out, if P != H without a projection, or if a dimension exceeds a C int."""
    if out_col < 0 or out_col > ld_out - P:  # (out_col + P could overflow)
        raise ValueError(f"{fn}: out_col = {out_col} and P = {P} columns do not fit in the "
                         f"output's {ld_out}")
    if not project and P != H:
        raise ValueError(f"{fn}: without w_hr, hidden must have H = {H} columns, got {P}")
    if max(N, I, G, P, ld_out) > MAX_DIM:
        raise ValueError(f"{fn}: a dimension exceeds {MAX_DIM} (N = {N}, I = {I}, G = {G}, "
                         f"P = {P})")
    return 0
