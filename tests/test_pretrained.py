import gzip
import json

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import _word_vector_files
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
    """The documented rule, in NumPy: found vectors, zeros for the padding
    token, and for every other row, in vocabulary order, consecutive draws
    of a seeded normal with the found values' std."""
    values = np.array(list(found.values()), dtype="float32")
    std = np.std(values.astype("float64"))
    empty = [row for row, w in enumerate(vocab) if w not in found and w]
    draws = np.random.default_rng(seed).normal(0, std, (len(empty), dim))
    matrix = np.zeros((len(vocab), dim), dtype="float32")
    matrix[empty] = draws
    for row, word in enumerate(vocab):
        if word in found:
            matrix[row] = found[word]
    return matrix


def test_glove_file_builds_the_documented_matrix(tmp_path):
    vectors = load_word_vectors(write(tmp_path, GLOVE), VOCAB)
    found = {
        "the": [0.1, 0.2, -0.3],  # the first of two vectors wins
        "cat": [1.0, -2.0, 3.5],
        ". . .": [7, 8, 9],  # words may hold spaces, as in glove.840B
    }
    # rtol: the std is summed in another order than np.std's.
    np.testing.assert_allclose(
        vectors.matrix, reference_matrix(found, VOCAB, 3), rtol=1e-6
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


def write_binary(path, words, matrix, newline=True, header=None):
    """A word2vec binary file, as word2vec.c (a newline after each vector)
    or gensim (none) write it."""
    count, dim = header or matrix.shape
    data = [f"{count} {dim}\n".encode()]
    for word, vector in zip(words, matrix, strict=True):
        data.append(word.encode("utf-8") + b" ")
        data.append(np.asarray(vector, dtype="<f4").tobytes())
        if newline:
            data.append(b"\n")
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as file:
        file.write(b"".join(data))
    return path


def random_vectors(count, dim, seed=0):
    rng = np.random.default_rng(seed)
    words = [f"w{i}é" for i in range(count)]  # multi-byte UTF-8 too
    return words, rng.normal(size=(count, dim)).astype("float32")


@pytest.mark.parametrize("newline", [True, False], ids=["word2vec_c", "gensim"])
@pytest.mark.parametrize("name", ["vectors.bin", "vectors.bin.gz"])
def test_word2vec_binary_is_detected_and_read_exactly(tmp_path, newline, name):
    words, matrix = random_vectors(50, 7)
    path = write_binary(tmp_path / name, words, matrix, newline=newline)
    vocab = ["", "[UNK]", words[3], "zebra", words[0], words[49]]
    vectors = load_word_vectors(path, vocab, missing="zeros")
    assert vectors.file_format == "word2vec_binary"
    expected = np.zeros((6, 7), dtype="float32")
    expected[[2, 4, 5]] = matrix[[3, 0, 49]]
    np.testing.assert_array_equal(vectors.matrix, expected)
    assert (vectors.found, vectors.missing) == (3, ("zebra",))
    explicit = load_word_vectors(path, vocab, missing="zeros", binary=True)
    np.testing.assert_array_equal(explicit.matrix, expected)


def test_text_and_binary_files_of_the_same_vectors_agree(tmp_path):
    words, matrix = random_vectors(40, 5, seed=1)
    binary = write_binary(tmp_path / "v.bin", words, matrix)
    lines = [f"{len(words)} 5"] + [
        w + " " + " ".join(repr(float(v)) for v in row)
        for w, row in zip(words, matrix, strict=True)
    ]
    text = write(tmp_path, "\n".join(lines) + "\n", "v.txt")
    vocab = ["", *reversed(words), "missing"]
    from_text = load_word_vectors(text, vocab)
    from_binary = load_word_vectors(binary, vocab)
    assert from_text.file_format == "word2vec"
    np.testing.assert_array_equal(from_text.matrix, from_binary.matrix)
    np.testing.assert_array_equal(from_text.matrix[1:41], matrix[::-1])


def test_small_blocks_give_the_same_matrix_and_line_numbers(
    tmp_path, monkeypatch
):
    words, matrix = random_vectors(60, 4, seed=2)
    lines = [
        w + " " + " ".join(f"{v:.6f}" for v in row)
        for w, row in zip(words, matrix, strict=True)
    ]
    text = write(tmp_path, "\n".join(lines) + "\n")
    binary = write_binary(tmp_path / "v.bin", words, matrix)
    whole_text = load_word_vectors(text, words).matrix
    whole_binary = load_word_vectors(binary, words).matrix
    # Blocks shorter than a line or a vector: every boundary case is hit.
    monkeypatch.setattr(_word_vector_files, "BLOCK_BYTES", 7)
    np.testing.assert_array_equal(
        load_word_vectors(text, words).matrix, whole_text
    )
    np.testing.assert_array_equal(
        load_word_vectors(binary, words).matrix, whole_binary
    )
    np.testing.assert_array_equal(whole_binary, matrix)
    lines[41] = lines[41].replace(" ", " x", 1)
    bad = write(tmp_path, "\n".join(lines) + "\n", "bad.txt")
    with pytest.raises(ValueError, match="line 42: 'x.*' is not a number"):
        load_word_vectors(bad, words)


def test_a_word_listed_twice_gets_its_vector_in_both_rows(tmp_path):
    vectors = load_word_vectors(write(tmp_path, GLOVE), ["cat", "the", "cat"])
    np.testing.assert_array_equal(vectors.matrix[0], vectors.matrix[2])
    np.testing.assert_array_equal(vectors.matrix[0], [1.0, -2.0, 3.5])


def binary_bytes(words, matrix, header=None):
    count, dim = header or matrix.shape
    data = f"{count} {dim}\n".encode()
    for word, vector in zip(words, matrix, strict=True):
        data += word.encode("latin-1") + b" " + vector.astype("<f4").tobytes()
    return data


BINARY_WORDS = ["the", "cat"]
BINARY_MATRIX = np.array([[1, 2, 3], [4, 5, 6]], dtype="float32")
# "2 3\n" is 4 bytes, "the " 4, the vector 12: "cat" starts at byte 20.
BINARY_OK = binary_bytes(BINARY_WORDS, BINARY_MATRIX)


@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        (
            BINARY_OK[:-5],
            {},
            r"vector 2 at byte 20: the file ends inside "
            r"the vector of b'cat' \(expected 12 bytes, found 7\).*truncated",
        ),
        (
            binary_bytes(BINARY_WORDS, BINARY_MATRIX, (3, 3)),
            {},
            r"header announces 3 vectors, but the file holds 2",
        ),
        (
            BINARY_OK + b"dog 1234",
            {},
            r"announces 2 vectors, but more data follows them at byte 36",
        ),
        (
            binary_bytes(["the", "caf\xe9"], BINARY_MATRIX),
            {},
            r"vector 2 at byte 20: the word b'caf\\xe9' is not valid utf-8.*"
            r"encoding='latin-1'",
        ),
        (
            binary_bytes(BINARY_WORDS, np.array([[1, 2, 3], [4, np.nan, 6]])),
            {},
            r"vector 2 at byte 20: the vector holds NaN or infinite",
        ),
        (
            binary_bytes(BINARY_WORDS, BINARY_MATRIX, (2, 4)),
            {"dim": 3},
            r"header on line 1 gives vectors of size 4, but dim=3",
        ),
        (
            b"2 3\n" + b"x" * 70_000,
            {"binary": True},
            r"vector 1 at byte 4: no space ends a word within 65536 bytes.*"
            r"binary=False",
        ),
        (
            b"the 1 2 3\n",
            {"binary": True},
            r"binary=True, but the file does not start with a 'count dim'",
        ),
    ],
    ids=[
        "truncated",
        "header_too_large",
        "extra_data",
        "encoding",
        "nan",
        "dim",
        "not_binary",
        "no_header",
    ],
)
def test_malformed_binary_files_name_the_vector_and_offset(
    tmp_path, data, kwargs, match
):
    path = tmp_path / "vectors.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as error:
        load_word_vectors(path, ["the", "cat"], **kwargs)
    assert "vectors.bin" in str(error.value)


def test_a_latin_1_binary_file_reads_with_its_encoding(tmp_path):
    path = tmp_path / "vectors.bin"
    path.write_bytes(binary_bytes(["the", "caf\xe9"], BINARY_MATRIX))
    vectors = load_word_vectors(path, ["café"], encoding="latin-1")
    np.testing.assert_array_equal(vectors.matrix, BINARY_MATRIX[1:])


def test_a_header_then_text_lines_is_read_as_text(tmp_path):
    path = write(tmp_path, "2 3\nthe 1 2 3\ncat 4 5 6\n")
    vectors = load_word_vectors(path, ["cat"])
    assert vectors.file_format == "word2vec"
    np.testing.assert_array_equal(vectors.matrix, [[4, 5, 6]])


def test_binary_false_reads_a_binary_file_as_text_and_says_so(tmp_path):
    path = tmp_path / "vectors.bin"
    # The values' bytes hold no space or newline: one line of bad bytes.
    path.write_bytes(BINARY_OK)
    message = "line 2: the bytes are not valid utf-8.*binary=None"
    with pytest.raises(ValueError, match=message):
        load_word_vectors(path, ["cat"], binary=False)


@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_shows_progress_in_mib(tmp_path, capsys, verbose):
    path = write(tmp_path, GLOVE)
    load_word_vectors(path, VOCAB, verbose=verbose)
    out = capsys.readouterr().out
    assert "1/1" in out and "MiB" in out, out
    assert out.count("\n") == 1, out


def test_auto_verbose_shows_progress_for_large_files_only(
    tmp_path, capsys, monkeypatch
):
    path = write(tmp_path, GLOVE)
    load_word_vectors(path, VOCAB)
    load_word_vectors(path, VOCAB, verbose=0)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(_word_vector_files, "PROGRESS_MIN_BYTES", 10)
    load_word_vectors(path, VOCAB)
    assert "1/1" in capsys.readouterr().out


def test_progress_counts_the_compressed_bytes_of_a_gz_file(
    tmp_path, capsys, monkeypatch
):
    words, matrix = random_vectors(3000, 50, seed=3)
    path = write_binary(tmp_path / "v.bin.gz", words, matrix)
    monkeypatch.setattr(_word_vector_files, "BLOCK_BYTES", 2**16)
    load_word_vectors(path, words, verbose=1)
    out = capsys.readouterr().out
    size = max(1, -(-path.stat().st_size // 2**20))
    assert f"{size}/{size}" in out, out


@pytest.mark.parametrize("kwargs", [{"verbose": 3}, {"binary": "yes"}])
def test_bad_reader_arguments_raise(tmp_path, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        load_word_vectors(write(tmp_path, GLOVE), VOCAB, **kwargs)
