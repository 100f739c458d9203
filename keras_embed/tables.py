"""The lookup seam: how an `Embedding` reads (and trains) its rows.

The layer validates the ids and decides which positions are looked up; a
table only reads rows. `Embedding.build` chooses the table once through
`Embedding.make_table()`: a `DenseTable` for an ordinary trainable weight,
a `keras_embed.row_sparse.RowSparseTable` with `sparse_optimizer`. A
subclass plugs in another storage by overriding `make_table()`.
"""

import keras
from keras import ops


class LookupTable:
    """The interface between an `Embedding` and the storage of its rows.

    Implementations get everything they need as constructor arguments (the
    variables, the index dtype, ...), never the layer itself.
    """

    def lookup(self, ids, keep=None, training=False):
        """The rows of `ids`: a tensor of shape `ids.shape + (output_dim,)`.

        Args:
            ids: Integer or whole-valued float ids of any shape, already
                validated by the layer wherever `keep` is True.
            keep: None when every position is to be looked up, else a
                boolean tensor shaped like `ids`: positions where it is
                False must read zeros and send no gradient to any row.
            training: Whether this is a training call of a trainable
                layer.
        """
        raise NotImplementedError

    def flush(self):
        """Applies any deferred update; a no-op for tables without one."""

    def dense(self):
        """The whole `(input_dim, output_dim)` table as the layer's
        `embeddings` property gives it."""
        raise NotImplementedError


class DenseTable(LookupTable):
    """Rows read from one `(input_dim, output_dim)` weight with `ops.take`."""

    def __init__(self, embeddings, index_dtype):
        self.embeddings = embeddings
        self.index_dtype = index_dtype

    def lookup(self, ids, keep=None, training=False):
        return gather(self.embeddings, ids, keep, self.index_dtype)

    def dense(self):
        return self.embeddings


def gather(table, ids, keep, index_dtype):
    """`take(table, ids)` with the positions where `keep` is False zeroed.

    Those positions read row 0 and are replaced by zeros; `where` sends
    row 0 no gradient for them.
    """
    if keep is None:
        return ops.take(table, ops.cast(ids, index_dtype), axis=0)
    if keras.backend.backend() == "tensorflow":
        # TF graphs without XLA run the output-sized `where` as its own
        # pass; skipping it unless needed measured 1.3x (benchmarks/).
        return ops.cond(
            ops.all(keep),
            lambda: gather(table, ids, None, index_dtype),
            lambda: _masked_take(table, ids, keep, index_dtype),
        )
    return _masked_take(table, ids, keep, index_dtype)


def _masked_take(table, ids, keep, index_dtype):
    safe_ids = ops.cast(ops.where(keep, ids, 0), index_dtype)
    rows = ops.take(table, safe_ids, axis=0)
    return ops.where(ops.expand_dims(keep, -1), rows, 0)
