"""`row_sparse._inplace`: row reads and in-place row writes, and their
`keras.ops` fallback, on every backend; no table-sized temporaries."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from keras_embed import row_sparse
from keras_embed.row_sparse import _inplace
from tests.testing import backend
from tests.testing import save_and_load
from tests.testing import to_numpy

VOCAB, DIM = 1000, 4
IN_PLACE_BACKENDS = ("tensorflow", "torch")


@pytest.fixture(params=["native", "keras_ops"])
def path(request, monkeypatch):
    monkeypatch.setattr(
        _inplace, "FORCE_KERAS_OPS", request.param == "keras_ops"
    )
    return request.param


def _variable(shape):
    values = np.random.default_rng(0).normal(size=shape).astype("f4")
    return keras.Variable(values, trainable=False), values


# Repeated indices carry equal rows, as the row-sparse update writes them.
INDICES = np.array([7, 3, 999, 3, 0], "int32")


@pytest.mark.parametrize("shape", [(VOCAB, DIM), (VOCAB,)])
def test_write_rows_equals_numpy(shape, path):
    variable, expected = _variable(shape)
    rows = np.arange(len(INDICES) * int(np.prod(shape[1:])), dtype="f4")
    rows = rows.reshape((len(INDICES), *shape[1:]))
    rows[3] = rows[1]
    expected[INDICES] = rows
    _inplace.write_rows(variable, ops.convert_to_tensor(INDICES), rows)
    np.testing.assert_array_equal(to_numpy(variable), expected)
    np.testing.assert_array_equal(
        to_numpy(_inplace.take_rows(variable, INDICES[:3])),
        expected[INDICES[:3]],
    )


def test_native_storage_is_the_variable_itself_where_supported(path):
    variable, _ = _variable((VOCAB, DIM))
    storage = _inplace.native_storage(variable)
    if path == "keras_ops" or backend() not in IN_PLACE_BACKENDS:
        assert storage is None
    else:
        assert storage is variable.value


def test_a_stateless_scope_value_takes_the_keras_ops_path():
    # Writing in place would change the variable, not the scope's value.
    variable, values = _variable((VOCAB, DIM))
    other = ops.zeros((VOCAB, DIM))
    with keras.StatelessScope(state_mapping=[(variable, other)]) as scope:
        assert _inplace.native_storage(variable) is None
        _inplace.write_rows(variable, ops.convert_to_tensor([5]), np.ones(
            (1, DIM), "f4"
        ))  # fmt: skip
        written = scope.get_current_value(variable)
    np.testing.assert_array_equal(to_numpy(variable), values)
    expected = np.zeros((VOCAB, DIM), "f4")
    expected[5] = 1
    np.testing.assert_array_equal(to_numpy(written), expected)


def test_write_rows_in_compiled_code(path):
    variable, expected = _variable((VOCAB, DIM))
    indices = ops.convert_to_tensor(INDICES[:3])
    rows = np.full((3, DIM), 2.5, "f4")
    expected[INDICES[:3]] = rows + expected[INDICES[:3]]

    def step():
        old = _inplace.take_rows(variable, indices)
        _inplace.write_rows(variable, indices, old + rows)

    if backend() == "tensorflow":
        import tensorflow as tf

        for jit_compile in (False, True):
            variable.assign(_variable((VOCAB, DIM))[1])
            tf.function(step, jit_compile=jit_compile)()
            np.testing.assert_array_equal(to_numpy(variable), expected)
    elif backend() == "torch":
        import torch

        torch.compile(step)()
        np.testing.assert_array_equal(to_numpy(variable), expected)
    else:
        import jax

        # As Keras's JAX trainer: state in, new state out (donated).
        def stateless(value):
            with keras.StatelessScope([(variable, value)]) as scope:
                step()
            return scope.get_current_value(variable)

        new = jax.jit(stateless, donate_argnums=0)(variable.value)
        np.testing.assert_array_equal(np.asarray(new), expected)


def _sparse_model(optimizer="lazy_adam"):
    layer = Embedding(
        VOCAB, DIM, sparse_optimizer=optimizer, max_ids_per_step=40
    )
    inputs = keras.Input((5,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model.compile("adam", "mse")
    return model, layer


def _batch():
    rng = np.random.default_rng(2)
    return rng.integers(0, VOCAB, (8, 5)).astype("int32"), np.ones((8, 1))


@pytest.mark.parametrize("optimizer", ["lazy_adam", "rowwise_adagrad"])
def test_torch_training_step_makes_no_table_sized_tensor(path, optimizer):
    if backend() != "torch":
        pytest.skip("torch dispatch mode")
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class TableSized(TorchDispatchMode):
        seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(tensor, torch.Tensor) and tensor.shape[:1] == (
                    VOCAB,
                ):
                    self.seen.append(str(func))
            return out

    model, layer = _sparse_model(optimizer)
    model.train_on_batch(*_batch())
    with TableSized() as mode:
        for _ in range(2):
            model.train_on_batch(*_batch())
    if path == "native":
        # Only the in-place write touches the table and slots.
        writes = 2 * (1 + len(layer.storage.slots))
        assert mode.seen == ["aten.index_copy_.default"] * writes
    else:
        assert "aten.clone.default" in mode.seen, mode.seen


def test_tensorflow_step_reads_and_writes_no_whole_table(path):
    if backend() != "tensorflow":
        pytest.skip("TensorFlow graph inspection")
    import tensorflow as tf

    model, layer = _sparse_model()
    ids, targets = _batch()
    model.train_on_batch(ids, targets)

    def lookup_and_update():
        return layer(ids, training=True)

    graph = tf.function(lookup_and_update).get_concrete_function().graph
    table_sized = sorted(
        op.type
        for op in graph.get_operations()
        for tensor in list(op.inputs) + list(op.outputs)
        if tensor.shape.rank and tensor.shape[0] == VOCAB
    )
    if path == "native":
        assert table_sized == [], table_sized
        kinds = {op.type for op in graph.get_operations()}
        assert {"ResourceGather", "ResourceScatterUpdate"} <= kinds
    else:
        assert "AssignVariableOp" in table_sized, table_sized


@pytest.mark.parametrize("mode", ["native", "keras_ops"])
def test_rowwise_adagrad_state_is_one_float_per_row(mode, monkeypatch):
    monkeypatch.setattr(_inplace, "FORCE_KERAS_OPS", mode == "keras_ops")
    model, layer = _sparse_model("rowwise_adagrad")
    (accumulator,) = layer.storage.slots.values()
    assert tuple(accumulator.shape) == (VOCAB,)
    state = sum(int(np.prod(s.shape)) for s in layer.storage.slots.values())
    assert state == VOCAB
    adagrad_layer = _sparse_model("adagrad")[1]
    (full,) = adagrad_layer.storage.slots.values()
    assert tuple(full.shape) == (VOCAB, DIM)
    ids, targets = _batch()
    model.train_on_batch(ids, targets)
    layer.flush()
    found = to_numpy(accumulator)
    touched = np.unique(ids)
    assert np.all(found[touched] > 0)
    np.testing.assert_array_equal(
        np.delete(found, touched), np.zeros(VOCAB - len(touched))
    )


def test_rowwise_adagrad_serializes_and_is_found_by_name():
    found = row_sparse.get("rowwise_adagrad")
    assert isinstance(found, row_sparse.RowwiseAdagrad)
    assert found.get_config() == {
        "learning_rate": 0.01,
        "initial_accumulator_value": 0.0,
        "epsilon": 1e-8,
    }
    custom = row_sparse.RowwiseAdagrad(0.2, 0.5, 1e-6)
    again = row_sparse.get(row_sparse.serialize(custom))
    assert type(again) is row_sparse.RowwiseAdagrad
    assert again.get_config() == custom.get_config()
    layer = Embedding(VOCAB, DIM, sparse_optimizer=custom, max_ids_per_step=40)
    clone = Embedding.from_config(layer.get_config())
    assert clone.sparse_optimizer.get_config() == custom.get_config()


def test_rowwise_adagrad_state_survives_saving():
    model, layer = _sparse_model(row_sparse.RowwiseAdagrad(0.1))
    ids, targets = _batch()
    model.train_on_batch(ids, targets)
    model.train_on_batch(ids, targets)  # leave an update pending
    reloaded = save_and_load(model)
    revived = reloaded.layers[1]
    assert isinstance(revived.sparse_optimizer, row_sparse.RowwiseAdagrad)
    saved = to_numpy(revived.storage.slots["accumulator"])
    assert saved.shape == (VOCAB,) and np.any(saved > 0)
    np.testing.assert_array_equal(
        saved, to_numpy(layer.storage.slots["accumulator"])
    )
    np.testing.assert_array_equal(
        to_numpy(revived.embeddings), to_numpy(layer.embeddings)
    )
