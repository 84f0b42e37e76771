"""The AMX kernels on a scalar emulation of the tile unit (amx_emulated.c), against the
AVX-512 kernels of the same numerics: their tile layouts, strides and edges are checked on every
CPU with AVX512-BF16 and VNNI, AMX or not (on AMX machines test_precision.py and
test_mixed_precision.py run them for real)."""
import os
import shutil
import subprocess
import sysconfig

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

#: Largest difference from the AVX-512 kernel, relative to its largest element: float32 sums in
#: another order (bf16), or the same int sums scaled alike, up to a fused multiply-add (int8).
TOLERANCES = {"bf16_products": 1e-5, "int8_products": 1e-6, "tn_products": 1e-5}


def _compiler():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("gcc")


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    if not os.path.isdir(SRC):
        pytest.skip("the sources are not here (an installed package)")
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler")
    exe = str(tmp_path_factory.mktemp("amx") / "amx_emulated")
    subprocess.run([cc, "-O2", "-I", SRC, os.path.join(HERE, "amx_emulated.c"), "-o", exe,
                    "-lm"], check=True, capture_output=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    if out.startswith("skip:"):
        pytest.skip(out.strip())
    return {name: (int(runs), float(err)) for name, runs, err in
            (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("kind", sorted(TOLERANCES))
def test_amx_kernel_matches_avx512_on_emulated_tiles(emulated, kind):
    runs, err = emulated[kind]
    assert runs >= 200 and err <= TOLERANCES[kind]
