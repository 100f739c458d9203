"""Peak memory of a forward lookup (three calls, in the mode `predict`
uses: compiled on TensorFlow and JAX, eager on torch) and of three training
steps, each case in a child process of its own: `rss_mb` = peak RSS of the
case over the child's RSS at start; `device_mb` = peak GPU memory (GPU only).
The times are those of the measured calls or steps, for reference.
"""

import time

from benchmarks.harness import backends
from benchmarks.harness import memory
from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers
from benchmarks.suites import training

BASELINE = "keras"
FORWARD = ("keras", "keras_embed", "native")
TRAINING = ("keras", "keras_embed", "keras_embed_row_sparse")
_CALLS = 3

# (forward cases (vocab, dim, ids shape), training cases (vocab, dim, opt))
GRIDS = {
    "full": (
        [
            (v, d, (4096, 50))
            for v in (1_000, 100_000, 1_000_000)
            for d in (16, 128)
        ],
        [(v, 64, o) for v in (10_000, 1_000_000) for o in ("sgd", "adam")],
    ),
    "quick": (
        [(v, 16, (4096, 50)) for v in (1_000, 100_000)],
        [(1_000_000, 64, "adam")],
    ),
    "tiny": ([(50, 4, (2, 3))], [(50, 4, "adam")]),
}


def run(grid, log):
    forward, train = GRIDS[grid]
    specs = [
        {"kind": "forward", "impl": i, "vocab": v, "dim": d, "ids": list(s)}
        for v, d, s in forward
        for i in FORWARD
    ] + [
        {"kind": "training", "impl": i, "vocab": v, "dim": d, "optimizer": o}
        for v, d, o in train
        for i in TRAINING
    ]
    batch = 8 if grid == "tiny" else training.BATCH
    log(f"memory: {len(specs)} cases")
    found = memory.isolated(
        "benchmarks.suites.memory:measure",
        [{**spec, "batch": batch} for spec in specs],
        inline=grid == "tiny",
    )
    return found


def measure(spec):
    """One case, in the current process; returns its record."""
    start = memory.peak_rss_mb()
    table = layers.weight_matrix(spec["vocab"], spec["dim"])
    if spec["kind"] == "forward":
        mode = "eager" if backends.name() == "torch" else "compiled"
        seconds = _forward(spec, table, mode)
        shape = "x".join(map(str, spec["ids"]))
        case = f"forward V={spec['vocab']:.0e} d={spec['dim']} ids={shape}"
        params = {"mode": mode}
    else:
        batch = spec["batch"]
        model = training.build_model(
            spec["impl"], table, spec["optimizer"], batch
        )
        x, y = training.batches(spec["vocab"], batch, _CALLS + 1)
        seconds = training.fit(model, x, y, batch, _CALLS + 1)
        case = (
            f"training V={spec['vocab']:.0e} d={spec['dim']} "
            + (spec["optimizer"])
        )
        params = {"batch": [batch, training.LENGTH], "mode": "fit"}
    return records.record(
        "memory",
        case,
        spec["impl"],
        {**spec, **params},
        timing.stats(seconds),
        rss_mb=memory.peak_rss_mb() - start,
        device_mb=backends.device_peak_mb(),
    )


def _forward(spec, table, mode):
    ids = layers.random_ids(spec["vocab"], spec["ids"])
    if spec["impl"] == "native":
        weights = layers.embedding("keras", table).embeddings.value
        lookup = backends.compile_fn(backends.native_lookup(), weights, mode)
    else:
        lookup = backends.compile_layer(
            layers.embedding(spec["impl"], table), mode
        )
    seconds = []
    with backends.inference():
        for _ in range(_CALLS):
            seconds.append(_timed_call(lookup, ids))
    return seconds


def _timed_call(lookup, ids):
    start = time.perf_counter()
    backends.sync(lookup(ids))
    return time.perf_counter() - start
