"""Int8 and int4 storages: Keras 3's quantized `Embedding` variables.

`Embedding.quantize` (and `Model.quantize`) replace the float storage by a
`QuantizedStorage` holding the variables Keras 3.15's quantized `Embedding`
holds, with the same names, shapes, dtypes and save order, so weight files
move between the built-in layer and ours:

- `"int8"`: `embeddings` int8 `(input_dim, output_dim)` and one abs-max
  `embeddings_scale` per row; a row is `q / scale`.
- `"int4"` per row (`block_size=None` or -1): two values per byte in
  `embeddings` `(input_dim, ceil(output_dim / 2))`, one scale per row.
- `"int4"` grouped (`block_size=n`, Keras's default 128): a scale and an
  int8 zero point per row and group of `n` columns (`embeddings_scale`,
  `embeddings_zero`, `(input_dim, groups)`) and `g_idx`, the group of each
  column; a row is `(q - zero) * scale`.

Rows are dequantized as they are read, so a lookup costs the rows it reads,
not the table. As Keras's layer, `embeddings` shows the integer codes
(int4 unpacked to one int8 per value); `float_table()` dequantizes.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_embed.storage import Storage

MODES = ("int8", "int4")


def _keras_version():
    return tuple(int(part) for part in keras.version().split(".")[:2])


# Keras 3.15 stores an untied reverse kernel's int4 zero points as floats,
# later versions as int8 (as the forward table's): weight files cross with
# the Keras that runs.
_REVERSE_ZERO_DTYPE = "int8" if _keras_version() >= (3, 16) else None
_INT4_RANGE = (-8, 7)
# Keras's initial values of each kind of quantized variable.
_INITIALIZERS = {"values": "zeros", "scale": "ones", "zero": "zeros"}


def check_mode(mode, layer_name):
    if mode not in MODES:
        raise NotImplementedError(
            f"Invalid quantization mode. Expected one of {MODES}. Layer "
            f"'{layer_name}' received quantization_mode={mode!r}. Pass "
            "'int8' or 'int4'."
        )


_CONFIGS = {
    "int8": keras.quantizers.Int8QuantizationConfig,
    "int4": keras.quantizers.Int4QuantizationConfig,
}


def resolve_config(mode, config):
    """`(mode, config)` as Keras resolves `quantize`'s arguments: the
    config's mode, or the mode's default config (int4: groups of 128)."""
    if config is not None:
        if mode is not None and mode != config.mode:
            raise ValueError(
                f"`quantize` received mode={mode!r} and a config for mode "
                f"{config.mode!r}. Pass one, or both for the same mode."
            )
        mode = config.mode
    if mode not in MODES:
        raise ValueError(
            f"Invalid quantization mode. Expected one of {MODES}. "
            f"Received: mode={mode!r}"
        )
    return mode, config if config is not None else _CONFIGS[mode]()


def check_can_quantize(name, class_name, built, quantized, policy, mode, dtype):
    """Keras's rules for quantizing a layer, with Keras's messages."""
    if not built:
        raise ValueError(
            "Cannot quantize a layer that isn't yet built. Layer "
            f"'{name}' (of type '{class_name}') is not built yet."
        )
    if quantized:
        raise ValueError(
            f"Layer '{name}' is already quantized with "
            f"dtype_policy='{policy}'. Received: mode={mode}"
        )
    if mode == "int8" and dtype == "float16":
        raise ValueError(
            f"Quantization mode='{mode}' doesn't work well with "
            "compute_dtype='float16'. Consider loading model/layer with "
            "another dtype policy such as 'mixed_bfloat16' or "
            "'mixed_float16' before calling `quantize()`."
        )


def block_size_setting(mode, config, dtype_policy):
    """The int4 group size as given (None, -1 or n): from `config`, else
    from an `int4/<n>` dtype policy (a reloaded model); None for int8."""
    if mode != "int4":
        return None
    if isinstance(config, keras.quantizers.Int4QuantizationConfig):
        return config.block_size
    size = getattr(dtype_policy, "block_size", None)
    return None if size is None else int(size)


def group_size(setting):
    """The group size a `block_size` setting means: None is per row."""
    return None if setting in (None, -1) else int(setting)


def policy_name(mode, setting, source_policy_name):
    """Keras's name of the quantized dtype policy, e.g. `int4/128_from_...`."""
    if mode == "int4":
        size = group_size(setting)
        mode = f"int4/{-1 if size is None else size}"
    return f"{mode}_from_{source_policy_name}"


def variable_specs(input_dim, output_dim, mode, size, vector_axis=1):
    """`[(name, shape, dtype, kind)]` in Keras's save order. `vector_axis`
    is the axis of length `output_dim`: 1 for `embeddings`, 0 for a
    reversible layer's untied `reverse_embeddings` (names prefixed
    `reverse_`). `kind` picks Keras's initial value."""
    prefix = "embeddings" if vector_axis == 1 else "reverse_embeddings"

    def shaped(vector, other):
        return (other, vector) if vector_axis == 1 else (vector, other)

    values = output_dim if mode == "int8" else (output_dim + 1) // 2
    specs = [(prefix, shaped(values, input_dim), "int8", "values")]
    if size is None:
        return specs + [(f"{prefix}_scale", (input_dim,), None, "scale")]
    groups = shaped(math.ceil(output_dim / size), input_dim)
    zero_dtype = "int8" if vector_axis == 1 else _REVERSE_ZERO_DTYPE
    specs += [(f"{prefix}_scale", groups, None, "scale")]
    specs += [(f"{prefix}_zero", groups, zero_dtype, "zero")]
    if vector_axis == 1:
        specs.append(("g_idx", (output_dim,), "float32", "zero"))
    return specs


def add_quantized_variables(add_weight, specs):
    """One non-trainable variable per spec, by name, in order."""
    return {
        name: add_weight(
            name=name,
            shape=shape,
            dtype=dtype,
            initializer=_INITIALIZERS[kind],
            trainable=False,
        )
        for name, shape, dtype, kind in specs
    }


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


def unpack_rows(packed, length):
    """Keras's int4 packing along the last axis, read without transposing:
    each byte holds an even column in its low nibble and the next one in
    its high nibble, both signed. (Keras's `unpack_int4` moves the axis to
    the front and back, two copies of the gathered rows.)"""
    low = ops.subtract(ops.bitwise_xor(ops.bitwise_and(packed, 15), 8), 8)
    high = ops.right_shift(packed, 4)
    pairs = ops.stack([low, high], axis=-1)
    columns = ops.reshape(pairs, (*ops.shape(packed)[:-1], -1))
    return columns[..., :length]


class QuantizedMatrix:
    """One quantized matrix, from its variables in `variable_specs` order.

    `vector_axis` as in `variable_specs`; `g_idx` is given for a reverse
    kernel, which shares the forward table's.
    """

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
        if self.mode != "int4":
            return values
        if self.vector_axis == 1:
            return unpack_rows(values, self.output_dim)
        return keras.quantizers.unpack_int4(values, self.output_dim, 0)

    def dequantize(self, codes, scale, zero=None, axis=-1):
        """Unpacked integer `codes` with their rows' `scale` / `zero`."""
        codes = ops.cast(codes, "float32")
        scale = ops.cast(scale, "float32")
        if zero is None:
            return codes / ops.expand_dims(scale, axis)
        groups = ops.cast(self.g_idx, "int32")
        scale = ops.take(scale, groups, axis=axis)
        zero = ops.take(ops.cast(zero, "float32"), groups, axis=axis)
        return (codes - zero) * scale

    def dense(self):
        axis = -1 if self.vector_axis == 1 else 0
        return self.dequantize(
            self.unpack(self.values), self.scale, self.zero, axis
        )


class QuantizedStorage(Storage):
    """Rows of an int8 or int4 table, dequantized as they are read. Not
    trainable (as Keras); LoRA's factors may train on top of it.

    Args:
        input_dim: Number of rows.
        output_dim: Length of each row.
        mode: "int8" or "int4".
        block_size: The int4 group size as configured (None or -1: one
            scale per row); ignored for int8.
        config: Optional `keras.quantizers.QuantizationConfig` whose weight
            quantizer `encode` uses.
    """

    def __init__(
        self, input_dim, output_dim, mode, block_size=None, config=None
    ):
        super().__init__(input_dim, output_dim)
        self.mode = mode
        self.block_size = block_size if mode == "int4" else None
        self.group_size = group_size(self.block_size)
        self.config = config

    def specs(self):
        return variable_specs(
            self.input_dim, self.output_dim, self.mode, self.group_size
        )

    def build(self, add_weight):
        self.variables = add_quantized_variables(add_weight, self.specs())
        if self.group_size is not None:
            columns = ops.arange(self.output_dim, dtype="float32")
            self.variables["g_idx"].assign(
                ops.floor_divide(columns, self.group_size)
            )

    @property
    def matrix(self):
        return QuantizedMatrix(
            list(self.variables.values()), self.mode, self.output_dim
        )

    def rows(self, ids):
        m = self.matrix
        codes = m.unpack(ops.take(m.values, ids, axis=0))
        zero = None if m.zero is None else ops.take(m.zero, ids, axis=0)
        return m.dequantize(codes, ops.take(m.scale, ids, axis=0), zero)

    def float_table(self):
        return self.matrix.dense()

    def encode(self, table):
        return quantize_matrix(table, self.mode, self.group_size, self.config)

    @property
    def embeddings(self):
        # As Keras's quantized layer: the integer codes, int4 unpacked.
        m = self.matrix
        return m.unpack(m.values)


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
