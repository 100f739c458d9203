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


def gpt_like(cls, tie_weights=True, **kwargs):
    """Token embedding, one hidden layer, tied (or untied) logits."""
    inputs = keras.Input((4,), dtype="int32")
    embedding = cls(10, 8, tie_weights=tie_weights, name="token", **kwargs)
    hidden = keras.layers.Dense(8, name="dense")(embedding(inputs))
    return keras.Model(inputs, embedding(hidden, reverse=True))


def specs(layer):
    # keras_embed's one extra variable is its invalid-id counter, which no
    # file and no `layer.get_weights()` holds.
    return [
        (w.name, tuple(w.shape), w.dtype)
        for w in layer.weights
        if w.name != "invalid_id_count"
    ]


def copy_weights(source, target):
    """Layer by layer: a keras_embed layer's `get_weights` leaves out its
    counter, so it lines up with the built-in layer's; the models' own
    `get_weights` lists each keras_embed counter too."""
    for a, b in zip(source.layers, target.layers, strict=True):
        b.set_weights(a.get_weights())
