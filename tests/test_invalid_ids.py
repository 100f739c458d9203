"""Bad ids that compiled code reads as zeros: counted, shown in Keras's
logs, raised on by `InvalidIdCheck`, in both counter modes, on every
backend. What counts where (keras_embed/invalid_ids.py):

| context | "metric" (default) | "variable" |
|---|---|---|
| compiled `fit`, `evaluate` | counted, in the logs | counted |
| compiled `predict` | TF, torch: counted; JAX: not | counted |
| eager calls | raise `ValueError` | raise `ValueError` |
"""

import contextlib
import io
import re

import keras
import numpy as np
import pytest

import keras_embed
from keras_embed import Embedding
from keras_embed import EmbeddingBag
from tests.testing import backend

GOOD = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], "int32")
# Two bad ids in the second batch of two rows.
BAD = np.array([[1, 2], [3, 4], [5, 10], [-1, 8]], "int32")
TARGETS = np.zeros((4, 1), "float32")
LOG_KEY = "emb/invalid_ids"

# Compiled variants. Without jit_compile, JAX and torch run `fit` eagerly,
# where the layer raises its own error (tested in test_embedding_ids).
COMPILED = [
    pytest.param(dict(jit_compile=True), id="jit"),
    pytest.param(dict(jit_compile=False), id="graph"),
    pytest.param(dict(jit_compile=True, steps_per_execution=2), id="jit_spe2"),
]
COUNTERS = ["metric", "variable"]


def _model(layer=None, **compile_kwargs):
    if backend() != "tensorflow" and not compile_kwargs.get("jit_compile"):
        pytest.skip("eager without jit_compile here: the layer raises")
    if backend() == "torch" and compile_kwargs.get("steps_per_execution"):
        pytest.skip("Keras 3 requires steps_per_execution=1 on torch")
    layer = layer or Embedding(10, 3, name="emb")
    model = keras.Sequential(
        [
            keras.Input((2,), dtype="int32"),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse", **compile_kwargs)
    return model


def _predict_counts(counter):
    # JAX's predict step threads no metric variables.
    return not (counter == "metric" and backend() == "jax")


def _message(mode, batch, count=2, name="emb"):
    return (
        f"Layer '{name}' looked up {count} invalid ids as zero vectors in "
        f"{mode} batch {batch}. Ids must be whole numbers in [0, input_dim) "
        "= [0, 10). Set input_dim to the largest id + 1, or fix the ids; "
        "calling the layer eagerly on the batch names the first invalid id "
        "and its position."
    )


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("compile_kwargs", COMPILED)
def test_compiled_calls_count_invalid_ids_and_reset(compile_kwargs, counter):
    model = _model(
        Embedding(10, 3, name="emb", invalid_id_counter=counter),
        **compile_kwargs,
    )
    layer = model.layers[0]
    model.fit(GOOD, TARGETS, batch_size=2, verbose=0)
    assert layer.invalid_id_count == 0
    model.fit(BAD, TARGETS, batch_size=2, epochs=2, verbose=0)
    assert layer.invalid_id_count == 4
    model.evaluate(BAD, TARGETS, batch_size=2, verbose=0)
    assert layer.invalid_id_count == 6
    model.predict(BAD, batch_size=2, verbose=0)
    assert layer.invalid_id_count == (8 if _predict_counts(counter) else 6)
    layer.reset_invalid_id_count()
    assert layer.invalid_id_count == 0


@pytest.mark.parametrize("compile_kwargs", COMPILED)
def test_fit_and_evaluate_logs_show_each_epochs_count(compile_kwargs):
    model = _model(**compile_kwargs)
    history = model.fit(
        BAD, TARGETS, batch_size=2, epochs=2, verbose=0,
        validation_data=(BAD[2:], TARGETS[2:]),
    )  # fmt: skip
    assert history.history[LOG_KEY] == [2, 2]
    assert history.history[f"val_{LOG_KEY}"] == [2, 2]
    logs = model.evaluate(GOOD, TARGETS, verbose=0, return_dict=True)
    assert logs[LOG_KEY] == 0
    # evaluate() returns the loss and the count, in that order.
    loss, count = model.evaluate(BAD, TARGETS, batch_size=2, verbose=0)
    assert count == 2 and np.isfinite(loss)


def test_the_progress_bar_shows_the_count():
    model = _model(jit_compile=True)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        model.fit(BAD, TARGETS, batch_size=2, verbose=2)
        model.evaluate(BAD, TARGETS, batch_size=2, verbose=2)
    lines = [line for line in shown.getvalue().splitlines() if LOG_KEY in line]
    assert len(lines) == 2, shown.getvalue()
    for line in lines:
        assert re.search(rf"{LOG_KEY}: 2(\.0+)?\b", line), line


def test_variable_counter_keeps_keras_logs():
    model = _model(
        Embedding(10, 3, name="emb", invalid_id_counter="variable"),
        jit_compile=True,
    )
    history = model.fit(BAD, TARGETS, batch_size=2, verbose=0)
    assert sorted(history.history) == ["loss"]
    assert np.ndim(model.evaluate(BAD, TARGETS, verbose=0)) == 0
    assert model.layers[0].invalid_id_count == 4


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("compile_kwargs", COMPILED)
def test_callback_raises_after_the_batch(compile_kwargs, counter):
    model = _model(
        Embedding(10, 3, name="emb", invalid_id_counter=counter),
        **compile_kwargs,
    )
    # With steps_per_execution=2, Keras calls back once per two batches.
    batch = 1
    check = [keras_embed.InvalidIdCheck()]
    fit = dict(batch_size=2, shuffle=False, verbose=0, callbacks=check)
    with pytest.raises(
        ValueError, match=re.escape(_message("training", batch))
    ):
        model.fit(BAD, TARGETS, **fit)
    with pytest.raises(
        ValueError, match=re.escape(_message("evaluation", batch))
    ):
        model.evaluate(BAD, TARGETS, batch_size=2, verbose=0, callbacks=check)
    predict = dict(batch_size=2, verbose=0, callbacks=check)
    if _predict_counts(counter):
        with pytest.raises(
            ValueError, match=re.escape(_message("prediction", batch))
        ):
            model.predict(BAD, **predict)
    else:
        model.predict(BAD, **predict)
    # Valid ids pass, even though the totals are not zero.
    model.fit(GOOD, TARGETS, batch_size=2, verbose=0, callbacks=check)
    model.evaluate(GOOD, TARGETS, batch_size=2, verbose=0, callbacks=check)
    model.predict(GOOD, batch_size=2, verbose=0, callbacks=check)


def test_callback_sees_an_embedding_bag():
    bag = EmbeddingBag(10, 3, name="bag")
    model = _model(bag, jit_compile=True)
    check = [keras_embed.InvalidIdCheck()]
    message = _message("training", 1, name="bag")
    with pytest.raises(ValueError, match=re.escape(message)):
        model.fit(
            BAD, TARGETS, batch_size=2, shuffle=False, verbose=0,
            callbacks=check,
        )  # fmt: skip
    assert bag.invalid_id_count == 2
    history = model.fit(BAD, TARGETS, batch_size=2, verbose=0)
    assert history.history["bag/invalid_ids"] == [2]


def test_eager_bad_ids_raise_and_are_not_counted():
    layer = Embedding(10, 3)
    with pytest.raises(ValueError, match="invalid id 10"):
        layer(keras.ops.convert_to_tensor(BAD))
    assert layer.invalid_id_count == 0


def test_bad_counter_argument():
    with pytest.raises(ValueError, match=r"`invalid_id_counter` must be one"):
        Embedding(10, 3, invalid_id_counter="weights")


def test_counts_are_never_saved_and_files_cross_with_keras(tmp_path):
    model = _model(jit_compile=True)
    model.fit(BAD, TARGETS, batch_size=2, verbose=0)
    ours = model.layers[0]
    assert ours.invalid_id_count == 2

    def wrap(layer):
        return keras.Sequential([keras.Input((2,), dtype="int32"), layer])

    path = str(tmp_path / "ours.weights.h5")
    wrap(ours).save_weights(path)
    into_keras = wrap(keras.layers.Embedding(10, 3))
    into_keras.load_weights(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(into_keras.layers[0].embeddings),
        keras.ops.convert_to_numpy(ours.embeddings),
    )
    path = str(tmp_path / "model.keras")
    model.save(path)
    revived = keras.saving.load_model(path)
    assert revived.layers[0].invalid_id_count == 0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(revived.layers[0].embeddings),
        keras.ops.convert_to_numpy(ours.embeddings),
    )


def test_variable_counter_is_the_one_extra_weight_and_never_saved(tmp_path):
    layer = Embedding(10, 3, invalid_id_counter="variable")
    layer.build()
    assert [w.name for w in layer.weights] == ["embeddings", "invalid_id_count"]
    assert layer.metrics == []
    model = keras.Sequential([keras.Input((2,), dtype="int32"), layer])
    model.save_weights(tmp_path / "w.weights.h5")
    into_keras = keras.Sequential(
        [keras.Input((2,), dtype="int32"), keras.layers.Embedding(10, 3)]
    )
    into_keras.load_weights(tmp_path / "w.weights.h5")
    revived = keras.saving.load_model(_saved(model, tmp_path))
    assert revived.layers[0].invalid_id_counter == "variable"


def _saved(model, tmp_path):
    path = str(tmp_path / "m.keras")
    model.save(path)
    return path
