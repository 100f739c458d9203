"""Benchmark suites: one module each, all writing `harness.records`.

A suite module has
- a docstring, whose first paragraph the report prints as its description;
- `BASELINE`: the impl its ratios are against;
- `GRIDS`: "full", "quick" and "tiny" (tiny: every code path in seconds,
  for tests/test_benchmarks.py; its timings mean nothing);
- `run(grid, log) -> list of records` (`harness.records.record`);
- optionally `BACKENDS`, the backends it runs on (default: all).

To add a suite, write the module and add its name to SUITES.
"""

import importlib

# Memory first: its forked children want a process that has not run a
# backend op yet (see harness/memory.py).
SUITES = (
    "memory",
    "forward",
    "id_checks",
    "training",
    "row_sparse",
    "row_updates",
    "embedding_bag",
    "quantization",
    "word_vectors",
    "recommender",
    "hashing",
)


def load(name):
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
    return importlib.import_module(f"benchmarks.suites.{name}")


def description(module):
    return (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
