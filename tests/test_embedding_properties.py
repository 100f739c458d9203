"""Property tests: any shape, integer dtype and valid ids equal table[ids]."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_embed import Embedding
from tests.testing import backend
from tests.testing import to_numpy

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"]
if backend() == "torch":
    # Keras's torch backend has no uint16/uint32 tensors.
    DTYPES = [d for d in DTYPES if d not in ("uint16", "uint32")]

LAYERS = {}


def layer_for(input_dim):
    # One built layer per vocabulary size keeps examples fast.
    if input_dim not in LAYERS:
        layer = Embedding(input_dim, 3, embeddings_initializer="normal")
        layer.build()
        LAYERS[input_dim] = (layer, to_numpy(layer.embeddings))
    return LAYERS[input_dim]


@st.composite
def ids_and_vocabulary(draw):
    input_dim = draw(st.sampled_from([1, 2, 7, 128, 300, 70_000]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    high = min(input_dim - 1, np.iinfo(dtype).max)
    shape = draw(
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
    ids = draw(hnp.arrays(dtype, shape, elements=st.integers(0, high)))
    return input_dim, ids


@settings(max_examples=100, deadline=None)
@given(ids_and_vocabulary(), st.booleans())
def test_lookup_equals_numpy_take(case, as_tensor):
    input_dim, ids = case
    layer, table = layer_for(input_dim)
    inputs = keras.ops.convert_to_tensor(ids) if as_tensor else ids
    out = to_numpy(layer(inputs))
    np.testing.assert_array_equal(out, table[ids])


def _bad_id_ranges(dtype, input_dim):
    info = np.iinfo(dtype)
    ranges = [(0, min(input_dim - 1, info.max))]
    if info.min < 0:
        ranges.append((max(info.min, -(2**40)), -1))
    if input_dim <= info.max:
        ranges.append((input_dim, min(info.max, 2**40)))
    return ranges


@st.composite
def mixed_ids(draw):
    """Ids of a backend-convertible dtype, each drawn valid or invalid with
    about even odds, so most batches of two or more ids are mixed."""
    input_dim = draw(st.sampled_from([1, 7, 300, 70_000]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    elements = st.one_of(
        *(
            st.integers(low, high)
            for low, high in _bad_id_ranges(dtype, input_dim)
        )
    )
    shape = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
    ids = draw(hnp.arrays(dtype, shape, elements=elements))
    return input_dim, ids


def _expected_message(layer, ids, input_dim):
    bad = (ids < 0) | (ids >= input_dim)
    position = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(bad.sum())
    return (
        f"Layer '{layer.name}' received an invalid id {int(ids[position])} "
        f"at position {position} ({count} invalid id{'s' if count > 1 else ''}"
        f" in all). Ids must be whole numbers in [0, input_dim) = "
        f"[0, {input_dim}). Set input_dim to the largest id + 1 (with "
        "mask_zero=True, id 0 is the padding id, so real ids start at 1), or "
        "fix the ids."
    )


@settings(max_examples=150, deadline=None)
@given(mixed_ids(), st.booleans())
def test_any_bad_id_raises_the_exact_error_and_good_ids_pass(case, as_tensor):
    input_dim, ids = case
    if as_tensor and backend() == "jax" and ids.dtype == "int64":
        # JAX without x64 converts int64 to int32: clipping keeps bad ids
        # bad, as every input_dim here is below 2**31.
        ids = np.clip(ids, -(2**31), 2**31 - 1).astype("int32")
    layer, table = layer_for(input_dim)
    inputs = keras.ops.convert_to_tensor(ids) if as_tensor else ids
    bad = (ids < 0) | (ids >= input_dim)
    if bad.any():
        with pytest.raises(ValueError) as error:
            layer(inputs)
        # Keras adds a note listing the call's arguments; the message is ours.
        assert _expected_message(layer, ids, input_dim) in str(error.value)
    else:
        np.testing.assert_array_equal(to_numpy(layer(inputs)), table[ids])
