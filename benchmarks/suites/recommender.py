"""A real model: keras-io's "Collaborative Filtering for Movie
Recommendations" (RecommenderNet), built once with keras.layers.Embedding
and once with keras_embed.Embedding, trained with the default `fit` of each
backend: the first `fit` call (trace + one step) and the step time of an
epoch of 313 steps.

Four embeddings: users 610 x 50 and movies 9000 x 50 (`he_normal`, l2(1e-6)
regularizer) and two bias tables of dimension 1; a per-example dot product
plus the biases, sigmoid; Adam 1e-3, batch 64; synthetic ids and ratings
(no download). The two models are timed interleaved in one process; a
"pair" is one fresh model of each, and the full grid runs two pairs. Ratio:
keras time / keras_embed time (above 1 = keras_embed faster).
"""

import time

import keras
import numpy as np
from keras import ops

import keras_embed
from benchmarks.harness import records
from benchmarks.harness import timing

BASELINE = "keras"
IMPLEMENTATIONS = {"keras": keras.layers, "keras_embed": keras_embed}

# (users, movies, dim, batch, steps per epoch, pairs, epochs timed)
GRIDS = {
    "full": (610, 9000, 50, 64, 313, 2, 5),
    "quick": (610, 9000, 50, 64, 313, 2, 3),
    "tiny": (5, 7, 2, 4, 3, 1, 1),
}


def recommender(layers, users, movies, dim):
    """keras-io's RecommenderNet, with `layers.Embedding`."""
    pair = keras.Input((2,), dtype="int32")
    user, movie = pair[:, 0], pair[:, 1]
    table = dict(
        embeddings_initializer="he_normal",
        embeddings_regularizer=keras.regularizers.l2(1e-6),
    )
    user_vector = layers.Embedding(users, dim, **table)(user)
    movie_vector = layers.Embedding(movies, dim, **table)(movie)
    user_bias = layers.Embedding(users, 1)(user)
    movie_bias = layers.Embedding(movies, 1)(movie)
    dot = ops.sum(user_vector * movie_vector, axis=1, keepdims=True)
    outputs = ops.sigmoid(dot + user_bias + movie_bias)
    model = keras.Model(pair, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
    )
    return model


def data(users, movies, batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    count = batch * steps
    x = np.stack(
        [rng.integers(users, size=count), rng.integers(movies, size=count)],
        axis=1,
    ).astype("int32")
    y = rng.random((count, 1)).astype("float32")
    return x, y


def run(grid, log):
    users, movies, dim, batch, steps, pairs, epochs = GRIDS[grid]
    x, y = data(users, movies, batch, steps)
    params = {
        "users": users, "movies": movies, "dim": dim, "batch": batch,
        "steps": steps,
    }  # fmt: skip
    # The backend's one-time start-up is paid by an untimed pair first, and
    # the order alternates between pairs, so neither layer is charged it.
    for layers in IMPLEMENTATIONS.values():
        recommender(layers, users, movies, dim).fit(
            x[:batch], y[:batch], batch_size=batch, verbose=0
        )
    found = []
    for pair in range(pairs):
        log(f"recommender pair {pair + 1}/{pairs}")
        models, first = {}, {}
        order = list(IMPLEMENTATIONS.items())
        for impl, layers in order if pair % 2 == 0 else order[::-1]:
            keras.utils.set_random_seed(pair)
            models[impl] = recommender(layers, users, movies, dim)
            start = time.perf_counter()
            models[impl].fit(x[:batch], y[:batch], batch_size=batch, verbose=0)
            first[impl] = time.perf_counter() - start
        epoch_times = {impl: [] for impl in models}
        for _ in range(epochs):
            for impl, model in models.items():
                start = time.perf_counter()
                model.fit(x, y, batch_size=batch, shuffle=False, verbose=0)
                epoch_times[impl].append((time.perf_counter() - start) / steps)
        for impl in models:
            found.append(
                records.record(
                    "recommender",
                    f"first fit (trace + 1 step), pair {pair + 1}",
                    impl,
                    params,
                    timing.stats([first[impl]]),
                )
            )
            found.append(
                records.record(
                    "recommender",
                    f"fit step, pair {pair + 1}",
                    impl,
                    params,
                    timing.stats(epoch_times[impl]),
                )
            )
    return found
