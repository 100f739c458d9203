"""What the package imports, and that the test run uses the backend it names."""

import ast
import os
import pathlib
import subprocess
import sys

import keras

import keras_embed

PACKAGE_DIR = pathlib.Path(keras_embed.__file__).parent
ALLOWED_ROOTS = {"keras", "numpy", "keras_embed"} | set(sys.stdlib_module_names)


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
        if module.split(".")[0] not in ALLOWED_ROOTS
        or module.startswith("keras.src")
    ]
    assert not offenders, offenders


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
        ):
            yield f"{path.name}:{node.lineno}: .{node.attr}"


def test_package_reads_no_other_objects_private_attributes():
    offenders = [
        read
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for read in private_reads(path)
    ]
    assert not offenders, offenders


def test_private_read_walk_would_catch_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = layer._index_dtype\ny = self._mine\nz = a.__doc__\n")
    assert list(private_reads(bad)) == ["bad.py:1: ._index_dtype"]


def test_keras_backend_is_the_one_tox_set():
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]


def test_public_api():
    assert keras_embed.__all__ == [
        "DenseTable",
        "Embedding",
        "EmbeddingBag",
        "HashedEmbedding",
        "InvalidIdCheck",
        "LookupTable",
        "PretrainedVectors",
        "ReversibleEmbedding",
        "RowSparseFlush",
        "hash_ids",
        "key_halves",
        "load_word_vectors",
        "row_sparse",
        "string_keys",
        "tables",
    ]
    assert keras_embed.row_sparse.__all__ == [
        "SGD",
        "Adagrad",
        "LazyAdam",
        "RowOptimizer",
        "RowSparseFlush",
        "RowSparseTable",
        "flush_model",
        "get",
        "serialize",
    ]
    assert keras_embed.__version__ == "0.2.0"
    row_optimizers = (
        keras_embed.row_sparse.SGD,
        keras_embed.row_sparse.Adagrad,
        keras_embed.row_sparse.LazyAdam,
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
