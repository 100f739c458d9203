"""LoRA, checked against Keras 3's own Embedding layers: only the factors
train, the merged table is what files hold, weight files cross."""

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import ReversibleEmbedding
from tests.keras_models import IDS
from tests.keras_models import copy_weights
from tests.keras_models import gpt_like


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
    base = keras.ops.convert_to_numpy(layer.storage.base.float_table())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.embeddings),
        base + 2 * a @ np.ones((2, 4)),
        rtol=1e-6,
    )
