"""Builds the two layers under test on one shared weight matrix."""

import keras
import numpy as np
from keras import ops

import keras_embed


def weight_matrix(vocab, dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((vocab, dim), dtype="float32")


class UncheckedEmbedding(keras_embed.Embedding):
    """keras_embed.Embedding with its id checks removed: the same layer
    call, so `keras_embed / unchecked` isolates what the checks cost."""

    def _lookup(self, ids):
        ids = ops.cast(ids, self._index_dtype)
        outputs = ops.take(self.embeddings, ids, axis=0)
        return ops.cast(outputs, self.compute_dtype)


LAYER_CLASSES = {
    "keras_embed": keras_embed.Embedding,
    "keras": keras.layers.Embedding,
    "keras_embed_unchecked": UncheckedEmbedding,
}


def build(impl, weights):
    """A built embedding layer of kind `impl` holding `weights`."""
    vocab, dim = weights.shape
    layer = LAYER_CLASSES[impl](vocab, dim, embeddings_initializer="zeros")
    layer.build()
    layer.embeddings.assign(weights)
    return layer


def random_ids(vocab, shape, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, size=shape, dtype="int32")
