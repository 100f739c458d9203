import keras
from keras import ops

from keras_embed import _padding
from keras_embed import features
from keras_embed import quantized_storage
from keras_embed._call_context import CallFact
from keras_embed._validation import positive_number
from keras_embed.embedding import Embedding
from keras_embed.embedding import deserialize_quantization_config
from keras_embed.embedding import not_implemented

# Whether a call reverses: `compute_mask` cannot see the call's arguments.
_REVERSING = CallFact("reversing")


@keras.saving.register_keras_serializable(package="keras_embed")
class ReversibleEmbedding(Embedding):
    """An `Embedding` that can also project hidden states back to logits.

    The signature and the call are those of Keras 3's
    `keras.layers.ReversibleEmbedding` (and keras-hub's): `reverse=True`
    turns hidden states `(..., output_dim)` into logits `(..., input_dim)`
    over the vocabulary, with the transposed `embeddings` (tied input and
    output embeddings, the default) or a separate `reverse_embeddings`
    matrix. Every `keras_embed.Embedding` argument (`padding_id`,
    `max_norm`, `input_length`, `weights`, `sparse_optimizer`, ...) is
    accepted through `**kwargs` and acts on the forward lookup.

    As Keras's layer, a forward call's output carries the `mask_zero` mask
    and a reverse call's logits carry none. With `padding_id`, the padding
    row of a tied table reads as zeros in the projection too, so its logit
    is always 0 and it gets no gradient. With `sparse_optimizer`, a tied
    reverse call can only run outside training: a training call would need
    a gradient for every row, which row-sparse training does not compute
    (use `tie_weights=False`).

    Args:
        input_dim: Size of the vocabulary: the largest id + 1.
        output_dim: Size of each embedding vector.
        tie_weights: If True (default), project with the transposed
            `embeddings`; if False, the layer owns a separate trainable
            `reverse_embeddings` matrix of shape `(output_dim, input_dim)`,
            initialised with `embeddings_initializer`.
        embeddings_initializer: Initializer for the `embeddings` matrix.
        embeddings_regularizer: Regularizer for the `embeddings` matrix.
        embeddings_constraint: Constraint for the `embeddings` matrix.
        mask_zero: Whether id 0 is a padding value to be masked out.
        reverse_dtype: Dtype of the reverse projection and of its logits:
            the hidden states and the kernel are cast to it before the
            matmul. None means the layer's compute dtype; pass "float32"
            for float32 logits under mixed precision.
        logit_soft_cap: Optional positive number `c`: reverse calls return
            `c * tanh(logits / c)`.
        **kwargs: Other `keras_embed.Embedding` arguments and base layer
            arguments such as `name` and `dtype`.

    Call arguments:
        inputs: Ids, as for `Embedding`; with `reverse=True`, float hidden
            states `(..., output_dim)`.
        reverse: If True, return the logits instead of looking ids up.
        training: As for `Embedding`.
        ids_checked: As for `Embedding`.

    Input shape:
        Ids `(d1, ..., dn)`, or hidden states `(d1, ..., dn, output_dim)`
        with `reverse=True`.

    Output shape:
        `(d1, ..., dn, output_dim)`, or `(d1, ..., dn, input_dim)` with
        `reverse=True`.

    Example:

    >>> layer = ReversibleEmbedding(100, 8)
    >>> hidden = layer(np.random.randint(100, size=(2, 5)))
    >>> layer(hidden, reverse=True).shape
    (2, 5, 100)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        reverse_dtype=None,
        logit_soft_cap=None,
        **kwargs,
    ):
        if logit_soft_cap is not None:
            logit_soft_cap = positive_number(
                logit_soft_cap,
                "logit_soft_cap",
                "Pass e.g. logit_soft_cap=30.0, or None for plain logits.",
            )
        # Set before `super().__init__`, which builds the layer at once
        # when `weights` is given, and `build` reads them.
        self.tie_weights = bool(tie_weights)
        self.reverse_dtype = _reverse_dtype(reverse_dtype)
        self.logit_soft_cap = logit_soft_cap
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            **kwargs,
        )

    @classmethod
    def read_config(cls, config):
        # Its reverse arguments are its own, not 0.1.0 leftovers.
        return deserialize_quantization_config(config)

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)
        if not self.tie_weights and self.quantization_mode is None:
            self.reverse_embeddings = self.add_weight(
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
                name="reverse_embeddings",
                trainable=True,
            )

    def quantized_build(self, input_shape, mode, config=None):
        super().quantized_build(input_shape, mode, config)
        self.inputs_quantizer = quantized_storage.inputs_quantizer(config)
        if self.tie_weights:
            return
        specs = self._reverse_specs(mode)
        variables = quantized_storage.add_quantized_variables(
            self.add_weight, specs
        )
        for name, variable in variables.items():
            setattr(self, name, variable)

    def _reverse_specs(self, mode):
        size = self._base_storage().group_size
        return quantized_storage.variable_specs(
            self.input_dim, self.output_dim, mode, size, vector_axis=0
        )

    def _reverse_names(self):
        """The untied kernel's variables, in Keras's save order."""
        if self.tie_weights:
            return []
        if self.quantization_mode is None:
            return ["reverse_embeddings"]
        return [
            name for name, *_ in self._reverse_specs(self.quantization_mode)
        ]

    def quantize(self, mode=None, type_check=True, config=None):
        mode, config = self._quantize_arguments(mode, config)
        if type_check and type(self) is not ReversibleEmbedding:
            raise not_implemented(self, "quantize")
        with self._unlocked_state():
            reverse = self._quantized_reverse_values(mode, config)
            self._quantize_rows(mode, config)
            names = self._reverse_names()
            for name, value in zip(names, reverse, strict=True):
                getattr(self, name).assign(value)

    def _quantized_reverse_values(self, mode, config):
        """The untied kernel quantized (its float variable dropped first,
        so the new variables come last, in Keras's order); [] when tied."""
        if self.tie_weights:
            return []
        size = quantized_storage.group_size(
            quantized_storage.block_size_setting(
                mode, config, self.dtype_policy
            )
        )
        values = quantized_storage.quantize_matrix(
            self.reverse_embeddings, mode, size, config, vector_axis=0
        )
        del self.reverse_embeddings
        return values

    def __call__(self, inputs, *args, **kwargs):
        if not kwargs.get("reverse"):
            return super().__call__(inputs, *args, **kwargs)
        with _REVERSING.during(self):
            return super().__call__(inputs, *args, **kwargs)

    def _checked_call_inputs(self, inputs, kwargs):
        if kwargs.get("reverse"):
            # Hidden states, not ids.
            return inputs, kwargs
        kwargs = {k: v for k, v in kwargs.items() if k != "reverse"}
        return super()._checked_call_inputs(inputs, kwargs)

    def call(self, inputs, reverse=False, training=None, ids_checked=False):
        if not reverse:
            return super().call(inputs, training, ids_checked)
        features.check_reverse_call(
            self.name,
            self.sparse_optimizer is not None,
            self.tie_weights,
            bool(training) and self.trainable,
        )
        _check_hidden_shape(inputs.shape, self.output_dim, self.name)
        dtype = self.reverse_dtype or self.compute_dtype
        if self.quantization_mode is not None:
            logits = quantized_storage.project(
                inputs,
                self._quantized_kernel(),
                self.tie_weights,
                dtype,
                self.inputs_quantizer,
            )
        else:
            kernel = ops.cast(self._float_kernel(), dtype)
            logits = ops.matmul(ops.cast(inputs, dtype), kernel)
        return self._finish_logits(logits)

    def _float_kernel(self):
        if not self.tie_weights:
            return self.reverse_embeddings
        self.flush()
        table = _padding.without_padding_row(
            self._storage.float_table(), self.padding_id
        )
        return ops.transpose(table)

    def _quantized_kernel(self):
        base = self._base_storage()
        if self.tie_weights:
            return base.matrix
        return quantized_storage.QuantizedMatrix(
            [getattr(self, name) for name in self._reverse_names()],
            self.quantization_mode,
            self.output_dim,
            vector_axis=0,
            g_idx=base.variables.get("g_idx"),
        )

    def _finish_logits(self, logits):
        padding = self.padding_id
        if self.quantization_mode and self.tie_weights and padding is not None:
            # The padding row's logit is 0, as for the float table.
            ids = ops.arange(self.input_dim, dtype="int32")
            logits = ops.where(ids != padding, logits, 0)
        if self.logit_soft_cap is not None:
            cap = self.logit_soft_cap
            logits = ops.tanh(logits / cap) * cap
        return logits

    def _saved_values(self):
        reverse = [getattr(self, name) for name in self._reverse_names()]
        return super()._saved_values() + reverse

    def _save_order(self):
        return super()._save_order() + self._reverse_names()

    def _load_values(self, values):
        names = self._reverse_names()
        split = len(values) - len(names)
        super()._load_values(values[:split])
        for name, value in zip(names, values[split:], strict=True):
            getattr(self, name).assign(value)

    def compute_mask(self, inputs, mask=None):
        if _REVERSING.holds(self):
            # As Keras: logits carry no mask.
            return None
        return super().compute_mask(inputs, mask)

    def compute_output_shape(self, input_shape, reverse=False):
        if not reverse:
            return super().compute_output_shape(input_shape)
        input_shape = tuple(input_shape)
        _check_hidden_shape(input_shape, self.output_dim, self.name)
        return input_shape[:-1] + (self.input_dim,)

    def compute_output_spec(
        self, inputs, reverse=False, training=None, ids_checked=False
    ):
        if not reverse:
            return super().compute_output_spec(inputs)
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape, reverse=True),
            dtype=self.reverse_dtype or self.compute_dtype,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tie_weights": self.tie_weights,
                "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap,
            }
        )
        return config


def _reverse_dtype(reverse_dtype):
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


def _check_hidden_shape(shape, output_dim, layer_name):
    if len(shape) == 0 or shape[-1] not in (None, output_dim):
        raise ValueError(
            f"Layer '{layer_name}' called with reverse=True expects inputs "
            f"whose last axis is output_dim={output_dim}, but received "
            f"shape {tuple(shape)}. Pass hidden states of shape "
            f"(..., {output_dim})."
        )
