"""The issue's performance targets, judged on one backend's results.

Each target is judged on the geometric mean of its per-case ratios over
the grid; the worst case and how many cases meet it are reported beside.
"""

from benchmarks import summary


def judge(results):
    forward = summary.forward_ratios(results["forward"])
    ours = [r for r in forward if r["impl"] == "keras_embed"]
    compiled = [r["vs_native"] for r in ours if r["mode"] == "compiled"]
    eager = [r["vs_keras"] for r in ours if r["mode"] == "eager"]
    safety = [
        r
        for r in summary.safety_cost(results["forward"])
        if r["mode"] == "compiled"
    ]
    train = [
        r["vs_keras"] for r in summary.training_ratios(results["training"])
    ]
    return [
        _at_least("compiled forward vs native", compiled, 0.95),
        _at_least("eager forward vs keras.layers.Embedding", eager, 0.90),
        _at_most(
            "bad-id safety cost, compiled: keras_embed / same layer "
            "without checks",
            [1 + r["check_cost"] for r in safety],
            1.10,
        ),
        _at_most(
            "bad-id safety cost, compiled: keras_embed / bare ops.take",
            [1 + r["cost"] for r in safety],
            1.10,
        ),
        _at_least("training step vs keras.layers.Embedding", train, 0.95),
    ]


def _at_least(name, ratios, target):
    if not ratios:
        return _missing(name, f">= {target}")
    mean = summary.geometric_mean(ratios)
    return {
        "target": name,
        "rule": f">= {target}",
        "geomean": mean,
        "worst": min(ratios),
        "cases_met": sum(r >= target for r in ratios),
        "cases": len(ratios),
        "met": mean >= target,
    }


def _at_most(name, ratios, target):
    if not ratios:
        return _missing(name, f"<= {target}")
    mean = summary.geometric_mean(ratios)
    return {
        "target": name,
        "rule": f"<= {target}",
        "geomean": mean,
        "worst": max(ratios),
        "cases_met": sum(r <= target for r in ratios),
        "cases": len(ratios),
        "met": mean <= target,
    }


def _missing(name, rule):
    return {"target": name, "rule": rule, "geomean": None, "met": None}
