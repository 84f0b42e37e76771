"""Build the Cython engine into the lstm_fast package.

Set LSTM_FAST_DEBUG=1 to compile with bounds and wraparound checks (for hunting a crash), and
LSTM_FAST_SANITIZE=address,undefined to build with those GCC sanitizers (run Python with
LD_PRELOAD=$(gcc -print-file-name=libasan.so) then; .ci/sanitizers does both).
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("LSTM_FAST_DEBUG", "0") not in ("", "0")
SANITIZE = os.environ.get("LSTM_FAST_SANITIZE", "")
SANITIZE_FLAGS = ([f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=all",
                   "-fno-omit-frame-pointer"] if SANITIZE else [])
# OpenMP threads the time loops; LSTM_FAST_OPENMP=0 builds without (one thread, plus BLAS's own).
OPENMP = os.environ.get("LSTM_FAST_OPENMP", "1") not in ("", "0")
OPENMP_FLAGS = ["-fopenmp"] if OPENMP else []

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
}

extensions = [
    Extension(
        "lstm_fast._lstm",
        ["src/_lstm.pyx"],
        include_dirs=["src", numpy.get_include()],
        depends=["src/lstm_bf16.h", "src/lstm_int8.h", "src/lstm_checks.h", "src/lstm_cpu.h",
                 "src/lstm_gemm.h", "src/lstm_kernels.h", "src/lstm_peak.h", "src/lstm_team.h", "src/cell_kernels.h", "src/_args.pxd",
                 "src/_blas.pxd", "src/_gates.pxd", "src/_loops.pxd", "src/_team.pxd"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=(["-O0", "-g"] if DEBUG else ["-O1", "-g"] if SANITIZE else ["-O3"])
        + OPENMP_FLAGS + SANITIZE_FLAGS,
        extra_link_args=OPENMP_FLAGS + SANITIZE_FLAGS,
    ),
]

setup(
    ext_modules=cythonize(extensions, include_path=["src"], compiler_directives=DIRECTIVES),
)
