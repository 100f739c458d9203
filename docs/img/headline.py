"""Draws docs/img/headline.png, the README's performance plot.

The numbers are copied from benchmarks/results/REPORT.md ("Summary",
geometric means over the full grid; keras_embed 7c57701 on TensorFlow and
JAX, 3442cfc on PyTorch; a shared 2-core CPU). Update them by hand when the
report is regenerated:

    python docs/img/headline.py   # needs matplotlib
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BACKENDS = ["TensorFlow", "JAX", "PyTorch"]
# keras_embed speed / keras.layers.Embedding speed (1.0 = parity).
RATIOS = {
    "eager forward": [0.78, 0.48, 0.73],
    "compiled forward": [0.77, 0.89, 0.88],
    "training step (fit)": [0.90, 1.00, 0.96],
}


def main():
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    width = 0.26
    for i, (label, values) in enumerate(RATIOS.items()):
        xs = [b + (i - 1) * width for b in range(len(BACKENDS))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(range(len(BACKENDS)), BACKENDS)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("speed vs keras.layers.Embedding")
    ax.set_title(
        "keras_embed.Embedding / keras.layers.Embedding (1.0 = parity)\n"
        "geometric means, shared 2-core CPU",
        fontsize=10,
    )
    ax.legend(loc="upper center", ncols=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(pathlib.Path(__file__).with_suffix(".png"))


if __name__ == "__main__":
    main()
