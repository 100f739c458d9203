"""A small `run_layer_test`-style check built only on public Keras API."""

import os
import tempfile

import keras
import numpy as np
import pytest

# Grids whose every case costs seconds run a covering subset by default
# (each value of each axis, each pair of the two cheapest axes) and the
# whole product with KERAS_EMBED_FULL_GRID=1, to keep `tox` inside CI's
# time budget. Cases left out are reported as skipped, with this reason.
FULL_GRID = os.environ.get("KERAS_EMBED_FULL_GRID") == "1"


def grid(cases, default):
    """`pytest.param`s for every tuple in `cases`; those not in `default`
    run only with KERAS_EMBED_FULL_GRID=1."""
    skip = pytest.mark.skipif(
        not FULL_GRID, reason="full grid only: set KERAS_EMBED_FULL_GRID=1"
    )
    return [
        pytest.param(*case, marks=() if case in default else skip)
        for case in cases
    ]


def backend():
    return keras.backend.backend()


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def save_and_load(model):
    """Round-trips `model` through a `.keras` file, without custom_objects."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        return keras.saving.load_model(path)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights=1,
    expected_num_non_trainable_weights=0,
    expected_num_losses=0,
    supports_masking=False,
):
    """Checks config, serialization, build, symbolic/eager call, fit, mixed
    precision and `.keras` round trip of one layer configuration."""
    input_data = np.asarray(input_data)
    layer = layer_cls(**init_kwargs)

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "config round trip changed config"
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is layer_cls
    assert revived.get_config() == config, "serialization changed config"
    assert layer.supports_masking == supports_masking

    layer.build(input_data.shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == (
        expected_num_non_trainable_weights
    )
    # Invalid ids are counted by a metric, which is no weight or variable.
    assert [type(m).__name__ for m in layer.metrics] == ["InvalidIdCount"]
    assert len(layer.variables) == len(layer.weights)

    symbolic_in = keras.Input(
        batch_shape=input_data.shape, dtype=str(input_data.dtype)
    )
    symbolic_out = layer_cls(**init_kwargs)(symbolic_in)
    assert tuple(symbolic_out.shape) == tuple(expected_output_shape)

    eager_out = layer(input_data)
    assert tuple(eager_out.shape) == tuple(expected_output_shape)
    assert keras.backend.standardize_dtype(eager_out.dtype) == "float32"
    assert len(layer.losses) == expected_num_losses

    model = keras.Sequential(
        [
            keras.Input(
                batch_shape=input_data.shape, dtype=str(input_data.dtype)
            ),
            layer_cls(**init_kwargs),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = to_numpy(model.layers[-1].embeddings).copy()
    model.fit(input_data, np.ones(expected_output_shape), verbose=0)
    after = to_numpy(model.layers[-1].embeddings)
    used_rows = np.unique(input_data)
    assert not np.allclose(before[used_rows], after[used_rows]), (
        "one fit step did not train the rows of the ids it saw"
    )

    reloaded = save_and_load(model)
    np.testing.assert_array_equal(
        to_numpy(reloaded(input_data)), to_numpy(model(input_data))
    )

    mixed = layer_cls(**init_kwargs, dtype="mixed_float16")
    mixed_out = mixed(input_data)
    assert keras.backend.standardize_dtype(mixed_out.dtype) == "float16"
    assert keras.backend.standardize_dtype(mixed.embeddings.dtype) == "float32"


def computes_on_gpu():
    """Whether the backend runs float32 matmuls on a GPU, where they may use
    TF32 (10-bit mantissa) unless full float32 was asked for."""
    name = backend()
    if name == "jax":
        import jax

        precision = jax.config.jax_default_matmul_precision
        return jax.default_backend() == "gpu" and precision not in (
            "highest",
            "float32",
        )
    if name == "torch":
        import torch

        # Keras puts tensors on cuda whenever it is available; torch keeps
        # float32 matmuls in full float32 unless TF32 is allowed.
        return torch.cuda.is_available() and (
            torch.backends.cuda.matmul.allow_tf32
            or torch.get_float32_matmul_precision() != "highest"
        )
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU")) and (
        tf.config.experimental.tensor_float_32_execution_enabled()
    )


def matmul_tolerance(rtol, atol):
    """`assert_allclose` tolerances for outputs of float32 matmuls: `rtol`
    and `atol` on CPU; loose enough for TF32 on a GPU, which XLA (JAX, TF)
    uses by default and rounds inputs to about 3 decimal digits."""
    if computes_on_gpu():
        return {"rtol": max(rtol, 5e-3), "atol": max(atol, 5e-3)}
    return {"rtol": rtol, "atol": atol}


def rounded_to(values, dtype):
    """float32 `values` rounded to `dtype` (float16, bfloat16 or float32),
    returned as float32: what a cast to that compute dtype must give."""
    values = np.asarray(values, "float32")
    if dtype == "float16":
        return values.astype("float16").astype("float32")
    if dtype == "bfloat16":
        # Round to nearest even on the upper 16 bits of each float32.
        bits = values.view("uint32").astype("uint64")
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype("uint32").view("float32")
    assert dtype == "float32", dtype
    return values


class _MaskProbe(keras.layers.Layer):
    """Records the mask Keras hands it, as any downstream layer gets it."""

    def __init__(self):
        super().__init__()
        self.supports_masking = True
        self.mask = None

    def call(self, inputs, mask=None):
        self.mask = mask
        return inputs

    def compute_output_spec(self, inputs, mask=None):
        # Symbolic calls: the mask as a KerasTensor, not a backend tracer.
        self.mask = mask
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)


def mask_seen_downstream(outputs):
    """The mask a layer after `outputs` receives (None when there is none),
    through Keras's public mask passing rather than the private
    `_keras_mask` attribute. Works on eager and symbolic outputs."""
    probe = _MaskProbe()
    probe(outputs)
    return probe.mask
