"""Draws the report's PNG: speed ratios per backend (needs matplotlib)."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks import summary  # noqa: E402

PNG = "speed_ratios.png"
_SERIES = (
    ("keras_embed", "vs_native", "keras_embed vs native"),
    ("keras", "vs_native", "keras.layers.Embedding vs native"),
    ("keras_embed", "vs_keras", "keras_embed vs keras.layers.Embedding"),
)


def draw(all_results, results_dir):
    """Writes one row of panels per backend, one panel per mode."""
    rows = len(all_results)
    modes = _modes(all_results)
    fig, axes = plt.subplots(
        rows,
        len(modes),
        figsize=(6 * len(modes), 3.6 * rows),
        squeeze=False,
    )
    for row, results in enumerate(all_results):
        ratios = summary.forward_ratios(results["forward"])
        for col, mode in enumerate(modes):
            _panel(axes[row][col], results, ratios, mode)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(
        "Forward lookup speed ratios (1.0 = parity, higher = faster; dashed: "
        "target); shared CPU, ratios only",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = os.path.join(results_dir, PNG)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return PNG


def _modes(all_results):
    found = []
    for results in all_results:
        for row in results["forward"]:
            if row["mode"] not in found:
                found.append(row["mode"])
    return found


def _panel(ax, results, ratios, mode):
    picked = [r for r in ratios if r["mode"] == mode]
    ax.set_title(f"{results['backend']}: {mode}", fontsize=9)
    if not picked:
        ax.axis("off")
        return
    labels = _case_labels(picked)
    width = 0.8 / len(_SERIES)
    for i, (impl, field, name) in enumerate(_SERIES):
        values = [
            next(r[field] for r in picked if r["impl"] == impl and _same(r, c))
            for c in labels
        ]
        positions = [x + (i - 1) * width for x in range(len(labels))]
        ax.bar(positions, values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    target = 0.9 if mode == "eager" else 0.95
    ax.axhline(
        target, color="gray", linewidth=0.8, linestyle="--", label="target"
    )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(
        [_short(c) for c in labels], rotation=60, ha="right", fontsize=6
    )
    ax.set_yscale("log")
    ax.set_ylabel("speed ratio (log)", fontsize=8)


def _case_labels(picked):
    cases = []
    for r in picked:
        case = (r["vocab"], r["dim"], tuple(r["ids_shape"]))
        if case not in cases:
            cases.append(case)
    return cases


def _same(ratio, case):
    return (ratio["vocab"], ratio["dim"], tuple(ratio["ids_shape"])) == case


def _short(case):
    vocab, dim, shape = case
    return f"V{vocab:.0e} d{dim} {shape[0]}x{shape[1]}"
