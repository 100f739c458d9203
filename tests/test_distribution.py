"""Embedding tables sharded over devices with `keras.distribution`.

Keras 3.15 implements `keras.distribution` on JAX only, so these tests run
when the backend is JAX with at least 8 devices, e.g. 8 virtual CPU devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 tox -e jax-multidevice

Every sharded result is compared with the same model, with the same initial
weights, run without a distribution in the same process.
"""

import keras
import numpy as np
import pytest

from keras_embed import Embedding

DEVICES = 8
VOCAB = 64
DIM = 16
BATCH = 16

# name: (mesh shape, mesh axis names, batch axis, table layout, shard shape)
LAYOUTS = {
    "vocab_axis": ((8,), ("model",), "model", ("model", None), (8, 16)),
    "embedding_axis": ((8,), ("model",), "model", (None, "model"), (64, 2)),
    "both_axes_2x4_mesh": (
        (2, 4),
        ("data", "model"),
        "data",
        ("model", "data"),
        (16, 8),
    ),
}


def _skip_reason():
    if keras.backend.backend() != "jax":
        return (
            f"keras.distribution is implemented only on JAX in Keras 3.15; "
            f"the backend is {keras.backend.backend()}"
        )
    found = len(keras.distribution.list_devices())
    if found < DEVICES:
        return (
            f"needs {DEVICES} JAX devices, found {found}; run with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={DEVICES} "
            "(tox -e jax-multidevice)"
        )
    return None


@pytest.fixture(autouse=True)
def _eight_jax_devices():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    yield
    keras.distribution.set_distribution(None)


def _distribution(layout_name, key=".*embeddings"):
    mesh_shape, axis_names, batch_axis, layout, _ = LAYOUTS[layout_name]
    mesh = keras.distribution.DeviceMesh(
        shape=mesh_shape,
        axis_names=list(axis_names),
        devices=keras.distribution.list_devices()[:DEVICES],
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[key] = layout
    return keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name=batch_axis
    )


def _shards(variable):
    # A JAX array's shards, one per device: (device, index, local shape).
    return [
        (shard.device, shard.index, shard.data.shape)
        for shard in variable.value.addressable_shards
    ]


def _ids(seed=0, padded_from=None):
    ids = np.random.RandomState(seed).randint(1, VOCAB, size=(BATCH, 6))
    if padded_from is not None:
        ids[:, padded_from:] = 0
    return ids.astype("int32")


def _lookup_model(**layer_kwargs):
    inputs = keras.Input((None,), dtype="int32")
    outputs = Embedding(VOCAB, DIM, name="emb", **layer_kwargs)(inputs)
    return keras.Model(inputs, outputs)


def _pooled_model(head="average"):
    inputs = keras.Input((None,), dtype="int32")
    x = Embedding(VOCAB, DIM, mask_zero=True, name="emb")(inputs)
    if head == "average":
        x = keras.layers.GlobalAveragePooling1D()(x)
    else:
        x = keras.layers.LSTM(4, seed=0)(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs)


def _sharded_copy(build_model, reference, distribution):
    with distribution.scope():
        model = build_model()
        model.set_weights(reference.get_weights())
    return model


def _table(model):
    return keras.ops.convert_to_numpy(model.get_layer("emb").embeddings)


def _fit(model, ids, targets):
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    return model.fit(
        ids, targets, batch_size=8, epochs=2, shuffle=False, verbose=0
    )


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_each_device_holds_one_eighth_of_the_table(layout_name):
    expected_shape = LAYOUTS[layout_name][-1]
    reference = _lookup_model()
    model = _sharded_copy(_lookup_model, reference, _distribution(layout_name))
    variable = model.get_layer("emb").embeddings

    shards = _shards(variable)
    assert len(shards) == DEVICES
    assert len({device for device, _, _ in shards}) == DEVICES
    assert {shape for _, _, shape in shards} == {expected_shape}
    assert np.prod(expected_shape) * DEVICES == VOCAB * DIM
    # The shards tile the table: each element is on exactly one device.
    covered = np.zeros((VOCAB, DIM), dtype=int)
    for _, index, _ in shards:
        covered[index] += 1
    np.testing.assert_array_equal(covered, 1)
    np.testing.assert_array_equal(_table(model), _table(reference))


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_lookup_matches_one_device_exactly(layout_name):
    ids = _ids()
    reference = _lookup_model()
    expected = keras.ops.convert_to_numpy(reference(ids))
    distribution = _distribution(layout_name)
    model = _sharded_copy(_lookup_model, reference, distribution)
    with distribution.scope():
        eager = keras.ops.convert_to_numpy(model(ids))
        predicted = model.predict(ids, batch_size=BATCH, verbose=0)

    # A gather from a sharded table moves values without arithmetic.
    np.testing.assert_array_equal(eager, expected)
    np.testing.assert_array_equal(predicted, expected)


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_predict_and_fit_match_one_device(layout_name):
    ids = _ids(padded_from=4)
    targets = np.random.RandomState(1).randn(BATCH, 1).astype("float32")
    reference = _pooled_model()
    initial_table = _table(reference)
    distribution = _distribution(layout_name)
    model = _sharded_copy(_pooled_model, reference, distribution)

    expected = reference.predict(ids, batch_size=BATCH, verbose=0)
    _fit(reference, ids, targets)
    with distribution.scope():
        predicted = model.predict(ids, batch_size=BATCH, verbose=0)
        _fit(model, ids, targets)

    np.testing.assert_allclose(predicted, expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(_table(reference), initial_table), "fit did nothing"
    np.testing.assert_allclose(
        _table(model), _table(reference), rtol=1e-6, atol=1e-6
    )
    shapes = {
        shape for _, _, shape in _shards(model.get_layer("emb").embeddings)
    }
    assert shapes == {LAYOUTS[layout_name][-1]}, "fit gathered the table"


@pytest.mark.parametrize("head", ["average", "lstm"])
@pytest.mark.parametrize("layout_name", ["vocab_axis", "embedding_axis"])
def test_mask_propagates_from_a_sharded_table(layout_name, head):
    padded = _ids(padded_from=4)
    unpadded = padded[:, :4]
    reference = _pooled_model(head)
    distribution = _distribution(layout_name)
    model = _sharded_copy(lambda: _pooled_model(head), reference, distribution)

    expected = reference.predict(padded, batch_size=BATCH, verbose=0)
    with distribution.scope():
        from_padded = model.predict(padded, batch_size=BATCH, verbose=0)
        from_unpadded = model.predict(unpadded, batch_size=BATCH, verbose=0)
        mask = model.get_layer("emb").compute_mask(padded)

    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), padded != 0)
    np.testing.assert_allclose(from_padded, expected, rtol=1e-6, atol=1e-6)
    # Padding changes nothing only if the mask reached the pooling / LSTM.
    np.testing.assert_allclose(from_padded, from_unpadded, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("counter", ["metric", "variable"])
@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_bad_ids_in_compiled_calls_give_zero_vectors(layout_name, counter):
    ids = _ids()
    bad = np.zeros_like(ids, dtype=bool)
    ids[0, 0], ids[3, 2], ids[9, 5] = VOCAB, -1, 2**31 - 1
    bad[0, 0] = bad[3, 2] = bad[9, 5] = True

    def build():
        return _lookup_model(invalid_id_counter=counter)

    reference = build()
    distribution = _distribution(layout_name)
    model = _sharded_copy(build, reference, distribution)
    table = _table(reference)

    with distribution.scope():
        predicted = model.predict(ids, batch_size=BATCH, verbose=0)
        history = _fit(model, ids, np.ones((BATCH, 6, DIM), "float32"))
    _fit(reference, ids, np.ones((BATCH, 6, DIM), "float32"))

    np.testing.assert_array_equal(predicted[bad], 0.0)
    np.testing.assert_array_equal(predicted[~bad], table[ids[~bad]])
    # 3 bad ids, summed over all eight shards, counted by each of fit's 2
    # epochs (in its logs with the metric) and, with the variable, by
    # predict too (JAX's predict step threads no metric).
    if counter == "metric":
        assert history.history["emb/invalid_ids"] == [3, 3]
        assert model.layers[-1].invalid_id_count == 6
    else:
        assert model.layers[-1].invalid_id_count == 9
    # Bad positions send no gradient: training matches one device, and the
    # rows no valid id names keep their initial values.
    np.testing.assert_allclose(
        _table(model), _table(reference), rtol=1e-6, atol=1e-6
    )
    unused = np.setdiff1d(np.arange(VOCAB), ids[~bad])
    np.testing.assert_array_equal(_table(model)[unused], table[unused])


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_bad_ids_in_eager_calls_raise_value_error(layout_name):
    ids = _ids()
    ids[2, 1] = VOCAB
    reference = _lookup_model()
    distribution = _distribution(layout_name)
    model = _sharded_copy(_lookup_model, reference, distribution)
    with distribution.scope():
        layer = model.get_layer("emb")
        with pytest.raises(ValueError, match=r"invalid id 64 at position"):
            layer(ids)
        with pytest.raises(ValueError, match=r"invalid id 64 at position"):
            layer(keras.ops.convert_to_tensor(ids))


def test_layout_map_keys_match_the_variable_paths():
    functional = _lookup_model()
    sequential = keras.Sequential(
        [keras.Input((6,), dtype="int32"), Embedding(VOCAB, DIM, name="emb")]
    )
    standalone = Embedding(VOCAB, DIM)
    standalone.build()
    assert functional.get_layer("emb").embeddings.path == "emb/embeddings"
    assert sequential.get_layer("emb").embeddings.path.endswith(
        "/emb/embeddings"
    )
    assert standalone.embeddings.path == "embedding/embeddings"

    # LayoutMap keys are regexes matched against the whole path.
    layout_map = keras.distribution.LayoutMap(
        _distribution("vocab_axis").device_mesh
    )
    layout_map[".*emb/embeddings"] = ("model", None)
    assert layout_map["emb/embeddings"].axes == ("model", None)
    assert layout_map["sequential/emb/embeddings"].axes == ("model", None)
    assert layout_map["embedding/embeddings"] is None
    assert layout_map["embeddings"] is None


def test_sequential_model_shards_with_an_exact_path_key():
    # A Sequential model puts its own name in the path, and automatic names
    # change ("sequential", "sequential_1", ...): name the model for an
    # exact key, or use a regex such as ".*emb/embeddings".
    def build():
        return keras.Sequential(
            [
                keras.Input((6,), dtype="int32"),
                Embedding(VOCAB, DIM, name="emb"),
            ],
            name="tower",
        )

    ids = _ids()
    reference = build()
    distribution = _distribution("vocab_axis", key="tower/emb/embeddings")
    model = _sharded_copy(build, reference, distribution)
    variable = model.get_layer("emb").embeddings
    assert variable.path == "tower/emb/embeddings"
    assert {shape for _, _, shape in _shards(variable)} == {(8, DIM)}
    with distribution.scope():
        predicted = model.predict(ids, batch_size=BATCH, verbose=0)
    np.testing.assert_array_equal(
        predicted, keras.ops.convert_to_numpy(reference(ids))
    )
