"""Word-vector files: keras_embed.load_word_vectors against gensim 4.4's
`KeyedVectors.load_word2vec_format` on one synthetic word2vec file per
format (text with a `count dim` header, and binary), every word of the file
in the vocabulary (`keras_embed`), or 20,000 of them (`keras_embed_subset`,
as a model's vocabulary usually is); the baseline is `keras_embed`, so
gensim's ratio is its speed over ours (0.25 = gensim takes 4x as long).
Loads are interleaved in one process (median of the repeats, no warm-up:
the file was just written, so it is in the page cache); `rss_mb` is the
peak RSS of one load in a child process of its own over that child's RSS
at start, and `params["target_mb"]` the final matrix plus the vocabulary's
words (the issue's memory bound is 1.3x that); `max_abs_diff` compares
gensim's matrix with ours. Without gensim installed only keras_embed runs,
and the suite says so.
"""

import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np

import keras_embed
from benchmarks.harness import memory
from benchmarks.harness import records
from benchmarks.harness import timing

try:  # imported here, so that memory's forked children share it
    from gensim.models import KeyedVectors
except ImportError:
    KeyedVectors = None

BASELINE = "keras_embed"
# The reader runs no backend op: one backend measures it.
BACKENDS = ("jax",)
SUBSET = 20_000

# (words in the file, dim, repeats)
GRIDS = {
    "full": (400_000, 300, 3),
    "quick": (100_000, 300, 3),
    "tiny": (50, 4, 1),
}
FORMATS = ("text", "binary")


def run(grid, log):
    count, dim, repeats = GRIDS[grid]
    if KeyedVectors is None:
        log(
            "word_vectors: gensim is not installed, so only keras_embed is "
            "timed (pip install 'gensim==4.4.*' in the benchmark "
            "environment for the side-by-side figures)"
        )
    impls = ["keras_embed", "keras_embed_subset"]
    if KeyedVectors is not None:
        impls.append("gensim")
    folder = tempfile.mkdtemp(prefix="keras_embed_word_vectors_")
    try:
        found = []
        for file_format in FORMATS:
            log(f"word_vectors: writing a {count} x {dim} {file_format} file")
            path = write_file(folder, count, dim, file_format)
            found += _measure(
                path, file_format, (count, dim, repeats), impls, grid, log
            )
            os.remove(path)
        return found
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(path, file_format, sizes, impls, grid, log):
    count, dim, repeats = sizes
    case = f"{file_format} V={count:.0e} d={dim}"
    specs = [
        {"impl": impl, "path": path, "format": file_format, "count": count}
        for impl in impls
    ]
    log(f"word_vectors {case}: peak RSS, one child per load")
    peaks = memory.isolated(
        "benchmarks.suites.word_vectors:peak", specs, inline=grid == "tiny"
    )
    log(f"word_vectors {case}: {repeats} interleaved repeats")
    # The vocabulary is the caller's, made before the clock starts; gensim
    # builds its own inside the load.
    words = vocabulary(count)
    loaders = {spec["impl"]: _loader(spec, words) for spec in specs}
    seconds = {impl: [] for impl in impls}
    loaded = {}
    for _ in range(repeats):
        for impl, load in loaders.items():
            start = time.perf_counter()
            loaded[impl] = load()
            seconds[impl].append(time.perf_counter() - start)
    params = {
        "mode": file_format,
        "words": count,
        "dim": dim,
        "file_mb": round(os.path.getsize(path) / 2**20, 1),
    }
    found = []
    for spec, peak in zip(specs, peaks, strict=True):
        impl = spec["impl"]
        measured = {"rss_mb": peak["rss_mb"]}
        if impl == "gensim":
            vectors = loaded[impl]
            order = [vectors.key_to_index[w] for w in words]
            diff = np.abs(vectors.vectors[order] - loaded["keras_embed"])
            measured["max_abs_diff"] = float(diff.max())
        found.append(
            records.record(
                "word_vectors",
                case,
                impl,
                {
                    **params,
                    "vocabulary": peak["vocabulary"],
                    "target_mb": peak["target_mb"],
                },
                timing.stats(seconds[impl]),
                **measured,
            )
        )
    return found


def peak(spec):
    """One load in the current process: its peak RSS (the vocabulary
    included) and the memory bound, the final matrix plus the words."""
    start = memory.peak_rss_mb()
    if spec["impl"] == "gensim":
        vectors = _loader(spec, None)()
        matrix, words = vectors.vectors, vectors.index_to_key
    else:
        words = vocabulary(spec["count"])
        matrix = _loader(spec, words)()
        words = words[: len(matrix)]
    rss_mb = memory.peak_rss_mb() - start
    vocabulary_bytes = sys.getsizeof(words) + sum(
        sys.getsizeof(w) for w in words
    )
    return {
        **spec,
        "rss_mb": rss_mb,
        "target_mb": (matrix.nbytes + vocabulary_bytes) / 2**20,
        "vocabulary": len(words),
    }


def _loader(spec, words):
    """A zero-argument load of the spec's file: gensim's KeyedVectors, or
    keras_embed's matrix for `words` (the first SUBSET of them for
    keras_embed_subset)."""
    path = spec["path"]
    binary = spec["format"] == "binary"
    if spec["impl"] == "gensim":
        return lambda: KeyedVectors.load_word2vec_format(path, binary=binary)
    if spec["impl"] == "keras_embed_subset":
        words = words[:SUBSET]

    def load():
        return keras_embed.load_word_vectors(
            path, words, binary=binary, padding_token=None, verbose=0
        ).matrix

    return load


def vocabulary(count):
    """The file's words in another order (a model's vocabulary is rarely in
    the file's order)."""
    words = [_word(i) for i in range(count)]
    random.Random(0).shuffle(words)
    return words


def _word(index):
    return f"word{index}"


def write_file(folder, count, dim, file_format):
    """A word2vec file of `count` random vectors: text with 5 significant
    digits per value (as GloVe), or binary float32."""
    rng = np.random.default_rng(0)
    suffix = "bin" if file_format == "binary" else "txt"
    path = os.path.join(folder, f"vectors.{suffix}")
    number = " ".join(["%.5g"] * dim)
    with open(path, "wb") as file:
        file.write(f"{count} {dim}\n".encode())
        for begin in range(0, count, 10_000):
            rows = rng.normal(0.0, 0.4, (min(10_000, count - begin), dim))
            rows = rows.astype("float32")
            if file_format == "binary":
                file.write(
                    b"".join(
                        _word(begin + i).encode() + b" " + row.tobytes()
                        for i, row in enumerate(rows.astype("<f4"))
                    )
                )
            else:
                file.write(
                    "".join(
                        f"{_word(begin + i)} {number % tuple(row)}\n"
                        for i, row in enumerate(rows.tolist())
                    ).encode()
                )
    return path
