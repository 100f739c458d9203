"""Every row-wise optimizer against a NumPy reference, in every update path.

One training run per case: duplicate ids, a padding id, `max_norm` (the
gradient flows through the clip) and a row-wise constraint, trained by
`fit` eagerly (`run_eagerly=True`), as Keras compiles by default
(`tf.function` on TensorFlow, `jax.jit`, eager on PyTorch) and with
`jit_compile=True` (XLA, `jax.jit`, `torch.compile`). Each runs with the
whole-table update (small tables), row by row with the backend's in-place
writes, and row by row forced onto the `keras.ops` fallback
(`row_sparse._inplace.FORCE_KERAS_OPS`).

On PyTorch, Keras's default `fit` is the eager path, and `torch.compile`
retraces every step of a model whose layers call `add_loss` (Keras 3.15;
docs/row_sparse.md), 15-50 s a case here: it runs for every optimizer
with the in-place writes only (the fallback under `torch.compile` is in
test_row_sparse_inplace.py).
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from keras_embed import row_sparse
from keras_embed.row_sparse import _inplace
from tests.testing import backend
from tests.testing import to_numpy

VOCAB, DIM, LENGTH, BATCH, STEPS = 60, 4, 5, 8, 4
PADDING_ID, MAX_NORM = 3, 1.5

OPTIMIZERS = {
    "sgd": lambda: row_sparse.SGD(0.3),
    "adagrad": lambda: row_sparse.Adagrad(0.3, initial_accumulator_value=0.1),
    "rowwise_adagrad": lambda: row_sparse.RowwiseAdagrad(
        0.3, initial_accumulator_value=0.05, epsilon=1e-6
    ),
    "lazy_adam": lambda: row_sparse.LazyAdam(0.05, beta_1=0.8, beta_2=0.9),
}
COMPILE = {
    "eager": {"run_eagerly": True},
    "default": {},
    "jit_compile": {"jit_compile": True},
}


@pytest.fixture(params=["whole_table", "rows_in_place", "rows_keras_ops"])
def update(request, monkeypatch):
    whole = request.param == "whole_table"
    monkeypatch.setattr(
        row_sparse.table, "WHOLE_TABLE_UPDATE_RATIO", 2 if whole else 0
    )
    monkeypatch.setattr(
        _inplace, "FORCE_KERAS_OPS", request.param == "rows_keras_ops"
    )
    return request.param


@keras.saving.register_keras_serializable(package="keras_embed_tests")
def _linear_loss(y_true, y_pred):
    # The gradient of a looked-up vector is y_true / batch size.
    return ops.sum(y_true * y_pred, axis=(1, 2))


def _steps(seed=5):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 12, size=(STEPS * BATCH, LENGTH)).astype("int32")
    ids[:, 0] = PADDING_ID
    # Row 11 appears only in the first step: its state must then freeze.
    ids[BATCH:][ids[BATCH:] == 11] = 10
    weights = rng.normal(size=(STEPS * BATCH, LENGTH, DIM)).astype("f4")
    return ids, weights


def _initial_table():
    table = np.random.default_rng(1).normal(size=(VOCAB, DIM)).astype("f4")
    table[PADDING_ID] = 0
    return table


def _train(optimizer, compile_kwargs):
    layer = Embedding(
        VOCAB,
        DIM,
        weights=[_initial_table()],
        sparse_optimizer=optimizer,
        max_ids_per_step=BATCH * LENGTH,
        padding_id=PADDING_ID,
        max_norm=MAX_NORM,
        embeddings_constraint="non_neg",
    )
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", _linear_loss, **compile_kwargs)
    model.fit(*_steps(), batch_size=BATCH, shuffle=False, verbose=0)
    layer.flush()
    return layer


def _clip_gradient(rows, grads):
    """The gradient through `v * MAX_NORM / ||v||` where ||v|| > MAX_NORM."""
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    clipped = norms > MAX_NORM
    safe = np.where(clipped, norms, 1.0)
    dot = np.sum(rows * grads, axis=-1, keepdims=True)
    through = MAX_NORM * (grads / safe - rows * dot / safe**3)
    return np.where(clipped, through, grads)


def _row_gradients(table, ids, weights):
    keep = ids != PADDING_ID
    rows = table[ids]
    grads = _clip_gradient(rows, weights / len(ids))
    summed = np.zeros_like(table)
    np.add.at(summed, ids[keep], grads[keep])
    return summed, np.unique(ids[keep])


def _numpy_reference(name, optimizer):
    table = _initial_table().astype("float64")
    slots = {
        "adagrad": {"accumulator": np.full((VOCAB, DIM), 0.1)},
        "rowwise_adagrad": {"accumulator": np.full((VOCAB,), 0.05)},
        "lazy_adam": {
            "momentum": np.zeros((VOCAB, DIM)),
            "velocity": np.zeros((VOCAB, DIM)),
        },
    }.get(name, {})
    ids, weights = _steps()
    for step in range(1, STEPS + 1):
        batch = slice((step - 1) * BATCH, step * BATCH)
        grads, rows = _row_gradients(table, ids[batch], weights[batch])
        g = grads[rows]
        if name == "sgd":
            table[rows] -= optimizer.learning_rate * g
        elif name == "adagrad":
            acc = slots["accumulator"]
            acc[rows] += g**2
            table[rows] -= 0.3 * g / np.sqrt(acc[rows] + 1e-7)
        elif name == "rowwise_adagrad":
            acc = slots["accumulator"]
            acc[rows] += np.mean(g**2, axis=-1)
            scale = 0.3 / (np.sqrt(acc[rows]) + 1e-6)
            table[rows] -= scale[:, None] * g
        else:
            m, v = slots["momentum"], slots["velocity"]
            m[rows] += (g - m[rows]) * 0.2
            v[rows] += (g**2 - v[rows]) * 0.1
            alpha = 0.05 * np.sqrt(1 - 0.9**step) / (1 - 0.8**step)
            table[rows] -= alpha * m[rows] / (np.sqrt(v[rows]) + 1e-7)
        table[rows] = np.maximum(table[rows], 0)
    return table, slots


def _skip_on_torch(name, mode, update):
    if backend() != "torch":
        return
    if mode == "default":
        pytest.skip("Keras's default fit on torch is the eager path")
    if mode == "jit_compile" and update != "rows_in_place":
        pytest.skip("torch.compile retraces each step: in-place path only")


@pytest.mark.parametrize("mode", COMPILE)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_updates_equal_numpy(name, mode, update):
    _skip_on_torch(name, mode, update)
    layer = _train(OPTIMIZERS[name](), COMPILE[mode])
    table, slots = _numpy_reference(name, OPTIMIZERS[name]())
    found = to_numpy(layer.embeddings)
    assert not np.allclose(found, _initial_table()), "nothing trained"
    np.testing.assert_allclose(found, table, rtol=1e-5, atol=1e-5)
    assert sorted(layer.storage.slots) == sorted(slots)
    for slot, expected in slots.items():
        np.testing.assert_allclose(
            to_numpy(layer.storage.slots[slot]),
            expected,
            rtol=1e-5,
            atol=1e-6,
            err_msg=slot,
        )
    np.testing.assert_array_equal(found[PADDING_ID], np.zeros(DIM))
    untouched = np.setdiff1d(np.arange(VOCAB), _steps()[0])
    np.testing.assert_array_equal(found[untouched], _initial_table()[untouched])
    assert int(to_numpy(layer.storage.iterations)) == STEPS
