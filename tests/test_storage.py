"""The storage seam: `Storage`, `FloatStorage`, `QuantizedStorage`,
`LoraStorage`, and `Embedding.make_storage()` as the extension point."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_embed
from keras_embed import Embedding
from keras_embed import FloatStorage
from keras_embed import LoraStorage
from keras_embed import QuantizedStorage
from keras_embed import Storage
from keras_embed import row_sparse
from tests.testing import save_and_load
from tests.testing import to_numpy

TABLE = np.arange(40, dtype="float32").reshape(10, 4) / 10
IDS = np.array([[1, 2, 3], [4, 0, 9]], "int32")


class HalfStorage(FloatStorage):
    """A float16 table: half the memory, rows read back in float32."""

    def build(self, add_weight):
        self.variables["embeddings"] = add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.initializer,
            name="embeddings",
            dtype="float16",
        )

    def rows(self, ids):
        return ops.cast(ops.take(self.table, ids, axis=0), "float32")

    def float_table(self):
        return ops.cast(self.table, "float32")


@keras.saving.register_keras_serializable(package="keras_embed_tests")
class HalfEmbedding(Embedding):
    def make_storage(self):
        return HalfStorage(
            self.input_dim, self.output_dim, self.embeddings_initializer
        )

    def quantize(self, mode=None, type_check=True, config=None):
        # As Keras: a subclass opts in to the base class's quantization.
        super().quantize(mode, type_check=False, config=config)


def built(cls=Embedding, **kwargs):
    layer = cls(10, 4, weights=TABLE, **kwargs)
    return layer


def test_the_interface_is_abstract():
    storage = Storage(10, 4)
    for call in (
        lambda: storage.build(None),
        lambda: storage.rows(IDS),
        lambda: storage.float_table(),
        lambda: storage.encode(TABLE),
    ):
        with pytest.raises(NotImplementedError):
            call()
    assert storage.apply_pending() is None
    assert storage.training_rows(IDS, None, "rows") == "rows"


def test_the_layer_chooses_and_installs_one_storage():
    layer = built()
    assert type(layer.storage) is FloatStorage
    assert layer.storage.variables["embeddings"] is layer.embeddings
    assert layer.storage.save_order() == ["embeddings"]
    sparse = Embedding(10, 4, sparse_optimizer="sgd", max_ids_per_step=8)
    sparse.build()
    assert isinstance(sparse.storage, row_sparse.RowSparseStorage)
    assert sparse.storage.save_order()[0] == "embeddings"
    assert Embedding(10, 4).storage is None


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_installs_a_quantized_storage(mode):
    layer = built()
    layer.quantize(mode)
    storage = layer.storage
    assert type(storage) is QuantizedStorage and storage.mode == mode
    # The layer shows the storage's variables under Keras's names.
    assert layer.embeddings_scale is storage.variables["embeddings_scale"]
    np.testing.assert_allclose(
        to_numpy(storage.rows(ops.convert_to_tensor(IDS))),
        to_numpy(storage.float_table())[IDS],
        rtol=1e-6,
    )
    # Abs-max per row: within one quantization step of the row's maximum.
    levels = 127 if mode == "int8" else 7
    error = np.abs(to_numpy(storage.float_table()) - TABLE)
    assert np.all(error <= np.abs(TABLE).max(axis=1, keepdims=True) / levels)


def test_lora_wraps_the_storage_and_reuses_its_factors_when_quantized():
    layer = built()
    layer.enable_lora(2)
    lora = layer.storage
    assert type(lora) is LoraStorage and type(lora.base) is FloatStorage
    factors = dict(lora.factors)
    layer.quantize("int8")
    assert type(layer.storage) is LoraStorage
    assert type(layer.storage.base) is QuantizedStorage
    assert layer.storage.factors == factors
    assert [w.name for w in layer.trainable_weights] == [
        "lora_embeddings_a",
        "lora_embeddings_b",
    ]


def test_a_custom_storage_keeps_quantization_lora_and_saving(tmp_path):
    layer = built(HalfEmbedding, padding_id=0)
    assert layer.embeddings.dtype == "float16"
    expected = TABLE.astype("float16").astype("float32")
    expected[0] = 0
    np.testing.assert_array_equal(to_numpy(layer(IDS)), expected[IDS])

    model = keras.Sequential([keras.Input((3,), dtype="int32"), layer])
    revived = save_and_load(model)
    assert type(revived.layers[0]) is HalfEmbedding
    np.testing.assert_array_equal(to_numpy(revived(IDS)), expected[IDS])

    layer.enable_lora(2)
    layer.lora_embeddings_b.assign(np.ones((2, 4)))
    a = to_numpy(layer.lora_embeddings_a)
    with_delta = expected + a @ np.ones((2, 4))
    with_delta[0] = 0
    np.testing.assert_allclose(
        to_numpy(layer(IDS)), with_delta[IDS], rtol=1e-3, atol=1e-3
    )
    layer.quantize("int8")
    assert type(layer.storage.base) is QuantizedStorage
    assert "float16" not in [w.dtype for w in layer.weights]
    np.testing.assert_allclose(to_numpy(layer(IDS)), with_delta[IDS], atol=0.05)


def test_a_custom_storage_refuses_quantize_unless_its_class_opts_in():
    class Unquantizable(Embedding):
        def make_storage(self):
            return HalfStorage(self.input_dim, self.output_dim, "zeros")

    layer = Unquantizable(10, 4)
    layer.build()
    with pytest.raises(NotImplementedError, match="Unquantizable"):
        layer.quantize("int8")


def test_exported_from_the_package():
    assert keras_embed.storage.Storage is Storage
    assert keras_embed.FloatStorage is FloatStorage
