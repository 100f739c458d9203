import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import Embedding
from tests import testing
from tests.gradients import weight_gradients

IDS = np.array([[0, 1, 2], [3, 1, 4]], dtype="int32")


def table():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(5, 4))
    rows[0] *= 0.01  # well inside max_norm
    rows[3] = 0.0  # a zero vector: must stay finite, value and gradient
    rows[1] *= 10.0  # far outside
    return rows.astype("float32")


def reference_clip(vectors, max_norm, p):
    vectors = np.asarray(vectors, dtype="float64")
    norms = np.sum(np.abs(vectors) ** p, axis=-1, keepdims=True) ** (1 / p)
    scale = np.where(norms > max_norm, max_norm / np.maximum(norms, 1e-300), 1)
    return vectors * scale


def test_layer_contract_with_max_norm():
    testing.run_layer_test(
        Embedding,
        {"input_dim": 5, "output_dim": 3, "max_norm": 0.01},
        input_data=IDS,
        expected_output_shape=(2, 3, 3),
    )


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_lookup_is_clipped_and_table_is_not(p):
    max_norm = 1.0
    layer = Embedding(5, 4, weights=table(), max_norm=max_norm, norm_type=p)
    out = testing.to_numpy(layer(IDS))
    expected = reference_clip(table()[IDS], max_norm, p)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    norms = np.sum(np.abs(out) ** p, -1) ** (1 / p)
    assert np.all(norms <= max_norm * (1 + 1e-6))
    # Vectors within max_norm are returned bit for bit, as with no clipping.
    np.testing.assert_array_equal(out[0, 0], table()[0])
    # As tf.nn.embedding_lookup: the stored table is left as it was.
    np.testing.assert_array_equal(testing.to_numpy(layer.embeddings), table())


def test_clipping_in_compiled_predict_matches_eager():
    layer = Embedding(5, 4, weights=table(), max_norm=1.0)
    model = keras.Sequential([keras.Input((3,), dtype="int32"), layer])
    np.testing.assert_allclose(
        model.predict(IDS, verbose=0),
        reference_clip(table()[IDS], 1.0, 2),
        rtol=1e-6,
        atol=1e-7,
    )


def numeric_gradient(weights, ids, upstream, max_norm, p, step=1e-6):
    """Central finite differences of sum(upstream * clip(table[ids]))."""
    weights = weights.astype("float64")

    def loss(w):
        return np.sum(upstream * reference_clip(w[ids], max_norm, p))

    grad = np.zeros_like(weights)
    for index in np.ndindex(*weights.shape):
        bumped = weights.copy()
        bumped[index] += step
        up = loss(bumped)
        bumped[index] -= 2 * step
        grad[index] = (up - loss(bumped)) / (2 * step)
    return grad


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_gradient_flows_through_the_clipping(p):
    max_norm = 1.0
    upstream = np.random.default_rng(1).normal(size=(2, 3, 4))
    layer = Embedding(5, 4, weights=table(), max_norm=max_norm, norm_type=p)
    (grad,) = weight_gradients(
        layer,
        lambda out: ops.sum(out * ops.convert_to_tensor(upstream, "float32")),
        ops.convert_to_tensor(IDS),
    )
    expected = numeric_gradient(table(), IDS, upstream, max_norm, p)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-4)
    # An unclipped row gets exactly the upstream gradient.
    np.testing.assert_allclose(grad[0], upstream[0, 0], rtol=1e-6)


def test_max_norm_with_padding_id_and_mixed_precision():
    layer = Embedding(
        5, 4, weights=table(), max_norm=0.5, padding_id=1, dtype="mixed_float16"
    )
    out = layer(IDS)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    out = testing.to_numpy(out).astype("float64")
    expected = reference_clip(table()[IDS], 0.5, 2)
    expected[IDS == 1] = 0
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_norm": 0.0}, "max_norm"),
        ({"max_norm": -1.0}, "max_norm"),
        ({"max_norm": float("inf")}, "max_norm"),
        ({"max_norm": "1"}, "max_norm"),
        ({"max_norm": 1.0, "norm_type": 0.5}, "norm_type"),
        ({"max_norm": 1.0, "norm_type": float("inf")}, "norm_type"),
    ],
)
def test_bad_max_norm_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Embedding(5, 4, **kwargs)


def test_max_norm_config_round_trip():
    layer = Embedding(5, 4, max_norm=2, norm_type=3)
    config = layer.get_config()
    assert (config["max_norm"], config["norm_type"]) == (2.0, 3.0)
    assert Embedding.from_config(config).get_config() == config


def _rows_at_norms(norms, p, dim=4):
    """Rows whose p-norms are exactly `norms` (up to float32 rounding)."""
    rng = np.random.default_rng(1)
    rows = np.abs(rng.normal(size=(len(norms), dim))) + 0.1
    rows /= (np.sum(rows**p, axis=1, keepdims=True) ** (1 / p))[:, :]
    return (rows * np.asarray(norms)[:, None]).astype("float32")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 2.0])
def test_max_norm_clips_just_above_and_keeps_just_below(max_norm, p, compiled):
    # Every other test uses max_norm=1.0, where max_norm**p == max_norm.
    norms = [max_norm * 1.01, max_norm * 0.99, max_norm * 1.5, max_norm * 0.5]
    rows = _rows_at_norms(norms, p)
    layer = Embedding(4, 4, weights=rows, max_norm=max_norm, norm_type=p)
    ids = np.array([[0, 1, 2, 3]], "int32")
    if compiled:
        model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
        model.compile(jit_compile=True)
        out = model.predict(ids, verbose=0)[0]
    else:
        out = testing.to_numpy(layer(ids))[0]
    out_norms = np.sum(np.abs(out) ** p, axis=-1) ** (1 / p)
    np.testing.assert_allclose(out_norms[[0, 2]], max_norm, rtol=1e-5)
    np.testing.assert_array_equal(out[[1, 3]], rows[[1, 3]])
    np.testing.assert_allclose(
        out, reference_clip(rows, max_norm, p), rtol=1e-5
    )
