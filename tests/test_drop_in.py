"""Swapping Keras's embedding layers for ours changes nothing a model's code
sees: the same weights (names, order, shapes, dtypes, trainable or not), the
same parameter counts and summary, whole-model `get_weights` /
`set_weights` both ways, and the same variables for `stateless_call`.

The nine cases are those of issue 14: plain, mask_zero, int8, int4, LoRA,
LoRA then int8, and ReversibleEmbedding tied, untied, untied int8.
"""

import contextlib
import io

import keras
import numpy as np
import pytest

import keras_embed
from tests.testing import to_numpy

IDS = np.array([[1, 2, 3], [4, 0, 9]], "int32")


def _quantize(mode):
    return lambda model: model.quantize(mode)


def _lora(model):
    model.get_layer("token").enable_lora(2)


def _lora_then(mode):
    def apply(model):
        _lora(model)
        model.quantize(mode)

    return apply


CASES = {
    "plain": ("Embedding", {}, None),
    "mask_zero": ("Embedding", {"mask_zero": True}, None),
    "int8": ("Embedding", {}, _quantize("int8")),
    "int4": ("Embedding", {}, _quantize("int4")),
    "lora": ("Embedding", {}, _lora),
    "lora_int8": ("Embedding", {}, _lora_then("int8")),
    "reversible_tied": ("ReversibleEmbedding", {}, None),
    "reversible_untied": (
        "ReversibleEmbedding", {"tie_weights": False}, None,
    ),
    "reversible_untied_int8": (
        "ReversibleEmbedding", {"tie_weights": False}, _quantize("int8"),
    ),
}  # fmt: skip


def _model(namespace, case):
    class_name, kwargs, change = CASES[case]
    cls = getattr(namespace, class_name)
    keras.utils.set_random_seed(0)
    ids = keras.Input((3,), dtype="int32", name="ids")
    token = cls(10, 8, name="token", **kwargs)
    hidden = keras.layers.Dense(8, name="dense")(token(ids))
    if class_name == "ReversibleEmbedding":
        outputs = token(hidden, reverse=True)
    else:
        outputs = keras.layers.Dense(1, name="head")(hidden)
    model = keras.Model(ids, outputs, name="model")
    if change is not None:
        change(model)
    return model


def _pair(case):
    return _model(keras.layers, case), _model(keras_embed, case)


def _weights(layer_or_model):
    return [(w.path, tuple(w.shape), w.dtype) for w in layer_or_model.weights]


def _summary(model):
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        model.summary(line_length=120)
    return shown.getvalue()


@pytest.mark.parametrize("case", CASES)
def test_the_same_weights_counts_and_summary(case):
    theirs, ours = _pair(case)
    token_theirs, token_ours = (
        theirs.get_layer("token"),
        ours.get_layer("token"),
    )
    assert _weights(token_ours) == _weights(token_theirs)
    for kind in ("trainable_weights", "non_trainable_weights"):
        assert _weights_of(token_ours, kind) == _weights_of(token_theirs, kind)
    assert len(token_ours.variables) == len(token_theirs.variables)
    assert len(ours.non_trainable_variables) == len(
        theirs.non_trainable_variables
    )
    assert token_ours.count_params() == token_theirs.count_params()
    assert ours.count_params() == theirs.count_params()
    assert _summary(ours) == _summary(theirs)


def _weights_of(layer, kind):
    return [(w.path, tuple(w.shape)) for w in getattr(layer, kind)]


@pytest.mark.parametrize("case", CASES)
def test_whole_model_weights_copy_both_ways(case):
    theirs, ours = _pair(case)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(
        to_numpy(ours(IDS)), to_numpy(theirs(IDS)), rtol=1e-6, atol=1e-6
    )
    other = _model(keras.layers, case)
    other.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        to_numpy(other(IDS)), to_numpy(ours(IDS)), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("case", ["plain", "mask_zero", "lora", "int8"])
def test_stateless_call_takes_the_builtins_variables(case):
    # Keras's documented JAX training-loop pattern, on every backend: the
    # built-in layer has no non-trainable variables.
    _, ours = _pair(case)
    layer = ours.get_layer("token")
    if not layer.non_trainable_variables:
        non_trainable = []
    else:
        non_trainable = [v.value for v in layer.non_trainable_variables]
    trainable = [v.value for v in layer.trainable_variables]
    outputs, new_non_trainable = layer.stateless_call(
        trainable, non_trainable, IDS
    )
    np.testing.assert_array_equal(to_numpy(outputs), to_numpy(layer(IDS)))
    assert len(new_non_trainable) == len(non_trainable)
    theirs = _model(keras.layers, case).get_layer("token")
    assert len(theirs.non_trainable_variables) == len(non_trainable)


def test_a_plain_layer_takes_no_non_trainable_variables():
    layer = keras_embed.Embedding(10, 8)
    layer.build()
    outputs, state = layer.stateless_call([layer.embeddings.value], [], IDS)
    assert state == []
    np.testing.assert_array_equal(to_numpy(outputs), to_numpy(layer(IDS)))
