"""Training step through `model.fit`, per step: keras_embed.Embedding vs
keras.layers.Embedding in Embedding -> GlobalAveragePooling1D -> Dense(1),
MSE, with Keras' default jit_compile for the backend.

The models start from the same weights and see the same batches. Each is
warmed up by one `fit` call (compilation), then `fit` calls of a few steps
alternate between the models for several rounds. A callback stamps each
step; a step ends when its loss is on the host, so asynchronous dispatch
hides nothing. The first step of each timed `fit` call is dropped.
"""

import keras
import numpy as np

from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers

BASELINE = "keras"
IMPLS = ("keras", "keras_embed")
BATCH, LENGTH = 1024, 10


def grid_cases(vocabs, dim, optimizers, steps):
    # steps[vocab]: (warm-up steps, rounds, steps per round)
    return [(v, dim, o, *steps[v]) for v in vocabs for o in optimizers]


GRIDS = {
    "full": grid_cases(
        (10_000, 1_000_000),
        64,
        ("sgd", "adam"),
        {10_000: (3, 6, 4), 1_000_000: (2, 5, 3)},
    ),
    "quick": grid_cases((10_000,), 64, ("sgd",), {10_000: (2, 4, 3)}),
    "tiny": [(50, 4, "sgd", 1, 1, 2)],
}


def run(grid, log):
    return time_fit("training", IMPLS, GRIDS[grid], grid == "tiny", log)


def time_fit(suite, impls, cases, tiny, log):
    """Step times of one model per impl, per case; used by row_sparse too."""
    batch = 8 if tiny else BATCH
    found = []
    for vocab, dim, optimizer, warmup, rounds, per_round in cases:
        case = f"V={vocab:.0e} d={dim} {optimizer}"
        log(f"{suite} {case}")
        keras.utils.clear_session()
        table = layers.weight_matrix(vocab, dim)
        models = {i: build_model(i, table, optimizer, batch) for i in impls}
        x, y = batches(vocab, batch, warmup + per_round)
        for model in models.values():
            fit(model, x, y, batch, warmup)
        seconds = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl, model in models.items():
                seconds[impl] += fit(model, x, y, batch, per_round)
        params = {
            "vocab": vocab,
            "dim": dim,
            "optimizer": optimizer,
            "batch": [batch, LENGTH],
        }
        for impl, model in models.items():
            found.append(
                records.record(
                    suite,
                    case,
                    impl,
                    {**params, "jit_compile": bool(model.jit_compile)},
                    timing.stats(seconds[impl]),
                )
            )
    return found


def build_model(impl, table, optimizer, batch):
    """`impl` as in `layers.embedding`, or "keras_embed_row_sparse": the
    table trained row-wise by the same Keras optimizer (Adam made lazy)."""
    kwargs = {}
    if impl == "keras_embed_row_sparse":
        impl = "keras_embed"
        kwargs = {
            "sparse_optimizer": _optimizer(optimizer),
            "max_ids_per_step": batch * LENGTH,
        }
    model = keras.Sequential(
        [
            keras.Input((LENGTH,), dtype="int32"),
            layers.embedding(impl, table, **kwargs),
            keras.layers.GlobalAveragePooling1D(),
            # Seeded: every model gets the same Dense weights.
            keras.layers.Dense(
                1, kernel_initializer=keras.initializers.GlorotUniform(0)
            ),
        ]
    )
    model.compile(optimizer=_optimizer(optimizer), loss="mse")
    return model


def _optimizer(name):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=0.01)
    return keras.optimizers.Adam(learning_rate=0.001)


def batches(vocab, batch, steps):
    rng = np.random.default_rng(2)
    n = steps * batch
    x = rng.integers(0, vocab, (n, LENGTH), dtype="int32")
    return x, rng.standard_normal((n, 1), dtype="float32")


def fit(model, x, y, batch, steps):
    """Seconds per step of a `fit` call of `steps` steps, but the first."""
    timer = timing.StepTimer()
    model.fit(
        x,
        y,
        batch_size=batch,
        steps_per_epoch=steps,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    return timer.seconds[1:]
