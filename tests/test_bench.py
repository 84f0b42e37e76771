"""The benchmark harness and the command line, on small sizes (no timing assertions)."""

import json
import os
import subprocess
import sys

import pytest
from threadpoolctl import threadpool_info

from lstm_fast import cli
from lstm_fast._lstm import build_info
from lstm_fast.bench.harness import (STANDARD_SUITE, Case, _interleaved_medians, fma_peak,
                              run_benchmark)


def test_standard_suite_is_the_baseline_grid():
    assert len(STANDARD_SUITE) == 12
    row4 = STANDARD_SUITE[3]
    assert (row4.batch, row4.seq_len, row4.input_size, row4.hidden_size) == (32, 100, 64, 256)
    assert STANDARD_SUITE[8].dtype == "float64" and STANDARD_SUITE[9].variable_lengths
    assert STANDARD_SUITE[10].proj_size == 128 and STANDARD_SUITE[6].bidirectional


def test_forward_flops():
    case = Case(2, 3, 4, 5)
    assert case.forward_flops() == 2 * 3 * 2 * 4 * 5 * (4 + 5)
    two = Case(2, 3, 4, 5, layers=2, bidirectional=True, proj_size=2)
    per_step = [2 * 4 * 5 * (4 + 2) + 2 * 5 * 2, 2 * 4 * 5 * (4 + 2) + 2 * 5 * 2]
    assert two.forward_flops() == 2 * 6 * sum(per_step)
    lengths = Case(8, 10, 4, 5, variable_lengths=True)
    assert lengths.forward_flops() == lengths.lengths().sum() * 2 * 4 * 5 * 9


def test_run_benchmark_reports_every_cell():
    cases = [Case(2, 5, 3, 4, label="a"), Case(1, 3, 2, 4, bidirectional=True, proj_size=2,
                                               variable_lengths=False, label="b")]
    seen = []
    results, roofs, peaks = run_benchmark(
        cases, ("infer", "train"), (1,), ("numpy",), repeat=2, pause=0, roof_size=64,
        peak_iters=10_000, progress=lambda done, total, name: seen.append((done, total)))
    assert len(results) == 4 and seen[-1] == (4, 4)
    assert set(roofs) == set(peaks) == {"float32 1 thr"} and roofs["float32 1 thr"] > 0
    for r in results:
        assert set(r["impls"]) == {"lstm_fast", "numpy"}
        ours = r["impls"]["lstm_fast"]
        assert ours["median_us"] > 0 and ours["gflops"] > 0 and ours["ratio"] == 1.0
        if peaks["float32 1 thr"]:
            assert ours["peak_fraction"] == pytest.approx(ours["gflops"] / peaks["float32 1 thr"])
        assert r["impls"]["numpy"]["ratio"] == pytest.approx(
            r["impls"]["numpy"]["median_us"] / ours["median_us"])


def test_implementations_are_timed_in_turn_for_every_round():
    log = []

    def impl(name):
        return lambda: log.append(name)

    medians = _interleaved_medians([impl("a"), impl("b")], repeat=5, rounds=3, pause=0)
    assert len(medians) == 2 and all(m > 0 for m in medians)
    # each is calibrated (warm-up calls) in turn, then every round times a and then b
    blocks = [name for i, name in enumerate(log) if i == 0 or log[i - 1] != name]
    assert blocks == ["a", "b"] * 4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fma_peak_is_a_plausible_rate(dtype):
    """The FMA chains report flops over time: over 1 GF/s where a packed kernel runs, and no more
    than two 512-bit FMA pipes at 6 GHz could give: a flop count off by a factor would show."""
    from lstm_fast._lstm import build_info

    peak = fma_peak(dtype, 1, iters=200_000)
    if build_info()["matmul_kernel"] == "blas":
        assert peak == 0.0
    else:
        assert 1 < peak < 6 * (64 if dtype == "float32" else 32)


def test_unknown_peer_is_refused():
    with pytest.raises(ValueError, match="unknown peer"):
        run_benchmark([Case(1, 2, 2, 2)], peers=("tensorflow",), pause=0, roof_size=32)


def test_cli_bench_writes_table_and_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lstm_fast.bench.harness.gemm_roof", lambda dtype, threads, size: 1.0)
    monkeypatch.setattr("lstm_fast.bench.harness.fma_peak", lambda dtype, threads, iters: 2.0)
    monkeypatch.setattr("lstm_fast.bench.harness._let_threads_idle", lambda pause: None)
    path = tmp_path / "out.json"
    code = cli.main(["bench", "--batch", "2", "--seq-len", "4", "--input-size", "3",
                     "--hidden-size", "5", "--lengths", "--dtype", "float64", "--threads", "1",
                     "--repeat", "2", "--compare", "numpy", "--stream-steps", "20", "--json",
                     str(path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "lstm_fast us" in out and "numpy/lf" in out and "B2 T4 I3 H5 lengths float64" in out
    assert "FMA peak" in out and "% peak" in out
    # a line for each BLAS and OpenMP library loaded, named as threadpoolctl finds it
    libraries = {os.path.basename(i["filepath"]) for i in threadpool_info()}
    lines = [line.strip() for line in out.splitlines() if line.startswith("  openblas: ") or
             line.startswith("  openmp: ")]
    assert lines and {line.split()[1] for line in lines} <= libraries
    assert not any("None" in line for line in lines)
    data = json.loads(path.read_text())
    assert data["results"][0]["mode"] == "infer" and data["results"][1]["mode"] == "train"
    assert data["machine"]["cores"] >= 1 and isinstance(data["blas"], list)
    assert "| stream (B=1, T=1 steps) | lstm_fast us/step |" in out
    assert [(s["hidden_size"], s["steps"]) for s in data["streams"]] == [(32, 20), (128, 20),
                                                                       (256, 20)]


def test_cli_bench_bfloat16_rows(tmp_path, capsys, monkeypatch):
    """--precision adds bfloat16 rows for each float32 case, inference and training, against
    ours in float32 (and torch in bfloat16 where installed), with the bf16 unit's peak."""
    monkeypatch.setattr("lstm_fast.bench.harness.gemm_roof", lambda dtype, threads, size: 1.0)
    monkeypatch.setattr("lstm_fast.bench.harness._let_threads_idle", lambda pause: None)
    path = tmp_path / "out.json"
    code = cli.main(["bench", "--batch", "3", "--seq-len", "4", "--input-size", "3",
                     "--hidden-size", "20", "--threads", "1", "--repeat", "2", "--compare", "",
                     "--precision", "float32,bfloat16", "--stream-steps", "0", "--json",
                     str(path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "B3 T4 I3 H20 bfloat16" in out and "float32/lf" in out and "bfloat16 1 thr" in out
    data = json.loads(path.read_text())
    rows = [(r["case"], r["mode"], sorted(r["impls"])) for r in data["results"]]
    assert rows == [("B3 T4 I3 H20", "infer", ["lstm_fast"]),
                    ("B3 T4 I3 H20", "train", ["lstm_fast"]),
                    ("B3 T4 I3 H20 bfloat16", "infer", ["float32", "lstm_fast"]),
                    ("B3 T4 I3 H20 bfloat16", "train", ["float32", "lstm_fast"])]
    peak = data["fma_peaks_gflops"]["bfloat16 1 thr"]
    assert (peak > 0) == (build_info()["bfloat16_kernel"] != "float32")


def test_cli_bench_int8_rows(capsys, monkeypatch):
    """int8 rows run against ours in float32 and in bfloat16, with the int8 unit's peak."""
    monkeypatch.setattr("lstm_fast.bench.harness._let_threads_idle", lambda pause: None)
    code = cli.main(["bench", "--batch", "9", "--seq-len", "3", "--input-size", "3",
                     "--hidden-size", "20", "--threads", "1", "--repeat", "2", "--compare",
                     "torch", "--precision", "int8", "--stream-steps", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "B9 T3 I3 H20 int8" in out and "float32/lf" in out and "bfloat16/lf" in out
    assert "torch us" not in out and "int8 1 thr" in out


def test_cli_bench_trains_torch_in_bfloat16(capsys, monkeypatch):
    """bf16 training rows time torch under autocast where its LSTM runs there, else torch's bf16
    module, and say which."""
    pytest.importorskip("torch")
    from lstm_fast.bench.harness import torch_autocast_runs

    monkeypatch.setattr("lstm_fast.bench.harness._let_threads_idle", lambda pause: None)
    code = cli.main(["bench", "--batch", "4", "--seq-len", "3", "--input-size", "3",
                     "--hidden-size", "16", "--threads", "1", "--repeat", "2", "--compare",
                     "torch", "--precision", "bfloat16", "--mode", "train",
                     "--stream-steps", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "B4 T3 I3 H16 bfloat16" in out and "torch/lf" in out and "float32/lf" in out
    assert ("torch.autocast('cpu', torch.bfloat16) for training" in out) == torch_autocast_runs()


@pytest.mark.parametrize("argv, message", [
    (["--precision", "int4"], "unknown precision 'int4'"),
    (["--threads", "0"], "expected positive integers"),
    (["--hidden-size", "4", "--proj-size", "4"], "--proj-size must be in"),
    (["--dtype", "float16"], "invalid choice: 'float16'"),
    (["--compare", "jax"], "unknown peer 'jax'; choose from numpy, torch"),
    (["--compare", "numpy,tensorflow"], "unknown peer 'tensorflow'"),
    (["--json", "/nonexistent-folder/out.json"], "cannot write '/nonexistent-folder/out.json'"),
    (["--suite", "huge"], "invalid choice: 'huge'"),
    (["--stream-steps", "-3"], "expected positive integers"),
])
def test_cli_rejects_bad_arguments_before_running(capsys, argv, message):
    """Argument errors are argparse's usage errors (exit status 2, no traceback), found before
    any case runs."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench"] + argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 or "must be" in str(exit_.value.code), err
    assert message in err + str(exit_.value.code) and "Traceback" not in err


def test_more_threads_than_cores_are_clamped_with_a_warning(capsys, monkeypatch):
    monkeypatch.setattr(cli, "affinity_cpus", lambda: 2)
    assert cli._thread_counts([64]) == [2]
    assert cli._thread_counts([1, 2, 64]) == [1, 2]
    assert cli._thread_counts(None) == [1, 2]
    err = capsys.readouterr().err
    assert err.count("64 threads asked for, 2 cores here") == 2


def test_info_and_module_entry_point(tmp_path):
    # From an empty folder, so that the installed package is the one imported.
    result = subprocess.run([sys.executable, "-m", "lstm_fast", "info"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lstm_fast" in result.stdout and "openmp=" in result.stdout
    assert "matmul kernel" in result.stdout
    assert "None" not in result.stdout  # (unknown versions and kernels are left out)


def test_bench_help_names_files_in_the_repository(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "BASELINE.md" not in out and "BENCHMARKS.md" in out
