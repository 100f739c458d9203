"""Reads and in-place writes of the rows of row-sparse state.

The package's only module that touches a backend library, and only for
this: Keras 3 has no public in-place row update of a `keras.Variable`. On
TensorFlow and PyTorch, `keras.ops.scatter_update` returns a new tensor
and `Variable.assign` copies it back, so each update of 10,240 rows would
copy the whole table and each optimizer slot (docs/row_sparse.md,
"In-place row updates").

* TensorFlow: rows are read with `tf.gather` on the `tf.Variable` (a
  sparse read) and written with `tf.Variable.scatter_update`, in eager,
  `tf.function` and XLA code. A dense read (what `keras.ops.take` does)
  of a variable that has been updated sparsely copies the whole buffer.
* PyTorch: rows are written with `Tensor.index_copy_` on the variable's
  `torch.nn.Parameter`, eagerly and under `torch.compile`.
* Any other backend (JAX, where the trainer donates the state and XLA
  scatters in place), and wherever the fast path does not apply (a
  `tf.distribute` strategy, a value that is not the variable's own
  storage: mixed-precision autocast, a `StatelessScope` holding other
  values), takes the `keras.ops` path: `ops.take`, and `scatter_update`
  then `assign`.

The backend is imported inside the functions, after
`keras.backend.backend()` names it: importing keras_embed never imports a
backend library.
"""

import keras
from keras import ops

# True runs the `keras.ops` path on every backend (tests of the fallback).
FORCE_KERAS_OPS = False


def take_rows(variable, indices):
    """`variable[indices]` along axis 0, reading only those rows."""
    storage = native_storage(variable)
    if storage is not None and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(storage, indices)
    return ops.take(variable, indices, axis=0)


def write_rows(variable, indices, rows):
    """`variable[indices] = rows` for 1-D `indices`; repeated indices must
    carry equal rows (which one lands is unspecified)."""
    rows = ops.cast(rows, variable.dtype)
    storage = native_storage(variable)
    if storage is None:
        variable.assign(
            ops.scatter_update(
                variable.value, ops.expand_dims(indices, -1), rows
            )
        )
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        storage.scatter_update(tf.IndexedSlices(rows, indices))
    else:
        import torch

        with torch.no_grad():
            storage.index_copy_(0, ops.cast(indices, "int64"), rows)


def native_storage(variable):
    """The backend object holding `variable`'s values, written in place by
    `write_rows`; None where the `keras.ops` path is taken."""
    if FORCE_KERAS_OPS:
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_storage(variable)
    if backend == "torch":
        return _torch_storage(variable)
    return None


def _tensorflow_storage(variable):
    import tensorflow as tf

    # Distributed variables update per replica: leave them to Keras.
    if tf.distribute.has_strategy():
        return None
    value = variable.value
    # Autocast or a StatelessScope gives a tensor, not the variable.
    return value if isinstance(value, tf.Variable) else None


def _torch_storage(variable):
    import torch

    value = variable.value
    # A Keras variable's own storage is a Parameter; autocast and
    # StatelessScope values are plain tensors.
    return value if isinstance(value, torch.nn.Parameter) else None
