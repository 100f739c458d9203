"""Row-sparse training vs vocabulary size, per `fit` step (issue 16's grid:
V=1e5 and 1e7, D=16 and 64, 1024 x 10 ids per step): ids -> Embedding ->
GlobalAveragePooling1D -> Dense(1) -> MSE trained with keras_embed's
row-sparse table (`lazy_adam`, `rowwise_adagrad`; `sgd` on TensorFlow),
with keras.layers.Embedding + dense Adam (the baseline), and with each
backend's own sparse training loop on the same ids: PyTorch
`nn.Embedding(sparse=True)` + `SparseAdam` and dense `nn.Embedding` +
`Adam`; TensorFlow `tf.gather` on a `tf.Variable` whose `IndexedSlices`
gradient `scatter_sub` applies (SGD) in a `tf.function`. `numpy_rows` is
the same random-row traffic as a LazyAdam step (gather 10,240 rows, then
gather and scatter the unique rows of the table and two slots) in NumPy,
without any framework: this machine's floor for the V=1e7 / 1e5 growth.

At V=1e5 the models are built side by side in this process and timed
interleaved, fit call by fit call. At V=1e7 they do not fit side by side
(24 GB), so each impl runs alone in a forked child
(harness/memory.py, same ids), timed there: `rss_mb` is its peak RSS minus
its RSS just before the model is built, `params.state_mb` its table plus
optimizer state, `params` also the build's peak (initializers), the RSS
after the build and the steps' peak. keras_embed's impls run once more
with a zeros initializer, whose build holds no temporaries. `python -m
benchmarks.row_sparse_targets RESULTS.json` prints the issue's targets.
"""

import gc
import time

import keras
import numpy as np

import keras_embed
from benchmarks.harness import backends
from benchmarks.harness import memory
from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import training

BASELINE = "keras"
LENGTH = training.LENGTH

IMPLS = {
    "tensorflow": ("keras_embed_sgd", "tf_indexed_slices_sgd"),
    "torch": ("torch_sparse_adam", "torch_dense_adam"),
    "jax": (),
}
COMMON = (
    "keras",
    "keras_embed_lazy_adam",
    "keras_embed_rowwise_adagrad",
    "numpy_rows",
)
# Table-sized arrays each impl holds: table + optimizer slots.
STATE_TABLES = {
    "keras": 3,
    "keras_embed_lazy_adam": 3,
    "keras_embed_sgd": 1,
    "tf_indexed_slices_sgd": 1,
    "torch_sparse_adam": 3,
    "torch_dense_adam": 3,
    "numpy_rows": 3,
}
# Dense updates: every step touches the whole table.
DENSE = ("keras", "torch_dense_adam")

# steps: (warm-up steps, rounds, steps per round) for row-wise impls and
# for dense ones at V >= 1e6 (seconds a step there).
GRIDS = {
    "full": {
        "cases": [(v, d) for v in (100_000, 10_000_000) for d in (16, 64)],
        "fast": (3, 5, 6),
        "slow": (1, 2, 3),
        "alone_from": 1_000_000,
        "batch": training.BATCH,
    },
    "quick": {
        "cases": [(v, d) for v in (100_000, 10_000_000) for d in (16, 64)],
        "fast": (2, 3, 5),
        "slow": (1, 1, 3),
        "alone_from": 1_000_000,
        "batch": training.BATCH,
    },
    "tiny": {
        "cases": [(50, 4), (60, 4)],
        "fast": (1, 1, 2),
        "slow": (1, 1, 2),
        "alone_from": 60,
        "batch": 8,
    },
}


# (impl, vocab, dim) to leave out, e.g. dense Adam at V=1e7, D=64 (10-17
# GB on a 24 GB machine shared with other jobs).
SKIP = set()


def impls(vocab, dim):
    found = COMMON + IMPLS[backends.name()]
    return [impl for impl in found if (impl, vocab, dim) not in SKIP]


def run(grid, log):
    plan = GRIDS[grid]
    found = []
    for vocab, dim in plan["cases"]:
        log(f"row_sparse {_case(vocab, dim)}")
        specs = [
            {"impl": impl, "vocab": vocab, "dim": dim, "batch": plan["batch"]}
            for impl in impls(vocab, dim)
        ]
        for spec in specs:
            spec["steps"] = plan["fast"]
            if spec["impl"] in DENSE and vocab >= 1e6:
                spec["steps"] = plan["slow"]
        if vocab < plan["alone_from"]:
            found += _interleaved(specs)
        else:
            # Too big side by side, and TensorFlow's oneDNN allocator keeps
            # a freed model's memory: each impl in a fresh child instead.
            found += memory.isolated(
                "benchmarks.suites.row_sparse:time_alone",
                [{**s, "initializer": "uniform"} for s in specs],
                inline=grid == "tiny",
            )
    # Zeros: the steps' memory once no initializer temporaries are left
    # (Keras's uniform initializers hold 3-4 tables at once).
    zeros = [
        {
            "impl": impl,
            "vocab": vocab,
            "dim": dim,
            "batch": plan["batch"],
            "initializer": "zeros",
            "steps": plan["slow"] if impl in DENSE else (1, 1, 3),
        }
        for vocab, dim in plan["cases"]
        if vocab >= plan["alone_from"]
        for impl in impls(vocab, dim)
        if impl.startswith("keras")  # keras: the records' baseline
    ]
    log(f"row_sparse: peak RSS of {len(zeros)} zeros-initialized models")
    found += memory.isolated(
        "benchmarks.suites.row_sparse:time_alone", zeros, inline=grid == "tiny"
    )
    return found


def _case(vocab, dim):
    return f"V={vocab:.0e} d={dim}"


def _params(spec, **more):
    return {
        "vocab": spec["vocab"],
        "dim": spec["dim"],
        "batch": [spec["batch"], LENGTH],
        "mode": "fit",
        **more,
    }


def _interleaved(specs):
    """Every impl built side by side in this process, then timed fit call
    by fit call in turn."""
    vocab, batch = specs[0]["vocab"], specs[0]["batch"]
    x, y = training.batches(vocab, batch, max(_batches(s) for s in specs))
    runners = [make_runner(s["impl"], vocab, s["dim"], batch) for s in specs]
    seconds = [[] for _ in specs]
    for spec, runner in zip(specs, runners, strict=True):
        runner.steps(x, y, spec["steps"][0])
    for round_ in range(max(s["steps"][1] for s in specs)):
        for i, (spec, runner) in enumerate(zip(specs, runners, strict=True)):
            if round_ < spec["steps"][1]:
                seconds[i] += runner.steps(x, y, spec["steps"][2])
    del runners
    keras.utils.clear_session()
    gc.collect()
    return [
        records.record(
            "row_sparse",
            _case(spec["vocab"], spec["dim"]),
            spec["impl"],
            _params(spec, interleaved=True),
            timing.stats(times),
        )
        for spec, times in zip(specs, seconds, strict=True)
    ]


def _batches(spec):
    warmup, _, per_round = spec["steps"]
    return max(warmup, per_round)


def time_alone(spec):
    """One impl in this (forked) process: its step times, and its peak RSS
    over the RSS just before the model is built (`rss_mb`), split into the
    build's peak (initializers), the RSS after it and the steps' peak."""
    vocab, dim, batch = spec["vocab"], spec["dim"], spec["batch"]
    warmup, rounds, per_round = spec["steps"]
    x, y = training.batches(vocab, batch, max(warmup, per_round))
    memory.reset_peak_rss()
    start = memory.current_rss_mb()
    runner = make_runner(spec["impl"], vocab, dim, batch, spec["initializer"])
    runner.sync()
    build_peak, built = memory.peak_rss_mb(), memory.current_rss_mb()
    memory.reset_peak_rss()
    runner.steps(x, y, warmup)
    seconds = []
    for _ in range(rounds):
        seconds += runner.steps(x, y, per_round)
    train_peak = memory.peak_rss_mb()
    case = _case(vocab, dim)
    if spec["initializer"] != "uniform":
        case = f"memory {case} {spec['initializer']} init"
    return records.record(
        "row_sparse",
        case,
        spec["impl"],
        _params(
            spec,
            interleaved=False,
            initializer=spec["initializer"],
            state_mb=_state_bytes(spec["impl"], vocab, dim) / 2**20,
            build_peak_mb=build_peak - start,
            built_mb=built - start,
            train_peak_mb=train_peak - start,
        ),
        timing.stats(seconds),
        rss_mb=max(build_peak, train_peak) - start,
        device_mb=backends.device_peak_mb(),
    )


def _state_bytes(impl, vocab, dim):
    if impl == "keras_embed_rowwise_adagrad":
        return 4 * vocab * (dim + 1)
    return 4 * vocab * dim * STATE_TABLES[impl]


def make_runner(impl, vocab, dim, batch, initializer="uniform"):
    """An object whose `steps(x, y, n)` runs `n` training steps on the
    first `n` batches and returns the seconds of all steps but the first,
    and whose `sync()` waits for its state to be computed."""
    if impl == "torch_sparse_adam":
        return _TorchLoop(vocab, dim, batch, sparse=True)
    if impl == "torch_dense_adam":
        return _TorchLoop(vocab, dim, batch, sparse=False)
    if impl == "tf_indexed_slices_sgd":
        return _TensorFlowLoop(vocab, dim, batch)
    if impl == "numpy_rows":
        return _NumpyRows(vocab, dim, batch)
    return _KerasFit(impl, vocab, dim, batch, initializer)


class _KerasFit:
    def __init__(self, impl, vocab, dim, batch, initializer):
        self.batch = batch
        if initializer == "uniform":
            initializer = keras.initializers.RandomUniform(seed=0)
        if impl.endswith("sgd"):
            optimizer = keras.optimizers.SGD(learning_rate=0.01)
        else:
            optimizer = keras.optimizers.Adam(learning_rate=0.001)
        if impl == "keras":
            embedding = keras.layers.Embedding(
                vocab, dim, embeddings_initializer=initializer
            )
        else:
            embedding = keras_embed.Embedding(
                vocab,
                dim,
                embeddings_initializer=initializer,
                sparse_optimizer=impl.removeprefix("keras_embed_"),
                max_ids_per_step=batch * LENGTH,
            )
        self.model = keras.Sequential(
            [
                keras.Input((LENGTH,), dtype="int32"),
                embedding,
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(
                    1, kernel_initializer=keras.initializers.GlorotUniform(0)
                ),
            ]
        )
        self.model.compile(optimizer=optimizer, loss="mse")

    def steps(self, x, y, count):
        return training.fit(self.model, x, y, self.batch, count)

    def sync(self):
        for weight in self.model.weights:
            backends.sync(weight.value)


class _NativeLoop:
    """Times `step(ids, y)` over the batches, each step synced by reading
    its loss on the host."""

    def sync(self):
        """CPU tensors and NumPy arrays are computed when created."""

    def steps(self, x, y, count):
        seconds = []
        for i in range(count):
            start, stop = i * self.batch, (i + 1) * self.batch
            ids, targets = self.inputs(x, y, start, stop)
            began = time.perf_counter()
            float(self.step(ids, targets))
            seconds.append(time.perf_counter() - began)
        return seconds[1:]


class _TorchLoop(_NativeLoop):
    def __init__(self, vocab, dim, batch, sparse):
        import torch

        self.torch = torch
        self.batch = batch
        self.embedding = torch.nn.Embedding(vocab, dim, sparse=sparse)
        self.dense = torch.nn.Linear(dim, 1)
        if sparse:
            self.optimizers = [
                torch.optim.SparseAdam(self.embedding.parameters(), lr=1e-3),
                torch.optim.Adam(self.dense.parameters(), lr=1e-3),
            ]
        else:
            parameters = [*self.embedding.parameters()]
            parameters += [*self.dense.parameters()]
            self.optimizers = [torch.optim.Adam(parameters, lr=1e-3)]

    def inputs(self, x, y, start, stop):
        torch = self.torch
        return torch.from_numpy(x[start:stop]), torch.from_numpy(y[start:stop])

    def step(self, ids, targets):
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        pooled = self.embedding(ids).mean(dim=1)
        loss = self.torch.nn.functional.mse_loss(self.dense(pooled), targets)
        loss.backward()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss.item()


class _TensorFlowLoop(_NativeLoop):
    def __init__(self, vocab, dim, batch):
        import tensorflow as tf

        self.batch = batch
        self.table = tf.Variable(
            tf.random.stateless_uniform((vocab, dim), (0, 0), -0.05, 0.05)
        )
        self.kernel = tf.Variable(tf.random.stateless_normal((dim, 1), (0, 1)))
        self.bias = tf.Variable(tf.zeros((1,)))
        self.step = tf.function(self._step)
        self.tf = tf

    def inputs(self, x, y, start, stop):
        return self.tf.constant(x[start:stop]), self.tf.constant(y[start:stop])

    def _step(self, ids, targets):
        tf = self.tf
        learning_rate = 0.01
        with tf.GradientTape() as tape:
            pooled = tf.reduce_mean(tf.gather(self.table, ids), axis=1)
            predictions = tf.matmul(pooled, self.kernel) + self.bias
            loss = tf.reduce_mean(tf.square(predictions - targets))
        rows, kernel, bias = tape.gradient(
            loss, [self.table, self.kernel, self.bias]
        )
        self.table.scatter_sub(
            tf.IndexedSlices(learning_rate * rows.values, rows.indices)
        )
        self.kernel.assign_sub(learning_rate * kernel)
        self.bias.assign_sub(learning_rate * bias)
        return loss


class _NumpyRows(_NativeLoop):
    def __init__(self, vocab, dim, batch):
        self.batch = batch
        # Written, not np.zeros: every page resident, as a trained table.
        self.arrays = [np.full((vocab, dim), 0.5, "float32") for _ in range(3)]

    def inputs(self, x, y, start, stop):
        return x[start:stop].ravel(), None

    def step(self, ids, targets):
        looked_up = self.arrays[0][ids]
        unique = np.unique(ids)
        for array in self.arrays:
            array[unique] = array[unique] * 0.999 + 0.001
        return looked_up[0, 0]
