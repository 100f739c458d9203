import inspect

import keras
import numpy as np
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_embed import _ids
from keras_embed import _norm
from keras_embed import _padding
from keras_embed import row_sparse
from keras_embed import tables
from keras_embed._saving import WeightFileMixin
from keras_embed._validation import index_dtype
from keras_embed._validation import is_ragged
from keras_embed._validation import positive_int
from keras_embed.invalid_id_check import InvalidIdCounterMixin
from keras_embed.lora import LoraMixin
from keras_embed.pretrained import FromPretrainedMixin
from keras_embed.quantization import QuantizationMixin
from keras_embed.row_sparse.table import check_max_ids_per_step
from keras_embed.row_sparse.table import refuse_regularizer

# Arguments of 0.1.0's Embedding, with their defaults, that 0.2.0 moved to
# ReversibleEmbedding.
_MOVED_REVERSE_ARGUMENTS = {
    "tie_weights": True,
    "reverse_dtype": None,
    "logit_soft_cap": None,
}


@keras.saving.register_keras_serializable(package="keras_embed")
class Embedding(
    FromPretrainedMixin,
    WeightFileMixin,
    QuantizationMixin,
    LoraMixin,
    InvalidIdCounterMixin,
    keras.layers.Layer,
):
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

    Rows are read through `layer.table` (see `keras_embed.tables`), chosen
    once when the layer is built by `make_table()`: a `DenseTable`, or a
    `row_sparse.RowSparseTable` with `sparse_optimizer`.

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
            or a tuple with one positive integer or None per non-batch axis
            (`get_config()` gives it back as passed).
            As the first layer of a `Sequential` model it creates the model's
            input, so `model.output_shape` is known before any data is seen.
            That input has dtype `keras.config.floatx()`; see above for the
            vocabulary sizes it can carry.
        weights: Optional initial `(input_dim, output_dim)` matrix (an array
            or a one-element list of one). As in Keras 3, the layer is built
            at construction and holds it at once; never part of
            `get_config()`. See also `Embedding.from_pretrained`.
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
        sparse_optimizer: None (the default: the table is an ordinary
            trainable weight) or a row-wise optimizer, which turns on
            row-sparse training: each training step updates only the rows
            of the ids in its batch, with this optimizer, while the model's
            optimizer trains the rest of the model. `'sgd'`, `'adagrad'`,
            `'lazy_adam'`, a `keras_embed.row_sparse` `SGD` / `Adagrad` /
            `LazyAdam`, or a `keras.optimizers` `SGD` (no momentum),
            `Adagrad` or `Adam` (made lazy). A step's update is applied when
            the layer is next called (training or not), by `flush()` and
            before saving. See docs/row_sparse.md.
        lora_rank: Optional rank: the layer is built with LoRA enabled
            (see `enable_lora`), as Keras 3's `Embedding`.
        lora_alpha: LoRA scale numerator (the delta is scaled by
            `lora_alpha / lora_rank`); defaults to `lora_rank`.
        quantization_config: Optional `keras.quantizers.QuantizationConfig`
            the layer was quantized with (set by `quantize`, kept in
            `get_config()`), as Keras 3's `Embedding`.
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
        sparse_optimizer=None,
        max_ids_per_step=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        input_dim = positive_int(input_dim, "input_dim")
        output_dim = positive_int(output_dim, "output_dim")
        lengths = _sequence_lengths(input_length)
        weights = _initial_weights(weights, input_dim, output_dim)
        padding_id = _padding.normalize_padding_id(padding_id, input_dim)
        max_norm, norm_type = _norm.check_max_norm(max_norm, norm_type)
        if sparse_optimizer is not None:
            sparse_optimizer = row_sparse.get(sparse_optimizer)
            max_ids_per_step = check_max_ids_per_step(max_ids_per_step)
            refuse_regularizer(embeddings_regularizer)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if lengths is not None and "input_shape" not in kwargs:
            # What Sequential reads to create the model's input from the
            # first layer. Passing `input_shape=` instead would make Keras
            # warn about `input_length`, the documented API here.
            self._input_shape_arg = lengths
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = mask_zero
        # Given back by get_config as passed (7 stays 7); a list read back
        # from JSON becomes the tuple it was.
        self.input_length = (
            tuple(input_length)
            if isinstance(input_length, list)
            else input_length
        )
        self.supports_masking = mask_zero
        self.autocast = False
        self.padding_id = padding_id
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.sparse_optimizer = sparse_optimizer
        self.max_ids_per_step = max_ids_per_step
        self.index_dtype = index_dtype(input_dim)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        self.quantization_config = quantization_config
        self._lengths = lengths
        self._initial_weights = weights
        self._ids_checked_on_host = False
        self._invalid_ids = None
        if weights is not None:
            # As Keras 3: a layer given its weights holds them at once.
            self.build()

    @classmethod
    def from_config(cls, config):
        return super().from_config(_read_config(cls, config))

    def build(self, input_shape=None):
        if self.built:
            return
        if self.quantization_mode is not None:
            return self._build_quantized()
        sparse = self.sparse_optimizer is not None
        constraint = self.embeddings_constraint
        if self.padding_id is not None:
            constraint = _padding.PaddingRowConstraint(
                self.padding_id, constraint
            )
        # A row-sparse table is not trainable: the model's optimizer would
        # rewrite all of it. Its table applies the constraint to new rows.
        self._embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
            regularizer=self.embeddings_regularizer,
            constraint=None if sparse else constraint,
            trainable=not sparse,
        )
        self.table = self.make_table()
        self._add_invalid_id_counter()
        self.built = True
        if self._initial_weights is not None:
            self.embeddings.assign(self._initial_weights)
            self._initial_weights = None
        if self.padding_id is not None:
            self.embeddings.assign(
                _padding.zero_row(self.embeddings, self.padding_id)
            )
        if self.lora_rank:
            self.enable_lora(self.lora_rank, self.lora_alpha)

    @property
    def embeddings(self):
        """The table: the weight itself, or with LoRA and/or quantization
        the float table they stand for (dequantized, delta merged)."""
        if self.lora_enabled or self.quantization_mode is not None:
            return self.table.dense()
        try:
            return self._embeddings
        except AttributeError:
            raise AttributeError(
                f"Layer '{self.name}' has no `embeddings` until it is built."
            ) from None

    def make_table(self):
        """Returns the `keras_embed.tables.LookupTable` this layer reads its
        rows through. Called once by `build`, after `embeddings` exists;
        override it to plug in another storage."""
        if self.quantization_mode is not None:
            table = self._quantized_table()
        elif self.sparse_optimizer is None:
            table = tables.DenseTable(self._embeddings, self.index_dtype)
        else:
            return row_sparse.RowSparseTable(
                self.embeddings,
                self.sparse_optimizer,
                self.max_ids_per_step,
                self.index_dtype,
                add_weight=self.add_weight,
                add_loss=self.add_loss,
                constraint=self.embeddings_constraint,
                name=self.name,
            )
        return self._with_lora(table)

    def __call__(self, inputs, *args, **kwargs):
        if "reverse" in kwargs and not hasattr(self, "tie_weights"):
            raise _no_reverse_error(self.name)
        # NumPy and Python ids are checked before Keras converts them: JAX
        # without x64 would wrap int64 ids beyond int32 into valid rows.
        checked = _ids.host_ids(inputs, self.input_dim, self.name)
        if checked is inputs:
            return super().__call__(inputs, *args, **kwargs)
        # Checked once: `call` need not look at these ids again.
        self._ids_checked_on_host = True
        try:
            return super().__call__(checked, *args, **kwargs)
        finally:
            self._ids_checked_on_host = False

    def call(self, inputs, training=None):
        training = bool(training) and self.trainable
        if is_ragged(inputs):
            # Look up the flat values, keep the row splits.
            flat = self._lookup(inputs.flat_values, training)
            return inputs.with_flat_values(flat)
        ids = ops.convert_to_tensor(inputs, sparse=False)
        return self._lookup(ids, training)

    def _lookup(self, ids, training):
        keep = None
        if not self._ids_checked_on_host:
            keep = _ids.check_ids(ids, self.input_dim, self.name)
            self._count_invalid_ids(keep)
        keep = _padding.keep_mask(ids, keep, self.padding_id)
        outputs = self.table.lookup(ids, keep, training=training)
        outputs = _norm.clip_by_norm(outputs, self.max_norm, self.norm_type)
        return ops.cast(outputs, self.compute_dtype)

    def quantize(self, mode=None, type_check=True, config=None):
        # As Keras: a subclass must implement its own quantization.
        if type_check and type(self) is not Embedding:
            raise self._not_implemented_error(self.quantize)
        self._quantize(mode, config)

    def flush(self):
        """Applies the pending row-sparse update of the last training step.

        A no-op without `sparse_optimizer`, when nothing is pending or
        before the layer is built.
        """
        if self.built:
            self.table.flush()

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self._lengths is not None:
            input_shape = _apply_input_length(
                input_shape, self._lengths, self.input_length, self.name
            )
        return input_shape + (self.output_dim,)

    def compute_output_spec(self, inputs):
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
            }
        )
        if self.sparse_optimizer is not None:
            config["sparse_optimizer"] = row_sparse.serialize(
                self.sparse_optimizer
            )
            config["max_ids_per_step"] = self.max_ids_per_step
        if self.lora_rank:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        if self.quantization_config is not None:
            config["quantization_config"] = keras.saving.serialize_keras_object(
                self.quantization_config
            )
        return config


def _no_reverse_error(layer_name):
    return TypeError(
        f"Layer '{layer_name}' is an Embedding, which has no reverse "
        "projection since keras_embed 0.2.0. Use "
        "keras_embed.ReversibleEmbedding (same arguments, plus tie_weights, "
        "reverse_dtype, logit_soft_cap) for `reverse=True` calls; see "
        "docs/migrating.md."
    )


def _read_config(cls, config):
    """`config` with its `quantization_config` deserialized, and the
    reverse arguments of a 0.1.0 config dropped where they hold the
    defaults (tied, no dtype, no cap): such a file never needed them."""
    if config.get("quantization_config") is not None:
        config = dict(config)
        config["quantization_config"] = keras.saving.deserialize_keras_object(
            config["quantization_config"]
        )
    moved = set(_MOVED_REVERSE_ARGUMENTS) & set(config)
    if not moved or "tie_weights" in inspect.signature(cls).parameters:
        return config
    used = {
        name: config[name]
        for name in sorted(moved)
        if config[name] != _MOVED_REVERSE_ARGUMENTS[name]
    }
    if used:
        raise ValueError(
            "This Embedding config was saved by keras_embed 0.1.0 with "
            f"reverse-projection arguments {used}, which moved to "
            "keras_embed.ReversibleEmbedding in 0.2.0. Rebuild the model "
            "with ReversibleEmbedding and copy the weights over (see "
            "docs/migrating.md)."
        )
    return {name: value for name, value in config.items() if name not in moved}


def _apply_input_length(input_shape, lengths, input_length, layer_name):
    """`input_shape` with its non-batch axes checked against, and filled
    in from, `lengths` (the normalised `input_length`)."""
    axes = input_shape[1:]
    if len(axes) != len(lengths):
        raise ValueError(
            f"Layer '{layer_name}' has input_length={input_length} "
            f"({len(lengths)} non-batch axes), but received input shape "
            f"{input_shape} with {len(axes)}. Pass an input_length with one "
            "entry per non-batch axis."
        )
    for expected, actual in zip(lengths, axes, strict=True):
        if None not in (expected, actual) and expected != actual:
            raise ValueError(
                f"Layer '{layer_name}' has input_length={input_length}, but "
                f"received input shape {input_shape}. Make the input's "
                "non-batch axes match input_length, or set input_length=None."
            )
    filled = (a if e is None else e for e, a in zip(lengths, axes, strict=True))
    return (input_shape[0], *filled)


def _sequence_lengths(input_length):
    """`input_length` as None or a tuple of positive ints / None."""
    if input_length is None:
        return None
    entries = (
        input_length
        if isinstance(input_length, (list, tuple))
        else (input_length,)
    )
    if not entries:
        raise ValueError(
            "`input_length` must be None, a positive integer or a non-empty "
            "tuple of positive integers or None, but received an empty "
            f"{type(input_length).__name__}."
        )
    try:
        return tuple(
            None if entry is None else positive_int(entry, "input_length")
            for entry in entries
        )
    except ValueError:
        raise ValueError(
            "`input_length` must be None, a positive integer or a tuple "
            "whose entries are positive integers or None (one per "
            f"non-batch axis), but received {input_length!r}."
        ) from None


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
