import gzip
import json

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import load_word_vectors
from tests import testing

GLOVE = """the 0.1 0.2 -0.3
cat 1.0 -2.0 3.5
dog 4 5 6
. . . 7 8 9
the 9 9 9
"""
VOCAB = ["", "[UNK]", "the", "cat", "zebra", ". . ."]


def write(tmp_path, text, name="vectors.txt"):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as file:
            file.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def reference_matrix(found, vocab, dim, seed=0):
    """The documented rule, in NumPy: found vectors, a seeded normal with
    the found values' std elsewhere, zeros for the padding token."""
    std = np.std(np.array(list(found.values()), dtype="float32"))
    matrix = np.random.default_rng(seed).normal(0, std, (len(vocab), dim))
    matrix = matrix.astype("float32")
    for row, word in enumerate(vocab):
        if word in found:
            matrix[row] = found[word]
        if word == "":
            matrix[row] = 0
    return matrix


def test_glove_file_builds_the_documented_matrix(tmp_path):
    vectors = load_word_vectors(write(tmp_path, GLOVE), VOCAB)
    found = {
        "the": [0.1, 0.2, -0.3],  # the first of two vectors wins
        "cat": [1.0, -2.0, 3.5],
        ". . .": [7, 8, 9],  # words may hold spaces, as in glove.840B
    }
    np.testing.assert_array_equal(
        vectors.matrix, reference_matrix(found, VOCAB, 3)
    )
    assert vectors.matrix.dtype == np.float32
    assert (vectors.found, vectors.missing) == (3, ("zebra",))
    assert vectors.coverage == 0.75
    assert vectors.padding_id == 0
    assert vectors.file_format == "glove"
    assert "found=3, missing=1" in repr(vectors)


def test_word2vec_header_gzip_and_zeros_rule(tmp_path):
    text = "2 3\nthe 0.1 0.2 -0.3 \ncat 1.0 -2.0 3.5 \n"
    path = write(tmp_path, text, "vectors.txt.gz")
    vectors = load_word_vectors(
        path, ["the", "zebra", "cat"], missing="zeros", padding_token=None
    )
    expected = np.array([[0.1, 0.2, -0.3], [0, 0, 0], [1, -2, 3.5]])
    np.testing.assert_array_equal(vectors.matrix, expected.astype("float32"))
    assert vectors.file_format == "word2vec"
    assert vectors.padding_id is None


def test_vocabulary_from_a_lookup_layer(tmp_path):
    class Lookup:  # what StringLookup/TextVectorization offer
        def get_vocabulary(self):
            return ["", "[UNK]", "cat"]

    vectors = load_word_vectors(write(tmp_path, GLOVE), Lookup())
    assert vectors.vocabulary == ("", "[UNK]", "cat")
    assert (vectors.found, vectors.missing) == (1, ())
    if testing.backend() == "tensorflow":
        lookup = keras.layers.StringLookup(vocabulary=["the", "zebra"])
        vectors = load_word_vectors(write(tmp_path, GLOVE), lookup)
        assert vectors.vocabulary == ("[UNK]", "the", "zebra")
        assert all(type(word) is str for word in vectors.vocabulary)
        assert vectors.padding_id is None


def test_same_seed_same_matrix_other_seed_other_rows(tmp_path):
    path = write(tmp_path, GLOVE)
    a = load_word_vectors(path, VOCAB, seed=1).matrix
    b = load_word_vectors(path, VOCAB, seed=1).matrix
    c = load_word_vectors(path, VOCAB, seed=2).matrix
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[4], c[4])
    np.testing.assert_array_equal(a[2], c[2])


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        ("the 1 2 3\ncat 1 2\n", {}, r"line 2: expected a word and 3"),
        ("the 1 2 3\ncat 1 2 3 4\n", {}, r"line 2: .* more numbers"),
        ("the 1 2 3\ncat 1 x 3\n", {}, r"line 2: 'x' is not a number"),
        ("the 1 2 3\ncat 1 nan 3\n", {}, r"line 2: .*NaN"),
        ("the 1 2 3\n", {"dim": 4}, r"line 1: .* 4 numbers .*dim=4"),
        ("2 4\nthe 1 2 3 4\n", {"dim": 3}, r"header on line 1 .* size 4"),
        ("3 2\nthe 1 2\ncat 3 4\n", {}, r"announces 3 vectors.*holds 2"),
        ("", {}, r"empty"),
        ("dog 1 2\n", {}, r"No vocabulary word was found"),
    ],
)
def test_malformed_files_raise_with_line_numbers(tmp_path, text, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        load_word_vectors(write(tmp_path, text), ["the", "cat"], **kwargs)
    assert "vectors.txt" in str(error.value) or "vocabulary" in str(error.value)


def test_undecodable_bytes_name_the_encoding(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_bytes(b"the 1 2 3\ncaf\xe9 1 2 3\n")
    with pytest.raises(ValueError, match="line 2: .*not valid utf-8"):
        load_word_vectors(path, ["the"])
    vectors = load_word_vectors(path, ["café"], encoding="latin-1")
    assert vectors.found == 1


def test_bad_arguments_raise(tmp_path):
    path = write(tmp_path, GLOVE)
    with pytest.raises(ValueError, match="missing"):
        load_word_vectors(path, VOCAB, missing="mean")
    with pytest.raises(ValueError, match="vocabulary"):
        load_word_vectors(path, "the")


def test_from_pretrained_freezes_and_keeps_vectors_out_of_config(tmp_path):
    vectors = load_word_vectors(write(tmp_path, GLOVE), VOCAB)
    layer = Embedding.from_pretrained(
        vectors.matrix, padding_id=vectors.padding_id, mask_zero=True
    )
    assert (layer.input_dim, layer.output_dim) == (6, 3)
    assert not layer.trainable
    config = layer.get_config()
    assert "weights" not in config
    assert len(json.dumps(config)) < 2000
    ids = np.array([[2, 3, 0]], dtype="int32")
    np.testing.assert_array_equal(
        testing.to_numpy(layer(ids)), vectors.matrix[ids]
    )
    model = keras.Sequential([keras.Input((3,), dtype="int32"), layer])
    model.compile("sgd", "mse")
    model.fit(ids, np.ones((1, 3, 3)), verbose=0)
    np.testing.assert_array_equal(
        testing.to_numpy(layer.embeddings), vectors.matrix
    )
    reloaded = testing.save_and_load(model)
    np.testing.assert_array_equal(
        testing.to_numpy(reloaded.layers[0].embeddings), vectors.matrix
    )
    assert not reloaded.layers[0].trainable


def test_from_pretrained_unfrozen_trains():
    matrix = np.arange(12, dtype="float32").reshape(4, 3)
    layer = Embedding.from_pretrained(matrix, freeze=False)
    model = keras.Sequential([keras.Input((2,), dtype="int32"), layer])
    model.compile("sgd", "mse")
    model.fit(np.array([[1, 2]]), np.zeros((1, 2, 3)), verbose=0)
    assert not np.array_equal(testing.to_numpy(layer.embeddings), matrix)


@pytest.mark.parametrize("name", ["input_dim", "weights", "trainable"])
def test_from_pretrained_refuses_conflicting_arguments(name):
    with pytest.raises(ValueError, match=name):
        Embedding.from_pretrained(np.zeros((4, 3)), **{name: 1})
    with pytest.raises(ValueError, match="matrix"):
        Embedding.from_pretrained(np.zeros(4))
