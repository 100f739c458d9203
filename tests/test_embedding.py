"""Constructor, shapes, dtypes, regularizers and parity with Keras."""

import inspect
import warnings

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from tests import testing
from tests.testing import backend
from tests.testing import run_layer_test
from tests.testing import to_numpy

INT_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
]  # fmt: skip


def built_pair(input_dim=20, output_dim=3, **kwargs):
    """Our layer and keras.layers.Embedding sharing one weight matrix."""
    ours = Embedding(input_dim, output_dim, **kwargs)
    ours.build()
    theirs = keras.layers.Embedding(input_dim, output_dim, **kwargs)
    theirs.build()
    theirs.embeddings.assign(to_numpy(ours.embeddings))
    return ours, theirs


def test_signature_matches_tf_keras():
    params = inspect.signature(Embedding.__init__).parameters
    assert list(params)[1:9] == [
        "input_dim", "output_dim", "embeddings_initializer",
        "embeddings_regularizer", "activity_regularizer",
        "embeddings_constraint", "mask_zero", "input_length",
    ]  # fmt: skip
    assert params["embeddings_initializer"].default == "uniform"
    assert params["mask_zero"].default is False
    assert params["input_length"].default is None
    assert params["weights"].kind is inspect.Parameter.KEYWORD_ONLY


def test_is_our_own_layer_not_a_keras_subclass():
    assert issubclass(Embedding, keras.layers.Layer)
    assert not issubclass(Embedding, keras.layers.Embedding)


@pytest.mark.parametrize("name", ["input_dim", "output_dim"])
@pytest.mark.parametrize(
    "value", [0, -3, 2.5, True, np.bool_(True), "10", None, np.float32(4)]
)
def test_rejects_bad_dims(name, value):
    kwargs = {"input_dim": 10, "output_dim": 4, name: value}
    with pytest.raises(ValueError, match=f"`{name}` must be a positive"):
        Embedding(**kwargs)
    with pytest.raises(ValueError, match=repr(value).replace("(", r"\(")[:6]):
        Embedding(**kwargs)


@pytest.mark.parametrize("value", [np.int64(7), np.int32(7), np.uint8(7), 7])
def test_accepts_python_and_numpy_ints(value):
    layer = Embedding(value, value)
    assert (layer.input_dim, layer.output_dim) == (7, 7)
    assert type(layer.get_config()["input_dim"]) is int


def test_dim_error_names_type():
    with pytest.raises(ValueError, match="of type float"):
        Embedding(2.5, 4)


@pytest.mark.parametrize(
    "value, stored, input_shape, output_shape",
    [
        (None, None, (None, 5), (None, 5, 2)),
        (5, 5, (None, None), (None, 5, 2)),
        ((5, None), (5, None), (None, None, 7), (None, 5, 7, 2)),
        ([3, 4], (3, 4), (None, 3, 4), (None, 3, 4, 2)),
    ],
)
def test_input_length_accepted(value, stored, input_shape, output_shape):
    layer = Embedding(10, 2, input_length=value)
    # Given back as passed, as tf.keras saved it: 5 stays 5, not (5,); a
    # list (what JSON makes of a tuple) is read as the tuple.
    assert layer.input_length == stored
    assert layer.get_config()["input_length"] == stored
    assert layer.compute_output_shape(input_shape) == output_shape


@pytest.mark.parametrize("value", [0, -1, (0,), (3, -2), "a", 2.5, (), True])
def test_input_length_rejected(value):
    with pytest.raises(ValueError, match="input_length"):
        Embedding(10, 2, input_length=value)


def test_seed_example_shape_before_data():
    model = keras.Sequential()
    model.add(Embedding(1000, 64, input_length=10))
    assert model.output_shape == (None, 10, 64)
    input_array = np.random.randint(1000, size=(32, 10))
    model.compile("rmsprop", "mse")
    assert model.predict(input_array, verbose=0).shape == (32, 10, 64)


def test_input_length_flatten_dense():
    model = keras.Sequential(
        [Embedding(50, 4, input_length=6), keras.layers.Flatten()]
    )
    model.add(keras.layers.Dense(1))
    assert model.output_shape == (None, 1)
    model.compile("adam", "mse")
    ids = np.random.randint(50, size=(8, 6))
    history = model.fit(ids, np.ones((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.predict(ids, verbose=0).shape == (8, 1)


def test_compute_output_shape_with_input_length():
    layer = Embedding(10, 3, input_length=(4, None))
    assert layer.compute_output_shape((None, 4, 7)) == (None, 4, 7, 3)
    assert layer.compute_output_shape((2, None, 5)) == (2, 4, 5, 3)
    with pytest.raises(ValueError, match=r"input_length=\(4, None\)"):
        layer.compute_output_shape((None, 5, 7))
    with pytest.raises(ValueError, match="one entry per non-batch axis"):
        layer.compute_output_shape((None, 4))


def test_input_length_contradicting_input_fails_at_construction():
    with pytest.raises(ValueError, match="input_length=10,"):
        inputs = keras.Input(shape=(12,), dtype="int32")
        Embedding(100, 4, input_length=10)(inputs)


def test_float32_input_too_narrow_for_vocabulary_is_refused():
    model = keras.Sequential()
    with pytest.raises(ValueError, match="2\\*\\*24|16777216"):
        model.add(Embedding(2**24 + 8, 2, input_length=3))
    model = keras.Sequential()
    model.add(Embedding(2**24 + 1, 2, input_length=3))  # ids <= 2**24: exact
    assert model.output_shape == (None, 3, 2)


def test_float16_floatx_input_too_narrow_is_refused():
    keras.config.set_floatx("float16")
    model = keras.Sequential()
    with pytest.raises(ValueError, match="float16.*2048"):
        model.add(Embedding(5000, 2, input_length=3))


def test_integer_input_has_no_float_limit():
    layer = Embedding(2**24 + 8, 2, embeddings_initializer="zeros")
    inputs = keras.Input(shape=(3,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    table = np.zeros((2**24 + 8, 2), "float32")
    table[2**24 + 7] = [1.0, 2.0]
    table[2**24 + 6] = [3.0, 4.0]
    layer.embeddings.assign(table)
    ids = np.array([[2**24 + 7, 2**24 + 6, 0]], dtype="int32")
    np.testing.assert_array_equal(model.predict(ids, verbose=0), table[ids])


def test_mixed_precision_ids_are_not_rounded():
    # float16 rounds 65519 and up; ids must reach the table untouched.
    layer = Embedding(70000, 2, dtype="mixed_float16")
    layer.build()
    ids = np.array([65519, 65521, 69999], dtype="int32")
    expected = to_numpy(layer.embeddings)[ids].astype("float16")
    np.testing.assert_array_equal(to_numpy(layer(ids)), expected)


@pytest.mark.parametrize(
    "policy, compute, variable",
    [
        ("mixed_float16", "float16", "float32"),
        ("mixed_bfloat16", "bfloat16", "float32"),
        ("bfloat16", "bfloat16", "bfloat16"),
        ("float32", "float32", "float32"),
    ],
)
def test_dtype_policies(policy, compute, variable):
    ours, theirs = built_pair(dtype=policy)
    ids = np.array([[1, 2], [3, 19]])
    out = ours(ids)
    assert keras.backend.standardize_dtype(out.dtype) == compute
    assert keras.backend.standardize_dtype(ours.embeddings.dtype) == variable
    table = to_numpy(ours.embeddings).astype("float32")
    expected = testing.rounded_to(table[ids], compute)
    np.testing.assert_array_equal(to_numpy(out).astype("float32"), expected)
    np.testing.assert_array_equal(
        to_numpy(out).astype("float32"), to_numpy(theirs(ids)).astype("float32")
    )


def test_global_mixed_policy():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = Embedding(10, 3)
    out = layer(np.array([1, 2]))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"
    expected = testing.rounded_to(
        to_numpy(layer.embeddings)[[1, 2]], "bfloat16"
    )
    np.testing.assert_array_equal(to_numpy(out).astype("float32"), expected)


def test_embeddings_regularizer_in_model_losses():
    layer = Embedding(6, 2, embeddings_regularizer=keras.regularizers.L2(0.1))
    model = keras.Sequential([keras.Input((3,), dtype="int32"), layer])
    assert len(model.losses) == 1
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(
        to_numpy(model.losses[0]), 0.1 * np.sum(table**2), rtol=1e-6
    )


def test_activity_regularizer_adds_loss_per_call():
    layer = Embedding(6, 2, activity_regularizer=keras.regularizers.L1(0.5))
    ids = np.array([[1, 2, 5]])
    out = to_numpy(layer(ids))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(
        to_numpy(layer.losses[0]), 0.5 * np.abs(out).sum() / 1, rtol=1e-6
    )


def test_constraint_holds_after_fit():
    layer = Embedding(
        8,
        3,
        embeddings_initializer=keras.initializers.RandomUniform(0.0, 0.1),
        embeddings_constraint="non_neg",
    )
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    model.compile(keras.optimizers.SGD(1.0), "mse")
    ids = np.random.randint(8, size=(16, 4))
    # A target far below zero pushes every seen row negative without the
    # constraint.
    model.fit(ids, -np.ones((16, 4, 3)), epochs=2, verbose=0)
    assert to_numpy(layer.embeddings).min() >= 0.0
    assert isinstance(layer.embeddings.constraint, keras.constraints.NonNeg)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_integer_dtype_bit_identical_to_keras(dtype):
    ours, theirs = built_pair(input_dim=20)
    ids = np.array([[0, 5, 19], [7, 7, 1]], dtype=dtype)
    out = to_numpy(ours(ids))
    np.testing.assert_array_equal(out, to_numpy(ours.embeddings)[ids])
    if not (dtype == "uint64" and backend() == "torch"):
        # keras.layers.Embedding cannot take uint64 on torch at all.
        np.testing.assert_array_equal(out, to_numpy(theirs(ids)))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_backend_tensor_integer_dtypes(dtype):
    ours, _ = built_pair(input_dim=20)
    ids = keras.ops.convert_to_tensor(np.array([[3, 19], [0, 8]], dtype=dtype))
    np.testing.assert_array_equal(
        to_numpy(ours(ids)), to_numpy(ours.embeddings)[[[3, 19], [0, 8]]]
    )


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_whole_float_ids_accepted(dtype):
    ours, theirs = built_pair(input_dim=20)
    ids = np.array([[0.0, 5.0, 19.0]], dtype=dtype)
    expected = to_numpy(ours.embeddings)[[[0, 5, 19]]]
    np.testing.assert_array_equal(to_numpy(ours(ids)), expected)
    tensor = keras.ops.convert_to_tensor(ids)
    np.testing.assert_array_equal(to_numpy(ours(tensor)), expected)


@pytest.mark.parametrize(
    "shape", [(), (4,), (2, 3), (2, 3, 4), (0,), (0, 5), (3, 0), (2, 0, 3)]
)
def test_any_rank_and_empty(shape):
    ours, theirs = built_pair(input_dim=20)
    ids = np.random.randint(20, size=shape)
    out = ours(ids)
    assert tuple(out.shape) == shape + (3,)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ours.embeddings)[ids])
    tensor_out = ours(keras.ops.convert_to_tensor(ids))
    assert tuple(tensor_out.shape) == shape + (3,)


def test_empty_batch_in_model():
    inputs = keras.Input((5,), dtype="int32")
    model = keras.Model(inputs, Embedding(10, 2)(inputs))
    out = model(np.zeros((0, 5), "int32"))
    assert tuple(out.shape) == (0, 5, 2)


def test_weights_argument():
    matrix = np.arange(12, dtype="float32").reshape(3, 4)
    for weights in (matrix, [matrix]):
        layer = Embedding(3, 4, weights=weights)
        layer.build()
        np.testing.assert_array_equal(to_numpy(layer.embeddings), matrix)
        assert "weights" not in layer.get_config()
    with pytest.raises(ValueError, match=r"shape.*\(3, 5\).*\(3, 4\)"):
        Embedding(3, 5, weights=matrix)
    with pytest.raises(ValueError, match="one-element list"):
        Embedding(3, 4, weights=[matrix, matrix])


def test_weights_argument_in_sequential():
    matrix = np.random.rand(5, 2).astype("float32")
    model = keras.Sequential(
        [Embedding(5, 2, weights=[matrix], input_length=3)]
    )
    ids = np.array([[4, 0, 2]])
    np.testing.assert_array_equal(model.predict(ids, verbose=0), matrix[ids])


# keras.layers.Embedding's own test cases, expressed for our class.


def test_keras_case_basics():
    run_layer_test(
        Embedding,
        {"input_dim": 4, "output_dim": 3},
        input_data=np.array([1, 3], dtype="int32"),
        expected_output_shape=(2, 3),
    )
    run_layer_test(
        Embedding,
        {"input_dim": 5, "output_dim": 4, "mask_zero": True},
        input_data=np.array([[1, 2, 0], [4, 3, 1]], dtype="int64"),
        expected_output_shape=(2, 3, 4),
        supports_masking=True,
    )


def test_keras_case_regularized_layer():
    run_layer_test(
        Embedding,
        {
            "input_dim": 6,
            "output_dim": 2,
            "embeddings_regularizer": "l2",
            "activity_regularizer": "l1",
        },
        input_data=np.array([[1, 2, 5]], dtype="int32"),
        expected_output_shape=(1, 3, 2),
        expected_num_losses=2,
    )


def test_keras_case_correctness():
    layer = Embedding(input_dim=3, output_dim=2)
    layer.build()
    layer.embeddings.assign(np.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]]))
    out = layer(np.array([2, 1, 0]))
    np.testing.assert_array_equal(
        to_numpy(out), [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]]
    )


def test_keras_case_masking():
    layer = Embedding(input_dim=3, output_dim=2, mask_zero=True)
    layer.build()
    mask = layer.compute_mask(np.array([2, 1, 0]))
    np.testing.assert_array_equal(to_numpy(mask), [True, True, False])
    assert Embedding(3, 2).compute_mask(np.array([2, 1, 0])) is None


def test_keras_case_constraints():
    layer = Embedding(3, 2, embeddings_constraint="non_neg")
    layer.build((None, 2))
    assert isinstance(layer.embeddings.constraint, keras.constraints.NonNeg)


def sparse_ids():
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.SparseTensor([[0, 0], [1, 2]], [2, 1], (2, 3))
    import jax.experimental.sparse as jax_sparse

    return jax_sparse.BCOO(([2, 1], [[0, 0], [1, 2]]), shape=(2, 3))


@pytest.mark.skipif(
    backend() == "torch", reason="torch has no sparse input in Keras"
)
def test_keras_case_sparse_correctness():
    table = np.array([[0.5, 0.5], [2.0, 2.0], [3.0, 3.0]])
    ours, theirs = built_pair(3, 2, weights=table)
    theirs.embeddings.assign(table)
    expected = table[[[2, 0, 0], [0, 0, 1]]]  # missing entries are id 0
    np.testing.assert_array_equal(to_numpy(ours(sparse_ids())), expected)
    np.testing.assert_array_equal(
        to_numpy(ours(sparse_ids())), to_numpy(theirs(sparse_ids()))
    )


@pytest.mark.skipif(
    backend() == "torch", reason="torch has no sparse input in Keras"
)
def test_keras_case_sparse_symbolic():
    inputs = keras.Input(shape=(3,), sparse=True, dtype="int32")
    outputs = Embedding(5, 4)(inputs)
    assert tuple(outputs.shape) == (None, 3, 4)
    model = keras.Model(inputs, outputs)
    assert tuple(model(sparse_ids()).shape) == (2, 3, 4)


@pytest.mark.skipif(backend() != "tensorflow", reason="ragged is TF-only")
def test_keras_case_ragged():
    import tensorflow as tf

    ours, theirs = built_pair(5, 4)
    ids = tf.ragged.constant([[1, 2, 3], [4]])
    out = ours(ids)
    assert isinstance(out, tf.RaggedTensor)
    assert out.shape.as_list() == [2, None, 4]
    table = to_numpy(ours.embeddings)
    np.testing.assert_array_equal(out.flat_values.numpy(), table[[1, 2, 3, 4]])
    np.testing.assert_array_equal(out.row_splits.numpy(), [0, 3, 4])
    np.testing.assert_array_equal(
        out.flat_values.numpy(), theirs(ids).flat_values.numpy()
    )
    inputs = keras.Input(shape=(None,), ragged=True, dtype="int32")
    symbolic = Embedding(5, 4)(inputs)
    assert symbolic.ragged
    with pytest.raises(ValueError, match="invalid id 7"):
        ours(tf.ragged.constant([[1, 7], [4]]))


def test_bit_identical_inside_fit_and_predict():
    ours, theirs = built_pair(input_dim=50, output_dim=8)
    ids = np.random.randint(50, size=(16, 5))
    models = []
    for layer in (ours, theirs):
        inputs = keras.Input((5,), dtype="int32")
        models.append(keras.Model(inputs, layer(inputs)))
    np.testing.assert_array_equal(
        models[0].predict(ids, verbose=0), models[1].predict(ids, verbose=0)
    )
    for model in models:
        model.compile(keras.optimizers.SGD(0.5), "mse")
        model.fit(
            ids,
            np.ones((16, 5, 8)),
            epochs=2,
            batch_size=8,
            shuffle=False,
            verbose=0,
        )
    np.testing.assert_array_equal(
        to_numpy(ours.embeddings), to_numpy(theirs.embeddings)
    )


def _warn_once():
    warnings.warn("shown once per location", UserWarning, stacklevel=1)


def test_creating_a_layer_leaves_the_warning_machinery_alone():
    # Touching warning filters resets every module's "already shown"
    # registry, so warnings users had seen would print again per layer.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        _warn_once()
        filters = list(warnings.filters)
        model = keras.Sequential([Embedding(10, 2, input_length=3)])
        Embedding(10, 2)
        assert warnings.filters == filters
        _warn_once()
    assert model.output_shape == (None, 3, 2)
    assert [str(w.message) for w in caught] == ["shown once per location"]


@pytest.mark.parametrize("length", [7, 12])
def test_data_contradicting_input_length_is_refused(length):
    # tf.keras raises for this model ("Input 0 of layer 'sequential' is
    # incompatible with the layer: expected shape=(None, 10), found
    # shape=(None, 7)"); docs/tf_keras_input_length.py.
    def model():
        # A fresh model each time: on JAX, Keras leaves a model whose step
        # raised without its variables (docs/ids.md#known-limits).
        model = keras.Sequential([Embedding(10, 4, input_length=10)])
        model.compile("sgd", "mse")
        return model

    assert model().output_shape == (None, 10, 4)
    ids = np.random.randint(10, size=(2, length))
    message = rf"input_length=10, but received input shape \(\w+, {length}\)"
    for run in (
        lambda: model().predict(ids, verbose=0),
        lambda: model().fit(ids, np.zeros((2, length, 4)), verbose=0),
        lambda: model().layers[0](ids),
    ):
        with pytest.raises(ValueError, match=message):
            run()
    good = np.random.randint(10, size=(2, 10))
    assert model().predict(good, verbose=0).shape == (2, 10, 4)
