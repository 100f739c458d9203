"""The key hash: the NumPy reference against MurmurHash3's definition, and
the `keras.ops` limbs against the reference, bit for bit, eager and
compiled; `string_keys` against FNV-1a 64; `key_halves`; bad input."""

import os
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_embed
from keras_embed import _hash_ops
from keras_embed import hash_ids
from keras_embed import hashing
from keras_embed import key_halves
from keras_embed import string_keys
from tests import testing

EDGE_KEYS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1]
EDGE_KEYS += [2**32, 2**63 - 1, -(2**63), 2**62 + 12345, -(2**40) - 7]
RANDOM_KEYS = np.random.default_rng(17).integers(
    -(2**63), 2**63 - 1, 500, dtype=np.int64, endpoint=True
)
KEYS = np.concatenate([np.array(EDGE_KEYS, np.int64), RANDOM_KEYS])
# (seed, num_buckets) pairs: the extremes of both.
CASES = [(0, 1), (1, 7), (42, 1000), (2**32 - 1, 2**31 - 1), (7, 65536)]
SEEDS = [seed for seed, _ in CASES]
SIZES = [size for _, size in CASES]


def murmur3_x86_32(data, seed):
    """MurmurHash3_x86_32 of `data` (bytes), from its definition, in
    Python ints: the reference the NumPy function is checked against."""

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

    c1, c2, h = 0xCC9E2D51, 0x1B873593, seed
    body = len(data) // 4 * 4
    for i in range(0, body, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = rotl((k * c1) & 0xFFFFFFFF, 15) * c2 & 0xFFFFFFFF
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[body:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl((k * c1) & 0xFFFFFFFF, 15) * c2 & 0xFFFFFFFF
    h ^= len(data)
    for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * multiplier) & 0xFFFFFFFF
    return h ^ (h >> 16)


def python_bucket(key, num_buckets, seed):
    return murmur3_x86_32(struct.pack("<q", key), seed) * num_buckets >> 32


def fnv1a_64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & (2**64 - 1)
    return h


# -- the definition --------------------------------------------------------


@pytest.mark.parametrize(
    "data, seed, expected",
    [
        # Published MurmurHash3_x86_32 test vectors.
        (b"", 0, 0),
        (b"", 1, 0x514E28B7),
        (b"", 0xFFFFFFFF, 0x81F16F39),
        (b"\0\0\0\0", 0, 0x2362F9DE),
        (b"aaaa", 0x9747B28C, 0x5A97808A),
        (b"Hello, world!", 0x9747B28C, 0x24884CBA),
        (
            b"The quick brown fox jumps over the lazy dog",
            0x9747B28C,
            0x2FA826CD,
        ),
    ],
)
def test_python_reference_matches_published_vectors(data, seed, expected):
    assert murmur3_x86_32(data, seed) == expected


@pytest.mark.parametrize("seed, num_buckets", CASES)
def test_numpy_hash_ids_is_the_definition(seed, num_buckets):
    expected = [python_bucket(int(k), num_buckets, seed) for k in KEYS]
    found = hash_ids(KEYS, num_buckets, seed)
    assert found.dtype == np.int64
    np.testing.assert_array_equal(found, expected)
    assert found.min() >= 0 and found.max() < num_buckets


def test_buckets_spread_evenly():
    found = hash_ids(np.arange(100_000), 100, seed=3)
    counts = np.bincount(found, minlength=100)
    # 1000 per bucket; a fair multinomial stays within +-15% here.
    assert counts.min() > 850 and counts.max() < 1150, counts


def test_seeds_give_independent_buckets():
    a, b = hash_ids(KEYS, 1000, 0), hash_ids(KEYS, 1000, 1)
    assert np.mean(a == b) < 0.02


@pytest.mark.parametrize(
    "keys",
    [
        np.array([[3, -4], [5, 0]], np.int8),
        np.array([65535, 0], np.uint16),
        np.array([2**32 - 1, 2**31, 7], np.uint32),
        np.array([7.0, -2.0, 2.0**31 - 1], np.float64),
        [[1, -1], [2**63 - 1, 2**64 - 1]],
        12,
    ],
)
def test_smaller_dtypes_hash_as_the_same_int64_value(keys):
    as_python = np.asarray(keys, dtype=object)
    expected = np.vectorize(
        lambda k: python_bucket((int(k) + 2**63) % 2**64 - 2**63, 999, 5),
        otypes=[np.int64],
    )(as_python)
    np.testing.assert_array_equal(hash_ids(keys, 999, 5), expected)
    assert hash_ids(keys, 999, 5).shape == np.shape(keys)


def test_uint64_keys_hash_by_their_bits():
    bits = np.array([2**64 - 1, 2**63, 5], np.uint64)
    np.testing.assert_array_equal(
        hash_ids(bits, 1000, 2), hash_ids(bits.view(np.int64), 1000, 2)
    )


def test_key_halves_hold_the_two_words():
    halves = key_halves(KEYS)
    assert halves.dtype == np.int32 and halves.shape == KEYS.shape + (2,)
    low = halves[..., 0].view(np.uint32).astype(np.uint64)
    high = halves[..., 1].view(np.uint32).astype(np.uint64)
    np.testing.assert_array_equal(
        (high << np.uint64(32)) | low, KEYS.view(np.uint64)
    )
    np.testing.assert_array_equal(key_halves([-1]), [[-1, -1]])
    np.testing.assert_array_equal(key_halves([2**32 + 5]), [[5, 1]])


# -- strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    # Published FNV-1a 64 test vectors.
    [
        ("", 0xCBF29CE484222325),
        ("a", 0xAF63DC4C8601EC8C),
        ("foobar", 0x85944171F73967E8),
    ],
)
def test_string_keys_are_fnv1a_64(text, expected):
    assert string_keys(text).view(np.uint64) == expected


def test_string_keys_of_utf8_strings_and_shapes():
    strings = [["user_42", "ümlaut"], ["日本語", ""], ["a" * 300, "user_42"]]
    keys = string_keys(strings)
    assert keys.shape == (3, 2) and keys.dtype == np.int64
    expected = [[fnv1a_64(s.encode()) for s in row] for row in strings]
    np.testing.assert_array_equal(
        keys.view(np.uint64), np.array(expected, np.uint64)
    )
    assert keys[0, 0] == keys[2, 1]
    np.testing.assert_array_equal(string_keys(np.array(strings)), keys)
    assert string_keys(b"\xff") == string_keys([b"\xff"])[0]


def test_string_keys_do_not_depend_on_the_process():
    # Python's own hash() of a str changes with PYTHONHASHSEED.
    code = "import keras_embed as k; print(int(k.string_keys('user_42')))"
    found = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        found.add(int(out.stdout.split()[-1]))
    assert found == {int(string_keys("user_42"))}


def test_string_keys_refuses_other_values():
    with pytest.raises(TypeError, match=r"expects strings .* received int 5"):
        string_keys(["a", 5])


# -- bad input -------------------------------------------------------------


def test_hash_ids_refuses_strings_and_names_string_keys():
    with pytest.raises(TypeError) as error:
        hash_ids(np.array(["user_42"]), 10)
    assert str(error.value) == (
        "`hash_ids` expects integer keys, but received keys of dtype "
        "string. Turn strings into integer keys with "
        "`keras_embed.string_keys(strings)` (FNV-1a 64, the same on every "
        "backend) and pass those."
    )


@pytest.mark.parametrize("bad", [1.5, np.nan, 2.0**31, -(2.0**31) - 1])
def test_hash_ids_refuses_float_keys_that_are_not_int32_whole_numbers(bad):
    with pytest.raises(
        ValueError, match=r"received the float key .* at position \(1,\)"
    ):
        hash_ids(np.array([1.0, bad]), 10)


def test_hash_ids_refuses_keys_beyond_64_bits():
    with pytest.raises(ValueError, match="outside 64 bits"):
        hash_ids([2**64], 10)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10", None, 2**31])
def test_num_buckets_must_be_a_positive_int32(bad):
    with pytest.raises(ValueError, match="`num_buckets` must be"):
        hash_ids([1], bad)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.0, None])
def test_seed_must_be_a_32_bit_unsigned_int(bad):
    with pytest.raises(
        ValueError, match=r"`seed` must be an integer in \[0, 2\*\*32\)"
    ):
        hash_ids([1], 10, bad)


# -- keras.ops, eager and compiled -----------------------------------------


def ops_buckets(keys, halves=False):
    words = _hash_ops.key_words(keys, halves)
    return _hash_ops.buckets(words, SEEDS, SIZES)


def numpy_buckets(keys):
    return np.stack([hash_ids(keys, n, s) for s, n in CASES], axis=-1)


def compiled(fn, mode):
    """`fn` run eagerly, or compiled by the current backend's compiler."""
    if mode == "eager":
        return fn
    backend = testing.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=mode == "xla")
    if backend == "jax":
        import jax

        return jax.jit(fn)
    import torch

    return torch.compile(fn, dynamic=False)


def modes():
    return (
        ("eager", "compiled", "xla")
        if testing.backend() == "tensorflow"
        else ("eager", "compiled")
    )


def wide_int_dtype_available():
    return (
        keras.backend.standardize_dtype(
            ops.convert_to_tensor(np.array([2**40], np.int64)).dtype
        )
        == "int64"
    )


@pytest.mark.parametrize("mode", ["eager", "compiled", "xla"])
def test_ops_hash_of_halves_is_bit_identical_to_numpy(mode):
    if mode not in modes():
        pytest.skip("XLA through tf.function is TensorFlow's extra mode")
    run = compiled(lambda x: ops_buckets(x, halves=True), mode)
    found = testing.to_numpy(run(ops.convert_to_tensor(key_halves(KEYS))))
    assert found.dtype == np.int32
    np.testing.assert_array_equal(found, numpy_buckets(KEYS))


@pytest.mark.parametrize("mode", ["eager", "compiled", "xla"])
def test_ops_hash_of_int64_tensors_is_bit_identical_to_numpy(mode):
    if mode not in modes():
        pytest.skip("XLA through tf.function is TensorFlow's extra mode")
    if not wide_int_dtype_available():
        pytest.skip("JAX without x64 has no int64 tensors (see the x64 test)")
    run = compiled(ops_buckets, mode)
    found = testing.to_numpy(run(ops.convert_to_tensor(KEYS)))
    np.testing.assert_array_equal(found, numpy_buckets(KEYS))


@pytest.mark.parametrize(
    "dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32"]
)
def test_ops_hash_of_narrow_dtypes_is_bit_identical_to_numpy(dtype):
    info = np.iinfo(dtype)
    keys = np.array(
        [0, 1, info.min, info.max, info.max // 3, -1 if info.min else 5], dtype
    )
    found = testing.to_numpy(ops_buckets(ops.convert_to_tensor(keys)))
    np.testing.assert_array_equal(found, numpy_buckets(keys))
    run = compiled(ops_buckets, "compiled")
    found = testing.to_numpy(run(ops.convert_to_tensor(keys)))
    np.testing.assert_array_equal(found, numpy_buckets(keys))


def test_ops_hash_of_uint64_tensors_on_tensorflow():
    if testing.backend() != "tensorflow":
        pytest.skip("torch has no uint64 tensors in Keras; JAX: x64 test")
    keys = np.array([2**64 - 1, 2**63, 2**63 - 1, 0], np.uint64)
    found = testing.to_numpy(ops_buckets(ops.convert_to_tensor(keys)))
    np.testing.assert_array_equal(found, numpy_buckets(keys))


JAX_X64_CHECK = """
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from keras import ops
from keras_embed import _hash_ops, hash_ids
keys = np.array({keys}, np.int64)
for dtype in ("int64", "uint64"):
    tensor = ops.convert_to_tensor(keys.view(dtype))
    assert str(tensor.dtype) == dtype, tensor.dtype
    def fn(x):
        return _hash_ops.buckets(_hash_ops.key_words(x), [3], [977])
    for run in (fn, jax.jit(fn)):
        found = np.asarray(run(tensor))[..., 0]
        assert (found == hash_ids(keys, 977, 3)).all(), (dtype, found)
print("ok")
"""


def test_ops_hash_of_int64_and_uint64_on_jax_with_x64():
    if testing.backend() != "jax":
        pytest.skip("JAX's x64 mode")
    code = JAX_X64_CHECK.format(keys=[int(k) for k in KEYS[:40]])
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=os.environ,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[
        -3000:
    ]


def test_package_exports():
    for name in ("HashedEmbedding", "hash_ids", "key_halves", "string_keys"):
        assert name in keras_embed.__all__
    assert hashing.MAX_BUCKETS == 2**31 - 1
