"""Id validation shared by the embedding layers.

Every backend must give the same answer for the same ids, so all checks are
written here once: on the host with NumPy when the ids are NumPy/Python data,
and with `keras.ops` when they are backend tensors.
"""

import sys

import keras
import numpy as np
from keras import ops

from keras_embed._validation import index_dtype

# Largest integer n such that every integer in [0, n] is exact in the dtype.
_FLOAT_EXACT_LIMIT = {
    "bfloat16": 2**8,
    "float16": 2**11,
    "float32": 2**24,
    "float64": 2**53,
}


def check_float_ids_are_exact(dtype, input_dim, layer_name):
    """Refuses a floating id dtype that cannot hold every id exactly."""
    dtype = keras.backend.standardize_dtype(dtype)
    limit = _FLOAT_EXACT_LIMIT.get(dtype)
    if limit is None or input_dim - 1 <= limit:
        return
    raise ValueError(
        f"Layer '{layer_name}' received ids of dtype {dtype}, which holds "
        f"integers exactly only up to {limit}, but input_dim={input_dim} "
        f"needs ids up to {input_dim - 1}: larger ids would be rounded to a "
        "different row. Feed integer ids instead, e.g. make the first layer "
        f"`keras.Input(shape=..., dtype='int32')` rather than passing "
        "`input_length` (Keras gives the Input it builds for `input_length` "
        "the float dtype `keras.config.floatx()`)."
    )


def check_id_dtype(dtype, input_dim, layer_name):
    """Refuses non-numeric ids and floats too narrow to hold every id."""
    dtype = keras.backend.standardize_dtype(dtype)
    if "int" not in dtype and "float" not in dtype:
        raise_not_ids(dtype, layer_name)
    if "float" in dtype:
        check_float_ids_are_exact(dtype, input_dim, layer_name)
    return dtype


def raise_not_ids(dtype, layer_name):
    raise TypeError(
        f"Layer '{layer_name}' expects integer ids (or floats holding whole "
        f"numbers), but received ids of dtype {dtype}. Convert the ids to "
        "integers first, e.g. with `keras.layers.StringLookup` for strings."
    )


def host_ids(ids, input_dim, layer_name):
    """Validates NumPy/Python ids on the host and returns them as int32/int64.

    Host data is checked before any backend sees it: JAX without x64 would
    otherwise wrap int64 ids beyond int32 into valid rows on conversion.
    Backend and symbolic tensors are returned as they are.
    """
    if not isinstance(ids, (np.ndarray, np.generic, list, tuple, int, float)):
        return ids
    try:
        array = np.asarray(ids)
    except (ValueError, TypeError) as error:
        raise TypeError(
            f"Layer '{layer_name}' expects integer ids, but could not read "
            f"{type(ids).__name__} {ids!r:.80} as an array: {error}"
        ) from None
    if array.dtype.kind not in "iuf":
        raise_not_ids(_numpy_dtype_name(array.dtype), layer_name)
    if array.dtype.kind == "f":
        check_float_ids_are_exact(array.dtype.name, input_dim, layer_name)
    raise_for_invalid_ids(array, input_dim, layer_name)
    return array.astype(index_dtype(input_dim))


def _numpy_dtype_name(dtype):
    if dtype.kind in "USO":
        return "string" if dtype.kind in "US" else "object"
    return dtype.name


def check_ids(ids, input_dim, layer_name):
    """Checks backend-tensor ids: where they hold values (eager), raises on
    a bad one and returns None; while traced, returns the valid-id mask.

    Eager calls decide on the device and read back one small summary; the
    ids themselves reach the host only when one is bad, to name it.
    """
    dtype = check_id_dtype(ids.dtype, input_dim, layer_name)
    if _is_empty(ids):
        return None
    if is_traced(ids):
        return valid_id_mask(ids, input_dim)
    if _in_host_memory(ids):
        raise_for_invalid_ids(_host_values(ids), input_dim, layer_name)
        return None
    summary = ops.convert_to_numpy(_validity_summary(ids, dtype, input_dim))
    if _summary_is_valid(summary, dtype, input_dim):
        return None
    raise_for_invalid_ids(ops.convert_to_numpy(ids), input_dim, layer_name)
    return None


def _host_values(ids):
    """The values of eager ids in CPU memory as a NumPy array, a view of
    their memory where the backend gives one: Keras's `convert_to_numpy`
    copies them (23 us of a 64-id torch lookup's check; 30 us at 4096x50 on
    JAX). Ids never require a gradient."""
    backend = keras.backend.backend()
    if backend in ("torch", "tensorflow") and not getattr(
        ids, "requires_grad", False
    ):
        return ids.numpy()
    if backend == "jax":
        return np.asarray(ids)
    return ops.convert_to_numpy(ids)


def is_traced(x):
    """Whether the tensor `x` is being traced or compiled, so holds no
    values. Keras has no public flag for it; each backend's tensors tell,
    at no cost and without building any op."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        # Only eager tensors have values to read.
        return not hasattr(x, "numpy")
    if backend == "torch":
        return _torch_is_tracing(x)
    if backend == "jax":
        try:
            x.devices()
        except Exception:
            # A tracer has no devices: reading them raises.
            return True
        return False
    return concrete_value(x) is None


def _torch_is_tracing(x):
    """Whether torch.compile is tracing, or `x` is a shape-only (meta)
    tensor. Keras has already imported torch as its backend; nothing is
    imported here."""
    torch = sys.modules["torch"]
    return torch.compiler.is_compiling() or x.device.type == "meta"


def _in_host_memory(ids):
    """Whether eager `ids` live on the CPU, where reading them is (nearly)
    free: there NumPy's min/max beat `keras.ops` reductions, which cost
    0.1x-8x the lookup on CPU (JAX waits for all queued work, torch's int
    min/max are slow; benchmarks/, issue 10). Traced ids never get here
    (`check_ids` asks `is_traced` first)."""
    backend = keras.backend.backend()
    if backend == "torch":
        return ids.device.type == "cpu"
    if backend == "jax":
        return all(d.platform == "cpu" for d in ids.devices())
    return "CPU" in ids.device


def _host_ids_are_valid(values, input_dim):
    """Two NumPy reductions, cheaper than the per-id mask that names the
    first bad id."""
    if values.size == 0:
        return True
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.array_equal(np.floor(values), values)
    else:
        whole = True
    return whole and values.min() >= 0 and values.max() < input_dim


def _is_empty(ids):
    shape = tuple(ids.shape)
    return 0 in shape and None not in shape


def _validity_summary(ids, dtype, input_dim):
    if "int" in dtype:
        # Two reductions and one read: copying every id to the host cost
        # 4x the lookup on a GPU (benchmarks/, issue 10).
        return ops.stack([ops.min(ids), ops.max(ids)])
    return ops.all(valid_id_mask(ids, input_dim))


def _summary_is_valid(summary, dtype, input_dim):
    if "int" in dtype:
        low, high = (int(value) for value in summary)
        return low >= 0 and high < input_dim
    return bool(summary)


def count_invalid(keep):
    """The number of positions where the valid-id mask `keep` is False."""
    return ops.sum(ops.cast(ops.logical_not(keep), "int32"))


def valid_id_mask(ids, input_dim):
    """`keras.ops` mask of ids that name a row: whole numbers in range."""
    dtype = keras.backend.standardize_dtype(ids.dtype)
    if dtype == "uint64":
        # Keras promotes uint64 to uint32 in comparisons, which would wrap
        # huge ids into range; float64 keeps order and every id < 2**53.
        ids = ops.cast(ids, "float64")
        dtype = "float64"
    if "float" in dtype:
        whole = ops.equal(ops.floor(ids), ids)
        in_range = ops.logical_and(
            ops.greater_equal(ids, 0), ops.less(ids, float(input_dim))
        )
        return ops.logical_and(whole, in_range)
    valid = None
    if not dtype.startswith("uint"):
        valid = ops.greater_equal(ids, 0)
    # Comparing with input_dim in a dtype too narrow to hold it would
    # overflow the constant; every id of such a dtype is below input_dim.
    if input_dim <= np.iinfo(dtype).max:
        below = ops.less(ids, ops.convert_to_tensor(input_dim, dtype=dtype))
        valid = below if valid is None else ops.logical_and(valid, below)
    if valid is None:
        valid = ops.ones(ops.shape(ids), dtype="bool")
    return valid


def concrete_value(x):
    """`x` as a NumPy array, or None while it is being traced.

    Keras has no public "am I traced" flag, so the value is read and a
    tracer's refusal is the answer. torch.compile would instead split its
    graph at the read, so there the compiler's own flag is asked.
    """
    if keras.backend.backend() == "torch" and _torch_is_tracing(x):
        return None
    try:
        return ops.convert_to_numpy(x)
    except (NotImplementedError, TypeError):
        # tf.function graphs raise NotImplementedError, JAX tracers a
        # TypeError subclass: both mean the values do not exist yet.
        return None


def raise_for_invalid_ids(ids, input_dim, layer_name):
    """Raises ValueError naming the first bad id; NumPy ids only."""
    ids = np.asarray(ids)
    if _host_ids_are_valid(ids, input_dim):
        return
    if ids.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~((ids == np.floor(ids)) & (ids >= 0) & (ids < input_dim))
    else:
        bad = ids < 0
        if input_dim <= np.iinfo(ids.dtype).max:
            bad |= ids >= input_dim
    if not bad.any():
        return
    position = tuple(int(i) for i in np.argwhere(bad)[0])
    value = ids[position]
    count = int(bad.sum())
    if ids.dtype.kind == "f" and np.isfinite(value) and value == int(value):
        shown = int(value)
    else:
        shown = value.item()
    raise ValueError(
        f"Layer '{layer_name}' received an invalid id {shown!r} at position "
        f"{position} ({count} invalid id{'s' if count > 1 else ''} in all). "
        f"Ids must be whole numbers in [0, input_dim) = [0, {input_dim}). "
        f"Set input_dim to the largest id + 1 (with mask_zero=True, id 0 is "
        "the padding id, so real ids start at 1), or fix the ids."
    )
