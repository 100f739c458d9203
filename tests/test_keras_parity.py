"""Keras's own `Embedding` and `ReversibleEmbedding` test files, unmodified
but for the class under test.

The two files are read from the installed keras wheel
(`keras/src/layers/core/embedding_test.py` and
`reversible_embedding_test.py`), every `layers.Embedding` becomes
`keras_embed.Embedding` and every `layers.ReversibleEmbedding` becomes
`keras_embed.ReversibleEmbedding`, and the resulting modules' test classes
are collected here. Nothing else in them is changed: a drop-in is judged by
the original tests. The cases that cannot apply are listed, with why, in
`KNOWN_EXCEPTIONS` and docs/keras_parity.md; they are run and must fail.
"""

import importlib.util
import os
import re
import sys
import types
from pathlib import Path

import keras
import pytest

KERAS_TEST_FILES = {
    "embedding_test.py": ("Embedding", "EmbeddingTest"),
    "reversible_embedding_test.py": (
        "ReversibleEmbedding",
        "ReversibleEmbeddingTest",
    ),
}

# The cases that cannot pass, with why (also in docs/keras_parity.md). Each
# still runs Keras's method as it is and must fail with this error, so a
# change that makes it pass, or fail differently, is noticed.
_RANDOM_FLOAT_IDS = {
    "backends": ("tensorflow",),
    "raises": ValueError,
    "match": r"received an invalid id -?\d",
    "why": (
        "On TensorFlow the case feeds `tf.random.normal((32, 3))` floats to "
        "an exported model as ids. Keras's layer truncates them to integers "
        "(and reads negative ones from the end of the table); keras_embed "
        "refuses ids that are not whole numbers in range (docs/ids.md)."
    ),
}
KNOWN_EXCEPTIONS = {
    ("EmbeddingTest", "test_quantize_lora_integration_int8"): _RANDOM_FLOAT_IDS,
    ("EmbeddingTest", "test_quantize_lora_integration_int4"): _RANDOM_FLOAT_IDS,
}


def keras_test_source(file_name):
    """The text of one of Keras's layer test files, from the installed
    wheel (located without importing `keras.src`), or from the folder
    `KERAS_EMBED_KERAS_TESTS` names: keras-nightly ships no tests, so its
    tox environment unpacks keras 3.15.1's two files there."""
    folder = os.environ.get("KERAS_EMBED_KERAS_TESTS")
    if folder:
        root = Path(folder) / "keras"
    else:
        spec = importlib.util.find_spec("keras")
        root = Path(spec.submodule_search_locations[0])
    return (root / "src" / "layers" / "core" / file_name).read_text()


def swap_class(source, class_name):
    """`source` testing `keras_embed.<class_name>` instead of Keras's."""
    swapped, count = re.subn(
        rf"\blayers\.{class_name}\b", f"keras_embed.{class_name}", source
    )
    assert count > 0, f"no `layers.{class_name}` in Keras's test file"
    return "import keras_embed\n" + swapped


def load_swapped(file_name, class_name):
    name = f"keras_parity_{file_name.removesuffix('.py')}"
    module = types.ModuleType(name)
    module.__file__ = f"<keras {file_name}, {class_name} swapped>"
    sys.modules[name] = module
    source = swap_class(keras_test_source(file_name), class_name)
    code = compile(source, module.__file__, "exec")
    exec(code, module.__dict__)
    return module


def _expect_failure(method, rule):
    def expected_to_fail(self):
        with pytest.raises(rule["raises"], match=rule["match"]):
            method(self)

    expected_to_fail.__doc__ = rule["why"]
    return expected_to_fail


def with_known_exceptions(cls):
    """`cls` (Keras's test class), its known exceptions on this backend
    expected to fail as declared."""
    backend = keras.backend.backend()
    overrides = {
        method: _expect_failure(getattr(cls, method), rule)
        for (class_name, method), rule in KNOWN_EXCEPTIONS.items()
        if class_name == cls.__name__ and backend in rule["backends"]
    }
    return type(f"Keras{cls.__name__}", (cls,), overrides)


def _collect():
    for file_name, (class_name, test_class) in KERAS_TEST_FILES.items():
        module = load_swapped(file_name, class_name)
        cls = with_known_exceptions(getattr(module, test_class))
        globals()[cls.__name__] = cls


_collect()
