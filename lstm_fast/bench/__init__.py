"""The benchmark harness of ``lstm-fast bench``: lstm_fast against PyTorch and NumPy."""

from .harness import (QUICK_SUITE, STANDARD_SUITE, SUITES, Case, blas_info, fma_peak, gemm_roof,
                      machine_info, run_benchmark)

__all__ = ["Case", "STANDARD_SUITE", "QUICK_SUITE", "SUITES", "run_benchmark", "gemm_roof",
           "fma_peak", "machine_info", "blas_info"]
