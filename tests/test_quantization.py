"""Quantization, checked against Keras 3's own Embedding layers: same
variables, same outputs, weight files crossing both ways."""

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import ReversibleEmbedding
from tests.keras_models import IDS
from tests.keras_models import MODES
from tests.keras_models import copy_weights
from tests.keras_models import gpt_like
from tests.keras_models import quantize
from tests.keras_models import specs


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
