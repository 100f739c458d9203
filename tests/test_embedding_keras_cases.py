"""Every case of Keras 3.15.1's `embedding_test.py`, in our own words,
against `keras_embed.Embedding`: checked against NumPy references and, where
the two layers should agree, against `keras.layers.Embedding`. Where our
documented behaviour differs (the extra `invalid_id_count` variable, a
dequantized `embeddings` property, ...) we test ours; see
docs/keras_parity.md for the case-by-case mapping."""

import math

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from tests.testing import backend
from tests.testing import run_layer_test
from tests.testing import save_and_load
from tests.testing import to_numpy

COUNTER = "invalid_id_count"
IDS = np.array([[1, 2, 3], [4, 5, 9]], dtype="int32")


def variable(layer, name):
    """A layer's variable by name: public access to the raw (e.g. int8)
    `embeddings` that the `embeddings` property dequantizes."""
    (found,) = [v for v in layer.variables if v.name == name]
    return found


def names(variables):
    return sorted(v.name for v in variables)


def dequantized(layer):
    """The NumPy float table a quantized layer's raw variables hold."""
    values = to_numpy(variable(layer, "embeddings")).astype("int32")
    scale = to_numpy(layer.embeddings_scale).astype("float32")
    if layer.quantization_mode == "int4":
        low = ((values & 0x0F) ^ 8) - 8
        high = values >> 4
        values = np.stack([low, high], -1).reshape(len(values), -1)
        values = values[:, : layer.output_dim]
    if scale.ndim == 1:
        return values / scale[:, None]
    groups = to_numpy(layer.g_idx).astype("int32")
    zero = to_numpy(layer.embeddings_zero).astype("float32")
    return (values - zero[:, groups]) * scale[:, groups]


def built(input_dim=10, output_dim=16, **kwargs):
    layer = Embedding(input_dim, output_dim, **kwargs)
    layer.build()
    return layer


def int4_config(block_size):
    return keras.quantizers.Int4QuantizationConfig(block_size=block_size)


def sequential(layer, length=3):
    return keras.Sequential([keras.Input((length,), dtype="int32"), layer])


@pytest.mark.parametrize(
    "mode,quantizer_args",
    [
        ("int8", {"axis": -1}),
        ("int4", {"axis": -1, "value_range": (-8, 7), "output_dtype": "int8"}),
        ("int8", {"axis": -1, "value_range": (-100, 100)}),
    ],
    ids=["int8", "int4", "int8_custom"],
)
def test_quantize_with_config(mode, quantizer_args):
    layer = built(10, 6)
    weight_quantizer = keras.quantizers.AbsMaxQuantizer(**quantizer_args)
    if mode == "int8":
        config = keras.quantizers.Int8QuantizationConfig(
            weight_quantizer=weight_quantizer, activation_quantizer=None
        )
    else:
        config = keras.quantizers.Int4QuantizationConfig(
            weight_quantizer=weight_quantizer,
            activation_quantizer=None,
            block_size=None,
        )
    layer.quantize(mode, config=config)
    assert keras.backend.standardize_dtype(
        variable(layer, "embeddings").dtype
    ) == ("int8")
    assert layer.quantization_config is config
    ids = np.random.randint(0, 10, size=(2, 3))
    out = to_numpy(layer(ids))
    assert out.shape == (2, 3, 6)
    np.testing.assert_allclose(out, dequantized(layer)[ids], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,shape,dtype,out_shape,masking",
    [
        ({"input_dim": 4, "output_dim": 3}, (2,), "int32", (2, 3), False),
        (
            {"input_dim": 5, "output_dim": 4, "mask_zero": True},
            (2, 3),
            "int64",
            (2, 3, 4),
            True,
        ),
    ],
    ids=["plain", "mask_zero"],
)
def test_basics(kwargs, shape, dtype, out_shape, masking):
    ids = np.random.randint(1, kwargs["input_dim"], size=shape).astype(dtype)
    run_layer_test(Embedding, kwargs, ids, out_shape, supports_masking=masking)
    layer = Embedding(**kwargs)
    np.testing.assert_array_equal(
        to_numpy(layer(ids)), to_numpy(layer.embeddings)[ids]
    )


def sparse_ids():
    """Ids [[2, 0, 0], [0, 0, 1]] as the backend's sparse tensor."""
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.SparseTensor([[0, 0], [1, 2]], [2, 1], (2, 3))
    if backend() == "jax":
        from jax.experimental import sparse

        return sparse.BCOO(
            (np.array([2, 1]), np.array([[0, 0], [1, 2]])), shape=(2, 3)
        )
    pytest.skip("torch has no sparse tensors in Keras")


def test_sparse_input_in_a_model():
    ids = sparse_ids()
    inputs = keras.Input((3,), dtype="int32", sparse=True)
    layer = Embedding(5, 4)
    model = keras.Model(inputs, layer(inputs))
    assert tuple(model.output_shape) == (None, 3, 4)
    dense = np.array([[2, 0, 0], [0, 0, 1]])
    expected = to_numpy(layer.embeddings)[dense]
    np.testing.assert_array_equal(to_numpy(model(ids)), expected)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = to_numpy(layer.embeddings).copy()
    model.train_on_batch(ids, np.ones((2, 3, 4)))
    assert not np.allclose(
        before[[0, 1, 2]], to_numpy(layer.embeddings)[[0, 1, 2]]
    )


def test_correctness_sparse():
    layer = built(3, 2)
    layer.embeddings.assign(np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
    expected = np.array(
        [
            [[3.0, 3.0], [0.0, 0.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]],
        ]
    )
    np.testing.assert_array_equal(to_numpy(layer(sparse_ids())), expected)


@pytest.mark.skipif(
    backend() != "tensorflow", reason="ragged tensors are TensorFlow's"
)
def test_ragged_input_in_a_model():
    import tensorflow as tf

    ids = tf.ragged.constant([[1, 2, 3], [4]], dtype="int32")
    inputs = keras.Input((None,), dtype="int32", ragged=True)
    layer = Embedding(5, 4)
    model = keras.Model(inputs, layer(inputs))
    out = model(ids)
    assert isinstance(out, tf.RaggedTensor)
    table = to_numpy(layer.embeddings)
    np.testing.assert_array_equal(out[0].numpy(), table[[1, 2, 3]])
    np.testing.assert_array_equal(out[1].numpy(), table[[4]])


def test_correctness():
    layer = built(3, 2)
    layer.embeddings.assign(np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
    np.testing.assert_array_equal(
        to_numpy(layer(np.array([2, 1, 0]))),
        np.array([[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]]),
    )


def test_masking():
    layer = built(3, 2, mask_zero=True)
    np.testing.assert_array_equal(
        to_numpy(layer.compute_mask(np.array([2, 1, 0]))), [True, True, False]
    )


def test_compute_mask_without_mask_zero():
    assert Embedding(3, 2).compute_mask(np.array([2, 1, 0])) is None


def test_embeddings_constraint_on_variable():
    layer = Embedding(3, 2, embeddings_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.embeddings.constraint, keras.constraints.NonNeg)


@pytest.mark.parametrize("name", ["input_dim", "output_dim"])
def test_invalid_dims(name):
    for bad in (3.7, 4.0, "3", None, True, False, -1, 0):
        kwargs = {"input_dim": 10, "output_dim": 8, name: bad}
        with pytest.raises(ValueError, match=f"`{name}` must be a positive"):
            Embedding(**kwargs)
    config = {"input_dim": 10, "output_dim": 8, name: 3.7}
    with pytest.raises(TypeError, match=f"`{name}` must be a positive"):
        Embedding.from_config(config)


@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_weights_constructor_arg(as_list):
    weights = np.arange(12, dtype="float32").reshape(3, 4)
    layer = Embedding(3, 4, weights=[weights] if as_list else weights)
    assert layer.built
    np.testing.assert_array_equal(to_numpy(layer.embeddings), weights)


def test_enable_lora(tmp_path):
    layer = built(10, 16)
    layer.enable_lora(4)
    assert names(layer.trainable_weights) == [
        "lora_embeddings_a",
        "lora_embeddings_b",
    ]
    # Keras: 1 (the frozen table); ours also holds the invalid-id counter.
    assert names(layer.non_trainable_weights) == ["embeddings", COUNTER]
    for name in ("lora_embeddings_a", "lora_embeddings_b"):
        assert (
            keras.backend.standardize_dtype(getattr(layer, name).dtype)
            == "float32"
        )
    x = np.random.randint(0, 9, size=(64, 3))
    y = np.random.random((64, 3, 16))
    layer(x[:2])
    a0 = to_numpy(layer.lora_embeddings_a).copy()
    b0 = to_numpy(layer.lora_embeddings_b).copy()
    base = to_numpy(variable(layer, "embeddings")).copy()
    model = keras.Sequential([layer])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, verbose=0)
    assert np.abs(to_numpy(layer.lora_embeddings_a) - a0).max() > 0
    assert np.abs(to_numpy(layer.lora_embeddings_b) - b0).max() > 0
    np.testing.assert_array_equal(to_numpy(variable(layer, "embeddings")), base)
    expected = model.predict(x, verbose=0)

    reloaded = save_and_load(model)
    assert reloaded.layers[0].lora_enabled
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), expected, atol=1e-6
    )

    path = tmp_path / "lora.weights.h5"
    model.save_weights(path)
    plain = sequential(Embedding(10, 16))
    plain.load_weights(path)
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, atol=1e-6)
    # The same file in the built-in layer: our file holds the merged table.
    theirs = sequential(keras.layers.Embedding(10, 16))
    theirs.load_weights(path)
    np.testing.assert_allclose(
        theirs.predict(x, verbose=0), expected, atol=1e-6
    )

    # A LoRA-free checkpoint into the LoRA model.
    plain.save_weights(path)
    model.load_weights(path)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)
    # Ours zeroes only `b` (Keras zeroes both): the delta is 0, `a` still
    # gets a gradient once `b` moves.
    np.testing.assert_array_equal(to_numpy(layer.lora_embeddings_b), 0)
    assert np.abs(to_numpy(layer.lora_embeddings_a)).max() > 0


def test_enable_lora_with_alpha():
    layer = built(3, 2)
    base = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], dtype="float32")
    layer.embeddings.assign(base)
    layer.enable_lora(2, lora_alpha=3.0)
    assert (layer.lora_rank, layer.lora_alpha) == (2, 3.0)
    a = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], dtype="float32")
    b = np.array([[0.5, 0.5], [0.6, 0.6]], dtype="float32")
    layer.lora_embeddings_a.assign(a)
    layer.lora_embeddings_b.assign(b)
    expected = base + 1.5 * a @ b
    np.testing.assert_allclose(to_numpy(layer.embeddings), expected, rtol=1e-6)
    np.testing.assert_allclose(
        to_numpy(layer(np.array([2, 0]))), expected[[2, 0]], rtol=1e-6
    )


def test_lora_rank_argument():
    kwargs = {"input_dim": 5, "output_dim": 4, "lora_rank": 2}
    ids = np.random.randint(0, 5, size=(2, 3)).astype("int32")
    layer = Embedding(**kwargs)
    assert Embedding.from_config(layer.get_config()).get_config() == (
        layer.get_config()
    )
    layer.build(ids.shape)
    assert len(layer.trainable_weights) == 2
    assert names(layer.non_trainable_weights) == ["embeddings", COUNTER]
    model = sequential(layer)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = to_numpy(layer.embeddings).copy()
    model.fit(ids, np.ones((2, 3, 4)), verbose=0)
    assert not np.allclose(before, to_numpy(layer.embeddings))
    reloaded = save_and_load(model)
    np.testing.assert_allclose(
        to_numpy(reloaded(ids)), to_numpy(model(ids)), atol=1e-6
    )
    mixed = Embedding(**kwargs, dtype="mixed_float16")
    assert keras.backend.standardize_dtype(mixed(ids).dtype) == "float16"


def test_enable_lora_refuses_constraint():
    layer = Embedding(10, 16, embeddings_constraint="max_norm")
    with pytest.raises(ValueError, match="incompatible with embedding constr"):
        layer.enable_lora(rank=2)


def test_enable_lora_twice():
    layer = built()
    layer.enable_lora(rank=2)
    with pytest.raises(ValueError, match="lora is already enabled"):
        layer.enable_lora(rank=2)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize(tmp_path, mode):
    layer = built()
    x = np.random.randint(0, 9, size=(64, 3))
    y_float = to_numpy(layer(x))
    layer.quantize(mode)
    assert (
        keras.backend.standardize_dtype(variable(layer, "embeddings").dtype)
        == "int8"
    )
    assert keras.backend.standardize_dtype(layer.embeddings_scale.dtype) == (
        layer.variable_dtype
    )
    # Keras's `embeddings` gives the raw ints; ours the float table.
    np.testing.assert_allclose(
        to_numpy(layer.embeddings), dequantized(layer), rtol=1e-6
    )
    y = to_numpy(layer(x))
    np.testing.assert_allclose(y, dequantized(layer)[x], rtol=1e-6)
    assert np.mean((y_float - y) ** 2) < 1e-3

    model = keras.Sequential([layer])
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(
        save_and_load(model).predict(x, verbose=0), expected
    )
    model.save_weights(tmp_path / "q.weights.h5")
    for cls in (Embedding, keras.layers.Embedding):
        fresh = keras.Sequential([cls(10, 16)])
        fresh.build((None, 3))
        fresh.quantize(mode)
        fresh.load_weights(tmp_path / "q.weights.h5")
        np.testing.assert_allclose(
            fresh.predict(x, verbose=0), expected, rtol=1e-6
        )


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_unbuilt(mode):
    with pytest.raises(ValueError, match="isn't yet built"):
        Embedding(10, 16).quantize(mode)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_subclass_needs_type_check_off(mode):
    class MyEmbedding(Embedding):
        pass

    layer = MyEmbedding(10, 16)
    layer.build()
    with pytest.raises(NotImplementedError):
        layer.quantize(mode)
    layer.quantize(mode, type_check=False)
    assert layer.quantization_mode == mode


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_twice(mode):
    quantized = built()
    quantized.quantize(mode)
    from_policy = built(dtype=f"{mode}_from_float32")
    for layer in (quantized, from_policy):
        for again in ("int8", "int4"):
            with pytest.raises(ValueError, match="is already quantized with"):
                layer.quantize(again)


@pytest.mark.parametrize(
    "policy", ["int8_from_float32", "int4_from_float32"], ids=["int8", "int4"]
)
def test_quantize_by_setting_dtype_policy(policy):
    ours = built()
    theirs = keras.layers.Embedding(10, 16)
    theirs.build()
    ours.dtype_policy = policy
    theirs.dtype_policy = policy
    assert ours.quantization_mode == policy[:4]
    # Keras: 2 (int8) or 4 (int4) variables; ours adds the counter.
    assert names(ours.variables) == sorted(names(theirs.variables) + [COUNTER])
    for v in theirs.variables:
        assert tuple(variable(ours, v.name).shape) == tuple(v.shape)


@pytest.mark.parametrize("mode", ["int7", "float7"])
def test_quantize_invalid_mode(mode):
    layer = built()
    policy = layer.dtype_policy
    with pytest.raises(ValueError, match="Invalid quantization mode."):
        layer.quantize(mode)
    assert layer.dtype_policy == policy
    assert layer.quantization_mode is None
    np.testing.assert_array_equal(
        to_numpy(layer(IDS)), to_numpy(layer.embeddings)[IDS]
    )


@pytest.mark.parametrize(
    "dtype",
    ["int8_from_mixed_bfloat16", "int4_from_mixed_bfloat16"],
    ids=["int8", "int4"],
)
@pytest.mark.parametrize(
    "kwargs,shape,id_dtype",
    [
        ({"input_dim": 4, "output_dim": 3}, (2,), "int32"),
        ({"input_dim": 5, "output_dim": 4, "mask_zero": True}, (2, 3), "int64"),
    ],
    ids=["plain", "mask_zero"],
)
def test_quantize_dtype_argument(dtype, kwargs, shape, id_dtype):
    ids = np.random.randint(1, kwargs["input_dim"], size=shape).astype(id_dtype)
    layer = Embedding(**kwargs, dtype=dtype)
    config = layer.get_config()
    assert Embedding.from_config(config).get_config() == config
    layer.build(shape)
    assert layer.trainable_weights == []
    # Keras: embeddings + embeddings_scale (per-row); ours adds the counter.
    assert names(layer.non_trainable_weights) == [
        "embeddings",
        "embeddings_scale",
        COUNTER,
    ]
    assert layer.supports_masking == kwargs.get("mask_zero", False)
    # Such a layer holds zeros until its quantized weights are loaded.
    raw = variable(layer, "embeddings")
    raw.assign(np.random.randint(-7, 7, size=raw.shape).astype("int8"))
    layer.embeddings_scale.assign(
        np.random.uniform(1, 2, (kwargs["input_dim"],))
    )
    out = layer(ids)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        to_numpy(ops_float(out)), dequantized(layer)[ids], rtol=1e-2
    )
    symbolic = Embedding(**kwargs, dtype=dtype)(
        keras.Input(batch_shape=shape, dtype=id_dtype)
    )
    assert tuple(symbolic.shape) == shape + (kwargs["output_dim"],)
    model = keras.Sequential(
        [keras.Input(batch_shape=shape, dtype=id_dtype), layer]
    )
    np.testing.assert_array_equal(
        to_numpy(ops_float(save_and_load(model)(ids))),
        to_numpy(ops_float(model(ids))),
    )


def ops_float(x):
    return keras.ops.cast(x, "float32")


@pytest.mark.parametrize(
    "mode,num_non_trainable",
    [("int8", 2), ("int4", 4)],
    ids=["int8", "int4"],
)
def test_quantize_then_lora(tmp_path, mode, num_non_trainable):
    layer = built()
    layer.enable_lora(4)
    layer.quantize(mode)
    assert len(layer.trainable_weights) == 2
    # Keras's count, plus our counter.
    assert len(layer.non_trainable_weights) == num_non_trainable + 1
    a0 = to_numpy(layer.lora_embeddings_a).copy()
    b0 = to_numpy(layer.lora_embeddings_b).copy()
    x = np.random.randint(0, 9, size=(64, 3))
    y = np.random.random((64, 3, 16))
    model = keras.Sequential([layer])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, verbose=0)
    assert np.abs(to_numpy(layer.lora_embeddings_a) - a0).max() > 0
    assert np.abs(to_numpy(layer.lora_embeddings_b) - b0).max() > 0
    expected = model.predict(x, verbose=0)

    reloaded = save_and_load(model)
    assert reloaded.layers[0].lora_enabled
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), expected, atol=0.5
    )

    path = tmp_path / "q_lora.weights.h5"
    model.save_weights(path)
    plain = sequential(Embedding(10, 16))
    plain.quantize(mode)
    plain.load_weights(path)
    assert not plain.layers[0].lora_enabled
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, atol=0.5)

    plain.save_weights(path)
    model.load_weights(path)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-6
    )

    if backend() == "tensorflow":
        import tensorflow as tf

        # The exported signature is the one `fit` traced: float ids (Keras
        # feeds random floats, which ours refuses; whole numbers are ids).
        ids = tf.constant(x[:8], dtype="float32")
        export_path = str(tmp_path / "exported")
        model.export(export_path, format="tf_saved_model", verbose=False)
        reloaded_layer = keras.layers.TFSMLayer(export_path)
        np.testing.assert_allclose(
            to_numpy(reloaded_layer(ids)), to_numpy(model(ids)), atol=1e-6
        )
        assert len(reloaded_layer.trainable_weights) == 2


def test_legacy_numeric_store():
    float_store = {"0": np.random.random((10, 16)).astype("float32")}
    int8_store = {
        "0": np.random.randint(-127, 127, size=(10, 16), dtype="int8"),
        "1": np.random.random((10,)).astype("float32") + 0.5,
    }
    int4_store = {
        "0": np.random.randint(-127, 127, size=(10, 8), dtype="int8"),
        "1": np.random.random((10,)).astype("float32") + 0.5,
    }
    layer = built()
    layer.load_own_variables(float_store)
    np.testing.assert_array_equal(to_numpy(layer.embeddings), float_store["0"])
    for mode, store in (("int8", int8_store), ("int4", int4_store)):
        layer = built(dtype=f"{mode}_from_float32")
        layer.load_own_variables(store)
        np.testing.assert_array_equal(
            to_numpy(variable(layer, "embeddings")), store["0"]
        )
        np.testing.assert_array_equal(
            to_numpy(layer.embeddings_scale), store["1"]
        )
        ids = np.array([0, 3, 9])
        np.testing.assert_allclose(
            to_numpy(layer(ids)), dequantized(layer)[ids], rtol=1e-6
        )


def test_int8_custom_quantizer_config_round_trip():
    config = keras.quantizers.Int8QuantizationConfig(
        weight_quantizer=keras.quantizers.AbsMaxQuantizer(
            axis=-1, value_range=(-50, 50)
        )
    )
    layer = built(100, 16)
    layer.quantize("int8", config=config)
    assert np.abs(to_numpy(variable(layer, "embeddings"))).max() <= 50
    revived = Embedding.from_config(layer.get_config())
    restored = revived.quantization_config
    assert isinstance(restored, keras.quantizers.Int8QuantizationConfig)
    quantizer = restored.weight_quantizer
    assert isinstance(quantizer, keras.quantizers.AbsMaxQuantizer)
    assert tuple(quantizer.axis) == (-1,)
    assert tuple(quantizer.value_range) == (-50, 50)


def expected_scale_shape(input_dim, output_dim, block_size):
    if block_size in (None, -1):
        return (input_dim,)
    return (input_dim, math.ceil(output_dim / block_size))


@pytest.mark.parametrize(
    "block_size",
    [64, 128, None, -1],
    ids=[
        "grouped_block_64",
        "grouped_block_128",
        "per_channel_none",
        "per_channel_neg1",
    ],
)
def test_int4_block_size(block_size):
    layer = built(100, 256)
    x = np.random.randint(0, 100, size=(4, 8))
    y_float = to_numpy(layer(x))
    layer.quantize("int4", config=int4_config(block_size))
    # Keras reads its private `_int4_block_size`; ours shows in the config
    # and the dtype policy.
    assert layer.quantization_config.block_size == block_size
    assert layer.dtype_policy.name.startswith(
        f"int4/{-1 if block_size is None else block_size}_"
    )
    assert tuple(layer.embeddings_scale.shape) == expected_scale_shape(
        100, 256, block_size
    )
    y = to_numpy(layer(x))
    np.testing.assert_allclose(y, dequantized(layer)[x], rtol=1e-5, atol=1e-7)
    assert np.mean((y_float - y) ** 2) < 1e-3


@pytest.mark.parametrize(
    "block_size",
    [64, 128, None],
    ids=["grouped_block_64", "grouped_block_128", "per_channel_none"],
)
def test_int4_block_size_survives_saving(block_size):
    layer = built(50, 128)
    layer.quantize("int4", config=int4_config(block_size))
    x = np.random.randint(0, 50, size=(2, 8))
    before = to_numpy(layer(x))
    loaded = save_and_load(keras.Sequential([layer])).layers[0]
    config = loaded.quantization_config
    assert isinstance(config, keras.quantizers.Int4QuantizationConfig)
    assert config.block_size == block_size
    np.testing.assert_array_equal(to_numpy(loaded(x)), before)


@pytest.mark.parametrize(
    "block_size", [64, None], ids=["grouped_block_64", "per_channel"]
)
def test_int4_block_size_then_lora(block_size):
    layer = built(50, 128)
    layer.quantize("int4", config=int4_config(block_size))
    layer.enable_lora(rank=4)
    x = np.random.randint(0, 50, size=(4, 8))
    out = to_numpy(layer(x))
    assert out.shape == (4, 8, 128)
    # `b` starts at zero: the output is the quantized table's.
    np.testing.assert_allclose(out, dequantized(layer)[x], rtol=1e-5, atol=1e-7)


def test_int4_grouped_vs_per_channel_scale_shapes():
    per_channel = built(100, 256)
    per_channel.quantize("int4", config=int4_config(None))
    grouped = built(100, 256)
    grouped.quantize("int4", config=int4_config(64))
    assert tuple(per_channel.embeddings_scale.shape) == (100,)
    assert tuple(grouped.embeddings_scale.shape) == (100, 4)


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
    assert "g_idx" not in names(layer.variables)


def test_int4_g_idx_survives_saving():
    layer = built(10, 16)
    layer.quantize("int4", config=int4_config(8))
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    before = to_numpy(layer(x))
    loaded = save_and_load(keras.Sequential([layer])).layers[0]
    np.testing.assert_array_equal(to_numpy(loaded.g_idx), np.arange(16) // 8)
    np.testing.assert_array_equal(to_numpy(loaded(x)), before)
