"""Bad ids in eager calls: one exception type and message on every backend."""

import re

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from tests.testing import backend


def expected_message(value, position, count, input_dim=10, name="emb"):
    plural = "s" if count > 1 else ""
    return (
        f"Layer '{name}' received an invalid id {value!r} at position "
        f"{position} ({count} invalid id{plural} in all). Ids must be whole "
        f"numbers in [0, input_dim) = [0, {input_dim}). Set input_dim to the "
        "largest id + 1 (with mask_zero=True, id 0 is the padding id, so "
        "real ids start at 1), or fix the ids."
    )


BAD_IDS = [
    # int32 where 64 bits are not the point, so JAX (no x64) runs them too.
    ("out_of_range", np.array([[1, 10], [2, 3]], "int32"), 10, (0, 1), 1),
    ("far_out_of_range", np.array([5, 1000, 1000], "int32"), 1000, (1,), 2),
    ("negative", np.array([[1, 2], [-1, 3]], "int32"), -1, (1, 0), 1),
    ("non_whole", np.array([1.0, 2.5]), 2.5, (1,), 1),
    ("nan", np.array([[np.nan, 1.0]], "float32"), float("nan"), (0, 0), 1),
    ("inf", np.array([np.inf]), float("inf"), (0,), 1),
    ("beyond_int32", np.array([3, 2**32 + 1], "int64"), 2**32 + 1, (1,), 1),
    ("uint64_huge", np.array([2**63 + 5], "uint64"), 2**63 + 5, (0,), 1),
    ("scalar", np.array(12, "int32"), 12, (), 1),
    ("int64_in_range_dtype", np.array([[1, 10]], "int64"), 10, (0, 1), 1),
]


@pytest.mark.parametrize(
    "ids, value, position, count",
    [case[1:] for case in BAD_IDS],
    ids=[case[0] for case in BAD_IDS],
)
def test_host_ids_raise_value_error_with_exact_message(
    ids, value, position, count
):
    layer = Embedding(10, 4, name="emb")
    with pytest.raises(ValueError) as info:
        layer(ids)
    assert str(info.value) == expected_message(value, position, count)


# Backend tensors: JAX without x64 has no 64-bit ints, and torch no uint64.
TENSOR_CASES = [
    case
    for case in BAD_IDS
    if not (backend() == "jax" and case[1].dtype.itemsize == 8
            and case[1].dtype.kind in "iu")
    and not (backend() == "torch" and case[1].dtype == np.uint64)
]  # fmt: skip


@pytest.mark.parametrize(
    "ids, value, position, count",
    [case[1:] for case in TENSOR_CASES],
    ids=[case[0] for case in TENSOR_CASES],
)
def test_backend_tensor_ids_raise_value_error(ids, value, position, count):
    layer = Embedding(10, 4, name="emb")
    tensor = keras.ops.convert_to_tensor(ids)
    # Keras adds a note listing the call's arguments; the message is ours.
    with pytest.raises(ValueError) as info:
        layer(tensor)
    assert expected_message(value, position, count) in str(info.value)


def test_error_inside_eager_model_call():
    inputs = keras.Input((3,), dtype="int32")
    model = keras.Model(inputs, Embedding(10, 2, name="emb")(inputs))
    with pytest.raises(ValueError, match=re.escape("invalid id 11")):
        model(np.array([[1, 11, 2]]))


def test_mask_zero_hint_present():
    layer = Embedding(5, 2, mask_zero=True, name="emb")
    with pytest.raises(ValueError, match="id 0 is the padding id"):
        layer(np.array([1, 5]))


@pytest.mark.parametrize(
    "ids",
    [np.array(["a", "b"]), ["a", "b"], np.array([b"x"]), np.array([1, None])],
    ids=["numpy_str", "list_str", "bytes", "object"],
)
def test_strings_raise_type_error(ids):
    with pytest.raises(TypeError, match="expects integer ids"):
        Embedding(10, 2)(ids)


def test_bool_ids_raise_type_error():
    with pytest.raises(TypeError, match="dtype bool"):
        Embedding(10, 2)(np.array([True, False]))


@pytest.mark.skipif(backend() != "tensorflow", reason="string tensors are TF")
def test_tf_string_tensor_raises_type_error():
    import tensorflow as tf

    with pytest.raises(TypeError, match="dtype string"):
        Embedding(10, 2)(tf.constant(["a"]))


def test_int64_beyond_int32_never_wraps_to_a_valid_row():
    # 2**32 + 1 wraps to 1 in int32: it must not read row 1.
    layer = Embedding(10, 2)
    with pytest.raises(ValueError, match=str(2**32 + 1)):
        layer(np.array([2**32 + 1], dtype="int64"))
    with pytest.raises(ValueError, match=str(2**32 + 1)):
        layer(np.array([2**32 + 1], dtype="uint64"))


@pytest.mark.skipif(backend() == "jax", reason="JAX without x64 has no int64")
def test_int64_tensor_beyond_int32_never_wraps():
    layer = Embedding(10, 2)
    tensor = keras.ops.convert_to_tensor(np.array([2**32 + 1], dtype="int64"))
    with pytest.raises(ValueError, match=str(2**32 + 1)):
        layer(tensor)


def test_float_ids_too_large_for_dtype_are_refused_eagerly():
    layer = Embedding(5000, 2)
    with pytest.raises(ValueError, match="float16.*2048"):
        layer(np.array([1.0], dtype="float16"))


def test_valid_ids_after_error_still_work():
    layer = Embedding(10, 2)
    with pytest.raises(ValueError):
        layer(np.array([10]))
    assert tuple(layer(np.array([9])).shape) == (1, 2)
