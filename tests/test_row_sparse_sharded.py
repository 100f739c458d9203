"""Row-sparse tables (`sparse_optimizer=`) sharded with `keras.distribution`.

Keras 3.15 implements `keras.distribution` on JAX only; these tests run with
at least 8 JAX devices, e.g. 8 virtual CPU devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 tox -e jax-multidevice

The optimizer slots are variables of the layer ("emb/momentum",
"emb/velocity"), so the LayoutMap names them next to the table. Each sharded
result is compared with the same model trained on one device.
"""

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from tests.test_distribution import DEVICES
from tests.test_distribution import LAYOUTS
from tests.test_distribution import _distribution as model_parallel
from tests.test_distribution import _shards
from tests.test_distribution import _skip_reason
from tests.test_row_sparse import update_path  # noqa: F401 (autouse)

VOCAB = 64
DIM = 16
BATCH = 8
LENGTH = 6
# One key for the table and its optimizer slots: they shard alike.
TABLE_AND_SLOTS = ".*emb/(embeddings|momentum|velocity)"


@pytest.fixture(autouse=True)
def _eight_jax_devices():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    yield
    keras.distribution.set_distribution(None)


def _distribution(layout_name, key=TABLE_AND_SLOTS):
    return model_parallel(layout_name, key)


def _model(optimizer="lazy_adam"):
    inputs = keras.Input((LENGTH,), dtype="int32")
    x = Embedding(
        VOCAB,
        DIM,
        name="emb",
        sparse_optimizer=optimizer,
        max_ids_per_step=BATCH * LENGTH,
    )(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _sharded_copy(reference, distribution):
    with distribution.scope():
        model = _model()
        model.set_weights(reference.get_weights())
    return model


def _data():
    # Ids drawn from 20 rows: every batch repeats ids.
    rng = np.random.RandomState(0)
    ids = rng.randint(0, 20, size=(4 * BATCH, LENGTH)).astype("int32")
    return ids, rng.randn(4 * BATCH, 1).astype("float32")


def _fit(model, epochs=3):
    ids, targets = _data()
    model.fit(
        ids, targets, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0
    )


def _state(model):
    layer = model.get_layer("emb")
    variables = {"embeddings": layer.embeddings}
    variables.update(layer.storage.slots)
    return {k: keras.ops.convert_to_numpy(v) for k, v in variables.items()}


def _assert_sharded_like_the_table(model, layout_name):
    layer = model.get_layer("emb")
    expected = LAYOUTS[layout_name][-1]
    for variable in [layer.embeddings, *layer.storage.slots.values()]:
        shapes = {shape for _, _, shape in _shards(variable)}
        assert shapes == {expected}, variable.path


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_slots_are_sharded_like_the_table(layout_name):
    model = _sharded_copy(_model(), _distribution(layout_name))
    slots = model.get_layer("emb").storage.slots
    assert sorted(v.path for v in slots.values()) == [
        "emb/momentum",
        "emb/velocity",
    ]
    _assert_sharded_like_the_table(model, layout_name)


@pytest.mark.parametrize("layout_name", LAYOUTS)
def test_fit_with_duplicate_ids_matches_one_device(layout_name):
    reference = _model()
    initial = _state(reference)
    distribution = _distribution(layout_name)
    model = _sharded_copy(reference, distribution)

    _fit(reference)
    with distribution.scope():
        _fit(model)

    expected, found = _state(reference), _state(model)
    assert not np.allclose(expected["embeddings"], initial["embeddings"])
    for name in expected:
        np.testing.assert_allclose(
            found[name], expected[name], rtol=1e-6, atol=1e-7, err_msg=name
        )
    _assert_sharded_like_the_table(model, layout_name)


@pytest.mark.parametrize("layout_name", ["vocab_axis", "both_axes_2x4_mesh"])
def test_save_and_load_a_sharded_row_sparse_model(layout_name, tmp_path):
    ids, _ = _data()
    reference = _model()
    distribution = _distribution(layout_name)
    model = _sharded_copy(reference, distribution)
    _fit(reference, epochs=1)
    with distribution.scope():
        _fit(model, epochs=1)
        path = str(tmp_path / "sharded.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    _assert_sharded_like_the_table(loaded, layout_name)
    for name, value in _state(model).items():
        np.testing.assert_array_equal(_state(loaded)[name], value)

    # Training goes on from the saved slots and step count, as on one device.
    _fit(reference, epochs=1)
    with distribution.scope():
        _fit(loaded, epochs=1)
    for name, value in _state(reference).items():
        np.testing.assert_allclose(
            _state(loaded)[name], value, rtol=1e-6, atol=1e-7, err_msg=name
        )
    np.testing.assert_allclose(
        loaded.predict(ids, verbose=0),
        reference.predict(ids, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )
    # The file holds plain arrays: it loads without a distribution too.
    keras.distribution.set_distribution(None)
    unsharded = keras.saving.load_model(path)
    for name, value in _state(model).items():
        np.testing.assert_array_equal(_state(unsharded)[name], value)


def test_a_layout_map_that_shards_only_the_table_is_refused():
    # A replicated slot would hold the whole table on every device.
    distribution = _distribution("vocab_axis", key=".*emb/embeddings")
    with distribution.scope():
        with pytest.raises(ValueError, match=r"emb/momentum.*has layout"):
            _model()
        with pytest.raises(
            ValueError,
            match=r'layout_map\[".\*emb/\(embeddings\|momentum\|velocity\)"\]',
        ):
            _model()


def test_data_parallel_replicates_table_and_slots_alike():
    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()[:DEVICES]
    )
    reference = _model()
    model = _sharded_copy(reference, distribution)
    _fit(reference)
    with distribution.scope():
        _fit(model)
    for name, value in _state(reference).items():
        np.testing.assert_allclose(
            _state(model)[name], value, rtol=1e-6, atol=1e-7, err_msg=name
        )


def _rows_distribution(accumulator_key=True):
    # A row-wise slot has one value per row: it is sharded like the rows.
    mesh = keras.distribution.DeviceMesh(
        shape=(DEVICES,),
        axis_names=["model"],
        devices=keras.distribution.list_devices()[:DEVICES],
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*emb/embeddings"] = ("model", None)
    if accumulator_key:
        layout_map[".*emb/accumulator"] = ("model",)
    return keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="model"
    )


def test_rowwise_adagrad_sharded_by_rows_matches_one_device():
    reference = _model("rowwise_adagrad")
    distribution = _rows_distribution()
    with distribution.scope():
        model = _model("rowwise_adagrad")
        model.set_weights(reference.get_weights())
    _fit(reference)
    with distribution.scope():
        _fit(model)
    expected, found = _state(reference), _state(model)
    assert expected["accumulator"].shape == (VOCAB,)
    assert np.all(expected["accumulator"][:20] > 0)
    for name in expected:
        np.testing.assert_allclose(
            found[name], expected[name], rtol=1e-6, atol=1e-7, err_msg=name
        )
    layer = model.get_layer("emb")
    rows = VOCAB // DEVICES
    assert {s for _, _, s in _shards(layer.embeddings)} == {(rows, DIM)}
    accumulator = layer.storage.slots["accumulator"]
    assert {s for _, _, s in _shards(accumulator)} == {(rows,)}


def test_a_row_wise_slot_without_its_layout_is_refused():
    with _rows_distribution(accumulator_key=False).scope():
        with pytest.raises(
            ValueError,
            match=r"emb/accumulator.*layout_map\[\".\*emb/accumulator\"\] "
            r"= \('model',\)",
        ):
            _model("rowwise_adagrad")
