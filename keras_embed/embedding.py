import functools
import warnings

import keras
import numpy as np
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_embed import _ids
from keras_embed import _norm
from keras_embed import _padding
from keras_embed import _reverse
from keras_embed import row_sparse


@keras.saving.register_keras_serializable(package="keras_embed")
class Embedding(keras.layers.Layer):
    """Turns non-negative integer ids into dense vectors of fixed size.

    A drop-in for the classic `tf.keras.layers.Embedding`, written only
    against `keras.ops` so that one implementation gives the same outputs,
    masks, errors and saved files on TensorFlow, JAX and PyTorch. For valid
    ids the output is bit-identical to `keras.layers.Embedding` with the same
    weights.

    Ids are checked on every call. When the ids hold real values (eager
    calls, including `fit`/`predict` run eagerly), an id that is negative,
    `>= input_dim`, not a whole number or NaN raises `ValueError` naming the
    id, its position and the fix; non-numeric ids raise `TypeError`. Inside a
    traced or compiled function (`tf.function`, `jax.jit`, `torch.compile`,
    and so `fit`/`evaluate`/`predict` on TensorFlow and JAX, or on torch with
    `jit_compile=True`), where no backend can raise on a value, a bad id
    looks up a zero vector and sends no gradient to any row.

    Floating ids are accepted when they hold whole numbers and their dtype
    represents every id below `input_dim` exactly (float32 up to 2**24,
    float16 up to 2**11); otherwise the layer refuses them when the model is
    built, because rounding would silently pick another row. Ids never pass
    through the compute dtype.

    Args:
        input_dim: Size of the vocabulary: the largest id + 1. A positive
            integer.
        output_dim: Size of each embedding vector. A positive integer.
        embeddings_initializer: Initializer for the `embeddings` matrix.
        embeddings_regularizer: Regularizer applied to the `embeddings`
            matrix; its loss appears in `model.losses`.
        activity_regularizer: Regularizer applied to the output; adds a loss
            on every call.
        embeddings_constraint: Constraint applied to the `embeddings` matrix
            after every optimizer step.
        mask_zero: Whether id 0 is a padding value to be masked out. If True,
            `compute_mask` returns `ids != 0` for layers downstream, and
            `input_dim` must count id 0 (vocabulary size + 1).
        input_length: Length of input sequences, as in `tf.keras`: an integer
            or a tuple with one positive integer or None per non-batch axis.
            As the first layer of a `Sequential` model it creates the model's
            input, so `model.output_shape` is known before any data is seen.
            That input has dtype `keras.config.floatx()`; see above for the
            vocabulary sizes it can carry.
        weights: Optional initial `(input_dim, output_dim)` matrix (an array
            or a one-element list of one). Used once when the layer is built;
            never part of `get_config()`. See also `Embedding.from_pretrained`.
        padding_id: Optional id of a padding row, as torch's `padding_idx`
            (negative values count from the end). The row is zeros when the
            layer is built (also over `weights`), looks up as zeros, gets no
            gradient, and is reset to zeros after every optimizer step (it
            rides on the variable's constraint, after
            `embeddings_constraint`), so no optimizer, weight decay or
            regularizer moves it. Independent of `mask_zero`; combine them
            as `padding_id=0, mask_zero=True`.
        max_norm: Optional positive number. Each looked-up vector whose
            `norm_type`-norm exceeds it is scaled down to norm `max_norm`.
            As in `tf.nn.embedding_lookup`, only the output is clipped: the
            stored table is never changed (torch instead renormalises the
            stored rows in place). The gradient is that of the clipping
            `v * max_norm / ||v||`, the norm included.
        norm_type: The p of the p-norm for `max_norm`, a number >= 1.
        tie_weights: For `reverse=True` calls: if True (default), project
            with the transposed `embeddings` (tied input and output
            embeddings); if False, the layer owns a separate trainable
            `reverse_embeddings` matrix of shape `(output_dim, input_dim)`,
            initialised with `embeddings_initializer`.
        reverse_dtype: Dtype of the reverse projection and of its logits:
            the hidden states and the kernel are cast to it before the
            matmul. None means the layer's compute dtype; pass "float32"
            for float32 logits under mixed precision.
        logit_soft_cap: Optional positive number `c`: reverse calls return
            `c * tanh(logits / c)`.
        sparse_optimizer: None (the default: the table is an ordinary
            trainable weight) or a row-wise optimizer, which turns on
            row-sparse training: each training step updates only the rows
            of the ids in its batch, with this optimizer, while the model's
            optimizer trains the rest of the model. `'sgd'`, `'adagrad'`,
            `'lazy_adam'`, a `keras_embed.row_sparse` `SGD` / `Adagrad` /
            `LazyAdam`, or a `keras.optimizers` `SGD` (no momentum),
            `Adagrad` or `Adam` (made lazy). A step's update is applied when
            the layer is next called (training or not), by `flush()` and
            before saving. See `keras_embed/row_sparse.py` and the README.
        max_ids_per_step: With `sparse_optimizer`, the most ids one training
            call may look up (batch size x ids per example, duplicates
            included). Required then; sizes a gradient buffer of
            `(max_ids_per_step, output_dim)`.
        **kwargs: Base layer arguments such as `name`, `dtype` and
            `trainable`.

    Call arguments:
        inputs: Integer ids of any shape and integer dtype, floats holding
            whole numbers, a TensorFlow `RaggedTensor` (the output is ragged),
            or a `SparseTensor` / JAX `BCOO` (densified first: missing
            entries are id 0, as `keras.layers.Embedding` treats them).
            With `reverse=True`: float hidden states `(..., output_dim)`.
        reverse: If True, return logits `inputs @ embeddings.T` of shape
            `(..., input_dim)` (see `tie_weights`, `reverse_dtype`,
            `logit_soft_cap`) instead of looking ids up. With
            `mask_zero=True` the logits carry the hidden states' mask.
        training: With `sparse_optimizer`, a training call records its ids
            and captures the gradient of their rows for the row update;
            otherwise ignored.

    Input shape:
        Any shape `(d1, ..., dn)`; 2D `(batch_size, input_length)` is usual.

    Output shape:
        `(d1, ..., dn, output_dim)`.

    Example:

    >>> model = keras.Sequential()
    >>> model.add(Embedding(1000, 64, input_length=10))
    >>> model.output_shape
    (None, 10, 64)
    >>> model.compile("rmsprop", "mse")
    >>> ids = np.random.randint(1000, size=(32, 10))
    >>> model.predict(ids, verbose=0).shape
    (32, 10, 64)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        activity_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        input_length=None,
        *,
        weights=None,
        padding_id=None,
        max_norm=None,
        norm_type=2.0,
        tie_weights=True,
        reverse_dtype=None,
        logit_soft_cap=None,
        sparse_optimizer=None,
        max_ids_per_step=None,
        **kwargs,
    ):
        input_dim = _positive_int(input_dim, "input_dim")
        output_dim = _positive_int(output_dim, "output_dim")
        input_length = _input_length(input_length)
        weights = _initial_weights(weights, input_dim, output_dim)
        padding_id = _padding.normalize_padding_id(padding_id, input_dim)
        max_norm, norm_type = _norm.check_max_norm(max_norm, norm_type)
        reverse_dtype = _reverse.check_reverse_dtype(reverse_dtype)
        logit_soft_cap = _reverse.check_logit_soft_cap(logit_soft_cap)
        if sparse_optimizer is not None:
            sparse_optimizer = row_sparse.get(sparse_optimizer)
            max_ids_per_step = row_sparse.check_max_ids_per_step(
                max_ids_per_step
            )
            row_sparse.refuse_regularizer(embeddings_regularizer)
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = input_length
        with warnings.catch_warnings():
            # `input_length` is this layer's documented API, not a misuse of
            # the base layer's `input_shape` argument.
            warnings.filterwarnings("ignore", "Do not pass an `input_shape`")
            super().__init__(
                activity_regularizer=activity_regularizer, **kwargs
            )
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = mask_zero
        self.input_length = input_length
        self.supports_masking = mask_zero
        self.autocast = False
        self._initial_weights = weights
        self.padding_id = padding_id
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.tie_weights = bool(tie_weights)
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap
        self._reverse_call = False
        self.sparse_optimizer = sparse_optimizer
        self.max_ids_per_step = max_ids_per_step
        self._row_sparse = None
        self._index_dtype = (
            "int32" if input_dim <= np.iinfo(np.int32).max else "int64"
        )

    @classmethod
    def from_config(cls, config):
        # Keras re-raises constructor errors as TypeError; a bad dimension in
        # a saved config is the same ValueError as in the constructor.
        _positive_int(config.get("input_dim"), "input_dim")
        _positive_int(config.get("output_dim"), "output_dim")
        return super().from_config(config)

    @classmethod
    def from_pretrained(cls, matrix, freeze=True, **kwargs):
        """Creates the layer from an `(input_dim, output_dim)` matrix.

        Like `torch.nn.Embedding.from_pretrained`: the matrix becomes the
        `embeddings` weight (never part of the config), and `freeze=True`
        makes the layer non-trainable. `kwargs` are any other constructor
        arguments, e.g. `padding_id=0, mask_zero=True`.
        """
        for name in ("input_dim", "output_dim", "weights", "trainable"):
            if name in kwargs:
                raise ValueError(
                    f"`from_pretrained` sets `{name}` from `matrix` and "
                    f"`freeze`; do not pass `{name}`."
                )
        matrix = np.asarray(ops.convert_to_numpy(matrix))
        if matrix.ndim != 2:
            raise ValueError(
                "`from_pretrained` expects an (input_dim, output_dim) matrix, "
                f"but received shape {matrix.shape}."
            )
        return cls(
            *matrix.shape, weights=matrix, trainable=not freeze, **kwargs
        )

    def build(self, input_shape=None):
        if self.built:
            return
        sparse = self.sparse_optimizer is not None
        constraint = self.embeddings_constraint
        if self.padding_id is not None:
            constraint = _padding.PaddingRowConstraint(
                self.padding_id, constraint
            )
        # A row-sparse table is not trainable: the model's optimizer would
        # rewrite all of it. Its constraint is applied to updated rows.
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
            regularizer=self.embeddings_regularizer,
            constraint=None if sparse else constraint,
            trainable=not sparse,
        )
        if sparse:
            self._row_sparse = row_sparse.RowSparseTable(self)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
                name="reverse_embeddings",
                trainable=True,
            )
        self.built = True
        if self._initial_weights is not None:
            self.embeddings.assign(self._initial_weights)
            self._initial_weights = None
        if self.padding_id is not None:
            self.embeddings.assign(
                _padding.zero_row(self.embeddings, self.padding_id)
            )

    def __call__(self, inputs, *args, reverse=False, **kwargs):
        if reverse:
            # Keras asks compute_mask without the call's arguments.
            self._reverse_call = True
            try:
                return super().__call__(inputs, *args, reverse=True, **kwargs)
            finally:
                self._reverse_call = False
        # NumPy and Python ids are checked before Keras converts them: JAX
        # without x64 would wrap int64 ids beyond int32 into valid rows.
        inputs = _ids.host_ids(inputs, self.input_dim, self.name)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, reverse=False, training=None):
        if reverse:
            return self._reverse(inputs, training)
        lookup = self._lookup
        if self._row_sparse is not None:
            # Only the row-sparse lookup needs `training`; subclasses that
            # override `_lookup(ids)` keep working in dense mode.
            lookup = functools.partial(self._lookup, training=training)
        if hasattr(inputs, "flat_values") and hasattr(
            inputs, "with_flat_values"
        ):
            # A RaggedTensor: look up its flat values, keep its row splits.
            return inputs.with_flat_values(lookup(inputs.flat_values))
        return lookup(ops.convert_to_tensor(inputs, sparse=False))

    def flush(self):
        """Applies the pending row-sparse update of the last training step.

        A no-op without `sparse_optimizer` or when nothing is pending.
        """
        if self._row_sparse is not None:
            self._row_sparse.apply_pending()

    def save_own_variables(self, store):
        self.flush()
        super().save_own_variables(store)

    def _lookup(self, ids, training=None):
        _ids.check_id_dtype(ids.dtype, self.input_dim, self.name)
        host_ids = _ids.concrete_value(ids)
        if host_ids is not None:
            # Eager: the ids hold values, so a bad one raises right here.
            _ids.raise_for_invalid_ids(host_ids, self.input_dim, self.name)
            valid = None
        else:
            valid = _ids.valid_id_mask(ids, self.input_dim)
        keep = _padding.keep_mask(ids, valid, self.padding_id)
        if self._row_sparse is not None:
            outputs = self._row_sparse.lookup(ids, keep, training)
        else:
            outputs = self._gather(ids, keep)
        outputs = _norm.clip_by_norm(outputs, self.max_norm, self.norm_type)
        return ops.cast(outputs, self.compute_dtype)

    def _gather(self, ids, keep):
        if keep is None:
            return ops.take(
                self.embeddings, ops.cast(ids, self._index_dtype), axis=0
            )
        if keras.backend.backend() == "tensorflow":
            # TF graphs without XLA run the output-sized `where` as its own
            # pass; skipping it unless needed measured 1.3x (benchmarks/).
            return ops.cond(
                ops.all(keep),
                lambda: self._gather(ids, None),
                lambda: self._masked_lookup(ids, keep),
            )
        return self._masked_lookup(ids, keep)

    def _masked_lookup(self, ids, valid):
        # Traced code cannot raise on a value, so a bad id reads row 0 and
        # its vector is replaced by zeros; `where` sends row 0 no gradient.
        safe_ids = ops.cast(ops.where(valid, ids, 0), self._index_dtype)
        outputs = ops.take(self.embeddings, safe_ids, axis=0)
        return ops.where(ops.expand_dims(valid, -1), outputs, 0)

    def _reverse(self, hidden, training=None):
        _reverse.check_hidden_shape(hidden.shape, self.output_dim, self.name)
        if self._row_sparse is not None and self.tie_weights:
            row_sparse.check_tied_reverse(self, training)
            self._row_sparse.apply_pending()
        if self.tie_weights:
            table = _padding.without_padding_row(
                self.embeddings, self.padding_id
            )
            kernel = ops.transpose(table)
        else:
            kernel = self.reverse_embeddings
        return _reverse.logits(
            hidden, kernel, self._reverse_dtype(), self.logit_soft_cap
        )

    def _reverse_dtype(self):
        return self.reverse_dtype or self.compute_dtype

    def compute_mask(self, inputs, mask=None):
        if self._reverse_call:
            return mask
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape, reverse=False):
        input_shape = tuple(input_shape)
        if reverse:
            _reverse.check_hidden_shape(input_shape, self.output_dim, self.name)
            return input_shape[:-1] + (self.input_dim,)
        if self.input_length is None:
            return input_shape + (self.output_dim,)
        axes = input_shape[1:]
        if len(axes) != len(self.input_length):
            raise ValueError(
                f"Layer '{self.name}' has input_length={self.input_length} "
                f"({len(self.input_length)} non-batch axes), but received "
                f"input shape {input_shape} with {len(axes)}. Pass an "
                "input_length with one entry per non-batch axis."
            )
        lengths = []
        for expected, actual in zip(self.input_length, axes, strict=True):
            if None not in (expected, actual) and expected != actual:
                raise ValueError(
                    f"Layer '{self.name}' has input_length="
                    f"{self.input_length}, but received input shape "
                    f"{input_shape}. Make the input's non-batch axes match "
                    "input_length, or set input_length=None."
                )
            lengths.append(actual if expected is None else expected)
        return (input_shape[0], *lengths, self.output_dim)

    def compute_output_spec(self, inputs, reverse=False):
        if reverse:
            return keras.KerasTensor(
                self.compute_output_shape(inputs.shape, reverse=True),
                dtype=self._reverse_dtype(),
            )
        _ids.check_id_dtype(inputs.dtype, self.input_dim, self.name)
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape),
            dtype=self.compute_dtype,
            ragged=getattr(inputs, "ragged", False),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": regularizers.serialize(
                    self.embeddings_regularizer
                ),
                "activity_regularizer": regularizers.serialize(
                    self.activity_regularizer
                ),
                "embeddings_constraint": constraints.serialize(
                    self.embeddings_constraint
                ),
                "mask_zero": self.mask_zero,
                "input_length": self.input_length,
                "padding_id": self.padding_id,
                "max_norm": self.max_norm,
                "norm_type": self.norm_type,
                "tie_weights": self.tie_weights,
                "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap,
            }
        )
        if self.sparse_optimizer is not None:
            config["sparse_optimizer"] = row_sparse.serialize(
                self.sparse_optimizer
            )
            config["max_ids_per_step"] = self.max_ids_per_step
        return config


def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise ValueError(
            f"`{name}` must be a positive integer, but received {value!r} "
            f"of type {type(value).__name__}. Pass a Python or NumPy int, "
            f"e.g. {name}=1000."
        )
    if value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer, but received {value!r}. "
            f"Pass a value of at least 1."
        )
    return int(value)


def _input_length(value):
    """Normalises `input_length` to None or a tuple of positive ints/None."""
    if value is None:
        return None
    entries = value if isinstance(value, (list, tuple)) else (value,)
    if not entries:
        raise ValueError(
            "`input_length` must be None, a positive integer or a non-empty "
            "tuple of positive integers or None, but received an empty "
            f"{type(value).__name__}."
        )
    normalised = []
    for entry in entries:
        if entry is None:
            normalised.append(None)
            continue
        try:
            normalised.append(_positive_int(entry, "input_length"))
        except ValueError:
            raise ValueError(
                "`input_length` must be None, a positive integer or a tuple "
                "whose entries are positive integers or None (one per "
                f"non-batch axis), but received {value!r}."
            ) from None
    return tuple(normalised)


def _initial_weights(weights, input_dim, output_dim):
    if weights is None:
        return None
    if isinstance(weights, (list, tuple)):
        if len(weights) != 1:
            raise ValueError(
                "`weights` must be one (input_dim, output_dim) matrix or a "
                f"one-element list of one, but received a list of "
                f"{len(weights)} arrays."
            )
        weights = weights[0]
    weights = np.asarray(ops.convert_to_numpy(weights))
    if weights.shape != (input_dim, output_dim):
        raise ValueError(
            f"`weights` must have shape (input_dim, output_dim) = "
            f"({input_dim}, {output_dim}), but received shape "
            f"{weights.shape}. Pass a matrix with one row per id."
        )
    return weights
