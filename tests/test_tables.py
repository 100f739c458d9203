"""The lookup seam: `LookupTable`, `DenseTable`, `Embedding.make_table`."""

import keras
import numpy as np
import pytest

import keras_embed
from keras_embed import DenseTable
from keras_embed import Embedding
from keras_embed import LookupTable
from keras_embed import row_sparse
from tests.gradients import weight_gradients
from tests.testing import to_numpy

TABLE = np.arange(20, dtype="float32").reshape(5, 4)
IDS = np.array([[4, 0, 2], [1, 1, 3]], dtype="int32")


def test_dense_table_reads_rows_like_numpy():
    table = DenseTable(keras.ops.convert_to_tensor(TABLE), "int32")
    np.testing.assert_array_equal(to_numpy(table.lookup(IDS)), TABLE[IDS])


def test_dense_table_zeroes_positions_outside_keep():
    keep = IDS != 1
    table = DenseTable(keras.ops.convert_to_tensor(TABLE), "int32")
    out = to_numpy(table.lookup(IDS, keras.ops.convert_to_tensor(keep)))
    expected = TABLE[IDS] * keep[..., None]
    np.testing.assert_array_equal(out, expected)


class KeepLookup(keras.layers.Layer):
    """Reads `inner`'s table directly, dropping id 1."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def build(self, input_shape=None):
        self.built = True

    def call(self, ids):
        keep = keras.ops.not_equal(ids, 1)
        return self.inner.table.lookup(ids, keep)


def test_dense_table_keep_sends_no_gradient_to_dropped_rows():
    layer = KeepLookup(Embedding(5, 4, weights=TABLE))
    (grad,) = weight_gradients(layer, keras.ops.sum, IDS)
    counts = np.zeros(5, "float32")
    np.add.at(counts, IDS[IDS != 1], 1)
    np.testing.assert_array_equal(grad, np.repeat(counts[:, None], 4, 1))


def test_embedding_chooses_its_table_once_in_build():
    layer = Embedding(5, 4)
    assert not hasattr(layer, "table")
    layer.build()
    assert type(layer.table) is DenseTable
    assert layer.table.embeddings is layer.embeddings
    assert layer.index_dtype == "int32"
    sparse = Embedding(5, 4, sparse_optimizer="sgd", max_ids_per_step=8)
    sparse.build()
    assert isinstance(sparse.table, row_sparse.RowSparseTable)


class DoublingTable(LookupTable):
    """A table whose rows read twice their stored value."""

    def __init__(self, embeddings):
        self.embeddings = embeddings
        self.flushes = 0

    def lookup(self, ids, keep=None, training=False):
        rows = keras.ops.take(self.embeddings, ids, axis=0)
        return 2 * rows

    def flush(self):
        self.flushes += 1


class DoublingEmbedding(Embedding):
    def make_table(self):
        return DoublingTable(self.embeddings)


def test_make_table_is_the_extension_point():
    layer = DoublingEmbedding(5, 4, weights=TABLE)
    # The layer's id checks still run before the custom table.
    np.testing.assert_array_equal(to_numpy(layer(IDS)), 2 * TABLE[IDS])
    with pytest.raises(ValueError, match="invalid id 5"):
        layer(np.array([5]))
    layer.flush()
    assert layer.table.flushes == 1


def test_the_interface_says_what_is_missing():
    with pytest.raises(NotImplementedError):
        LookupTable().lookup(IDS)
    assert LookupTable().flush() is None
    assert keras_embed.tables.LookupTable is LookupTable
