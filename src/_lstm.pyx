# The engine's entry points: forward_layer and backward_layer run one layer-direction of a cell
# (LSTM, GRU, plain RNN, in PyTorch's semantics) over packed sequences, forward and backward
# (BPTT); with the workspace they take their buffers from, the threads' choices and test helpers.
#
# Sequences arrive packed (as cuDNN and PyTorch's PackedSequence lay them out): sorted by length,
# longest first, time-major, step t holding rows offsets[t] .. offsets[t] + batch_sizes[t] - 1 of a
# (N x features) array.  At step t only the first batch_sizes[t] sequences are active, so every
# GEMM and the fused pass run on those rows alone: padded steps cost nothing and touch nothing.
# Rows of the state buffers that are not active keep their value, which is how each sequence ends
# with its own final state (forward direction) and starts from h_0 at its own last step (reverse).
#
# A cell is G = k H gate columns (LSTM k = 4 [i, f, g, o], GRU 3 [r, z, n], RNN 1) and its fused
# forward and backward passes (_gates.pxd); the loops (_loops.pxd), products (_blas.pxd), lengths
# and threads (_team.pxd) are shared. The GRU's recurrent product is kept apart from the input's
# (its n block is scaled by r). _args.pxd checks every argument before a loop runs.
#
# Dimensions: T steps, B sequences, N packed rows, I input, H hidden, P = proj_size or H (LSTM;
# the others have no projection), G gate columns.
# Weights in PyTorch's layout: W_ih (G x I), W_hh (G x P), W_hr (P x H).

from cython cimport floating
cimport numpy as cnp
from cython.parallel cimport parallel, threadid
from libc.stdlib cimport free
from libc.string cimport memcpy

import time

cnp.import_array()

from _args cimport (_array_type, _check_absent, _check_kind, _check_layout, _check_steps, _data,
                   _dim)
from _blas cimport (BFLOAT16, INT8, LSTM_BF16_AMX, LSTM_BF16_AVX512, LSTM_BF16_FLOAT32,
                   LSTM_I8_AMX, LSTM_I8_AVX_VNNI, LSTM_I8_FLOAT32, LSTM_I8_VNNI, NATIVE,
                   Products, _packs_i8, buffer_bytes, gemm_packed,
                   gemm_tn2, lstm_aligned_alloc, lstm_bf16_round, lstm_bf16_route,
                   lstm_bf16_tn_buffer_bytes, lstm_bf16_unit, lstm_bf16_unit_name,
                   lstm_i8_route, lstm_i8_runs, lstm_i8_unit, lstm_i8_unit_name, lstm_panel_width_d,
                   lstm_panel_width_f, pack_into, packed_kernel, packed_size, panel_width,
                   prepare_into, prepared_size, product)
from _gates cimport (CELL_GRU, CELL_LSTM, CELL_RNN_RELU, CELL_RNN_TANH, _n_gates, activations_,
                    lstm_gate_kernel)
from _loops cimport _backward_steps, _backward_weights, _forward_steps
from _team cimport (_first, _split_by_rows, lstm_l2_bytes, lstm_max_threads,
                   lstm_team_barrier, lstm_team_size)

cdef extern from "lstm_checks.h" nogil:
    int lstm_all_finite_f(const float *a, Py_ssize_t n)
    int lstm_all_finite_d(const double *a, Py_ssize_t n)

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
                gate_kernels=lstm_gate_kernel().decode(), matmul_kernel=packed_kernel().decode(),
                bfloat16_kernel=lstm_bf16_unit_name(lstm_bf16_unit(NULL)).decode(),
                bfloat16_batch_1=lstm_bf16_unit_name(lstm_bf16_route(1)).decode(),
                int8_kernel=lstm_i8_unit_name(lstm_i8_unit(NULL)).decode(),
                int8_batch_1=lstm_i8_unit_name(lstm_i8_route(1)).decode(),
                max_threads=lstm_max_threads(), l2_bytes=lstm_l2_bytes(),
                fma_rate=lstm_fma_rate())


#: What an engine call does with the weights packed in its workspace (its `prepared`): PACK
#: them; use them, PACKED by the previous call (checked); or REUSE_PACKED them if packed from
#: the same arrays, else pack them. (Python: Prepared.PACK, ...)
cpdef enum Prepared:
    PACK = 0
    PACKED = 1
    REUSE_PACKED = 2

cdef str _route_name(int route):
    if route == NATIVE:
        return "native"
    if route < LSTM_I8_FLOAT32:
        return "bfloat16/" + lstm_bf16_unit_name(route).decode()
    return "int8/" + lstm_i8_unit_name(route).decode()


def reduced_route(str precision, Py_ssize_t batch):
    """The route a layer call of `precision` ("bfloat16" or "int8") takes at `batch`, as
    "precision/unit" (the unit as build_info names them)."""
    if precision not in ("bfloat16", "int8"):
        raise ValueError(f"reduced_route: precision {precision!r}")
    return _route_name(lstm_bf16_route(batch) if precision == "bfloat16"
                       else lstm_i8_route(batch))


#: The precisions of the products: {"native": 0 (the arrays' dtype), "bfloat16": 1, "int8": 2}.
PRECISIONS = {"native": NATIVE, "bfloat16": BFLOAT16, "int8": INT8}

#: The cells' numbers: {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}.
CELL_KINDS = {"lstm": CELL_LSTM, "gru": CELL_GRU, "rnn_tanh": CELL_RNN_TANH,
              "rnn_relu": CELL_RNN_RELU}


# The input projection is computed for about a sixteenth of L2 in gate rows at a time (at least
# one step): they stay in L1/L2 next to the weights until the recurrent steps add to them, and
# inference needs only O(B*H) workspace.  (Measured on rows 4-5 of the standard grid on a 1 MiB
# L2: 64 KiB was 2-5% faster than 1-2 MiB, whose rows had left L2 by the time their step ran.)
cdef inline Py_ssize_t _chunk_bytes() noexcept nogil:
    return lstm_l2_bytes() // 16


# Below this batch the input projection is hoisted out of the time loop (above), so that its
# product has chunk x B rows: the packed kernel runs at ~40% of its speed with one row, but at full
# speed from four.  From this batch up, each step computes x_t W_ih^T + h_{t-1} W_hh^T in one
# pass over its gate rows instead, which writes them once (measured: 2-5% faster for B >= 16,
# the same for B = 4-8).
cdef enum:
    HOIST_BELOW_BATCH = 4

# Threads: a call whose recurrent product takes at least PARALLEL_MIN_SECONDS a step on one core
# (at its FMA rate, as measured) runs in one parallel region, where every thread walks the same
# time loop: each product is split between them by column panels and each element-wise pass by
# rows, with a barrier after each.  Below it the call runs on one thread: the barriers (BASELINE.md:
# a core-to-core round trip is 0.1-0.4 us here) would cost more than the second core saves.  (Set
# as 2^18 multiply-adds at the 117 GF/s of a one-FMA-unit core; a core with two does them in half
# the time, so it needs twice as many.)
cdef double PARALLEL_MIN_SECONDS = 4.5e-6

cdef extern from "lstm_peak.h" nogil:
    double lstm_fma_chains_threads(int dbl, long iters, int threads, double *sink)
    double lstm_fma_rate()


def fma_peak(bint double=False, int threads=1, long iters=20_000_000):
    """GF/s of independent vector FMA chains run on `threads` threads at once, at the packed
    kernel's vector width: the hardware ceiling of any product here (0.0 without that kernel)."""
    cdef double flops, sink
    lstm_fma_chains_threads(double, iters // 100, threads, &sink)  # cores up to their clock
    start = time.perf_counter()
    with nogil:
        flops = lstm_fma_chains_threads(double, iters, threads, &sink)
    return flops / (time.perf_counter() - start) / 1e9


cdef extern from "lstm_bf16.h" nogil:
    double lstm_bf16_chains_threads(long iters, int threads, double *sink)

cdef extern from "lstm_int8.h" nogil:
    double lstm_i8_chains_threads(long iters, int threads, double *sink)


cdef double _unit_peak(double (*chains)(long, int, double *) noexcept nogil, int threads,
                       long iters):
    """Operations a second of a unit's probe `chains` (after a warm-up of a hundredth)."""
    cdef double ops, sink
    chains(iters // 100, threads, &sink)
    start = time.perf_counter()
    with nogil:
        ops = chains(iters, threads, &sink)
    return ops / (time.perf_counter() - start)


def int8_peak(int threads=1, long iters=2_000_000):
    """G ops/s (a multiply-add is two) of the int8 unit run back to back on `threads` threads at
    once (AMX tdpbssd, or vpdpbusd chains), nothing else: the ceiling of any int8 product here
    (0.0 without an int8 unit)."""
    return _unit_peak(lstm_i8_chains_threads, threads, iters) / 1e9


def bfloat16_peak(int threads=1, long iters=2_000_000):
    """GF/s of the bf16 unit run back to back on `threads` threads at once (AMX tile products,
    or vdpbf16ps chains), nothing else: the ceiling of any bf16 product here (0.0 without a bf16
    unit)."""
    return _unit_peak(lstm_bf16_chains_threads, threads, iters) / 1e9


def split_choice(Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P, bint project,
                 int threads, Py_ssize_t itemsize, int n_gates=4):
    """How `threads` threads would share such a layer-direction's time loops: "rows" or
    "columns" (for tests; LSTM_FAST_SPLIT and the kernel in use count as in a call)."""
    cdef Py_ssize_t width = lstm_panel_width_d() if itemsize == 8 else lstm_panel_width_f()
    return "rows" if _split_by_rows(B, I, n_gates * H, H, P, project, threads, itemsize,
                                    width != 0) else "columns"


cpdef int threads_for(Py_ssize_t B, Py_ssize_t H, Py_ssize_t P, int n_gates=4) noexcept nogil:
    """Threads a layer-direction call with batch B, hidden H, output P and n_gates gate blocks
    runs on: OpenMP's current limit if its recurrent product (B x P) (P x n_gates H) is large
    enough to pay, else 1."""
    return 1 if B * n_gates * H * P < parallel_min_macs() else lstm_max_threads()


cpdef double parallel_min_macs() noexcept nogil:
    """Multiply-adds a step's recurrent product needs for a call to run on more than one thread
    (see threads_for): PARALLEL_MIN_SECONDS of this core's FMA rate (2^18 without the packed
    kernel)."""
    cdef double rate = lstm_fma_rate()
    return rate * PARALLEL_MIN_SECONDS / 2 if rate > 0 else 1 << 18


cdef struct _Packed:
    # What the packed weights at the front of a workspace were packed from (see Workspace), and
    # for which kernel's panel width and products' route (0: native; a bf16 or int8 route).
    bint valid, backward
    int dtype, kind, route
    Py_ssize_t panel
    const void *w_ih
    const void *w_hh
    const void *w_hr
    const void *b_ih
    const void *b_hh
    Py_ssize_t n_in, n_hidden, n_out  # I, H, P


cdef class Workspace:
    """Memory an engine call takes its buffers from (packed weights, gate rows, the transposed
    weight gradients, the projection's gradients), kept from one call to the next: a call that
    allocated them afresh faulted in and zeroed new pages every time, 5% of a training call at
    N = 3200 (profile). One call at a time may use a workspace; the layer keeps one per
    layer-direction.

    The packed weights (and the forward's summed bias) come first in it, and it remembers what
    they were packed from (the arrays, shapes, cell and kernel): a call can skip packing them
    again (see PACKED and REUSE_PACKED)."""
    cdef char *data
    cdef size_t size
    cdef _Packed packed

    def __dealloc__(self):
        free(self.data)

    @property
    def nbytes(self):
        """Bytes the workspace holds."""
        return self.size

    @property
    def route(self):
        """The route of the products its packed weights are for (see reduced_route): "native",
        or e.g. "bfloat16/amx"; None before any call."""
        if not self.packed.valid:
            return None
        return _route_name(self.packed.route)

    cdef char *reserve(self, size_t nbytes) except NULL:
        """At least nbytes (> 0), cache-line aligned; what was there before is kept."""
        cdef char *grown
        if nbytes > self.size:
            grown = <char *> lstm_aligned_alloc(nbytes)
            if grown == NULL:
                raise MemoryError(f"lstm_fast: cannot allocate {nbytes} bytes of workspace")
            if self.size:
                memcpy(grown, self.data, self.size)
            free(self.data)
            self.data, self.size = grown, nbytes
        return self.data

    cdef int holds(self, const _Packed *key, int prepared, str fn) except -1:
        """Whether the packed weights in the workspace are key's, as ``prepared`` asks: PACK,
        they are about to be (recorded); PACKED, they must be (a ValueError if not);
        REUSE_PACKED, they are if the workspace holds key's, else they are about to be.
        Returns 1 if they are (the call skips packing), 0 if the call packs them."""
        cdef const _Packed *p = &self.packed
        cdef bint held = (p.valid and p.backward == key.backward and p.dtype == key.dtype
                          and p.kind == key.kind and p.panel == key.panel
                          and p.route == key.route
                          and p.w_ih == key.w_ih and p.w_hh == key.w_hh and p.w_hr == key.w_hr
                          and p.b_ih == key.b_ih and p.b_hh == key.b_hh
                          and p.n_in == key.n_in and p.n_hidden == key.n_hidden
                          and p.n_out == key.n_out)
        if prepared == PACKED and not held:
            raise ValueError(f"{fn}: prepared=PACKED, but the workspace does not hold these "
                             "weights packed by a call of the same layer-direction")
        if prepared != PACK and held:
            return 1
        self.packed = key[0]
        return 0


cdef _Packed _packed_key(bint backward, int dtype, int kind, void **weights, Py_ssize_t I,
                         Py_ssize_t H, Py_ssize_t P, int route=NATIVE) noexcept:
    """The key of a cell's weights (w_ih, w_hh, w_hr, b_ih, b_hh; NULL where absent) packed
    for a forward or backward call, for the products' `route`."""
    cdef _Packed key
    key.valid, key.backward, key.dtype, key.kind = True, backward, dtype, kind
    key.route = route
    key.panel = lstm_panel_width_f() if dtype == cnp.NPY_FLOAT32 else lstm_panel_width_d()
    key.w_ih, key.w_hh, key.w_hr, key.b_ih, key.b_hh = (weights[0], weights[1], weights[2],
                                                         weights[3], weights[4])
    key.n_in, key.n_hidden, key.n_out = I, H, P
    return key


cdef inline Py_ssize_t _lines(Py_ssize_t nbytes) noexcept nogil:
    """nbytes rounded up to whole cache lines (64 bytes)."""
    return (nbytes + 63) // 64 * 64


cdef int _carve(Workspace ws, const Py_ssize_t *sizes, floating **bufs, int n) except -1:
    """bufs[i] <- room for sizes[i] elements (NULL where 0) in ws, each from a cache line."""
    cdef Py_ssize_t total = 0, i
    cdef char *base
    for i in range(n):
        total += _lines(sizes[i] * <Py_ssize_t> sizeof(floating))
    base = ws.reserve(max(total, 64))
    for i in range(n):
        bufs[i] = <floating *> base if sizes[i] > 0 else NULL
        base += _lines(sizes[i] * <Py_ssize_t> sizeof(floating))
    return 0


def forward_layer(x, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, offsets, hidden, cell, out,
                  Py_ssize_t out_col, bint reverse, gates=None, tanh_cell=None, cell_prev=None,
                  hidden_prev=None, int n_threads=0, Workspace workspace=None,
                  int prepared=PACK, int kind=CELL_LSTM, hidden_gates=None,
                  int precision=NATIVE, Py_ssize_t route_batch=0):
    """Run one layer-direction of a cell over packed sequences.

    Arrays are C-contiguous, of x's dtype (float32 or float64); batch_sizes and offsets (T) are
    intp.
    kind: the cell (see CELL_KINDS), with G = 4H (LSTM), 3H (GRU) or H (RNN) gate columns.
    x (N x I): packed input.  b_ih, b_hh (G): biases, or None.  w_hr (P x H), or None (LSTM only).
    hidden (B x P): h_0 in, h_n out.  cell (B x H): c_0 in, c_n out (LSTM; None for the others,
    whose H is P).
    out (N x D*P): h_t written into columns out_col .. out_col + P - 1.
    For training, where what backward needs of every step is stored: gates (N x G), the activated
    gates; hidden_prev (N x P), h_{t-1}; the LSTM's tanh_cell and cell_prev (N x H), tanh(c_t) and
    c_{t-1}; the GRU's hidden_gates (N x G), whose n block gets W_hn h_{t-1} + b_hn. All None for
    inference, which keeps only the state and O(B*H) workspace.
    n_threads: threads for this call; 0 chooses (see threads_for).
    workspace: where the call's buffers go, reused across calls (see Workspace); None: a new one.
    prepared: PACK the weights into the workspace; PACKED: it holds these weights packed by the
    previous call (a run of steps after the first of one layer call: the state carries over,
    the weights are the same; checked); REUSE_PACKED: use the packed weights it holds if they
    were packed from these arrays (same shapes, cell and kernel), else pack them: for a caller
    that knows the arrays' values have not changed since (a stream of short calls).
    precision: NATIVE, the products in the arrays' dtype; BFLOAT16 (float32 arrays), the
    products of bf16-rounded weights and inputs (x_t, h_{t-1}, r_t), summed in float32; INT8,
    those of int8 weights (a scale per output channel) and inputs (a scale per row and step),
    summed exactly (lstm_int8.h). The gates and state stay float32 (see PRECISIONS).
    route_batch: the batch by which a reduced precision's route is chosen (0: B); a layer call
    in runs of steps passes its largest batch, whatever run comes first.

    Every array's dtype, shape and layout and every value of batch_sizes and offsets are checked
    before the time loop: a wrong one is a ValueError or TypeError, never an access out of bounds.
    They are checked as arrays rather than typed as memoryviews: acquiring a memoryview costs
    ~0.15 us an argument, a sixth of a whole call at batch 1 (row 12 of the grid).
    """
    cdef str fn = "forward_layer"
    if prepared < PACK or prepared > REUSE_PACKED:
        raise ValueError(f"{fn}: prepared must be PACK, PACKED or REUSE_PACKED, got {prepared}")
    if precision != NATIVE and precision != BFLOAT16 and precision != INT8:
        raise ValueError(f"{fn}: precision must be NATIVE, BFLOAT16 or INT8, got {precision}")
    cdef int dt = _array_type(x, "forward_layer: x")
    if precision != NATIVE and dt != cnp.NPY_FLOAT32:
        raise TypeError(f"{fn}: precision BFLOAT16 or INT8 takes float32 arrays, got {x.dtype}")
    cdef bint lstm = _check_kind(fn, kind)
    cdef Py_ssize_t N = _dim(x, 0), I = _dim(x, 1), B = _dim(hidden, 0), P = _dim(hidden, 1)
    cdef Py_ssize_t H = _dim(cell, 1) if lstm else P, G = _n_gates(kind) * H
    cdef Py_ssize_t T = _dim(batch_sizes, 0), ld_out = _dim(out, 1)
    cdef bint training = gates is not None
    cdef void *args[16]
    # first the arrays whose shapes give the dimensions, then those checked against them
    args[0] = _data(x, fn, "x", dt, N, I, False, False)
    args[8] = _data(hidden, fn, "hidden", dt, B, P, False, True)
    args[9] = _data(cell, fn, "cell", dt, B, H, not lstm, True)
    args[6] = _data(batch_sizes, fn, "batch_sizes", cnp.NPY_INTP, T, -1, False, False)
    args[10] = _data(out, fn, "out", dt, N, ld_out, False, True)
    args[1] = _data(w_ih, fn, "w_ih", dt, G, I, False, False)
    args[2] = _data(w_hh, fn, "w_hh", dt, G, P, False, False)
    args[3] = _data(b_ih, fn, "b_ih", dt, G, -1, True, False)
    args[4] = _data(b_hh, fn, "b_hh", dt, G, -1, True, False)
    args[5] = _data(w_hr, fn, "w_hr", dt, P, H, True, False)
    args[7] = _data(offsets, fn, "offsets", cnp.NPY_INTP, T, -1, False, False)
    args[11] = _data(gates, fn, "gates", dt, N, G, True, True)
    args[12] = _data(tanh_cell, fn, "tanh_cell", dt, N, H, not (training and lstm), True)
    args[13] = _data(cell_prev, fn, "cell_prev", dt, N, H, not (training and lstm), True)
    args[14] = _data(hidden_prev, fn, "hidden_prev", dt, N, P, not training, True)
    args[15] = _data(hidden_gates, fn, "hidden_gates", dt, N, G,
                     not (training and kind == CELL_GRU), True)
    _check_absent(fn, kind, [("cell", cell), ("w_hr", w_hr), ("tanh_cell", tanh_cell),
                             ("cell_prev", cell_prev)], [("hidden_gates", hidden_gates)])
    if not training and not (tanh_cell is None and cell_prev is None and hidden_prev is None
                             and hidden_gates is None):
        raise ValueError(f"{fn}: tanh_cell, cell_prev, hidden_prev and hidden_gates go with "
                         "gates (training)")
    _check_layout(fn, out_col, ld_out, N, I, G, H, P, args[5] != NULL)
    _check_steps(fn, <const Py_ssize_t *> args[6], <const Py_ssize_t *> args[7], T, N, B)
    cdef void *weights[5]
    weights[0], weights[1], weights[2], weights[3], weights[4] = (args[1], args[2], args[5],
                                                                  args[3], args[4])
    if workspace is None:
        workspace = Workspace()
    if route_batch < 0:
        raise ValueError(f"{fn}: route_batch must be >= 0, got {route_batch}")
    cdef int route = _route(precision, route_batch or B, workspace, prepared)
    cdef _Packed key = _packed_key(False, dt, kind, weights, I, H, P, route)
    if dt == cnp.NPY_FLOAT32:
        _forward_layer(<float **> args, kind, T, N, I, H, P, B, ld_out, out_col, reverse,
                       n_threads, workspace, &key, prepared)
    else:
        _forward_layer(<double **> args, kind, T, N, I, H, P, B, ld_out, out_col, reverse,
                       n_threads, workspace, &key, prepared)


cdef int _route(int precision, Py_ssize_t batch, Workspace workspace, int prepared):
    """The products' route of a layer call: NATIVE, or a reduced precision's by batch (chosen,
    AMX asked of Linux and the units measured, before threads start); the later runs of steps
    of a layer call (PACKED) keep the first run's."""
    if precision == NATIVE:
        return NATIVE
    if prepared == PACKED and workspace.packed.valid and workspace.packed.route != NATIVE:
        return workspace.packed.route
    return lstm_bf16_route(batch) if precision == BFLOAT16 else lstm_i8_route(batch)


cdef void _fill_bias(int kind, Py_ssize_t H, const floating *b_ih, const floating *b_hh,
                     floating *bias) noexcept nogil:
    """bias <- b_ih + b_hh (G; None counts as 0), but for the GRU's n block, whose b_hn is kept
    apart after it (4H in all: [b_r, b_z, b_in, b_hn])."""
    cdef Py_ssize_t G = _n_gates(kind) * H, j
    cdef Py_ssize_t summed = 2 * H if kind == CELL_GRU else G
    for j in range(G):
        bias[j] = (b_ih[j] if b_ih != NULL else 0) + (b_hh[j] if b_hh != NULL and j < summed
                                                      else 0)
    if kind == CELL_GRU:
        for j in range(H):
            bias[G + j] = b_hh[2 * H + j] if b_hh != NULL else 0


cdef void _forward_layer(floating **args, int kind, Py_ssize_t T, Py_ssize_t N, Py_ssize_t I,
                         Py_ssize_t H, Py_ssize_t P, Py_ssize_t B, Py_ssize_t ld_out,
                         Py_ssize_t out_col, bint reverse, int n_threads, Workspace ws,
                         const _Packed *key, int prepared) except *:
    """forward_layer on checked arrays: args are the data of its first 11 arrays, then gates,
    tanh_cell, cell_prev, hidden_prev, hidden_gates (NULL where not given), in its order; key
    says what the weights are and the products' route (see Workspace)."""
    cdef Py_ssize_t G = _n_gates(kind) * H, chunk
    cdef const floating *x = args[0]
    cdef const floating *w_ih = args[1]
    cdef const floating *w_hh = args[2]
    cdef const floating *w_hr = args[5]
    cdef const Py_ssize_t *batch_sizes = <const Py_ssize_t *> args[6]
    cdef const Py_ssize_t *offsets = <const Py_ssize_t *> args[7]
    cdef floating *hidden = args[8]
    cdef floating *cell = args[9]
    cdef floating *out = args[10] + out_col
    cdef floating *gates = args[11]
    cdef floating *tanh_cell = args[12]
    cdef floating *cell_prev = args[13]
    cdef floating *hidden_prev = args[14]
    cdef floating *hidden_gates = args[15]
    cdef bint project = w_hr != NULL, hoist, by_rows
    cdef int nt, route = key.route
    cdef lstm_team_barrier team
    cdef Py_ssize_t sizes[8]
    cdef floating *bufs[8]
    cdef Products products
    # Small batches: the input projection a chunk of steps at a time, just before those steps run,
    # so that its output is still in cache when the recurrent products add to it (see _chunk_bytes).
    hoist = B < HOIST_BELOW_BATCH
    chunk = max(1, min(T, _chunk_bytes() // (B * G * <Py_ssize_t> sizeof(floating)))) if hoist else 1
    nt = n_threads if n_threads > 0 else threads_for(B, H, P, _n_gates(kind))
    # The workspace: first the bias and the packed weights (the same for every run of steps of
    # a layer call), then the pre-activations of a chunk of steps, r_t (projection), the GRU's
    # recurrent pre-activations of a step, and the bf16 products' row buffers (one a thread).
    products.route = route
    products.buf_size = buffer_bytes(route, I, max(H, P), G)
    sizes[0] = G + (H if kind == CELL_GRU else 0)
    sizes[1] = prepared_size(route, H, P, x) if project else 0
    sizes[2] = prepared_size(route, P, G, x)
    sizes[3] = prepared_size(route, I, G, x)
    sizes[4] = min(N, chunk * B) * G
    sizes[5] = B * H if project else 0
    sizes[6] = B * G if kind == CELL_GRU else 0
    sizes[7] = (nt * products.buf_size + sizeof(floating) - 1) // sizeof(floating)
    _carve(ws, sizes, bufs, 8)
    cdef floating *bias = bufs[0]
    cdef floating *work = bufs[4]
    cdef floating *hidden_raw = bufs[5]
    cdef floating *rec = bufs[6]
    products.w_hr, products.w_hh, products.w_ih = bufs[1], bufs[2], bufs[3]
    products.buf = <char *> bufs[7]
    cdef bint packed = ws.holds(key, prepared, "forward_layer")
    with nogil:
        if not packed:
            _fill_bias(kind, H, args[3], args[4], bias)
            if project:
                prepare_into(route, True, H, P, w_hr, H, bufs[1])
            prepare_into(route, True, P, G, w_hh, P, bufs[2])
            prepare_into(route, True, I, G, w_ih, I, bufs[3])
        if nt == 1:
            _forward_steps(0, 1, False, NULL, kind, T, chunk, hoist, reverse, B, I, H, P,
                           batch_sizes, offsets, x, &products, bias, hidden, cell, hidden_raw,
                           out, ld_out, work, rec, gates, hidden_gates, tanh_cell, cell_prev,
                           hidden_prev)
        else:
            # The hoisted input projection is shared by columns: it needs the column split.
            by_rows = not hoist and _split_by_rows(
                B, I, G, H, P, project, nt,
                2 if route == LSTM_BF16_AVX512 or route == LSTM_BF16_AMX
                else 1 if _packs_i8(route) else sizeof(floating),
                panel_width(x) != 0)
            team.arrived = team.generation = 0
            with parallel(num_threads=nt):
                _forward_steps(threadid(), lstm_team_size(), by_rows, &team, kind, T, chunk,
                               hoist, reverse, B, I, H, P, batch_sizes, offsets, x, &products,
                               bias, hidden, cell, hidden_raw, out, ld_out, work, rec, gates,
                               hidden_gates, tanh_cell, cell_prev, hidden_prev)


def backward_layer(x, w_ih, w_hh, w_hr, batch_sizes, offsets, d_out, Py_ssize_t out_col,
                   bint reverse, d_hidden, d_cell, gates, tanh_cell, cell_prev, hidden_prev, d_x,
                   d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr, int n_threads=0,
                   Workspace workspace=None, int prepared=PACK, bint finish=True,
                   int kind=CELL_LSTM, hidden_gates=None, d_hidden_steps=None,
                   d_cell_steps=None, int precision=NATIVE, Py_ssize_t route_batch=0):
    """Backpropagate through one layer-direction of a cell after a training forward_layer.

    Arrays as in forward_layer (C-contiguous, x's dtype; batch_sizes and offsets intp).
    d_out (N x D*P): dL/doutput, columns out_col .. out_col + P - 1 are this direction's.
    d_hidden (B x P): dL/dh_n in, dL/dh_0 out.  d_cell (B x H): dL/dc_n in, dL/dc_0 out (LSTM;
    None for the others).
    gates, hidden_prev, and the LSTM's tanh_cell, cell_prev or the GRU's hidden_gates: what
    forward_layer stored (None where the cell stores nothing there); gates, tanh_cell and
    hidden_gates are overwritten (with gradients and o tanh(c)), so a forward pass is
    backpropagated once.
    d_x (N x I), d_w_ih, d_w_hh, d_b_ih, d_b_hh (G), d_w_hr: gradients, ADDED to; the bias and
    projection ones may be None (no bias, no projection; then w_hr is None too).
    n_threads: threads for this call; 0 chooses (see threads_for).
    workspace: where the call's buffers go, reused across calls (see Workspace); None: a new one.
    prepared: PACK or PACKED, as in forward_layer (the runs of a backward call go back in time);
    a PACKED call also adds to the transposed dW_ih, dW_hh that the earlier runs left in the
    workspace.
    finish: add those into d_w_ih, d_w_hh (False for every run of steps but the last: their
    weight gradients wait in the workspace for it).
    d_hidden_steps (N x P) and (LSTM) d_cell_steps (N x H): unless None, they receive dL/dh_t
    and dL/dc_t of every step, the whole gradients of the states (for introspection).
    precision: NATIVE, or BFLOAT16 (float32 arrays; mixed-precision training, after a
    forward_layer of that precision): every product's operands rounded to bf16 (the weights
    once; dL/dA, the pre-activations' gradients, once in place in gates and hidden_gates, so
    that the bias gradients sum the rounded values the products read; x and hidden_prev are
    read, not changed), summed in float32; the gate math, the state gradients and the weight
    gradients' sums stay float32. route_batch: as for forward_layer.

    Every array and every value of batch_sizes and offsets is checked first, as forward_layer
    checks its own.
    """
    cdef str fn = "backward_layer"
    if prepared != PACK and prepared != PACKED:
        raise ValueError(f"{fn}: prepared must be PACK or PACKED, got {prepared}")
    if precision != NATIVE and precision != BFLOAT16:
        raise ValueError(f"{fn}: precision must be NATIVE or BFLOAT16 (INT8 is for inference), "
                         f"got {precision}")
    cdef int dt = _array_type(x, "backward_layer: x")
    if precision != NATIVE and dt != cnp.NPY_FLOAT32:
        raise TypeError(f"{fn}: precision BFLOAT16 takes float32 arrays, got {x.dtype}")
    cdef bint lstm = _check_kind(fn, kind)
    cdef Py_ssize_t N = _dim(x, 0), I = _dim(x, 1), B = _dim(d_hidden, 0), P = _dim(d_hidden, 1)
    cdef Py_ssize_t H = _dim(d_cell, 1) if lstm else P, G = _n_gates(kind) * H
    cdef Py_ssize_t T = _dim(batch_sizes, 0), ld_out = _dim(d_out, 1)
    cdef void *args[22]
    # first the arrays whose shapes give the dimensions, then those checked against them
    args[0] = _data(x, fn, "x", dt, N, I, False, False)
    args[7] = _data(d_hidden, fn, "d_hidden", dt, B, P, False, True)
    args[8] = _data(d_cell, fn, "d_cell", dt, B, H, not lstm, True)
    args[4] = _data(batch_sizes, fn, "batch_sizes", cnp.NPY_INTP, T, -1, False, False)
    args[6] = _data(d_out, fn, "d_out", dt, N, ld_out, False, False)
    args[1] = _data(w_ih, fn, "w_ih", dt, G, I, False, False)
    args[2] = _data(w_hh, fn, "w_hh", dt, G, P, False, False)
    args[3] = _data(w_hr, fn, "w_hr", dt, P, H, True, False)
    args[5] = _data(offsets, fn, "offsets", cnp.NPY_INTP, T, -1, False, False)
    args[9] = _data(gates, fn, "gates", dt, N, G, False, True)
    args[10] = _data(tanh_cell, fn, "tanh_cell", dt, N, H, not lstm, True)
    args[11] = _data(cell_prev, fn, "cell_prev", dt, N, H, not lstm, False)
    args[12] = _data(hidden_prev, fn, "hidden_prev", dt, N, P, False, False)
    args[13] = _data(d_x, fn, "d_x", dt, N, I, False, True)
    args[14] = _data(d_w_ih, fn, "d_w_ih", dt, G, I, False, True)
    args[15] = _data(d_w_hh, fn, "d_w_hh", dt, G, P, False, True)
    args[16] = _data(d_b_ih, fn, "d_b_ih", dt, G, -1, True, True)
    args[17] = _data(d_b_hh, fn, "d_b_hh", dt, G, -1, True, True)
    args[18] = _data(d_w_hr, fn, "d_w_hr", dt, P, H, w_hr is None, True)
    args[19] = _data(hidden_gates, fn, "hidden_gates", dt, N, G, kind != CELL_GRU, True)
    args[20] = _data(d_hidden_steps, fn, "d_hidden_steps", dt, N, P, True, True)
    args[21] = _data(d_cell_steps, fn, "d_cell_steps", dt, N, H, True, True)
    if w_hr is None and d_w_hr is not None:
        raise ValueError("backward_layer: d_w_hr goes with w_hr")
    _check_absent(fn, kind, [("d_cell", d_cell), ("w_hr", w_hr), ("tanh_cell", tanh_cell),
                             ("cell_prev", cell_prev), ("d_cell_steps", d_cell_steps)],
                  [("hidden_gates", hidden_gates)])
    _check_layout(fn, out_col, ld_out, N, I, G, H, P, w_hr is not None)
    _check_steps(fn, <const Py_ssize_t *> args[4], <const Py_ssize_t *> args[5], T, N, B)
    cdef void *weights[5]
    weights[0], weights[1], weights[2] = args[1], args[2], args[3]
    weights[3] = weights[4] = NULL
    if workspace is None:
        workspace = Workspace()  # held until the call returns: the buffers live in it
    if route_batch < 0:
        raise ValueError(f"{fn}: route_batch must be >= 0, got {route_batch}")
    cdef int route = _route(precision, route_batch or B, workspace, prepared)
    cdef _Packed key = _packed_key(True, dt, kind, weights, I, H, P, route)
    if dt == cnp.NPY_FLOAT32:
        _backward_layer(<float **> args, kind, T, N, I, H, P, B, ld_out, out_col, reverse,
                        n_threads, workspace, &key, prepared, finish)
    else:
        _backward_layer(<double **> args, kind, T, N, I, H, P, B, ld_out, out_col, reverse,
                        n_threads, workspace, &key, prepared, finish)


cdef void _backward_layer(floating **args, int kind, Py_ssize_t T, Py_ssize_t N, Py_ssize_t I,
                          Py_ssize_t H, Py_ssize_t P, Py_ssize_t B, Py_ssize_t ld_out,
                          Py_ssize_t out_col, bint reverse, int n_threads, Workspace ws,
                          const _Packed *key, int prepared, bint finish) except *:
    """backward_layer on checked arrays: args are the data of its arrays, in its order, then
    hidden_gates, d_hidden_steps, d_cell_steps; key says what the weights are (see
    Workspace)."""
    cdef Py_ssize_t G = _n_gates(kind) * H, j
    cdef const floating *x = args[0]
    cdef const floating *w_ih = args[1]
    cdef const floating *w_hh = args[2]
    cdef const floating *w_hr = args[3]
    cdef const Py_ssize_t *batch_sizes = <const Py_ssize_t *> args[4]
    cdef const Py_ssize_t *offsets = <const Py_ssize_t *> args[5]
    cdef const floating *d_out = args[6] + out_col
    cdef floating *d_hidden = args[7]
    cdef floating *d_cell = args[8]
    cdef floating *gates = args[9]
    cdef floating *tanh_cell = args[10]
    cdef const floating *cell_prev = args[11]
    cdef const floating *hidden_prev = args[12]
    cdef floating *d_x = args[13]
    cdef floating *d_w_ih = args[14]
    cdef floating *d_w_hh = args[15]
    cdef floating *d_b_ih = args[16]
    cdef floating *d_b_hh = args[17]
    cdef floating *d_w_hr = args[18]
    cdef floating *hidden_gates = args[19]
    cdef floating *d_hidden_steps = args[20]
    cdef floating *d_cell_steps = args[21]
    cdef bint project = w_hr != NULL, by_rows
    cdef int nt = n_threads if n_threads > 0 else threads_for(B, H, P, _n_gates(kind))
    cdef int route = key.route
    cdef lstm_team_barrier team
    cdef Products products
    products.route = route
    products.buf_size = buffer_bytes(route, max(G, P), 0, max(I, H, P))
    if route == LSTM_BF16_AVX512 or route == LSTM_BF16_AMX:  # and tn_product's
        products.buf_size = max(products.buf_size, lstm_bf16_tn_buffer_bytes(max(I, P), P))
    cdef floating *bufs[9]
    _carve_backward(ws, kind, N, I, H, P, B, project, route, nt * products.buf_size, bufs)
    products.w_hh, products.w_hr, products.w_ih = bufs[0], bufs[1], bufs[2]
    products.buf = <char *> bufs[7]
    cdef floating *w_t = bufs[3]
    cdef floating *d_bias = bufs[4]
    cdef floating *d_bias_hh = bufs[4] + (G if kind == CELL_GRU else 0)
    cdef floating *d_raw = bufs[5]
    cdef floating *d_hidden_all = bufs[6]
    cdef floating *r = tanh_cell if project else NULL
    cdef bint packed = ws.holds(key, prepared, "backward_layer")
    with nogil:
        if not packed:
            prepare_into(route, False, G, P, w_hh, P, bufs[0])
            if project:
                prepare_into(route, False, P, H, w_hr, H, bufs[1])
        if nt == 1:
            _backward_steps(0, 1, False, NULL, kind, T, reverse, B, H, P, batch_sizes, offsets,
                            &products, d_out, ld_out, d_hidden, d_cell, d_raw, d_hidden_all,
                            gates, hidden_gates, tanh_cell, cell_prev, hidden_prev,
                            d_hidden_steps, d_cell_steps)
        else:
            by_rows = _split_by_rows(B, I, G, H, P, project, nt, sizeof(floating),
                                     panel_width(x) != 0)
            team.arrived = team.generation = 0
            with parallel(num_threads=nt):
                _backward_steps(threadid(), lstm_team_size(), by_rows, &team, kind, T, reverse,
                                B, H, P, batch_sizes, offsets, &products, d_out, ld_out,
                                d_hidden, d_cell, d_raw, d_hidden_all, gates, hidden_gates,
                                tanh_cell, cell_prev, hidden_prev, d_hidden_steps, d_cell_steps)

        # The weight gradients: one product each over all steps (W_ih packed just before).
        if not packed:
            prepare_into(route, False, G, I, w_ih, I, bufs[2])
        if route != NATIVE:
            # their operands rounded once: X and H_{t-1} (the caller's: copies, unless the
            # kernel rounds them), and in place dA (the GRU's two: the bias gradients sum them
            # rounded), R and dH (projection), which nothing reads after them
            if floating is float:
                if _rounds_beforehand(route):
                    x = <const floating *> _rounded_copy(N * I, <const float *> x,
                                                         <float *> bufs[8])
                    hidden_prev = <const floating *> _rounded_copy(
                        N * P, <const float *> hidden_prev, <float *> bufs[8] + N * I)
                _round(N * G, <float *> gates)
                _round(N * G, <float *> hidden_gates)
                _round(N * H, <float *> r)
                _round(N * P, <float *> d_hidden_all)
        if nt == 1:
            _backward_weights(0, 1, kind, N, I, H, P, gates, hidden_gates, x, hidden_prev,
                              &products, r, d_hidden_all, d_x, d_w_ih, d_w_hh, d_w_hr, d_bias,
                              w_t, packed, finish)
        else:
            with parallel(num_threads=nt):
                _backward_weights(threadid(), lstm_team_size(), kind, N, I, H, P, gates,
                                  hidden_gates, x, hidden_prev, &products, r, d_hidden_all,
                                  d_x, d_w_ih, d_w_hh, d_w_hr, d_bias, w_t, packed, finish)
        for j in range(G):  # (the GRU's two bias gradients differ)
            if d_b_ih != NULL:
                d_b_ih[j] += d_bias[j]
            if d_b_hh != NULL:
                d_b_hh[j] += d_bias_hh[j]


cdef inline void _round(Py_ssize_t n, float *a) noexcept nogil:
    """a (n, or NULL) rounded to bf16 in place."""
    if a != NULL:
        lstm_bf16_round(n, a)


cdef inline const float *_rounded_copy(Py_ssize_t n, const float *a, float *copy) noexcept nogil:
    """copy <- a (n) rounded to bf16; returns copy."""
    memcpy(copy, a, n * sizeof(float))
    lstm_bf16_round(n, copy)
    return copy


cdef int _carve_backward(Workspace ws, int kind, Py_ssize_t N, Py_ssize_t I, Py_ssize_t H,
                         Py_ssize_t P, Py_ssize_t B, bint project, int route,
                         Py_ssize_t buf_bytes, floating **bufs) except -1:
    """bufs <- backward's workspace: first what every run of steps of a layer call shares (W_hh,
    W_hr, W_ih packed for `route`, the transposed dW_ih and dW_hh), then the bias gradients (the
    GRU's two differ), the projection's gradients (dL/dr_t of a step, dL/dh_t of every step),
    the products' row buffers (buf_bytes for all threads) and, on a bf16 route that needs them
    (_rounds_beforehand), X and H_{t-1} rounded."""
    cdef Py_ssize_t G = _n_gates(kind) * H
    cdef Py_ssize_t sizes[9]
    sizes[0] = prepared_size(route, G, P, bufs[0])
    sizes[1] = prepared_size(route, P, H, bufs[0]) if project else 0
    sizes[2] = prepared_size(route, G, I, bufs[0])
    sizes[3] = (I + P) * G
    sizes[4] = 2 * G if kind == CELL_GRU else G
    sizes[5] = B * H if project else 0
    sizes[6] = N * P if project else 0
    sizes[7] = (buf_bytes + sizeof(floating) - 1) // sizeof(floating)
    sizes[8] = N * (I + P) if _rounds_beforehand(route) else 0
    return _carve(ws, sizes, bufs, 9)


cdef inline bint _rounds_beforehand(int route) noexcept nogil:
    """Whether a bf16 route's weight-gradient products (tn_product) need X and H_{t-1} rounded
    beforehand, into copies: the float32 route's (the bf16 units' kernels round as they
    read)."""
    return route == LSTM_BF16_FLOAT32


def activations(const floating[::1] x, floating[::1] sig, floating[::1] tanh_x, bint avx512):
    """sig = sigmoid(x), tanh_x = tanh(x) elementwise, by the engine's own kernels (for tests):
    the AVX-512 build if `avx512` and this CPU and kernel choice have it, else the portable one.
    Returns True if the AVX-512 build ran."""
    if sig.shape[0] != x.shape[0] or tanh_x.shape[0] != x.shape[0]:
        raise ValueError("activations: x, sig and tanh_x must have the same length")
    if x.shape[0] == 0:
        return False
    return bool(activations_(x.shape[0], &x[0], &sig[0], &tanh_x[0], avx512))


def all_finite(a):
    """True if no element of `a`, a C-contiguous float32 or float64 ndarray of any shape, is NaN
    or infinite (one pass, no temporary array)."""
    cdef int dt = _array_type(a, "a")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("all_finite: a must be C-contiguous")
    if dt == cnp.NPY_FLOAT32:
        return bool(lstm_all_finite_f(<const float *> cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a)))
    return bool(lstm_all_finite_d(<const double *> cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a)))


def matmul(bint trans_a, const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c,
           floating beta, int parts=1):
    """c = op(a) b + beta c through the engine's products, computed in `parts` column parts one
    after the other (for tests: the kernels the time loops use, on any shape): b packed, or with
    trans_a the weight gradients' product (nothing packed)."""
    cdef int m = c.shape[0], n = c.shape[1], k = b.shape[0], part
    cdef Py_ssize_t size, c0, c1
    cdef floating *packed
    if ((a.shape[1] if trans_a else a.shape[0]) != m
            or (a.shape[0] if trans_a else a.shape[1]) != k
            or b.shape[1] != n or m == 0 or n == 0 or k == 0):
        raise ValueError("matmul: inconsistent shapes")
    cdef Workspace workspace = Workspace()
    size = 0 if trans_a else packed_size(k, n, &b[0, 0])
    _carve(workspace, &size, &packed, 1)
    with nogil:
        if not trans_a:
            pack_into(False, k, n, &b[0, 0], n, packed)
        for part in range(parts):
            if trans_a:
                c0 = _first(n, part, parts)
                c1 = _first(n, part + 1, parts)
                gemm_tn2(m, c1 - c0, k, &a[0, 0], m, &b[0, c0], n, beta, &c[0, c0], n, 0, NULL,
                         1, NULL, 1, NULL)
            else:
                gemm_packed(m, n, k, &a[0, 0], a.shape[1], packed, beta, &c[0, 0], n, part, parts)


cdef dict _runnable_routes(str precision):
    """{unit name: route} of the routes of `precision` that run here."""
    if precision == "bfloat16":
        return {lstm_bf16_unit_name(r).decode(): r for r in range(1, lstm_bf16_unit(NULL) + 1)}
    return {lstm_i8_unit_name(r).decode(): r
            for r in (LSTM_I8_FLOAT32, LSTM_I8_AVX_VNNI, LSTM_I8_VNNI, LSTM_I8_AMX)
            if lstm_i8_runs(r)}


def reduced_routes(str precision):
    """The units ("float32", "avx512_bf16", "avx_vnni", ...) whose products of `precision`
    ("bfloat16" or "int8") run on this CPU under LSTM_FAST_KERNEL (matmul_reduced's routes)."""
    if precision not in ("bfloat16", "int8"):
        raise ValueError(f"reduced_routes: precision {precision!r}")
    return list(_runnable_routes(precision))


def matmul_reduced(str precision, const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] c,
                   bint beta, int parts=1, const float[:, ::1] a2=None,
                   const float[:, ::1] b2=None, str route=None):
    """c = a b [+ a2 b2] + beta c through the "bfloat16" or "int8" products (for tests: any
    shape, in `parts` column parts one after the other), on `route`: one of reduced_routes
    (precision), None the unit chosen here."""
    cdef int m = c.shape[0], n = c.shape[1], k = b.shape[0], k2 = 0, part, unit
    if a2 is not None and b2 is not None:
        k2 = b2.shape[0]
        if a2.shape[0] != m or a2.shape[1] != k2 or b2.shape[1] != n:
            raise ValueError("matmul_reduced: inconsistent shapes")
    if a.shape[0] != m or a.shape[1] != k or b.shape[1] != n or m == 0 or n == 0 or k == 0:
        raise ValueError("matmul_reduced: inconsistent shapes")
    if precision not in ("bfloat16", "int8"):
        raise ValueError(f"matmul_reduced: precision {precision!r}")
    unit = lstm_bf16_unit(NULL) if precision == "bfloat16" else lstm_i8_unit(NULL)
    names = _runnable_routes(precision)
    if route is not None and route not in names:
        raise ValueError(f"matmul_reduced: route {route!r} does not run here ({list(names)})")
    cdef Workspace workspace = Workspace()
    cdef Py_ssize_t sizes[3]
    cdef float *bufs[3]
    cdef Products p
    p.route = unit if route is None else names[route]
    sizes[0] = prepared_size(p.route, k, n, &c[0, 0])
    sizes[1] = prepared_size(p.route, max(k2, 1), n, &c[0, 0])
    sizes[2] = buffer_bytes(p.route, k, k2, n) // sizeof(float)
    _carve(workspace, sizes, bufs, 3)
    p.buf, p.buf_size = <char *> bufs[2], 0
    with nogil:
        prepare_into(p.route, False, k, n, &b[0, 0], n, bufs[0])
        if k2 > 0:
            prepare_into(p.route, False, k2, n, &b2[0, 0], n, bufs[1])
        for part in range(parts):
            product(&p, m, n, k, &a[0, 0], k, bufs[0], k2, &a2[0, 0] if k2 > 0 else NULL, k2,
                    bufs[1], 1 if beta else 0, &c[0, 0], n, part, parts)
