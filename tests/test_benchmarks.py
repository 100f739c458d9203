"""The benchmark harness runs every suite's tiny grid end to end.

Only the records' schema and the report are checked, never a speed: this
test keeps the harness from rotting, it does not benchmark anything.
"""

import json

import keras
import pytest

from benchmarks import __main__ as cli
from benchmarks import suites
from benchmarks.harness import plots
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


def _doc(backend, date, found, grid="quick"):
    machine = {
        "cpu_count": 2,
        "cpu_model": "CPU",
        "memory_gib": 1.0,
        "device": "cpu",
        "load_average": [1.0, 1.0, 1.0],
        "date": date,
        "versions": {"keras_embed": "0" * 40},
    }
    return {
        "backend": backend,
        "grid": grid,
        "machine": machine,
        "file": f"{backend}{date}.json",
        "records": found,
    }


def _ratio(suite, impl, ratio, mode=None, case="c"):
    params = {"mode": mode} if mode else {}
    return {
        "suite": suite,
        "case": case,
        "impl": impl,
        "params": params,
        "baseline": "keras",
        "ratio": ratio,
    }


def test_headline_prefers_the_full_suites_and_the_newest_file():
    older = _doc(
        "jax",
        "2026-01-01",
        [
            _ratio("forward", "keras_embed", 0.5, "eager"),
            _ratio("training", "keras_embed", 0.8),
        ],
    )
    newer = _doc(
        "jax",
        "2026-02-01",
        [
            _ratio("id_checks", "keras_embed", 2.0, "eager"),
            _ratio("id_checks", "keras_embed", 1.0, "compiled", "a"),
            _ratio("id_checks", "keras_embed", 4.0, "compiled", "b"),
            _ratio("id_checks", "keras_embed_uncounted", 9.0, "compiled"),
            _ratio("id_checks", "keras_embed", 1.1, case="fit step"),
            _ratio("id_checks", "keras", 1.0, "eager"),
        ],
    )
    bars = plots.headline_bars([older, newer])
    assert list(bars) == ["jax"]
    jax = bars["jax"]
    # forward beats id_checks whatever the dates: it covers the full grid.
    assert (jax["eager forward"]["ratio"], jax["eager forward"]["suite"]) == (
        0.5,
        "forward",
    )
    assert jax["compiled forward"]["ratio"] == pytest.approx(2.0)  # geomean
    assert (jax["compiled forward"]["min"], jax["compiled forward"]["max"]) == (
        1.0,
        4.0,
    )
    assert jax["training step (fit)"]["ratio"] == 0.8


def test_suite_rows_take_the_newest_file_per_suite_and_backend():
    docs = [
        _doc(
            "torch",
            "2026-01-01",
            [_ratio("quantization", "int8", 3.0, "eager")],
        ),
        _doc(
            "torch",
            "2026-02-01",
            [
                _ratio("quantization", "int8", 1.0, "eager", "a"),
                _ratio("quantization", "int8", 0.25, "eager", "b"),
                {
                    **_ratio("quantization", "float", 1.0, "eager"),
                    "baseline": "float",
                },
            ],
        ),
        _doc("tensorflow", "2026-01-01", [_ratio("row_sparse", "rs", 2.0)]),
    ]
    rows = plots.suite_rows(docs)
    assert rows["quantization"] == {
        ("int8", "eager", "keras"): {
            "torch": {"ratio": 0.5, "min": 0.25, "max": 1.0, "cases": 2}
        }
    }
    assert (
        rows["row_sparse"][("rs", "fit", "keras")]["tensorflow"]["ratio"] == 2.0
    )


def test_report_draws_its_pictures_or_says_why_not(results, tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps(results))
    assert cli.main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "plots skipped: matplotlib is not installed" in (
            capsys.readouterr().err
        )
        assert not (tmp_path / "speed_ratios.png").exists()
        assert "speed_ratios.png" not in text
    else:
        for name in ("speed_ratios.png", "headline.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        assert "](speed_ratios.png)" in text
