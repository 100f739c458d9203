"""Builds the two layers under test on one shared weight matrix."""

import keras
import numpy as np
from keras import ops

import keras_embed
from keras_embed import _ids


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


class AlternativeEmbedding(keras_embed.Embedding):
    """keras_embed.Embedding with the two `keras.ops` formulations this
    benchmark proposes (integer ids only; others take the shipped path).

    Eager: the ids are checked by two reductions, `min >= 0 and max <
    input_dim`, still one bool read on the host, instead of an elementwise
    mask (two compares, an `and`) reduced by `all`.
    Traced: `cond(all(valid), take, masked take)`, so that with valid ids
    the output is written once, without the `where` over the output. Not
    on torch: torch.compile re-traces Keras' `cond` on every call.
    """

    def _lookup(self, ids):
        dtype = keras.backend.standardize_dtype(ids.dtype)
        if "int" not in dtype or dtype.startswith("uint"):
            return super()._lookup(ids)
        in_range = ops.logical_and(
            ops.greater_equal(ops.min(ids), 0),
            ops.less(ops.max(ids), self.input_dim),
        )
        all_valid = _ids.concrete_value(in_range)
        if all_valid is None:
            outputs = self._traced_lookup(ids)
        elif all_valid:
            outputs = self._take(ids)
        else:
            _ids.raise_for_invalid_ids(
                ops.convert_to_numpy(ids), self.input_dim, self.name
            )
        return ops.cast(outputs, self.compute_dtype)

    def _take(self, ids):
        ids = ops.cast(ids, self._index_dtype)
        return ops.take(self.embeddings, ids, axis=0)

    def _traced_lookup(self, ids):
        valid = _ids.valid_id_mask(ids, self.input_dim)
        if keras.backend.backend() == "torch":
            return self._masked_lookup(ids, valid)
        return ops.cond(
            ops.all(valid),
            lambda: self._take(ids),
            lambda: self._masked_lookup(ids, valid),
        )


LAYER_CLASSES = {
    "keras_embed": keras_embed.Embedding,
    "keras": keras.layers.Embedding,
    "keras_embed_unchecked": UncheckedEmbedding,
    "keras_embed_alternative": AlternativeEmbedding,
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
