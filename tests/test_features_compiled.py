"""padding_id, max_norm, reverse and EmbeddingBag inside compiled functions.

One compiled function per backend (`tf.function(jit_compile=True)`,
`jax.jit` over `stateless_call`, `torch.compile`) runs every feature at once
and must reproduce the eager outputs; bad ids there give zero vectors.
"""

import keras
import numpy as np
import pytest

from keras_embed import EmbeddingBag
from keras_embed import ReversibleEmbedding
from tests.testing import backend
from tests.testing import to_numpy

IDS = np.array([[1, 0, 7], [3, 3, 0]], dtype="int32")
BAD_IDS = np.array([[1, 12, 7], [-2, 3, 0]], dtype="int32")
HIDDEN = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")


def make_layers():
    keras.utils.set_random_seed(3)
    embedding = ReversibleEmbedding(
        10, 4, padding_id=0, max_norm=0.05, logit_soft_cap=2.0,
        embeddings_initializer="normal",
    )  # fmt: skip
    bag = EmbeddingBag(10, 4, combiner="mean", padding_id=0)
    embedding.build()
    bag.build((None, 3))
    return embedding, bag


def run_all(embedding, bag, ids, hidden):
    return [embedding(ids), embedding(hidden, reverse=True), bag(ids)]


def compiled_outputs(embedding, bag, batches):
    if backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(jit_compile=True)(
            lambda ids, hidden: run_all(embedding, bag, ids, hidden)
        )
        return [fn(ids, HIDDEN) for ids in batches]
    if backend() == "jax":
        import jax

        def stateless(values_e, values_b, ids, hidden):
            outputs = []
            for layer, values, args in (
                (embedding, values_e, [(ids,), (hidden,)]),
                (bag, values_b, [(ids,)]),
            ):
                trainable, non_trainable = values
                for i, call_args in enumerate(args):
                    kwargs = {"reverse": True} if i == 1 else {}
                    out, _ = layer.stateless_call(
                        trainable, non_trainable, *call_args, **kwargs
                    )
                    outputs.append(out)
            return outputs

        fn = jax.jit(stateless)
        values = [
            (
                [v.value for v in layer.trainable_variables],
                [v.value for v in layer.non_trainable_variables],
            )
            for layer in (embedding, bag)
        ]
        return [fn(*values, ids, HIDDEN) for ids in batches]
    import torch

    # One compile for both batches: same shapes and dtypes.
    fn = torch.compile(lambda ids, hidden: run_all(embedding, bag, ids, hidden))
    return [
        fn(torch.as_tensor(ids), torch.as_tensor(HIDDEN)) for ids in batches
    ]


def test_features_compiled_match_eager_and_zero_bad_ids():
    embedding, bag = make_layers()
    eager = [to_numpy(x) for x in run_all(embedding, bag, IDS, HIDDEN)]
    good, bad = compiled_outputs(embedding, bag, [IDS, BAD_IDS])
    for compiled, expected in zip(good, eager, strict=True):
        np.testing.assert_allclose(to_numpy(compiled), expected, atol=1e-6)

    lookup, logits, pooled = (to_numpy(x) for x in bad)
    valid = (BAD_IDS >= 0) & (BAD_IDS < 10)
    np.testing.assert_array_equal(lookup[~valid], 0.0)
    np.testing.assert_allclose(lookup[valid], eager[0][valid], atol=1e-6)
    np.testing.assert_allclose(logits, eager[1], atol=1e-6)
    # Bad ids and the padding id 0 are left out of each bag's mean.
    table = to_numpy(bag.embedding.embeddings)
    expected_bags = [table[[1, 7]].mean(axis=0), table[[3]].mean(axis=0)]
    np.testing.assert_allclose(pooled, expected_bags, atol=1e-6)
    with pytest.raises(ValueError, match="invalid id 12"):
        embedding(BAD_IDS)
