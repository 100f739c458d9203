"""Issue 16's targets from row_sparse results files, as markdown:

    python -m benchmarks.row_sparse_targets benchmarks/results/row_sparse_*.json

Growth V=1e7 / V=1e5 per impl and D, the speedup over keras.layers.Embedding
+ dense Adam at V=1e7, the PyTorch bound (ours <= 1.25 x (SparseAdam + Keras's
fixed per-step cost), the cost being the built-in `fit` step minus torch's
dense step at V=1e5), and the memory of each impl at V=1e7 against its table
plus optimizer state. Needs no backend.
"""

import json
import sys


def _case(vocab, dim):
    return f"V={vocab:.0e} d={dim}"


def targets(doc):
    """Issue 16's targets from one results file, as markdown lines."""
    by = {(r["case"], r["impl"]): r for r in doc["records"]}

    def ms(impl, vocab, dim):
        r = by.get((_case(vocab, dim), impl))
        return r["median_ms"] if r else None

    lines = [
        f"backend {doc['backend']}, load average "
        f"{doc['machine']['load_average'][0]:.1f}",
        "",
        "| impl | D | V=1e5 ms | V=1e7 ms | growth | keras V=1e7 ms "
        "| speedup at 1e7 |",
        "|---|---|---|---|---|---|---|",
    ]
    for impl in _ordered(r["impl"] for r in doc["records"]):
        for dim in (16, 64):
            small, large = ms(impl, 100_000, dim), ms(impl, 10_000_000, dim)
            dense = ms("keras", 10_000_000, dim)
            if small is None or large is None:
                continue
            versus = "not run | -"
            if dense is not None:
                versus = f"{dense:.0f} | {dense / large:.1f}x"
            lines.append(
                f"| {impl} | {dim} | {small:.2f} | {large:.2f} | "
                f"{large / small:.2f} | {versus} |"
            )
    lines += _torch_target(ms) + _memory_target(doc)
    return lines


def _torch_target(ms):
    lines = []
    for dim in (16, 64):
        needed = [
            ms(i, v, dim)
            for i, v in (
                ("keras_embed_lazy_adam", 10_000_000),
                ("torch_sparse_adam", 10_000_000),
                ("keras", 100_000),
                ("torch_dense_adam", 100_000),
            )
        ]
        if None in needed:
            continue
        ours, sparse_adam, keras_small, torch_small = needed
        fixed = keras_small - torch_small
        bound = 1.25 * (sparse_adam + fixed)
        lines.append(
            f"torch D={dim}: ours {ours:.2f} ms vs 1.25 x (SparseAdam "
            f"{sparse_adam:.2f} + Keras fixed cost {fixed:.2f}) = "
            f"{bound:.2f} ms: {'met' if ours <= bound else 'missed'}"
        )
    return [""] + lines if lines else []


def _memory_target(doc):
    lines = [
        "",
        "| memory case | impl | state MB | peak - start MB (ratio) | build "
        "peak | after build | steps' peak (ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["records"]:
        p = r["params"]
        if "state_mb" in p:
            state = p["state_mb"]
            lines.append(
                f"| {r['case']} | {r['impl']} | {state:.0f} | "
                f"{r['rss_mb']:.0f} ({r['rss_mb'] / state:.2f}) | "
                f"{p['build_peak_mb']:.0f} | {p['built_mb']:.0f} | "
                f"{p['train_peak_mb']:.0f} ({p['train_peak_mb'] / state:.2f}) |"
            )
    return lines


def _ordered(items):
    return list(dict.fromkeys(items))


def main(paths):
    for path in paths:
        with open(path) as file:
            print("\n".join([f"## {path}", "", *targets(json.load(file)), ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
