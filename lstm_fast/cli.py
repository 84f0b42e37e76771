"""The ``lstm-fast`` command line: ``bench``, ``demo`` and ``info``."""

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

from . import __version__
from .bench import SUITES, Case, blas_info, machine_info, run_benchmark
from ._threads import affinity_cpus
from .bench.harness import torch_autocast_runs
from .bench.stream import format_stream, stream_latency


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _positive_int(text):
    return _int_list(text)[0]


def _steps(text):
    """A count of steps, 0 or more."""
    return 0 if text.strip() == "0" else _positive_int(text)


PEERS = ("numpy", "torch")
PRECISIONS = ("float32", "bfloat16", "int8")


def _precisions(text):
    names = [p for p in text.split(",") if p]
    unknown = [p for p in names if p not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown precision {', '.join(map(repr, unknown))}; "
                                         f"choose from {', '.join(PRECISIONS)}")
    return names


def _peers(text):
    names = [p for p in text.split(",") if p]
    unknown = [p for p in names if p not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer {', '.join(map(repr, unknown))}; choose "
                                         f"from {', '.join(PEERS)} ('' for none)")
    return names


def _writable(path):
    """``path`` if a file can be written there (checked now, not after a long run)."""
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {path!r}: {exc.strerror}")
    if not existed:
        os.unlink(path)
    return path


def _build_parser():
    parser = argparse.ArgumentParser(prog="lstm-fast", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lstm_fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="time lstm_fast against PyTorch and NumPy")
    bench.add_argument("--suite", choices=sorted(SUITES),
                       help="run a grid of cases (standard: the 12 rows tabled in "
                            "BENCHMARKS.md; quick: 3 small ones)")
    bench.add_argument("--batch", type=_positive_int, default=32)
    bench.add_argument("--seq-len", type=_positive_int, default=100)
    bench.add_argument("--input-size", type=_positive_int, default=64)
    bench.add_argument("--hidden-size", type=_positive_int, default=256)
    bench.add_argument("--layers", type=_positive_int, default=1)
    bench.add_argument("--bidirectional", action="store_true")
    bench.add_argument("--proj-size", type=int, default=0)
    bench.add_argument("--lengths", action="store_true",
                       help="variable lengths, uniform in [T/10, T] (torch: packed sequences)")
    bench.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    bench.add_argument("--mode", choices=["infer", "train", "both"], default="both")
    bench.add_argument("--precision", type=_precisions, default=["float32"],
                       help="precisions of the products, comma-separated, among "
                            f"{','.join(PRECISIONS)} (bfloat16, int8: the float32 cases; "
                            "bfloat16, inference and training, against torch in bfloat16 and "
                            "ours in float32; int8, inference, against ours in float32 and "
                            "bfloat16)")
    bench.add_argument("--threads", type=_int_list, default=None,
                       help="thread counts, comma-separated (default: 1 and all cores; more "
                            "than the cores are clamped to them)")
    bench.add_argument("--repeat", type=_positive_int, default=15,
                       help="timed samples per implementation (the median is kept)")
    bench.add_argument("--compare", type=_peers, default=list(PEERS),
                       help="peers, comma-separated, among numpy,torch ('' for none; those "
                            "not installed are left out)")
    bench.add_argument("--stream-steps", type=_steps, default=10_000, metavar="N",
                       help="steps of the streaming latency loops (B=1, T=1; 0: skip them)")
    bench.add_argument("--json", metavar="PATH", type=_writable,
                       help="also write the results as JSON")

    sub.add_parser("info", help="version, build flags, BLAS and threads")

    demo = sub.add_parser("demo", help="LSTM vs GRU vs plain RNN on long-lag tasks")
    demo.add_argument("--quick", action="store_true", help="two short lengths, under a minute")
    demo.add_argument("--out", default="lstm-fast-demo", metavar="DIR",
                      help="folder for the figures (default: ./lstm-fast-demo)")
    demo.add_argument("--json", type=_writable, metavar="PATH", help="also write the results")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _cases(args):
    """The cases asked for, each at every precision that applies to it ("float32": the cases in
    their own dtype; bfloat16: the float32 cases)."""
    if args.suite:
        cases = SUITES[args.suite]
    elif not 0 <= args.proj_size < args.hidden_size:
        raise SystemExit("lstm-fast bench: --proj-size must be in [0, hidden-size)")
    else:
        cases = [Case(args.batch, args.seq_len, args.input_size, args.hidden_size, args.layers,
                      args.bidirectional, args.proj_size, args.dtype, args.lengths, label="-")]
    reduced = [p for p in args.precision if p != "float32"]
    every = [c for c in cases if "float32" in args.precision]
    every += [dataclasses.replace(c, precision=p) for p in reduced for c in cases
              if c.dtype == "float32"]
    if not every:
        raise SystemExit("lstm-fast bench: no case runs at the precisions asked for")
    return every


def _progress_bar(stream):
    if not stream.isatty():
        return None

    def show(done, total, name):
        width = 30
        filled = int(width * done / total)
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<40}")
        if done == total:
            stream.write("\r" + " " * (width + 50) + "\r")
        stream.flush()
    return show


def format_table(results, peers):
    """The results as a text table: median us, GF/s and peer/lstm_fast ratios."""
    head = ["#", "case", "mode", "thr", "lstm_fast us", "GF/s", "% roof", "% peak"]
    for p in peers:
        head += [f"{p} us", f"{p}/lf"]
    rows = [head]
    for r in results:
        ours = r["impls"]["lstm_fast"]
        row = [r["label"], r["case"], r["mode"], str(r["threads"]), f"{ours['median_us']:.1f}",
               f"{ours['gflops']:.1f}", _percent(ours["roof_fraction"]),
               _percent(ours["peak_fraction"])]
        for p in peers:
            if p in r["impls"]:
                row += [f"{r['impls'][p]['median_us']:.1f}", f"{r['impls'][p]['ratio']:.2f}"]
            else:
                row += ["-", "-"]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _percent(fraction):
    return "-" if fraction is None else f"{100 * fraction:.0f}"


def _describe_environment(out):
    m = machine_info()
    out.write(f"lstm_fast {__version__} | {m['cpu']} | {m['cores']} cores | "
              f"{m['memory_gib']} GiB | Python {m['python']} | NumPy {m['numpy']}\n")
    for lib in blas_info():
        known = [f"{lib['api']}: {lib['library']}"] + [str(lib["version"])] * bool(
            lib["version"]) + [f"kernel={lib['kernel']}"] * bool(lib["kernel"])
        out.write(f"  {' '.join(known)} threads={lib['threads']}\n")
    forced = {k: v for k, v in m["env"].items() if v is not None}
    if forced:
        out.write(f"  warning: {forced} is set, forcing slower OpenBLAS kernels; unset both for "
                  "the benchmark command: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                  "lstm-fast ...\n")


def bench(args, out=None):
    """Run ``lstm-fast bench`` with parsed ``args``; print to ``out`` (default: standard output)."""
    out = out or sys.stdout
    cases = _cases(args)
    peers = args.compare
    modes = ["infer", "train"] if args.mode == "both" else [args.mode]
    threads = _thread_counts(args.threads)
    _describe_environment(out)
    try:
        import torch
        out.write(f"  torch {torch.__version__}\n")
    except ImportError:
        pass
    results, roofs, peaks = run_benchmark(cases, modes, threads, peers, args.repeat,
                                          progress=_progress_bar(sys.stderr))
    shown = [p for p in [*peers, "float32", "bfloat16"] if any(p in r["impls"] for r in results)]
    if any(roofs.values()):
        out.write("GEMM roof (scipy BLAS, 2048^3): " +
                  ", ".join(f"{k}: {v:.0f} GF/s" for k, v in roofs.items() if v) + "\n")
    out.write("FMA peak (vector FMA chains, no memory; bfloat16, int8: their unit's own chains): " +
              ", ".join(f"{k}: {v:.0f} GF/s" for k, v in peaks.items()) + "\n")
    out.write(format_table(results, shown) + "\n")
    out.write(f"median of {args.repeat} samples per cell; ratio = peer time / lstm_fast time "
              "(> 1: lstm_fast faster)\n")
    if any(c.precision for c in cases):
        training = ("torch.autocast('cpu', torch.bfloat16)" if "torch" not in shown
                    or torch_autocast_runs() else "nn.LSTM.to(torch.bfloat16), trained (autocast's "
                    "LSTM does not run on this CPU)")
        out.write("reduced-precision rows: torch = nn.LSTM.to(torch.bfloat16) for inference, "
                  f"{training} for training; float32 and bfloat16 = lstm_fast in those; their "
                  "peak is their unit's (tile or dot-product chains)\n")
    streams = []
    if args.stream_steps:
        streams = stream_latency(steps=args.stream_steps, torch="torch" in peers)
        out.write(format_stream(streams) + "\n")
        out.write("streaming: median of 3 loops each, one thread, the state carried from step "
                  "to step\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(version=__version__, machine=machine_info(), blas=blas_info(),
                           roofs_gflops=roofs, fma_peaks_gflops=peaks, repeat=args.repeat,
                           results=results, streams=streams), f, indent=1)
    return 0


def _thread_counts(asked):
    """The thread counts to measure: ``asked`` (default 1 and all cores), each at most the cores
    (a warning for those clamped: more threads than cores would only queue)."""
    cores = affinity_cpus()
    if not asked:
        return sorted({1, cores})
    if max(asked) > cores:
        print(f"lstm-fast bench: warning: {max(asked)} threads asked for, {cores} cores here: "
              f"measuring at most {cores}", file=sys.stderr)
    return sorted({min(n, cores) for n in asked})


def info(out=None):
    """Print ``lstm-fast info`` to ``out`` (default: standard output)."""
    from ._lstm import build_info

    out = out or sys.stdout
    _describe_environment(out)
    flags = build_info()
    out.write(f"  extension: gcc {flags['compiler']}, optimized={flags['optimized']}, "
              f"openmp={flags['openmp']} (up to {flags['max_threads']} threads), baseline "
              f"avx2={flags['avx2']}, avx512f={flags['avx512f']}\n")
    out.write(f"  matmul kernel: {flags['matmul_kernel']}; gate kernels: "
              f"{flags['gate_kernels']}; bfloat16 kernel: {flags['bfloat16_kernel']} (at batch 1: "
              f"{flags['bfloat16_batch_1']}); int8 kernel: {flags['int8_kernel']} (at batch 1: "
              f"{flags['int8_batch_1']})\n")
    out.write(f"  tuned to this core: L2 {flags['l2_bytes'] // 1024} KiB, float32 FMA rate "
              f"{flags['fma_rate'] / 1e9:.0f} GF/s\n")
    out.write(f"  numpy {np.__version__}\n")
    return 0


def demo(args, out=None):
    """Run the demo: the table, the JSON and (with matplotlib) the figures."""
    from .demo import Settings, format_results, run_demo
    out = out or sys.stdout
    settings = Settings(quick=args.quick, seed=args.seed)
    out.write(f"lstm-fast demo{' --quick' * args.quick}: {len(settings.lengths)} lengths "
              f"{settings.lengths}, {settings.n_train} training sequences, "
              f"{settings.epochs} epochs\n")
    results = run_demo(settings, progress=_progress_bar(sys.stderr))
    out.write(format_results(results) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
        out.write(f"results written to {args.json}\n")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        out.write('figures: install matplotlib (pip install "lstm_fast[plot]") to get them\n')
        return 0
    from .demo.figures import write_figures
    for path in write_figures(results, args.out):
        out.write(f"figure: {path}\n")
    return 0


def main(argv=None):
    """Entry point of ``lstm-fast`` and ``python -m lstm_fast``."""
    args = _build_parser().parse_args(argv)
    if args.command == "bench":
        return bench(args)
    if args.command == "demo":
        return demo(args)
    return info()


if __name__ == "__main__":
    sys.exit(main())
