"""The key hash of `HashedEmbedding`, in NumPy: part of the saved format.

A key is any int64 value. Its bucket in `[0, num_buckets)` is

    h = MurmurHash3_x86_32(key as 8 little-endian two's-complement bytes,
                           seed)
    bucket = (h * num_buckets) >> 32

that is the 32-bit MurmurHash3 of the key's bytes (the hash Spark's
`HashingTF` and Vowpal Wabbit use, `mmh3.hash(bytes, seed, signed=False)`
in Python) mapped to a bucket by Lemire's multiply-shift, which needs no
division. `HashedEmbedding` computes the same buckets with `keras.ops` on
every backend (`keras_embed._hash_ops`); these functions are the reference
a data pipeline can use without Keras. Smaller integer keys (int8 to
uint32, and floats holding whole numbers in int32 range) hash as the int64
of the same value; uint64 keys hash by their bits (as the int64 with the
same bits).

Strings become keys on the host with `string_keys` (FNV-1a 64 over UTF-8).
"""

import numpy as np

from keras_embed._validation import positive_int

MAX_BUCKETS = 2**31 - 1
_FLOAT_KEY_LIMIT = 2**31
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_STRING_CHUNK = 65536


def hash_ids(keys, num_buckets, seed=0):
    """Buckets of integer `keys`, as `HashedEmbedding` computes them.

    Args:
        keys: Integer keys of any shape: a NumPy array or (nested) list of
            ints, or floats holding whole numbers in `[-2**31, 2**31)`.
        num_buckets: Number of buckets, `1 <= num_buckets <= 2**31 - 1`.
        seed: The hash seed, an integer in `[0, 2**32)`. Hash `j` of a
            `HashedEmbedding(seed=s)` uses seed `s + j`.

    Returns:
        An int64 array of `keys`' shape, with values in `[0, num_buckets)`.

    Example:

    >>> hash_ids([0, -1, 2**63 - 1], num_buckets=1000, seed=0)
    array([388, 384, 509])
    """
    num_buckets = check_num_buckets(num_buckets, "num_buckets")
    seed = check_seed(seed)
    keys = as_int64_keys(keys, "`hash_ids`")
    low, high = _words(keys)
    buckets = _fastrange(murmur3_words(low, high, seed), num_buckets)
    return buckets.reshape(keys.shape)


def string_keys(strings):
    """Integer keys of strings: FNV-1a 64 of their UTF-8 bytes, as int64.

    The same strings give the same keys on every machine and backend, so
    `HashedEmbedding(...)(string_keys(["user_42"]))` reads the same rows
    everywhere. Two different strings share a key with probability about
    `n**2 / 2**65` for `n` distinct strings. `bytes` are hashed as they are.

    Args:
        strings: A string, or a (nested) list or NumPy array of strings.

    Returns:
        An int64 NumPy array of the input's shape.

    Example:

    >>> string_keys(["user_42", "user_43"]).dtype
    dtype('int64')
    """
    array = np.asarray(strings, dtype=object)
    flat = [_utf8(value) for value in array.reshape(-1)]
    hashes = np.empty(len(flat), dtype=np.uint64)
    for start in range(0, len(flat), _STRING_CHUNK):
        chunk = flat[start : start + _STRING_CHUNK]
        hashes[start : start + len(chunk)] = _fnv1a_64(chunk)
    return hashes.view(np.int64).reshape(array.shape)


def key_halves(keys):
    """Int64 keys as two int32 words: `[..., 0]` the low 32 bits, `[..., 1]`
    the high 32 bits, each as a two's-complement int32.

    What `HashedEmbedding(key_halves=True)` takes: int32 data survives every
    backend's conversion exactly, where int64 keys become int32 under JAX's
    default 32-bit mode before a layer sees them.

    Returns:
        An int32 array of shape `keys.shape + (2,)`.
    """
    low, high = _words(as_int64_keys(keys, "`key_halves`"))
    return np.stack([low.view(np.int32), high.view(np.int32)], axis=-1)


def murmur3_words(low, high, seed):
    """MurmurHash3_x86_32 of the 8 bytes `low, high` (uint32 words, little
    endian) with `seed`, as uint32: the reference for `_hash_ops`."""
    low = np.atleast_1d(low).astype(np.uint32)
    high = np.atleast_1d(high).astype(np.uint32)
    h = np.full(low.shape, seed, dtype=np.uint32)
    for block in (low, high):
        k = _rotl(block * np.uint32(0xCC9E2D51), 15) * np.uint32(0x1B873593)
        h = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
    h ^= np.uint32(8)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def as_int64_keys(keys, caller):
    """`keys` as an int64 array, or TypeError/ValueError saying why not;
    `caller` (e.g. "Layer 'hashed'") begins the messages."""
    if isinstance(keys, (list, tuple, int)) and not isinstance(keys, bool):
        # NumPy reads [-1, 2**64 - 1] as float64: Python ints go one by one.
        objects = np.asarray(keys, dtype=object)
        if _all_ints(objects):
            return _python_int_keys(objects, caller)
    try:
        array = np.asarray(keys)
    except (ValueError, OverflowError) as error:
        raise ValueError(
            f"{caller} expects integer keys, but could not read "
            f"{type(keys).__name__} {keys!r:.80} as an array: {error}. Pass "
            "keys that fit in int64."
        ) from None
    if array.dtype.kind in "iu":
        if array.dtype == np.uint64:
            return array.view(np.int64)
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return float_keys(array, caller).astype(np.int64)
    if array.dtype.kind == "O" and _all_ints(array):
        return _python_int_keys(array, caller)
    raise not_keys_error(caller, dtype_name(array.dtype))


def float_keys(array, caller):
    """Float `array` checked to hold whole numbers in int32 range."""
    with np.errstate(invalid="ignore"):
        bad = ~(
            (np.floor(array) == array)
            & (array >= -_FLOAT_KEY_LIMIT)
            & (array < _FLOAT_KEY_LIMIT)
        )
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{caller} received the float key {array[position].item()!r} "
            f"at position {position} ({int(bad.sum())} such key"
            f"{'s' if bad.sum() > 1 else ''} in all), dtype "
            f"{array.dtype.name}. Float keys must be whole numbers in "
            "[-2**31, 2**31). Pass integer keys (int64), or strings through "
            "keras_embed.string_keys."
        )
    return array


def not_keys_error(caller, dtype):
    return TypeError(
        f"{caller} expects integer keys, but received keys of dtype "
        f"{dtype}. Turn strings into integer keys with "
        "`keras_embed.string_keys(strings)` (FNV-1a 64, the same on every "
        "backend) and pass those."
    )


def dtype_name(dtype):
    if dtype.kind in "US":
        return "string"
    return "object" if dtype.kind == "O" else dtype.name


def check_num_buckets(value, name):
    """`value` as an int in `[1, 2**31 - 1]`, or ValueError saying why."""
    value = positive_int(value, name)
    if value > MAX_BUCKETS:
        raise ValueError(
            f"`{name}` must be at most 2**31 - 1 = {MAX_BUCKETS}, but "
            f"received {value}. Pass a smaller number of buckets."
        )
    return value


def check_seed(seed):
    if (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or not 0 <= seed < 2**32
    ):
        raise ValueError(
            f"`seed` must be an integer in [0, 2**32), but received "
            f"{seed!r}. Pass e.g. seed=0."
        )
    return int(seed)


def _words(keys):
    """The low and high uint32 words of int64 `keys`."""
    bits = keys.view(np.uint64)
    low = (bits & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return low, (bits >> np.uint64(32)).astype(np.uint32)


def _fastrange(hashes, num_buckets):
    """`(h * num_buckets) >> 32`, exact in uint64 (h < 2**32, n < 2**31)."""
    product = hashes.astype(np.uint64) * np.uint64(num_buckets)
    return (product >> np.uint64(32)).astype(np.int64)


def _rotl(x, r):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _all_ints(array):
    return all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        for v in array.reshape(-1)
    )


def _python_int_keys(array, caller):
    """Python ints, each as the int64 with its low 64 bits."""
    flat = [int(v) for v in array.reshape(-1)]
    outside = [v for v in flat if not -(2**63) <= v < 2**64]
    if outside:
        raise ValueError(
            f"{caller} received integer keys outside 64 bits (e.g. "
            f"{outside[0]}). Keys must be int64 values, or uint64 values "
            "(hashed by their bits)."
        )
    bits = np.array([v & (2**64 - 1) for v in flat], dtype=np.uint64)
    return bits.view(np.int64).reshape(array.shape)


def _utf8(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, (str, np.str_)):
        return str(value).encode("utf-8")
    raise TypeError(
        "`string_keys` expects strings (or bytes), but received "
        f"{type(value).__name__} {value!r:.80}. Pass integer keys to "
        "HashedEmbedding directly; only strings need string_keys."
    )


def _fnv1a_64(encoded):
    """FNV-1a 64 of each bytes object in `encoded`, vectorised over them:
    one pass per byte position, strings that ended keep their hash."""
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    hashes = np.full(len(encoded), _FNV_OFFSET, dtype=np.uint64)
    if not len(encoded) or lengths.max() == 0:
        return hashes
    matrix = np.zeros((len(encoded), lengths.max()), dtype=np.uint8)
    present = np.arange(lengths.max()) < lengths[:, None]
    matrix[present] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    prime = np.uint64(_FNV_PRIME)
    for position in range(matrix.shape[1]):
        active = present[:, position]
        mixed = (hashes ^ matrix[:, position].astype(np.uint64)) * prime
        hashes = np.where(active, mixed, hashes)
    return hashes
