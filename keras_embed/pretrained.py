"""Reads word2vec/GloVe files into a matrix for a given vocabulary.

The file is streamed in blocks; only the vectors of vocabulary words are
kept, so memory is `len(vocabulary) * dim` whatever the file's size. The
readers are in `_word_vector_files.py`.
"""

import dataclasses
import os
from collections.abc import Iterable
from typing import Literal

import numpy as np
from keras import ops

from keras_embed import _word_vector_files

MISSING_RULES = ("normal", "zeros")
# Rows per step when the missing rule reads or writes the whole matrix, so
# its temporaries stay small beside the matrix.
_ROWS_PER_STEP = 8192


@dataclasses.dataclass(frozen=True, repr=False)
class PretrainedVectors:
    """What `load_word_vectors` found: the matrix and its coverage.

    Attributes:
        matrix: float32 NumPy array `(len(vocabulary), dim)`, one row per
            vocabulary entry, in vocabulary order.
        vocabulary: The vocabulary, as a tuple of strings.
        found: How many vocabulary words (special tokens excluded) had a
            vector in the file.
        missing: The vocabulary words (special tokens excluded) that had
            none, in vocabulary order; their rows follow the missing rule.
        padding_id: Row of the padding token, or None if the vocabulary has
            none: pass it on as `Embedding(padding_id=...)`.
        file_format: "glove" (text, no header), "word2vec" (text after a
            "count dim" header) or "word2vec_binary".
    """

    matrix: np.ndarray
    vocabulary: tuple[str, ...]
    found: int
    missing: tuple[str, ...]
    padding_id: int | None
    file_format: str

    @property
    def coverage(self) -> float:
        """Fraction of the (non-special) vocabulary found in the file."""
        total = self.found + len(self.missing)
        return self.found / total if total else 1.0

    def __repr__(self) -> str:
        return (
            f"PretrainedVectors(shape={self.matrix.shape}, found={self.found}"
            f", missing={len(self.missing)}, coverage={self.coverage:.1%}, "
            f"file_format={self.file_format!r})"
        )


def load_word_vectors(
    path: str | os.PathLike,
    vocabulary: Iterable[str | bytes] | object,
    *,
    dim: int | None = None,
    missing: Literal["normal", "zeros"] = "normal",
    seed: int = 0,
    padding_token: str | None = "",
    oov_token: str | None = "[UNK]",
    encoding: str = "utf-8",
    binary: bool | None = None,
    verbose: Literal["auto", 0, 1, 2] = "auto",
) -> PretrainedVectors:
    """Builds an embedding matrix for `vocabulary` from a word-vector file.

    Reads GloVe files (`word v1 ... vd` per line), word2vec/fastText text
    files (the same after a first line `count dim`) and word2vec binary
    files (`count dim` line, then per word its bytes, a space and `dim`
    little-endian float32 values), plain or gzipped (`.gz`). A file with a
    `count dim` header is binary when the line after the header is not a
    word followed by `dim` numbers (`binary=None`); pass `binary=True` or
    `False` to skip that check. In text files fields are separated by
    single spaces; a word may itself contain spaces (as a few do in
    glove.840B), the last `dim` fields being the vector. When a word appears
    twice, its first vector is used. Only the vectors of vocabulary words
    are parsed, and they are written straight into the matrix.

    Rows are filled as follows:
    - the padding token (`padding_token`, "" as Keras lookups use; None to
      have none) gets zeros, whether or not the file has it;
    - a word found in the file gets its vector;
    - every other row, the OOV token included unless the file has it, is
      drawn from a normal distribution with mean 0 and the standard
      deviation of all the found values (`missing="normal"`): those rows,
      in vocabulary order, take consecutive draws of
      `np.random.default_rng(seed).normal(0, std, (rows, dim))`, so they
      are reproducible; or they are zeros (`missing="zeros"`).
    The padding and OOV tokens are not counted in `found`/`missing`.

    Args:
        path: Path of the vector file (`.gz` is decompressed on the fly).
        vocabulary: A list of words, or a layer with `get_vocabulary()`
            such as `keras.layers.StringLookup` / `TextVectorization`. Row
            `i` of the matrix belongs to word `i`.
        dim: Optional expected vector size; if given, a file of another
            size is refused. Otherwise taken from the header (word2vec) or
            the first line (GloVe).
        missing: "normal" or "zeros": how to initialise missing words.
        seed: Seed of the "normal" rule.
        padding_token: Vocabulary entry that is padding, or None.
        oov_token: Vocabulary entry for out-of-vocabulary ids, or None.
        encoding: Encoding of the words (and of text files); an
            ASCII-compatible one such as "utf-8" or "latin-1".
        binary: None to detect word2vec binary files, True or False to say.
        verbose: As in Keras: 0 is silent, 1 shows a progress bar over the
            file's bytes (`keras.utils.Progbar`), 2 prints one line when
            done, "auto" is 1 for files of 64 MiB or more and 0 otherwise.

    Returns:
        A `PretrainedVectors`: `.matrix` for `Embedding.from_pretrained`,
        and the coverage (`.found`, `.missing`, `.coverage`).

    Raises:
        ValueError: for a malformed line or vector, a truncated file or a
            dimension mismatch (naming the file, the line number, or the
            vector number and byte offset in binary files, what was wrong
            and the fix), when no vocabulary word is in the file under
            `missing="normal"`, or for bad arguments.

    Example:

    >>> vectors = load_word_vectors("glove.6B.50d.txt", lookup)
    >>> vectors
    PretrainedVectors(shape=(20000, 50), found=19012, missing=986, ...)
    >>> layer = Embedding.from_pretrained(
    ...     vectors.matrix, padding_id=vectors.padding_id, mask_zero=True)
    """
    if missing not in MISSING_RULES:
        raise ValueError(
            f"`missing` must be one of {MISSING_RULES}, but received "
            f"{missing!r}."
        )
    if binary not in (None, True, False):
        raise ValueError(
            f"`binary` must be None, True or False, but received {binary!r}."
        )
    words = _vocabulary_list(vocabulary)
    rows: dict[str, int] = {}
    for row, word in enumerate(words):
        rows.setdefault(word, row)
    read = _word_vector_files.read_vectors(
        path,
        rows,
        len(words),
        dim=dim,
        binary=binary,
        encoding=encoding,
        verbose=verbose,
    )
    matrix, in_file = read.matrix, read.found
    if missing == "normal" and not in_file.any():
        raise ValueError(
            "No vocabulary word was found in the vector file, so the "
            "'normal' rule has no scale to draw missing words with. "
            "Check that the vocabulary matches the file's words (case, "
            "tokenization), or pass missing='zeros'."
        )
    found = _copy_repeated_words(words, rows, matrix, in_file)
    padding_id = rows.get(padding_token) if padding_token is not None else None
    filled = found.copy()
    if padding_id is not None:
        filled[padding_id] = True
    if missing == "normal" and not filled.all():
        # The scale includes the file's vector for the padding token, if
        # any, as it is read before that row is zeroed.
        std = _found_std(matrix, in_file)
        _draw_missing(matrix, filled, std, seed)
    if padding_id is not None:
        matrix[padding_id] = 0.0
    special = (padding_token, oov_token)
    counted = [
        (w, hit)
        for w, hit in zip(words, found.tolist(), strict=True)
        if w not in special
    ]
    return PretrainedVectors(
        matrix=matrix,
        vocabulary=tuple(words),
        found=sum(hit for _, hit in counted),
        missing=tuple(w for w, hit in counted if not hit),
        padding_id=padding_id,
        file_format=read.file_format,
    )


def _vocabulary_list(vocabulary):
    if hasattr(vocabulary, "get_vocabulary"):
        vocabulary = vocabulary.get_vocabulary()
    if isinstance(vocabulary, list) and all(type(w) is str for w in vocabulary):
        return list(vocabulary)
    if isinstance(vocabulary, (str, bytes)) or not hasattr(
        vocabulary, "__iter__"
    ):
        raise ValueError(
            "`vocabulary` must be a list of words or a layer with "
            "`get_vocabulary()` (StringLookup, TextVectorization), but "
            f"received {type(vocabulary).__name__}."
        )
    words = [
        w.decode("utf-8") if isinstance(w, bytes) else w for w in vocabulary
    ]
    for word in words:
        if not isinstance(word, str):
            raise ValueError(
                "`vocabulary` must hold strings, but it holds "
                f"{word!r} of type {type(word).__name__}."
            )
    if not words:
        raise ValueError("`vocabulary` is empty; pass at least one word.")
    # StringLookup returns NumPy strings; plain str keeps reprs readable.
    return [str(word) for word in words]


def _copy_repeated_words(words, rows, matrix, in_file):
    """A word listed twice gets its vector in every row it has; returns
    the rows that hold a vector from the file."""
    found = in_file.copy()
    if len(rows) == len(words):
        return found
    for row, word in enumerate(words):
        first = rows[word]
        if first != row and in_file[first]:
            matrix[row] = matrix[first]
            found[row] = True
    return found


def _found_std(matrix, found):
    """np.std of the found rows' values, summed in float64 in steps of
    rows, so that no copy of the matrix is made."""
    total, count = 0.0, 0
    for block in _found_blocks(matrix, found):
        total += float(block.sum(dtype="float64"))
        count += block.size
    mean = total / count
    squares = 0.0
    for block in _found_blocks(matrix, found):
        squares += float(np.square(block - mean, dtype="float64").sum())
    return (squares / count) ** 0.5


def _found_blocks(matrix, found):
    for begin in range(0, len(matrix), _ROWS_PER_STEP):
        rows = slice(begin, begin + _ROWS_PER_STEP)
        yield matrix[rows][found[rows]]


def _draw_missing(matrix, found, std, seed):
    """Consecutive normal draws for the rows not found, in row order."""
    rng = np.random.default_rng(seed)
    empty = np.flatnonzero(~found)
    for begin in range(0, len(empty), _ROWS_PER_STEP):
        rows = empty[begin : begin + _ROWS_PER_STEP]
        draws = rng.normal(0.0, std, (len(rows), matrix.shape[1]))
        matrix[rows] = draws.astype("float32")


def pretrained_matrix(matrix, kwargs):
    """`matrix` as the NumPy `(input_dim, output_dim)` weights of a layer's
    `from_pretrained`, refusing the arguments it sets itself."""
    for name in ("input_dim", "output_dim", "weights", "trainable"):
        if name in kwargs:
            raise ValueError(
                f"`from_pretrained` sets `{name}` from `matrix` and "
                f"`freeze`; do not pass `{name}`."
            )
    matrix = np.asarray(ops.convert_to_numpy(matrix))
    if matrix.ndim != 2:
        raise ValueError(
            "`from_pretrained` expects an (input_dim, output_dim) matrix, "
            f"but received shape {matrix.shape}."
        )
    return matrix
