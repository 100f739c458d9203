"""Argument checks shared by every module: each rule is written once."""

import math
from typing import Any

import numpy as np


def positive_int(value: Any, name: str, fix: str | None = None) -> int:
    """Returns `value` as an int, or raises ValueError saying why not."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise ValueError(
            f"`{name}` must be a positive integer, but received {value!r} "
            f"of type {type(value).__name__}. "
            + (fix or f"Pass a Python or NumPy int, e.g. {name}=1000.")
        )
    if value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer, but received {value!r}. "
            + (fix or "Pass a value of at least 1.")
        )
    return int(value)


def positive_number(
    value: Any, name: str, fix: str, minimum: float | None = None
) -> float:
    """Returns `value` as a finite float > 0 (or >= `minimum`).

    `fix` ends the error message: what to pass instead.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            f"`{name}` must be a number, but received {value!r} of type "
            f"{type(value).__name__}. {fix}"
        )
    rule = (
        "a positive finite number"
        if minimum is None
        else (f"a finite number >= {minimum}")
    )
    in_range = value > 0 if minimum is None else value >= minimum
    if not (math.isfinite(value) and in_range):
        raise ValueError(
            f"`{name}` must be {rule}, but received {value!r}. {fix}"
        )
    return float(value)


def index_dtype(input_dim: int) -> str:
    """The integer dtype that addresses every row of an `input_dim` table."""
    return "int32" if input_dim <= np.iinfo(np.int32).max else "int64"


def is_ragged(value: Any) -> bool:
    """Whether `value` is a TensorFlow RaggedTensor (duck-typed: the package
    never imports TensorFlow)."""
    return hasattr(value, "flat_values") and hasattr(value, "with_flat_values")
