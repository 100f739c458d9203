import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from tests import testing
from tests.gradients import weight_gradients

IDS = np.array([[1, 2, 2, 0], [3, 2, 5, 4]], dtype="int32")


def reference_lookup(table, ids, padding_id):
    table = table.copy()
    table[padding_id] = 0
    return table[ids]


@keras.saving.register_keras_serializable(package="keras_embed_tests")
class PullTowardsOnes(keras.regularizers.Regularizer):
    """A prior that pulls every weight, a zero row's too, towards 1."""

    def __call__(self, w):
        return 0.1 * ops.sum(ops.square(w - 1.0))

    def get_config(self):
        return {}


def test_layer_contract_with_padding_id():
    testing.run_layer_test(
        Embedding,
        {"input_dim": 6, "output_dim": 3, "padding_id": 5},
        input_data=np.array([[1, 2], [3, 4]], dtype="int32"),
        expected_output_shape=(2, 2, 3),
    )


@pytest.mark.parametrize("padding_id, stored", [(2, 2), (-1, 5), (-6, 0)])
def test_padding_id_is_normalised_like_torch(padding_id, stored):
    layer = Embedding(6, 3, padding_id=padding_id)
    assert layer.padding_id == stored
    assert layer.get_config()["padding_id"] == stored
    assert Embedding.from_config(layer.get_config()).padding_id == stored


@pytest.mark.parametrize("padding_id", [6, -7, 1.0, True, "0"])
def test_bad_padding_id_raises(padding_id):
    with pytest.raises(ValueError, match="padding_id"):
        Embedding(6, 3, padding_id=padding_id)


def test_padding_row_is_zero_over_initializer_and_weights():
    table = np.arange(18, dtype="float32").reshape(6, 3) + 1
    for layer in (
        Embedding(6, 3, padding_id=2, embeddings_initializer="ones"),
        Embedding(6, 3, padding_id=2, weights=table),
    ):
        layer.build()
        stored = testing.to_numpy(layer.embeddings)
        np.testing.assert_array_equal(stored[2], np.zeros(3))
        assert np.all(stored[[0, 1, 3, 4, 5]] != 0)
    np.testing.assert_array_equal(
        testing.to_numpy(layer(IDS)), reference_lookup(table, IDS, 2)
    )


def test_padding_row_looks_up_zero_even_if_assigned():
    layer = Embedding(6, 3, padding_id=2, embeddings_initializer="ones")
    layer.build()
    layer.embeddings.assign(np.ones((6, 3), "float32"))
    out = testing.to_numpy(layer(IDS))
    np.testing.assert_array_equal(
        out, reference_lookup(np.ones((6, 3)), IDS, 2)
    )


def test_padding_row_gets_no_gradient():
    layer = Embedding(6, 3, padding_id=2, embeddings_initializer="ones")
    layer.build()
    (grad,) = weight_gradients(layer, ops.sum, ops.convert_to_tensor(IDS))
    counts = np.bincount(IDS.ravel(), minlength=6).astype("float32")
    counts[2] = 0
    np.testing.assert_array_equal(grad, np.repeat(counts[:, None], 3, 1))


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.5, momentum=0.9),
        lambda: keras.optimizers.Adam(0.1, weight_decay=0.5),
        lambda: keras.optimizers.AdamW(0.1, weight_decay=0.5),
        lambda: keras.optimizers.RMSprop(0.1),
        lambda: keras.optimizers.Lion(0.1, weight_decay=0.1),
    ],
    ids=["sgd_momentum", "adam_wd", "adamw", "rmsprop", "lion_wd"],
)
def test_padding_row_stays_zero_after_fit(optimizer):
    layer = Embedding(
        6,
        3,
        padding_id=2,
        embeddings_initializer="ones",
        # This regularizer has a non-zero gradient at a zero row; the
        # padding row must still not move.
        embeddings_regularizer=PullTowardsOnes(),
        embeddings_constraint=keras.constraints.NonNeg(),
    )
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    model.compile(optimizer=optimizer(), loss="mse")
    model.fit(IDS, np.full((2, 4, 3), 3.0), epochs=3, verbose=0)
    stored = testing.to_numpy(layer.embeddings)
    np.testing.assert_array_equal(stored[2], np.zeros(3))
    assert np.all(stored[[1, 3, 4, 5]] != 1), "the other rows did not train"
    reloaded = testing.save_and_load(model)
    np.testing.assert_array_equal(
        testing.to_numpy(reloaded.layers[-1].embeddings), stored
    )


def test_padding_id_combines_with_mask_zero():
    layer = Embedding(6, 3, padding_id=0, mask_zero=True)
    out = layer(IDS)
    np.testing.assert_array_equal(
        testing.to_numpy(layer.compute_mask(IDS)), IDS != 0
    )
    np.testing.assert_array_equal(testing.to_numpy(out)[IDS == 0], 0)
    assert np.all(testing.to_numpy(out)[IDS != 0] != 0)


def test_padding_id_in_compiled_predict_and_ragged():
    table = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            Embedding(6, 3, padding_id=-1, weights=table),
        ]
    )
    np.testing.assert_array_equal(
        model.predict(IDS, verbose=0), reference_lookup(table, IDS, 5)
    )
    if testing.backend() == "tensorflow":
        import tensorflow as tf

        ragged = tf.ragged.constant([[5, 1], [2]])
        out = model.layers[-1](ragged)
        np.testing.assert_array_equal(
            out.flat_values.numpy(), reference_lookup(table, [5, 1, 2], 5)
        )
        np.testing.assert_array_equal(out.row_splits.numpy(), [0, 2, 3])


def test_user_constraint_still_acts_with_padding_id():
    # Targets of -1 pull every looked-up row negative: without the user's
    # NonNeg the rows go below zero, with it they stop at exactly zero.
    def fit(constraint):
        layer = Embedding(
            6,
            3,
            padding_id=2,
            embeddings_initializer="ones",
            embeddings_constraint=constraint,
        )
        model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
        model.compile(optimizer=keras.optimizers.SGD(5.0), loss="mse")
        model.fit(IDS, np.full((2, 4, 3), -1.0), epochs=3, verbose=0)
        return testing.to_numpy(layer.embeddings)

    unconstrained = fit(None)
    assert np.any(unconstrained[[1, 3, 4, 5]] < 0), "the test cannot bite"
    stored = fit(keras.constraints.NonNeg())
    assert np.all(stored >= 0), "NonNeg was dropped with padding_id"
    np.testing.assert_array_equal(stored[[1, 3, 4, 5]], 0.0)
    np.testing.assert_array_equal(stored[2], np.zeros(3))


def test_traced_lookup_zeroes_the_padding_row_even_if_assigned():
    # In traced code the valid-id mask exists, and the padding positions
    # must be taken out of it too (not only in eager calls).
    layer = Embedding(6, 3, padding_id=2)
    layer.build()
    layer.embeddings.assign(np.ones((6, 3), "float32"))
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    model.compile(jit_compile=True)
    np.testing.assert_array_equal(
        model.predict(IDS, verbose=0),
        reference_lookup(np.ones((6, 3)), IDS, 2),
    )
