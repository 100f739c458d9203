import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from keras_embed import ReversibleEmbedding
from tests import testing
from tests.gradients import weight_gradients

RNG = np.random.default_rng(0)
TABLE = RNG.normal(size=(7, 4)).astype("float32")
HIDDEN = RNG.normal(size=(2, 3, 4)).astype("float32")


def test_tied_logits_match_numpy():
    layer = ReversibleEmbedding(7, 4, weights=TABLE)
    logits = layer(HIDDEN, reverse=True)
    assert tuple(logits.shape) == (2, 3, 7)
    np.testing.assert_allclose(
        testing.to_numpy(logits),
        HIDDEN @ TABLE.T,
        **testing.matmul_tolerance(rtol=1e-5, atol=1e-6),
    )


def test_logit_soft_cap_matches_numpy():
    layer = ReversibleEmbedding(7, 4, weights=TABLE * 10, logit_soft_cap=2.5)
    logits = testing.to_numpy(layer(HIDDEN, reverse=True))
    expected = 2.5 * np.tanh((HIDDEN @ (TABLE * 10).T) / 2.5)
    np.testing.assert_allclose(
        logits, expected, **testing.matmul_tolerance(rtol=1e-5, atol=1e-5)
    )
    assert np.abs(logits).max() <= 2.5


def test_untied_projection_is_its_own_weight():
    layer = ReversibleEmbedding(7, 4, weights=TABLE, tie_weights=False)
    layer.build()
    assert tuple(layer.reverse_embeddings.shape) == (4, 7)
    assert len(layer.trainable_weights) == 2
    kernel = RNG.normal(size=(4, 7)).astype("float32")
    layer.reverse_embeddings.assign(kernel)
    np.testing.assert_allclose(
        testing.to_numpy(layer(HIDDEN, reverse=True)),
        HIDDEN @ kernel,
        **testing.matmul_tolerance(rtol=1e-5, atol=1e-6),
    )
    upstream = RNG.normal(size=(2, 3, 7)).astype("float32")
    grad_table, grad_kernel = weight_gradients(
        layer,
        lambda out: ops.sum(out * ops.convert_to_tensor(upstream)),
        ops.convert_to_tensor(HIDDEN),
        reverse=True,
    )
    np.testing.assert_array_equal(grad_table, 0)
    np.testing.assert_allclose(
        grad_kernel,
        HIDDEN.reshape(-1, 4).T @ upstream.reshape(-1, 7),
        **testing.matmul_tolerance(rtol=1e-5, atol=1e-5),
    )


def test_tied_gradient_and_padding_row():
    layer = ReversibleEmbedding(7, 4, weights=TABLE, padding_id=3)
    upstream = RNG.normal(size=(2, 3, 7)).astype("float32")
    logits = testing.to_numpy(layer(HIDDEN, reverse=True))
    np.testing.assert_array_equal(logits[..., 3], 0)
    (grad,) = weight_gradients(
        layer,
        lambda out: ops.sum(out * ops.convert_to_tensor(upstream)),
        ops.convert_to_tensor(HIDDEN),
        reverse=True,
    )
    expected = upstream.reshape(-1, 7).T @ HIDDEN.reshape(-1, 4)
    expected[3] = 0
    np.testing.assert_allclose(
        grad, expected, **testing.matmul_tolerance(rtol=1e-5, atol=1e-5)
    )


@pytest.mark.parametrize(
    "reverse_dtype, expected", [(None, "float16"), ("float32", "float32")]
)
def test_reverse_dtype_under_mixed_precision(reverse_dtype, expected):
    layer = ReversibleEmbedding(
        7, 4, weights=TABLE, reverse_dtype=reverse_dtype, dtype="mixed_float16"
    )
    logits = layer(HIDDEN, reverse=True)
    assert keras.backend.standardize_dtype(logits.dtype) == expected
    symbolic = layer(keras.Input((3, 4)), reverse=True)
    assert symbolic.dtype == expected
    np.testing.assert_allclose(
        testing.to_numpy(logits), HIDDEN @ TABLE.T, rtol=1e-2, atol=1e-2
    )


def _keras_tied_model_io():
    ids = keras.Input((3,), dtype="int32")
    embedding = keras.layers.ReversibleEmbedding(7, 4, mask_zero=True)
    hidden = keras.layers.Dense(4)(embedding(ids))
    return ids, embedding(hidden, reverse=True)


def tied_model(**kwargs):
    ids = keras.Input((3,), dtype="int32")
    embedding = ReversibleEmbedding(7, 4, mask_zero=True, **kwargs)
    hidden = keras.layers.Dense(4)(embedding(ids))
    return keras.Model(ids, embedding(hidden, reverse=True))


def test_tied_model_trains_saves_and_masks_as_keras():
    model = tied_model(logit_soft_cap=5.0, reverse_dtype="float32")
    assert model.output_shape == (None, 3, 7)
    # As keras.layers.ReversibleEmbedding: the ids' mask reaches the Dense
    # layer, the logits carry none (so the loss counts every position).
    hidden = model.layers[2].input
    assert testing.mask_seen_downstream(hidden) is not None
    assert testing.mask_seen_downstream(model.outputs[0]) is None
    keras_model = keras.Model(*_keras_tied_model_io())
    assert testing.mask_seen_downstream(keras_model.outputs[0]) is None
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    ids = np.array([[1, 2, 0], [3, 4, 5]], dtype="int32")
    model.fit(ids, ids, epochs=2, verbose=0)
    reloaded = testing.save_and_load(model)
    assert reloaded.layers[1].get_config() == model.layers[1].get_config()
    np.testing.assert_allclose(
        testing.to_numpy(reloaded(ids)),
        testing.to_numpy(model(ids)),
        rtol=1e-6,
    )


def test_untied_model_saves_both_matrices():
    model = tied_model(tie_weights=False)
    reloaded = testing.save_and_load(model)
    layer = reloaded.layers[1]
    np.testing.assert_array_equal(
        testing.to_numpy(layer.reverse_embeddings),
        testing.to_numpy(model.layers[1].reverse_embeddings),
    )


def test_reverse_checks_the_hidden_size_not_the_ids():
    layer = ReversibleEmbedding(7, 4)
    # Host floats in reverse mode are hidden states, not ids to validate.
    layer(np.full((2, 4), 0.5, "float32"), reverse=True)
    with pytest.raises(ValueError, match="last axis is output_dim=4"):
        layer(np.ones((2, 5), "float32"), reverse=True)
    with pytest.raises(ValueError, match="output_dim=4"):
        layer(keras.Input((5,)), reverse=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"logit_soft_cap": 0}, "logit_soft_cap"),
        ({"logit_soft_cap": "3"}, "logit_soft_cap"),
        ({"reverse_dtype": "int32"}, "reverse_dtype"),
        ({"reverse_dtype": "nope"}, "reverse_dtype"),
    ],
)
def test_bad_reverse_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReversibleEmbedding(7, 4, **kwargs)


def test_reverse_config_round_trip():
    layer = ReversibleEmbedding(
        7, 4, tie_weights=False, reverse_dtype="float32", logit_soft_cap=30
    )
    config = layer.get_config()
    assert config["tie_weights"] is False
    assert config["reverse_dtype"] == "float32"
    assert config["logit_soft_cap"] == 30.0
    assert ReversibleEmbedding.from_config(config).get_config() == config


@pytest.mark.parametrize(
    "kwargs", [{"tie_weights": False}, {"reverse_dtype": "float32"}]
)
def test_plain_embedding_no_longer_takes_reverse_arguments(kwargs):
    # 0.2.0 moved the projection to ReversibleEmbedding, as in Keras 3; the
    # error says where it went rather than Keras's "Unrecognized keyword".
    with pytest.raises(TypeError, match=r"moved to keras_embed\.Reversible"):
        Embedding(7, 4, **kwargs)
    with pytest.raises(TypeError, match="reverse"):
        Embedding(7, 4)(HIDDEN, reverse=True)


def test_weights_before_tie_weights_build_the_reverse_matrix():
    # `weights=` builds at construction, which must already see tie_weights.
    layer = ReversibleEmbedding(7, 4, tie_weights=False, weights=TABLE)
    assert layer.built
    assert tuple(layer.reverse_embeddings.shape) == (4, 7)
    np.testing.assert_array_equal(testing.to_numpy(layer.embeddings), TABLE)
