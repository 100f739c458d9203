"""Small models built with keras_embed's layers or Keras's own, for the
quantization and LoRA tests that compare the two."""

import keras
import numpy as np

IDS = np.array([[1, 2, 3, 0], [5, 9, 9, 7]], dtype="int32")
MODES = [
    ("int8", None),
    ("int4", None),
    ("int4", -1),
    ("int4", 4),
]


def quantize(model, mode, block_size):
    if block_size is None:
        model.quantize(mode)
    else:
        config = keras.quantizers.Int4QuantizationConfig(block_size=block_size)
        model.quantize(config=config)


def gpt_like(cls, tie_weights=True, dim=8, **kwargs):
    """Token embedding, one hidden layer, tied (or untied) logits."""
    inputs = keras.Input((4,), dtype="int32")
    embedding = cls(10, dim, tie_weights=tie_weights, name="token", **kwargs)
    hidden = keras.layers.Dense(dim, name="dense")(embedding(inputs))
    return keras.Model(inputs, embedding(hidden, reverse=True))


def specs(layer):
    return [(w.name, tuple(w.shape), w.dtype) for w in layer.weights]


def copy_weights(source, target):
    """Whole-model `set_weights`, as between two Keras models: the two
    layers hold the same weights in the same order."""
    target.set_weights(source.get_weights())
