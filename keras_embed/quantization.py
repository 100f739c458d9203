"""Int8 and int4 tables: Keras 3's quantized `Embedding` storage.

`Embedding.quantize` (and `Model.quantize`) replace the float `embeddings`
weight by the variables Keras 3.15's quantized `Embedding` holds, with the
same names, shapes, dtypes and save order, so weight files move between the
built-in layer and ours. The rows are then read through a `QuantizedTable`,
so the layer's id checks, masks, `padding_id` and `max_norm` are unchanged.

- `"int8"`: `embeddings` int8 `(input_dim, output_dim)` and one abs-max
  `embeddings_scale` per row; a row is `q / scale`.
- `"int4"` per row (`block_size=None` or -1): two values per byte in
  `embeddings` `(input_dim, ceil(output_dim / 2))`, one scale per row.
- `"int4"` grouped (`block_size=n`, Keras's default 128): a scale and an
  int8 zero point per row and group of `n` columns (`embeddings_scale`,
  `embeddings_zero`, `(input_dim, groups)`) and `g_idx`, the group of each
  column; a row is `(q - zero) * scale`.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_embed.tables import LookupTable

MODES = ("int8", "int4")
_INT4_RANGE = (-8, 7)


def check_mode(mode, layer_name):
    if mode not in MODES:
        raise NotImplementedError(
            f"Layer '{layer_name}' supports quantization modes {MODES}, but "
            f"received mode={mode!r}. Pass 'int8' or 'int4'."
        )


def block_size(mode, config, dtype_policy):
    """The int4 group size: from `config`, else from an `int4/<n>` dtype
    policy (a reloaded model); None for per-row scales and for int8."""
    if mode != "int4":
        return None
    if isinstance(config, keras.quantizers.Int4QuantizationConfig):
        size = config.block_size
    else:
        size = getattr(dtype_policy, "block_size", None)
    return None if size in (None, -1) else int(size)


def policy_name(mode, size, source_policy_name):
    """Keras's name of the quantized dtype policy, e.g. `int4/128_from_...`."""
    if mode == "int4":
        mode = f"int4/{-1 if size is None else size}"
    return f"{mode}_from_{source_policy_name}"


def variable_specs(input_dim, output_dim, mode, size, vector_axis=1):
    """`[(name, shape, dtype)]` in Keras's save order. `vector_axis` is the
    axis of length `output_dim`: 1 for `embeddings`, 0 for a reversible
    layer's untied `reverse_embeddings` (names prefixed `reverse_`)."""
    prefix = "embeddings" if vector_axis == 1 else "reverse_embeddings"

    def shaped(vector, other):
        return (other, vector) if vector_axis == 1 else (vector, other)

    values = output_dim if mode == "int8" else (output_dim + 1) // 2
    specs = [(prefix, shaped(values, input_dim), "int8")]
    if size is None:
        return specs + [(f"{prefix}_scale", (input_dim,), None)]
    groups = shaped(math.ceil(output_dim / size), input_dim)
    # Keras stores the reverse zero points as floats, the forward as int8.
    zero_dtype = "int8" if vector_axis == 1 else None
    specs += [(f"{prefix}_scale", groups, None)]
    specs += [(f"{prefix}_zero", groups, zero_dtype)]
    if vector_axis == 1:
        specs.append(("g_idx", (output_dim,), "float32"))
    return specs


def quantize_matrix(matrix, mode, size, config=None, vector_axis=1):
    """The values of `variable_specs` (same order) for a float `matrix`."""
    matrix = np.asarray(ops.convert_to_numpy(matrix), dtype="float32")
    output_dim = matrix.shape[vector_axis]
    if size is None:
        value_range = (-127, 127) if mode == "int8" else _INT4_RANGE
        default = keras.quantizers.AbsMaxQuantizer(
            axis=vector_axis - 2, value_range=value_range, output_dtype="int8"
        )
        quantizer = (
            keras.quantizers.QuantizationConfig.weight_quantizer_or_default(
                config, default
            )
        )
        values, scale = quantizer(matrix, to_numpy=True)
        values = np.asarray(ops.convert_to_numpy(values))
        scale = np.squeeze(ops.convert_to_numpy(scale), axis=vector_axis)
        extra = [scale]
    else:
        # Keras groups along the first axis: put `output_dim` there.
        grouped = matrix.T if vector_axis == 1 else matrix
        values, scale, zero = (
            keras.quantizers.abs_max_quantize_grouped_with_zero_point(
                grouped,
                block_size=size,
                value_range=_INT4_RANGE,
                dtype="int8",
                to_numpy=True,
            )
        )
        values, scale, zero = (np.asarray(v) for v in (values, scale, zero))
        if vector_axis == 1:
            values, scale, zero = values.T, scale.T, zero.T
        extra = [scale, zero]
        if vector_axis == 1:
            extra.append(np.arange(output_dim, dtype="float32") // size)
    if mode == "int4":
        values = ops.convert_to_numpy(
            keras.quantizers.pack_int4(values, axis=vector_axis)[0]
        )
    return [np.asarray(values)] + extra


class QuantizedMatrix:
    """Dequantizes one quantized matrix; `vector_axis` as in
    `variable_specs`, `variables` in its order."""

    def __init__(self, variables, mode, output_dim, vector_axis=1, g_idx=None):
        self.values = variables[0]
        self.scale = variables[1]
        self.zero = variables[2] if len(variables) > 2 else None
        self.g_idx = variables[3] if len(variables) > 3 else g_idx
        self.mode = mode
        self.output_dim = output_dim
        self.vector_axis = vector_axis

    @property
    def grouped(self):
        return self.zero is not None

    def unpack(self, values):
        if self.mode == "int4":
            axis = -1 if self.vector_axis == 1 else 0
            return keras.quantizers.unpack_int4(values, self.output_dim, axis)
        return values

    def dequantize(self, values, scale, zero=None, axis=-1):
        """`values` (int, unpacked) with their rows' `scale` / `zero`."""
        values = ops.cast(values, "float32")
        if zero is None:
            return values / ops.expand_dims(ops.cast(scale, "float32"), axis)
        groups = ops.cast(self.g_idx, "int32")
        scale = ops.take(ops.cast(scale, "float32"), groups, axis=axis)
        zero = ops.take(ops.cast(zero, "float32"), groups, axis=axis)
        return (values - zero) * scale

    def dense(self):
        axis = -1 if self.vector_axis == 1 else 0
        return self.dequantize(
            self.unpack(self.values), self.scale, self.zero, axis
        )


class QuantizedTable(LookupTable):
    """Rows of a quantized `(input_dim, output_dim)` table, dequantized as
    they are read. Not trainable (as Keras); LoRA factors may sit on top."""

    def __init__(self, variables, mode, output_dim, index_dtype):
        self.matrix = QuantizedMatrix(variables, mode, output_dim)
        self.index_dtype = index_dtype

    def lookup(self, ids, keep=None, training=False):
        safe = ids if keep is None else ops.where(keep, ids, 0)
        safe = ops.cast(safe, self.index_dtype)
        m = self.matrix
        values = m.unpack(ops.take(m.values, safe, axis=0))
        zero = None if m.zero is None else ops.take(m.zero, safe, axis=0)
        rows = m.dequantize(values, ops.take(m.scale, safe, axis=0), zero)
        if keep is None:
            return rows
        return ops.where(ops.expand_dims(keep, -1), rows, 0)

    def dense(self):
        return self.matrix.dense()


def inputs_quantizer(config):
    """The quantizer of a reverse call's hidden states, as Keras: the
    config's activation quantizer (None: weight-only), else per-vector
    abs-max."""
    return keras.quantizers.QuantizationConfig.activation_quantizer_or_default(
        config, keras.quantizers.AbsMaxQuantizer(axis=-1)
    )


def project(inputs, kernel, transposed, compute_dtype, quantizer):
    """Logits `inputs @ kernel` as Keras's quantized `ReversibleEmbedding`:
    the hidden states go through `quantizer` (unless None); per-row int
    kernels multiply as integers, grouped ones are dequantized first.

    `kernel` is a `QuantizedMatrix`; `transposed` is True when it is the
    `(input_dim, output_dim)` table used tied.
    """
    if quantizer is None:
        inputs_scale = ops.ones((1,), dtype=compute_dtype)
    else:
        inputs, inputs_scale = quantizer(inputs)
    if kernel.grouped:
        weights = kernel.dense()
        weights = ops.transpose(weights) if transposed else weights
        logits = ops.matmul(ops.cast(inputs, compute_dtype), weights)
        return ops.divide(ops.cast(logits, compute_dtype), inputs_scale)
    values = kernel.unpack(kernel.values)
    values = ops.transpose(values) if transposed else values
    logits = ops.cast(ops.matmul(inputs, values), compute_dtype)
    # `ops` promote dtypes (bfloat16 logits, float32 scales) on every
    # backend, as Keras; TensorFlow's `/` refuses mixed dtypes.
    return ops.divide(logits, ops.multiply(inputs_scale, kernel.scale))


class QuantizationMixin:
    """`Embedding`'s quantization: replaces the float weight by the
    variables above and reads rows through a `QuantizedTable`. `quantize`
    itself stays on the layer class (Keras checks the exact class)."""

    def _build_quantized(self):
        """`build` of a quantized layer reloaded from its config."""
        mode = self.quantization_mode
        size = block_size(mode, self.quantization_config, self.dtype_policy)
        self._add_quantized_weights(mode, size)
        self.table = self.make_table()
        self._add_invalid_id_counter()
        self.built = True
        if self.lora_rank:
            self.enable_lora(self.lora_rank, self.lora_alpha)

    def _quantized_table(self):
        return QuantizedTable(
            self._saved_variables(self._quantized_names()),
            self.quantization_mode,
            self.output_dim,
            self.index_dtype,
        )

    def _quantize(self, mode, config):
        check_mode(mode, self.name)
        if self.sparse_optimizer is not None:
            raise ValueError(
                f"Layer '{self.name}' trains its rows with a "
                "`sparse_optimizer`; a quantized table cannot be trained "
                "row by row. Quantize a copy built without "
                "`sparse_optimizer` (copy the weights over) instead."
            )
        size = block_size(mode, config, self.dtype_policy)
        values = quantize_matrix(self._embeddings, mode, size, config)
        self.quantization_config = config
        del self._embeddings
        self._add_quantized_weights(mode, size, values)
        self._is_quantized = True
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = policy_name(mode, size, self.dtype_policy.name)
        self.table = self.make_table()

    def _add_quantized_weights(self, mode, size, values=None):
        self._block_size = size
        specs = variable_specs(self.input_dim, self.output_dim, mode, size)
        self._add_quantized_variables(specs, values)
        if values is None and size is not None:
            self.g_idx.assign(
                ops.cast(ops.arange(self.output_dim) // size, "float32")
            )
        self._is_quantized = True

    def _add_quantized_variables(self, specs, values=None):
        """One non-trainable variable per `(name, shape, dtype)` of `specs`,
        set to `values` when given, stored as the attribute of its name
        (`embeddings` as `_embeddings`, which the property reads)."""
        for index, (name, shape, dtype) in enumerate(specs):
            variable = self.add_weight(
                name=name,
                shape=shape,
                dtype=dtype,
                initializer="zeros",
                trainable=False,
            )
            if values is not None:
                variable.assign(values[index])
            attribute = "_embeddings" if name == "embeddings" else name
            setattr(self, attribute, variable)

    def _quantized_names(self):
        specs = variable_specs(
            self.input_dim,
            self.output_dim,
            self.quantization_mode,
            self._block_size,
        )
        return [name for name, _, _ in specs]

    def quantized_call(self, *args, **kwargs):
        # The table dequantizes; ids, masks and norms go through `call`.
        return self.call(*args, **kwargs)
