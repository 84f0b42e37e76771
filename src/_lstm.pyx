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
cimport numpy as cnp
from cython.parallel cimport parallel, threadid
from libc.stdlib cimport free
from libc.string cimport memcpy

import time

cnp.import_array()

from _blas cimport (gemm_packed, gemm_packed2, gemm_tn2, lstm_aligned_alloc, lstm_panel_width_d,
                   lstm_panel_width_f, pack_into, packed_kernel, packed_size, panel_width)
from _gates cimport activations_, gates_forward, gates_backward, lstm_gate_kernel

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
                max_threads=lstm_max_threads())


# The input projection is computed for about this many bytes of gate rows at a time (at least one
# step): they stay in L1/L2 next to the weights until the recurrent steps add to them, and inference
# needs only O(B*H) workspace.  (Measured on rows 4-5 of the standard grid: 64 KiB was 2-5% faster
# than 1-2 MiB, whose rows had left L2 by the time their step ran.)
cdef enum:
    CHUNK_BYTES = 1 << 16

# Below this batch the input projection is hoisted out of the time loop (above), so that its
# product has chunk x B rows: the packed kernel runs at ~40% of its speed with one row, but at full
# speed from four.  From this batch up, each step computes x_t W_ih^T + h_{t-1} W_hh^T in one
# pass over its gate rows instead, which writes them once (measured: 2-5% faster for B >= 16,
# the same for B = 4-8).
cdef enum:
    HOIST_BELOW_BATCH = 4

# Threads: a call whose recurrent product has at least this many multiply-adds per step runs in
# one parallel region, where every thread walks the same time loop: each product is split between
# them by column panels and each element-wise pass by rows, with a barrier after each.  Below it the
# call runs on one thread: the barriers (BASELINE.md: a core-to-core round trip is 0.1-0.4 us here)
# would cost more than the second core saves.
cdef enum:
    PARALLEL_MIN_MACS = 1 << 18

cdef extern from *:
    """
    #include <sched.h>
    #ifdef _OPENMP
    #include <omp.h>
    static int lstm_max_threads(void) { return omp_get_max_threads(); }
    static int lstm_team_size(void) { return omp_get_num_threads(); }
    #else
    static int lstm_max_threads(void) { return 1; }
    static int lstm_team_size(void) { return 1; }
    #endif

    /* Where the threads of one parallel time loop meet after each product and pass (zeroed
     * before the region). Not OpenMP's barrier: libgomp's waiters spin only briefly, then sleep
     * in the kernel, whenever it manages more threads than there are CPUs, which is the case as
     * soon as a second OS thread (a thread pool, a web server's workers) keeps a team of its own:
     * a step's two or three barriers then cost a futex wake each, and row 4 of the grid took
     * 21 ms on 2 threads instead of 11 (as long as on 1). Here a waiter spins, and yields its
     * core now and then in case the thread it waits for needs it. */
    typedef struct {
        int arrived, generation;
        char alone[56];  /* a line of its own: nothing the threads write may share it */
    } __attribute__((aligned(64))) lstm_team_barrier;

    static __attribute__((noinline)) void lstm_barrier_wait(lstm_team_barrier *team, int parts)
    {
        int generation = __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE);
        if (__atomic_add_fetch(&team->arrived, 1, __ATOMIC_ACQ_REL) == parts) {
            /* the last to arrive resets the count, then lets the others go */
            __atomic_store_n(&team->arrived, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&team->generation, generation + 1, __ATOMIC_RELEASE);
            return;
        }
        for (unsigned spins = 1;
             __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE) == generation; spins++) {
    #if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
    #endif
            if (spins % 4096 == 0)
                sched_yield();
        }
    }

    /* A team of one does not wait: the time loops stay free of a call at every barrier. */
    static inline void lstm_barrier(lstm_team_barrier *team, int parts)
    {
        if (parts > 1)
            lstm_barrier_wait(team, parts);
    }
    """
    int lstm_max_threads() noexcept nogil
    int lstm_team_size() noexcept nogil
    ctypedef struct lstm_team_barrier:
        int arrived, generation
    void lstm_barrier(lstm_team_barrier *team, int parts) noexcept nogil


cdef extern from *:
    """
    #include <stdlib.h>
    #include <string.h>
    /* LSTM_FAST_SPLIT=rows or =columns in the environment (read once) forces how threads share a
     * time loop, for tests and measurements: 1 rows, 0 columns, -1 chosen by size. */
    static int lstm_split_override(void)
    {
        static int split = -2;
        if (split == -2) {
            const char *want = getenv("LSTM_FAST_SPLIT");
            split = want == NULL ? -1 : strcmp(want, "rows") == 0 ? 1
                    : strcmp(want, "columns") == 0 ? 0 : -1;
        }
        return split;
    }
    """
    int lstm_split_override() noexcept nogil


cdef extern from "lstm_peak.h" nogil:
    double lstm_fma_chains_threads(int dbl, long iters, int threads, double *sink)


def fma_peak(bint double=False, int threads=1, long iters=20_000_000):
    """GF/s of independent vector FMA chains run on `threads` threads at once, at the packed
    kernel's vector width: the hardware ceiling of any product here (0.0 without that kernel)."""
    cdef double flops, sink
    lstm_fma_chains_threads(double, iters // 100, threads, &sink)  # cores up to their clock
    start = time.perf_counter()
    with nogil:
        flops = lstm_fma_chains_threads(double, iters, threads, &sink)
    return flops / (time.perf_counter() - start) / 1e9


# How threads share a time loop (see _forward_steps): by rows, each thread runs its own
# sequences with no barrier at all, but multiplies them by all of the weights, which must then
# stay in its core's L2 (1 MiB here) from step to step; by columns, each reads half of the
# weights, but the threads meet two or three times a step.  Measured at 2 threads: rows were as
# fast or faster from 4 sequences a thread up (rows 3 and 8 of the grid: 1.1-1.7x), columns with 2
# a thread (batch 4: 0.9x).  With weights beyond L2 (1.3 MiB, row 4), rows streamed them from the
# shared L3: as fast as columns in some processes, 1.6x slower in others (12 or 20 ms, inference).
cdef enum:
    ROWS_MIN_BATCH = 4
    ROWS_MAX_WEIGHT_BYTES = 1 << 19


cdef bint _split_by_rows(Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P, bint project,
                         int threads, Py_ssize_t itemsize, bint packed) noexcept nogil:
    """Whether `threads` threads share a layer-direction's time loops by rows (sequences).
    Only with the packed kernel (`packed`), whose rows do not depend on which others are in the
    product: BLAS's do (gemv for one row), and results must not depend on the thread count."""
    cdef int forced = lstm_split_override()
    if not packed:
        return False
    if forced >= 0:
        return forced == 1
    # W_ih, W_hh and (projecting) W_hr: what each thread multiplies at every step
    return (B >= ROWS_MIN_BATCH * threads
            and ((I + P) * 4 * H + (H * P if project else 0)) * itemsize
            <= ROWS_MAX_WEIGHT_BYTES)


def split_choice(Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P, bint project,
                 int threads, Py_ssize_t itemsize):
    """How `threads` threads would share such a layer-direction's time loops: "rows" or
    "columns" (for tests; LSTM_FAST_SPLIT and the kernel in use count as in a call)."""
    cdef Py_ssize_t width = lstm_panel_width_d() if itemsize == 8 else lstm_panel_width_f()
    return "rows" if _split_by_rows(B, I, H, P, project, threads, itemsize,
                                    width != 0) else "columns"


cpdef int threads_for(Py_ssize_t B, Py_ssize_t H, Py_ssize_t P) noexcept nogil:
    """Threads a layer-direction call with batch B, hidden H and output P runs on: OpenMP's
    current limit if its recurrent product (B x P) (P x 4H) is large enough to pay, else 1."""
    return 1 if B * 4 * H * P < PARALLEL_MIN_MACS else lstm_max_threads()


cdef struct _Packed:
    # What the packed weights at the front of a workspace were packed from (see Workspace).
    bint valid, backward
    int dtype
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
    they were packed from: a run of steps after the first of the same layer call passes
    `prepared` and skips packing them again (the weights cannot have changed in between)."""
    cdef char *data
    cdef size_t size
    cdef _Packed packed

    def __dealloc__(self):
        free(self.data)

    @property
    def nbytes(self):
        """Bytes the workspace holds."""
        return self.size

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

    cdef int holds(self, const _Packed *key, bint prepared, str fn) except -1:
        """With `prepared`, check that the packed weights in the workspace are key's (a
        ValueError if not); else record that they are about to be. Returns `prepared`."""
        cdef const _Packed *p = &self.packed
        if not prepared:
            self.packed = key[0]
            return 0
        if not (p.valid and p.backward == key.backward and p.dtype == key.dtype
                and p.w_ih == key.w_ih and p.w_hh == key.w_hh and p.w_hr == key.w_hr
                and p.b_ih == key.b_ih and p.b_hh == key.b_hh and p.n_in == key.n_in
                and p.n_hidden == key.n_hidden and p.n_out == key.n_out):
            raise ValueError(f"{fn}: prepared=True, but the workspace does not hold these "
                             "weights packed by a call of the same layer-direction")
        return 1


cdef _Packed _packed_key(bint backward, int dtype, void **weights, Py_ssize_t I, Py_ssize_t H,
                         Py_ssize_t P) noexcept:
    """The key of weights (w_ih, w_hh, w_hr, b_ih, b_hh; NULL where absent) packed for a
    forward or backward call."""
    cdef _Packed key
    key.valid, key.backward, key.dtype = True, backward, dtype
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


cdef inline floating *_rows(floating *a, Py_ssize_t row, Py_ssize_t width) noexcept nogil:
    """Row `row` of a row-major array of `width` columns, or NULL for no array."""
    return a + row * width if a != NULL else NULL


cdef inline Py_ssize_t _first(Py_ssize_t n, int part, int parts) noexcept nogil:
    """First of the n items (rows) that part `part` of `parts` takes; it ends at part + 1's."""
    return n * part // parts


cdef Py_ssize_t _row_bound(int part, int parts, Py_ssize_t B, Py_ssize_t T,
                           const Py_ssize_t *batch_sizes) noexcept nogil:
    """First sequence (row) of part `part` of `parts` in a split by rows that gives each part
    about as many row-steps: the least b with sum_t min(b_t, b) >= part / parts of them all. With
    lengths, the longest sequences come first, so equal counts of rows would not do."""
    cdef Py_ssize_t lo = 0, hi = B, mid, t, work, total = 0
    for t in range(T):
        total += batch_sizes[t]
    while lo < hi:
        mid = (lo + hi) // 2
        work = 0
        for t in range(T):
            work += min(batch_sizes[t], mid)
        if work * parts >= total * part:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef struct _Split:
    # How part `part` of `parts` shares a time loop: its products' column part (cpart of cparts),
    # the team that must meet after each of them (sync) and where (team), and with by_rows its
    # sequences row0..row1.
    int part, parts, cpart, cparts, sync
    bint by_rows
    Py_ssize_t row0, row1
    lstm_team_barrier *team


cdef inline _Split _split(int part, int parts, bint by_rows, Py_ssize_t B, Py_ssize_t T,
                          const Py_ssize_t *batch_sizes, lstm_team_barrier *team) noexcept nogil:
    """The split of a time loop for part `part` of `parts` (see _split_by_rows), whose team
    meets at `team` (NULL for one part)."""
    cdef _Split s
    s.part, s.parts, s.by_rows, s.team = part, parts, by_rows, team
    s.cpart = 0 if by_rows else part
    s.cparts = 1 if by_rows else parts
    s.sync = 1 if by_rows else parts
    s.row0 = _row_bound(part, parts, B, T, batch_sizes) if by_rows else 0
    s.row1 = _row_bound(part + 1, parts, B, T, batch_sizes) if by_rows else 0
    return s


cdef inline void _step_rows(const _Split *s, Py_ssize_t rows, Py_ssize_t *lo, Py_ssize_t *hi,
                            Py_ssize_t *r0, Py_ssize_t *r1) noexcept nogil:
    """At a step with `rows` active sequences: the rows lo..hi the part multiplies (all of them
    when split by columns), and r0..r1 it runs element-wise."""
    if s.by_rows:
        lo[0] = min(rows, s.row0)
        hi[0] = min(rows, s.row1)
        r0[0], r1[0] = lo[0], hi[0]
    else:
        lo[0], hi[0] = 0, rows
        r0[0] = _first(rows, s.part, s.parts)
        r1[0] = _first(rows, s.part + 1, s.parts)


cdef void _forward_steps(int part, int parts, bint by_rows, lstm_team_barrier *team,
                         Py_ssize_t T, Py_ssize_t chunk,
                         bint hoist, bint reverse, Py_ssize_t B,
                         Py_ssize_t I, Py_ssize_t H, Py_ssize_t P,
                         const Py_ssize_t *batch_sizes, const Py_ssize_t *offsets,
                         const floating *x, const floating *w_ih_packed,
                         const floating *w_hh_packed, const floating *w_hr_packed,
                         const floating *bias, floating *hidden, floating *cell,
                         floating *hidden_raw, floating *out, Py_ssize_t ld_out, floating *work,
                         floating *gates, floating *tanh_cell, floating *cell_prev,
                         floating *hidden_prev) noexcept nogil:
    """The forward time loop, as walked by part `part` of `parts` threads (see forward_layer).

    by_rows: the part runs its own sequences (rows) through every product and pass, alone, with
    no barrier; else each product is split between the parts by column panels and each
    element-wise pass by rows, with a barrier after each (see _split_by_rows).
    hoist: the input projection is computed for `chunk` steps at a time, before them; else
    (chunk = 1) each step computes x_t W_ih^T and h_{t-1} W_hh^T together, in one pass over G_t.
    work (one chunk's rows x 4H) receives the pre-activations, which the gate pass reads while
    they are in cache.  gates (N x 4H), tanh_cell, cell_prev and hidden_prev are where training
    stores the activated gates, tanh(c_t), c_{t-1} and h_{t-1} of every step; NULL for inference.
    hidden_raw is NULL without projection.
    """
    cdef Py_ssize_t G = 4 * H, ci, start, stop, step, k, t, rows, row, first_row, b, r0, r1
    cdef Py_ssize_t lo, hi
    cdef bint training = gates != NULL, project = hidden_raw != NULL
    cdef floating *g_t
    cdef floating *r_t = hidden_raw if project else hidden
    cdef int ld_r = H if project else P
    cdef _Split sp = _split(part, parts, by_rows, B, T, batch_sizes, team)
    cdef int cpart = sp.cpart, cparts = sp.cparts, sync = sp.sync
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
            # G_x = X W_ih^T for every row of the chunk          (rows x I) (I x 4H)
            gemm_packed(rows, G, I, x + first_row * I, I, w_ih_packed, 0, g_t, G, part, parts)
            lstm_barrier(sp.team, parts)
        for k in range(stop - start):
            t = stop - 1 - k if reverse else start + k
            rows = batch_sizes[t]
            row = offsets[t]
            g_t = work + (row - first_row) * G
            _step_rows(&sp, rows, &lo, &hi, &r0, &r1)
            if hoist:
                # G_t += h_{t-1} W_hh^T                           (b_t x P) (P x 4H)
                gemm_packed(hi - lo, G, P, hidden + lo * P, P, w_hh_packed, 1, g_t + lo * G, G,
                            cpart, cparts)
            else:
                # G_t = x_t W_ih^T + h_{t-1} W_hh^T     (b_t x I) (I x 4H) + (b_t x P) (P x 4H)
                gemm_packed2(hi - lo, G, I, x + (row + lo) * I, I, w_ih_packed, P,
                             hidden + lo * P, P, w_hh_packed, 0, g_t + lo * G, G, cpart, cparts)
            lstm_barrier(sp.team, sync)
            # Element-wise, on this part's rows: keep h_{t-1}; gates; c_t and r_t.
            if training:
                memcpy(hidden_prev + (row + r0) * P, hidden + r0 * P,
                       (r1 - r0) * P * sizeof(floating))
            gates_forward(r1 - r0, H, bias, g_t + r0 * G, _rows(gates, row + r0, G),
                          cell + r0 * H, r_t + r0 * ld_r, ld_r,
                          NULL if project else out + (row + r0) * ld_out, ld_out,
                          _rows(tanh_cell, row + r0, H), _rows(cell_prev, row + r0, H))
            if project:
                lstm_barrier(sp.team, sync)
                # h_t = r_t W_hr^T                                (b_t x H) (H x P)
                gemm_packed(hi - lo, P, H, r_t + lo * H, H, w_hr_packed, 0, hidden + lo * P, P,
                            cpart, cparts)
                lstm_barrier(sp.team, sync)
                for b in range(r0, r1):
                    memcpy(out + (row + b) * ld_out, hidden + b * P, P * sizeof(floating))
            lstm_barrier(sp.team, sync)


cdef int _array_type(object a, str name) except -1:
    """The dtype number of `a`, a float32 or float64 ndarray."""
    if not cnp.PyArray_Check(a) or cnp.PyArray_TYPE(a) not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        raise TypeError(f"{name} must be a float32 or float64 ndarray, got {type(a).__name__}")
    return cnp.PyArray_TYPE(a)


cdef Py_ssize_t _dim(object a, int axis) except -1:
    """Length of axis `axis` of ndarray `a` (0 when it has fewer axes: _data then refuses it)."""
    if not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(a) <= axis:
        return 0
    return cnp.PyArray_DIM(a, axis)


cdef str _describe(object a):
    """What `a` is, for an error message: dtype, shape and layout of an ndarray, else its type."""
    if not cnp.PyArray_Check(a):
        return type(a).__name__
    layout = "" if cnp.PyArray_IS_C_CONTIGUOUS(a) else ", not C-contiguous"
    flags = "" if cnp.PyArray_ISWRITEABLE(a) else ", read-only"
    flags += "" if cnp.PyArray_ISALIGNED(a) else ", not aligned"
    flags += "" if cnp.PyArray_ISNOTSWAPPED(a) else ", byte-swapped"
    return f"{a.dtype} array of shape {a.shape}{layout}{flags}"


cdef void *_data(object a, str fn, str name, int dtype, Py_ssize_t rows, Py_ssize_t cols,
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


cdef int _check_steps(str fn, const Py_ssize_t *batch_sizes, const Py_ssize_t *offsets,
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


cdef int _check_layout(str fn, Py_ssize_t out_col, Py_ssize_t ld_out, Py_ssize_t N, Py_ssize_t I,
                       Py_ssize_t H, Py_ssize_t P, bint project) except -1:
    """Raise a ValueError if this direction's columns out_col .. out_col + P - 1 do not fit in
    the output's ld_out, if P != H without a projection, or if a dimension exceeds a C int."""
    if out_col < 0 or out_col > ld_out - P:  # (out_col + P could overflow)
        raise ValueError(f"{fn}: out_col = {out_col} and P = {P} columns do not fit in the "
                         f"output's {ld_out}")
    if not project and P != H:
        raise ValueError(f"{fn}: without w_hr, hidden must have H = {H} columns, got {P}")
    if max(N, I, 4 * H, P, ld_out) > MAX_DIM:
        raise ValueError(f"{fn}: a dimension exceeds {MAX_DIM} (N = {N}, I = {I}, 4H = {4 * H}, "
                         f"P = {P})")
    return 0


def forward_layer(x, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, offsets, hidden, cell, out,
                  Py_ssize_t out_col, bint reverse, gates=None, tanh_cell=None, cell_prev=None,
                  hidden_prev=None, int n_threads=0, Workspace workspace=None,
                  bint prepared=False):
    """Run one layer-direction over packed sequences.

    Arrays are C-contiguous, of x's dtype (float32 or float64); batch_sizes and offsets (T) are intp.
    x (N x I): packed input.  b_ih, b_hh (4H): biases, or None.  w_hr (P x H), or None.
    hidden (B x P), cell (B x H): h_0, c_0 in; h_n, c_n out.
    out (N x D*P): h_t written into columns out_col .. out_col + P - 1.
    gates (N x 4H), tanh_cell, cell_prev (N x H), hidden_prev (N x P): for training, where the
    activated gates, tanh(c_t), c_{t-1} and h_{t-1} of every step are stored for backward; None for
    inference, which keeps only the state and O(B*H) workspace.
    n_threads: threads for this call; 0 chooses (see threads_for).
    workspace: where the call's buffers go, reused across calls (see Workspace); None: a new one.
    prepared: the workspace holds these weights packed by the previous call (a run of steps
    after the first of one layer call: the state carries over, the weights are the same).

    Every array's dtype, shape and layout and every value of batch_sizes and offsets are checked
    before the time loop: a wrong one is a ValueError or TypeError, never an access out of bounds.
    They are checked as arrays rather than typed as memoryviews: acquiring a memoryview costs
    ~0.15 us an argument, a sixth of a whole call at batch 1 (row 12 of the grid).
    """
    cdef str fn = "forward_layer"
    cdef int dt = _array_type(x, "forward_layer: x")
    cdef Py_ssize_t N = _dim(x, 0), I = _dim(x, 1), B = _dim(hidden, 0), P = _dim(hidden, 1)
    cdef Py_ssize_t H = _dim(cell, 1), G = 4 * H, T = _dim(batch_sizes, 0), ld_out = _dim(out, 1)
    cdef void *args[15]
    # first the arrays whose shapes give the dimensions, then those checked against them
    args[0] = _data(x, fn, "x", dt, N, I, False, False)
    args[8] = _data(hidden, fn, "hidden", dt, B, P, False, True)
    args[9] = _data(cell, fn, "cell", dt, B, H, False, True)
    args[6] = _data(batch_sizes, fn, "batch_sizes", cnp.NPY_INTP, T, -1, False, False)
    args[10] = _data(out, fn, "out", dt, N, ld_out, False, True)
    args[1] = _data(w_ih, fn, "w_ih", dt, G, I, False, False)
    args[2] = _data(w_hh, fn, "w_hh", dt, G, P, False, False)
    args[3] = _data(b_ih, fn, "b_ih", dt, G, -1, True, False)
    args[4] = _data(b_hh, fn, "b_hh", dt, G, -1, True, False)
    args[5] = _data(w_hr, fn, "w_hr", dt, P, H, True, False)
    args[7] = _data(offsets, fn, "offsets", cnp.NPY_INTP, T, -1, False, False)
    args[11] = _data(gates, fn, "gates", dt, N, G, True, True)
    args[12] = _data(tanh_cell, fn, "tanh_cell", dt, N, H, gates is None, True)
    args[13] = _data(cell_prev, fn, "cell_prev", dt, N, H, gates is None, True)
    args[14] = _data(hidden_prev, fn, "hidden_prev", dt, N, P, gates is None, True)
    if gates is None and (tanh_cell is not None or cell_prev is not None
                          or hidden_prev is not None):
        raise ValueError("forward_layer: tanh_cell, cell_prev and hidden_prev go with gates")
    _check_layout(fn, out_col, ld_out, N, I, H, P, args[5] != NULL)
    _check_steps(fn, <const Py_ssize_t *> args[6], <const Py_ssize_t *> args[7], T, N, B)
    cdef void *weights[5]
    weights[0], weights[1], weights[2], weights[3], weights[4] = (args[1], args[2], args[5],
                                                                  args[3], args[4])
    cdef _Packed key = _packed_key(False, dt, weights, I, H, P)
    if workspace is None:
        workspace = Workspace()
    if dt == cnp.NPY_FLOAT32:
        _forward_layer(<float **> args, T, N, I, H, P, B, ld_out, out_col, reverse, n_threads,
                       workspace, &key, prepared)
    else:
        _forward_layer(<double **> args, T, N, I, H, P, B, ld_out, out_col, reverse, n_threads,
                       workspace, &key, prepared)


cdef void _forward_layer(floating **args, Py_ssize_t T, Py_ssize_t N, Py_ssize_t I, Py_ssize_t H,
                         Py_ssize_t P, Py_ssize_t B, Py_ssize_t ld_out, Py_ssize_t out_col,
                         bint reverse, int n_threads, Workspace ws, const _Packed *key,
                         bint prepared) except *:
    """forward_layer on checked arrays: args are the data of its first 11 arrays, then gates,
    tanh_cell, cell_prev, hidden_prev (NULL for inference), in its order; key says what the
    weights are (see Workspace)."""
    cdef Py_ssize_t G = 4 * H, chunk, j
    cdef const floating *x = args[0]
    cdef const floating *w_ih = args[1]
    cdef const floating *w_hh = args[2]
    cdef const floating *b_ih = args[3]
    cdef const floating *b_hh = args[4]
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
    cdef bint project = w_hr != NULL, hoist, by_rows
    cdef int nt
    cdef lstm_team_barrier team
    cdef Py_ssize_t sizes[6]
    cdef floating *bufs[6]
    # Small batches: the input projection a chunk of steps at a time, just before those steps run,
    # so that its output is still in cache when the recurrent products add to it (see CHUNK_BYTES).
    hoist = B < HOIST_BELOW_BATCH
    chunk = max(1, min(T, CHUNK_BYTES // (B * G * <Py_ssize_t> sizeof(floating)))) if hoist else 1
    nt = n_threads if n_threads > 0 else threads_for(B, H, P)
    # The workspace: first the bias and the packed weights (the same for every run of steps of
    # a layer call), then the pre-activations of a chunk of steps and r_t (projection).
    sizes[0] = G
    sizes[1] = packed_size(H, P, x) if project else 0
    sizes[2] = packed_size(P, G, x)
    sizes[3] = packed_size(I, G, x)
    sizes[4] = min(N, chunk * B) * G
    sizes[5] = B * H if project else 0
    _carve(ws, sizes, bufs, 6)
    cdef floating *bias = bufs[0]
    cdef floating *w_hr_packed = bufs[1]
    cdef floating *w_hh_packed = bufs[2]
    cdef floating *w_ih_packed = bufs[3]
    cdef floating *work = bufs[4]
    cdef floating *hidden_raw = bufs[5]
    cdef bint packed = ws.holds(key, prepared, "forward_layer")
    with nogil:
        if not packed:
            for j in range(G):
                bias[j] = (b_ih[j] if b_ih != NULL else 0) + (b_hh[j] if b_hh != NULL else 0)
            if project:
                pack_into(True, H, P, w_hr, H, w_hr_packed)
            pack_into(True, P, G, w_hh, P, w_hh_packed)
            pack_into(True, I, G, w_ih, I, w_ih_packed)
        if nt == 1:
            _forward_steps(0, 1, False, NULL, T, chunk, hoist, reverse, B, I, H, P, batch_sizes,
                           offsets, x, w_ih_packed, w_hh_packed, w_hr_packed, bias, hidden, cell,
                           hidden_raw, out, ld_out, work, gates, tanh_cell, cell_prev,
                           hidden_prev)
        else:
            # The hoisted input projection is shared by columns: it needs the column split.
            by_rows = not hoist and _split_by_rows(B, I, H, P, project, nt, sizeof(floating),
                                                   panel_width(x) != 0)
            team.arrived = team.generation = 0
            with parallel(num_threads=nt):
                _forward_steps(threadid(), lstm_team_size(), by_rows, &team, T, chunk, hoist,
                               reverse, B, I, H, P, batch_sizes, offsets, x, w_ih_packed,
                               w_hh_packed, w_hr_packed, bias, hidden, cell, hidden_raw, out,
                               ld_out, work, gates, tanh_cell, cell_prev, hidden_prev)


cdef void _backward_steps(int part, int parts, bint by_rows, lstm_team_barrier *team,
                          Py_ssize_t T, bint reverse,
                          Py_ssize_t B, Py_ssize_t H, Py_ssize_t P,
                          const Py_ssize_t *batch_sizes, const Py_ssize_t *offsets,
                          const floating *w_hh_packed, const floating *w_hr_packed,
                          const floating *d_out, Py_ssize_t ld_out, floating *d_hidden,
                          floating *d_cell, floating *d_raw, floating *d_hidden_all,
                          floating *gates, floating *tanh_cell,
                          const floating *cell_prev) noexcept nogil:
    """The reverse time loop, as walked by part `part` of `parts` threads (see backward_layer;
    by_rows as in _forward_steps).

    d_raw (B x H) and d_hidden_all (N x P) are workspaces when projecting, else NULL.
    """
    cdef Py_ssize_t G = 4 * H, step, t, rows, row, b, j, r0, r1, lo, hi
    cdef bint project = d_raw != NULL
    cdef floating *dr_t = d_raw if project else d_hidden
    cdef _Split sp = _split(part, parts, by_rows, B, T, batch_sizes, team)
    cdef int cpart = sp.cpart, cparts = sp.cparts, sync = sp.sync
    for step in range(T):
        t = step if reverse else T - 1 - step
        rows = batch_sizes[t]
        row = offsets[t]
        _step_rows(&sp, rows, &lo, &hi, &r0, &r1)
        # dL/dh_t = dL/dout_t + dL/dh_t (from step t+1), on this part's rows
        for b in range(r0, r1):
            for j in range(P):
                d_hidden[b * P + j] += d_out[(row + b) * ld_out + j]
        if project:
            memcpy(d_hidden_all + (row + r0) * P, d_hidden + r0 * P,
                   (r1 - r0) * P * sizeof(floating))
            lstm_barrier(sp.team, sync)
            # dL/dr_t = dL/dh_t W_hr                               (b_t x P) (P x H)
            gemm_packed(hi - lo, H, P, d_hidden + lo * P, P, w_hr_packed, 0, d_raw + lo * H, H,
                        cpart, cparts)
            lstm_barrier(sp.team, sync)
        gates_backward(r1 - r0, H, dr_t + r0 * H, gates + (row + r0) * G,
                       tanh_cell + (row + r0) * H, cell_prev + (row + r0) * H, d_cell + r0 * H)
        lstm_barrier(sp.team, sync)
        # dL/dh_{t-1} = dL/da_t W_hh                               (b_t x 4H) (4H x P)
        gemm_packed(hi - lo, P, G, gates + (row + lo) * G, G, w_hh_packed, 0, d_hidden + lo * P,
                    P, cpart, cparts)
        lstm_barrier(sp.team, sync)


cdef void _backward_weights(int part, int parts, Py_ssize_t N, Py_ssize_t I, Py_ssize_t H,
                            Py_ssize_t P, const floating *gates, const floating *x,
                            const floating *hidden_prev, const floating *w_ih_packed,
                            const floating *r, const floating *d_hidden_all, floating *d_x,
                            floating *d_w_ih, floating *d_w_hh, floating *d_w_hr,
                            floating *d_bias, floating *w_t, bint accumulate,
                            bint finish) noexcept nogil:
    """The weight gradients, each one product over every packed row, split between `parts`.

    dW_ih and dW_hh are computed transposed, into w_t ((I + P) x 4H), then added: dA, as large as
    the whole sequence, is then the product's right operand, read once in column panels (and each
    part reads its own columns), while X and H_{t-1}, I + P wide, are the rows of the tiles.
    With `accumulate`, w_t adds to what earlier runs of steps left there; only with `finish` is it
    added into dW_ih and dW_hh (a strided pass, once per layer call rather than once per run).
    r (N x H) is R = o tanh(c) when projecting, else NULL.
    """
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t j0 = _first(G, part, parts), j1 = _first(G, part + 1, parts)
    cdef Py_ssize_t n0 = _first(N, part, parts), n1 = _first(N, part + 1, parts)
    cdef Py_ssize_t h0 = _first(H, part, parts), h1 = _first(H, part + 1, parts)
    # dW_ih^T = X^T dA,  dW_hh^T = H_prev^T dA, columns j0..j1   (I x N) (N x 4H), (P x N) (N x 4H)
    # db = the sums of dA's columns, on the way
    gemm_tn2(I, j1 - j0, N, x, I, gates + j0, G, 1 if accumulate else 0, w_t + j0, G,
             P, hidden_prev, P, w_t + I * G + j0, G, d_bias + j0)
    if finish:
        _add_transposed(j0, j1, I, w_t, G, d_w_ih)
        _add_transposed(j0, j1, P, w_t + I * G, G, d_w_hh)
    # dX += dA W_ih, rows n0..n1                                   (N x 4H) (4H x I)
    gemm_packed(n1 - n0, I, G, gates + n0 * G, G, w_ih_packed, 1, d_x + n0 * I, I)
    if r != NULL:
        # dW_hr += dH^T R, columns h0..h1                          (P x N) (N x H)
        gemm_tn2(P, h1 - h0, N, d_hidden_all, P, r + h0, H, 1, d_w_hr + h0, H, 0, NULL, 1, NULL, 1,
                 NULL)


cdef inline void _add_transposed(Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t n, const floating *src,
                                 Py_ssize_t ld_src, floating *dst) noexcept nogil:
    """dst[j, i] += src[i, j] for rows j0..j1 of dst (n columns); src has ld_src columns."""
    cdef Py_ssize_t i, j
    for j in range(j0, j1):
        for i in range(n):
            dst[j * n + i] += src[i * ld_src + j]


def backward_layer(x, w_ih, w_hh, w_hr, batch_sizes, offsets, d_out, Py_ssize_t out_col,
                   bint reverse, d_hidden, d_cell, gates, tanh_cell, cell_prev, hidden_prev, d_x,
                   d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_w_hr, int n_threads=0,
                   Workspace workspace=None, bint prepared=False, bint finish=True):
    """Backpropagate through one layer-direction after a training forward_layer.

    Arrays as in forward_layer (C-contiguous, x's dtype; batch_sizes and offsets intp).
    d_out (N x D*P): dL/doutput, columns out_col .. out_col + P - 1 are this direction's.
    d_hidden (B x P), d_cell (B x H): dL/dh_n, dL/dc_n in; dL/dh_0, dL/dc_0 out.
    gates, tanh_cell, cell_prev, hidden_prev: what forward_layer stored; gates and tanh_cell are
    overwritten (with dL/da and o tanh(c)), so a forward pass is backpropagated once.
    d_x (N x I), d_w_ih, d_w_hh, d_b_ih, d_b_hh (4H), d_w_hr: gradients, ADDED to; the bias and
    projection ones may be None (no bias, no projection; then w_hr is None too).
    n_threads: threads for this call; 0 chooses (see threads_for).
    workspace: where the call's buffers go, reused across calls (see Workspace); None: a new one.
    prepared: as in forward_layer (the runs of a backward call go back in time); such a call
    also adds to the transposed dW_ih, dW_hh that the earlier runs left in the workspace.
    finish: add those into d_w_ih, d_w_hh (False for every run of steps but the last: their
    weight gradients wait in the workspace for it).

    Every array and every value of batch_sizes and offsets is checked first, as forward_layer
    checks its own.
    """
    cdef str fn = "backward_layer"
    cdef int dt = _array_type(x, "backward_layer: x")
    cdef Py_ssize_t N = _dim(x, 0), I = _dim(x, 1), B = _dim(d_hidden, 0), P = _dim(d_hidden, 1)
    cdef Py_ssize_t H = _dim(d_cell, 1), G = 4 * H, T = _dim(batch_sizes, 0)
    cdef Py_ssize_t ld_out = _dim(d_out, 1)
    cdef void *args[19]
    # first the arrays whose shapes give the dimensions, then those checked against them
    args[0] = _data(x, fn, "x", dt, N, I, False, False)
    args[7] = _data(d_hidden, fn, "d_hidden", dt, B, P, False, True)
    args[8] = _data(d_cell, fn, "d_cell", dt, B, H, False, True)
    args[4] = _data(batch_sizes, fn, "batch_sizes", cnp.NPY_INTP, T, -1, False, False)
    args[6] = _data(d_out, fn, "d_out", dt, N, ld_out, False, False)
    args[1] = _data(w_ih, fn, "w_ih", dt, G, I, False, False)
    args[2] = _data(w_hh, fn, "w_hh", dt, G, P, False, False)
    args[3] = _data(w_hr, fn, "w_hr", dt, P, H, True, False)
    args[5] = _data(offsets, fn, "offsets", cnp.NPY_INTP, T, -1, False, False)
    args[9] = _data(gates, fn, "gates", dt, N, G, False, True)
    args[10] = _data(tanh_cell, fn, "tanh_cell", dt, N, H, False, True)
    args[11] = _data(cell_prev, fn, "cell_prev", dt, N, H, False, False)
    args[12] = _data(hidden_prev, fn, "hidden_prev", dt, N, P, False, False)
    args[13] = _data(d_x, fn, "d_x", dt, N, I, False, True)
    args[14] = _data(d_w_ih, fn, "d_w_ih", dt, G, I, False, True)
    args[15] = _data(d_w_hh, fn, "d_w_hh", dt, G, P, False, True)
    args[16] = _data(d_b_ih, fn, "d_b_ih", dt, G, -1, True, True)
    args[17] = _data(d_b_hh, fn, "d_b_hh", dt, G, -1, True, True)
    args[18] = _data(d_w_hr, fn, "d_w_hr", dt, P, H, w_hr is None, True)
    if w_hr is None and d_w_hr is not None:
        raise ValueError("backward_layer: d_w_hr goes with w_hr")
    _check_layout(fn, out_col, ld_out, N, I, H, P, w_hr is not None)
    _check_steps(fn, <const Py_ssize_t *> args[4], <const Py_ssize_t *> args[5], T, N, B)
    cdef void *weights[5]
    weights[0], weights[1], weights[2], weights[3], weights[4] = args[1], args[2], args[3], NULL, NULL
    cdef _Packed key = _packed_key(True, dt, weights, I, H, P)
    if workspace is None:
        workspace = Workspace()  # held until the call returns: the buffers live in it
    if dt == cnp.NPY_FLOAT32:
        _backward_layer(<float **> args, T, N, I, H, P, B, ld_out, out_col, reverse, n_threads,
                        workspace, &key, prepared, finish)
    else:
        _backward_layer(<double **> args, T, N, I, H, P, B, ld_out, out_col, reverse, n_threads,
                        workspace, &key, prepared, finish)


cdef void _backward_layer(floating **args, Py_ssize_t T, Py_ssize_t N, Py_ssize_t I,
                          Py_ssize_t H, Py_ssize_t P, Py_ssize_t B, Py_ssize_t ld_out,
                          Py_ssize_t out_col, bint reverse, int n_threads, Workspace ws,
                          const _Packed *key, bint prepared, bint finish) except *:
    """backward_layer on checked arrays: args are the data of its arrays, in its order; key says
    what the weights are (see Workspace)."""
    cdef Py_ssize_t G = 4 * H, j
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
    cdef bint project = w_hr != NULL, by_rows
    cdef int nt = n_threads if n_threads > 0 else threads_for(B, H, P)
    cdef lstm_team_barrier team
    cdef Py_ssize_t sizes[7]
    cdef floating *bufs[7]
    # The workspace: first what every run of steps of a layer call shares (the packed weights,
    # the transposed dW_ih and dW_hh), then the bias gradient and the projection's gradients.
    sizes[0] = packed_size(G, P, x)
    sizes[1] = packed_size(P, H, x) if project else 0
    sizes[2] = packed_size(G, I, x)
    sizes[3] = (I + P) * G
    sizes[4] = G
    sizes[5] = B * H if project else 0
    sizes[6] = N * P if project else 0
    _carve(ws, sizes, bufs, 7)
    cdef floating *w_hh_packed = bufs[0]
    cdef floating *w_hr_packed = bufs[1]
    cdef floating *w_ih_packed = bufs[2]
    cdef floating *w_t = bufs[3]
    cdef floating *d_bias = bufs[4]
    cdef floating *d_raw = bufs[5]
    cdef floating *d_hidden_all = bufs[6]
    cdef floating *r = tanh_cell if project else NULL
    cdef bint packed = ws.holds(key, prepared, "backward_layer")
    with nogil:
        if not packed:
            pack_into(False, G, P, w_hh, P, w_hh_packed)
            if project:
                pack_into(False, P, H, w_hr, H, w_hr_packed)
        if nt == 1:
            _backward_steps(0, 1, False, NULL, T, reverse, B, H, P, batch_sizes, offsets,
                            w_hh_packed, w_hr_packed, d_out, ld_out, d_hidden, d_cell, d_raw,
                            d_hidden_all, gates, tanh_cell, cell_prev)
        else:
            by_rows = _split_by_rows(B, I, H, P, project, nt, sizeof(floating),
                                     panel_width(x) != 0)
            team.arrived = team.generation = 0
            with parallel(num_threads=nt):
                _backward_steps(threadid(), lstm_team_size(), by_rows, &team, T, reverse, B, H,
                                P, batch_sizes, offsets, w_hh_packed, w_hr_packed, d_out, ld_out,
                                d_hidden, d_cell, d_raw, d_hidden_all, gates, tanh_cell,
                                cell_prev)

        # The weight gradients: one product each over all steps (W_ih packed just before).
        if not packed:
            pack_into(False, G, I, w_ih, I, w_ih_packed)
        if nt == 1:
            _backward_weights(0, 1, N, I, H, P, gates, x, hidden_prev, w_ih_packed, r,
                              d_hidden_all, d_x, d_w_ih, d_w_hh, d_w_hr, d_bias, w_t, packed,
                              finish)
        else:
            with parallel(num_threads=nt):
                _backward_weights(threadid(), lstm_team_size(), N, I, H, P, gates, x,
                                  hidden_prev, w_ih_packed, r, d_hidden_all, d_x, d_w_ih,
                                  d_w_hh, d_w_hr, d_bias, w_t, packed, finish)
        for j in range(G):
            if d_b_ih != NULL:
                d_b_ih[j] += d_bias[j]
            if d_b_hh != NULL:
                d_b_hh[j] += d_bias[j]


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
    if (a.shape[1] if trans_a else a.shape[0]) != m or (a.shape[0] if trans_a else a.shape[1]) != k \
            or b.shape[1] != n or m == 0 or n == 0 or k == 0:
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
