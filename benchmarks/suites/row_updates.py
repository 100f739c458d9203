"""One row update of a (V, D) float32 variable, per call: read 10,240
sorted unique rows and write them back changed, as the row-sparse table
does for the table and each optimizer slot. `keras_ops`: `ops.take`, then
`variable.assign(ops.scatter_update(variable.value, ...))`; `native`: the
backend's in-place ops that keras_embed/row_sparse/_inplace.py uses
(TensorFlow `tf.gather` + `tf.Variable.scatter_update`, PyTorch
`index_select` + `Tensor.index_copy_`). Eager and compiled (`tf.function`,
XLA, `torch.compile`); JAX is left out: its trainer donates the state and
both are the same `keras.ops` code there (docs/row_sparse.md).

Each candidate updates a variable of its own: on TensorFlow a sparse read
of a variable makes later dense reads of it copy the whole buffer.
"""

import numpy as np
from keras import ops

from benchmarks.harness import backends
from benchmarks.harness import records
from benchmarks.harness import timing

BASELINE = "keras_ops"
BACKENDS = ("tensorflow", "torch")
ROWS = 10_240

# (cases (vocab, dim), warmup, repeats, min_repeat_s)
GRIDS = {
    "full": (
        [(v, d) for v in (100_000, 10_000_000) for d in (16, 64)],
        2,
        9,
        0,
    ),
    "quick": ([(v, 16) for v in (100_000, 10_000_000)], 2, 7, 0),
    "tiny": ([(50, 4)], 1, 2, 0),
}


def run(grid, log):
    cases, warmup, repeats, min_repeat_s = GRIDS[grid]
    found = []
    for vocab, dim in cases:
        case = f"V={vocab:.0e} d={dim}"
        log(f"row_updates {case}")
        rows = min(ROWS, vocab // 2)
        rng = np.random.default_rng(0)
        indices = np.sort(rng.choice(vocab, rows, replace=False))
        delta = rng.standard_normal((rows, dim), dtype="float32")
        for mode in backends.modes():
            backends.reset_compiler()
            calls = {
                impl: _compiled(impl, vocab, dim, indices, delta, mode)
                for impl in ("keras_ops", "native")
            }
            timed = timing.round_robin(calls, warmup, repeats, min_repeat_s)
            for impl, stats in timed.items():
                params = {"vocab": vocab, "dim": dim, "rows": rows}
                found.append(
                    records.record(
                        "row_updates",
                        f"{case} {mode}",
                        impl,
                        {**params, "mode": mode},
                        stats,
                    )
                )
    return found


def _compiled(impl, vocab, dim, indices, delta, mode):
    import keras

    variable = keras.Variable(
        np.zeros((vocab, dim), "float32"), trainable=False
    )
    update = _native(variable) if impl == "native" else _keras_ops(variable)
    indices = ops.convert_to_tensor(indices, "int64")
    delta = ops.convert_to_tensor(delta)
    step = backends.compile_fn(lambda _, i: update(i, delta), None, mode)
    return lambda: step(indices)


def _keras_ops(variable):
    def update(indices, delta):
        rows = ops.take(variable, indices, axis=0)
        variable.assign(
            ops.scatter_update(
                variable.value, ops.expand_dims(indices, -1), rows + delta
            )
        )
        return rows[0, 0]

    return update


def _native(variable):
    if backends.name() == "tensorflow":
        import tensorflow as tf

        def update(indices, delta):
            storage = variable.value
            rows = tf.gather(storage, indices)
            storage.scatter_update(tf.IndexedSlices(rows + delta, indices))
            return rows[0, 0]

        return update
    import torch

    def update(indices, delta):
        storage = variable.value
        rows = torch.index_select(storage, 0, indices)
        with torch.no_grad():
            storage.index_copy_(0, indices, rows + delta)
        return rows[0, 0]

    return update
