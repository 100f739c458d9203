import os

import pytest


def pytest_configure(config):
    # Keras silently falls back to TensorFlow when KERAS_BACKEND is unset,
    # which would let a whole backend's run test the wrong thing.
    if not os.environ.get("KERAS_BACKEND"):
        raise pytest.UsageError(
            "KERAS_BACKEND is not set. Run the tests through tox, or set "
            "KERAS_BACKEND to tensorflow, jax or torch."
        )


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    import keras

    keras.utils.clear_session()
    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")
