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


def test_keras_backend_is_the_one_tox_set():
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]


def test_public_api():
    assert keras_embed.__all__ == [
        "Embedding",
        "EmbeddingBag",
        "PretrainedVectors",
        "RowSparseFlush",
        "load_word_vectors",
        "row_sparse",
    ]
    row_optimizers = (
        keras_embed.row_sparse.SGD,
        keras_embed.row_sparse.Adagrad,
        keras_embed.row_sparse.LazyAdam,
    )
    registered = (
        keras_embed.Embedding,
        keras_embed.EmbeddingBag,
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
