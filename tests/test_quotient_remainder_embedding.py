"""`QuotientRemainderEmbedding`: rows built from a quotient and a remainder
table, ids validated exactly as by `Embedding`."""

import re

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import QuotientRemainderEmbedding
from tests import testing
from tests.gradients import weight_gradients
from tests.testing import to_numpy

V, D, M = 23, 6, 5  # 5 quotient rows (ceil(23 / 5)), 5 remainder rows
IDS = np.array([[0, 4, 5, 22], [7, 7, 12, 21]], "int32")


def reference(layer, ids):
    """NumPy: row i = combine(Q[i // M], R[i % M])."""
    q = to_numpy(layer.storage.variables["quotient_embeddings"])
    r = to_numpy(layer.storage.variables["remainder_embeddings"])
    quotient, remainder = q[ids // M], r[ids % M]
    if layer.operation == "multiply":
        return quotient * remainder
    if layer.operation == "add":
        return quotient + remainder
    return np.concatenate([quotient, remainder], axis=-1)


def built(operation="multiply", **kwargs):
    layer = QuotientRemainderEmbedding(
        V, D, M, operation=operation, embeddings_initializer="normal", **kwargs
    )
    layer.build()
    return layer


@pytest.mark.parametrize("operation", ["multiply", "add", "concatenate"])
def test_rows_combine_a_quotient_and_a_remainder_row(operation):
    layer = built(operation)
    shapes = {n: tuple(v.shape) for n, v in layer.storage.variables.items()}
    width = (D + 1) // 2 if operation == "concatenate" else D
    assert shapes == {
        "quotient_embeddings": (5, width),
        "remainder_embeddings": (5, D - width if width != D else D),
    }
    assert [w.name for w in layer.weights] == list(shapes)
    np.testing.assert_allclose(
        to_numpy(layer(IDS)), reference(layer, IDS), rtol=1e-6
    )
    # Every id keeps a vector of its own (for generic table values).
    rng = np.random.default_rng(0)
    for variable in layer.storage.variables.values():
        variable.assign(rng.normal(size=variable.shape))
    table = to_numpy(layer.storage.float_table())
    assert table.shape == (V, D)
    assert len({row.tobytes() for row in table}) == V
    np.testing.assert_allclose(table, reference(layer, np.arange(V)), rtol=1e-6)


def test_the_layer_contract():
    testing.run_layer_test(
        QuotientRemainderEmbedding,
        {"input_dim": V, "output_dim": D, "num_collisions": M},
        input_data=IDS,
        expected_output_shape=(2, 4, D),
        expected_num_trainable_weights=2,
    )


def test_ids_are_checked_exactly_as_by_embedding():
    qr = QuotientRemainderEmbedding(V, D, M, name="emb")
    plain = Embedding(V, D, name="emb")
    bad = np.array([[1, 23]], "int32")
    errors = []
    for layer in (qr, plain):
        with pytest.raises(ValueError) as error:
            layer(bad)
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert re.search(r"invalid id 23 at position \(0, 1\)", errors[0])
    with pytest.raises(TypeError, match="expects integer ids"):
        qr(np.array([["a"]]))


def test_compiled_bad_ids_read_zeros_and_are_counted():
    layer = built()
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    model.compile("sgd", "mse", jit_compile=True)
    ids = IDS.copy()
    ids[0, 1] = V
    history = model.fit(ids, np.zeros((2, 4, D)), verbose=0)
    assert history.history[f"{layer.name}/invalid_ids"] == [1]
    out = model.predict(ids, verbose=0)
    np.testing.assert_array_equal(out[0, 1], 0)
    keep = ids != V
    np.testing.assert_allclose(
        out[keep], reference(layer, np.where(keep, ids, 0))[keep], rtol=1e-6
    )


def test_gradients_reach_only_the_rows_used():
    layer = built("add")
    ids = np.array([[6, 13]], "int32")  # quotients 1, 2; remainders 1, 3
    grads = weight_gradients(layer, keras.ops.sum, ids)
    quotient, remainder = (to_numpy(g) for g in grads)
    assert sorted(np.flatnonzero(np.abs(quotient).sum(1))) == [1, 2]
    assert sorted(np.flatnonzero(np.abs(remainder).sum(1))) == [1, 3]


def test_mask_padding_and_max_norm_are_the_layers():
    layer = built(mask_zero=True, padding_id=0, max_norm=0.5)
    out = to_numpy(layer(IDS))
    np.testing.assert_array_equal(out[0, 0], 0)
    assert np.all(np.linalg.norm(out, axis=-1) <= 0.5 + 1e-6)
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(IDS)), IDS != 0)
    # Id 5 shares quotient row 1 with ids 5-9 and remainder row 0 with id 0.
    assert np.any(out[0, 2] != 0)


def test_saving_and_config():
    layer = built("concatenate", mask_zero=True)
    config = layer.get_config()
    assert (
        config["num_collisions"] == M and config["operation"] == "concatenate"
    )
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    revived = testing.save_and_load(model)
    assert type(revived.layers[0]) is QuotientRemainderEmbedding
    np.testing.assert_array_equal(to_numpy(revived(IDS)), to_numpy(model(IDS)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"num_collisions": 0},
            ValueError,
            "`num_collisions` must be a positive",
        ),
        ({"num_collisions": 24}, ValueError, "at most input_dim=23"),
        ({"operation": "max"}, ValueError, "`operation` must be one of"),
        ({"weights": np.ones((V, D))}, ValueError, "`weights=`"),
        ({"sparse_optimizer": "sgd"}, ValueError, "`sparse_optimizer`"),
        ({"lora_rank": 2}, ValueError, "LoRA"),
    ],
)
def test_refusals(kwargs, error, match):
    arguments = {"num_collisions": M, **kwargs}
    with pytest.raises(error, match=match):
        QuotientRemainderEmbedding(V, D, **arguments)


def test_quantize_and_lora_are_refused():
    layer = built()
    with pytest.raises(NotImplementedError, match="quantization"):
        layer.quantize("int8")
    with pytest.raises(ValueError, match="LoRA"):
        layer.enable_lora(2)
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    with pytest.warns(UserWarning, match="quantization"):
        model.quantize("int8")
    assert layer.quantization_mode is None
