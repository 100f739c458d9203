"""Every case of Keras 3.15.1's `reversible_embedding_test.py`, in our own
words, against `keras_embed.ReversibleEmbedding`: checked against NumPy
references and, where the layers should agree, against
`keras.layers.ReversibleEmbedding`. See docs/keras_parity.md."""

import math

import keras
import numpy as np
import pytest

from keras_embed import ReversibleEmbedding
from tests.test_embedding_keras_cases import COUNTER
from tests.test_embedding_keras_cases import dequantized
from tests.test_embedding_keras_cases import int4_config
from tests.test_embedding_keras_cases import names
from tests.test_embedding_keras_cases import ops_float
from tests.test_embedding_keras_cases import variable
from tests.testing import backend
from tests.testing import run_layer_test
from tests.testing import save_and_load
from tests.testing import to_numpy


def built(input_dim=10, output_dim=16, **kwargs):
    layer = ReversibleEmbedding(input_dim, output_dim, **kwargs)
    layer.build()
    return layer


def pair(input_dim, output_dim, **kwargs):
    """Ours and the built-in, built with the same weights."""
    ours = built(input_dim, output_dim, **kwargs)
    theirs = keras.layers.ReversibleEmbedding(input_dim, output_dim, **kwargs)
    theirs.build()
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def quantize_both(layers, mode, config_factory):
    for layer in layers:
        layer.quantize(mode, config=config_factory())


def hidden(*shape):
    return np.random.uniform(-1, 1, size=shape).astype("float32")


@pytest.mark.parametrize(
    "mode,weight_args,activation_args",
    [
        ("int8", {"axis": -1}, {"axis": -1}),
        (
            "int4",
            {"axis": -1, "value_range": (-8, 7), "output_dtype": "int8"},
            {"axis": -1},
        ),
        ("int8", {"axis": -1}, None),
    ],
    ids=["int8", "int4", "int8_weight_only"],
)
def test_quantize_with_config(mode, weight_args, activation_args):
    def config():
        quantizers = {
            "weight_quantizer": keras.quantizers.AbsMaxQuantizer(**weight_args),
            "activation_quantizer": activation_args
            and keras.quantizers.AbsMaxQuantizer(**activation_args),
        }
        if mode == "int8":
            return keras.quantizers.Int8QuantizationConfig(**quantizers)
        return keras.quantizers.Int4QuantizationConfig(
            **quantizers, block_size=None
        )

    ours, theirs = pair(10, 6, tie_weights=True)
    quantize_both([ours, theirs], mode, config)
    if activation_args is None:
        assert ours.inputs_quantizer is None
    else:
        assert isinstance(
            ours.inputs_quantizer, keras.quantizers.AbsMaxQuantizer
        )
    x = hidden(2, 6)
    logits = to_numpy(ours(x, reverse=True))
    assert logits.shape == (2, 10)
    np.testing.assert_allclose(
        logits, to_numpy(theirs(x, reverse=True)), rtol=1e-5, atol=1e-5
    )
    if activation_args is None:
        # Weight-only: float hidden states times the dequantized table.
        np.testing.assert_allclose(
            logits, x @ dequantized(ours).T, rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie", "untie"])
def test_basics(tie_weights):
    kwargs = {
        "input_dim": 100,
        "output_dim": 32,
        "tie_weights": tie_weights,
        "embeddings_initializer": "HeNormal",
        "logit_soft_cap": 50,
    }
    ids = np.random.randint(0, 100, size=(4, 10))
    run_layer_test(
        ReversibleEmbedding,
        kwargs,
        ids,
        (4, 10, 32),
        expected_num_trainable_weights=1 if tie_weights else 2,
    )
    layer = ReversibleEmbedding(**kwargs)
    vectors = to_numpy(layer(ids))
    np.testing.assert_array_equal(vectors, to_numpy(layer.embeddings)[ids])
    kernel = (
        to_numpy(layer.embeddings).T
        if tie_weights
        else to_numpy(layer.reverse_embeddings)
    )
    np.testing.assert_allclose(
        to_numpy(layer(vectors, reverse=True)),
        50 * np.tanh(vectors @ kernel / 50),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie", "untie"])
def test_saving(tie_weights):
    ids = np.random.randint(0, 100, size=(4, 10))
    model = keras.Sequential(
        [ReversibleEmbedding(100, 32, tie_weights=tie_weights)]
    )
    expected = to_numpy(model(ids))
    np.testing.assert_array_equal(to_numpy(save_and_load(model)(ids)), expected)


def test_correctness():
    table = np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    layer = built(3, 2)
    layer.embeddings.assign(table)
    np.testing.assert_array_equal(
        to_numpy(layer(np.array([2, 1, 0]))), table[[2, 1, 0]]
    )
    np.testing.assert_allclose(
        to_numpy(layer(np.array([[1.0, 1.0]]), reverse=True)), [[0.0, 4.0, 6.0]]
    )
    capped = built(3, 2, logit_soft_cap=5)
    capped.embeddings.assign(table)
    np.testing.assert_allclose(
        to_numpy(capped(np.array([[1.0, 1.0]]), reverse=True)),
        [[0.0, 3.320184, 4.168273]],
        rtol=1e-6,
    )


@pytest.mark.parametrize("reverse_dtype", ["float32", "float16"])
def test_reverse_dtype(reverse_dtype):
    if reverse_dtype == "float16" and backend() == "torch":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("torch on CPU has no float16 matmul")
    layer = ReversibleEmbedding(100, 16, reverse_dtype=reverse_dtype)
    out = layer(keras.ops.ones((4, 10, 16)), reverse=True)
    assert tuple(out.shape) == (4, 10, 100)
    assert keras.backend.standardize_dtype(out.dtype) == reverse_dtype
    expected = np.ones((4, 10, 16)) @ to_numpy(layer.embeddings).T
    np.testing.assert_allclose(
        to_numpy(ops_float(out)), expected, rtol=1e-2, atol=1e-2
    )


@pytest.mark.parametrize("tie_weights", [False, True], ids=["untie", "tie"])
@pytest.mark.parametrize("mode", ["int4", "int8"])
def test_quantize(tmp_path, mode, tie_weights):
    ours, theirs = pair(10, 16, tie_weights=tie_weights)
    x = np.random.randint(0, 9, size=(64, 3))
    x_reverse = np.random.uniform(size=(64, 16)).astype("float32")
    y_float = to_numpy(ours(x))
    logits_float = to_numpy(ours(x_reverse, reverse=True))
    ours.quantize(mode)
    theirs.quantize(mode)
    if not tie_weights:
        assert keras.backend.standardize_dtype(
            ours.reverse_embeddings.dtype
        ) == ("int8")
        assert keras.backend.standardize_dtype(
            ours.reverse_embeddings_scale.dtype
        ) == (ours.variable_dtype)
    y = to_numpy(ours(x))
    logits = to_numpy(ours(x_reverse, reverse=True))
    np.testing.assert_allclose(y, dequantized(ours)[x], rtol=1e-6)
    np.testing.assert_allclose(y, to_numpy(theirs(x)), rtol=1e-6)
    np.testing.assert_allclose(
        logits, to_numpy(theirs(x_reverse, reverse=True)), rtol=1e-5, atol=1e-5
    )
    assert np.mean((y_float - y) ** 2) < 1e-3
    assert np.mean((logits_float - logits) ** 2) < 1e-2

    model = keras.Sequential([ours])
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(
        save_and_load(model).predict(x, verbose=0), expected
    )
    model.save_weights(tmp_path / "q.weights.h5")
    for cls in (ReversibleEmbedding, keras.layers.ReversibleEmbedding):
        fresh = keras.Sequential([cls(10, 16, tie_weights=tie_weights)])
        fresh.build((None, 3))
        fresh.quantize(mode)
        fresh.load_weights(tmp_path / "q.weights.h5")
        np.testing.assert_allclose(
            fresh.predict(x, verbose=0), expected, rtol=1e-6
        )


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie", "untie"])
@pytest.mark.parametrize(
    "dtype",
    ["int8_from_mixed_bfloat16", "int4_from_mixed_bfloat16"],
    ids=["int8", "int4"],
)
def test_quantize_dtype_argument(dtype, tie_weights):
    kwargs = {
        "input_dim": 100,
        "output_dim": 32,
        "tie_weights": tie_weights,
        "embeddings_initializer": "HeNormal",
        "dtype": dtype,
    }
    layer = ReversibleEmbedding(**kwargs)
    config = layer.get_config()
    assert ReversibleEmbedding.from_config(config).get_config() == config
    layer.build((4, 10))
    theirs = keras.layers.ReversibleEmbedding(**kwargs)
    theirs.build((4, 10))
    assert layer.trainable_weights == []
    # Keras: 2 tied / 4 untied; ours adds the invalid-id counter.
    assert len(theirs.non_trainable_weights) == (2 if tie_weights else 4)
    assert names(layer.non_trainable_weights) == sorted(
        names(theirs.non_trainable_weights) + [COUNTER]
    )
    for weight in theirs.weights:
        assert tuple(variable(layer, weight.name).shape) == tuple(weight.shape)
    # Such a layer holds zeros until its quantized weights are loaded.
    values = [
        np.random.randint(-7, 7, size=w.shape).astype("int8")
        if "int" in w.dtype
        else np.random.uniform(1, 2, size=w.shape)
        for w in theirs.weights
    ]
    theirs.set_weights(values)
    layer.set_weights(values)
    ids = np.random.randint(0, 100, size=(4, 10))
    out = layer(ids)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_array_equal(
        to_numpy(ops_float(out)), to_numpy(ops_float(theirs(ids)))
    )
    x = hidden(4, 32)
    # The built-in's quantized logits come out float32 (scales promote).
    assert keras.backend.standardize_dtype(layer(x, reverse=True).dtype) == (
        keras.backend.standardize_dtype(theirs(x, reverse=True).dtype)
    )
    np.testing.assert_allclose(
        to_numpy(ops_float(layer(x, reverse=True))),
        to_numpy(ops_float(theirs(x, reverse=True))),
        rtol=2e-2,
    )
    model = keras.Sequential([keras.Input((10,), dtype="int32"), layer])
    np.testing.assert_array_equal(
        to_numpy(ops_float(save_and_load(model)(ids))),
        to_numpy(ops_float(model(ids))),
    )


def test_int8_custom_quantizer_config_round_trip():
    config = keras.quantizers.Int8QuantizationConfig(
        weight_quantizer=keras.quantizers.AbsMaxQuantizer(
            axis=-1, value_range=(-20, 20)
        )
    )
    layer = built(100, 16)
    layer.quantize("int8", config=config)
    assert np.abs(to_numpy(variable(layer, "embeddings"))).max() <= 20
    revived = ReversibleEmbedding.from_config(layer.get_config())
    restored = revived.quantization_config
    assert isinstance(restored, keras.quantizers.Int8QuantizationConfig)
    assert isinstance(
        restored.weight_quantizer, keras.quantizers.AbsMaxQuantizer
    )
    assert tuple(restored.weight_quantizer.value_range) == (-20, 20)


class MaskSeen(keras.layers.Layer):
    """Returns the mask Keras passed it: -1 everywhere when None."""

    def __init__(self):
        super().__init__()
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return -keras.ops.ones(keras.ops.shape(inputs)[:-1])
        return keras.ops.cast(mask, "float32")


def test_masking():
    layer = built(3, 2, mask_zero=True)
    seen = MaskSeen()
    np.testing.assert_array_equal(
        to_numpy(seen(layer(np.array([2, 1, 0])))), [1, 1, 0]
    )
    logits = layer(np.array([[1.0, 2.0], [0.0, 0.0]]), reverse=True)
    np.testing.assert_array_equal(to_numpy(seen(logits)), [-1, -1])


def scale_shapes(input_dim, output_dim, block_size):
    """(forward, reverse) scale shapes, as Keras lays them out."""
    if block_size in (None, -1):
        return (input_dim,), (input_dim,)
    groups = math.ceil(output_dim / block_size)
    return (input_dim, groups), (groups, input_dim)


BLOCK_IDS = {64: "64", 128: "128", None: "none", -1: "neg1"}


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie", "untie"])
@pytest.mark.parametrize(
    "block_size", [64, 128, None, -1], ids=lambda b: f"block_{BLOCK_IDS[b]}"
)
def test_int4_block_size(block_size, tie_weights):
    ours, theirs = pair(100, 256, tie_weights=tie_weights)
    x = np.random.randint(0, 100, size=(4, 8))
    x_reverse = np.random.random((4, 256)).astype("float32")
    y_float = to_numpy(ours(x))
    logits_float = to_numpy(ours(x_reverse, reverse=True))
    quantize_both([ours, theirs], "int4", lambda: int4_config(block_size))
    assert ours.quantization_config.block_size == block_size
    forward, reverse = scale_shapes(100, 256, block_size)
    assert tuple(ours.embeddings_scale.shape) == forward
    if not tie_weights:
        assert tuple(ours.reverse_embeddings_scale.shape) == reverse
    y = to_numpy(ours(x))
    logits = to_numpy(ours(x_reverse, reverse=True))
    np.testing.assert_allclose(y, to_numpy(theirs(x)), rtol=1e-6)
    np.testing.assert_allclose(
        logits, to_numpy(theirs(x_reverse, reverse=True)), rtol=1e-4, atol=1e-4
    )
    assert np.mean((y_float - y) ** 2) < 1e-3
    assert np.mean((logits_float - logits) ** 2) < 1e-2


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tie", "untie"])
@pytest.mark.parametrize(
    "block_size", [64, 128, None], ids=lambda b: f"block_{BLOCK_IDS[b]}"
)
def test_int4_block_size_survives_saving(block_size, tie_weights):
    layer = built(50, 128, tie_weights=tie_weights)
    layer.quantize("int4", config=int4_config(block_size))
    x = np.random.randint(0, 50, size=(2, 8))
    before = to_numpy(layer(x))
    loaded = save_and_load(keras.Sequential([layer])).layers[0]
    config = loaded.quantization_config
    assert isinstance(config, keras.quantizers.Int4QuantizationConfig)
    assert config.block_size == block_size
    if not tie_weights and block_size is not None:
        np.testing.assert_array_equal(
            to_numpy(loaded.reverse_embeddings_zero),
            to_numpy(layer.reverse_embeddings_zero),
        )
    np.testing.assert_array_equal(to_numpy(loaded(x)), before)
    h = hidden(2, 128)
    np.testing.assert_array_equal(
        to_numpy(loaded(h, reverse=True)), to_numpy(layer(h, reverse=True))
    )


@pytest.mark.parametrize(
    "tie_weights,block_size",
    [(True, 64), (True, None), (False, 64), (False, None)],
    ids=["tie_grouped", "tie_perchannel", "untie_grouped", "untie_perchannel"],
)
def test_int4_grouped_vs_per_channel_scale_shapes(tie_weights, block_size):
    layer = built(100, 256, tie_weights=tie_weights)
    layer.quantize("int4", config=int4_config(block_size))
    forward, reverse = scale_shapes(100, 256, block_size)
    assert tuple(layer.embeddings_scale.shape) == forward
    if tie_weights:
        return
    assert tuple(layer.reverse_embeddings_scale.shape) == reverse
    if block_size is None:
        assert not hasattr(layer, "reverse_embeddings_zero")
    else:
        assert tuple(layer.reverse_embeddings_zero.shape) == reverse


@pytest.mark.parametrize(
    "block_size", [4, 8], ids=["grouped_block_4", "grouped_block_8"]
)
def test_int4_grouped_has_g_idx(block_size):
    layer = built(10, 16)
    layer.quantize("int4", config=int4_config(block_size))
    assert tuple(layer.g_idx.shape) == (16,)
    np.testing.assert_array_equal(
        to_numpy(layer.g_idx), np.arange(16) // block_size
    )


def test_int4_per_channel_has_no_g_idx():
    layer = built(10, 16)
    layer.quantize("int4", config=int4_config(None))
    assert not hasattr(layer, "g_idx")


def test_int4_g_idx_survives_saving():
    layer = built(10, 16)
    layer.quantize("int4", config=int4_config(8))
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    before = to_numpy(layer(x))
    loaded = save_and_load(keras.Sequential([layer])).layers[0]
    np.testing.assert_array_equal(to_numpy(loaded.g_idx), np.arange(16) // 8)
    np.testing.assert_array_equal(to_numpy(loaded(x)), before)
