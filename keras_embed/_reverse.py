"""The reverse call: hidden states to logits over the vocabulary."""

import math

import keras
import numpy as np
from keras import ops


def check_logit_soft_cap(logit_soft_cap):
    if logit_soft_cap is None:
        return None
    if isinstance(logit_soft_cap, bool) or not isinstance(
        logit_soft_cap, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            "`logit_soft_cap` must be None or a positive number, but "
            f"received {logit_soft_cap!r} of type "
            f"{type(logit_soft_cap).__name__}."
        )
    if not (math.isfinite(logit_soft_cap) and logit_soft_cap > 0):
        raise ValueError(
            "`logit_soft_cap` must be a positive finite number, but "
            f"received {logit_soft_cap!r}. Pass e.g. logit_soft_cap=30.0, "
            "or None for plain logits."
        )
    return float(logit_soft_cap)


def check_reverse_dtype(reverse_dtype):
    if reverse_dtype is None:
        return None
    try:
        dtype = keras.backend.standardize_dtype(reverse_dtype)
    except ValueError:
        dtype = None
    if dtype is None or "float" not in dtype:
        raise ValueError(
            "`reverse_dtype` must be None (the layer's compute dtype) or a "
            f"floating dtype name, but received {reverse_dtype!r}. Pass "
            "e.g. reverse_dtype='float32' for float32 logits under mixed "
            "precision."
        )
    return dtype


def check_hidden_shape(shape, output_dim, layer_name):
    if len(shape) == 0 or shape[-1] not in (None, output_dim):
        raise ValueError(
            f"Layer '{layer_name}' called with reverse=True expects inputs "
            f"whose last axis is output_dim={output_dim}, but received "
            f"shape {tuple(shape)}. Pass hidden states of shape "
            f"(..., {output_dim})."
        )


def logits(hidden, kernel, dtype, logit_soft_cap):
    """`hidden @ kernel` in `dtype`, optionally soft-capped.

    `kernel` is (output_dim, input_dim).
    """
    result = ops.matmul(ops.cast(hidden, dtype), ops.cast(kernel, dtype))
    if logit_soft_cap is not None:
        result = ops.tanh(result / logit_soft_cap) * logit_soft_cap
    return result
