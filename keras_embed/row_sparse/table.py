"""`RowSparseTable`: the variables and the deferred update of one
row-sparse embedding table.

How one step flows, on every backend, in `keras.ops` (rows are read and
written in place through `_inplace`, on TensorFlow and PyTorch):

1. A training call looks the ids up in the table, which is a
   *non-trainable* variable (the model's optimizer never sees it), and
   `RowSparseStorage.training_rows` adds
   `capture[:n] - stop_gradient(capture[:n])` (zeros) to the `n` looked-up
   rows. `capture` is a small `(max_ids_per_step, output_dim)` trainable
   variable marked `overwrite_with_gradient=True`, so the model's optimizer
   stores the gradient of the looked-up rows in it instead of updating it.
   The ids are written to a non-trainable variable, and a `tag` variable
   receives through a zero-valued loss term the step's serial number and
   the loss scale (so `LossScaleOptimizer` and skipped steps are handled).
2. The next lookup, training or not, first applies that pending gradient:
   it sums the gradients of duplicate ids, runs the row-wise optimizer on
   those rows only and writes them back into the table and the optimizer
   state. `flush()` does the same eagerly; the layer flushes before saving.

The update of step t is therefore applied at the start of step t+1, before
its lookup: every forward pass, `predict`, `evaluate` and saved file sees the
fully updated table, and the training math equals the dense update.
"""

import keras
from keras import ops

from keras_embed import _ids
from keras_embed._validation import positive_int
from keras_embed.row_sparse import _inplace

# Step serial numbers cycle below this bound so float32 holds them exactly.
_SERIAL_PERIOD = 2**20

# A table whose `input_dim` is at most this many times `max_ids_per_step`
# is updated whole, with untouched rows masked out, instead of sorting,
# gathering and scattering the touched rows: at V=1e4 with 10,240 ids per
# step (JAX, CPU, Adam, `fit`) that measured 3.1 vs 6.5 ms per step; at
# V=4e4 both took the same time, and at V=1e5 the masked update was 5x
# slower. Set it to 0 to always update row by row.
WHOLE_TABLE_UPDATE_RATIO = 2


def check_max_ids_per_step(value):
    return positive_int(
        value,
        "max_ids_per_step",
        "A row-sparse Embedding (`sparse_optimizer` set) needs it to bound "
        "the ids one training call looks up (batch size x ids per example, "
        "duplicates included). Pass e.g. "
        "max_ids_per_step=batch_size * sequence_length.",
    )


def check_slot_layouts(embeddings, slots):
    """Refuses optimizer slots laid out unlike the table under a
    `keras.distribution`: a replicated slot would put a whole-table copy
    on every device and gather the sharded rows on every update."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return
    table_axes = tuple(distribution.get_variable_layout(embeddings).axes)
    layer_path = embeddings.path.rsplit("/", 1)[0]
    for slot in slots.values():
        # A slot of one value per row is sharded like the table's rows.
        expected = table_axes[: len(slot.shape)]
        found = tuple(distribution.get_variable_layout(slot).axes)
        if found == expected:
            continue
        if len(expected) == len(table_axes):
            names = "|".join(["embeddings", *slots])
            key = f'layout_map[".*{layer_path}/({names})"] = {expected}'
        else:
            key = f'layout_map[".*{slot.path}"] = {expected}'
        raise ValueError(
            f"The row-sparse optimizer slot '{slot.path}' has layout "
            f"{found} but its table '{embeddings.path}' has {table_axes}: "
            "the slots must be sharded like the table. Give the LayoutMap "
            f"a key matching the table and its slots, e.g. {key}."
        )


class RowSparseTable:
    """A table trained row by row by its own row-wise optimizer.

    Args:
        embeddings: The `(input_dim, output_dim)` variable, non-trainable.
        optimizer: A `keras_embed.row_sparse.RowOptimizer`.
        max_ids_per_step: The most ids one training call may look up.
        index_dtype: "int32" or "int64", the dtype of row indices.
        add_weight: The owning layer's `add_weight`, so that the state
            created here is tracked, saved and loaded with the layer.
        add_loss: The owning layer's `add_loss` (for the step's tag).
        constraint: Optional constraint applied to every updated row.
        name: The owning layer's name, for error messages.

    Attributes:
        slots: Dict of the optimizer state variables by slot name, each
            `(input_dim, output_dim)`, or `(input_dim,)` for a slot of one
            value per row (`optimizer.slot_shape`).
        iterations: int32 variable, the number of updates applied.
    """

    def __init__(
        self,
        embeddings,
        optimizer,
        max_ids_per_step,
        index_dtype,
        add_weight,
        add_loss,
        constraint=None,
        name="embedding",
    ):
        self.embeddings = embeddings
        self.optimizer = optimizer
        self.max_ids_per_step = max_ids_per_step
        self.index_dtype = index_dtype
        self.constraint = constraint
        self.name = name
        self._add_loss = add_loss
        input_dim, output_dim = embeddings.shape
        self.sentinel = input_dim
        self.whole_table_update = (
            input_dim <= WHOLE_TABLE_UPDATE_RATIO * max_ids_per_step
        )
        self.capture = add_weight(
            shape=(max_ids_per_step, output_dim),
            initializer="zeros",
            name="row_gradients",
            trainable=True,
            overwrite_with_gradient=True,
        )
        self.tag = add_weight(
            shape=(2,),
            initializer="zeros",
            name="row_gradients_tag",
            trainable=True,
            overwrite_with_gradient=True,
        )
        self.step_ids = add_weight(
            shape=(max_ids_per_step,),
            initializer=keras.initializers.Constant(self.sentinel),
            dtype=index_dtype,
            name="step_ids",
            trainable=False,
        )
        counters = {}
        for counter in ("step_serial", "applied_serial", "iterations"):
            counters[counter] = add_weight(
                shape=(), initializer="zeros", dtype="int32", name=counter,
                trainable=False,
            )  # fmt: skip
        self.serial = counters["step_serial"]
        self.applied_serial = counters["applied_serial"]
        self.iterations = counters["iterations"]
        self.slots = {
            name: add_weight(
                shape=(input_dim, *optimizer.slot_shape(name, output_dim)),
                initializer=initializer,
                name=name,
                trainable=False,
            )
            for name, initializer in optimizer.slots.items()
        }
        check_slot_layouts(embeddings, self.slots)

    def flush(self):
        pending = self._pending()
        flag = _ids.concrete_value(pending)
        if flag is not None and not flag:
            return
        # Compiled code cannot branch on `pending`; it runs the update with
        # every row masked out, which rewrites one row with itself.
        self._apply(pending)

    def read_rows(self, ids):
        """The rows of valid integer `ids`. A table written in place is
        read row by row: on TensorFlow a dense read of such a variable
        copies all of it."""
        native = _inplace.native_storage(self.embeddings) is not None
        if self.whole_table_update or not native:
            return ops.take(self.embeddings, ids, axis=0)
        return _inplace.take_rows(self.embeddings, ids)

    def capture_gradient(self, ids, keep):
        """Zeros shaped like the rows of `ids` whose gradient lands in
        `capture`; positions outside `keep` capture under the sentinel id,
        which the update skips. Also records the step's ids and tag."""
        count = _static_size(ids)
        if count is not None and count > self.max_ids_per_step:
            raise ValueError(
                f"Layer '{self.name}' looked up {count} ids (ids of shape "
                f"{tuple(ids.shape)}) in one training call, but was built "
                f"with max_ids_per_step={self.max_ids_per_step}. Use smaller "
                "batches or a larger max_ids_per_step."
            )
        flat = ops.reshape(ops.cast(ids, self.index_dtype), (-1,))
        if keep is not None:
            flat = ops.where(ops.reshape(keep, (-1,)), flat, self.sentinel)
        count = ops.shape(flat)[0]
        positions = ops.expand_dims(ops.arange(count, dtype="int32"), -1)
        self.step_ids.assign(
            ops.scatter_update(
                ops.full(
                    (self.max_ids_per_step,), self.sentinel, dtype=flat.dtype
                ),
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
        self._add_loss(ops.sum(tag * weights))
        capture = self.capture - ops.stop_gradient(self.capture)
        output_dim = self.embeddings.shape[1]
        capture = ops.slice(capture, (0, 0), (count, output_dim))
        capture = ops.reshape(capture, (*ops.shape(ids), -1))
        return ops.cast(capture, self.embeddings.dtype)

    def _pending(self):
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

    def _gradients(self):
        # Within a traced step these reads are the previous step's values:
        # the update must not send this step's gradient back into them.
        scale = ops.maximum(ops.stop_gradient(self.tag.value)[0], 1e-30)
        return self.step_ids.value, ops.stop_gradient(
            self.capture.value
        ) / scale

    def _apply(self, pending):
        if self.whole_table_update:
            self._apply_whole_table(pending)
        else:
            self._apply_rows(pending)
        self.applied_serial.assign(
            ops.where(pending, self.serial.value, self.applied_serial.value)
        )

    def _apply_whole_table(self, pending):
        ids, grads = self._gradients()
        # Segment `sentinel` collects the unused positions and is dropped.
        size = self.sentinel + 1
        summed = _segment_sum(grads, ids, size)[:-1]
        counts = _segment_sum(ops.ones_like(ids, "float32"), ids, size)[:-1]
        touched = ops.logical_and(ops.greater(counts, 0), pending)
        step = self.iterations.value + ops.cast(pending, "int32")
        rows = self.embeddings.value
        slot_rows = {name: slot.value for name, slot in self.slots.items()}
        new_rows, new_slot_rows = self.optimizer.update(
            rows, summed, slot_rows, ops.cast(ops.maximum(step, 1), "float32")
        )
        if self.constraint is not None:
            new_rows = self.constraint(new_rows)
        _where(self.embeddings, touched, new_rows, rows)
        for name, slot in self.slots.items():
            _where(slot, touched, new_slot_rows[name], slot_rows[name])
        self.iterations.assign(step)

    def _apply_rows(self, pending):
        ids, grads = self._gradients()
        unique_ids, summed = _sum_duplicates(ids, grads, self.sentinel)
        valid = ops.logical_and(ops.less(unique_ids, self.sentinel), pending)
        # Unused slots rewrite the first slot's row with the first slot's
        # new values, so the scatter's duplicate indices agree.
        first = ops.where(valid[0], unique_ids[0], 0)
        targets = ops.cast(ops.where(valid, unique_ids, first), ids.dtype)
        step = self.iterations.value + ops.cast(pending, "int32")
        rows = _inplace.take_rows(self.embeddings, targets)
        slot_rows = {
            name: _inplace.take_rows(slot, targets)
            for name, slot in self.slots.items()
        }
        new_rows, new_slot_rows = self.optimizer.update(
            rows, summed, slot_rows, ops.cast(ops.maximum(step, 1), "float32")
        )
        if self.constraint is not None:
            new_rows = self.constraint(new_rows)
        _scatter(self.embeddings, targets, valid, rows, new_rows)
        for name, slot in self.slots.items():
            _scatter(slot, targets, valid, slot_rows[name], new_slot_rows[name])
        self.iterations.assign(step)


def _segment_sum(values, ids, size):
    if keras.backend.backend() != "torch":
        return ops.segment_sum(values, ids, num_segments=size)
    # Keras's torch segment_sum expands the ids to one int64 per element:
    # an accumulating scatter measured 11.7 vs 22.5 ms per `fit` step (V=1e4).
    zeros = ops.zeros((size, *values.shape[1:]), values.dtype)
    return ops.scatter_update(
        zeros, ops.expand_dims(ids, -1), values, reduction="add"
    )


def _where(variable, touched, new, old):
    touched = ops.reshape(touched, (-1,) + (1,) * (len(variable.shape) - 1))
    variable.assign(ops.where(touched, ops.cast(new, variable.dtype), old))


def _scatter(variable, targets, valid, old, new):
    new = ops.cast(new, variable.dtype)
    filler = ops.where(valid[0], new[:1], old[:1])
    valid = ops.reshape(valid, (-1,) + (1,) * (len(new.shape) - 1))
    _inplace.write_rows(variable, targets, ops.where(valid, new, filler))


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
    summed = _segment_sum(grads, slots, size)
    return unique_ids, summed


def _static_size(ids):
    size = 1
    for dim in ids.shape:
        if dim is None:
            return None
        size *= int(dim)
    return size
