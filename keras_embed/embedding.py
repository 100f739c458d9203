import contextlib

import keras
import numpy as np
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_embed import _ids
from keras_embed import _norm
from keras_embed import _padding
from keras_embed import _upgrade
from keras_embed import features
from keras_embed import invalid_ids
from keras_embed import pretrained
from keras_embed import quantized_storage
from keras_embed import row_sparse
from keras_embed._validation import index_dtype
from keras_embed._validation import is_ragged
from keras_embed._validation import positive_int
from keras_embed.lora_storage import LoraStorage
from keras_embed.quantized_storage import QuantizedStorage
from keras_embed.storage import FloatStorage

# Storage variables that are also layer attributes, under the names Keras
# 3's `Embedding` gives them (its code and its tests read them).
KERAS_ATTRIBUTES = {
    "embeddings": "_embeddings",
    "embeddings_scale": "embeddings_scale",
    "embeddings_zero": "embeddings_zero",
    "g_idx": "g_idx",
    "lora_embeddings_a": "lora_embeddings_a",
    "lora_embeddings_b": "lora_embeddings_b",
}


@keras.saving.register_keras_serializable(package="keras_embed")
class Embedding(keras.layers.Layer):
    """Turns non-negative integer ids into dense vectors of fixed size.

    A drop-in for `keras.layers.Embedding` and the classic
    `tf.keras.layers.Embedding` (`input_length` included), written only
    against `keras.ops` so that one implementation gives the same outputs,
    masks, errors and saved files on TensorFlow, JAX and PyTorch. For valid
    ids the output is bit-identical to `keras.layers.Embedding` with the same
    weights, and the layer holds the same weights under the same names.

    Ids are checked on every call. When the ids hold real values (eager
    calls, including `fit`/`predict` run eagerly), an id that is negative,
    `>= input_dim`, not a whole number or NaN raises `ValueError` naming the
    id, its position and the fix; non-numeric ids raise `TypeError`. Inside a
    traced or compiled function (`tf.function`, `jax.jit`, `torch.compile`,
    and so `fit`/`evaluate`/`predict` on TensorFlow and JAX, or on torch with
    `jit_compile=True`), where no backend can raise on a value, a bad id
    looks up a zero vector, sends no gradient to any row and is counted:
    Keras shows the count in `fit` and `evaluate` logs as
    `"<layer name>/invalid_ids"`, and `keras_embed.InvalidIdCheck` raises
    on it (see `keras_embed.invalid_ids`).

    Floating ids are accepted when they hold whole numbers and their dtype
    represents every id below `input_dim` exactly (float32 up to 2**24,
    float16 up to 2**11); otherwise the layer refuses them when the model is
    built, because rounding would silently pick another row.

    The rows live in `layer.storage` (see `keras_embed.storage`), chosen
    when the layer is built: `make_storage()` (float, or row-sparse with
    `sparse_optimizer`), a quantized storage once quantized, LoRA's delta on
    top once enabled.

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
            vocabulary sizes it can carry. Ids whose shape contradicts it
            raise `ValueError` naming both (as in tf.keras, where
            `input_length` makes the model's input spec), in every call
            whose shape is known: eager, traced, `fit` and `predict`.
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
            `'rowwise_adagrad'` (one accumulator per row), `'lazy_adam'`,
            a `keras_embed.row_sparse` `SGD` / `Adagrad` /
            `RowwiseAdagrad` / `LazyAdam`, or a `keras.optimizers` `SGD`
            (no momentum),
            `Adagrad` or `Adam` (made lazy). A step's update is applied when
            the layer is next called (training or not), by `flush()` and
            before saving. See docs/row_sparse.md.
        max_ids_per_step: With `sparse_optimizer`, the most ids one training
            call may look up (batch size x ids per example, duplicates
            included). Required then; sizes a gradient buffer of
            `(max_ids_per_step, output_dim)`.
        lora_rank: Optional rank: the layer is built with LoRA enabled
            (see `enable_lora`), as Keras 3's `Embedding`.
        lora_alpha: LoRA scale numerator (the delta is scaled by
            `lora_alpha / lora_rank`); defaults to `lora_rank`.
        quantization_config: Optional `keras.quantizers.QuantizationConfig`
            the layer was quantized with (set by `quantize`, kept in
            `get_config()`), as Keras 3's `Embedding`.
        invalid_id_counter: Where compiled calls count the invalid ids
            they read as zeros (see `keras_embed.invalid_ids`). `"metric"`
            (the default): a metric of the layer, not a weight, so the
            layer's weights and `stateless_call` are exactly
            `keras.layers.Embedding`'s; Keras shows it in `fit`/`evaluate`
            logs as `"<layer name>/invalid_ids"` (so `evaluate()` returns a
            list); JAX `predict` does not count. `"variable"`: a
            non-trainable weight `invalid_id_count` (as keras_embed 0.2.0),
            which every stateless step carries, so JAX `predict` counts
            too and logs are Keras's, but the layer has that one weight
            more than `keras.layers.Embedding`. `None`: no count, for a
            layer composed into one that validates the ids itself (a
            `HashedEmbedding`'s table, whose bucket ids are valid by
            construction); the outer layer counts.
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
        ids_checked: Set by the layer itself when it has already checked
            NumPy or Python ids before Keras converted them; leave it False.

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
        invalid_id_counter="metric",
        **kwargs,
    ):
        _upgrade.refuse_reverse_arguments(kwargs.get("name"), kwargs)
        invalid_ids.check_counter(invalid_id_counter)
        input_dim = positive_int(input_dim, "input_dim")
        output_dim = positive_int(output_dim, "output_dim")
        lengths = _sequence_lengths(input_length)
        weights = _initial_weights(weights, input_dim, output_dim)
        padding_id = _padding.normalize_padding_id(padding_id, input_dim)
        max_norm, norm_type = _norm.check_max_norm(max_norm, norm_type)
        if sparse_optimizer is not None:
            sparse_optimizer = row_sparse.get(sparse_optimizer)
            max_ids_per_step = row_sparse.check_max_ids_per_step(
                max_ids_per_step
            )
        features.check_arguments(
            sparse_optimizer,
            embeddings_regularizer,
            embeddings_constraint,
            lora_rank,
        )
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
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        self.quantization_config = quantization_config
        self.invalid_id_counter = invalid_id_counter
        self.index_dtype = index_dtype(input_dim)
        self._lengths = lengths
        self._initial_weights = weights
        self._storage = None
        if weights is not None:
            # As Keras 3: a layer given its weights holds them at once.
            self.build()

    @classmethod
    def from_config(cls, config):
        return super().from_config(cls.read_config(config))

    @classmethod
    def read_config(cls, config):
        """`config` as the constructor takes it: its quantization config
        deserialized, and a keras_embed 0.1.0 config upgraded."""
        return deserialize_quantization_config(
            _upgrade.embedding_config(config)
        )

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, **kwargs):
        """The layer holding an `(input_dim, output_dim)` matrix.

        Like `torch.nn.Embedding.from_pretrained`: the matrix becomes the
        `embeddings` weight (never part of the config), and `freeze=True`
        makes the layer non-trainable. `kwargs` are any other constructor
        arguments, e.g. `padding_id=0, mask_zero=True`.
        """
        matrix = pretrained.pretrained_matrix(embeddings, kwargs)
        return cls(
            *matrix.shape, weights=matrix, trainable=not freeze, **kwargs
        )

    def build(self, input_shape=None):
        if self.built:
            return
        if self.quantization_mode is not None:
            self.quantized_build(
                input_shape, self.quantization_mode, self.quantization_config
            )
        else:
            storage = self.make_storage()
            storage.build(self.add_weight)
            self._install(storage)
        if self.invalid_id_counter == "metric":
            self.invalid_id_metric = invalid_ids.InvalidIdCount(self.name)
        elif self.invalid_id_counter == "variable":
            self._invalid_id_variable = self.add_weight(
                shape=(),
                initializer="zeros",
                dtype="int32",
                name="invalid_id_count",
                trainable=False,
            )
        self.built = True
        self._set_initial_rows()
        if self.lora_rank:
            self.enable_lora(self.lora_rank, self.lora_alpha)

    def make_storage(self):
        """The storage of this layer's float rows, created by `build`.

        A `keras_embed.storage.FloatStorage`, or a row-sparse storage with
        `sparse_optimizer`. Override it to keep the rows another way (see
        docs/features.md): `build` creates the storage's variables, and
        quantization and LoRA still apply on top of it.
        """
        constraint = self.embeddings_constraint
        if self.sparse_optimizer is not None:
            return row_sparse.RowSparseStorage(
                self.input_dim,
                self.output_dim,
                self.sparse_optimizer,
                self.max_ids_per_step,
                self.index_dtype,
                initializer=self.embeddings_initializer,
                constraint=constraint,
                add_loss=self.add_loss,
                name=self.name,
            )
        if self.padding_id is not None:
            constraint = _padding.PaddingRowConstraint(
                self.padding_id, constraint
            )
        return FloatStorage(
            self.input_dim,
            self.output_dim,
            self.embeddings_initializer,
            self.embeddings_regularizer,
            constraint,
        )

    def quantized_build(self, input_shape, mode, config=None):
        # Keras's hook for building a quantized layer (from its dtype policy
        # when reloaded, or by `quantize`).
        quantized_storage.check_mode(mode, self.name)
        size = quantized_storage.block_size_setting(
            mode, config, self.dtype_policy
        )
        base = QuantizedStorage(
            self.input_dim, self.output_dim, mode, size, config
        )
        base.build(self.add_weight)
        self._install(self._with_lora(base))
        # Keras's own flag for "quantized already": its `quantize` wrapper
        # and `dtype_policy` setter read it.
        self._is_quantized = True

    def _install(self, storage):
        """Makes `storage` where the rows live: the only assignment of
        `self._storage` (from `build`, `quantize`, `enable_lora`). Its
        variables are also layer attributes under Keras's names."""
        self._storage = storage
        for name, variable in storage.variables.items():
            attribute = KERAS_ATTRIBUTES.get(name)
            if (
                attribute is not None
                and getattr(self, attribute, None) is not variable
            ):
                setattr(self, attribute, variable)

    def _retire(self, storage):
        """Stops tracking the variables of `storage`, which another storage
        is about to replace (Keras's own `quantize` deletes its float table
        first too, so the new variables come last, in Keras's order)."""
        for name, variable in storage.variables.items():
            attribute = KERAS_ATTRIBUTES.get(name)
            if (
                attribute is not None
                and getattr(self, attribute, None) is variable
            ):
                delattr(self, attribute)
            else:
                # No public way to untrack a variable that no attribute
                # holds (a custom storage's).
                self._untrack_variable(variable)

    def _with_lora(self, base):
        if not self.lora_enabled:
            return base
        return self._storage.with_base(base)

    def _base_storage(self):
        """The storage under LoRA's delta (the storage itself without)."""
        return self._storage.base if self.lora_enabled else self._storage

    def _set_initial_rows(self):
        if self._initial_weights is not None:
            self._storage.assign_float_table(self._initial_weights)
            self._initial_weights = None
        if self.padding_id is not None and self.quantization_mode is None:
            self._storage.assign_float_table(
                _padding.zero_row(self._storage.float_table(), self.padding_id)
            )

    @property
    def storage(self):
        """Where the rows live: a `keras_embed.storage.Storage`; None until
        the layer is built."""
        return self._storage

    @property
    def embeddings(self):
        """The table as Keras 3's `Embedding` shows it: the float weight;
        once quantized, the integer codes (int4 unpacked); with LoRA, plus
        the delta. `layer.storage.float_table()` is the float table."""
        if self._storage is None:
            raise AttributeError(
                "You must build the layer before accessing `embeddings`: "
                f"layer '{self.name}' is not built yet. Call it on ids, or "
                "call `build()`."
            )
        embeddings = self._storage.embeddings
        if self.lora_enabled:
            embeddings = ops.cast(embeddings, self.compute_dtype)
        return embeddings

    @property
    def _int4_block_size(self):
        # Keras's name for the configured int4 group size (its tests read
        # it): None, -1 or the group size.
        base = self._base_storage()
        if getattr(base, "mode", None) != "int4":
            raise AttributeError(
                f"Layer '{self.name}' is not quantized with mode 'int4'."
            )
        return base.block_size

    def __call__(self, inputs, *args, **kwargs):
        inputs, kwargs = self._checked_call_inputs(inputs, kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def _checked_call_inputs(self, inputs, kwargs):
        """The call's inputs and keyword arguments, NumPy and Python ids
        checked first: Keras converts them before `call`, and JAX without
        x64 would wrap int64 ids beyond int32 into valid rows."""
        if "reverse" in kwargs:
            raise _upgrade.reverse_call_error(self.name)
        checked = _ids.host_ids(inputs, self.input_dim, self.name)
        if checked is inputs:
            return inputs, kwargs
        return checked, {**kwargs, "ids_checked": True}

    def call(self, inputs, training=None, ids_checked=False):
        training = bool(training) and self.trainable
        if is_ragged(inputs):
            # Look up the flat values, keep the row splits.
            vectors, _ = self.lookup(inputs.flat_values, training)
            return inputs.with_flat_values(vectors)
        ids = ops.convert_to_tensor(inputs, sparse=False)
        if self._lengths is not None:
            # As tf.keras, where input_length makes the model's input spec:
            # data of another length is an error, never silently embedded
            # under a promised `output_shape`.
            _apply_input_length(
                tuple(ids.shape), self._lengths, self.input_length, self.name
            )
        vectors, _ = self.lookup(ids, training, ids_checked)
        return vectors

    def lookup(self, ids, training=False, ids_checked=False):
        """The vectors of `ids`, and which positions were looked up.

        Every call's steps, in order: check the ids (eager: raise on a bad
        one; traced: mask and count it), keep the valid positions that are
        not the padding id, read their rows from the storage, zero the
        other positions, clip to `max_norm`, cast. Returns `(vectors,
        keep)`; `keep` is None when every position was looked up, else a
        boolean tensor shaped like `ids`.
        """
        valid = None
        if not ids_checked:
            valid = _ids.check_ids(ids, self.input_dim, self.name)
        self._count_invalid(valid)
        keep = _padding.keep_mask(ids, valid, self.padding_id)
        self._storage.apply_pending()
        rows = self._read_rows(ids, keep)
        if training:
            rows = self._storage.training_rows(ids, keep, rows)
        rows = _norm.clip_by_norm(rows, self.max_norm, self.norm_type)
        return ops.cast(rows, self.compute_dtype), keep

    def _read_rows(self, ids, keep):
        """The storage's rows of `ids`, zeros where `keep` is False; those
        positions read row 0 and `where` sends it no gradient."""
        if keep is None:
            return self._storage.rows(ops.cast(ids, self.index_dtype))
        tensorflow = keras.backend.backend() == "tensorflow"
        if tensorflow and _many(ids, self.output_dim):
            # TF graphs without XLA run the output-sized `where` as its own
            # pass: skipping it when every id is valid measured 0.78x the
            # time at 512x10 ids of dim 16 and 0.23x at 4096x50 (tf.function,
            # 1 thread), but 1.04x at 64 ids, where the cond's two traced
            # branches also cost trace time.
            return ops.cond(
                ops.all(keep),
                lambda: self._read_rows(ids, None),
                lambda: self._masked_rows(ids, keep),
            )
        return self._masked_rows(ids, keep)

    def _masked_rows(self, ids, keep):
        safe_ids = ops.cast(ops.where(keep, ids, 0), self.index_dtype)
        rows = self._storage.rows(safe_ids)
        return ops.where(ops.expand_dims(keep, -1), rows, 0)

    def _count_invalid(self, valid):
        if valid is None:
            return
        count = _ids.count_invalid(valid)
        if self.invalid_id_counter == "metric":
            self.invalid_id_metric.update_state(count)
        elif self.invalid_id_counter == "variable":
            self._invalid_id_variable.assign(self._invalid_id_variable + count)

    @property
    def valid_ids_rule(self):
        """Which ids are valid, and the fix, as error messages say it."""
        return (
            "Ids must be whole numbers in [0, input_dim) = [0, "
            f"{self.input_dim}). Set input_dim to the largest id + 1, or fix "
            "the ids"
        )

    @property
    def invalid_id_count(self):
        """How many invalid ids this layer has looked up as zeros since it
        was built or last reset (compiled calls cannot raise on them; see
        `keras_embed.invalid_ids`). 0 before the layer is built."""
        if not self.built or self.invalid_id_counter is None:
            return 0
        if self.invalid_id_counter == "metric":
            return int(ops.convert_to_numpy(self.invalid_id_metric.total))
        return int(ops.convert_to_numpy(self._invalid_id_variable))

    def reset_invalid_id_count(self):
        """Sets `invalid_id_count` back to 0."""
        if not self.built:
            return
        if self.invalid_id_counter == "metric":
            self.invalid_id_metric.reset_total()
        elif self.invalid_id_counter == "variable":
            self._invalid_id_variable.assign(0)

    def flush(self):
        """Applies the pending row-sparse update of the last training step.

        A no-op without `sparse_optimizer`, when nothing is pending or
        before the layer is built.
        """
        if self.built:
            self._storage.apply_pending()

    def quantize(self, mode=None, type_check=True, config=None):
        mode, config = self._quantize_arguments(mode, config)
        # As Keras: a subclass must implement its own quantization.
        if type_check and type(self) is not Embedding:
            raise not_implemented(self, "quantize")
        with self._unlocked_state():
            self._quantize_rows(mode, config)

    def _quantize_arguments(self, mode, config):
        """`quantize`'s `(mode, config)`, resolved and checked as Keras
        does. Keras 3.15 did it in a wrapper around every layer's
        `quantize`; later versions do it in the base method this one
        overrides, so the layer does it itself, whichever Keras runs."""
        mode, config = quantized_storage.resolve_config(mode, config)
        quantized_storage.check_can_quantize(
            self.name,
            type(self).__name__,
            self.built,
            # Keras's own flag, set by `quantized_build`.
            getattr(self, "_is_quantized", False),
            self.dtype_policy.name,
            mode,
            self.compute_dtype,
        )
        features.check_quantize(self.name, self.sparse_optimizer)
        return mode, config

    @contextlib.contextmanager
    def _unlocked_state(self):
        """Lets a built layer add variables. Keras locks a layer's state
        after `build`; its own `quantize` and `enable_lora` unlock it the
        same way."""
        locked = self._tracker.locked
        self._tracker.unlock()
        try:
            yield
        finally:
            if locked:
                self._tracker.lock()

    def _quantize_rows(self, mode, config):
        """Replaces the rows' storage by a quantized one holding them."""
        base = self._base_storage()
        table = ops.convert_to_numpy(base.float_table())
        self._retire(base)
        self.quantization_config = config
        self.quantized_build(None, mode, config)
        self._base_storage().assign_float_table(table)
        if self.dtype_policy.quantization_mode is None:
            size = quantized_storage.block_size_setting(
                mode, config, self.dtype_policy
            )
            self.dtype_policy = quantized_storage.policy_name(
                mode, size, self.dtype_policy.name
            )

    def quantized_call(self, *args, **kwargs):
        quantized_storage.check_mode(self.quantization_mode, self.name)
        # The storage dequantizes; ids, masks and norms go through `call`.
        return self.call(*args, **kwargs)

    def enable_lora(
        self,
        rank,
        lora_alpha=None,
        a_initializer="he_uniform",
        b_initializer="zeros",
    ):
        """Freezes the rows and trains a rank-`rank` delta over them, as
        Keras 3's `Embedding.enable_lora` (see `keras_embed.lora_storage`)."""
        features.check_enable_lora(
            self.name,
            self.built,
            self.lora_enabled,
            self.embeddings_constraint,
            self.sparse_optimizer is not None,
        )
        rank = positive_int(rank, "rank")
        alpha = lora_alpha if lora_alpha is not None else rank
        for variable in self._storage.variables.values():
            variable.trainable = False
        lora = LoraStorage(
            self._storage,
            rank,
            alpha,
            a_initializer,
            b_initializer,
            self.embeddings_regularizer,
        )
        with self._unlocked_state():
            lora.build(self.add_weight)
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = alpha
        self._install(lora)

    def save_own_variables(self, store):
        if not self.built:
            return
        self.flush()
        for index, value in enumerate(self._saved_values()):
            store[str(index)] = value

    def _saved_values(self):
        """What a weight file holds, in Keras 3's order: the storage's
        values; with LoRA, the merged table (its padding row zero)."""
        if self.lora_enabled and self.padding_id is not None:
            merged = self._storage.float_table()
            merged = _padding.zero_row(merged, self.padding_id)
            return self._storage.encode(merged)
        return self._storage.saved_values()

    def load_own_variables(self, store):
        if not self.built:
            return
        values = [store[str(index)] for index in range(len(store.keys()))]
        expected = self._save_order()
        if len(values) != len(expected):
            raise ValueError(
                f"Layer '{self.name}' loads {len(expected)} variables "
                f"{expected}, but the file holds {len(values)}. Load a file "
                "saved by a layer with the same arguments (quantization "
                "mode, `tie_weights`, `sparse_optimizer`)."
            )
        self._load_values(values)

    def _save_order(self):
        """The names of what a weight file holds, in order."""
        return self._storage.save_order()

    def _load_values(self, values):
        self._storage.load(values)

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

    def compute_output_spec(self, inputs, training=None, ids_checked=False):
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
        if self.invalid_id_counter != "metric":
            config["invalid_id_counter"] = self.invalid_id_counter
        return config


def _many(ids, output_dim):
    """Whether a lookup of `ids` reads more than 2**15 output values (or an
    unknown number), where skipping the masking pass pays (`_read_rows`)."""
    size = output_dim
    for dim in ids.shape:
        if dim is None:
            return True
        size *= int(dim)
    return size > 2**15


def deserialize_quantization_config(config):
    """`config` with its `quantization_config` deserialized, as Keras's
    `Embedding.from_config` does."""
    if config.get("quantization_config") is None:
        return config
    config = dict(config)
    config["quantization_config"] = keras.saving.deserialize_keras_object(
        config["quantization_config"]
    )
    return config


def not_implemented(layer, method):
    """Keras's error for a subclass that does not implement `method`."""
    return NotImplementedError(
        f"Layer {type(layer).__name__} does not have a `{method}` method "
        "implemented."
    )


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
