"""The one result schema every suite writes, and the files that hold it.

A record is one candidate (`impl`) timed on one `case` of one `suite`:

    suite, case, backend, device, impl, params,
    median_ms, min_ms, max_ms, repeats,  # per call or per step
    baseline, ratio,                     # ratio = baseline time / this time
    rss_mb, device_mb, max_abs_diff      # optional, where a suite measures them

`ratio` is a speed ratio against the suite's baseline impl on the same
case, backend and device (1.0 = parity, above 1 = faster than baseline).
A results file is `{"schema": 2, "machine": ..., "settings": ...,
"records": [...]}`.
"""

import json
import os

from benchmarks.harness import backends

SCHEMA = 2
FIELDS = {
    "suite": str,
    "case": str,
    "backend": str,
    "device": str,
    "impl": str,
    "params": dict,
    "median_ms": float,
    "min_ms": float,
    "max_ms": float,
    "repeats": int,
}
OPTIONAL = ("rss_mb", "device_mb", "max_abs_diff")


def record(suite, case, impl, params, timing, **measured):
    """A record on the current backend and device; `timing` comes from
    `timing.stats`, `measured` holds the optional fields."""
    unknown = set(measured) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"not in the schema: {sorted(unknown)}")
    return {
        "suite": suite,
        "case": case,
        "backend": backends.name(),
        "device": backends.device(),
        "impl": impl,
        "params": params,
        **timing,
        "baseline": None,
        "ratio": None,
        **measured,
    }


def add_ratios(found, baseline):
    """Fills `baseline` and `ratio` in place from the baseline's records."""

    def key(r):
        return (r["suite"], r["case"], r["backend"], r["device"])

    reference = {key(r): r for r in found if r["impl"] == baseline}
    for r in found:
        base = reference.get(key(r))
        if base is not None:
            r["baseline"] = baseline
            r["ratio"] = base["median_ms"] / r["median_ms"]
    return found


def check(found):
    """Raises ValueError unless every record has the schema's fields."""
    for r in found:
        for field, kind in FIELDS.items():
            if not isinstance(r.get(field), kind):
                raise ValueError(f"{field} should be a {kind.__name__}: {r}")
        if not r["median_ms"] > 0:
            raise ValueError(f"median_ms should be positive: {r}")
    return found


def write(path, found, **metadata):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as file:
        json.dump(
            {"schema": SCHEMA, **metadata, "records": check(found)},
            file,
            indent=1,
        )
        file.write("\n")


def load(results_dir):
    """Every results file of this schema in `results_dir`, by name."""
    found = []
    for name in sorted(os.listdir(results_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(results_dir, name)) as file:
            doc = json.load(file)
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA:
            found.append({**doc, "file": name})
    return found
