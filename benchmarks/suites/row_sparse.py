"""Row-sparse training vs vocabulary size, per step: keras.layers.Embedding
(the model's optimizer updates the whole table) vs
keras_embed.Embedding(sparse_optimizer=<the same Keras optimizer>,
max_ids_per_step=batch x length), which updates only the rows of the ids in
the batch (Adam made lazy); measured as the training suite measures.
Its peak memory is in the memory suite.
"""

from benchmarks.suites import training

BASELINE = "keras"
IMPLS = ("keras", "keras_embed_row_sparse")

GRIDS = {
    "full": training.grid_cases(
        (10_000, 1_000_000),
        64,
        ("adam", "sgd"),
        {10_000: (3, 5, 4), 1_000_000: (2, 5, 3)},
    ),
    # Issue 11's grid: the ratio to dense at V=1e4 and the V=1e5 -> 1e7
    # step ratio (vocabulary independence). At V=1e7 the dense model (four
    # 2.5 GB tables) does not fit beside the row-sparse one on a 24 GB
    # machine, so only the row-sparse model runs there.
    "quick": training.grid_cases(
        (10_000, 100_000),
        64,
        ("adam",),
        {10_000: (2, 3, 3), 100_000: (2, 3, 3)},
    ),
    "tiny": [(50, 4, "adam", 1, 1, 2)],
}


SPARSE_ONLY_GRIDS = {
    "quick": training.grid_cases(
        (10_000_000,), 64, ("adam",), {10_000_000: (1, 2, 3)}
    ),
}


def run(grid, log):
    tiny = grid == "tiny"
    found = training.time_fit("row_sparse", IMPLS, GRIDS[grid], tiny, log)
    sparse_only = SPARSE_ONLY_GRIDS.get(grid, [])
    return found + training.time_fit(
        "row_sparse", IMPLS[1:], sparse_only, tiny, log
    )
