"""Saving and loading `keras_embed.Embedding`: its config, `.keras` and
`.weights.h5` files, and `.keras` files written on every backend."""

import inspect
import json
import pathlib
import zipfile

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import ReversibleEmbedding
from tests import testing

FIXTURES_DIR = pathlib.Path(__file__).resolve().parent / "fixtures"
FIXTURE_BACKENDS = ("tensorflow", "jax", "torch")
# Must match MODELS in fixtures/make_fixtures.py.
FIXTURE_NAMES = (
    "sequential_full",
    "functional_masked_lstm",
    "mixed_bfloat16_weights",
    "sequential_2d_input_length",
    "feature_arguments",
)
# Also written by make_fixtures.py; tests/test_quantization_fixtures.py
# loads them.
QUANTIZED_FIXTURE_NAMES = (
    "quantized_int8",
    "quantized_int4_block4",
    "quantized_int8_lora",
)
# Pure lookups must come back bit for bit; models with LSTM/Dense math may
# differ in the last bits between backends.
EXACT_FIXTURES = ("mixed_bfloat16_weights",)
CONSTRUCTOR_ARGUMENTS = (
    "input_dim",
    "output_dim",
    "embeddings_initializer",
    "embeddings_regularizer",
    "activity_regularizer",
    "embeddings_constraint",
    "mask_zero",
    "input_length",
)
BAD_DIMS = [0, -1, 2.5, True, "10", None]


def full_layer(**overrides):
    kwargs = dict(
        input_dim=12,
        output_dim=3,
        embeddings_initializer=keras.initializers.RandomNormal(
            stddev=0.2, seed=1
        ),
        embeddings_regularizer=keras.regularizers.L2(0.01),
        activity_regularizer=keras.regularizers.L1(0.001),
        embeddings_constraint=keras.constraints.MaxNorm(2.0),
        mask_zero=True,
        input_length=5,
        name="full",
    )
    kwargs.update(overrides)
    return Embedding(**kwargs)


def pooled_model(layer_cls, seed=0):
    """Ids -> masked embedding -> average -> Dense, without layer names."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(4,), dtype="int32")
    vectors = layer_cls(15, 3, mask_zero=True)(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(vectors)
    return keras.Model(inputs, keras.layers.Dense(2)(pooled))


POOLED_IDS = np.array([[1, 2, 0, 0], [14, 3, 3, 7], [0, 0, 0, 9]], "int32")
FULL_IDS = np.array([[1, 2, 3, 0, 0], [11, 10, 9, 8, 7]], "int32")


# -- get_config / from_config ----------------------------------------------


def test_constructor_arguments_are_the_ones_checked_here():
    parameters = inspect.signature(Embedding.__init__).parameters
    positional = [
        name
        for name, parameter in parameters.items()
        if name != "self"
        and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert tuple(positional) == CONSTRUCTOR_ARGUMENTS


def test_get_config_holds_every_constructor_argument_serialized():
    config = full_layer().get_config()

    assert set(CONSTRUCTOR_ARGUMENTS) <= set(config)
    assert config["input_dim"] == 12
    assert config["output_dim"] == 3
    assert config["mask_zero"] is True
    assert config["input_length"] == 5
    assert config["embeddings_initializer"] == {
        "module": "keras.initializers",
        "class_name": "RandomNormal",
        "config": {"mean": 0.0, "stddev": 0.2, "seed": 1},
        "registered_name": None,
    }
    regularizer = config["embeddings_regularizer"]
    assert regularizer["class_name"] == "L2"
    assert regularizer["config"]["l2"] == pytest.approx(0.01)
    activity = config["activity_regularizer"]
    assert activity["class_name"] == "L1"
    assert activity["config"]["l1"] == pytest.approx(0.001)
    constraint = config["embeddings_constraint"]
    assert constraint["class_name"] == "MaxNorm"
    assert constraint["config"]["max_value"] == 2.0
    # Only plain data: the config must survive being written as JSON.
    assert json.loads(json.dumps(config))["input_length"] == 5


def test_get_config_of_defaults():
    config = Embedding(7, 2).get_config()
    assert config["embeddings_initializer"]["class_name"] == "RandomUniform"
    assert config["embeddings_regularizer"] is None
    assert config["activity_regularizer"] is None
    assert config["embeddings_constraint"] is None
    assert config["mask_zero"] is False
    assert config["input_length"] is None


@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_get_config_never_holds_weights(as_list):
    matrix = np.full((4, 2), 3.0, "float32")
    layer = Embedding(4, 2, weights=[matrix] if as_list else matrix)
    assert "weights" not in layer.get_config()
    layer.build()
    np.testing.assert_array_equal(testing.to_numpy(layer.embeddings), matrix)
    config = layer.get_config()
    assert "weights" not in config

    clone = Embedding.from_config(config)
    clone.build()
    # The clone starts from the initializer, not from the passed matrix.
    assert not np.any(testing.to_numpy(clone.embeddings) == 3.0)


def test_from_config_round_trip():
    config = full_layer().get_config()
    for restored_config in (config, json.loads(json.dumps(config))):
        clone = Embedding.from_config(restored_config)
        assert clone.get_config() == config
        assert clone.input_length == 5
        assert isinstance(clone.embeddings_regularizer, keras.regularizers.L2)
        assert isinstance(clone.activity_regularizer, keras.regularizers.L1)
        assert isinstance(
            clone.embeddings_constraint, keras.constraints.MaxNorm
        )
        assert isinstance(
            clone.embeddings_initializer, keras.initializers.RandomNormal
        )


def test_serialize_keras_object_round_trip():
    layer = full_layer(input_length=(3, None))
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "keras_embed>Embedding"
    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized))
    )
    assert type(revived) is Embedding
    assert revived.input_length == (3, None)
    assert revived.get_config() == layer.get_config()


def bad_config(argument, bad):
    config = Embedding(10, 4).get_config()
    config[argument] = bad
    return config


def bad_serialized(argument, bad):
    serialized = keras.saving.serialize_keras_object(Embedding(10, 4))
    serialized["config"][argument] = bad
    return serialized


def bad_keras_file(directory, bad):
    """A saved model whose Embedding config says `input_dim=bad`."""
    inputs = keras.Input(shape=(3,), dtype="int32")
    model = keras.Model(inputs, Embedding(10, 4, name="embedding")(inputs))
    good = directory / "good.keras"
    model.save(good)
    edited = directory / "bad.keras"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(edited, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                (layer,) = [
                    layer
                    for layer in config["config"]["layers"]
                    if layer["config"]["name"] == "embedding"
                ]
                layer["config"]["input_dim"] = bad
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return edited


# Keras 3 raises TypeError for a bad saved config (its `from_config` wraps
# the constructor's error); ours carries the constructor's message inside.
@pytest.mark.parametrize("argument", ["input_dim", "output_dim"])
@pytest.mark.parametrize("bad", BAD_DIMS, ids=repr)
def test_loading_a_bad_config_runs_the_argument_checks(tmp_path, argument, bad):
    message = f"`{argument}` must be a positive integer, but received {bad!r}"
    for load in (
        lambda: Embedding.from_config(bad_config(argument, bad)),
        lambda: keras.saving.deserialize_keras_object(
            bad_serialized(argument, bad)
        ),
    ):
        with pytest.raises(TypeError) as error:
            load()
        assert message in str(error.value)
    if argument == "input_dim":
        with pytest.raises(TypeError) as error:
            keras.saving.load_model(bad_keras_file(tmp_path, bad))
        assert message in str(error.value)


def test_constructor_still_raises_value_error_for_a_bad_dimension():
    with pytest.raises(ValueError, match="`input_dim` must be a positive"):
        Embedding(0, 4)


def test_registered_name():
    assert keras.saving.get_registered_name(Embedding) == (
        "keras_embed>Embedding"
    )
    assert (
        keras.saving.get_registered_object("keras_embed>Embedding") is Embedding
    )


# -- .keras files ----------------------------------------------------------


def full_sequential():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            full_layer(),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2),
        ]
    )


def test_keras_file_round_trip_keeps_outputs_and_config():
    model = full_sequential()
    assert model.output_shape == (None, 2)
    expected = testing.to_numpy(model(FULL_IDS))
    layer = model.get_layer("full")

    reloaded = testing.save_and_load(model)

    np.testing.assert_array_equal(
        testing.to_numpy(reloaded(FULL_IDS)), expected
    )
    revived = reloaded.get_layer("full")
    assert type(revived) is Embedding
    assert revived.get_config() == layer.get_config()
    assert revived.input_length == 5
    assert revived.mask_zero is True
    assert float(revived.embeddings_regularizer.l2) == pytest.approx(0.01)
    assert float(revived.activity_regularizer.l1) == pytest.approx(0.001)
    assert isinstance(revived.embeddings_constraint, keras.constraints.MaxNorm)
    assert revived.embeddings_constraint.max_value == 2.0
    initializer = revived.embeddings_initializer
    assert isinstance(initializer, keras.initializers.RandomNormal)
    assert (initializer.stddev, initializer.seed) == (0.2, 1)
    np.testing.assert_array_equal(
        testing.to_numpy(revived.embeddings),
        testing.to_numpy(layer.embeddings),
    )
    assert reloaded.output_shape == (None, 2)


def test_keras_file_keeps_input_length_output_shape():
    model = keras.Sequential([Embedding(9, 2, input_length=(2, None))])
    assert model.output_shape == (None, 2, None, 2)
    reloaded = testing.save_and_load(model)
    assert reloaded.output_shape == (None, 2, None, 2)
    assert reloaded.layers[0].input_length == (2, None)


def test_mask_propagates_after_reload():
    model = pooled_model(Embedding)
    averages = keras.Model(model.input, model.layers[2].output)
    reloaded = testing.save_and_load(averages)
    layer = reloaded.layers[1]
    assert type(layer) is Embedding
    table = testing.to_numpy(layer.embeddings)

    mask = testing.to_numpy(layer.compute_mask(POOLED_IDS))
    np.testing.assert_array_equal(mask, POOLED_IDS != 0)

    pooled = testing.to_numpy(reloaded(POOLED_IDS))
    unmasked = table[POOLED_IDS].mean(axis=1)
    assert not np.allclose(pooled, unmasked), "row 0 is zero: no check"
    for row, ids in enumerate(POOLED_IDS):
        np.testing.assert_allclose(
            pooled[row], table[ids[ids != 0]].mean(axis=0), rtol=1e-6
        )


def test_regularizer_loss_survives_reload():
    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape=(3,), dtype="int32")
    outputs = Embedding(
        8,
        2,
        embeddings_regularizer=keras.regularizers.L2(0.1),
        name="embedding",
    )(inputs)
    model = keras.Model(inputs, outputs)

    reloaded = testing.save_and_load(model)

    table = testing.to_numpy(reloaded.get_layer("embedding").embeddings)
    assert len(reloaded.losses) == 1
    np.testing.assert_allclose(
        testing.to_numpy(reloaded.losses[0]),
        0.1 * np.sum(np.square(table)),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        testing.to_numpy(reloaded.losses[0]),
        testing.to_numpy(model.losses[0]),
        rtol=1e-6,
    )


def test_activity_regularizer_loss_survives_reload():
    reloaded = testing.save_and_load(full_sequential())
    layer = reloaded.get_layer("full")
    outputs = testing.to_numpy(layer(FULL_IDS))
    table = testing.to_numpy(layer.embeddings)

    # The call's activity loss (per example) and the weight regularization.
    losses = sorted(float(testing.to_numpy(loss)) for loss in layer.losses)
    expected = sorted(
        [
            0.001 * np.abs(outputs).sum() / len(FULL_IDS),
            0.01 * np.sum(np.square(table)),
        ]
    )
    np.testing.assert_allclose(losses, expected, rtol=1e-5)


# -- .weights.h5 files -----------------------------------------------------


def test_weights_file_round_trip(tmp_path):
    path = tmp_path / "model.weights.h5"
    source = pooled_model(Embedding, seed=1)
    source.save_weights(path)
    target = pooled_model(Embedding, seed=2)
    assert not np.allclose(
        testing.to_numpy(target(POOLED_IDS)),
        testing.to_numpy(source(POOLED_IDS)),
    )

    target.load_weights(path)

    np.testing.assert_array_equal(
        testing.to_numpy(target(POOLED_IDS)),
        testing.to_numpy(source(POOLED_IDS)),
    )


@pytest.mark.parametrize(
    "source_cls, target_cls",
    [(keras.layers.Embedding, Embedding), (Embedding, keras.layers.Embedding)],
    ids=["from_keras_layers", "to_keras_layers"],
)
def test_weights_file_shared_with_keras_layers_embedding(
    tmp_path, source_cls, target_cls
):
    path = tmp_path / "model.weights.h5"
    source = pooled_model(source_cls, seed=1)
    source.save_weights(path)
    target = pooled_model(target_cls, seed=2)
    assert type(target.layers[1]) is target_cls

    target.load_weights(path)

    np.testing.assert_array_equal(
        testing.to_numpy(target.layers[1].embeddings),
        testing.to_numpy(source.layers[1].embeddings),
    )
    np.testing.assert_array_equal(
        testing.to_numpy(target(POOLED_IDS)),
        testing.to_numpy(source(POOLED_IDS)),
    )


# -- .keras files written on every backend ---------------------------------


@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_fixture_directory_is_complete(backend):
    directory = FIXTURES_DIR / backend
    assert directory.is_dir(), (
        f"{directory} is missing: run tests/fixtures/make_fixtures.py with "
        f"KERAS_BACKEND={backend} and commit its output."
    )
    expected = {
        f"{name}{suffix}"
        for name in FIXTURE_NAMES + QUANTIZED_FIXTURE_NAMES
        for suffix in (".keras", ".npz")
    }
    assert {path.name for path in directory.iterdir()} == expected


def load_fixture(backend, name):
    directory = FIXTURES_DIR / backend
    model_path = directory / f"{name}.keras"
    data_path = directory / f"{name}.npz"
    assert model_path.is_file(), f"{model_path} is missing"
    assert data_path.is_file(), f"{data_path} is missing"
    with np.load(data_path) as data:
        arrays = {key: data[key] for key in data.files}
    return keras.saving.load_model(model_path), arrays


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_fixture_gives_stored_outputs(backend, name):
    model, data = load_fixture(backend, name)
    layer = model.get_layer("embedding")
    expected_class = (
        ReversibleEmbedding if name == "feature_arguments" else Embedding
    )
    assert type(layer) is expected_class
    np.testing.assert_array_equal(
        testing.to_numpy(layer.embeddings), data["embeddings"]
    )

    called = testing.to_numpy(model(data["ids"])).astype("float32")
    predicted = model.predict(data["ids"], verbose=0).astype("float32")
    # What the model must compute, from NumPy: the stored outputs below only
    # say that it computes what it computed when it was saved.
    reference = numpy_reference(name, model, data)

    if name in EXACT_FIXTURES:
        np.testing.assert_array_equal(called, reference)
        np.testing.assert_array_equal(called, data["expected"])
        np.testing.assert_array_equal(predicted, data["expected"])
    else:
        tolerance = testing.matmul_tolerance(rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(called, reference, **tolerance)
        tolerance = testing.matmul_tolerance(rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(called, data["expected"], **tolerance)
        np.testing.assert_allclose(predicted, data["expected"], **tolerance)


# -- NumPy references of the fixture models (tests/fixtures/make_fixtures.py)


def numpy_reference(name, model, data):
    """The fixture model's output on `data["ids"]`, computed in NumPy from
    the stored table and the other layers' loaded weights."""
    return _REFERENCES[name](model, data["ids"], data["embeddings"])


def _dense(model, name, x, activation=None):
    kernel, bias = model.get_layer(name).get_weights()
    out = x @ kernel + bias
    return np.tanh(out) if activation == "tanh" else out


def _masked_mean(vectors, mask):
    weights = mask[..., None].astype("float64")
    return (vectors * weights).sum(axis=1) / weights.sum(axis=1)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _masked_lstm(model, vectors, mask):
    # Keras's gate order i, f, c, o; masked steps keep the previous state.
    kernel, recurrent, bias = model.get_layer("lstm").get_weights()
    units = recurrent.shape[0]
    h = np.zeros((vectors.shape[0], units))
    c = np.zeros_like(h)
    for t in range(vectors.shape[1]):
        z = vectors[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        new_c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        new_h = _sigmoid(o) * np.tanh(new_c)
        step = mask[:, t : t + 1]
        c, h = np.where(step, new_c, c), np.where(step, new_h, h)
    return h


def _sequential_full(model, ids, table):
    return _dense(model, "dense", _masked_mean(table[ids], ids != 0))


def _functional_masked_lstm(model, ids, table):
    vectors, mask = table[ids].astype("float64"), ids != 0
    recurrent = _masked_lstm(model, vectors, mask)
    return np.concatenate([recurrent, _masked_mean(vectors, mask)], axis=-1)


def _mixed_bfloat16_weights(model, ids, table):
    return testing.rounded_to(table[ids], "bfloat16")


def _sequential_2d_input_length(model, ids, table):
    return _dense(model, "dense", table[ids], activation="tanh")


def _feature_arguments(model, ids, table):
    vectors = np.where((ids != 0)[..., None], table[ids], 0.0)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    vectors = np.where(norms > 1.0, vectors / np.maximum(norms, 1e-12), vectors)
    hidden = _dense(model, "dense", vectors, activation="tanh")
    kernel = testing.to_numpy(model.get_layer("embedding").reverse_embeddings)
    return 5.0 * np.tanh(hidden @ kernel / 5.0)


_REFERENCES = {
    "sequential_full": _sequential_full,
    "functional_masked_lstm": _functional_masked_lstm,
    "mixed_bfloat16_weights": _mixed_bfloat16_weights,
    "sequential_2d_input_length": _sequential_2d_input_length,
    "feature_arguments": _feature_arguments,
}


@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_fixture_keeps_every_argument(backend):
    model, data = load_fixture(backend, "sequential_full")
    layer = model.get_layer("embedding")
    assert layer.input_length == 6
    assert model.output_shape == (None, 3)
    assert layer.mask_zero is True
    assert float(layer.embeddings_regularizer.l2) == pytest.approx(1e-3)
    assert float(layer.activity_regularizer.l1) == pytest.approx(1e-4)
    assert layer.embeddings_constraint.max_value == pytest.approx(0.8)
    assert layer.embeddings_initializer.stddev == pytest.approx(0.5)
    assert layer.embeddings_initializer.seed == 7
    # The constraint was applied by the saved training step.
    norms = np.linalg.norm(data["embeddings"], axis=0)
    assert np.all(norms <= 0.8 + 1e-6)
    assert len(model.losses) == 1
    np.testing.assert_allclose(
        testing.to_numpy(model.losses[0]),
        1e-3 * np.sum(np.square(data["embeddings"])),
        rtol=1e-5,
    )


@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_fixture_keeps_mixed_precision(backend):
    model, data = load_fixture(backend, "mixed_bfloat16_weights")
    layer = model.get_layer("embedding")
    assert layer.dtype_policy.name == "mixed_bfloat16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"
    output = model(data["ids"])
    assert keras.backend.standardize_dtype(output.dtype) == "bfloat16"


# -- files saved by keras_embed 0.1.0 ----------------------------------------


def test_v0_1_0_file_without_reverse_arguments_loads_as_embedding():
    # 0.1.0 configs hold tie_weights/reverse_dtype/logit_soft_cap at their
    # defaults; 0.2.0 moved them to ReversibleEmbedding and drops them.
    directory = FIXTURES_DIR / "v0.1.0"
    model = keras.saving.load_model(directory / "sequential_full.keras")
    with np.load(directory / "sequential_full.npz") as data:
        ids, expected = data["ids"], data["expected"]
    layer = model.get_layer("embedding")
    assert type(layer) is Embedding
    assert "tie_weights" not in layer.get_config()
    outputs = testing.to_numpy(model(ids))
    reference = numpy_reference(
        "sequential_full",
        model,
        {"ids": ids, "embeddings": testing.to_numpy(layer.embeddings)},
    )
    np.testing.assert_allclose(
        outputs, reference, **testing.matmul_tolerance(rtol=1e-5, atol=1e-6)
    )
    np.testing.assert_allclose(
        outputs, expected, **testing.matmul_tolerance(rtol=1e-6, atol=1e-6)
    )


def test_v0_1_0_file_with_an_untied_projection_names_the_migration():
    path = FIXTURES_DIR / "v0.1.0" / "feature_arguments.keras"
    with pytest.raises(Exception, match="ReversibleEmbedding") as error:
        keras.saving.load_model(path)
    assert "'tie_weights': False" in str(error.value)
    assert "docs/migrating.md" in str(error.value)
