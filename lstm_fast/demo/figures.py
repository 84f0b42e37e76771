"""The demo's figures (needs matplotlib, the optional ``plot`` extra)."""

import os

import numpy as np

__all__ = ["write_figures"]


def write_figures(results, out_dir):
    """Write the PNG figures of a demo run into ``out_dir``; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = [_error_curves(plt, results, out_dir), _gradient_flow(plt, results, out_dir)]
    if "LSTM" in results["probes"] and "forget_gate" in results["probes"]["LSTM"]:
        paths.append(_forget_gates(plt, results, out_dir))
    return paths


def _error_curves(plt, results, out_dir):
    tasks = sorted({r["task"] for r in results["rows"]})
    lengths = results["settings"]["lengths"]
    fig, axes = plt.subplots(len(tasks), len(lengths), figsize=(3.2 * len(lengths),
                                                                 2.8 * len(tasks)),
                             squeeze=False, sharey="row")
    for i, task in enumerate(tasks):
        for j, T in enumerate(lengths):
            ax = axes[i][j]
            for key, curve in results["curves"].items():
                t, length, model = key.split("|")
                if t == task and int(length) == T:
                    ax.plot(np.arange(1, len(curve) + 1), curve, label=model)
            baseline = next(r["baseline"] for r in results["rows"] if r["task"] == task)
            ax.axhline(baseline, color="grey", linestyle=":", linewidth=1)
            ax.set_title(f"{task}, T = {T}", fontsize=9)
            ax.set_yscale("log")
            ax.set_xlabel("epoch", fontsize=8)
        axes[i][0].set_ylabel("test MSE" if task == "adding" else "test error rate", fontsize=8)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, out_dir, "error_curves.png")


def _gradient_flow(plt, results, out_dir):
    T = results["settings"]["probe_length"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for model, probe in results["probes"].items():
        for name, style in (("h", "-"), ("c", "--")):
            if name in probe:
                norms = np.asarray(probe[name])[::-1]  # steps back from the last
                ax.plot(np.arange(len(norms)), norms, style,
                        label=f"{model}: |dL/d{name}_t|")
    ax.set_yscale("log")
    ax.set_xlabel("steps back in time from the last step")
    ax.set_ylabel("gradient norm")
    ax.set_title(f"Error signal going back in time (adding problem, T = {T}, trained)",
                 fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return _save(plt, fig, out_dir, "gradient_flow.png")


def _forget_gates(plt, results, out_dir):
    models = [m for m, p in results["probes"].items() if "forget_gate" in p]
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.2), squeeze=False,
                             constrained_layout=True)
    for ax, model in zip(axes[0], models):
        f = np.asarray(results["probes"][model]["forget_gate"]).T  # (H, T)
        image = ax.imshow(f, aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("unit")
    fig.colorbar(image, ax=axes[0].tolist(), label="mean forget gate f")
    return _save(plt, fig, out_dir, "forget_gate.png")


def _save(plt, fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
