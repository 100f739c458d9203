"""Row-sparse training for `keras_embed.Embedding`.

With `Embedding(..., sparse_optimizer=..., max_ids_per_step=...)` a training
step touches only the table rows of the ids in its batch, updated by a
row-wise optimizer that the layer owns, instead of the model's optimizer
rewriting the whole `(input_dim, output_dim)` table.

How one step flows, on every backend, in `keras.ops` only:

1. A training call looks the ids up in the table, which is a
   *non-trainable* variable (the model's optimizer never sees it), and adds
   `capture[:n] - stop_gradient(capture[:n])` (zeros) to the `n` looked-up
   rows. `capture` is a small `(max_ids_per_step, output_dim)` trainable
   variable marked `overwrite_with_gradient=True`, so the model's optimizer
   stores the gradient of the looked-up rows in it instead of updating it.
   The ids are written to a non-trainable variable, and a `tag` variable
   receives through a zero-valued loss term the step's serial number and
   the loss scale (so `LossScaleOptimizer` and skipped steps are handled).
2. The next call of the layer, training or not, first applies that pending
   gradient: it sums the gradients of duplicate ids, runs the row-wise
   optimizer on those rows only and scatters them back into the table and
   the optimizer state. `Embedding.flush()` does the same eagerly; saving
   flushes first.

The update of step t is therefore applied at the start of step t+1, before
its lookup: every forward pass, `predict`, `evaluate` and saved file sees the
fully updated table, and the training math equals the dense update.
"""

import keras
import numpy as np
from keras import ops

from keras_embed import _ids

# Step serial numbers cycle below this bound so float32 holds them exactly.
_SERIAL_PERIOD = 2**20


class RowOptimizer:
    """Base class of the row-wise optimizers of a row-sparse `Embedding`.

    Subclasses name their per-row state in `slots` (a dict of slot name to
    initializer) and implement `update`, which sees only the touched rows.
    """

    slots = {}

    def __init__(self, learning_rate):
        if isinstance(learning_rate, bool) or not isinstance(
            learning_rate, (int, float, np.floating, np.integer)
        ):
            raise ValueError(
                f"{type(self).__name__}: `learning_rate` must be a number, "
                f"but received {learning_rate!r}. Learning-rate schedules "
                "are not supported for row-sparse tables; pass a float."
            )
        self.learning_rate = float(learning_rate)

    def update(self, rows, grads, slots, step):
        """Returns `(new_rows, new_slots)` for the touched rows.

        `rows` and `grads` are `(k, output_dim)`, `slots` a dict of
        `(k, output_dim)` tensors, `step` the 1-based float32 count of
        updates this table has received, this one included.
        """
        raise NotImplementedError

    def get_config(self):
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_embed")
class SGD(RowOptimizer):
    """Plain SGD on the touched rows: `row -= learning_rate * grad`.

    Equals `keras.optimizers.SGD(learning_rate)` (no momentum) on the table.
    """

    def __init__(self, learning_rate=0.01):
        super().__init__(learning_rate)

    def update(self, rows, grads, slots, step):
        return rows - self.learning_rate * grads, {}


@keras.saving.register_keras_serializable(package="keras_embed")
class Adagrad(RowOptimizer):
    """Adagrad on the touched rows, with the formula and defaults of
    `keras.optimizers.Adagrad`: `acc += grad**2;
    row -= learning_rate * grad / sqrt(acc + epsilon)`."""

    def __init__(
        self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7
    ):
        super().__init__(learning_rate)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    @property
    def slots(self):
        return {
            "accumulator": keras.initializers.Constant(
                self.initial_accumulator_value
            )
        }

    def update(self, rows, grads, slots, step):
        accumulator = slots["accumulator"] + ops.square(grads)
        step_size = ops.sqrt(accumulator + self.epsilon)
        new_rows = rows - self.learning_rate * grads / step_size
        return new_rows, {"accumulator": accumulator}

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="keras_embed")
class LazyAdam(RowOptimizer):
    """Adam on the touched rows only; untouched rows keep their moments.

    The formula and defaults are those of `keras.optimizers.Adam`, with the
    bias correction of step `t`, the number of updates this table has
    received (as TensorFlow Addons' `LazyAdam`). When every row is touched
    in every step it equals `keras.optimizers.Adam`.
    """

    slots = {"momentum": "zeros", "velocity": "zeros"}

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7
    ):
        super().__init__(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def update(self, rows, grads, slots, step):
        m = slots["momentum"] + (grads - slots["momentum"]) * (1 - self.beta_1)
        v = slots["velocity"] + (ops.square(grads) - slots["velocity"]) * (
            1 - self.beta_2
        )
        beta_1_power = ops.power(self.beta_1, step)
        beta_2_power = ops.power(self.beta_2, step)
        alpha = self.learning_rate * ops.sqrt(1 - beta_2_power)
        alpha = alpha / (1 - beta_1_power)
        new_rows = rows - m * alpha / (ops.sqrt(v) + self.epsilon)
        return new_rows, {"momentum": m, "velocity": v}

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


_BY_NAME = {"sgd": SGD, "adagrad": Adagrad, "lazy_adam": LazyAdam}


def get(identifier):
    """A `RowOptimizer` from an instance, a name, a config or a Keras
    optimizer with a row-wise equivalent (SGD without momentum, Adagrad,
    Adam -> LazyAdam)."""
    if isinstance(identifier, RowOptimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, keras.optimizers.Optimizer):
        return _from_keras_optimizer(identifier)
    raise ValueError(
        "`sparse_optimizer` must be one of 'sgd', 'adagrad', 'lazy_adam', a "
        "keras_embed.row_sparse optimizer (SGD, Adagrad, LazyAdam) or a "
        "keras.optimizers SGD (no momentum), Adagrad or Adam, but received "
        f"{identifier!r}."
    )


def _from_keras_optimizer(optimizer):
    config = optimizer.get_config()
    name = type(optimizer).__name__
    unsupported = [
        key
        for key in (
            "weight_decay",
            "clipnorm",
            "clipvalue",
            "global_clipnorm",
            "use_ema",
            "gradient_accumulation_steps",
            "loss_scale_factor",
            "momentum",
            "nesterov",
            "amsgrad",
        )
        if config.get(key)
    ]
    if name not in ("SGD", "Adagrad", "Adam") or unsupported:
        raise ValueError(
            "`sparse_optimizer` accepts keras.optimizers SGD, Adagrad and Adam "
            "without weight decay, clipping, EMA, gradient accumulation, loss "
            "scaling, momentum, nesterov or amsgrad (they have no row-wise "
            f"equivalent here), but received {name} with "
            f"{', '.join(unsupported) or 'an unsupported class'}. Pass "
            "'sgd', 'adagrad', 'lazy_adam' or a keras_embed.row_sparse "
            "optimizer."
        )
    # Keras keeps the rate in a float32 variable: 0.2 reads 0.20000000298.
    learning_rate = float(str(np.float32(config["learning_rate"])))
    if name == "SGD":
        return SGD(learning_rate)
    if name == "Adagrad":
        return Adagrad(
            learning_rate,
            config["initial_accumulator_value"],
            config["epsilon"],
        )
    return LazyAdam(
        learning_rate, config["beta_1"], config["beta_2"], config["epsilon"]
    )


def serialize(optimizer):
    return keras.saving.serialize_keras_object(optimizer)


def check_max_ids_per_step(value):
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value <= 0
    ):
        raise ValueError(
            "A row-sparse Embedding (`sparse_optimizer` set) needs "
            "`max_ids_per_step`, a positive integer bounding the ids one "
            "training call looks up (batch size x ids per example, "
            f"duplicates included), but received {value!r}. Pass e.g. "
            "max_ids_per_step=batch_size * sequence_length."
        )
    return int(value)


def refuse_regularizer(regularizer):
    if regularizer is not None:
        raise ValueError(
            "`embeddings_regularizer` is not supported with "
            "`sparse_optimizer`: it would send a gradient to every row of "
            "the table on every step, which is what row-sparse training "
            f"avoids. Received {regularizer!r}. Regularize the looked-up "
            "vectors instead (`activity_regularizer=`), or train without "
            "`sparse_optimizer`."
        )


def check_tied_reverse(layer, training):
    if training and layer.trainable:
        raise ValueError(
            f"Layer '{layer.name}' has `sparse_optimizer` and "
            "`tie_weights=True`: a training call with `reverse=True` would "
            "need a gradient for every row of the table, which row-sparse "
            "training does not compute. Use `tie_weights=False` (a separate "
            "output matrix trained by the model's optimizer), or call "
            "`reverse=True` only outside training."
        )


class RowSparseTable:
    """The variables and the update of one row-sparse embedding table."""

    def __init__(self, layer):
        self.layer = layer
        self.optimizer = layer.sparse_optimizer
        self.sentinel = layer.input_dim
        max_ids = layer.max_ids_per_step
        dim = layer.output_dim
        index_dtype = layer._index_dtype
        self.capture = layer.add_weight(
            shape=(max_ids, dim),
            initializer="zeros",
            name="row_gradients",
            trainable=True,
            overwrite_with_gradient=True,
        )
        self.tag = layer.add_weight(
            shape=(2,),
            initializer="zeros",
            name="row_gradients_tag",
            trainable=True,
            overwrite_with_gradient=True,
        )
        self.step_ids = layer.add_weight(
            shape=(max_ids,),
            initializer=keras.initializers.Constant(self.sentinel),
            dtype=index_dtype,
            name="step_ids",
            trainable=False,
        )
        self.serial = self._counter("step_serial")
        self.applied_serial = self._counter("applied_serial")
        self.iterations = self._counter("iterations")
        self.slots = {
            name: layer.add_weight(
                shape=(layer.input_dim, dim),
                initializer=initializer,
                name=name,
                trainable=False,
            )
            for name, initializer in self.optimizer.slots.items()
        }

    def _counter(self, name):
        return self.layer.add_weight(
            shape=(), initializer="zeros", dtype="int32", name=name,
            trainable=False,
        )  # fmt: skip

    def lookup(self, ids, valid, training):
        """Applies the pending update, then looks `ids` up; in training,
        also captures the rows' gradient. `valid` is None when all ids are
        valid, else a mask (bad ids read zeros and get no gradient)."""
        self.apply_pending()
        table = self.layer.embeddings
        index_dtype = self.layer._index_dtype
        if valid is not None:
            ids = ops.where(valid, ids, 0)
        ids = ops.cast(ids, index_dtype)
        rows = ops.take(table, ids, axis=0)
        if training and self.layer.trainable:
            rows = rows + self._capture(ids, valid)
        if valid is not None:
            rows = ops.where(ops.expand_dims(valid, -1), rows, 0)
        return rows

    def _capture(self, ids, valid):
        count = _static_size(ids)
        max_ids = self.layer.max_ids_per_step
        if count is not None and count > max_ids:
            raise ValueError(
                f"Layer '{self.layer.name}' looked up {count} ids (ids of "
                f"shape {tuple(ids.shape)}) in one training call, but was "
                f"built with max_ids_per_step={max_ids}. Use smaller "
                "batches or a larger max_ids_per_step."
            )
        flat = ops.reshape(ids, (-1,))
        if valid is not None:
            flat = ops.where(ops.reshape(valid, (-1,)), flat, self.sentinel)
        count = ops.shape(flat)[0]
        positions = ops.expand_dims(ops.arange(count, dtype="int32"), -1)
        self.step_ids.assign(
            ops.scatter_update(
                ops.full((max_ids,), self.sentinel, dtype=flat.dtype),
                positions,
                flat,
            )
        )
        serial = ops.mod(self.serial.value, _SERIAL_PERIOD) + 1
        self.serial.assign(serial)
        # Zero-valued; its gradient writes [loss scale, loss scale * serial]
        # into `tag`, so the next call knows whose gradient `capture` holds.
        weights = ops.stack(
            [ops.ones((), "float32"), ops.cast(serial, "float32")]
        )
        tag = self.tag - ops.stop_gradient(self.tag)
        self.layer.add_loss(ops.sum(tag * weights))
        capture = self.capture - ops.stop_gradient(self.capture)
        capture = ops.slice(capture, (0, 0), (count, self.layer.output_dim))
        capture = ops.reshape(capture, (*ops.shape(ids), -1))
        return ops.cast(capture, self.layer.embeddings.dtype)

    def pending(self):
        tag = ops.stop_gradient(self.tag.value)
        scale = tag[0]
        tagged = ops.round(tag[1] / ops.maximum(scale, 1e-30))
        return ops.logical_and(
            ops.logical_and(
                ops.greater(scale, 0),
                ops.equal(tagged, ops.cast(self.serial.value, "float32")),
            ),
            ops.not_equal(self.applied_serial.value, self.serial.value),
        )

    def apply_pending(self):
        pending = self.pending()
        flag = _ids.concrete_value(pending)
        if flag is not None and not flag:
            return
        # Compiled code cannot branch on `pending`; it runs the update with
        # every row masked out, which rewrites one row with itself.
        self._apply(pending)

    def _apply(self, pending):
        ids = self.step_ids.value
        # Within a traced step these reads are the previous step's values:
        # the update must not send this step's gradient back into them.
        scale = ops.maximum(ops.stop_gradient(self.tag.value)[0], 1e-30)
        grads = ops.stop_gradient(self.capture.value) / scale
        unique_ids, summed = _sum_duplicates(ids, grads, self.sentinel)
        valid = ops.logical_and(ops.less(unique_ids, self.sentinel), pending)
        # Unused slots rewrite the first slot's row with the first slot's
        # new values, so the scatter's duplicate indices agree.
        first = ops.where(valid[0], unique_ids[0], 0)
        targets = ops.cast(ops.where(valid, unique_ids, first), ids.dtype)
        step = self.iterations.value + ops.cast(pending, "int32")
        table = self.layer.embeddings
        rows = ops.take(table, targets, axis=0)
        slot_rows = {
            name: ops.take(slot, targets, axis=0)
            for name, slot in self.slots.items()
        }
        new_rows, new_slot_rows = self.optimizer.update(
            rows, summed, slot_rows, ops.cast(ops.maximum(step, 1), "float32")
        )
        constraint = self.layer.embeddings_constraint
        if constraint is not None:
            new_rows = constraint(new_rows)
        targets = ops.expand_dims(targets, -1)
        self._scatter(table, targets, valid, rows, new_rows)
        for name, slot in self.slots.items():
            self._scatter(
                slot, targets, valid, slot_rows[name], new_slot_rows[name]
            )
        self.iterations.assign(step)
        self.applied_serial.assign(
            ops.where(pending, self.serial.value, self.applied_serial.value)
        )

    @staticmethod
    def _scatter(variable, targets, valid, old, new):
        new = ops.cast(new, variable.dtype)
        filler = ops.where(valid[0], new[:1], old)
        new = ops.where(ops.expand_dims(valid, -1), new, filler)
        variable.assign(ops.scatter_update(variable.value, targets, new))


def _sum_duplicates(ids, grads, sentinel):
    """Sorted unique ids (padded with `sentinel`) and their summed grads."""
    # sort + searchsorted: JAX's argsort is ~20x slower than its sort on CPU.
    sorted_ids = ops.sort(ids)
    starts = ops.concatenate(
        [
            ops.ones((1,), dtype="bool"),
            ops.not_equal(sorted_ids[1:], sorted_ids[:-1]),
        ]
    )
    segments = ops.cumsum(ops.cast(starts, "int32")) - 1
    size = ops.shape(ids)[0]
    unique_ids = ops.scatter_update(
        ops.full((size,), sentinel, dtype=ids.dtype),
        ops.expand_dims(segments, -1),
        sorted_ids,
    )
    slots = ops.searchsorted(unique_ids, ids)
    summed = ops.segment_sum(grads, slots, num_segments=size)
    return unique_ids, summed


def _static_size(ids):
    size = 1
    for dim in ids.shape:
        if dim is None:
            return None
        size *= int(dim)
    return size


def flush_model(model):
    """Applies the pending row updates of every row-sparse Embedding in
    `model` (walking nested models and layers)."""
    for layer in _walk(model):
        if getattr(layer, "sparse_optimizer", None) is not None:
            layer.flush()


def _walk(layer, seen=None):
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    for child in getattr(layer, "layers", None) or ():
        yield from _walk(child, seen)


class RowSparseFlush(keras.callbacks.Callback):
    """Applies pending row-sparse updates when `fit` ends.

    Every call of a row-sparse `Embedding` and every save already apply the
    last step's update; this callback is for reading the table directly
    (`layer.embeddings`, `model.get_weights()`) right after `fit`.
    """

    def on_train_end(self, logs=None):
        flush_model(self.model)
