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
from tests.testing import grid

# Every mode with both tie settings and both widths, and every (tie,
# width) pair: 8 of the 16 cases by default (each costs 5-15 s).
_CROSS_CASES = [
    (tie, mode, block, dim)
    for tie in (True, False)
    for mode, block in MODES
    for dim in (8, 7)
]
_CROSS_DEFAULT = [
    (True, "int8", None, 8), (False, "int8", None, 7),
    (True, "int4", None, 7), (False, "int4", None, 8),
    (True, "int4", -1, 7), (False, "int4", -1, 8),
    (True, "int4", 4, 8), (False, "int4", 4, 7),
]  # fmt: skip


@pytest.mark.parametrize(
    "tie_weights,mode,block_size,dim",
    grid(_CROSS_CASES, _CROSS_DEFAULT),
    ids=lambda value: {8: "even_dim", 7: "odd_dim"}.get(value),
)
def test_quantized_weights_cross_with_keras(
    tmp_path, mode, block_size, tie_weights, dim
):
    keras.utils.set_random_seed(0)
    ours = gpt_like(ReversibleEmbedding, tie_weights, dim)
    theirs = gpt_like(keras.layers.ReversibleEmbedding, tie_weights, dim)
    copy_weights(ours, theirs)
    quantize(ours, mode, block_size)
    quantize(theirs, mode, block_size)
    assert specs(ours.get_layer("token")) == specs(theirs.get_layer("token"))
    expected = theirs.predict(IDS, verbose=0)
    np.testing.assert_allclose(
        ours.predict(IDS, verbose=0), expected, atol=1e-4
    )
    theirs.save_weights(tmp_path / "keras.weights.h5")
    loaded = gpt_like(ReversibleEmbedding, tie_weights, dim)
    quantize(loaded, mode, block_size)
    loaded.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_allclose(
        loaded.predict(IDS, verbose=0), expected, atol=1e-4
    )
    ours.save_weights(tmp_path / "ours.weights.h5")
    back = gpt_like(keras.layers.ReversibleEmbedding, tie_weights, dim)
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


def unpacked_int4(packed, length, axis):
    """NumPy's reading of Keras's int4 packing: two values per int8 byte,
    the low nibble first, along `axis`."""
    packed = np.moveaxis(np.asarray(packed).astype("int32"), axis, -1)
    low = ((packed & 0x0F) ^ 8) - 8
    high = packed >> 4
    values = np.stack([low, high], -1).reshape(*packed.shape[:-1], -1)
    return np.moveaxis(values[..., :length], -1, axis)


def dequantized(codes, scale, zero=None, g_idx=None, axis=-1):
    """NumPy dequantization of one matrix (`axis`: the output_dim axis)."""
    codes = codes.astype("float32")
    if zero is None:
        return codes / np.expand_dims(scale, axis)
    groups = g_idx.astype("int32")
    scale = np.take(scale, groups, axis=axis)
    zero = np.take(zero.astype("float32"), groups, axis=axis)
    return (codes - zero) * scale


@pytest.mark.parametrize("dim", [8, 7], ids=["even_dim", "odd_dim"])
@pytest.mark.parametrize("mode,block_size", MODES)
@pytest.mark.parametrize("tie_weights", [True, False])
def test_quantized_lookups_and_logits_match_numpy(
    mode, block_size, tie_weights, dim
):
    keras.utils.set_random_seed(0)
    layer = ReversibleEmbedding(10, dim, tie_weights=tie_weights)
    layer.build()
    quantize(layer, mode, block_size)
    n = keras.ops.convert_to_numpy
    codes = n(layer._embeddings)
    if mode == "int4":
        assert codes.shape == (10, (dim + 1) // 2)
        codes = unpacked_int4(codes, dim, axis=-1)
    # As Keras's layer: `embeddings` shows the codes, int4 unpacked.
    np.testing.assert_array_equal(n(layer.embeddings), codes)
    grouped = getattr(layer, "g_idx", None) is not None
    zero = n(layer.embeddings_zero) if grouped else None
    g_idx = n(layer.g_idx) if grouped else None
    table = dequantized(codes, n(layer.embeddings_scale), zero, g_idx)
    np.testing.assert_allclose(n(layer(IDS)), table[IDS], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        n(layer.storage.float_table()), table, rtol=1e-5, atol=1e-6
    )
    if tie_weights:
        return
    reverse = n(layer.reverse_embeddings)
    if mode == "int4":
        assert reverse.shape == ((dim + 1) // 2, 10)
        reverse = unpacked_int4(reverse, dim, axis=0)
    reverse_zero = n(layer.reverse_embeddings_zero) if grouped else None
    kernel = dequantized(
        reverse, n(layer.reverse_embeddings_scale), reverse_zero, g_idx, 0
    )
    # Weight-only quantization of the kernel: logits of float hidden states
    # quantized per row as Keras does, then scaled back.
    hidden = np.random.default_rng(0).normal(size=(3, dim)).astype("float32")
    logits = n(layer(hidden, reverse=True))
    np.testing.assert_allclose(logits, hidden @ kernel, rtol=0.05, atol=0.05)
