"""The padding id: a row that is zero, looks up as zero and never trains."""

import keras
import numpy as np
from keras import ops


def normalize_padding_id(padding_id, input_dim):
    """Returns `padding_id` as an int in [0, input_dim), or None.

    Negative values count from the end of the vocabulary, as in
    `torch.nn.Embedding(padding_idx=-1)`.
    """
    if padding_id is None:
        return None
    if isinstance(padding_id, (bool, np.bool_)) or not isinstance(
        padding_id, (int, np.integer)
    ):
        raise ValueError(
            "`padding_id` must be None or an integer id, but received "
            f"{padding_id!r} of type {type(padding_id).__name__}. Pass e.g. "
            "padding_id=0."
        )
    if not -input_dim <= padding_id < input_dim:
        raise ValueError(
            f"`padding_id` must be in [-input_dim, input_dim) = "
            f"[{-input_dim}, {input_dim}), but received {padding_id}. Pass "
            "the id of a row of the table (negative ids count from the end)."
        )
    return int(padding_id) % input_dim


def zero_row(table, padding_id):
    """`table` with row `padding_id` set to zeros."""
    table = ops.convert_to_tensor(table)
    row = ops.zeros((1, ops.shape(table)[1]), dtype=table.dtype)
    return ops.slice_update(table, (padding_id, 0), row)


class PaddingRowConstraint(keras.constraints.Constraint):
    """Applies `inner` (if any), then zeros the padding row.

    Keras applies a variable's constraint after every optimizer step, so
    the row stays zero whatever the optimizer, weight decay, regularizer or
    user constraint would do to it. It is attached to the variable only;
    the layer's config keeps the user's own constraint.
    """

    def __init__(self, padding_id, inner=None):
        self.padding_id = padding_id
        self.inner = keras.constraints.get(inner)

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return zero_row(w, self.padding_id)

    def get_config(self):
        return {
            "padding_id": self.padding_id,
            "inner": keras.constraints.serialize(self.inner),
        }


def keep_mask(ids, valid, padding_id):
    """`valid` (None: every id) with the positions of `padding_id` off.

    Returns None when every position is to be looked up.
    """
    if padding_id is None:
        return valid
    dtype = keras.backend.standardize_dtype(ids.dtype)
    if "int" in dtype and padding_id > np.iinfo(dtype).max:
        return valid
    padding = ops.convert_to_tensor(padding_id, dtype=ids.dtype)
    not_padding = ops.not_equal(ids, padding)
    if valid is None:
        return not_padding
    return ops.logical_and(valid, not_padding)


def without_padding_row(table, padding_id):
    """`table` whose padding row reads as zero and passes no gradient."""
    if padding_id is None:
        return table
    table = ops.convert_to_tensor(table)
    rows = ops.arange(ops.shape(table)[0], dtype="int32")
    return ops.where(ops.expand_dims(rows != padding_id, -1), table, 0)
