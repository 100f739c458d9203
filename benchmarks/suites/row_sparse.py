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
    "quick": training.grid_cases(
        (10_000, 1_000_000),
        64,
        ("adam",),
        {10_000: (2, 3, 3), 1_000_000: (2, 3, 3)},
    ),
    "tiny": [(50, 4, "adam", 1, 1, 2)],
}


def run(grid, log):
    return training.time_fit(
        "row_sparse", IMPLS, GRIDS[grid], grid == "tiny", log
    )
