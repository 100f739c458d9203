"""Applying pending row updates from outside the layer."""

from typing import Any

import keras

from keras_embed._walk import walk_layers


def flush_model(model: Any) -> None:
    """Applies the pending row updates of every row-sparse table in `model`
    (walking nested models and layers)."""
    for layer in walk_layers(model):
        if getattr(layer, "sparse_optimizer", None) is not None:
            layer.flush()


class RowSparseFlush(keras.callbacks.Callback):
    """Applies pending row-sparse updates when `fit` ends.

    Every call of a row-sparse `Embedding` and every save already apply the
    last step's update; this callback is for reading the table directly
    (`layer.embeddings`, `model.get_weights()`) right after `fit`.
    """

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        flush_model(self.model)
