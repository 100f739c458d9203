"""The benchmark harness runs every suite's tiny grid end to end.

Only the records' schema and the report are checked, never a speed: this
test keeps the harness from rotting, it does not benchmark anything.
"""

import json

import keras
import pytest

from benchmarks import __main__ as cli
from benchmarks import suites
from benchmarks.harness import records


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    path = tmp_path_factory.mktemp("results") / "run.json"
    assert (
        cli.main(["run", "--tiny", "--threads", "0", "--out", str(path)]) == 0
    )
    return json.loads(path.read_text())


def _expected_suites():
    backend = keras.backend.backend()
    return {
        name
        for name in suites.SUITES
        if backend in getattr(suites.load(name), "BACKENDS", [backend])
    }


def test_every_suite_writes_records_of_the_schema(results):
    found = results["records"]
    assert results["schema"] == records.SCHEMA
    assert {r["suite"] for r in found} == _expected_suites()
    assert set(results["suites"]) == _expected_suites()
    records.check(found)
    for r in found:
        assert r["backend"] == keras.backend.backend()
        assert r["device"] == results["machine"]["device"]
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        assert r["ratio"] > 0


def test_ratios_are_against_each_suites_baseline(results):
    for r in results["records"]:
        baseline = suites.load(r["suite"]).BASELINE
        assert r["baseline"] == baseline
        if r["impl"] == baseline:
            assert r["ratio"] == 1.0


def test_forward_times_every_candidate_in_every_mode(results):
    forward = [r for r in results["records"] if r["suite"] == "forward"]
    modes = {r["params"]["mode"] for r in forward}
    assert {"eager", "compiled"} <= modes
    for mode in modes:
        assert {r["impl"] for r in forward if r["params"]["mode"] == mode} == {
            "keras",
            "keras_embed",
            "keras_embed_unchecked",
            "bare_take",
            "native",
        }


def test_memory_records_a_peak_per_case(results):
    picked = [r for r in results["records"] if r["suite"] == "memory"]
    assert {r["impl"] for r in picked} >= {"keras", "keras_embed", "native"}
    assert all(r["rss_mb"] >= 0 for r in picked)


def test_machine_names_cpu_versions_and_device(results):
    machine = results["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["versions"]["keras"] == keras.__version__
    assert machine["device"] == "cpu" or machine["device"].startswith("gpu")


def test_report_renders_a_table_per_suite(results, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(results))
    (tmp_path / "old.json").write_text(json.dumps({"schema": 1}))
    assert cli.main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "## Summary" in text
    for suite in _expected_suites():
        assert f"## {suite}\n" in text
    assert "| run.json | cpu |" in text or "| run.json | gpu" in text
    assert "old.json" not in text


def test_record_rejects_fields_outside_the_schema():
    with pytest.raises(ValueError, match="not in the schema"):
        records.record("s", "c", "i", {}, {}, speed=1.0)
