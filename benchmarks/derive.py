"""Everything computed from one backend's raw timings (no backend needed).

The report re-derives it from the raw rows, so a JSON file written by an
older harness is summarized by the current rules.
"""

from benchmarks import summary
from benchmarks import targets


def summarize(results):
    return {
        "forward_ratios": summary.forward_ratios(results["forward"]),
        "safety_cost": summary.safety_cost(results["forward"]),
        "training_ratios": summary.training_ratios(results["training"]),
        "vocab_scaling": summary.vocab_scaling(results["training"]),
        "targets": targets.judge(results),
    }
