"""Id checks: eager forward of keras_embed.Embedding vs keras.layers.Embedding
(validity decided with NumPy for ids in CPU memory, else on the device with
one small read), compiled forward with and without the invalid-id counter,
and a compiled `fit` step of a small four-lookup model (as keras-io's
collaborative filtering example) with each layer.

`keras_embed_uncounted` is keras_embed with its invalid-id count update
turned off (`layers.uncounted`): `keras_embed / keras_embed_uncounted` is
what the counter costs. The suite fails unless, after a compiled `fit` on
an invalid id, the uncounted layer counted nothing and ours counted it. (On
JAX a compiled forward call alone never counts: its count is added in the
trainer's metrics update, which only `fit` and `evaluate` run.)
"""

import keras
import numpy as np

import keras_embed
from benchmarks.harness import backends
from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers

BASELINE = "keras"

# (lookup cases (vocab, dim, ids shape), fit steps?, warmup, repeats, min_s)
GRIDS = {
    "full": (
        [(100_000, 16, (4096, 50)), (100_000, 16, (16384, 64))],
        True,
        2,
        11,
        0.05,
    ),
    "quick": (
        [(100_000, 16, (4096, 50)), (100_000, 16, (16384, 64))],
        True,
        1,
        7,
        0.02,
    ),
    "tiny": ([(50, 4, (2, 3))], True, 1, 2, 0.0),
}


def run(grid, log):
    cases, fit, warmup, repeats, min_s = GRIDS[grid]
    found = []
    for vocab, dim, shape in cases:
        case = f"V={vocab:.0e} d={dim} ids={shape[0]}x{shape[1]}"
        log(f"id_checks {case}")
        table = layers.weight_matrix(vocab, dim)
        ids = layers.random_ids(vocab, shape)
        built = {
            impl: layers.embedding(impl, table)
            for impl in ("keras", "keras_embed")
        }
        built["keras_embed_uncounted"] = _uncounted(table)
        params = {"vocab": vocab, "dim": dim, "ids_shape": list(shape)}
        with backends.inference():
            for mode in ("eager", "compiled"):
                impls = built if mode == "compiled" else _no(built)
                calls = {
                    impl: _bind(
                        backends.compile_layer(layer, mode, grid == "tiny"),
                        ids,
                    )
                    for impl, layer in impls.items()
                }
                timed = timing.round_robin(calls, warmup, repeats, min_s)
                for impl, stats in timed.items():
                    found.append(
                        records.record(
                            "id_checks",
                            f"forward {case} {mode}",
                            impl,
                            {**params, "mode": mode},
                            stats,
                        )
                    )
    if fit:
        found += _fit_steps(grid, warmup, repeats, min_s, log)
    return found


def _no(built):
    return {k: v for k, v in built.items() if k != "keras_embed_uncounted"}


def _uncounted(table):
    return layers.uncounted(layers.embedding("keras_embed", table))


def _bind(fn, ids):
    ids = keras.ops.convert_to_tensor(ids)
    return lambda: fn(ids)


def _fit_steps(grid, warmup, repeats, min_s, log):
    users, movies, dim, batch = (610, 9724, 50, 64)
    if grid == "tiny":
        users, movies, dim, batch = (5, 7, 2, 4)
    log(f"id_checks fit step: 4 lookups, batch {batch}")
    rng = np.random.default_rng(0)
    x = np.stack(
        [rng.integers(users, size=batch), rng.integers(movies, size=batch)],
        axis=1,
    ).astype("int32")
    y = rng.random((batch, 1)).astype("float32")
    models = {
        impl: _recommender(kind, users, movies, dim)
        for impl, kind in (
            ("keras", keras.layers.Embedding),
            ("keras_embed", keras_embed.Embedding),
            ("keras_embed_uncounted", keras_embed.Embedding),
        )
    }
    for layer in _embeddings(models["keras_embed_uncounted"]):
        layers.uncounted(layer)
    calls = {impl: _train_step(m, x, y) for impl, m in models.items()}
    timed = timing.round_robin(calls, warmup, repeats, min_s)
    _check_uncounted_counts_nothing(models, x, y)
    params = {"users": users, "movies": movies, "dim": dim, "batch": batch}
    return [
        records.record(
            "id_checks",
            "fit step, 4 lookups, batch 64, jit_compile=auto",
            impl,
            params,
            stats,
        )
        for impl, stats in timed.items()
    ]


def _embeddings(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras_embed.Embedding)
    ]


def _check_uncounted_counts_nothing(models, x, y):
    bad = x.copy()
    bad[0, 0] = -1
    counts = {}
    for impl in ("keras_embed", "keras_embed_uncounted"):
        for layer in _embeddings(models[impl]):
            layer.reset_invalid_id_count()
        # Compiled on every backend: torch's default `fit` is eager, where
        # the layer raises instead of counting.
        models[impl].compile("adam", "binary_crossentropy", jit_compile=True)
        models[impl].fit(bad, y, batch_size=len(bad), verbose=0)
        counts[impl] = [
            layer.invalid_id_count for layer in _embeddings(models[impl])
        ]
    counted = sum(counts["keras_embed"])
    if counted == 0 or sum(counts["keras_embed_uncounted"]) != 0:
        raise AssertionError(
            "the uncounted baseline must count nothing and keras_embed must "
            f"count the invalid id, but counted {counts}"
        )


def _recommender(kind, users, movies, dim):
    """keras-io's RecommenderNet: dot of two embeddings plus two biases."""
    pair = keras.Input((2,), dtype="int32")
    user, movie = pair[:, 0], pair[:, 1]
    dot = keras.ops.sum(
        kind(users, dim)(user) * kind(movies, dim)(movie), axis=1
    )
    bias = kind(users, 1)(user)[:, 0] + kind(movies, 1)(movie)[:, 0]
    out = keras.layers.Activation("sigmoid")(
        keras.ops.expand_dims(dot + bias, 1)
    )
    model = keras.Model(pair, out)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    return model


def _train_step(model, x, y):
    def step():
        return model.train_on_batch(x, y)

    return step
