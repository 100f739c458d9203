"""Reads word2vec/GloVe text files into a matrix for a given vocabulary.

The file is streamed line by line; only the vectors of vocabulary words
are kept, so memory is `len(vocabulary) * dim` whatever the file's size.
"""

import dataclasses
import gzip

import numpy as np
from keras import ops

MISSING_RULES = ("normal", "zeros")


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
        file_format: "word2vec" (the file had a "count dim" header) or
            "glove".
    """

    matrix: np.ndarray
    vocabulary: tuple
    found: int
    missing: tuple
    padding_id: int | None
    file_format: str

    @property
    def coverage(self):
        """Fraction of the (non-special) vocabulary found in the file."""
        total = self.found + len(self.missing)
        return self.found / total if total else 1.0

    def __repr__(self):
        return (
            f"PretrainedVectors(shape={self.matrix.shape}, found={self.found}"
            f", missing={len(self.missing)}, coverage={self.coverage:.1%}, "
            f"file_format={self.file_format!r})"
        )


def load_word_vectors(
    path,
    vocabulary,
    *,
    dim=None,
    missing="normal",
    seed=0,
    padding_token="",
    oov_token="[UNK]",
    encoding="utf-8",
):
    """Builds an embedding matrix for `vocabulary` from a text vector file.

    Reads GloVe files (`word v1 ... vd` per line) and word2vec/fastText
    text files (the same after a first line `count dim`), plain or gzipped
    (`.gz`). Fields are separated by single spaces; a word may itself
    contain spaces (as a few do in glove.840B), the last `dim` fields being
    the vector. When a word appears twice, its first vector is used. Only
    the lines of vocabulary words have their numbers parsed.

    Rows are filled as follows:
    - the padding token (`padding_token`, "" as Keras lookups use; None to
      have none) gets zeros, whether or not the file has it;
    - a word found in the file gets its vector;
    - every other row, the OOV token included unless the file has it, is
      drawn from a normal distribution with mean 0 and the standard
      deviation of all the found values (`missing="normal"`, seeded by
      `seed`, so reproducible), or is zeros (`missing="zeros"`).
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
        encoding: Text encoding of the file.

    Returns:
        A `PretrainedVectors`: `.matrix` for `Embedding.from_pretrained`,
        and the coverage (`.found`, `.missing`, `.coverage`).

    Raises:
        ValueError: for a malformed line or a dimension mismatch (naming
            the file, the line number, what was wrong and the fix), when no
            vocabulary word is in the file under `missing="normal"`, or for
            bad arguments.

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
    words = _vocabulary_list(vocabulary)
    rows = {}
    for row, word in enumerate(words):
        rows.setdefault(word, row)
    reader = _VectorFileReader(path, dim, encoding)
    vectors = {}
    for word, fields, line_number in reader.lines():
        if word in rows and word not in vectors:
            vectors[word] = reader.parse(fields, line_number)
    matrix = _fill_matrix(words, vectors, reader.dim, missing, seed)
    padding_id = None
    if padding_token in rows:
        padding_id = rows[padding_token]
        matrix[padding_id] = 0.0
    counted = [w for w in words if w not in (padding_token, oov_token)]
    return PretrainedVectors(
        matrix=matrix,
        vocabulary=tuple(words),
        found=sum(1 for w in counted if w in vectors),
        missing=tuple(w for w in counted if w not in vectors),
        padding_id=padding_id,
        file_format=reader.file_format,
    )


def _vocabulary_list(vocabulary):
    if hasattr(vocabulary, "get_vocabulary"):
        vocabulary = vocabulary.get_vocabulary()
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


def _fill_matrix(words, vectors, dim, missing, seed):
    matrix = np.zeros((len(words), dim), dtype="float32")
    if missing == "normal":
        if not vectors:
            raise ValueError(
                "No vocabulary word was found in the vector file, so the "
                "'normal' rule has no scale to draw missing words with. "
                "Check that the vocabulary matches the file's words (case, "
                "tokenization), or pass missing='zeros'."
            )
        std = float(np.std(np.stack(list(vectors.values()))))
        draws = np.random.default_rng(seed).normal(0.0, std, matrix.shape)
        matrix[:] = draws.astype("float32")
    for row, word in enumerate(words):
        if word in vectors:
            matrix[row] = vectors[word]
    return matrix


class _VectorFileReader:
    """Streams (word, fields, line number) from a word2vec/GloVe text file
    and checks every line's shape against the file's dimension."""

    def __init__(self, path, dim, encoding):
        self.path = str(path)
        self.expected_dim = dim
        self.encoding = encoding
        self.dim = dim
        self.file_format = None
        self._dim_source = None

    def _open(self):
        # Binary lines, decoded one at a time, so a decoding error names
        # its line exactly.
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def lines(self):
        header_count = None
        vector_lines = 0
        with self._open() as file:
            for line_number, line in enumerate(file, start=1):
                fields = self._decode(line, line_number).split(" ")
                if fields == [""]:
                    continue
                if self.file_format is None:
                    header_count = self._first_line(fields, line_number)
                    if header_count is not None:
                        continue
                vector_lines += 1
                yield self._split(fields, line_number)
        if self.file_format is None:
            raise ValueError(f"{self.path} holds no vectors: it is empty.")
        if header_count is not None and header_count != vector_lines:
            raise ValueError(
                f"{self.path}: the word2vec header announces {header_count} "
                f"vectors, but the file holds {vector_lines}. The file is "
                "probably truncated; download it again."
            )

    def _decode(self, line, line_number):
        try:
            return line.decode(self.encoding).rstrip("\r\n ")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{self.path}, line {line_number}: the bytes are not valid "
                f"{self.encoding} ({error.reason}). Pass the file's "
                "encoding, e.g. encoding='latin-1'."
            ) from None

    def _first_line(self, fields, line_number):
        """Reads the header if there is one; sets dim and file_format."""
        if len(fields) == 2 and all(f.isdigit() for f in fields):
            count, dim = int(fields[0]), int(fields[1])
            self.file_format = "word2vec"
            self._set_dim(dim, f"the header on line {line_number}")
            return count
        self.file_format = "glove"
        if self.expected_dim is None:
            self._set_dim(len(fields) - 1, f"line {line_number}")
        else:
            self._set_dim(self.expected_dim, f"dim={self.expected_dim}")
        return None

    def _set_dim(self, dim, source):
        if self.expected_dim is not None and dim != self.expected_dim:
            raise ValueError(
                f"{self.path}: {source} gives vectors of size {dim}, but "
                f"dim={self.expected_dim} was requested. Pass the file that "
                f"matches, or dim={dim}."
            )
        if dim < 1:
            raise ValueError(
                f"{self.path}: {source} holds a word but no numbers. Lines "
                "must read 'word v1 v2 ... vd' (GloVe), optionally after a "
                "'count dim' header line (word2vec text format)."
            )
        self.dim = dim
        self._dim_source = source

    def _split(self, fields, line_number):
        dim = self.dim
        if len(fields) < dim + 1:
            raise ValueError(
                f"{self.path}, line {line_number}: expected a word and {dim} "
                f"numbers (the vector size set by {self._dim_source}), but "
                f"found {len(fields) - 1} value(s) after it. Fix or remove "
                "the line; if the file mixes vector sizes it cannot be used "
                "as is."
            )
        if len(fields) > dim + 1 and _is_number(fields[-dim - 1]):
            raise ValueError(
                f"{self.path}, line {line_number}: expected a word and {dim} "
                f"numbers (the vector size set by {self._dim_source}), but "
                f"found more numbers ({len(fields) - 1} fields after the "
                "first). Fix or remove the line; if the file mixes vector "
                "sizes it cannot be used as is."
            )
        return " ".join(fields[:-dim]), fields[-dim:], line_number

    def parse(self, fields, line_number):
        try:
            vector = np.array([float(f) for f in fields], dtype="float32")
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise ValueError(
                f"{self.path}, line {line_number}: {bad!r} is not a number. "
                "Each line must read 'word v1 v2 ... vd' with decimal "
                "numbers; fix or remove the line."
            ) from None
        if not np.all(np.isfinite(vector)):
            raise ValueError(
                f"{self.path}, line {line_number}: the vector holds NaN or "
                "infinite values (or numbers too large for float32). Fix or "
                "remove the line."
            )
        return vector


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


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
