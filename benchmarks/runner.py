"""Runs the benchmark sections on the current backend into one dict."""

import contextlib
import sys
import time

from benchmarks import backends
from benchmarks import derive
from benchmarks import forward
from benchmarks import machine
from benchmarks import memory
from benchmarks import training

SECTIONS = ("memory", "forward", "training")


def run(grid, sections=SECTIONS, memory_isolation="fork", log=None):
    log = log or _stderr
    started = time.perf_counter()
    results = {
        "schema": 1,
        "backend": backends.name(),
        "versions": {
            **backends.versions(),
            "keras_embed": machine.source_revision(),
        },
        "machine": machine.describe(),
        "grid": grid.name,
        "settings": {
            "warmup": grid.warmup,
            "repeats": grid.repeats,
            "min_repeat_s": grid.min_repeat_s,
            "compiler": backends.COMPILER[backends.name()],
            "native_lookup": backends.NATIVE_LOOKUP[backends.name()],
        },
        "forward": [],
        "training": [],
        "memory": [],
    }
    # Memory first: its zygote is a fresh process either way, and the
    # inline mode wants this process's peak before the timings raise it.
    section_s = {}
    if "memory" in sections:
        with _timed(section_s, "memory"):
            results["memory"] = memory.run(grid, log, memory_isolation)
    copy = machine.copy_bandwidth(grid.warmup, grid.repeats, grid.copy_bytes)
    results["copy_bandwidth"] = copy
    if "forward" in sections:
        with _timed(section_s, "forward"):
            results["forward"] = forward.run(grid, log)
    if "training" in sections:
        with _timed(section_s, "training"):
            results["training"] = training.run(grid, log)
    results["section_wall_s"] = section_s
    results["machine"]["load_average_end"] = machine.describe()["load_average"]
    results["wall_s"] = time.perf_counter() - started
    results["summary"] = derive.summarize(results)
    return results


@contextlib.contextmanager
def _timed(record, name):
    started = time.perf_counter()
    yield
    record[name] = time.perf_counter() - started


def _stderr(message):
    print(message, file=sys.stderr, flush=True)
