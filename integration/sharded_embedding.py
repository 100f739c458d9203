"""An embedding table sharded along its vocabulary axis over 8 devices.

Uses `keras.distribution` (DeviceMesh, LayoutMap, ModelParallel), which
Keras 3.15 implements on JAX only. Try it on one machine with 8 virtual CPU
devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 KERAS_BACKEND=jax \\
        python integration/sharded_embedding.py

Prints the shard each device holds and compares `predict` with the same
model run on one device; exits 1 when they differ. On another backend, or
with fewer than 8 devices, it says why it skips and exits 77 (skipped).
`integration/run_all.py` sets the XLA flag for it on JAX.
"""

import sys

import keras
import numpy as np

from keras_embed import Embedding

DEVICES = 8
SKIPPED = 77


def skip_reason():
    if keras.backend.backend() != "jax":
        return (
            "keras.distribution is implemented only on JAX in Keras 3.15, "
            f"and the backend is {keras.backend.backend()}"
        )
    found = len(keras.distribution.list_devices())
    if found < DEVICES:
        return (
            f"it needs {DEVICES} devices and JAX has {found}; set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={DEVICES}"
        )
    return None


def build_model():
    inputs = keras.Input((None,), dtype="int32")
    x = Embedding(512, 16, mask_zero=True, name="item_embedding")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs)


def vocabulary_sharding():
    mesh = keras.distribution.DeviceMesh(
        shape=(DEVICES,),
        axis_names=["model"],
        devices=keras.distribution.list_devices()[:DEVICES],
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    # Keys are regexes matched against the whole variable path, here
    # "item_embedding/embeddings": rows split over "model", columns whole.
    layout_map[".*item_embedding/embeddings"] = ("model", None)
    return keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="model"
    )


def main():
    reason = skip_reason()
    if reason:
        print(f"SKIPPED the sharded embedding example: {reason}")
        return SKIPPED

    ids = np.random.RandomState(0).randint(1, 512, size=(32, 10))
    ids[:, 7:] = 0  # padding, masked out by mask_zero=True

    one_device = build_model()
    expected = one_device.predict(ids, verbose=0)

    distribution = vocabulary_sharding()
    with distribution.scope():
        model = build_model()
        model.set_weights(one_device.get_weights())
        table = model.get_layer("item_embedding").embeddings
        print(f"table {table.path}: shape {tuple(table.shape)}")
        for shard in table.value.addressable_shards:
            rows = shard.index[0]
            print(
                f"  {shard.device}: rows {rows.start}..{rows.stop - 1}, "
                f"shard shape {shard.data.shape}"
            )
        sharded = model.predict(ids, verbose=0)

    shapes = {shard.data.shape for shard in table.value.addressable_shards}
    difference = float(np.max(np.abs(sharded - expected)))
    print(f"largest |sharded - one device| over predict: {difference:.2e}")
    if shapes != {(512 // DEVICES, 16)}:
        print(f"FAIL: expected 8 shards of shape (64, 16), got {shapes}")
        return 1
    if not np.allclose(sharded, expected, rtol=1e-6, atol=1e-6):
        print("FAIL: sharded predict differs from one device")
        return 1
    print("OK: 8 shards of (64, 16); predict matches one device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
