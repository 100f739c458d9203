"""Raising on the invalid ids that compiled code can only count."""

import keras
from keras import ops

from keras_embed import _ids
from keras_embed._walk import walk_layers


class InvalidIdCheck(keras.callbacks.Callback):
    """Raises `ValueError` after a batch in which a layer saw invalid ids.

    Eager calls of keras_embed layers raise on an invalid id (negative,
    `>= input_dim`, not a whole number). Compiled calls (`fit`, `evaluate`
    and `predict` on TensorFlow and JAX, torch with `jit_compile=True`, any
    `jit`) cannot raise on a value: they look the id up as a zero vector and
    add it to the layer's `invalid_id_count`. This callback reads those
    counts after every batch and stops `fit`, `evaluate` or `predict` with
    a `ValueError` naming the layer, the count and the batch, with the same
    type and wording on every backend.

    With `steps_per_execution > 1`, Keras calls callbacks once per
    execution: the batch named is the last one of that execution. Reading
    the counts costs a device-to-host read per batch (on JAX also a sync of
    the model's state): use it while developing a data pipeline, or
    read `layer.invalid_id_count` once per epoch instead.

    Example:

    >>> model.fit(x, y, callbacks=[keras_embed.InvalidIdCheck()])
    """

    def __init__(self):
        super().__init__()
        self._seen = {}

    def on_train_begin(self, logs=None):
        self._remember_counts()

    def on_test_begin(self, logs=None):
        self._remember_counts()

    def on_predict_begin(self, logs=None):
        self._remember_counts()

    def on_train_batch_end(self, batch, logs=None):
        self._check(batch, "training")

    def on_test_batch_end(self, batch, logs=None):
        self._check(batch, "evaluation")

    def on_predict_batch_end(self, batch, logs=None):
        self._check(batch, "prediction")

    def _counted_layers(self):
        return [
            layer
            for layer in walk_layers(self.model)
            if hasattr(layer, "reset_invalid_id_count")
        ]

    def _remember_counts(self):
        self._seen = {
            id(layer): layer.invalid_id_count
            for layer in self._counted_layers()
        }

    def _check(self, batch, mode):
        for layer in self._counted_layers():
            count = layer.invalid_id_count
            new = count - self._seen.get(id(layer), 0)
            self._seen[id(layer)] = count
            if new > 0:
                raise ValueError(
                    f"Layer '{layer.name}' looked up {new} invalid "
                    f"id{'s' if new > 1 else ''} as zero vectors in "
                    f"{mode} batch {batch}. Ids must be whole numbers in "
                    f"[0, input_dim) = [0, {layer.input_dim}). Set "
                    "input_dim to the largest id + 1, or fix the ids; "
                    "calling the layer eagerly on the batch names the first "
                    "invalid id and its position."
                )


class InvalidIdCounterMixin:
    """`Embedding`'s count of the invalid ids compiled calls look up as
    zeros (eager calls raise instead)."""

    def _add_invalid_id_counter(self):
        # A non-trainable variable, so compiled steps (JAX's stateless ones
        # too) carry it; never saved: files hold what Keras's layers hold.
        self._invalid_ids = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int32",
            name="invalid_id_count",
            trainable=False,
        )

    def _count_invalid_ids(self, keep):
        """Adds the misses of `keep` (None: all valid) to the count."""
        if keep is not None:
            self._invalid_ids.assign_add(_ids.count_invalid(keep))

    @property
    def invalid_id_count(self):
        """How many invalid ids this layer has looked up as zeros since it
        was built or last reset: compiled calls cannot raise on them. See
        `keras_embed.InvalidIdCheck`. 0 before the layer is built."""
        if not self.built:
            return 0
        return int(ops.convert_to_numpy(self._invalid_ids))

    def reset_invalid_id_count(self):
        """Sets `invalid_id_count` back to 0."""
        if self.built:
            self._invalid_ids.assign(0)
