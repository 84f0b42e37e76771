# BLAS shim: row-major GEMM over scipy's Fortran BLAS, written once for float and double.
#
# A row-major matrix handed to column-major BLAS is seen transposed, so the row-major product
# C = op(A) op(B) is computed as the column-major product C^T = op(B)^T op(A)^T: the operands swap.
# A single-row product (m == 1) goes to gemv: OpenBLAS gemm is slow with one row (BASELINE.md).

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating *a, int lda,
                      const floating *b, int ldb,
                      floating beta, floating *c, int ldc) noexcept nogil:
    """C (m x n) = alpha op(A) op(B) + beta C, row-major; op(A) is (m x k), op(B) is (k x n)."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m == 1:
        gemv_row(trans_a, trans_b, n, k, alpha, a, lda, b, ldb, beta, c)
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *> b, &ldb, <float *> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *> b, &ldb, <double *> a, &lda,
              &beta, c, &ldc)


cdef inline void gemv_row(bint trans_a, bint trans_b, int n, int k,
                          floating alpha, const floating *a, int lda,
                          const floating *b, int ldb,
                          floating beta, floating *c) noexcept nogil:
    """c (1 x n) = alpha a op(B) + beta c, row-major; a is a row of k (a column if trans_a)."""
    # Row-major B (k x n) is column-major B^T (n x k): c^T = B^T a^T is gemv 'N' on it.
    # Row-major B (n x k) (trans_b) is column-major B^T (k x n): c^T = B a^T is gemv 'T' on it.
    cdef char tb = b'T' if trans_b else b'N'
    cdef int rows = k if trans_b else n
    cdef int cols = n if trans_b else k
    cdef int inc_a = lda if trans_a else 1
    cdef int inc_c = 1
    if floating is float:
        sgemv(&tb, &rows, &cols, &alpha, <float *> b, &ldb, <float *> a, &inc_a, &beta, c, &inc_c)
    else:
        dgemv(&tb, &rows, &cols, &alpha, <double *> b, &ldb, <double *> a, &inc_a, &beta, c, &inc_c)


# Packed products (lstm_gemm.h): the per-step recurrent and projection products reuse the same
# weights at every step, so the weights are packed once per call and each step streams them; the
# weight gradients use the same tiles (gemm_tn2: A^T B, nothing packed), so the engine's threads do
# all its products.


cdef extern from "lstm_gemm.h" nogil:
    Py_ssize_t lstm_packed_size_f(Py_ssize_t K, Py_ssize_t N)
    Py_ssize_t lstm_packed_size_d(Py_ssize_t K, Py_ssize_t N)
    void lstm_pack_f(int trans, Py_ssize_t K, Py_ssize_t N, const float *B, Py_ssize_t ldb,
                     float *packed)
    void lstm_pack_d(int trans, Py_ssize_t K, Py_ssize_t N, const double *B, Py_ssize_t ldb,
                     double *packed)
    void lstm_gemm_packed_f(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                            Py_ssize_t lda, const float *packed, float beta, float *C,
                            Py_ssize_t ldc)
    void lstm_gemm_packed_d(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const double *A,
                            Py_ssize_t lda, const double *packed, double beta, double *C,
                            Py_ssize_t ldc)
    void lstm_gemm_packed2_f(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                             Py_ssize_t lda, const float *packed, Py_ssize_t K2, const float *A2,
                             Py_ssize_t lda2, const float *packed2, float beta, float *C,
                             Py_ssize_t ldc)
    void lstm_gemm_packed2_d(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const double *A,
                             Py_ssize_t lda, const double *packed, Py_ssize_t K2,
                             const double *A2, Py_ssize_t lda2, const double *packed2,
                             double beta, double *C, Py_ssize_t ldc)
    void lstm_gemm_tn2_f(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A, Py_ssize_t lda,
                         const float *B, Py_ssize_t ldb, float beta, float *C, Py_ssize_t ldc,
                         Py_ssize_t M2, const float *A2, Py_ssize_t lda2, float *C2,
                         Py_ssize_t ldc2, float *colsum)
    void lstm_gemm_tn2_d(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const double *A,
                         Py_ssize_t lda, const double *B, Py_ssize_t ldb, double beta, double *C,
                         Py_ssize_t ldc, Py_ssize_t M2, const double *A2, Py_ssize_t lda2,
                         double *C2, Py_ssize_t ldc2, double *colsum)
    Py_ssize_t lstm_panel_width_f()
    Py_ssize_t lstm_panel_width_d()
    int lstm_packed_vector_bytes()
    void *lstm_aligned_alloc(size_t bytes)


cdef inline const char *packed_kernel() noexcept nogil:
    """Which products run the packed kernel here: AVX-512, AVX2+FMA, or none (BLAS)."""
    cdef int bytes = lstm_packed_vector_bytes()
    return b"avx512" if bytes == 64 else b"avx2" if bytes == 32 else b"blas"


cdef inline Py_ssize_t packed_size(int k, int n, const floating *like) noexcept nogil:
    """Elements of op(B) (k x n) packed for gemm_packed (`like` gives only the dtype)."""
    if floating is float:
        return lstm_packed_size_f(k, n)
    else:
        return lstm_packed_size_d(k, n)


cdef inline void pack_into(bint trans_b, int k, int n, const floating *b, int ldb,
                           floating *packed) noexcept nogil:
    """packed (packed_size(k, n) elements) <- op(B) (k x n) packed for gemm_packed. Where no
    packed kernel runs on this CPU, the "packed" form is op(B) row-major, for BLAS."""
    if floating is float:
        lstm_pack_f(trans_b, k, n, b, ldb, packed)
    else:
        lstm_pack_d(trans_b, k, n, b, ldb, packed)


cdef inline Py_ssize_t panel_width(const floating *like) noexcept nogil:
    """Columns per packed panel for the dtype of `like` (only its type matters); 0 with BLAS."""
    if floating is float:
        return lstm_panel_width_f()
    else:
        return lstm_panel_width_d()


cdef inline bint part_columns(Py_ssize_t n, Py_ssize_t width, int part, int parts,
                              Py_ssize_t *c0, Py_ssize_t *c1) noexcept nogil:
    """Columns [c0, c1) of n that part `part` of `parts` takes, in whole panels of `width`;
    False if it takes none."""
    cdef Py_ssize_t per = ((n + width - 1) // width + parts - 1) // parts * width
    c0[0] = part * per
    c1[0] = min(n, c0[0] + per)
    return c0[0] < c1[0]


cdef inline void gemm_packed(int m, int n, int k, const floating *a, int lda,
                             const floating *packed, floating beta, floating *c, int ldc,
                             int part=0, int parts=1) noexcept nogil:
    """Columns of part `part` of `parts` of C (m x n) = A op(B) + beta C, row-major, op(B) packed
    by pack_into(). The packed kernel splits C between parts by whole panels; BLAS (where no packed
    kernel runs) computes all of C in part 0.  parts=1 (the default) is the whole product.
    """
    cdef Py_ssize_t width = panel_width(a), c0, c1
    if width == 0:
        if part == 0:
            gemm(False, False, m, n, k, 1, a, lda, packed, n, beta, c, ldc)
    elif part_columns(n, width, part, parts, &c0, &c1):
        if floating is float:
            lstm_gemm_packed_f(m, c1 - c0, k, a, lda, packed + c0 * k, beta, c + c0, ldc)
        else:
            lstm_gemm_packed_d(m, c1 - c0, k, a, lda, packed + c0 * k, beta, c + c0, ldc)


cdef inline void gemm_packed2(int m, int n, int k, const floating *a, int lda,
                              const floating *packed, int k2, const floating *a2, int lda2,
                              const floating *packed2, floating beta, floating *c, int ldc,
                              int part=0, int parts=1) noexcept nogil:
    """Columns of part `part` of `parts` of C (m x n) = A op(B) + A2 op(B2) + beta C, both op(B)
    packed by pack_into(): two products summed in one pass over C (each tile of C stored once)."""
    cdef Py_ssize_t width = panel_width(a), c0, c1
    if width == 0:
        if part == 0:
            gemm(False, False, m, n, k, 1, a, lda, packed, n, beta, c, ldc)
            gemm(False, False, m, n, k2, 1, a2, lda2, packed2, n, 1, c, ldc)
    elif part_columns(n, width, part, parts, &c0, &c1):
        if floating is float:
            lstm_gemm_packed2_f(m, c1 - c0, k, a, lda, packed + c0 * k, k2, a2, lda2,
                                packed2 + c0 * k2, beta, c + c0, ldc)
        else:
            lstm_gemm_packed2_d(m, c1 - c0, k, a, lda, packed + c0 * k, k2, a2, lda2,
                                packed2 + c0 * k2, beta, c + c0, ldc)


cdef inline void gemm_tn2(int m, int n, int k, const floating *a, int lda, const floating *b,
                          int ldb, floating beta, floating *c, int ldc, int m2,
                          const floating *a2, int lda2, floating *c2, int ldc2,
                          floating *colsum) noexcept nogil:
    """C (m x n) = A^T B + beta C and C2 (m2 x n) = A2^T B + beta C2, row-major, A (k x m), A2
    (k x m2), B (k x n), none packed (m2 = 0: no second product): two products with the same B,
    which the packed kernel reads once for both; colsum (n) = the sums of B's columns, unless NULL.
    """
    cdef Py_ssize_t i, j
    if n == 0:
        return
    if panel_width(a) == 0:
        gemm(True, False, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
        if m2 > 0:
            gemm(True, False, m2, n, k, 1, a2, lda2, b, ldb, beta, c2, ldc2)
        if colsum != NULL:
            for j in range(n):
                colsum[j] = 0
            for i in range(k):
                for j in range(n):
                    colsum[j] += b[i * ldb + j]
    elif floating is float:
        lstm_gemm_tn2_f(m, n, k, a, lda, b, ldb, beta, c, ldc, m2, a2, lda2, c2, ldc2, colsum)
    else:
        lstm_gemm_tn2_d(m, n, k, a, lda, b, ldb, beta, c, ldc, m2, a2, lda2, c2, ldc2, colsum)


# bfloat16 products (lstm_bf16.h), for reduced-precision inference: float32 activations rounded
# to bf16 as they are read, weights rounded once when packed, float32 sums; on the AMX tiles, on
# vdpbf16ps, or on the float32 products of the rounded values (its routes).

from libc.stdint cimport uint16_t

cdef extern from "lstm_bf16.h" nogil:
    Py_ssize_t lstm_bf16_packed_size(Py_ssize_t K, Py_ssize_t N)
    Py_ssize_t lstm_bf16_buffer_size(Py_ssize_t K1, Py_ssize_t K2)
    Py_ssize_t lstm_bf16_depth(Py_ssize_t K)
    void lstm_pack_bf16(int trans, Py_ssize_t K, Py_ssize_t N, const float *B, Py_ssize_t ldb,
                        uint16_t *packed)
    void lstm_gemm_bf16(int route, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K1, const float *A1,
                        Py_ssize_t lda1, const uint16_t *B1, Py_ssize_t K2, const float *A2,
                        Py_ssize_t lda2, const uint16_t *B2, float beta, float *C,
                        Py_ssize_t ldc, uint16_t *buf)
    void lstm_bf16_round(Py_ssize_t n, float *a)
    void lstm_bf16_round_rows(Py_ssize_t m0, Py_ssize_t rows, Py_ssize_t K1, const float *A1,
                              Py_ssize_t lda1, Py_ssize_t K2, const float *A2, Py_ssize_t lda2,
                              float *buf)
    Py_ssize_t lstm_bf16_tn_buffer_bytes(Py_ssize_t M, Py_ssize_t M2)
    void lstm_bf16_gemm_tn(int route, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                           Py_ssize_t lda, const float *B, Py_ssize_t ldb, float beta, float *C,
                           Py_ssize_t ldc, Py_ssize_t M2, const float *A2, Py_ssize_t lda2,
                           float *C2, Py_ssize_t ldc2, float *colsum, void *buf)
    int lstm_bf16_unit(int *forced)
    int lstm_bf16_route(Py_ssize_t batch)
    const char *lstm_bf16_unit_name(int unit)
    int LSTM_BF16_NB, LSTM_BF16_MB, LSTM_BF16_FLOAT32, LSTM_BF16_AVX512, LSTM_BF16_AMX


cdef extern from "lstm_int8.h" nogil:
    Py_ssize_t lstm_i8_scales(Py_ssize_t N)
    Py_ssize_t lstm_i8_depth(Py_ssize_t K)
    Py_ssize_t lstm_i8_packed_bytes(Py_ssize_t K, Py_ssize_t N)
    void lstm_pack_i8(int trans, Py_ssize_t K, Py_ssize_t N, const float *B, Py_ssize_t ldb,
                      void *packed)
    void lstm_pack_i8_float(int trans, Py_ssize_t K, Py_ssize_t N, const float *B,
                            Py_ssize_t ldb, void *packed)
    void lstm_i8_rows_float(Py_ssize_t rows, Py_ssize_t K, const float *A, Py_ssize_t lda,
                            float *q, float *scales)
    void lstm_i8_dequantize(Py_ssize_t rows, Py_ssize_t N, const float *acc, Py_ssize_t ld_acc,
                            const float *row, const float *col, float beta, float *C,
                            Py_ssize_t ldc)
    void lstm_gemm_i8(int route, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                      Py_ssize_t lda, const void *packed, Py_ssize_t N_all, Py_ssize_t c0,
                      float beta, float *C, Py_ssize_t ldc, void *buf)
    int lstm_i8_unit(int *forced)
    int lstm_i8_route(Py_ssize_t batch)
    int lstm_i8_runs(int route)
    const char *lstm_i8_unit_name(int unit)
    int LSTM_I8_MB, LSTM_I8_FLOAT32, LSTM_I8_VNNI, LSTM_I8_AMX, LSTM_I8_AVX_VNNI


#: How the products of a call multiply: in the arrays' dtype, or (float32 arrays) in bfloat16 on
#: one of lstm_bf16.h's routes (LSTM_BF16_*), or in int8 on one of lstm_int8.h's (LSTM_I8_*).
cdef enum Precision:
    NATIVE = 0
    BFLOAT16 = 1
    INT8 = 2


cdef struct Products:
    # How a time loop's products run: natively (route 0) or on a bf16 route, with the packed
    # weights (of the dtype, or bf16), and for bf16 the row buffers, buf_size bytes a thread.
    int route
    const void *w_ih
    const void *w_hh
    const void *w_hr
    char *buf
    Py_ssize_t buf_size


cdef inline bint _packs_i8(int route) noexcept nogil:
    """Whether `route` multiplies lstm_pack_i8's packed form (the int8 units: AMX, VNNI)."""
    return route == LSTM_I8_VNNI or route == LSTM_I8_AMX or route == LSTM_I8_AVX_VNNI


cdef inline Py_ssize_t buffer_bytes(int route, Py_ssize_t k1, Py_ssize_t k2,
                                    Py_ssize_t n) noexcept nogil:
    """Bytes of a thread's row buffer for products (depths k1 + k2, at most n columns) on a
    reduced-precision route (0 natively)."""
    if route == LSTM_BF16_FLOAT32:
        return LSTM_BF16_MB * (k1 + k2) * sizeof(float)
    if route == LSTM_BF16_AVX512 or route == LSTM_BF16_AMX:
        return lstm_bf16_buffer_size(k1, k2) * sizeof(uint16_t)
    if route == LSTM_I8_FLOAT32:  # row scales, quantised rows, the int sums of a row block
        return LSTM_I8_MB * (1 + max(k1, k2) + n) * sizeof(float)
    if _packs_i8(route):
        return LSTM_I8_MB * (sizeof(float) + lstm_i8_depth(max(k1, k2)))
    return 0


cdef inline Py_ssize_t prepared_size(int route, int k, int n, const floating *like) noexcept nogil:
    """Elements of `like`'s dtype that op(B) (k x n) takes packed for `route`."""
    if route == LSTM_BF16_AVX512 or route == LSTM_BF16_AMX:
        return (lstm_bf16_packed_size(k, n) * 2 + sizeof(floating) - 1) // sizeof(floating)
    if _packs_i8(route):
        return (lstm_i8_packed_bytes(k, n) + sizeof(floating) - 1) // sizeof(floating)
    if route == LSTM_I8_FLOAT32:
        return lstm_i8_scales(n) + packed_size(k, n, like)
    return packed_size(k, n, like)


cdef inline void prepare_into(int route, bint trans_b, int k, int n, const floating *b,
                              int ldb, void *packed) noexcept nogil:
    """packed <- op(B) (k x n) packed for `route`'s products (see product)."""
    if floating is float:
        if route == LSTM_BF16_AVX512 or route == LSTM_BF16_AMX:
            lstm_pack_bf16(trans_b, k, n, b, ldb, <uint16_t *> packed)
            return
        if _packs_i8(route):
            lstm_pack_i8(trans_b, k, n, b, ldb, packed)
            return
        if route == LSTM_I8_FLOAT32:  # the scales, then the quantised op(B) packed as floats
            lstm_pack_i8_float(trans_b, k, n, b, ldb, packed)
            return
    pack_into(trans_b, k, n, b, ldb, <floating *> packed)
    if floating is float:
        if route == LSTM_BF16_FLOAT32:
            lstm_bf16_round(packed_size(k, n, b), <float *> packed)


cdef inline void product(const Products *p, int m, int n, int k, const floating *a, int lda,
                         const void *packed, int k2, const floating *a2, int lda2,
                         const void *packed2, floating beta, floating *c, int ldc, int part,
                         int parts) noexcept nogil:
    """Columns of part `part` of `parts` of C (m x n) = A op(B) [+ A2 op(B2) if k2 > 0] + beta C
    (beta 0 or 1), op(B) prepared by prepare_into for p's route; p.buf is this thread's."""
    cdef Py_ssize_t c0, c1, m0, rows
    cdef float *rounded
    if p.route == NATIVE:
        _packed_product(m, n, k, a, lda, <const floating *> packed, k2, a2, lda2,
                        <const floating *> packed2, beta, c, ldc, part, parts)
    elif floating is float:
        if p.route == LSTM_I8_FLOAT32 or _packs_i8(p.route):
            # each segment alone: its rows have scales of their own
            _int8_product(p, m, n, k, a, lda, packed, beta, c, ldc, part, parts)
            if k2 > 0:
                _int8_product(p, m, n, k2, a2, lda2, packed2, 1, c, ldc, part, parts)
        elif p.route == LSTM_BF16_FLOAT32:
            # the float32 products of the rounded rows, MB at a time    (rows x k) (k x n) ...
            rounded = <float *> p.buf
            m0 = 0
            while m0 < m:
                rows = min(LSTM_BF16_MB, m - m0)
                lstm_bf16_round_rows(m0, rows, k, a, lda, k2, a2, lda2, rounded)
                _packed_product(rows, n, k, rounded, k + k2, <const float *> packed, k2,
                                rounded + k, k + k2, <const float *> packed2, beta,
                                c + m0 * ldc, ldc, part, parts)
                m0 += rows
        elif part_columns(n, 2 * LSTM_BF16_NB, part, parts, &c0, &c1):
            # parts take whole blocks of two panels (the kernels' widest)
            lstm_gemm_bf16(p.route, m, c1 - c0, k, a, lda,
                           <const uint16_t *> packed + c0 * lstm_bf16_depth(k), k2, a2, lda2,
                           <const uint16_t *> packed2 + c0 * lstm_bf16_depth(k2) if k2 > 0
                           else NULL, beta, c + c0, ldc, <uint16_t *> p.buf)


cdef inline void tn_product(const Products *p, int m, int n, int k, const floating *a, int lda,
                            const floating *b, int ldb, floating beta, floating *c, int ldc,
                            int m2, const floating *a2, int lda2, floating *c2, int ldc2,
                            floating *colsum) noexcept nogil:
    """gemm_tn2 (the weight gradients' products) on p's route: on AVX512-BF16 and AMX their
    kernels, rounding the operands to bf16 as they read them (p.buf, this thread's, at least
    lstm_bf16_tn_buffer_bytes(m, m2)); else gemm_tn2 (on a bf16 route, of operands rounded
    beforehand)."""
    if floating is float:
        if p.route == LSTM_BF16_AVX512 or p.route == LSTM_BF16_AMX:
            lstm_bf16_gemm_tn(p.route, m, n, k, a, lda, b, ldb, beta, c, ldc, m2, a2, lda2, c2,
                              ldc2, colsum, p.buf)
            return
    gemm_tn2(m, n, k, a, lda, b, ldb, beta, c, ldc, m2, a2, lda2, c2, ldc2, colsum)


cdef inline void _packed_product(int m, int n, int k, const floating *a, int lda,
                                 const floating *packed, int k2, const floating *a2, int lda2,
                                 const floating *packed2, floating beta, floating *c, int ldc,
                                 int part, int parts) noexcept nogil:
    """gemm_packed2 if k2 > 0, else gemm_packed."""
    if k2 > 0:
        gemm_packed2(m, n, k, a, lda, packed, k2, a2, lda2, packed2, beta, c, ldc, part, parts)
    else:
        gemm_packed(m, n, k, a, lda, packed, beta, c, ldc, part, parts)


cdef inline void _int8_product(const Products *p, int m, int n, int k, const float *a, int lda,
                               const void *packed, float beta, float *c, int ldc, int part,
                               int parts) noexcept nogil:
    """Columns of part `part` of `parts` of C (m x n) = beta C + diag(a_r) Q(A) Q(B) diag(w_j)
    (lstm_int8.h), op(B) prepared for p's int8 route."""
    cdef Py_ssize_t c0, c1, m0 = 0, rows, width = panel_width(a)
    cdef const float *col = <const float *> packed
    cdef float *row_scale = <float *> p.buf
    cdef float *q = row_scale + LSTM_I8_MB
    cdef float *acc = q + LSTM_I8_MB * k
    if _packs_i8(p.route):
        if part_columns(n, 32, part, parts, &c0, &c1):  # whole blocks of two panels
            lstm_gemm_i8(p.route, m, c1 - c0, k, a, lda, packed, n, c0, beta, c + c0, ldc,
                         p.buf)
        return
    if width == 0:  # BLAS: part 0 takes every column
        c0, c1 = 0, n if part == 0 else 0
    elif not part_columns(n, width, part, parts, &c0, &c1):
        return
    while m0 < m and c0 < c1:
        rows = min(LSTM_I8_MB, m - m0)
        lstm_i8_rows_float(rows, k, a + m0 * lda, lda, q, row_scale)
        # the exact int sums as floats, this part's columns   (rows x k) (k x (c1 - c0))
        gemm_packed(rows, c1 - c0, k, q, k, col + lstm_i8_scales(n) + c0 * k, 0, acc, c1 - c0)
        lstm_i8_dequantize(rows, c1 - c0, acc, c1 - c0, row_scale, col + c0, beta,
                           c + m0 * ldc + c0, ldc)
        m0 += rows
