"""`HashedEmbedding` against NumPy: outputs, buckets, masks, gradients,
errors, config, `.keras` files (also those written on every backend),
quantization, LoRA, row-sparse training, JAX's 32-bit mode."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from keras_embed import HashedEmbedding
from keras_embed import hash_ids
from keras_embed import key_halves
from keras_embed import string_keys
from tests import testing
from tests.gradients import weight_gradients
from tests.test_hashing import EDGE_KEYS
from tests.test_hashing import compiled
from tests.test_hashing import modes
from tests.test_hashing import wide_int_dtype_available

RNG = np.random.default_rng(5)
BUCKETS, DIM, HASHES, IMPORTANCE = 37, 3, 2, 11
TABLE = RNG.normal(size=(BUCKETS, DIM)).astype("float32")
WEIGHTS = RNG.uniform(0.5, 1.5, size=(IMPORTANCE, HASHES)).astype("float32")
KEYS = np.concatenate(
    [
        np.array(EDGE_KEYS, np.int64),
        RNG.integers(-(2**63), 2**63 - 1, 27, dtype=np.int64),
    ]
).reshape(8, 5)
FIXTURES_DIR = pathlib.Path(__file__).resolve().parent / "fixtures" / "hashed"
FIXTURE_BACKENDS = ("tensorflow", "jax", "torch")


def layer_with_weights(combiner="weighted", seed=9, **kwargs):
    kwargs.setdefault("num_hashes", HASHES)
    if combiner == "weighted":
        kwargs.setdefault("importance_buckets", IMPORTANCE)
    layer = HashedEmbedding(
        BUCKETS, DIM, combiner=combiner, seed=seed, **kwargs
    )
    layer.build()
    layer.embedding.embeddings.assign(TABLE[:, :DIM])
    if combiner == "weighted":
        layer.importance.assign(WEIGHTS[:, : kwargs["num_hashes"]])
    return layer


def reference(keys, combiner="weighted", seed=9, num_hashes=HASHES):
    """The layer's output from `hash_ids` and the weights, in float64."""
    rows = [TABLE[hash_ids(keys, BUCKETS, seed + j)] for j in range(num_hashes)]
    if combiner == "weighted":
        chosen = WEIGHTS[hash_ids(keys, IMPORTANCE, seed + num_hashes)]
        rows = [rows[j] * chosen[..., j : j + 1] for j in range(num_hashes)]
    return np.sum(np.asarray(rows, np.float64), axis=0)


def assert_close(found, expected):
    np.testing.assert_allclose(
        testing.to_numpy(found), expected, rtol=1e-6, atol=1e-6
    )


# -- outputs against NumPy ----------------------------------------------------


@pytest.mark.parametrize("combiner", ["weighted", "sum"])
def test_eager_numpy_keys_match_reference(combiner):
    layer = layer_with_weights(combiner)
    out = layer(KEYS)
    assert tuple(out.shape) == KEYS.shape + (DIM,)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert_close(out, reference(KEYS, combiner))


def test_one_hash_summed_is_the_hashing_trick():
    layer = layer_with_weights("sum", num_hashes=1)
    np.testing.assert_array_equal(
        testing.to_numpy(layer(KEYS)), TABLE[hash_ids(KEYS, BUCKETS, 9)]
    )


def test_bucket_ids_are_the_numpy_hashes():
    layer = layer_with_weights()
    expected = np.stack(
        [hash_ids(KEYS, BUCKETS, 9 + j) for j in range(HASHES)], -1
    )
    np.testing.assert_array_equal(
        testing.to_numpy(layer.bucket_ids(KEYS)), expected
    )


@pytest.mark.parametrize("mode", ["eager", "compiled", "xla"])
def test_tensor_keys_match_reference_eager_and_compiled(mode):
    if mode not in modes():
        pytest.skip("XLA through tf.function is TensorFlow's extra mode")
    layer = layer_with_weights()
    run = compiled(lambda x: layer(x), mode)
    halves_layer = layer_with_weights(key_halves=True)
    run_halves = compiled(lambda x: halves_layer(x), mode)
    assert_close(
        run_halves(ops.convert_to_tensor(key_halves(KEYS))), reference(KEYS)
    )
    small = KEYS[(KEYS >= -(2**31)) & (KEYS < 2**31)]
    assert_close(
        run(ops.convert_to_tensor(small.astype("int32"))), reference(small)
    )
    if wide_int_dtype_available():
        assert_close(run(ops.convert_to_tensor(KEYS)), reference(KEYS))


def model_of(layer, keys_shape, dtype):
    inputs = keras.Input(keys_shape, dtype=dtype)
    return keras.Model(inputs, layer(inputs))


def test_predict_matches_reference():
    layer = layer_with_weights(key_halves=True)
    model = model_of(layer, (5, 2), "int32")
    assert_close(model.predict(key_halves(KEYS), verbose=0), reference(KEYS))


def test_predict_on_int64_keys_beyond_int32():
    """Exact where the backend holds int64; under JAX's 32-bit mode Keras
    wraps each key to its low 32 bits before the layer (documented)."""
    model = model_of(layer_with_weights(), (5,), "int64")
    found = model.predict(KEYS, verbose=0)
    if wide_int_dtype_available():
        assert_close(found, reference(KEYS))
    else:
        wrapped = KEYS.astype(np.int32).astype(np.int64)
        assert_close(found, reference(wrapped))
        assert not np.allclose(found, reference(KEYS))


def test_mixed_precision_output_and_float32_table():
    layer = HashedEmbedding(50, 4, dtype="mixed_float16")
    out = layer(KEYS)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"
    assert keras.backend.standardize_dtype(layer.importance.dtype) == "float32"


def test_ragged_keys_on_tensorflow():
    if testing.backend() != "tensorflow":
        pytest.skip("RaggedTensor is TensorFlow only")
    import tensorflow as tf

    rows = [[5, -7, 2**40], [9], []]
    ragged = tf.ragged.constant(rows, dtype=tf.int64)
    out = layer_with_weights()(ragged)
    assert isinstance(out, tf.RaggedTensor)
    for found, keys in zip(out.to_list(), rows, strict=True):
        assert_close(
            np.reshape(found, (-1, DIM)),
            reference(np.array(keys, np.int64)).reshape(-1, DIM),
        )


def test_string_keys_read_the_same_rows_as_their_integer_keys():
    layer = layer_with_weights()
    strings = [["user_42", "item_7"], ["user_42", ""]]
    out = testing.to_numpy(layer(string_keys(strings)))
    np.testing.assert_array_equal(out[0, 0], out[1, 0])
    assert_close(out, reference(string_keys(strings)))


# -- masks --------------------------------------------------------------------


def test_mask_zero_masks_key_zero_and_gives_it_a_zero_vector():
    layer = layer_with_weights(mask_zero=True)
    keys = np.array([[3, 0, -7, 0]], np.int64)
    out = testing.to_numpy(layer(keys))
    np.testing.assert_array_equal(out[0, [1, 3]], 0)
    assert_close(out[0, [0, 2]], reference(keys[0, [0, 2]]))
    mask = testing.to_numpy(
        layer.compute_mask(ops.convert_to_tensor(keys.astype("int32")))
    )
    np.testing.assert_array_equal(mask, keys != 0)
    assert layer.supports_masking


def test_mask_reaches_pooling_in_a_model_and_halves_mask_too():
    keys = np.array([[3, 0, 8, 0], [0, 0, 0, 5]], np.int64)
    for halves in (False, True):
        layer = layer_with_weights(mask_zero=True, key_halves=halves)
        shape, dtype = ((4, 2), "int32") if halves else ((4,), "int32")
        inputs = keras.Input(shape, dtype=dtype)
        pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
        model = keras.Model(inputs, pooled)
        data = key_halves(keys) if halves else keys.astype("int32")
        found = model.predict(data, verbose=0)
        expected = [reference(row[row != 0]).mean(axis=0) for row in keys]
        assert_close(found, np.array(expected))


def test_no_mask_without_mask_zero():
    layer = layer_with_weights()
    assert (
        layer.compute_mask(ops.convert_to_tensor(KEYS[:, :2].astype("int32")))
        is None
    )
    assert not layer.supports_masking


# -- gradients ----------------------------------------------------------------


def test_gradients_reach_only_the_rows_used_and_match_numpy():
    keys = np.array([[4, -9, 2**33], [4, 77, 0]], np.int64)
    upstream = RNG.normal(size=keys.shape + (DIM,)).astype("float32")
    halves_layer = layer_with_weights(key_halves=True)
    importance_grad, table_grad = weight_gradients(
        halves_layer,
        lambda out: ops.sum(out * ops.convert_to_tensor(upstream)),
        ops.convert_to_tensor(key_halves(keys)),
    )
    expected_table = np.zeros_like(TABLE, np.float64)
    expected_importance = np.zeros_like(WEIGHTS, np.float64)
    chosen = hash_ids(keys, IMPORTANCE, 9 + HASHES)
    for j in range(HASHES):
        rows = hash_ids(keys, BUCKETS, 9 + j)
        for position in np.ndindex(keys.shape):
            weight = WEIGHTS[chosen[position], j]
            expected_table[rows[position]] += weight * upstream[position]
            expected_importance[chosen[position], j] += (
                TABLE[rows[position]] @ upstream[position]
            )
    used = np.unique(
        np.stack([hash_ids(keys, BUCKETS, 9 + j) for j in range(HASHES)])
    )
    unused = np.setdiff1d(np.arange(BUCKETS), used)
    np.testing.assert_array_equal(table_grad[unused], 0)
    assert np.all(np.abs(table_grad[used]).sum(axis=1) > 0)
    np.testing.assert_allclose(table_grad, expected_table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        importance_grad, expected_importance, rtol=1e-5, atol=1e-6
    )


def test_masked_keys_send_no_gradient():
    layer = layer_with_weights(mask_zero=True, key_halves=True)
    keys = np.array([[0, 0, 6]], np.int64)
    _, table_grad = weight_gradients(
        layer, lambda out: ops.sum(out), ops.convert_to_tensor(key_halves(keys))
    )
    rows_of_six = [int(hash_ids(6, BUCKETS, 9 + j)) for j in range(HASHES)]
    rows_of_zero = [int(hash_ids(0, BUCKETS, 9 + j)) for j in range(HASHES)]
    for row in set(rows_of_zero) - set(rows_of_six):
        np.testing.assert_array_equal(table_grad[row], 0)
    assert np.abs(table_grad[rows_of_six]).sum() > 0


def test_fit_trains_the_rows_of_the_keys_seen():
    layer = layer_with_weights("sum", key_halves=True)
    model = model_of(layer, (5, 2), "int32")
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    keys = KEYS[:2]
    model.fit(key_halves(keys), np.ones((2, 5, DIM)), verbose=0)
    after = testing.to_numpy(layer.embeddings)
    used = np.unique(
        np.stack([hash_ids(keys, BUCKETS, 9 + j) for j in range(HASHES)])
    )
    unused = np.setdiff1d(np.arange(BUCKETS), used)
    np.testing.assert_array_equal(after[unused], TABLE[unused])
    assert not np.allclose(after[used], TABLE[used])


# -- bad input ----------------------------------------------------------------


STRING_MESSAGE = (
    "Layer 'keys' expects integer keys, but received keys of dtype string. "
    "Turn strings into integer keys with `keras_embed.string_keys(strings)` "
    "(FNV-1a 64, the same on every backend) and pass those."
)


def test_strings_raise_type_error_naming_the_layer_and_string_keys():
    layer = HashedEmbedding(10, 2, name="keys")
    for strings in (np.array([["user_42"]]), [["user_42", "x"]]):
        with pytest.raises(TypeError) as error:
            layer(strings)
        assert str(error.value) == STRING_MESSAGE
    with pytest.raises(TypeError) as error:
        HashedEmbedding(10, 2, name="keys")(keras.Input((3,), dtype="string"))
    assert str(error.value) == STRING_MESSAGE


def test_string_tensors_on_tensorflow():
    if testing.backend() != "tensorflow":
        pytest.skip("string tensors are TensorFlow only")
    import tensorflow as tf

    with pytest.raises(TypeError) as error:
        HashedEmbedding(10, 2, name="keys")(tf.constant([["user_42"]]))
    assert str(error.value) == STRING_MESSAGE


def test_bool_keys_raise_type_error():
    with pytest.raises(TypeError, match="received keys of dtype bool"):
        HashedEmbedding(10, 2)(ops.convert_to_tensor(np.array([True])))


FLOAT_MESSAGE = (
    "Layer 'keys' received the float key 1.5 at position (0, 1) (1 such key "
    "in all), dtype {dtype}. Float keys must be whole numbers in "
    "[-2**31, 2**31). Pass integer keys (int64), or strings through "
    "keras_embed.string_keys."
)


def test_float_keys_that_are_not_whole_raise_value_error_eagerly():
    layer = HashedEmbedding(10, 2, name="keys")
    keys = np.array([[2.0, 1.5]], np.float32)
    with pytest.raises(ValueError) as error:
        layer(keys)
    assert str(error.value) == FLOAT_MESSAGE.format(dtype="float32")
    with pytest.raises(ValueError) as error:
        layer(ops.convert_to_tensor(keys))
    assert str(error.value) == FLOAT_MESSAGE.format(dtype="float32")


def test_whole_float_keys_read_the_rows_of_their_integers():
    layer = layer_with_weights()
    keys = np.array([[3.0, -2.0, 2.0**31 - 1]])
    assert_close(layer(keys), reference(keys.astype(np.int64)))
    assert_close(
        layer(ops.convert_to_tensor(keys.astype("float32")[:, :2])),
        reference(keys[:, :2].astype(np.int64)),
    )


def test_compiled_float_keys_that_are_not_whole_give_zero_vectors():
    layer = layer_with_weights()
    run = compiled(lambda x: layer(x), "compiled")
    keys = np.array([[3.0, 1.5, np.nan, 2.0**31]], np.float32)
    out = testing.to_numpy(run(ops.convert_to_tensor(keys)))
    np.testing.assert_array_equal(out[0, 1:], 0)
    assert_close(out[0, 0], reference(np.array(3)))


def test_key_halves_input_must_have_a_last_axis_of_two():
    layer = HashedEmbedding(10, 2, key_halves=True, name="keys")
    with pytest.raises(
        ValueError,
        match=r"key_halves=True and expects int32 inputs of shape \(\.\.\.",
    ):
        layer(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match="key_halves=True"):
        layer(keras.Input((4, 3), dtype="int32"))


@pytest.mark.parametrize(
    "argument", ["num_buckets", "output_dim", "num_hashes"]
)
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10", None])
def test_sizes_must_be_positive_integers_as_embedding_input_dim(argument, bad):
    kwargs = {
        "num_buckets": 10,
        "output_dim": 2,
        "num_hashes": 2,
        argument: bad,
    }
    with pytest.raises(ValueError) as error:
        HashedEmbedding(**kwargs)
    with pytest.raises(ValueError) as embedding_error:
        Embedding(bad, 2)
    assert str(error.value) == str(embedding_error.value).replace(
        "input_dim", argument
    )


def test_other_arguments_are_checked():
    with pytest.raises(ValueError, match="at most 2\\*\\*31 - 1"):
        HashedEmbedding(2**31, 2)
    with pytest.raises(ValueError, match="`combiner` must be one of"):
        HashedEmbedding(10, 2, combiner="mean")
    with pytest.raises(ValueError, match="with combiner='sum'. Drop it"):
        HashedEmbedding(10, 2, combiner="sum", importance_buckets=5)
    with pytest.raises(
        ValueError, match="`importance_buckets` must be a positive"
    ):
        HashedEmbedding(10, 2, importance_buckets=0)
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        HashedEmbedding(10, 2, seed=-1)


# -- config and files ---------------------------------------------------------


def full_config_layer():
    return HashedEmbedding(
        40,
        3,
        num_hashes=3,
        combiner="weighted",
        embeddings_initializer=keras.initializers.RandomNormal(
            stddev=0.3, seed=1
        ),
        embeddings_regularizer=keras.regularizers.L2(0.01),
        activity_regularizer=keras.regularizers.L1(0.001),
        embeddings_constraint=keras.constraints.MaxNorm(2.0),
        mask_zero=True,
        seed=123,
        importance_buckets=17,
        importance_initializer=keras.initializers.RandomUniform(
            0.5, 1.0, seed=2
        ),
        key_halves=True,
        name="hashed",
    )


def test_config_round_trip_keeps_every_argument():
    layer = full_config_layer()
    config = layer.get_config()
    for key, value in {
        "num_buckets": 40,
        "output_dim": 3,
        "num_hashes": 3,
        "combiner": "weighted",
        "mask_zero": True,
        "seed": 123,
        "importance_buckets": 17,
        "key_halves": True,
    }.items():
        assert config[key] == value, key
    assert config["embeddings_initializer"]["config"]["stddev"] == 0.3
    assert config["importance_initializer"]["config"]["minval"] == 0.5
    assert config["embeddings_regularizer"]["config"]["l2"] == pytest.approx(
        0.01
    )
    assert config["activity_regularizer"]["config"]["l1"] == pytest.approx(
        0.001
    )
    assert config["embeddings_constraint"]["config"]["max_value"] == 2.0
    assert "table_dtype" not in config
    clone = HashedEmbedding.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is HashedEmbedding and revived.get_config() == config
    assert (
        keras.saving.get_registered_name(HashedEmbedding)
        == "keras_embed>HashedEmbedding"
    )


def test_default_config():
    config = HashedEmbedding(10, 2).get_config()
    assert (config["num_hashes"], config["combiner"], config["seed"]) == (
        2,
        "weighted",
        0,
    )
    assert config["importance_buckets"] == 10
    assert config["importance_initializer"]["config"]["value"] == 0.1
    assert (
        HashedEmbedding(10, 2, combiner="sum").get_config()[
            "importance_buckets"
        ]
        is None
    )


def test_keras_file_round_trip_keeps_outputs_and_losses():
    layer = full_config_layer()
    model = model_of(layer, (5, 2), "int32")
    data = key_halves(KEYS)
    reloaded = testing.save_and_load(model)
    inner = reloaded.layers[-1]
    assert type(inner) is HashedEmbedding
    assert inner.get_config() == layer.get_config()
    np.testing.assert_array_equal(
        testing.to_numpy(reloaded(data)), testing.to_numpy(model(data))
    )
    np.testing.assert_array_equal(
        testing.to_numpy(inner.importance), testing.to_numpy(layer.importance)
    )
    model(data)
    reloaded(data)
    assert len(reloaded.losses) == len(model.losses) == 2


def test_quantize_refuses_itself_and_model_quantize_quantizes_the_table():
    model = model_of(layer_with_weights(), (5,), "int32")
    layer = model.layers[-1]
    with pytest.raises(NotImplementedError, match="does not quantize itself"):
        layer.quantize("int8")
    data = (
        KEYS[(KEYS >= -(2**31)) & (KEYS < 2**31)][:5]
        .reshape(1, 5)
        .astype("int32")
    )
    before = testing.to_numpy(model(data))
    model.quantize("int8")
    assert layer.embedding.quantization_mode == "int8"
    assert layer.quantization_mode is None
    after = testing.to_numpy(model(data))
    np.testing.assert_allclose(after, before, atol=0.05)
    assert not np.array_equal(after, before)
    reloaded = testing.save_and_load(model)
    assert reloaded.layers[-1].embedding.quantization_mode == "int8"
    assert (
        reloaded.layers[-1].get_config()["table_dtype"]["config"]["mode"]
        == "int8"
    )
    np.testing.assert_array_equal(testing.to_numpy(reloaded(data)), after)


def test_lora_trains_only_the_factors_and_survives_saving():
    model = model_of(layer_with_weights(key_halves=True), (5, 2), "int32")
    layer = model.layers[-1]
    layer.enable_lora(2)
    names = sorted(w.name for w in layer.trainable_weights)
    assert names == ["lora_embeddings_a", "lora_embeddings_b"]
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    data = key_halves(KEYS)
    model.fit(data, np.ones((8, 5, DIM)), verbose=0)
    np.testing.assert_array_equal(testing.to_numpy(layer.importance), WEIGHTS)
    trained = testing.to_numpy(model(data))
    assert not np.allclose(trained, reference(KEYS))
    reloaded = testing.save_and_load(model)
    np.testing.assert_allclose(
        testing.to_numpy(reloaded(data)), trained, rtol=1e-5, atol=1e-6
    )
    assert reloaded.layers[-1].get_config()["lora_rank"] == 2


def test_row_sparse_training_updates_only_the_rows_read():
    layer = HashedEmbedding(
        BUCKETS,
        DIM,
        combiner="sum",
        seed=9,
        key_halves=True,
        sparse_optimizer="sgd",
        max_ids_per_step=2 * 5 * HASHES,
    )
    model = model_of(layer, (5, 2), "int32")
    layer.embedding.embeddings.assign(TABLE)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    keys = KEYS[:2]
    model.fit(key_halves(keys), np.ones((2, 5, DIM)), batch_size=2, verbose=0)
    layer.flush()
    after = testing.to_numpy(layer.embeddings)
    used = np.unique(
        np.stack([hash_ids(keys, BUCKETS, 9 + j) for j in range(HASHES)])
    )
    unused = np.setdiff1d(np.arange(BUCKETS), used)
    np.testing.assert_array_equal(after[unused], TABLE[unused])
    assert not np.allclose(after[used], TABLE[used])
    assert layer.get_config()["sparse_optimizer"] is not None


# -- JAX's 32-bit mode, in a process of its own -------------------------------

JAX_X64_FIT = """
import jax
jax.config.update("jax_enable_x64", True)
import keras, numpy as np
from keras_embed import HashedEmbedding, hash_ids
keys = np.array([[2**40 + 3, -2**62, 3]], np.int64)
inputs = keras.Input((3,), dtype="int64")
layer = HashedEmbedding(1000, 1, num_hashes=1, combiner="sum")
model = keras.Model(inputs, layer(inputs))
layer.embedding.embeddings.assign(np.arange(1000, dtype="float32")[:, None])
found = model.predict(keys, verbose=0)[..., 0]
assert (found == hash_ids(keys, 1000, 0)).all(), found
print("ok")
"""


def test_jax_x64_keeps_int64_keys_exact_in_predict():
    if testing.backend() != "jax":
        pytest.skip("JAX's x64 mode")
    out = subprocess.run(
        [sys.executable, "-c", JAX_X64_FIT],
        env=os.environ,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[
        -3000:
    ]


# -- .keras files written on every backend (fixtures/make_hashed_fixtures.py)


@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_fixture_from_every_backend_gives_the_same_outputs(backend):
    directory = FIXTURES_DIR / backend
    model = keras.saving.load_model(directory / "hashed_embedding.keras")
    with np.load(directory / "hashed_embedding.npz") as data:
        data = {key: data[key] for key in data.files}
    weighted = model.get_layer("weighted")
    summed = model.get_layer("summed")
    np.testing.assert_array_equal(
        testing.to_numpy(weighted.embeddings), data["weighted_table"]
    )
    np.testing.assert_array_equal(
        testing.to_numpy(weighted.importance), data["weighted_importance"]
    )
    np.testing.assert_array_equal(
        testing.to_numpy(summed.embeddings), data["summed_table"]
    )
    keys = data["keys"]
    # From NumPy: the hashes and the stored weights.
    config = weighted.get_config()
    seed, hashes = config["seed"], config["num_hashes"]
    chosen = data["weighted_importance"][
        hash_ids(keys, config["importance_buckets"], seed + hashes)
    ]
    expected_weighted = (
        sum(
            data["weighted_table"][
                hash_ids(keys, config["num_buckets"], seed + j)
            ]
            * chosen[..., j : j + 1]
            for j in range(hashes)
        )
        * (keys != 0)[..., None]
    )
    summed_config = summed.get_config()
    expected_summed = sum(
        data["summed_table"][
            hash_ids(
                keys,
                summed_config["num_buckets"],
                (summed_config["seed"] + j) % 2**32,
            )
        ]
        for j in range(summed_config["num_hashes"])
    )
    np.testing.assert_allclose(
        data["expected_weighted"], expected_weighted, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        data["expected_summed"], expected_summed, rtol=1e-6, atol=1e-6
    )
    # Saved on `backend`, run here: the same floats as there, bit for bit.
    halves = key_halves(keys)
    found_weighted, found_summed = model.predict(
        {"halves": halves, "keys": keys}, verbose=0
    )
    # Sums of two rows come back bit for bit; three weighted rows may be
    # added in another order (or fused) by another backend's compiler.
    np.testing.assert_array_equal(
        testing.to_numpy(summed(keys)), data["expected_summed"]
    )
    np.testing.assert_allclose(
        found_weighted, data["expected_weighted"], rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        testing.to_numpy(weighted(halves)),
        data["expected_weighted"],
        rtol=1e-6,
        atol=1e-7,
    )
    if wide_int_dtype_available():
        np.testing.assert_array_equal(found_summed, data["expected_summed"])


def test_traced_bad_float_keys_are_counted_under_the_layers_name():
    import re

    import keras_embed

    layer = HashedEmbedding(64, 4, name="users")
    model = keras.Sequential([keras.Input((3,), dtype="float32"), layer])
    model.compile("sgd", "mse", jit_compile=True)
    keys = np.array([[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]], "float32")
    targets = np.zeros((2, 3, 4), "float32")
    history = model.fit(keys, targets, verbose=0)
    # One log entry, the hashed layer's: its table counts nothing itself.
    assert [k for k in history.history if "invalid" in k] == [
        "users/invalid_ids"
    ]
    assert history.history["users/invalid_ids"] == [1]
    assert layer.invalid_id_count == 1
    outputs = model.predict(keys, verbose=0)
    np.testing.assert_array_equal(outputs[0, 1], 0)
    assert layer.embedding.metrics == [] and layer.embedding.weights
    message = re.escape(
        "Layer 'users' looked up 1 invalid id as zero vectors in training "
        "batch 0. Float keys must hold whole numbers in [-2**31, 2**31)"
    )
    with pytest.raises(ValueError, match=message):
        model.fit(
            keys, targets, verbose=0,
            callbacks=[keras_embed.InvalidIdCheck()],
        )  # fmt: skip
