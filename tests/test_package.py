"""What the package imports, and that the test run uses the backend it names."""

import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import keras

import keras_embed
from keras_embed import _keras_private

PACKAGE_DIR = pathlib.Path(keras_embed.__file__).parent
ALLOWED_ROOTS = {"keras", "numpy", "keras_embed"} | set(sys.stdlib_module_names)
# The one module that may import a backend, inside its functions only: the
# in-place row writes of row-sparse state (docs/row_sparse.md).
BACKEND_MODULE = PACKAGE_DIR / "row_sparse" / "_inplace.py"
BACKEND_ROOTS = {"tensorflow", "torch"}


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_package_imports_only_keras_numpy_and_stdlib():
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert files, "no package sources found"
    offenders = [
        f"{path.name}: {module}"
        for path in files
        for module in imported_modules(path)
        if not (path == BACKEND_MODULE and module in BACKEND_ROOTS)
        if module.split(".")[0] not in ALLOWED_ROOTS
        or module.startswith("keras.src")
    ]
    assert not offenders, offenders


def test_only_the_in_place_module_imports_a_backend_and_lazily():
    importers = {
        path
        for path in PACKAGE_DIR.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in BACKEND_ROOTS | {"jax"}
    }
    assert importers == {BACKEND_MODULE}
    tree = ast.parse(BACKEND_MODULE.read_text())
    top_level = [
        alias.name
        for node in tree.body
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not {m.split(".")[0] for m in top_level} & BACKEND_ROOTS, top_level


def test_import_walk_would_catch_a_backend_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nfrom keras.src import ops\n")
    assert list(imported_modules(bad)) == ["torch", "keras.src"]


def private_reads(path):
    """`obj._name` where `obj` is neither `self` nor `cls`: reads of another
    object's private attributes (dunders excepted)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (
                isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            )
            and not _is_super_call(node.value)
        ):
            yield f"{path.name}:{node.lineno}: .{node.attr}"


def _is_super_call(node):
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
    )


def test_package_reads_no_other_objects_private_attributes():
    offenders = [
        read
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for read in private_reads(path)
    ]
    assert not offenders, offenders


def keras_private_names():
    """The private attribute names Keras's layer machinery uses on `self`,
    read from its sources (without importing `keras.src`)."""
    spec = importlib.util.find_spec("keras")
    src = pathlib.Path(spec.submodule_search_locations[0]) / "src"
    files = [
        src / "layers" / "layer.py",
        src / "ops" / "operation.py",
        src / "layers" / "core" / "embedding.py",
        src / "layers" / "core" / "reversible_embedding.py",
        *sorted((src / "backend").glob("*/layer.py")),
    ]
    names = set()
    for path in files:
        names |= set(re.findall(r"\bself\.(_[a-z]\w*)", path.read_text()))
    return names


def self_private_names(path):
    """Every `self._name` read or written, and every method or property
    `_name` defined, in one of our files."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            yield node.attr
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("_"):
            if not node.name.startswith("__"):
                yield node.name


def test_keras_private_attributes_used_are_the_listed_ones():
    keras_names = keras_private_names()
    assert {"_tracker", "_embeddings", "_untrack_variable"} <= keras_names
    listed = set(_keras_private.USED) | set(_keras_private.EXPOSED)
    ours = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for name in self_private_names(path)
        if name in keras_names and name not in listed
    }
    # A name of ours that Keras also uses would be read or overwritten by
    # Keras's own code: only the listed ones may be.
    assert not ours, sorted(ours)
    for why in (
        *_keras_private.USED.values(),
        *_keras_private.EXPOSED.values(),
    ):
        assert len(why) > 40


def test_private_read_walk_would_catch_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "x = layer._index_dtype\ny = self._mine\nz = a.__doc__\n"
        "w = super()._parent_method()\n"
    )
    assert list(private_reads(bad)) == ["bad.py:1: ._index_dtype"]


def test_keras_backend_is_the_one_tox_set():
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]


def test_public_api():
    assert keras_embed.__all__ == [
        "Embedding",
        "EmbeddingBag",
        "FloatStorage",
        "HashedEmbedding",
        "InvalidIdCheck",
        "InvalidIdCount",
        "LoraStorage",
        "PretrainedVectors",
        "QuantizedStorage",
        "QuotientRemainderEmbedding",
        "ReversibleEmbedding",
        "RowSparseFlush",
        "Storage",
        "hash_ids",
        "key_halves",
        "load_word_vectors",
        "row_sparse",
        "storage",
        "string_keys",
    ]
    assert keras_embed.row_sparse.__all__ == [
        "SGD",
        "Adagrad",
        "LazyAdam",
        "RowOptimizer",
        "RowSparseFlush",
        "RowSparseStorage",
        "RowSparseTable",
        "RowwiseAdagrad",
        "check_max_ids_per_step",
        "flush_model",
        "get",
        "serialize",
    ]
    assert keras_embed.__version__ == "0.3.0.dev0"
    row_optimizers = (
        keras_embed.row_sparse.SGD,
        keras_embed.row_sparse.Adagrad,
        keras_embed.row_sparse.LazyAdam,
        keras_embed.row_sparse.RowwiseAdagrad,
    )
    registered = (
        keras_embed.Embedding,
        keras_embed.ReversibleEmbedding,
        keras_embed.EmbeddingBag,
        keras_embed.HashedEmbedding,
        *row_optimizers,
    )
    for layer in registered:
        assert (
            keras.saving.get_registered_name(layer)
            == f"keras_embed>{layer.__name__}"
        )


def test_importing_keras_embed_does_not_import_tensorflow():
    if keras.backend.backend() == "tensorflow":
        return_code_expected = 1  # TensorFlow is the backend: it is loaded.
    else:
        return_code_expected = 0
    code = (
        "import sys, keras_embed\n"
        "sys.exit(1 if 'tensorflow' in sys.modules else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=os.environ, capture_output=True
    )
    assert result.returncode == return_code_expected, result.stderr[-2000:]


def _package_trees():
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def test_no_mixins_and_one_place_sets_the_storage():
    mixins, storage_assignments = [], []
    for path, tree in _package_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin"):
                mixins.append(f"{path.name}: {node.name}")
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = getattr(node, "targets", None) or [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and target.attr == "_storage"
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        storage_assignments.append(f"{path.name}:{node.lineno}")
    assert mixins == []
    # `Embedding.__init__` starts it at None; `Embedding._install` sets it.
    assert [a.split(":")[0] for a in storage_assignments] == [
        "embedding.py",
        "embedding.py",
    ], storage_assignments


def test_no_layer_detects_its_subclass():
    found = []
    for path, tree in _package_trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "hasattr"
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "self"
            ):
                found.append(f"{path.name}:{node.lineno}: hasattr(self, ...)")
            if isinstance(node, ast.Attribute) and node.attr == "signature":
                found.append(f"{path.name}:{node.lineno}: inspect.signature")
    assert found == []


# Makes the backend's package unimportable, as in an environment with the
# wheel and Keras but no backend.
_NO_BACKEND = """
import importlib.abc, os, sys
backend = os.environ["KERAS_BACKEND"]
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == backend:
            raise ModuleNotFoundError(f"No module named {backend!r}", name=name)
sys.meta_path.insert(0, Missing())
import {module}
"""


def test_without_a_backend_the_error_is_keras_own():
    errors = {}
    for module in ("keras", "keras_embed"):
        result = subprocess.run(
            [sys.executable, "-c", _NO_BACKEND.replace("{module}", module)],
            env=os.environ,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1, result.stderr[-2000:]
        errors[module] = result.stderr.strip().splitlines()[-1]
    backend = keras.backend.backend()
    assert (
        errors["keras"] == f"ModuleNotFoundError: No module named '{backend}'"
    )
    assert errors["keras_embed"] == errors["keras"]
