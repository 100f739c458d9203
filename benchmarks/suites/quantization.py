"""Quantized tables: keras_embed.Embedding float32 vs int8, int4 per row and
int4 in blocks of 128 columns, and Keras's quantized keras.layers.Embedding
in the same modes; per call, eager and compiled, on torch under `no_grad`.
`params.table_bytes` = the layer's variables' bytes; `max_abs_diff` = the
largest difference of any row from the float table; `rss_mb` (memory
records) = peak RSS of a child process holding the layer, built straight
into its quantized variables as a reloaded model is, over three lookups.

Ratios are against the float keras_embed layer; compare `int8` with
`keras_int8` (and so on) for keras_embed against Keras in one mode.
"""

import time

import keras
import numpy as np
from keras import ops

import keras_embed
from benchmarks.harness import backends
from benchmarks.harness import memory
from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers

BASELINE = "float"
# impl: (quantization mode, int4 block size; -1 = one scale per row)
MODES = {
    "float": (None, None),
    "int8": ("int8", None),
    "int4": ("int4", -1),
    "int4_b128": ("int4", 128),
}
IMPLS = tuple(MODES) + tuple(f"keras_{m}" for m in MODES if m != "float")
_CALLS = 3
_ROWS_PER_CHUNK = 65536

# (cases (vocab, dim, ids shape), warmup, repeats, min_repeat_s)
GRIDS = {
    "full": (
        [
            (v, d, s)
            for v in (100_000, 1_000_000)
            for d in (128, 256)
            for s in ((32, 10), (4096, 50))
        ],
        2,
        11,
        0.02,
    ),
    "quick": (
        [(100_000, 128, (32, 10)), (100_000, 128, (512, 50))],
        1,
        7,
        0.005,
    ),
    "tiny": ([(64, 8, (2, 3))], 1, 2, 0.0),
}


def run(grid, log):
    cases, warmup, repeats, min_repeat_s = GRIDS[grid]
    found = []
    for vocab, dim, shape in cases:
        case = f"V={vocab:.0e} d={dim} ids={shape[0]}x{shape[1]}"
        log(f"quantization {case}")
        backends.reset_compiler()
        table = layers.weight_matrix(vocab, dim)
        ids = layers.random_ids(vocab, shape)
        built = {impl: quantized_layer(impl, table) for impl in IMPLS}
        errors = {
            impl: max_abs_diff(layer, table) for impl, layer in built.items()
        }
        _check_same_as_keras(built, ids)
        params = {"vocab": vocab, "dim": dim, "ids_shape": list(shape)}
        with backends.inference():
            for mode in backends.modes():
                calls = {
                    impl: _bind(
                        backends.compile_layer(layer, mode, grid == "tiny"), ids
                    )
                    for impl, layer in built.items()
                }
                timed = timing.round_robin(calls, warmup, repeats, min_repeat_s)
                for impl, stats in timed.items():
                    found.append(
                        records.record(
                            "quantization",
                            f"{case} {mode}",
                            impl,
                            {
                                **params,
                                "mode": mode,
                                "table_bytes": table_bytes(built[impl]),
                            },
                            stats,
                            max_abs_diff=errors[impl],
                        )
                    )
    found += _memory_records(grid, cases, log)
    return found


def quantized_layer(impl, table):
    """keras_embed's (or, for `keras_*`, Keras's) layer holding `table`,
    then quantized in the impl's mode."""
    mode, block_size = MODES[impl.removeprefix("keras_")]
    layer = layers.embedding(
        "keras" if impl.startswith("keras_") else "keras_embed", table
    )
    if mode == "int8":
        layer.quantize("int8")
    elif mode == "int4":
        config = keras.quantizers.Int4QuantizationConfig(block_size=block_size)
        layer.quantize("int4", config=config)
    return layer


def table_bytes(layer):
    """Bytes of every variable the layer holds (keras_embed's include its
    4-byte invalid-id counter)."""
    return int(
        sum(
            np.prod(w.shape, dtype="int64") * np.dtype(w.dtype).itemsize
            for w in layer.weights
        )
    )


def max_abs_diff(layer, table):
    """The largest difference of any looked-up row from the float table."""
    largest = 0.0
    for start in range(0, table.shape[0], _ROWS_PER_CHUNK):
        rows = np.arange(start, min(start + _ROWS_PER_CHUNK, table.shape[0]))
        got = ops.convert_to_numpy(layer(ops.convert_to_tensor(rows, "int32")))
        largest = max(largest, float(np.abs(got - table[rows]).max()))
    return largest


def _check_same_as_keras(built, ids):
    """Each keras_embed mode must give Keras's lookup in that mode."""
    for impl in MODES:
        if impl == "float":
            continue
        ours = ops.convert_to_numpy(built[impl](ids))
        theirs = ops.convert_to_numpy(built[f"keras_{impl}"](ids))
        if not np.allclose(ours, theirs, rtol=1e-6, atol=1e-6):
            raise AssertionError(f"{impl} differs from Keras's {impl} lookup")


def _bind(fn, ids):
    return lambda: fn(ids)


def _memory_records(grid, cases, log):
    vocabs = sorted({(v, d) for v, d, _ in cases})
    specs = [
        {"impl": impl, "vocab": v, "dim": d, "ids": [512, 50]}
        for v, d in vocabs
        for impl in IMPLS
    ]
    if grid == "tiny":
        specs = [{**spec, "ids": [2, 3]} for spec in specs]
    log(f"quantization memory: {len(specs)} cases")
    found = memory.isolated(
        "benchmarks.suites.quantization:measure_memory",
        specs,
        inline=grid == "tiny",
    )
    return found


def measure_memory(spec):
    """One memory case, in the current process; returns its record."""
    start = memory.peak_rss_mb()
    impl, vocab, dim = spec["impl"], spec["vocab"], spec["dim"]
    mode, block_size = MODES[impl.removeprefix("keras_")]
    policy = "float32"
    if mode == "int8":
        policy = "int8_from_float32"
    elif mode == "int4":
        policy = f"int4/{block_size}_from_float32"
    kind = (
        keras.layers.Embedding
        if impl.startswith("keras_")
        else keras_embed.Embedding
    )
    layer = kind(vocab, dim, dtype=policy)
    layer.build()
    lookup_mode = "eager" if backends.name() == "torch" else "compiled"
    lookup = backends.compile_layer(layer, lookup_mode)
    ids = layers.random_ids(vocab, spec["ids"])
    seconds = []
    with backends.inference():
        for _ in range(_CALLS):
            begin = time.perf_counter()
            backends.sync(lookup(ids))
            seconds.append(time.perf_counter() - begin)
    shape = "x".join(map(str, spec["ids"]))
    return records.record(
        "quantization",
        f"memory V={vocab:.0e} d={dim} ids={shape}",
        impl,
        {**spec, "mode": lookup_mode, "table_bytes": table_bytes(layer)},
        timing.stats(seconds),
        rss_mb=memory.peak_rss_mb() - start,
        device_mb=backends.device_peak_mb(),
    )
