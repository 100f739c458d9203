"""Forward lookup: keras_embed vs keras.layers.Embedding vs native lookup."""

import numpy as np
from keras import ops

from benchmarks import alternatives
from benchmarks import backends
from benchmarks import layers
from benchmarks import timing

# Timed beside the lookups: a NumPy copy into a new array of the output's
# size, the same bytes written (and as many read) as a lookup that
# allocates its output; the lookups' "% of copy" is against it.
COPY = "numpy_copy"


def run(grid, log):
    rows = []
    for case in grid.forward:
        log(f"forward {case.label}")
        rows.extend(run_case(case, grid))
    return rows


def run_case(case, grid):
    backends.reset_compiler()
    table = layers.weight_matrix(case.vocab, case.dim)
    built = {impl: layers.build(impl, table) for impl in layers.LAYER_CLASSES}
    ids = ops.convert_to_tensor(layers.random_ids(case.vocab, case.ids_shape))
    rows = []
    with backends.inference():
        for mode in backends.modes():
            candidates = _candidates(
                mode, built, table, case.vocab, grid.cheap_compile
            )
            calls = {name: _bind(fn, ids) for name, fn in candidates.items()}
            _check_same_outputs(calls)
            calls[COPY] = _output_sized_copy(case)
            stats = timing.time_round_robin(
                calls,
                backends.sync,
                grid.warmup,
                grid.repeats,
                grid.min_repeat_s,
            )
            copy_s = stats[COPY]["median_s"]
            for impl, entry in stats.items():
                rows.append(_row(case, mode, impl, entry, copy_s))
    return rows


def _candidates(mode, built, table, vocab, cheap):
    """Every candidate reads its own copy of `table`: on TensorFlow, a
    native or dense read of a variable makes later Keras `take`s on that
    variable copy the whole table (measured: 12 ms -> 512 ms per call at
    V=1e6, d=16), so sharing one variable would slow the layer down."""
    native = backends.native_lookup()
    xla = mode == backends.XLA_MODE
    native_weights = _own_copy(table).value
    if mode == "eager":
        found = dict(built)
        found["native"] = _eager(native, native_weights)
    else:
        found = {
            impl: backends.compile_layer(layer, cheap, xla)
            for impl, layer in built.items()
        }
        found["native"] = backends.compile_pure(
            native, native_weights, cheap, xla
        )
    for name, (fn, modes, skipped) in alternatives.ALTERNATIVES.items():
        if mode not in modes or backends.name() in skipped:
            continue
        pure = _with_vocab(fn, vocab)
        weights = backends.weights_of(_own_copy(table))
        if mode == "eager":
            found[name] = _eager(pure, weights)
        else:
            found[name] = backends.compile_pure(pure, weights, cheap, xla)
    return found


def _own_copy(table):
    return layers.build("keras_embed", table).embeddings


def _with_vocab(fn, vocab):
    return lambda weights, ids: fn(weights, ids, vocab)


def _eager(fn, weights):
    return lambda ids: fn(weights, ids)


def _bind(fn, ids):
    return lambda: fn(ids)


def _output_sized_copy(case):
    source = np.ones((*case.ids_shape, case.dim), dtype="float32")
    return source.copy


def _check_same_outputs(calls):
    """Every candidate must return keras.layers.Embedding's output."""
    expected = _head(calls["keras"]())
    for name, call in calls.items():
        got = _head(call())
        if not np.array_equal(got, expected):
            raise AssertionError(f"{name} returned a different lookup")


def _head(output):
    return ops.convert_to_numpy(output[:2])


def _row(case, mode, impl, stats, copy_s):
    output_bytes = int(np.prod(case.ids_shape)) * case.dim * 4
    gb_per_s = output_bytes / stats["median_s"] / 1e9
    return {
        "vocab": case.vocab,
        "dim": case.dim,
        "ids_shape": list(case.ids_shape),
        "mode": mode,
        "impl": impl,
        **stats,
        "output_bytes": output_bytes,
        "output_gb_per_s": gb_per_s,
        "copy_fraction": copy_s / stats["median_s"],
    }
