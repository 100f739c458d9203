"""Forward lookup, per call: keras_embed.Embedding vs keras.layers.Embedding,
keras_embed without its id checks (`layer.storage.rows`), a bare `ops.take`
on the weights and the backend's native lookup, eager and compiled
(TensorFlow also with XLA); on torch under `no_grad`.

Every candidate reads its own copy of the table: on TensorFlow a native read
of a variable makes later Keras `take`s on that variable copy the whole
table (measured: 12 ms -> 512 ms per call at V=1e6, d=16).
"""

import numpy as np
from keras import ops

from benchmarks.harness import backends
from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers

BASELINE = "keras"
LAYERS = ("keras", "keras_embed", "keras_embed_unchecked")


def grid_cases(vocabs, dims, shapes):
    return [(v, d, s) for v in vocabs for d in dims for s in shapes]


# (cases (vocab, dim, ids shape), warmup, repeats, min_repeat_s)
GRIDS = {
    "full": (
        grid_cases(
            (1_000, 100_000, 1_000_000), (16, 128), ((32, 10), (4096, 50))
        ),
        2,
        11,
        0.02,
    ),
    "quick": (
        grid_cases((1_000, 100_000), (16,), ((32, 10), (4096, 50))),
        1,
        10,
        0.005,
    ),
    "tiny": ([(50, 4, (2, 3))], 1, 2, 0.0),
}


def run(grid, log):
    cases, warmup, repeats, min_repeat_s = GRIDS[grid]
    found = []
    for vocab, dim, shape in cases:
        case = f"V={vocab:.0e} d={dim} ids={shape[0]}x{shape[1]}"
        log(f"forward {case}")
        backends.reset_compiler()
        table = layers.weight_matrix(vocab, dim)
        ids = layers.random_ids(vocab, shape)
        built = {impl: layers.embedding(impl, table) for impl in LAYERS}
        params = {"vocab": vocab, "dim": dim, "ids_shape": list(shape)}
        with backends.inference():
            for mode in backends.modes():
                calls = _candidates(built, table, mode, grid == "tiny")
                calls = {name: _bind(fn, ids) for name, fn in calls.items()}
                _check_same_outputs(calls)
                timed = timing.round_robin(calls, warmup, repeats, min_repeat_s)
                for impl, stats in timed.items():
                    found.append(
                        records.record(
                            "forward",
                            f"{case} {mode}",
                            impl,
                            {**params, "mode": mode},
                            stats,
                        )
                    )
    return found


def _candidates(built, table, mode, cheap):
    found = {
        impl: backends.compile_layer(layer, mode, cheap)
        for impl, layer in built.items()
    }
    found["bare_take"] = backends.compile_fn(
        layers.bare_take, _own_copy(table), mode, cheap
    )
    found["native"] = backends.compile_fn(
        backends.native_lookup(), _own_copy(table).value, mode, cheap
    )
    return found


def _own_copy(table):
    return layers.embedding("keras", table).embeddings


def _bind(fn, ids):
    return lambda: fn(ids)


def _check_same_outputs(calls):
    """Every candidate must return keras.layers.Embedding's output."""
    expected = ops.convert_to_numpy(calls["keras"]())
    for name, call in calls.items():
        if not np.array_equal(ops.convert_to_numpy(call()), expected):
            raise AssertionError(f"{name} returned a different lookup")
