"""`layer.invalid_id_count` and `keras_embed.InvalidIdCheck`: bad ids that
compiled code zeroes are counted and raised on, alike on every backend."""

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

# Compiled variants. Without jit_compile, JAX and torch run `fit` eagerly,
# where the layer raises its own error (tested in test_embedding_ids).
COMPILED = [
    pytest.param(dict(jit_compile=True), id="jit"),
    pytest.param(dict(jit_compile=False), id="graph"),
    pytest.param(dict(jit_compile=True, steps_per_execution=2), id="jit_spe2"),
]


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


def _message(mode, batch, count=2, name="emb"):
    return (
        f"Layer '{name}' looked up {count} invalid ids as zero vectors in "
        f"{mode} batch {batch}. Ids must be whole numbers in [0, input_dim) "
        "= [0, 10). Set input_dim to the largest id + 1, or fix the ids; "
        "calling the layer eagerly on the batch names the first invalid id "
        "and its position."
    )


@pytest.mark.parametrize("compile_kwargs", COMPILED)
def test_compiled_calls_count_invalid_ids_and_reset(compile_kwargs):
    model = _model(**compile_kwargs)
    layer = model.layers[0]
    model.fit(GOOD, TARGETS, batch_size=2, verbose=0)
    assert layer.invalid_id_count == 0
    model.fit(BAD, TARGETS, batch_size=2, verbose=0)
    assert layer.invalid_id_count == 2
    model.evaluate(BAD, TARGETS, batch_size=2, verbose=0)
    assert layer.invalid_id_count == 4
    model.predict(BAD, batch_size=2, verbose=0)
    assert layer.invalid_id_count == 6
    layer.reset_invalid_id_count()
    assert layer.invalid_id_count == 0


@pytest.mark.parametrize("compile_kwargs", COMPILED)
def test_callback_raises_after_the_batch_in_fit_evaluate_predict(
    compile_kwargs,
):
    model = _model(**compile_kwargs)
    # With steps_per_execution=2, Keras calls back once per two batches.
    batch = 1
    check = [keras_embed.InvalidIdCheck()]
    with pytest.raises(
        ValueError, match=re.escape(_message("training", batch))
    ):
        model.fit(
            BAD,
            TARGETS,
            batch_size=2,
            shuffle=False,
            verbose=0,
            callbacks=check,
        )
    with pytest.raises(
        ValueError, match=re.escape(_message("evaluation", batch))
    ):
        model.evaluate(BAD, TARGETS, batch_size=2, verbose=0, callbacks=check)
    with pytest.raises(
        ValueError, match=re.escape(_message("prediction", batch))
    ):
        model.predict(BAD, batch_size=2, verbose=0, callbacks=check)
    # Valid ids pass, even though the counter is not zero.
    model.fit(GOOD, TARGETS, batch_size=2, verbose=0, callbacks=check)
    model.predict(GOOD, batch_size=2, verbose=0, callbacks=check)


def test_callback_sees_an_embedding_bag():
    bag = EmbeddingBag(10, 3, name="emb")
    model = _model(bag, jit_compile=True)
    with pytest.raises(ValueError, match=re.escape(_message("prediction", 1))):
        model.predict(
            BAD,
            batch_size=2,
            verbose=0,
            callbacks=[keras_embed.InvalidIdCheck()],
        )
    assert bag.invalid_id_count == 2


def test_eager_bad_ids_raise_and_are_not_counted():
    layer = Embedding(10, 3)
    with pytest.raises(ValueError, match="invalid id 10"):
        layer(keras.ops.convert_to_tensor(BAD))
    assert layer.invalid_id_count == 0


def test_counter_is_never_saved_and_files_cross_with_keras(tmp_path):
    ours = Embedding(10, 3)
    ours.build()
    ours._invalid_ids.assign(5)
    assert len(ours.get_weights()) == 1
    theirs = keras.layers.Embedding(10, 3)
    theirs.build()
    theirs.set_weights(ours.get_weights())

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
    path = str(tmp_path / "keras.weights.h5")
    into_keras.save_weights(path)
    back = Embedding(10, 3)
    wrap(back).load_weights(path)
    assert back.invalid_id_count == 0

    path = str(tmp_path / "model.keras")
    wrap(ours).save(path)
    revived = keras.saving.load_model(path)
    assert revived.layers[0].invalid_id_count == 0
    assert revived.layers[0].get_weights()[0].shape == (10, 3)
