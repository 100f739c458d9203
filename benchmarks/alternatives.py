"""Lookups measured without a layer around them, as `fn(weights, ids,
input_dim)` in `keras.ops` only.

The proposed faster formulations of keras_embed's own lookup are measured
as a layer, `layers.AlternativeEmbedding`, so that they pay the same layer
call as the layer they would replace.
"""

from keras import ops


def bare_take(weights, ids, input_dim):
    """No id checks at all: the floor any checked lookup is measured on."""
    return ops.take(weights, ids, axis=0)


# name -> (function, modes it is measured in, backends that skip it)
ALTERNATIVES = {
    "bare_take": (bare_take, ("eager", "compiled", "compiled_xla"), ()),
}
