"""The two pictures `python -m benchmarks report` draws from the results.

- `headline.png` (the README's): keras_embed.Embedding against
  keras.layers.Embedding per backend, eager forward, compiled forward and
  a `fit` step, from the newest results that time them (the `forward` and
  `training` suites, else `id_checks`), with the version, the machine and
  "higher = faster" on it.
- `speed_ratios.png` (REPORT.md's): every suite's speed ratios against its
  baseline, one horizontal bar per impl and mode and backend (the
  geometric mean over the cases, the line spanning their min to max), one
  panel per suite that has ratios.

Choosing the numbers needs no matplotlib (`headline_bars`, `suite_rows`);
drawing does, and is skipped with a message when it is not installed. No
module of keras_embed imports this one.
"""

import math
import os
import subprocess

BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
COLORS = {"tensorflow": "#e8710a", "jax": "#1a73e8", "torch": "#8e24aa"}
# (label, mode), and the suites that time keras_embed against keras in that
# mode, the most complete first.
HEADLINE = (
    ("eager forward", "eager"),
    ("compiled forward", "compiled"),
    ("training step (fit)", "fit"),
)
HEADLINE_SUITES = ("forward", "training", "id_checks")
_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 50)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def mode(record):
    """The record's mode; a `fit` step where the suite names none."""
    found = record["params"].get("mode")
    if found:
        return found
    if record["suite"] in ("training", "row_sparse") or record[
        "case"
    ].startswith("fit"):
        return "fit"
    return ""


def headline_bars(docs):
    """{backend: {label: bar}} for keras_embed vs keras; a bar holds the
    geometric mean ratio, its cases' min and max, and the doc it came
    from. The newest results file (by date) that has the mode wins."""
    bars = {}
    for backend in BACKENDS:
        for label, wanted in HEADLINE:
            bar = _headline_bar(docs, backend, wanted)
            if bar is not None:
                bars.setdefault(backend, {})[label] = bar
    return bars


def _headline_bar(docs, backend, wanted):
    for suite in HEADLINE_SUITES:
        for doc in _newest_first(d for d in docs if d["backend"] == backend):
            ratios = [
                r["ratio"]
                for r in doc["records"]
                if r["suite"] == suite
                and r["impl"] == "keras_embed"
                and r["baseline"] == "keras"
                and r["ratio"] is not None
                and mode(r) == wanted
            ]
            if ratios:
                return {
                    "ratio": geomean(ratios),
                    "min": min(ratios),
                    "max": max(ratios),
                    "cases": len(ratios),
                    "suite": suite,
                    "doc": doc,
                }
    return None


def suite_rows(docs):
    """{suite: {(impl, mode, baseline): {backend: bar}}} from the newest
    results file of each suite and backend."""
    newest = {}
    for doc in _newest_first(docs):
        for r in doc["records"]:
            newest.setdefault((r["suite"], doc["backend"]), doc)
    rows = {}
    for (suite, backend), doc in newest.items():
        groups = {}
        for r in doc["records"]:
            if r["suite"] != suite or r["ratio"] is None:
                continue
            if r["impl"] == r["baseline"]:
                continue
            key = (r["impl"], mode(r), r["baseline"])
            groups.setdefault(key, []).append(r["ratio"])
        for key, ratios in groups.items():
            rows.setdefault(suite, {}).setdefault(key, {})[backend] = {
                "ratio": geomean(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "cases": len(ratios),
            }
    return rows


def write(docs, results_dir, headline_path, log):
    """Draws both pictures; returns the paths written (none without
    matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        log(
            "plots skipped: matplotlib is not installed "
            "(pip install matplotlib)"
        )
        return []
    matplotlib.use("Agg")
    written = []
    bars = headline_bars(docs)
    if bars:
        _draw_headline(bars, headline_path)
        written.append(headline_path)
    rows = suite_rows(docs)
    if rows:
        path = os.path.join(results_dir, "speed_ratios.png")
        _draw_suites(rows, docs, path)
        written.append(path)
    return written


def _draw_headline(bars, path):
    import matplotlib.pyplot as plt

    backends = [b for b in BACKENDS if b in bars]
    labels = [label for label, _ in HEADLINE]
    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=120)
    width = 0.8 / len(labels)
    top = 1.35
    for i, label in enumerate(labels):
        for j, backend in enumerate(backends):
            bar = bars[backend].get(label)
            if bar is None:
                continue
            x = j + (i - (len(labels) - 1) / 2) * width
            color = plt.cm.tab10(i)
            ax.bar(
                x,
                bar["ratio"],
                width * 0.92,
                color=color,
                label=label if j == 0 else None,
            )
            ax.annotate(
                f"{bar['ratio']:.2f}",
                (x, bar["ratio"]),
                textcoords="offset points",
                xytext=(0, 2),
                ha="center",
                fontsize=8,
            )
            top = max(top, bar["ratio"] * 1.25)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(range(len(backends)), [BACKEND_NAMES[b] for b in backends])
    ax.set_ylim(0, top)
    ax.set_ylabel("speed vs keras.layers.Embedding\n(higher = faster)")
    docs = [bar["doc"] for per in bars.values() for bar in per.values()]
    ax.set_title(
        f"keras_embed {_version(docs)} vs keras.layers.Embedding "
        "(1.0 = parity, higher = faster)",
        fontsize=10,
    )
    ax.legend(
        loc="upper center",
        ncols=len(labels),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.text(
        0.01,
        0.01,
        _headline_footer(bars, docs),
        fontsize=7,
        va="bottom",
        ha="left",
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def _headline_footer(bars, docs):
    sources = {}
    for per in bars.values():
        for label, bar in per.items():
            doc = bar["doc"]
            cases = "case" if bar["cases"] == 1 else "cases"
            text = (
                f"{bar['suite']} suite, {doc['grid']} grid, "
                f"{bar['cases']} {cases}"
            )
            sources.setdefault(label, set()).add(text)
    lines = [
        f"{label}: " + "; ".join(sorted(found))
        for label, found in sources.items()
    ]
    lines.append(
        f"Machine: {_machine(docs)}. Geometric means over each suite's "
        "cases; candidates interleaved in one process."
    )
    return "\n".join(lines)


def _draw_suites(rows, docs, path):
    import matplotlib.pyplot as plt

    suites = _in_suite_order(rows)
    heights = [len(rows[s]) * 0.42 + 0.8 for s in suites]
    fig, axes = plt.subplots(
        len(suites),
        1,
        figsize=(9, sum(heights) + 1.4),
        dpi=110,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
        layout="constrained",
    )
    for ax, suite in zip(axes[:, 0], suites, strict=True):
        _suite_panel(ax, suite, rows[suite])
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[b]) for b in BACKENDS]
    fig.legend(
        handles,
        [BACKEND_NAMES[b] for b in BACKENDS],
        loc="outside lower center",
        ncols=3,
        frameon=False,
        fontsize=9,
    )
    fig.suptitle(
        "Speed ratio against each suite's baseline: right of 1 = faster, "
        "left = slower\n(bar: geometric mean over the cases; line: their "
        "min-max; newest results file per suite and backend)\n"
        + _machine(docs),
        fontsize=9,
    )
    fig.savefig(path)
    plt.close(fig)


def _suite_panel(ax, suite, groups):
    from matplotlib.ticker import FuncFormatter

    keys = list(groups)
    height = 0.8 / len(BACKENDS)
    low, high = 1.0, 1.0
    for row, key in enumerate(keys):
        for k, backend in enumerate(BACKENDS):
            bar = groups[key].get(backend)
            if bar is None:
                continue
            y = row + (k - 1) * height
            # From 1.0, so that the bar's side says faster or slower.
            ax.barh(
                y,
                bar["ratio"] - 1.0,
                height * 0.9,
                left=1.0,
                color=COLORS[backend],
            )
            ax.plot(
                [bar["min"], bar["max"]], [y, y], color="black", linewidth=0.8
            )
            ax.annotate(
                f"{bar['ratio']:.2f}",
                (max(bar["max"], bar["ratio"]), y),
                textcoords="offset points",
                xytext=(3, 0),
                va="center",
                fontsize=7,
            )
            low = min(low, bar["min"], bar["ratio"])
            high = max(high, bar["max"], bar["ratio"])
    ax.set_xscale("log")
    low, high = low / 1.3, high * 1.6
    ax.set_xlim(low, high)
    ax.set_xticks([t for t in _TICKS if low <= t <= high])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(keys)), [_row_label(k) for k in keys], fontsize=8)
    ax.set_ylim(len(keys) - 0.5, -0.5)
    baselines = sorted({baseline for _, _, baseline in keys})
    ax.set_title(
        f"{suite}: speed vs {', '.join(baselines)}", fontsize=9, loc="left"
    )
    ax.tick_params(axis="x", labelsize=8)


def _in_suite_order(rows):
    from benchmarks import suites

    known = [s for s in suites.SUITES if s in rows]
    return known + sorted(set(rows) - set(known))


def _row_label(key):
    impl, found_mode, _ = key
    return f"{impl}, {found_mode}" if found_mode else impl


def _machine(docs):
    machines = {
        f"{d['machine']['cpu_count']} x {d['machine']['cpu_model']}, "
        f"{d['machine']['memory_gib']} GiB, {d['machine']['device']}"
        for d in docs
    }
    loads = [d["machine"]["load_average"][0] for d in docs]
    return (
        "; ".join(sorted(machines))
        + f", load average {min(loads):.1f}-{max(loads):.1f}"
    )


def _version(docs):
    """keras_embed's version at the commits the results name."""
    commits = sorted(
        {
            (d["machine"]["versions"].get("keras_embed") or "?").split()[0]
            for d in docs
        }
    )
    versions = sorted({_version_at(c) for c in commits})
    shorts = ", ".join(c[:7] for c in commits)
    return f"{', '.join(versions)} ({shorts})"


def _version_at(commit):
    try:
        text = subprocess.run(
            ["git", "show", f"{commit}:keras_embed/__init__.py"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "?"


def _newest_first(docs):
    return sorted(docs, key=lambda d: d["machine"]["date"], reverse=True)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))
