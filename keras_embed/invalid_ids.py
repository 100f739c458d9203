"""Counting, showing and raising on the invalid ids compiled code reads.

Eager calls of keras_embed layers raise on an invalid id. Compiled calls
cannot raise on a value: they read the id as a zero vector and count it.
Where the count lives is the layer's `invalid_id_counter` argument:

- `"metric"` (the default): an `InvalidIdCount` metric owned by the layer.
  A metric is not a weight, so `layer.weights`, `get_weights()`,
  `count_params()`, `summary()` and the variables `stateless_call` takes
  equal `keras.layers.Embedding`'s. Keras shows every layer metric during
  `fit` and `evaluate`: the progress bar and `History` carry
  `"<layer name>/invalid_ids"`, the count of the epoch or of the
  evaluation, always (0 included: the keys of a compiled step's logs cannot
  depend on what it reads). So `evaluate()` returns a list
  `[loss, ..., count]` where Keras's layer gives the loss alone.
- `"variable"`: a non-trainable weight `invalid_id_count`, as keras_embed
  0.2.0 had: logs and `evaluate()` are Keras's, every stateless step
  carries the count (JAX `predict` and custom `stateless_call` loops
  included), but the layer holds that one weight more than Keras's.

Where a metric's count is updated, per backend:

- TensorFlow and PyTorch: in the layer's call; every compiled call counts,
  `predict` included.
- JAX: Keras's JAX trainer hands metric variables only to its metrics
  update, not to the model's forward pass (updating a metric inside `call`
  fails there: keras-team/keras#21639). So the layer's call records the
  step's count, and the metric adds it when the trainer asks for its result
  in the same compiled `fit` or `evaluate` step. JAX's `predict` runs no
  metrics update: it counts nothing in `"metric"` mode.
"""

import keras
from keras import ops

from keras_embed import _ids
from keras_embed._walk import walk_layers

COUNTERS = ("metric", "variable")


def check_counter(counter):
    # None is for a layer composed into another that validates the ids
    # itself (a HashedEmbedding's table): the outer layer counts.
    if counter is not None and counter not in COUNTERS:
        raise ValueError(
            f"`invalid_id_counter` must be one of {COUNTERS}, but received "
            f"{counter!r}. Pass 'metric' (the default: a metric shown in "
            "fit/evaluate logs) or 'variable' (a non-trainable weight)."
        )


class InvalidIdCount(keras.metrics.Metric):
    """The invalid ids one layer looked up as zero vectors.

    Two int32 counts: `result()` (what Keras logs) is the count since Keras
    last reset the model's metrics, which it does at the start of every
    `fit` epoch and every `evaluate`; `total` is the count since the layer
    was built or `reset_total()` (the layer's `invalid_id_count`).

    Args:
        layer_name: The layer's name: the log key is
            `"<layer_name>/invalid_ids"`.
    """

    def __init__(self, layer_name):
        super().__init__(name=f"{layer_name}/invalid_ids")
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype="int32", name="count"
        )
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype="int32", name="total"
        )
        self.deferred = []

    def update_state(self, count):
        count = ops.cast(count, "int32")
        if keras.backend.backend() == "jax":
            # Added by `result()` in the trainer's metrics update.
            self.deferred.append(count)
            return
        self._add(count)

    def _add(self, count):
        self.count.assign(self.count + count)
        self.total.assign(self.total + count)

    def result(self):
        deferred, self.deferred = self.deferred, []
        # Counts recorded by a traced call are added only inside a traced
        # metrics update; an eager call here can only find those of a trace
        # that ran no metrics update (JAX `predict`), which are dropped.
        if deferred and _ids.is_traced(self.count.value):
            self._add(ops.sum(ops.stack(deferred)))
        return ops.convert_to_tensor(self.count)

    def reset_state(self):
        # Keras calls this before every epoch and evaluation; the total
        # stays, and nothing recorded by an earlier trace survives it.
        self.deferred = []
        self.count.assign(0)

    def reset_total(self):
        self.reset_state()
        self.total.assign(0)


class InvalidIdCheck(keras.callbacks.Callback):
    """Raises `ValueError` after a batch in which a layer saw invalid ids.

    Compiled `fit`, `evaluate` and `predict` read an invalid id as a zero
    vector and count it (see `keras_embed.invalid_ids`); this callback stops
    them after the offending batch with a `ValueError` naming the layer, the
    count and the batch, with the same type and wording on every backend.

    For layers counting with a metric (the default) it reads the counts
    from the batch logs during `fit` and `evaluate`, at no extra cost, and
    the layer's total during `predict` (where JAX does not count). For
    layers counting with a variable it reads the total after every batch,
    which on JAX syncs the model's state. With `steps_per_execution > 1`,
    Keras calls callbacks once per execution: the batch named is the last
    one of that execution.

    Example:

    >>> model.fit(x, y, callbacks=[keras_embed.InvalidIdCheck()])
    """

    def __init__(self):
        super().__init__()
        self._counting = []
        self._seen = {}

    def _start(self, *_):
        self._counting = counting_layers(self.model)
        # Keras resets metrics right around these hooks; totals it keeps.
        self._seen = {
            id(layer): layer.invalid_id_count
            for layer in self._counting
            if layer.invalid_id_counter == "variable"
        }

    on_train_begin = _start
    on_epoch_begin = _start
    on_test_begin = _start

    def on_predict_begin(self, logs=None):
        self._counting = counting_layers(self.model)
        self._seen = {
            id(layer): layer.invalid_id_count for layer in self._counting
        }

    def on_train_batch_end(self, batch, logs=None):
        self._check_batch(batch, logs, "training")

    def on_test_batch_end(self, batch, logs=None):
        self._check_batch(batch, logs, "evaluation")

    def on_predict_batch_end(self, batch, logs=None):
        self.model  # noqa: B018 -- on JAX, reading it syncs the model state
        for layer in self._counting:
            self._check(layer, layer.invalid_id_count, batch, "prediction")

    def _check_batch(self, batch, logs, mode):
        for layer in self._counting:
            if layer.invalid_id_counter == "metric":
                count = (logs or {}).get(layer.invalid_id_metric.name)
                if count is None:
                    continue
                count = int(count)
            else:
                self.model  # noqa: B018 -- on JAX: syncs the model state
                count = layer.invalid_id_count
            self._check(layer, count, batch, mode)

    def _check(self, layer, count, batch, mode):
        new = count - self._seen.get(id(layer), 0)
        self._seen[id(layer)] = count
        if new > 0:
            raise ValueError(
                f"Layer '{layer.name}' looked up {new} invalid "
                f"id{'s' if new > 1 else ''} as zero vectors in {mode} "
                f"batch {batch}. {layer.valid_ids_rule}; calling the layer "
                "eagerly on the batch names the first invalid id and its "
                "position."
            )


def counting_layers(model):
    """The layers of `model` (nested ones included) that count invalid
    ids."""
    return [
        layer
        for layer in walk_layers(model)
        if getattr(layer, "invalid_id_counter", None) in COUNTERS
        and layer.built
    ]
