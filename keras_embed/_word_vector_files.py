"""Readers of word-vector files: GloVe and word2vec text, word2vec binary.

`read_vectors` streams a file in blocks of `BLOCK_BYTES` and writes the
vectors of the vocabulary's words straight into a preallocated float32
matrix, so memory stays the matrix plus one block whatever the file's
size. Text blocks are parsed in one `np.loadtxt` call per block; a block
that fails to parse is read again line by line, only to name the line
that is wrong and why.
"""

import dataclasses
import gzip
import io
import math
import os
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from typing import IO

import keras
import numpy as np

BLOCK_BYTES = 2 * 2**20
# "auto" shows a progress bar from this file size on (smaller files load in
# about a second).
PROGRESS_MIN_BYTES = 64 * 2**20
# word2vec.c caps words at 100 bytes; a longer run without a space means
# the file is not word2vec binary (or is damaged).
MAX_WORD_BYTES = 2**16
VERBOSE_VALUES = ("auto", 0, 1, 2)


@dataclasses.dataclass
class FileVectors:
    """The matrix a file filled: `found[row]` tells the rows it wrote."""

    matrix: np.ndarray
    found: np.ndarray
    file_format: str


def read_vectors(
    path: str | os.PathLike,
    rows: Mapping[str, int],
    num_rows: int,
    *,
    dim: int | None,
    binary: bool | None,
    encoding: str,
    verbose: str | int,
) -> FileVectors:
    """Fills row `rows[word]` of a `(num_rows, dim)` matrix with the vector
    of each word of the file found in `rows`; the first vector of a word
    wins."""
    with _Source(path, verbose) as source:
        header = _Header.read(source, dim, encoding)
        if binary and header.count is None:
            raise ValueError(
                f"{source.path}: binary=True, but the file does not start "
                "with a 'count dim' header line, as word2vec binary files "
                "do. Pass binary=None to detect the format."
            )
        if binary is None:
            binary = header.count is not None and not _looks_like_text(
                source.peek_line(), header.dim, encoding
            )
        reader: _Reader
        if binary:
            reader = _BinaryReader(source, header, rows, num_rows, encoding)
        else:
            reader = _TextReader(source, header, rows, num_rows, encoding)
        reader.read()
        return FileVectors(reader.matrix, reader.found, reader.file_format)


class _Source:
    """The file's bytes in blocks (decompressing `.gz`), with a progress
    bar over the bytes of the file on disk. `buffer[pos:]` is what is read
    and not consumed yet; `offset` is the position of `buffer[0]` in the
    (decompressed) data."""

    def __init__(self, path, verbose):
        if verbose not in VERBOSE_VALUES:
            raise ValueError(
                f"`verbose` must be one of {VERBOSE_VALUES}, but received "
                f"{verbose!r}."
            )
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        if verbose == "auto":
            verbose = 1 if self.size >= PROGRESS_MIN_BYTES else 0
        self.verbose = verbose
        self.buffer = b""
        self.pos = 0
        self.offset = 0
        self.progress: keras.utils.Progbar | None = None
        self.reported = 0

    def __enter__(self):
        self.raw: IO[bytes] = open(self.path, "rb")
        self.stream: IO[bytes] | gzip.GzipFile = self.raw
        if self.path.endswith(".gz"):
            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb")
        if self.verbose:
            self.progress = keras.utils.Progbar(
                max(1, math.ceil(self.size / 2**20)),
                verbose=self.verbose,
                unit_name="MiB",
            )
        return self

    def __exit__(self, *exc_info):
        self.stream.close()
        self.raw.close()

    def more(self) -> bool:
        """Appends the next block to the unconsumed bytes; False at the end
        of the file."""
        block = self.stream.read(BLOCK_BYTES)
        if self.progress is not None:
            target = self.progress.target
            done = math.ceil(self.raw.tell() / 2**20) if block else target
            done = min(done, target)
            # Progbar prints again on every update that reaches the target.
            if done > self.reported:
                self.progress.update(done)
                self.reported = done
        self.offset += self.pos
        self.buffer = self.buffer[self.pos :] + block
        self.pos = 0
        return bool(block)

    def line(self) -> bytes | None:
        """The next line without its newline; None at the end of file."""
        end = self.buffer.find(b"\n", self.pos)
        while end == -1:
            searched = len(self.buffer) - self.pos
            if not self.more():
                if self.pos == len(self.buffer):
                    return None
                end = len(self.buffer)
                break
            end = self.buffer.find(b"\n", searched)
        line = self.buffer[self.pos : end]
        self.pos = end + 1
        return line

    def peek_line(self) -> bytes:
        """The next line, or the next MAX_WORD_BYTES bytes, unconsumed."""
        while b"\n" not in self.buffer[self.pos :]:
            if len(self.buffer) - self.pos > MAX_WORD_BYTES or not self.more():
                break
        return self.buffer[self.pos :].split(b"\n", 1)[0]

    def lines(self) -> Iterator[list[bytes]]:
        """The rest of the file as blocks of whole lines."""
        while self.more():
            end = self.buffer.rfind(b"\n")
            if end >= self.pos:
                block = self.buffer[self.pos : end]
                self.pos = end + 1
                yield block.split(b"\n")
        if self.pos < len(self.buffer):
            yield self.buffer[self.pos :].split(b"\n")
            self.pos = len(self.buffer)


@dataclasses.dataclass
class _Header:
    """The "count dim" line of word2vec files; GloVe files have none."""

    count: int | None
    dim: int
    dim_source: str
    lines: int  # lines read so far (the header, or none)
    first_line: bytes | None  # a GloVe file's first line, to read again

    @classmethod
    def read(cls, source, expected_dim, encoding):
        number = 0
        line = b""
        while not line.strip(b"\r "):
            line = source.line()
            number += 1
            if line is None:
                raise ValueError(
                    f"{source.path} holds no vectors: it is empty."
                )
        text = _decode(line, number, source.path, encoding)
        fields = text.rstrip("\r ").split(" ")
        if len(fields) == 2 and all(f.isdigit() for f in fields):
            dim = _checked_dim(
                int(fields[1]),
                f"the header on line {number}",
                expected_dim,
                source.path,
            )
            return cls(
                int(fields[0]),
                dim,
                f"the header on line {number}",
                number,
                None,
            )
        if expected_dim is None:
            source_name = f"line {number}"
            dim = _checked_dim(len(fields) - 1, source_name, None, source.path)
        else:
            source_name = f"dim={expected_dim}"
            dim = expected_dim
        return cls(None, dim, source_name, number - 1, line)


def _checked_dim(dim, source_name, expected_dim, path):
    if expected_dim is not None and dim != expected_dim:
        raise ValueError(
            f"{path}: {source_name} gives vectors of size {dim}, but "
            f"dim={expected_dim} was requested. Pass the file that "
            f"matches, or dim={dim}."
        )
    if dim < 1:
        raise ValueError(
            f"{path}: {source_name} holds a word but no numbers. Lines "
            "must read 'word v1 v2 ... vd' (GloVe), optionally after a "
            "'count dim' header line (word2vec text format)."
        )
    return dim


def _looks_like_text(line, dim, encoding):
    """Whether the line after a word2vec header is a text vector line."""
    try:
        fields = line.decode(encoding).rstrip("\r ").split(" ")
    except UnicodeDecodeError:
        return False
    return len(fields) > dim and all(_is_number(f) for f in fields[-dim:])


class _Reader:
    file_format = ""

    def __init__(self, source, header, rows, num_rows, encoding):
        self.source = source
        self.path = source.path
        self.header = header
        self.dim = header.dim
        self.rows = rows
        self.encoding = encoding
        # np.zeros maps untouched pages lazily: rows never written cost no
        # memory until the missing rule fills them.
        self.matrix = np.zeros((num_rows, header.dim), dtype="float32")
        self.found = np.zeros(num_rows, dtype=bool)

    def read(self) -> None:
        raise NotImplementedError

    def _check_count(self, vectors):
        count = self.header.count
        if count is not None and count != vectors:
            raise ValueError(
                f"{self.path}: the word2vec header announces {count} "
                f"vectors, but the file holds {vectors}. The file is "
                "probably truncated; download it again."
            )


class _TextReader(_Reader):
    def read(self):
        self.file_format = "glove" if self.header.count is None else "word2vec"
        number = self.header.lines
        vectors = 0
        blocks = self.source.lines()
        if self.header.first_line is not None:
            blocks = _chain([[self.header.first_line]], blocks)
        for lines in blocks:
            vectors += self._block(lines, number)
            number += len(lines)
        self._check_count(vectors)

    def _decode(self, data, number):
        hint = ""
        if self.header.count is not None:
            hint = "; or, for a word2vec binary file, binary=None"
        return _decode(data, number, self.path, self.encoding, hint)

    def _block(self, lines, first_number):
        """Reads one block of lines; returns how many held a vector."""
        dim, rows, found = self.dim, self.rows, self.found
        targets, numbers, parts = [], [], []
        vectors = 0
        for number, line in enumerate(lines, start=first_number + 1):
            line = line.rstrip(b"\r ")
            if not line:
                continue
            vectors += 1
            if line.count(b" ") == dim:
                cut = line.index(b" ")
                word = self._decode(line[:cut], number)
            else:  # a word with spaces, or a line to report
                word, cut = self._split(line, number)
            row = rows.get(word)
            if row is not None and not found[row]:
                found[row] = True
                targets.append(row)
                numbers.append(number)
                parts.append(line[cut + 1 :])
        if targets:
            self.matrix[targets] = self._parse(parts, numbers)
        return vectors

    def _split(self, line, number):
        """The word and where its numbers start, checking the field count
        (the rule of every line, vocabulary word or not)."""
        dim = self.dim
        fields = self._decode(line, number).split(" ")
        if len(fields) < dim + 1:
            raise ValueError(
                f"{self.path}, line {number}: expected a word and {dim} "
                f"numbers (the vector size set by {self.header.dim_source}), "
                f"but found {len(fields) - 1} value(s) after it. Fix or "
                "remove the line; if the file mixes vector sizes it cannot "
                "be used as is."
            )
        if len(fields) > dim + 1 and _is_number(fields[-dim - 1]):
            raise ValueError(
                f"{self.path}, line {number}: expected a word and {dim} "
                f"numbers (the vector size set by {self.header.dim_source}), "
                f"but found more numbers ({len(fields) - 1} fields after the "
                "first). Fix or remove the line; if the file mixes vector "
                "sizes it cannot be used as is."
            )
        word = " ".join(fields[:-dim])
        return word, len(word.encode(self.encoding))

    def _parse(self, parts, numbers):
        try:
            values = np.loadtxt(
                io.BytesIO(b"\n".join(parts)),
                dtype="float32",
                delimiter=" ",
                comments=None,
                ndmin=2,
            )
        except ValueError:
            values = None
        if (
            values is not None
            and values.shape == (len(parts), self.dim)
            and np.isfinite(values).all()
        ):
            return values
        # The block holds a bad line: read it line by line to name it.
        return np.stack(
            [
                self._parse_line(p, n)
                for p, n in zip(parts, numbers, strict=True)
            ]
        )

    def _parse_line(self, part, number):
        fields = self._decode(part, number).split(" ")
        try:
            vector = np.array([float(f) for f in fields], dtype="float32")
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise ValueError(
                f"{self.path}, line {number}: {bad!r} is not a number. "
                "Each line must read 'word v1 v2 ... vd' with decimal "
                "numbers; fix or remove the line."
            ) from None
        if not np.all(np.isfinite(vector)):
            raise ValueError(
                f"{self.path}, line {number}: the vector holds NaN or "
                "infinite values (or numbers too large for float32). Fix or "
                "remove the line."
            )
        return vector


class _BinaryReader(_Reader):
    """word2vec.c's binary format: after the text header, per word its
    bytes, a space, `dim` little-endian float32 values, and optionally a
    newline (which word2vec.c writes and gensim does not)."""

    file_format = "word2vec_binary"

    def read(self):
        source, size = self.source, 4 * self.dim
        rows_get, encoding = self.rows.get, self.encoding
        seen = bytearray(len(self.found))
        written = memoryview(self.matrix.data).cast("B")
        # The vectors written since the last finiteness check, and where
        # each came from, to name a bad one.
        block: list[tuple[int, int, int]] = []
        buffer, pos = source.buffer, source.pos
        for record in range(1, self.header.count + 1):
            space = buffer.find(b" ", pos, pos + MAX_WORD_BYTES)
            if space == -1 or len(buffer) - space <= size:
                self._check_finite(block)
                source.pos = pos
                space = self._refill(record, size)
                buffer, pos = source.buffer, source.pos
            word_bytes = buffer[pos:space].lstrip(b"\n")
            try:
                word = word_bytes.decode(encoding)
            except UnicodeDecodeError as error:
                source.pos = pos
                self._bad_word(word_bytes, record, error)
            row = rows_get(word)
            if row is not None and not seen[row]:
                seen[row] = 1
                start = space + 1
                written[row * size : (row + 1) * size] = memoryview(buffer)[
                    start : start + size
                ]
                block.append((row, record, source.offset + pos))
            pos = space + 1 + size
        source.pos = pos
        self._check_finite(block)
        self._check_end()
        self.found[:] = np.frombuffer(bytes(seen), dtype=bool)
        if sys.byteorder == "big":
            self.matrix.byteswap(inplace=True)

    def _refill(self, record, size):
        """Reads on until the next word and its vector are in the buffer;
        returns where the space after the word is."""
        source = self.source
        space = self._word_end(record)
        start = source.offset + source.pos
        while len(source.buffer) - space <= size:
            before = source.pos
            more = source.more()
            space -= before
            if not more:
                word = source.buffer[source.pos : space].lstrip(b"\n")
                left = len(source.buffer) - space - 1
                raise ValueError(
                    f"{self.path}, vector {record} at byte {start}: the "
                    f"file ends inside the vector of {word!r} (expected "
                    f"{size} bytes, found {left}). The file is probably "
                    "truncated; download it again."
                )
        return space

    def _word_end(self, record):
        """Where the space after the next word is in `source.buffer`."""
        source = self.source
        searched = source.pos
        while True:
            space = source.buffer.find(b" ", searched)
            if space != -1 and space - source.pos <= MAX_WORD_BYTES:
                return space
            start = source.offset + source.pos
            if len(source.buffer) - source.pos > MAX_WORD_BYTES:
                raise ValueError(
                    f"{self.path}, vector {record} at byte {start}: no "
                    f"space ends a word within {MAX_WORD_BYTES} bytes, so "
                    "this is not a word2vec binary file, or it is damaged. "
                    "For a text file pass binary=False; otherwise download "
                    "the file again."
                )
            searched = len(source.buffer)
            before = source.pos
            if not source.more():
                if source.buffer[source.pos :].strip(b"\r\n "):
                    raise ValueError(
                        f"{self.path}, vector {record} at byte {start}: the "
                        "file ends inside a word. The file is probably "
                        "truncated; download it again."
                    )
                self._check_count(record - 1)
            searched -= before

    def _bad_word(self, word_bytes, record, error):
        start = self.source.offset + self.source.pos
        raise ValueError(
            f"{self.path}, vector {record} at byte {start}: the word "
            f"{word_bytes!r} is not valid {self.encoding} ({error.reason}). "
            "Pass the file's encoding, e.g. encoding='latin-1'."
        ) from None

    def _check_end(self):
        source = self.source
        while True:
            rest = source.buffer[source.pos :]
            if rest.strip(b"\r\n "):
                start = source.offset + source.pos
                raise ValueError(
                    f"{self.path}: the word2vec header announces "
                    f"{self.header.count} vectors, but more data follows "
                    f"them at byte {start}. Check the header, or download "
                    "the file again."
                )
            source.pos = len(source.buffer)
            if not source.more():
                return

    def _check_finite(self, block):
        if not block:
            return
        rows = [row for row, _, _ in block]
        vectors = self.matrix[rows]
        if sys.byteorder == "big":
            vectors = vectors.byteswap()
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            _, record, start = block[int(np.argmax(bad))]
            raise ValueError(
                f"{self.path}, vector {record} at byte {start}: the vector "
                "holds NaN or infinite values. Fix or remove it, or use a "
                "file without them."
            )
        block.clear()


def _chain(*iterables):
    for iterable in iterables:
        yield from iterable


def _decode(data, number, path, encoding, hint=""):
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}, line {number}: the bytes are not valid {encoding} "
            f"({error.reason}). Pass the file's encoding, e.g. "
            f"encoding='latin-1'{hint}."
        ) from None


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
