"""Row-wise optimizers: they update only the rows a training step touched.

Each sees the touched rows, their summed gradients and their optimizer
state, and returns the new rows and state; `RowSparseTable` gathers and
scatters them.
"""

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_embed._validation import positive_number


class RowOptimizer:
    """Base class of the row-wise optimizers of a row-sparse `Embedding`.

    Subclasses name their per-row state in `slots` (a dict of slot name to
    initializer) and implement `update`, which sees only the touched rows.
    A slot holds one value per table element unless `slot_shape` says
    otherwise (e.g. one value per row, `RowwiseAdagrad`).
    """

    @property
    def slots(self) -> dict[str, Any]:
        """Slot name -> initializer of the per-row state (none here)."""
        return {}

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = positive_number(
            learning_rate,
            "learning_rate",
            f"{type(self).__name__} takes a float: learning-rate schedules "
            "are not supported for row-sparse tables.",
            minimum=0,
        )

    def slot_shape(self, name: str, output_dim: int) -> tuple[int, ...]:
        """The shape of one row's share of slot `name`: `(output_dim,)`
        (the default), or `()` for one value per row."""
        return (output_dim,)

    def update(
        self, rows: Any, grads: Any, slots: dict[str, Any], step: Any
    ) -> tuple[Any, dict[str, Any]]:
        """Returns `(new_rows, new_slots)` for the touched rows.

        `rows` and `grads` are `(k, output_dim)`, `slots` a dict of
        `(k, *slot_shape(name, output_dim))` tensors, `step` the 1-based
        float32 count of updates this table has received, this one
        included.
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RowOptimizer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_embed")
class SGD(RowOptimizer):
    """Plain SGD on the touched rows: `row -= learning_rate * grad`.

    Equals `keras.optimizers.SGD(learning_rate)` (no momentum) on the table.
    """

    def __init__(self, learning_rate: float = 0.01) -> None:
        super().__init__(learning_rate)

    def update(
        self, rows: Any, grads: Any, slots: dict[str, Any], step: Any
    ) -> tuple[Any, dict[str, Any]]:
        return rows - self.learning_rate * grads, {}


@keras.saving.register_keras_serializable(package="keras_embed")
class Adagrad(RowOptimizer):
    """Adagrad on the touched rows, with the formula and defaults of
    `keras.optimizers.Adagrad`: `acc += grad**2;
    row -= learning_rate * grad / sqrt(acc + epsilon)`."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    @property
    def slots(self) -> dict[str, Any]:
        return {
            "accumulator": keras.initializers.Constant(
                self.initial_accumulator_value
            )
        }

    def update(
        self, rows: Any, grads: Any, slots: dict[str, Any], step: Any
    ) -> tuple[Any, dict[str, Any]]:
        accumulator = slots["accumulator"] + ops.square(grads)
        step_size = ops.sqrt(accumulator + self.epsilon)
        new_rows = rows - self.learning_rate * grads / step_size
        return new_rows, {"accumulator": accumulator}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="keras_embed")
class RowwiseAdagrad(RowOptimizer):
    """Adagrad with one accumulator per row, as FBGEMM's
    `EXACT_ROWWISE_ADAGRAD`: `acc += mean(grad**2)` over the row;
    `row -= learning_rate * grad / (sqrt(acc) + epsilon)`.

    Its state is `input_dim` floats instead of `input_dim * output_dim`.
    The defaults are FBGEMM's (`learning_rate=0.01`, accumulators start at
    0, `epsilon=1e-8`, outside the square root).
    """

    def __init__(
        self, learning_rate=0.01, initial_accumulator_value=0.0, epsilon=1e-8
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

    def slot_shape(self, name, output_dim):
        return ()

    def update(self, rows, grads, slots, step):
        accumulator = slots["accumulator"] + ops.mean(
            ops.square(grads), axis=-1
        )
        step_size = self.learning_rate / (ops.sqrt(accumulator) + self.epsilon)
        new_rows = rows - ops.expand_dims(step_size, -1) * grads
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
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def update(
        self, rows: Any, grads: Any, slots: dict[str, Any], step: Any
    ) -> tuple[Any, dict[str, Any]]:
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

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


_BY_NAME = {
    "sgd": SGD,
    "adagrad": Adagrad,
    "rowwise_adagrad": RowwiseAdagrad,
    "lazy_adam": LazyAdam,
}


def get(identifier: Any) -> RowOptimizer:
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
        "`sparse_optimizer` must be one of 'sgd', 'adagrad', "
        "'rowwise_adagrad', 'lazy_adam', a keras_embed.row_sparse optimizer "
        "(SGD, Adagrad, RowwiseAdagrad, LazyAdam) or a "
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
            "'sgd', 'adagrad', 'rowwise_adagrad', 'lazy_adam' or a "
            "keras_embed.row_sparse optimizer."
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


def serialize(optimizer: RowOptimizer) -> dict[str, Any]:
    return keras.saving.serialize_keras_object(optimizer)
