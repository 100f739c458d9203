"""Property tests: any shape, integer dtype and valid ids equal table[ids]."""

import keras
import numpy as np
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
    input_dim = draw(st.sampled_from([1, 2, 7, 128, 300]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    high = min(input_dim - 1, np.iinfo(dtype).max)
    shape = draw(
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
    ids = draw(hnp.arrays(dtype, shape, elements=st.integers(0, high)))
    return input_dim, ids


@settings(max_examples=40, deadline=None)
@given(ids_and_vocabulary(), st.booleans())
def test_lookup_equals_numpy_take(case, as_tensor):
    input_dim, ids = case
    layer, table = layer_for(input_dim)
    inputs = keras.ops.convert_to_tensor(ids) if as_tensor else ids
    out = to_numpy(layer(inputs))
    np.testing.assert_array_equal(out, table[ids])


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(
        "int64",
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
        elements=st.integers(-(2**40), 2**40),
    )
)
def test_any_bad_id_raises_and_good_ids_pass(ids):
    layer, table = layer_for(7)
    bad = (ids < 0) | (ids >= 7)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        try:
            layer(ids)
        except ValueError as error:
            assert f"invalid id {ids[first]} at position {first}" in str(error)
        else:
            raise AssertionError(f"bad ids {ids[bad]} did not raise")
    else:
        np.testing.assert_array_equal(to_numpy(layer(ids)), table[ids])
