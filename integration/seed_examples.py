"""The tf.keras Embedding documentation examples, with our import.

Runs the example as the TF 2.0 and the TF 2.5 docs wrote it, plus the use
the docs give for `input_length` (Flatten then Dense). Prints what it shows
and exits non-zero when a result is wrong.
"""

import sys

import keras
import numpy as np

from keras_embed import Embedding


def tf_2_0_example():
    model = keras.Sequential()
    model.add(Embedding(1000, 64, input_length=10))
    # the model will take as input an integer matrix of size
    # (batch, input_length); now model.output_shape == (None, 10, 64).
    shape_before_data = model.output_shape
    input_array = np.random.randint(1000, size=(32, 10))
    model.compile("rmsprop", "mse")
    output_array = model.predict(input_array, verbose=0)
    assert output_array.shape == (32, 10, 64)
    return shape_before_data, output_array.shape


def tf_2_5_example():
    model = keras.Sequential()
    model.add(Embedding(1000, 64, input_length=10))
    input_array = np.random.randint(1000, size=(32, 10))
    model.compile("rmsprop", "mse")
    output_array = model.predict(input_array, verbose=0)
    print(f"TF 2.5 docs: print(output_array.shape) -> {output_array.shape}")
    return model.output_shape, output_array.shape


def flatten_dense_example():
    model = keras.Sequential()
    model.add(Embedding(1000, 8, input_length=10))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(1))
    model.compile("rmsprop", "mse")
    ids = np.random.randint(1000, size=(64, 10))
    model.fit(ids, np.random.rand(64, 1), epochs=1, verbose=0)
    return model.output_shape, model.predict(ids, verbose=0).shape


def main():
    checks = [
        ("TF 2.0 docs", tf_2_0_example, ((None, 10, 64), (32, 10, 64))),
        ("TF 2.5 docs", tf_2_5_example, ((None, 10, 64), (32, 10, 64))),
        ("Flatten+Dense", flatten_dense_example, ((None, 1), (64, 1))),
    ]
    failed = False
    for name, example, expected in checks:
        got = example()
        ok = got == expected
        failed |= not ok
        print(
            f"[{keras.backend.backend()}] {name}: model.output_shape={got[0]}, "
            f"model.predict(...).shape={got[1]}: "
            f"{'OK' if ok else f'WRONG, expected {expected}'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
