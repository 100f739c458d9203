"""keras_embed.EmbeddingBag against its parts, keras_embed.Embedding + a
`keras.ops` mean over the bag axis (the baseline), forward per call, eager
and compiled, on every backend; on torch also `F.embedding` + mean and the
fused `F.embedding_bag` (the native floor). The same table and padded
`(bags, bag_size)` ids for all; outputs are checked to agree within 1e-5
before timing. Target: the bag <= 1.2x its parts (ratio >= 0.83).
"""

import keras
import numpy as np
from keras import ops

import keras_embed
from benchmarks.harness import backends
from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers

BASELINE = "keras_embed_parts"

# The case: 4096 bags of 20 ids, V=1e5, D=64, mean.
_CASE = (100_000, 64, "mean", (4096, 20))
# (cases (vocab, dim, combiner, ids shape), warmup, repeats, min_repeat_s)
GRIDS = {
    "full": (
        [
            _CASE,
            (100_000, 64, "sum", (4096, 20)),
            (1_000_000, 16, "mean", (4096, 20)),
        ],
        2,
        11,
        0.05,
    ),
    "quick": ([_CASE], 1, 7, 0.02),
    "tiny": ([(100, 4, "mean", (8, 5))], 1, 2, 0.0),
}


class Parts(keras.layers.Layer):
    """An `Embedding` and a `keras.ops` reduction over the bag axis."""

    def __init__(self, embedding, combiner):
        super().__init__()
        self.embedding = embedding
        self.combiner = combiner
        self.built = True

    def call(self, ids):
        vectors = self.embedding(ids)
        if self.combiner == "mean":
            return ops.mean(vectors, axis=-2)
        return ops.sum(vectors, axis=-2)


def run(grid, log):
    cases, warmup, repeats, min_repeat_s = GRIDS[grid]
    found = []
    for vocab, dim, combiner, shape in cases:
        case = f"V={vocab:.0e} d={dim} {combiner} ids={shape[0]}x{shape[1]}"
        log(f"embedding_bag {case}")
        table = layers.weight_matrix(vocab, dim)
        ids = layers.random_ids(vocab, shape)
        built = _layers(table, combiner)
        params = {"vocab": vocab, "dim": dim, "combiner": combiner}
        with backends.inference():
            for mode in backends.modes():
                calls = {
                    impl: _bind(
                        backends.compile_layer(layer, mode, grid == "tiny"),
                        ids,
                    )
                    for impl, layer in built.items()
                }
                if mode == "eager":
                    calls.update(_torch_natives(built, ids, combiner))
                diff = _max_abs_diff(calls)
                if not diff < 1e-5:
                    raise AssertionError(f"{case} {mode}: differ by {diff}")
                timed = timing.round_robin(calls, warmup, repeats, min_repeat_s)
                for impl, stats in timed.items():
                    found.append(
                        records.record(
                            "embedding_bag",
                            f"{case} {mode}",
                            impl,
                            {**params, "ids_shape": list(shape), "mode": mode},
                            stats,
                            max_abs_diff=diff,
                        )
                    )
    return found


def _layers(table, combiner):
    vocab, dim = table.shape
    bag = keras_embed.EmbeddingBag(vocab, dim, combiner=combiner)
    bag.build()
    bag.embedding.embeddings.assign(table)
    return {
        "keras_embed_bag": bag,
        BASELINE: Parts(layers.embedding("keras_embed", table), combiner),
    }


def _bind(fn, ids):
    return lambda: fn(ids)


def _torch_natives(built, ids, combiner):
    """torch's own lookups of the same table: `F.embedding` + the same
    reduction, and the fused `F.embedding_bag`."""
    if backends.name() != "torch":
        return {}
    from torch.nn import functional

    table = built["keras_embed_bag"].embeddings.value
    reduce = getattr(ops, "mean" if combiner == "mean" else "sum")
    return {
        "torch_parts": lambda: reduce(functional.embedding(ids, table), -2),
        "torch_fused": lambda: functional.embedding_bag(
            ids, table, mode=combiner
        ),
    }


def _max_abs_diff(calls):
    outputs = [keras.ops.convert_to_numpy(fn()) for fn in calls.values()]
    return float(max(np.max(np.abs(o - outputs[0])) for o in outputs))
