"""The layers and inputs the suites compare, built on one weight matrix."""

import keras
import numpy as np
from keras import ops

import keras_embed


def weight_matrix(vocab, dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((vocab, dim), dtype="float32")


def random_ids(vocab, shape, seed=1):
    """int32 ids as a backend tensor, on the default device."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=shape, dtype="int32")
    return ops.convert_to_tensor(ids)


def embedding(impl, weights, **kwargs):
    """A built layer of kind `impl` holding `weights`:

    - "keras": keras.layers.Embedding;
    - "keras_embed": keras_embed.Embedding (`kwargs` go to it);
    - "keras_embed_unchecked": the same lookup without the id checks.
    """
    vocab, dim = weights.shape
    kind = keras.layers.Embedding if impl == "keras" else keras_embed.Embedding
    layer = kind(vocab, dim, embeddings_initializer="zeros", **kwargs)
    layer.build()
    layer.embeddings.assign(weights)
    if impl == "keras_embed_unchecked":
        return Unchecked(layer)
    return layer


class Unchecked(keras.layers.Layer):
    """keras_embed's rows read without the id checks, through its public
    storage `layer.storage`: the same layer-call overhead, so
    `keras_embed / keras_embed_unchecked` is what the checks cost."""

    def __init__(self, embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding
        self.built = True

    def call(self, ids):
        rows = self.embedding.storage.rows(ops.cast(ids, "int32"))
        return ops.cast(rows, self.embedding.compute_dtype)


def uncounted(layer):
    """`layer` (a built keras_embed layer) with its invalid-id count update
    turned off, through the metric's public `update_state`; its unused
    count reduction is then dropped by every backend's compiler."""
    layer.invalid_id_metric.update_state = _ignore
    return layer


def _ignore(count):
    del count


def bare_take(weights, ids):
    """No layer and no id checks: the floor of any checked lookup."""
    return ops.take(weights, ids, axis=0)
