"""`keras_embed.hashing`'s key hash in `keras.ops`, bit-exact everywhere.

Backends disagree on integer arithmetic at the edges: uint32 products wrap
on TensorFlow and JAX but come back as unwrapped int64 on torch, int64 is
int32 under JAX's default 32-bit mode, and signed overflow is no backend's
documented behaviour. So every value here is a 16-bit limb held in int32,
every product is of a limb and a constant of at most 8 bits (below 2**24),
and every sum stays below 2**31: no operation can overflow, round or wrap,
and all backends, eager or compiled, compute the same integers.

A 32-bit word is a pair `(lo, hi)` of limbs; a key is its two words, low
first, as in `hashing.murmur3_words`.
"""

import keras
import numpy as np
from keras import ops

_LIMB = 0xFFFF
_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_F1 = 0x85EBCA6B
_F2 = 0xC2B2AE35


def key_words(keys, halves=False):
    """The two words of integer `keys` (any int dtype up to int64/uint64),
    or of `hashing.key_halves` output when `halves`."""
    if halves:
        keys = ops.cast(keys, "int32")
        return _signed_word(keys[..., 0]), _signed_word(keys[..., 1])
    dtype = keras.backend.standardize_dtype(keys.dtype)
    if dtype == "uint64":
        # Same-width integer casts keep the bits on every backend.
        keys, dtype = ops.cast(keys, "int64"), "int64"
    if dtype == "int64":
        limbs = [
            ops.cast(
                ops.bitwise_and(ops.right_shift(keys, 16 * i), _LIMB), "int32"
            )
            for i in range(4)
        ]
        return (limbs[0], limbs[1]), (limbs[2], limbs[3])
    if dtype == "uint32":
        low = (
            ops.cast(ops.bitwise_and(keys, _LIMB), "int32"),
            ops.cast(ops.right_shift(keys, 16), "int32"),
        )
        zero = ops.zeros_like(low[0])
        return low, (zero, zero)
    keys = ops.cast(keys, "int32")
    # Sign extension: the high word is all ones for a negative key.
    sign = ops.bitwise_and(ops.right_shift(keys, 31), _LIMB)
    return _signed_word(keys), (sign, sign)


def buckets(words, seeds, sizes):
    """Bucket of each key for each `(seed, size)` pair, `(..., len(seeds))`
    int32: `hashing.hash_ids(keys, size, seed)` for each pair."""
    low, high = (_mix_block(word) for word in words)
    low, high = (tuple(ops.expand_dims(x, -1) for x in w) for w in (low, high))
    seeds = np.asarray(seeds, dtype=np.int64)
    h = (_constant(seeds & _LIMB), _constant(seeds >> 16))
    for block in (low, high):
        h = _xor(h, block)
        h = _rotl(h, 13)
        h = _add(_mul_small(h, 5), 0xE6546B64)
    h = (ops.bitwise_xor(h[0], 8), h[1])
    h = _fmix(h)
    return _fastrange(h, np.asarray(sizes, dtype=np.int64))


def _signed_word(x):
    """The word of int32 `x` (two's complement bits)."""
    return (
        ops.bitwise_and(x, _LIMB),
        ops.bitwise_and(ops.right_shift(x, 16), _LIMB),
    )


def _constant(values):
    return ops.convert_to_tensor(np.asarray(values, dtype=np.int32))


def _mix_block(k):
    """MurmurHash3's per-block mix, which does not depend on the seed."""
    return _mul(_rotl(_mul(k, _C1), 15), _C2)


def _fmix(h):
    h = _xor(h, _shift_right(h, 16))
    h = _mul(h, _F1)
    h = _xor(h, _shift_right(h, 13))
    h = _mul(h, _F2)
    return _xor(h, _shift_right(h, 16))


def _xor(a, b):
    return ops.bitwise_xor(a[0], b[0]), ops.bitwise_xor(a[1], b[1])


def _rotl(word, r):
    """Rotate left by 0 < r < 16: each limb takes the other's top bits."""
    lo, hi = word
    return (
        ops.bitwise_and(
            ops.bitwise_or(ops.left_shift(lo, r), ops.right_shift(hi, 16 - r)),
            _LIMB,
        ),
        ops.bitwise_and(
            ops.bitwise_or(ops.left_shift(hi, r), ops.right_shift(lo, 16 - r)),
            _LIMB,
        ),
    )


def _shift_right(word, s):
    lo, hi = word
    if s == 16:
        return hi, ops.zeros_like(hi)
    moved = ops.bitwise_or(ops.right_shift(lo, s), ops.left_shift(hi, 16 - s))
    return ops.bitwise_and(moved, _LIMB), ops.right_shift(hi, s)


def _add(word, c):
    """`word + c` mod 2**32 for a constant `c`."""
    lo = ops.add(word[0], c & _LIMB)
    hi = ops.add(ops.add(word[1], c >> 16), ops.right_shift(lo, 16))
    return ops.bitwise_and(lo, _LIMB), ops.bitwise_and(hi, _LIMB)


def _mul_small(word, c):
    """`word * c` mod 2**32 for a constant `c < 2**8`."""
    lo = ops.multiply(word[0], c)
    hi = ops.add(ops.multiply(word[1], c), ops.right_shift(lo, 16))
    return ops.bitwise_and(lo, _LIMB), ops.bitwise_and(hi, _LIMB)


def _mul(word, c):
    """`word * c` mod 2**32 for a constant 32-bit `c`."""
    a0, a1 = word
    c0, c1 = c & _LIMB, c >> 16
    lo, carry = _mul_limb(a0, c0)
    hi = ops.add(ops.add(carry, _mul_limb_low(a0, c1)), _mul_limb_low(a1, c0))
    return lo, ops.bitwise_and(hi, _LIMB)


def _mul_limb(a, c):
    """(low limb, high limb) of `a * c`, limb `a` and constant(s) `c` below
    2**16, from two products below 2**24."""
    by_low = ops.multiply(a, _small(c & 0xFF))
    by_high = ops.multiply(a, _small(c >> 8))
    low = ops.add(by_low, ops.left_shift(ops.bitwise_and(by_high, 0xFF), 8))
    high = ops.add(ops.right_shift(low, 16), ops.right_shift(by_high, 8))
    return ops.bitwise_and(low, _LIMB), high


def _mul_limb_low(a, c):
    """A value congruent to `a * c` mod 2**16, below 2**25."""
    by_low = ops.multiply(a, _small(c & 0xFF))
    by_high = ops.bitwise_and(ops.multiply(a, _small(c >> 8)), 0xFF)
    return ops.add(by_low, ops.left_shift(by_high, 8))


def _small(c):
    """A constant operand: a Python int, or an int32 tensor for an array."""
    return int(c) if np.ndim(c) == 0 else _constant(c)


def _fastrange(h, sizes):
    """`(h * size) >> 32` for 32-bit `h` and `size < 2**31`, as limbs:
    h1 * s1 < 2**31, the partial products below 2**32 split by `_mul_limb`."""
    h0, h1 = h
    s0, s1 = sizes & _LIMB, sizes >> 16
    low1, high1 = _mul_limb(h1, s0)
    low2, high2 = _mul_limb(h0, s1)
    _, high3 = _mul_limb(h0, s0)
    middle = ops.add(ops.add(low1, low2), high3)
    top = ops.multiply(h1, _small(s1))
    return ops.add(
        ops.add(ops.add(top, high1), high2), ops.right_shift(middle, 16)
    )
