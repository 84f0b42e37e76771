# How the threads of one engine call share a layer-direction's time loop: by rows (each its own
# sequences, no barrier) or by columns (each product split in column panels, each element-wise
# pass by rows, a barrier after each), and where each part's rows and columns are.

cdef extern from "lstm_team.h" nogil:
    int lstm_max_threads() noexcept
    int lstm_team_size() noexcept
    ctypedef struct lstm_team_barrier:
        int arrived, generation
    void lstm_barrier(lstm_team_barrier *team, int parts) noexcept
    int lstm_split_override() noexcept


cdef extern from "lstm_cpu.h" nogil:
    long lstm_l2_bytes() noexcept


# How threads share a time loop (see _forward_steps): by rows, each thread runs its own
# sequences with no barrier at all, but multiplies them by all of the weights, which must then
# stay in its core's L2 from step to step (with room for the rows: up to half of it); by columns,
# each reads half of the weights, but the threads meet two or three times a step.  Measured at 2
# threads on a 1 MiB L2: rows were as fast or faster from 4 sequences a thread up (rows 3 and 8 of
# the grid: 1.1-1.7x), columns with 2 a thread (batch 4: 0.9x).  With weights beyond L2 (1.3 MiB,
# row 4), rows streamed them from the shared L3: as fast as columns in some processes, 1.6x
# slower in others (12 or 20 ms, inference).
cdef enum:
    ROWS_MIN_BATCH = 4


cdef inline bint _split_by_rows(Py_ssize_t B, Py_ssize_t I, Py_ssize_t G, Py_ssize_t H,
                                Py_ssize_t P, bint project, int threads, Py_ssize_t itemsize,
                                bint packed) noexcept nogil:
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
            and ((I + P) * G + (H * P if project else 0)) * itemsize
            <= lstm_l2_bytes() // 2)


cdef inline Py_ssize_t _first(Py_ssize_t n, int part, int parts) noexcept nogil:
    """First of the n items (rows) that part `part` of `parts` takes; it ends at part + 1's."""
    return n * part // parts


cdef inline Py_ssize_t _row_bound(int part, int parts, Py_ssize_t B, Py_ssize_t T,
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
