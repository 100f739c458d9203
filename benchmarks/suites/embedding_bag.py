"""keras_embed.EmbeddingBag vs torch.nn.functional.embedding_bag (torch
only), per call: the same table and padded (batch, bag) ids, forward under
`no_grad` and forward + backward; `max_abs_diff` is their largest output
difference, checked below 1e-5 before timing.
"""

import keras
import numpy as np

from benchmarks.harness import records
from benchmarks.harness import timing
from benchmarks.suites import layers

BASELINE = "torch_native"
BACKENDS = ("torch",)

_FULL = [
    (vocab, dim, combiner, (1024, 20))
    for vocab in (10_000, 1_000_000)
    for dim in (16, 128)
    for combiner in ("sum", "mean")
]
# (cases (vocab, dim, combiner, ids shape), warmup, repeats, min_repeat_s)
GRIDS = {
    "full": (_FULL, 2, 11, 0.02),
    "quick": (_FULL[:2], 1, 7, 0.01),
    "tiny": ([(100, 4, "mean", (8, 5))], 1, 2, 0.0),
}


def run(grid, log):
    import torch

    cases, warmup, repeats, min_repeat_s = GRIDS[grid]
    found = []
    for vocab, dim, combiner, shape in cases:
        case = f"V={vocab:.0e} d={dim} {combiner} ids={shape[0]}x{shape[1]}"
        log(f"embedding_bag {case}")
        candidates, table = _candidates(vocab, dim, combiner, shape)
        diff = _max_abs_diff(candidates)
        if not diff < 1e-5:
            raise AssertionError(f"{case}: outputs differ by {diff}")
        with torch.no_grad():
            forward = timing.round_robin(
                candidates, warmup, repeats, min_repeat_s
            )
        backward = timing.round_robin(
            {n: _with_backward(fn, table) for n, fn in candidates.items()},
            warmup,
            repeats,
            min_repeat_s,
        )
        params = {"vocab": vocab, "dim": dim, "combiner": combiner}
        for mode, timed in (("forward", forward), ("backward", backward)):
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


def _candidates(vocab, dim, combiner, shape):
    from torch.nn import functional

    from keras_embed import EmbeddingBag

    ids = layers.random_ids(vocab, shape)
    layer = EmbeddingBag(vocab, dim, combiner=combiner)
    layer.build(shape)
    table = layer.embeddings.value
    return {
        "keras_embed": lambda: layer(ids),
        "torch_native": lambda: functional.embedding_bag(
            ids, table, mode=combiner
        ),
    }, table


def _with_backward(fn, table):
    def step():
        out = fn()
        out.sum().backward()
        table.grad = None
        return out

    return step


def _max_abs_diff(candidates):
    ours = keras.ops.convert_to_numpy(candidates["keras_embed"]())
    native = keras.ops.convert_to_numpy(candidates["torch_native"]())
    return float(np.max(np.abs(ours - native)))
