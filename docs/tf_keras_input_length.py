"""What Keras 2 (tf_keras) does when `input_length` disagrees with the data.

Facts for keras_embed's choice (issue 18, item 6). Run in a venv of its own
(tf_keras is no dependency of this project):

    pip install "tf_keras==2.21.*" "tensorflow-cpu==2.21.0"
    TF_CPP_MIN_LOG_LEVEL=3 python docs/tf_keras_input_length.py

Seen with TensorFlow 2.21.0 and tf_keras 2.21.0 on CPU, for
`Embedding(10, 4, input_length=10)` given ids of length 7 or 12 in
`predict`, `fit` and a direct call (no warning in any case; `predict` and
`fit` wrap the error in tf.function's "in user code" trace, whose last
line is shown):

- first layer of a Sequential (`output_shape` (None, 10, 4)), also before
  Flatten + Dense(1) ((None, 1)), and functional after `keras.Input((10,))`:
  `ValueError: Input 0 of layer "sequential" is incompatible with the
  layer: expected shape=(None, 10), found shape=(None, 7)` (a direct call:
  `found shape=(2, 7)`; the functional model's error names the Model);
- functional after `keras.Input((None,))` ((None, None, 4)): runs, giving
  (2, 7, 4) and (2, 12, 4): `input_length` is ignored;
- functional after `keras.Input((7,))`: builds ((None, 7, 4)) and runs.

Length 10 runs everywhere. `layer.compute_output_shape((None, 7))` raises
`ValueError: "input_length" is 10, but received input has shape (None, 7)`,
but functional models never call it. So Keras 2 raises only through the
input spec of the Input that `input_length` created (first layer of a
Sequential); given an explicit Input, `input_length` is ignored.
"""

import os
import warnings

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402


def sequential():
    return keras.Sequential([keras.layers.Embedding(10, 4, input_length=10)])


def sequential_dense():
    return keras.Sequential(
        [
            keras.layers.Embedding(10, 4, input_length=10),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )


def functional(shape):
    inputs = keras.Input(shape, dtype="int32")
    outputs = keras.layers.Embedding(10, 4, input_length=10)(inputs)
    return keras.Model(inputs, outputs)


def outcome(label, function, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            print(f"  {label}: runs, {function(*args)}")
        except Exception as error:  # noqa: BLE001 (reporting any error)
            text = " ".join(str(error).split())
            if "ValueError:" in text:
                start = text.rfind("ValueError:") + len("ValueError:")
                text = text[start:].strip()
            print(f"  {label}: raises {type(error).__name__}: {text[:300]}")
    for warning in caught:
        print(f"    warning {warning.category.__name__}: {warning.message}")


def predict(model, x):
    return model.predict(x, verbose=0).shape


def fit(model, x, y):
    model.fit(x, y, verbose=0)
    return "trained"


def call(model, x):
    return tuple(model(x).shape)


def main():
    print("tensorflow", tf.__version__, "tf_keras", keras.__version__)
    builders = {
        "Sequential": sequential,
        "Sequential + Flatten + Dense": sequential_dense,
        "functional Input((10,))": lambda: functional((10,)),
        "functional Input((None,))": lambda: functional((None,)),
    }
    for name, build in builders.items():
        for length in (7, 10, 12):
            model = build()
            model.compile("sgd", "mse")
            print(f"{name}, length {length}: output_shape {model.output_shape}")
            x = np.random.randint(0, 10, size=(2, length))
            # The targets match the data (length), not input_length.
            y = np.zeros(
                (2, 1) if len(model.output_shape) == 2 else (2, length, 4)
            )
            outcome("predict", predict, model, x)
            outcome("fit", fit, model, x, y)
            outcome("call", call, model, x)
    print("functional Input((7,)):")
    outcome("build", lambda: functional((7,)).output_shape)
    layer = keras.layers.Embedding(10, 4, input_length=10)
    outcome(
        "compute_output_shape((None, 7))", layer.compute_output_shape, (None, 7)
    )


if __name__ == "__main__":
    main()
