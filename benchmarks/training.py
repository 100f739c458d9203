"""Training step through `model.fit`: keras_embed vs keras.layers.Embedding
(and layers.AlternativeEmbedding, the proposed formulation).

Method: the models (Embedding -> GlobalAveragePooling1D -> Dense(1), MSE)
start from the same weights and see the same batches. Each is warmed up
with one `fit` call (compilation), then `fit` calls of a few steps
alternate between the models for several rounds. A callback stamps the
start and the end of every step; the end waits for the step's loss to reach
the host, so asynchronous dispatch cannot hide work. The first step of each
timed `fit` call is dropped (iterator start-up).
"""

import time

import keras
import numpy as np

from benchmarks import layers
from benchmarks import timing

IMPLS = ("keras_embed", "keras", "keras_embed_alternative")
_SEEDED = keras.initializers.GlorotUniform(seed=0)


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])
        self.seconds.append(time.perf_counter() - self._start)


def run(grid, log):
    rows = []
    for case in grid.training:
        log(f"training {case.label}")
        rows.extend(run_case(case))
    return rows


def run_case(case):
    keras.utils.clear_session()
    models = dict(zip(IMPLS, build_models(case), strict=True))
    x, y = batches(case, case.warmup_steps + case.steps_per_round)
    for model in models.values():
        fit(model, x, y, case, case.warmup_steps)
    samples = {impl: [] for impl in IMPLS}
    for _ in range(case.rounds):
        for impl, model in models.items():
            samples[impl].extend(fit(model, x, y, case, case.steps_per_round))
    return [_row(case, impl, models[impl], samples[impl]) for impl in IMPLS]


def build_models(case):
    weights = layers.weight_matrix(case.vocab, case.dim)
    return [build_model(impl, weights, case) for impl in IMPLS]


def build_model(impl, weights, case):
    model = keras.Sequential(
        [
            keras.Input((case.sequence_length,), dtype="int32"),
            layers.build(impl, weights),
            keras.layers.GlobalAveragePooling1D(),
            # A seeded initializer gives both models the same Dense weights.
            keras.layers.Dense(1, kernel_initializer=_SEEDED),
        ]
    )
    model.compile(optimizer=_optimizer(case.optimizer), loss="mse")
    return model


def _optimizer(name):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=0.01)
    return keras.optimizers.Adam(learning_rate=0.001)


def batches(case, steps):
    rng = np.random.default_rng(2)
    n = steps * case.batch_size
    x = rng.integers(0, case.vocab, (n, case.sequence_length), dtype="int32")
    y = rng.standard_normal((n, 1), dtype="float32")
    return x, y


def fit(model, x, y, case, steps):
    timer = StepTimer()
    model.fit(
        x,
        y,
        batch_size=case.batch_size,
        epochs=1,
        steps_per_epoch=steps,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    return timer.seconds[1:]


def _row(case, impl, model, seconds):
    return {
        "vocab": case.vocab,
        "dim": case.dim,
        "optimizer": case.optimizer,
        "batch": [case.batch_size, case.sequence_length],
        "impl": impl,
        "jit_compile": bool(model.jit_compile),
        **timing.summarize(seconds),
    }
