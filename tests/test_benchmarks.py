"""The benchmark harness runs end to end on one tiny case per section.

Only the report's fields are checked, never a timing: this test keeps the
harness from rotting, it does not benchmark anything.
"""

import json

import keras
import pytest

from benchmarks import __main__ as cli
from benchmarks import grid
from benchmarks import report
from benchmarks import runner

FORWARD_IMPLS = {
    "keras_embed",
    "keras",
    "keras_embed_unchecked",
    "native",
    "keras_embed_alternative",
    "bare_take",
    "numpy_copy",
}


@pytest.fixture(scope="module")
def results():
    return runner.run(grid.TINY, memory_isolation="inline", log=lambda _: None)


def test_results_name_backend_versions_and_machine(results):
    assert results["backend"] == keras.backend.backend()
    assert results["versions"]["keras"] == keras.__version__
    assert results["machine"]["cpu_count"] >= 1
    assert results["copy_bandwidth"]["gb_per_s"] > 0


def test_forward_rows_cover_every_candidate_in_both_modes(results):
    seen = {(row["mode"], row["impl"]) for row in results["forward"]}
    assert {impl for _, impl in seen} == FORWARD_IMPLS
    assert {"eager", "compiled"} <= {mode for mode, _ in seen}
    for row in results["forward"]:
        assert row["min_s"] <= row["median_s"] <= row["max_s"]
        assert row["repeats"] == grid.TINY.repeats


def test_training_and_memory_rows_are_complete(results):
    assert {row["impl"] for row in results["training"]} == {
        "keras_embed",
        "keras",
        "keras_embed_alternative",
    }
    assert all(row["repeats"] >= 1 for row in results["training"])
    assert {row["section"] for row in results["memory"]} == {
        "forward",
        "training",
    }
    assert all("error" not in row for row in results["memory"])
    assert all(row["peak_mb"] >= row["start_mb"] for row in results["memory"])


def test_summary_judges_every_target(results):
    judged = results["summary"]["targets"]
    assert len(judged) == 5
    assert all(target["met"] in (True, False) for target in judged)
    modes = {r["mode"] for r in results["summary"]["safety_cost"]}
    assert {"eager", "compiled"} <= modes


def test_report_command_writes_markdown_without_a_plot(results, tmp_path):
    path = tmp_path / f"{results['backend']}.json"
    path.write_text(json.dumps(results))
    assert cli.main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    for heading in ("## Targets", "### Forward lookup", "### Bad-id safety"):
        assert heading in text
    assert f"## {results['backend']}" in text
    assert report.render([results]).startswith("# keras_embed benchmarks")


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="compares with torch.nn.functional.embedding_bag",
)
def test_embedding_bag_benchmark_agrees_with_torch_and_reports_fields():
    from benchmarks import embedding_bag

    case = embedding_bag.run_case(
        embedding_bag.TINY_CASES[0], warmup=1, repeats=1
    )
    assert case["max_abs_diff"] < 1e-6
    for section in ("forward", "forward_backward"):
        assert set(case[section]) == {"keras_embed", "torch_native"}
        assert case[section]["keras_embed"]["repeats"] == 1
