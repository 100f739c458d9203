"""Quantization and LoRA, checked against Keras 3's own Embedding layers:
same variables, same outputs, weight files crossing both ways."""

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import ReversibleEmbedding

IDS = np.array([[1, 2, 3, 0], [5, 9, 9, 7]], dtype="int32")
MODES = [
    ("int8", None),
    ("int4", None),
    ("int4", -1),
    ("int4", 4),
]


def quantize(model, mode, block_size):
    if block_size is None:
        model.quantize(mode)
    else:
        config = keras.quantizers.Int4QuantizationConfig(block_size=block_size)
        model.quantize(config=config)


def gpt_like(cls, tie_weights=True, **kwargs):
    """Token embedding, one hidden layer, tied (or untied) logits."""
    inputs = keras.Input((4,), dtype="int32")
    embedding = cls(10, 8, tie_weights=tie_weights, name="token", **kwargs)
    hidden = keras.layers.Dense(8, name="dense")(embedding(inputs))
    return keras.Model(inputs, embedding(hidden, reverse=True))


def specs(layer):
    # keras_embed's one extra variable is its invalid-id counter, which no
    # file and no `layer.get_weights()` holds.
    return [
        (w.name, tuple(w.shape), w.dtype)
        for w in layer.weights
        if w.name != "invalid_id_count"
    ]


def copy_weights(source, target):
    """Layer by layer: a keras_embed layer's `get_weights` leaves out its
    counter, so it lines up with the built-in layer's; the models' own
    `get_weights` lists each keras_embed counter too."""
    for a, b in zip(source.layers, target.layers, strict=True):
        b.set_weights(a.get_weights())


@pytest.mark.parametrize("mode,block_size", MODES)
@pytest.mark.parametrize("tie_weights", [True, False])
def test_quantized_weights_cross_with_keras(
    tmp_path, mode, block_size, tie_weights
):
    keras.utils.set_random_seed(0)
    ours = gpt_like(ReversibleEmbedding, tie_weights)
    theirs = gpt_like(keras.layers.ReversibleEmbedding, tie_weights)
    copy_weights(ours, theirs)
    quantize(ours, mode, block_size)
    quantize(theirs, mode, block_size)
    assert specs(ours.get_layer("token")) == specs(theirs.get_layer("token"))
    expected = theirs.predict(IDS, verbose=0)
    np.testing.assert_allclose(
        ours.predict(IDS, verbose=0), expected, atol=1e-4
    )
    theirs.save_weights(tmp_path / "keras.weights.h5")
    loaded = gpt_like(ReversibleEmbedding, tie_weights)
    quantize(loaded, mode, block_size)
    loaded.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_allclose(
        loaded.predict(IDS, verbose=0), expected, atol=1e-4
    )
    ours.save_weights(tmp_path / "ours.weights.h5")
    back = gpt_like(keras.layers.ReversibleEmbedding, tie_weights)
    quantize(back, mode, block_size)
    back.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_array_equal(back.predict(IDS, verbose=0), expected)


@pytest.mark.parametrize("mode,block_size", MODES)
def test_quantized_keras_file_round_trip(tmp_path, mode, block_size):
    model = gpt_like(ReversibleEmbedding, padding_id=0, max_norm=1.0)
    quantize(model, mode, block_size)
    expected = model.predict(IDS, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(IDS, verbose=0), expected)
    layer = loaded.get_layer("token")
    assert layer.quantization_mode == mode
    # The padding row stays exactly zero after quantization.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(np.array([0, 0]))), 0
    )


def test_quantize_refuses_row_sparse():
    layer = Embedding(10, 4, sparse_optimizer="sgd", max_ids_per_step=8)
    layer.build()
    with pytest.raises(ValueError, match="sparse_optimizer"):
        layer.quantize("int8")


def test_quantized_layer_keeps_bad_id_policy():
    layer = Embedding(10, 4)
    layer.build()
    layer.quantize("int8")
    with pytest.raises(ValueError):
        layer(np.array([[1, 12]]))


@pytest.mark.parametrize("mode", [None, "int8", "int4"])
def test_lora_trains_only_factors_and_crosses(tmp_path, mode):
    keras.utils.set_random_seed(0)
    ours = gpt_like(ReversibleEmbedding)
    theirs = gpt_like(keras.layers.ReversibleEmbedding)
    copy_weights(ours, theirs)
    if mode:
        ours.quantize(mode)
        theirs.quantize(mode)
    layer = ours.get_layer("token")
    layer.enable_lora(2)
    theirs.get_layer("token").enable_lora(2)
    assert [w.name for w in layer.trainable_weights] == [
        "lora_embeddings_a",
        "lora_embeddings_b",
    ]
    frozen = [
        keras.ops.convert_to_numpy(w) for w in layer.non_trainable_weights
    ]
    ours.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
    ours.fit(IDS, IDS, epochs=1, verbose=0)
    for before, after in zip(frozen, layer.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))
    assert np.abs(keras.ops.convert_to_numpy(layer.lora_embeddings_b)).max() > 0
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    expected = theirs.predict(IDS, verbose=0)
    if mode is None:
        np.testing.assert_allclose(
            ours.predict(IDS, verbose=0), expected, atol=1e-6
        )
    ours.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("token").get_config()["lora_rank"] == 2
    assert len(loaded.get_layer("token").trainable_weights) == 2


def test_lora_refusals():
    layer = Embedding(10, 4, embeddings_constraint="non_neg")
    layer.build()
    with pytest.raises(ValueError, match="constraint"):
        layer.enable_lora(2)
    sparse = Embedding(10, 4, sparse_optimizer="sgd", max_ids_per_step=8)
    sparse.build()
    with pytest.raises(ValueError, match="sparse_optimizer"):
        sparse.enable_lora(2)
    with pytest.raises(ValueError, match="isn't yet built"):
        Embedding(10, 4).enable_lora(2)
    built = Embedding(10, 4, lora_rank=2)
    built.build()
    with pytest.raises(ValueError, match="already enabled"):
        built.enable_lora(2)


def test_lora_embeddings_property_is_merged():
    layer = Embedding(10, 4, lora_rank=2, lora_alpha=4)
    layer.build()
    layer.lora_embeddings_b.assign(np.ones((2, 4)))
    a = keras.ops.convert_to_numpy(layer.lora_embeddings_a)
    base = keras.ops.convert_to_numpy(layer.table.base.dense())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.embeddings),
        base + 2 * a @ np.ones((2, 4)),
        rtol=1e-6,
    )
