"""On JAX and PyTorch, importing keras_embed must not import TensorFlow.

tox installs only the backend's own library, so TensorFlow is not even
installed in those environments; this script shows both facts. On the
TensorFlow backend there is nothing to show: it exits 77 (skipped).
"""

import importlib.util
import sys

import keras

import keras_embed  # noqa: F401

backend = keras.backend.backend()
loaded = "tensorflow" in sys.modules
installed = importlib.util.find_spec("tensorflow") is not None
print(
    f"[{backend}] keras_embed imported; tensorflow loaded={loaded}, "
    f"installed={installed}"
)
if backend == "tensorflow":
    print("SKIPPED: the backend is TensorFlow itself")
    sys.exit(77)
if loaded:
    print("FAIL: importing keras_embed loaded TensorFlow")
    sys.exit(1)
print("OK: TensorFlow was not imported")
sys.exit(0)
