"""Quantized `.keras` files saved on every backend load on this one with
the same variables and outputs, checked against a NumPy reference that
dequantizes the stored integers, not only against the stored outputs.

The LoRA fixture's file holds, as Keras's, the table with the delta merged
in and quantized again (not the factors): it is checked as reloaded."""

import keras
import numpy as np
import pytest

from keras_embed import ReversibleEmbedding
from tests import testing
from tests.test_embedding_saving import FIXTURE_BACKENDS
from tests.test_embedding_saving import load_fixture

# name: (mode, block_size, tie_weights, lora (rank, alpha) or None).
# Must match the quantized MODELS in fixtures/make_fixtures.py.
QUANTIZED_FIXTURES = {
    "quantized_int8": ("int8", None, True, None),
    "quantized_int4_block4": ("int4", 4, False, None),
    "quantized_int8_lora": ("int8", None, True, (2, 4)),
}
PADDING_ID = 0


# Keras 3.15 holds an untied kernel's int4 zero points as floats, later
# versions as int8; the layer follows the Keras that runs (the fixtures were
# saved by 3.15.1 and load into either).
KERAS_VERSION = tuple(int(p) for p in keras.version().split(".")[:2])
REVERSE_ZERO_DTYPE = "int8" if KERAS_VERSION >= (3, 16) else "float32"


def variable_specs(mode, block_size, tie_weights, lora):
    """`(name, shape, dtype)` of the saved layer, Keras's names and order
    for a (24, 8) table."""
    width = 8 if mode == "int8" else 4
    specs = [("embeddings", (24, width), "int8")]
    if block_size is None:
        specs.append(("embeddings_scale", (24,), "float32"))
    else:
        specs += [
            ("embeddings_scale", (24, 2), "float32"),
            ("embeddings_zero", (24, 2), "int8"),
            ("g_idx", (8,), "float32"),
        ]
    if not tie_weights:
        specs += [
            ("reverse_embeddings", (width, 24), "int8"),
            ("reverse_embeddings_scale", (2, 24), "float32"),
            ("reverse_embeddings_zero", (2, 24), REVERSE_ZERO_DTYPE),
        ]
    if lora:
        specs = [
            ("lora_embeddings_a", (24, lora[0]), "float32"),
            ("lora_embeddings_b", (lora[0], 8), "float32"),
        ] + specs
    return specs


def unpack_int4(packed, size, axis):
    """Two signed 4-bit values a byte, the low nibble first (Keras's
    `pack_int4` layout)."""
    packed = np.asarray(packed, dtype="int8")
    low = ((packed.astype("int16") & 0x0F) ^ 8) - 8
    high = packed.astype("int16") >> 4
    both = np.stack([low, high], axis=axis + 1 if axis >= 0 else axis)
    shape = list(packed.shape)
    shape[axis] *= 2
    values = both.reshape(shape) if axis in (-1, 1) else None
    if values is None:
        values = np.moveaxis(both, 1, 0).reshape(shape)
    return np.take(values, np.arange(size), axis=axis)


def dequantize_table(variables, mode, block_size):
    """The float (24, 8) table the stored integers stand for."""
    values = variables["embeddings"]
    if mode == "int4":
        values = unpack_int4(values, 8, axis=-1)
    values = values.astype("float32")
    if block_size is None:
        return values / variables["embeddings_scale"][:, None]
    groups = variables["g_idx"].astype("int64")
    scale = variables["embeddings_scale"][:, groups]
    zero = variables["embeddings_zero"][:, groups].astype("float32")
    return (values - zero) * scale


def reference_rows(data, mode, block_size, lora):
    variables = stored_variables(data)
    table = dequantize_table(variables, mode, block_size)
    ids = data["ids"]
    rows = table[ids]
    if lora:
        rank, alpha = lora
        delta = variables["lora_embeddings_a"] @ variables["lora_embeddings_b"]
        rows = rows + (alpha / rank) * delta[ids]
    return table, rows


def stored_variables(data):
    prefix = "variable/"
    return {
        key[len(prefix) :]: value
        for key, value in data.items()
        if key.startswith(prefix)
    }


@pytest.mark.parametrize("name", sorted(QUANTIZED_FIXTURES))
@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_quantized_fixture_keeps_variables(backend, name):
    mode, block_size, tie_weights, lora = QUANTIZED_FIXTURES[name]
    model, data = load_fixture(backend, name)
    layer = model.get_layer("embedding")
    assert type(layer) is ReversibleEmbedding
    assert layer.quantization_mode == mode
    assert layer.padding_id == PADDING_ID
    assert layer.lora_enabled is bool(lora)
    saved = [(w.name, tuple(w.shape), w.dtype) for w in layer.weights]
    assert saved == variable_specs(mode, block_size, tie_weights, lora)
    stored = stored_variables(data)
    assert sorted(stored) == sorted(name for name, _, _ in saved)
    for weight in layer.weights:
        # A reloaded LoRA layer draws new `a` factors; `b` starts at zero.
        if weight.name in stored and weight.name != "lora_embeddings_a":
            np.testing.assert_array_equal(
                testing.to_numpy(weight), stored[weight.name]
            )
    if lora:
        np.testing.assert_array_equal(
            testing.to_numpy(layer.lora_embeddings_b), 0
        )
    trainable = [w.name for w in layer.trainable_weights]
    assert trainable == (
        ["lora_embeddings_a", "lora_embeddings_b"] if lora else []
    )


@pytest.mark.parametrize("name", sorted(QUANTIZED_FIXTURES))
@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_quantized_fixture_matches_numpy_reference(backend, name):
    mode, block_size, _, lora = QUANTIZED_FIXTURES[name]
    model, data = load_fixture(backend, name)
    layer = model.get_layer("embedding")
    table, rows = reference_rows(data, mode, block_size, lora)

    # The stored integers stand for the float table they were made from.
    error = np.abs(table - data["float_embeddings"])
    row_max = np.abs(data["float_embeddings"]).max(axis=1, keepdims=True)
    if block_size is None:
        # Per row: within one abs-max step.
        assert np.all(error <= row_max / (127 if mode == "int8" else 7))
    else:
        # Grouped int4 with a zero point: Keras 3.15's quantizer clips a
        # group whose values all share one sign (zero point limited to
        # [-8, 7]), so only a looser bound holds, as for Keras's own layer.
        assert np.all(error <= row_max / 2)
        assert error.mean() < 0.05
    np.testing.assert_array_equal(table[PADDING_ID], 0)

    looked_up = testing.to_numpy(layer(data["ids"]))
    np.testing.assert_allclose(looked_up, rows, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(looked_up, data["lookup"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(looked_up[data["ids"] == PADDING_ID], 0)
    if lora:
        # The file holds the LoRA delta merged into the table and quantized
        # again: the rows moved by at most one step from the unsaved ones.
        step = np.abs(rows).max(axis=-1, keepdims=True) / 127
        before = data["lookup_before_save"]
        assert np.all(np.abs(looked_up - before) <= step)
    # The fixtures store 0.2.0's `embeddings`, the dequantized table, which
    # 0.3.0 gives as `storage.float_table()` (`embeddings` shows the codes,
    # as Keras's layer).
    np.testing.assert_allclose(
        testing.to_numpy(layer.storage.float_table()),
        data["embeddings"],
        atol=1e-6,
    )


@pytest.mark.parametrize("name", sorted(QUANTIZED_FIXTURES))
@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_quantized_fixture_gives_stored_logits(backend, name):
    model, data = load_fixture(backend, name)
    called = testing.to_numpy(model(data["ids"])).astype("float32")
    predicted = model.predict(data["ids"], verbose=0).astype("float32")
    # The hidden states are quantized to int8 before the projection: a
    # last-bit difference between backends may move one step.
    np.testing.assert_allclose(called, data["expected"], atol=1e-4)
    np.testing.assert_allclose(predicted, data["expected"], atol=1e-4)
