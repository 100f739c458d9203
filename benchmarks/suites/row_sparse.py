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
At V=1e7 each impl also runs alone in a forked child (harness/memory.py):
`rss_mb` is its peak RSS minus its RSS just before the model is built,
`params.state_mb` its table plus optimizer state, `params` also the peak
of the build alone and of the steps alone; keras_embed's impls run a
second time with a zeros initializer, whose build holds no temporaries.

Where all models of a case fit in `RESIDENT_BYTES` they are built side by
side and timed interleaved, fit call by fit call; otherwise (V=1e7) each
is built, timed and freed in turn, in the same process. `python -m
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
RESIDENT_BYTES = 4 * 2**30

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
        "memory_vocab": 10_000_000,
        "batch": training.BATCH,
    },
    "quick": {
        "cases": [(v, d) for v in (100_000, 10_000_000) for d in (16, 64)],
        "fast": (2, 3, 5),
        "slow": (1, 1, 3),
        "memory_vocab": 10_000_000,
        "batch": training.BATCH,
    },
    "tiny": {
        "cases": [(50, 4)],
        "fast": (1, 1, 2),
        "slow": (1, 1, 2),
        "memory_vocab": 50,
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
        found += _time_case(vocab, dim, plan, log)
    memory_specs = [
        {
            "impl": impl,
            "vocab": vocab,
            "dim": dim,
            "batch": plan["batch"],
            "initializer": initializer,
        }
        for vocab, dim in plan["cases"]
        if vocab == plan["memory_vocab"]
        for initializer in ("uniform", "zeros")
        for impl in impls(vocab, dim)
        # Zeros: what the steps need once the initializer's temporaries
        # are gone (Keras's uniform initializers hold 3-4 tables at once).
        if initializer == "uniform" or impl.startswith("keras")
    ]
    log(f"row_sparse: peak RSS of {len(memory_specs)} cases, one child each")
    found += memory.isolated(
        "benchmarks.suites.row_sparse:measure_memory",
        memory_specs,
        inline=grid == "tiny",
    )
    return found


def _case(vocab, dim):
    return f"V={vocab:.0e} d={dim}"


def _time_case(vocab, dim, plan, log):
    log(f"row_sparse {_case(vocab, dim)}")
    batch = plan["batch"]
    names = impls(vocab, dim)
    steps = {
        impl: plan["slow" if impl in DENSE and vocab >= 1e6 else "fast"]
        for impl in names
    }
    x, y = training.batches(
        vocab, batch, max(sum(s[::2]) for s in steps.values())
    )
    resident = sum(_state_bytes(i, vocab, dim) for i in names) <= RESIDENT_BYTES
    seconds = {}
    if resident:
        runners = {i: make_runner(i, vocab, dim, batch) for i in names}
        for impl, runner in runners.items():
            runner.steps(x, y, steps[impl][0])
        for round_ in range(max(s[1] for s in steps.values())):
            for impl, runner in runners.items():
                if round_ < steps[impl][1]:
                    seconds.setdefault(impl, [])
                    seconds[impl] += runner.steps(x, y, steps[impl][2])
        del runners
    else:
        for impl in names:
            runner = make_runner(impl, vocab, dim, batch)
            warmup, rounds, per_round = steps[impl]
            runner.steps(x, y, warmup)
            seconds[impl] = []
            for _ in range(rounds):
                seconds[impl] += runner.steps(x, y, per_round)
            del runner
            _free()
    _free()
    return [
        records.record(
            "row_sparse",
            _case(vocab, dim),
            impl,
            {
                "vocab": vocab,
                "dim": dim,
                "batch": [batch, LENGTH],
                "mode": "fit",
                "interleaved": resident,
            },
            timing.stats(seconds[impl]),
        )
        for impl in names
    ]


def _free():
    keras.utils.clear_session()
    gc.collect()


def _state_bytes(impl, vocab, dim):
    if impl == "keras_embed_rowwise_adagrad":
        return 4 * vocab * (dim + 1)
    return 4 * vocab * dim * STATE_TABLES[impl]


def measure_memory(spec):
    """One impl at one size in this (forked) process: `rss_mb` is the peak
    RSS over the RSS just before the model is built, steps included;
    `params` split it into the build (initializers) and the steps."""
    vocab, dim, batch = spec["vocab"], spec["dim"], spec["batch"]
    x, y = training.batches(vocab, batch, 4)
    memory.reset_peak_rss()
    start = memory.current_rss_mb()
    runner = make_runner(spec["impl"], vocab, dim, batch, spec["initializer"])
    runner.sync()
    build_peak, built = memory.peak_rss_mb(), memory.current_rss_mb()
    memory.reset_peak_rss()
    seconds = runner.steps(x, y, 4)
    train_peak = memory.peak_rss_mb()
    return records.record(
        "row_sparse",
        f"memory {_case(vocab, dim)} {spec['initializer']} init",
        spec["impl"],
        {
            **spec,
            "mode": "memory",
            "state_mb": _state_bytes(spec["impl"], vocab, dim) / 2**20,
            "build_peak_mb": build_peak - start,
            "built_mb": built - start,
            "train_peak_mb": train_peak - start,
        },
        timing.stats(seconds),
        rss_mb=max(build_peak, train_peak) - start,
        device_mb=backends.device_peak_mb(),
    )


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
