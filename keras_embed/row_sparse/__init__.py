"""Row-sparse training for `keras_embed.Embedding`.

With `Embedding(..., sparse_optimizer=..., max_ids_per_step=...)` a training
step touches only the table rows of the ids in its batch, updated by a
row-wise optimizer that the layer owns, instead of the model's optimizer
rewriting the whole `(input_dim, output_dim)` table. `table.py` says how a
step flows; docs/row_sparse.md says what it costs and where it stops.
"""

from keras_embed.row_sparse.callback import RowSparseFlush
from keras_embed.row_sparse.callback import flush_model
from keras_embed.row_sparse.optimizers import SGD
from keras_embed.row_sparse.optimizers import Adagrad
from keras_embed.row_sparse.optimizers import LazyAdam
from keras_embed.row_sparse.optimizers import RowOptimizer
from keras_embed.row_sparse.optimizers import RowwiseAdagrad
from keras_embed.row_sparse.optimizers import get
from keras_embed.row_sparse.optimizers import serialize
from keras_embed.row_sparse.storage import RowSparseStorage
from keras_embed.row_sparse.table import RowSparseTable
from keras_embed.row_sparse.table import check_max_ids_per_step

__all__ = [
    "SGD",
    "Adagrad",
    "LazyAdam",
    "RowOptimizer",
    "RowSparseFlush",
    "RowSparseStorage",
    "RowSparseTable",
    "RowwiseAdagrad",
    "check_max_ids_per_step",
    "flush_model",
    "get",
    "serialize",
]
