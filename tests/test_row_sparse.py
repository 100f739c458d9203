"""Row-sparse training: `Embedding(..., sparse_optimizer=...)`."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from keras_embed import ReversibleEmbedding
from keras_embed import RowSparseFlush
from keras_embed import row_sparse
from tests.testing import backend
from tests.testing import matmul_tolerance
from tests.testing import save_and_load
from tests.testing import to_numpy

VOCAB, DIM, LENGTH, BATCH = 60, 4, 5, 8


@pytest.fixture(autouse=True, params=["whole_table", "rows"])
def update_path(request, monkeypatch):
    """Runs each test with both updates: the whole table masked (small
    tables) and row by row (large tables)."""
    ratio = 2 if request.param == "whole_table" else 0
    monkeypatch.setattr(row_sparse.table, "WHOLE_TABLE_UPDATE_RATIO", ratio)
    return request.param


def _data(num=36, high=20, seed=0, unique_per_batch=False):
    rng = np.random.default_rng(seed)
    if unique_per_batch:
        ids = np.concatenate(
            [
                rng.permutation(high)[: BATCH * LENGTH].reshape(BATCH, LENGTH)
                for _ in range(-(-num // BATCH))
            ]
        )[:num]
    else:
        ids = rng.integers(0, high, size=(num, LENGTH))
    targets = rng.normal(size=(num, 1)).astype("float32")
    return ids.astype("int32"), targets


def _table(seed=1):
    return np.random.default_rng(seed).normal(size=(VOCAB, DIM)).astype("f4")


def _model(embedding):
    inputs = keras.Input((LENGTH,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(embedding(inputs))
    outputs = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(0.5)
    )(pooled)
    return keras.Model(inputs, outputs)


def _sparse(optimizer, table=None, layer_class=Embedding, **kwargs):
    kwargs.setdefault("max_ids_per_step", BATCH * LENGTH)
    return layer_class(
        VOCAB,
        DIM,
        weights=[_table() if table is None else table],
        sparse_optimizer=optimizer,
        **kwargs,
    )


def _fit_both(make_optimizer, data, epochs=2):
    dense = _model(keras.layers.Embedding(VOCAB, DIM, weights=[_table()]))
    dense.compile(make_optimizer(), "mse")
    layer = _sparse(make_optimizer())
    sparse = _model(layer)
    sparse.compile(make_optimizer(), "mse")
    for model in (dense, sparse):
        model.fit(*data, batch_size=BATCH, epochs=epochs, shuffle=False,
                  verbose=0)  # fmt: skip
    layer.flush()
    return dense, sparse, layer


def test_sgd_matches_keras_embedding_with_sgd():
    # 36 examples in batches of 8: the last batch is smaller, which makes
    # TensorFlow retrace with an unknown batch size.
    data = _data(num=36)
    dense, sparse, layer = _fit_both(lambda: keras.optimizers.SGD(0.5), data)
    expected = to_numpy(dense.layers[1].embeddings)
    assert not np.allclose(expected, _table()), "the reference did not train"
    np.testing.assert_allclose(
        to_numpy(layer.embeddings), expected, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(sparse.layers[-1].kernel),
        to_numpy(dense.layers[-1].kernel),
        rtol=1e-5,
        atol=1e-6,
    )


def test_adagrad_matches_keras_embedding_with_adagrad():
    # Ids are unique within each batch: with a repeated id, Keras's own
    # Adagrad on TensorFlow squares each occurrence's gradient separately
    # (see test_duplicate_ids_are_summed_like_the_dense_gradient).
    data = _data(num=32, high=VOCAB, unique_per_batch=True)
    dense, sparse, layer = _fit_both(
        lambda: keras.optimizers.Adagrad(0.5), data
    )
    np.testing.assert_allclose(
        to_numpy(layer.embeddings),
        to_numpy(dense.layers[1].embeddings),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(sparse.layers[-1].kernel),
        to_numpy(dense.layers[-1].kernel),
        rtol=1e-5,
        atol=1e-6,
    )


@keras.saving.register_keras_serializable(package="keras_embed_tests")
def _linear_loss(y_true, y_pred):
    # Per-example loss sum(w * rows): the gradient of a looked-up row is
    # w / batch_size, known in NumPy.
    return ops.sum(y_true * y_pred, axis=(1, 2))


def _train_linear(layer, ids, weights):
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", _linear_loss)
    for batch_ids, batch_weights in zip(ids, weights, strict=True):
        model.train_on_batch(batch_ids, batch_weights)
    layer.flush()
    return model


def _numpy_row_gradients(batch_ids, batch_weights):
    grads = np.zeros((VOCAB, DIM), "float64")
    np.add.at(
        grads,
        batch_ids.ravel(),
        batch_weights.reshape(-1, DIM) / len(batch_ids),
    )
    return grads, np.unique(batch_ids)


def _linear_steps(steps=4, high=10, seed=3):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, high, size=(steps, BATCH, LENGTH)).astype("int32")
    weights = rng.normal(size=(steps, BATCH, LENGTH, DIM)).astype("f4")
    return ids, weights


def test_duplicate_ids_are_summed_like_the_dense_gradient():
    ids, weights = _linear_steps()
    assert len(np.unique(ids[0])) < ids[0].size, "no duplicates to test"
    layer = _sparse(row_sparse.Adagrad(0.3, initial_accumulator_value=0.1))
    _train_linear(layer, ids, weights)
    table, accumulator = _table().astype("float64"), np.full((VOCAB, DIM), 0.1)
    for batch_ids, batch_weights in zip(ids, weights, strict=True):
        grads, _ = _numpy_row_gradients(batch_ids, batch_weights)
        accumulator += grads**2
        table -= 0.3 * grads / np.sqrt(accumulator + 1e-7)
    np.testing.assert_allclose(to_numpy(layer.embeddings), table, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(layer.storage.slots["accumulator"]), accumulator, atol=1e-5
    )
    if backend() != "tensorflow":
        # On JAX and PyTorch keras.layers.Embedding sums duplicates too.
        reference = keras.layers.Embedding(VOCAB, DIM, weights=[_table()])
        inputs = keras.Input((LENGTH,), dtype="int32")
        model = keras.Model(inputs, reference(inputs))
        model.compile(keras.optimizers.Adagrad(0.3), _linear_loss)
        for batch_ids, batch_weights in zip(ids, weights, strict=True):
            model.train_on_batch(batch_ids, batch_weights)
        np.testing.assert_allclose(
            to_numpy(layer.embeddings), to_numpy(reference.embeddings),
            rtol=1e-5, atol=1e-6,
        )  # fmt: skip


def test_lazy_adam_matches_numpy_reference():
    ids, weights = _linear_steps(steps=5, high=30)
    # Row 29 is seen only in the first step: its moments must then freeze.
    ids[1:][ids[1:] == 29] = 28
    layer = _sparse(row_sparse.LazyAdam(0.05, beta_1=0.8, beta_2=0.9))
    _train_linear(layer, ids, weights)
    table = _table().astype("float64")
    m, v = np.zeros_like(table), np.zeros_like(table)
    for step, (batch_ids, batch_weights) in enumerate(
        zip(ids, weights, strict=True), 1
    ):
        grads, rows = _numpy_row_gradients(batch_ids, batch_weights)
        m[rows] += (grads[rows] - m[rows]) * 0.2
        v[rows] += (grads[rows] ** 2 - v[rows]) * 0.1
        alpha = 0.05 * np.sqrt(1 - 0.9**step) / (1 - 0.8**step)
        table[rows] -= alpha * m[rows] / (np.sqrt(v[rows]) + 1e-7)
    slots = layer.storage.slots
    np.testing.assert_allclose(to_numpy(layer.embeddings), table, atol=1e-5)
    np.testing.assert_allclose(to_numpy(slots["momentum"]), m, atol=1e-6)
    np.testing.assert_allclose(to_numpy(slots["velocity"]), v, atol=1e-6)
    untouched = np.setdiff1d(np.arange(VOCAB), ids)
    np.testing.assert_array_equal(
        to_numpy(layer.embeddings)[untouched], _table()[untouched]
    )
    assert int(to_numpy(layer.storage.iterations)) == len(ids)


def test_lazy_adam_equals_adam_when_every_row_is_touched():
    vocab = LENGTH * BATCH
    ids = np.arange(vocab, dtype="int32").reshape(1, BATCH, LENGTH)
    ids = np.repeat(ids, 3, axis=0)
    weights = np.random.default_rng(0).normal(size=(3, BATCH, LENGTH, DIM))
    table = _table()[:vocab]
    layers = [
        Embedding(vocab, DIM, weights=[table], sparse_optimizer="lazy_adam",
                  max_ids_per_step=vocab),
        keras.layers.Embedding(vocab, DIM, weights=[table]),
    ]  # fmt: skip
    for layer in layers:
        inputs = keras.Input((LENGTH,), dtype="int32")
        model = keras.Model(inputs, layer(inputs))
        model.compile(keras.optimizers.Adam(), _linear_loss)
        for batch_ids, batch_weights in zip(ids, weights, strict=True):
            model.train_on_batch(batch_ids, batch_weights.astype("f4"))
    layers[0].flush()
    np.testing.assert_allclose(
        to_numpy(layers[0].embeddings), to_numpy(layers[1].embeddings),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_update_is_deferred_to_the_next_call_and_flush():
    ids, weights = _linear_steps(steps=1)
    layer = _sparse("sgd")
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", _linear_loss)
    model.train_on_batch(ids[0], weights[0])
    # The step's update is pending: the variable still holds the old table...
    np.testing.assert_array_equal(to_numpy(layer.embeddings), _table())
    grads, _ = _numpy_row_gradients(ids[0], weights[0])
    expected = _table() - 0.01 * grads
    # ...but any call applies it before its lookup (here predict)...
    probe = np.arange(VOCAB, dtype="int32")[: BATCH * LENGTH].reshape(
        BATCH, LENGTH
    )
    np.testing.assert_allclose(
        to_numpy(model.predict(probe, verbose=0)),
        expected[probe],
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_allclose(to_numpy(layer.embeddings), expected, atol=1e-7)
    # ...and once applied it is never applied again.
    layer.flush()
    model.evaluate(probe, np.zeros((BATCH, LENGTH, DIM)), verbose=0)
    np.testing.assert_allclose(to_numpy(layer.embeddings), expected, atol=1e-7)
    assert int(to_numpy(layer.storage.iterations)) == 1


def test_flush_applies_the_pending_update_eagerly():
    ids, weights = _linear_steps(steps=1)
    layer = _sparse("sgd")
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", _linear_loss)
    model.fit(ids[0], weights[0], batch_size=BATCH, verbose=0,
              callbacks=[RowSparseFlush()])  # fmt: skip
    grads, _ = _numpy_row_gradients(ids[0], weights[0])
    np.testing.assert_allclose(
        to_numpy(layer.embeddings), _table() - 0.01 * grads, atol=1e-7
    )
    before = to_numpy(layer.embeddings)
    layer.flush()
    np.testing.assert_array_equal(to_numpy(layer.embeddings), before)


def test_training_call_without_optimizer_step_applies_nothing():
    # A training-mode forward pass whose gradient never reaches an
    # optimizer (e.g. Monte Carlo dropout) must not apply a stale gradient.
    ids, weights = _linear_steps(steps=2)
    layer = _sparse("sgd")
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", _linear_loss)
    model.train_on_batch(ids[0], weights[0])
    layer.flush()
    after_step = to_numpy(layer.embeddings)
    model(ids[1], training=True)
    model(ids[1], training=True)
    layer.flush()
    np.testing.assert_array_equal(to_numpy(layer.embeddings), after_step)


def test_loss_scaling_is_undone():
    ids, weights = _linear_steps(steps=3)
    tables = []
    for optimizer in (
        keras.optimizers.SGD(0.1),
        keras.optimizers.SGD(0.1, loss_scale_factor=64.0),
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)),
    ):
        layer = _sparse(row_sparse.SGD(0.2))
        inputs = keras.Input((LENGTH,), dtype="int32")
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer, _linear_loss)
        for batch_ids, batch_weights in zip(ids, weights, strict=True):
            model.train_on_batch(batch_ids, batch_weights)
        layer.flush()
        tables.append(to_numpy(layer.embeddings))
    assert not np.allclose(tables[0], _table())
    np.testing.assert_allclose(tables[1], tables[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tables[2], tables[0], rtol=1e-6, atol=1e-7)


def test_fit_trains_the_rest_of_the_model_with_its_optimizer():
    data = _data(num=64)
    layer = _sparse("adagrad")
    model = _model(layer)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    kernel = to_numpy(model.layers[-1].kernel).copy()
    history = model.fit(*data, batch_size=BATCH, epochs=3, verbose=0)
    assert not np.allclose(to_numpy(model.layers[-1].kernel), kernel)
    assert history.history["loss"][-1] < history.history["loss"][0]
    table_shape = (VOCAB, DIM)
    shapes = [tuple(v.shape) for v in model.optimizer.variables]
    assert table_shape not in shapes, "the model optimizer holds table state"
    assert all(
        tuple(v.shape) != table_shape for v in model.trainable_variables
    ), "the table is a trainable variable of the model"


def test_state_is_saved_and_restored():
    ids, weights = _linear_steps(steps=3)
    layer = _sparse(row_sparse.LazyAdam(0.05))
    model = _train_linear(layer, ids[:2], weights[:2])
    model.train_on_batch(ids[2], weights[2])  # leave an update pending
    reloaded = save_and_load(model)
    revived = reloaded.layers[-1]
    assert isinstance(revived.sparse_optimizer, row_sparse.LazyAdam)
    assert revived.sparse_optimizer.get_config() == (
        layer.sparse_optimizer.get_config()
    )
    assert revived.get_config() == layer.get_config()
    # Saving flushed the pending update, and the file holds the moments.
    for name in ("momentum", "velocity"):
        saved = to_numpy(revived.storage.slots[name])
        assert np.any(saved != 0)
        np.testing.assert_array_equal(
            saved, to_numpy(layer.storage.slots[name])
        )
    np.testing.assert_array_equal(
        to_numpy(revived.embeddings), to_numpy(layer.embeddings)
    )
    assert int(to_numpy(revived.storage.iterations)) == 3
    # Training on from the file gives what training on in memory gives.
    for trained in (model, reloaded):
        trained.compile("sgd", _linear_loss)
        trained.train_on_batch(ids[0], weights[0])
        trained.layers[-1].flush()
    np.testing.assert_allclose(
        to_numpy(revived.embeddings), to_numpy(layer.embeddings), atol=1e-7
    )


@pytest.mark.parametrize(
    "optimizer, expected",
    [
        ("sgd", row_sparse.SGD(0.01)),
        ("Adagrad", row_sparse.Adagrad()),
        (keras.optimizers.Adam(0.2, beta_1=0.5), row_sparse.LazyAdam(0.2, 0.5)),
        ({"class_name": "keras_embed>SGD", "config": {"learning_rate": 0.3}},
         row_sparse.SGD(0.3)),
    ],
)  # fmt: skip
def test_sparse_optimizer_identifiers(optimizer, expected):
    layer = _sparse(optimizer)
    assert type(layer.sparse_optimizer) is type(expected)
    assert layer.sparse_optimizer.get_config() == expected.get_config()
    clone = Embedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "optimizer",
    [
        "adam",
        keras.optimizers.SGD(momentum=0.9),
        keras.optimizers.Adam(amsgrad=True),
        keras.optimizers.RMSprop(),
    ],
)
def test_optimizers_without_row_wise_equivalent_are_refused(optimizer):
    with pytest.raises(ValueError, match="sparse_optimizer"):
        _sparse(optimizer)


@pytest.mark.parametrize("value", [None, 0, -3, 2.5, True])
def test_max_ids_per_step_is_required_and_validated(value):
    with pytest.raises(ValueError, match="max_ids_per_step"):
        Embedding(VOCAB, DIM, sparse_optimizer="sgd", max_ids_per_step=value)


def test_batch_with_more_ids_than_max_ids_per_step_raises():
    ids, weights = _linear_steps(steps=1)
    layer = _sparse("sgd", max_ids_per_step=BATCH * LENGTH - 1)
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    with pytest.raises(ValueError, match="max_ids_per_step=39"):
        layer(ids[0], training=True)
    model.compile("sgd", _linear_loss, run_eagerly=True)
    with pytest.raises(ValueError, match="max_ids_per_step=39"):
        model.train_on_batch(ids[0], weights[0])
    # Inference calls have no bound.
    assert tuple(layer(np.zeros((100, LENGTH), "int32")).shape) == (
        100, LENGTH, DIM,
    )  # fmt: skip
    model.compile("sgd", _linear_loss)
    # Keras traces the step with the batch's shape, so every backend
    # refuses it before running, with the layer's own error.
    with pytest.raises(ValueError, match="max_ids_per_step=39"):
        model.train_on_batch(ids[0], weights[0])


def test_regularizer_is_refused():
    with pytest.raises(ValueError, match="embeddings_regularizer"):
        _sparse("sgd", embeddings_regularizer="l2")


def test_constraint_is_applied_to_updated_rows_only():
    ids, weights = _linear_steps(steps=2, high=10)
    layer = _sparse("sgd", embeddings_constraint="non_neg")
    _train_linear(layer, ids, weights)
    table = to_numpy(layer.embeddings)
    touched = np.unique(ids)
    untouched = np.setdiff1d(np.arange(VOCAB), touched)
    assert np.all(table[touched] >= 0)
    np.testing.assert_array_equal(table[untouched], _table()[untouched])
    assert np.any(table[untouched] < 0), "untouched rows stay unconstrained"


def test_bad_ids_in_compiled_training_read_zeros_and_train_nothing():
    ids, weights = _linear_steps(steps=1, high=10)
    bad = ids.copy()
    bad[0, 0, 0] = VOCAB + 5
    layer = _sparse("sgd")
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    # jit_compile=True is torch.compile on torch: compiled on every backend.
    model.compile("sgd", _linear_loss, jit_compile=True)
    model.train_on_batch(bad[0], weights[0])
    assert layer.invalid_id_count == 1
    layer.flush()
    good = bad[0].copy()
    weights_good = weights[0].copy()
    weights_good[0, 0] = 0
    grads, _ = _numpy_row_gradients(good % VOCAB, weights_good)
    np.testing.assert_allclose(
        to_numpy(layer.embeddings), _table() - 0.01 * grads, atol=1e-7
    )


def test_frozen_layer_does_not_train():
    ids, weights = _linear_steps(steps=2)
    layer = _sparse("lazy_adam")
    layer.trainable = False
    _train_linear(layer, ids, weights)
    np.testing.assert_array_equal(to_numpy(layer.embeddings), _table())


def test_padding_id_and_max_norm_match_dense_mode():
    # The same layer without sparse_optimizer is the reference: the padding
    # row stays zero and untrained, max_norm clips the looked-up vectors.
    data = _data(num=32)
    data[0][:, -1] = 0  # every example ends with the padding id
    kwargs = {"padding_id": 0, "max_norm": 1.0}
    layers = [
        Embedding(VOCAB, DIM, weights=[_table()], **kwargs),
        _sparse(row_sparse.SGD(0.5), **kwargs),
    ]
    for layer in layers:
        model = _model(layer)
        model.compile(keras.optimizers.SGD(0.5), "mse")
        model.fit(*data, batch_size=BATCH, epochs=2, shuffle=False,
                  verbose=0)  # fmt: skip
    layers[1].flush()
    sparse_table = to_numpy(layers[1].embeddings)
    np.testing.assert_array_equal(sparse_table[0], np.zeros(DIM))
    np.testing.assert_allclose(
        sparse_table, to_numpy(layers[0].embeddings), rtol=1e-5, atol=1e-6
    )


def test_tied_reverse_is_refused_in_training_and_sees_updates_outside():
    ids, weights = _linear_steps(steps=1)
    layer = _sparse("sgd", layer_class=ReversibleEmbedding)
    hidden = np.ones((2, DIM), "float32")
    with pytest.raises(ValueError, match="tie_weights"):
        layer(hidden, reverse=True, training=True)
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", _linear_loss)
    model.train_on_batch(ids[0], weights[0])
    logits = to_numpy(layer(hidden, reverse=True))
    grads, _ = _numpy_row_gradients(ids[0], weights[0])
    expected = hidden @ (_table() - 0.01 * grads).T
    np.testing.assert_allclose(
        logits, expected, **matmul_tolerance(rtol=1e-5, atol=1e-5)
    )
