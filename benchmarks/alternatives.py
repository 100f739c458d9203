"""Other `keras.ops` formulations of keras_embed's lookup, measured beside
the shipped one so that a faster one can be adopted with numbers.

Each is `fn(weights, ids, input_dim)` in `keras.ops` only, and gives the
same output as keras_embed for valid ids.
"""

from keras import ops


def bare_take(weights, ids, input_dim):
    """No id checks at all: the floor any checked lookup is measured on."""
    return ops.take(weights, ids, axis=0)


def minmax_flag(weights, ids, input_dim):
    """Eager check from two reductions (min, max) on the ids instead of an
    elementwise mask reduced by `all`: no ids-sized temporaries, fewer ops
    to dispatch; the host still reads one bool, as keras_embed does."""
    in_range = ops.logical_and(
        ops.greater_equal(ops.min(ids), 0), ops.less(ops.max(ids), input_dim)
    )
    if not ops.convert_to_numpy(in_range):
        raise ValueError(f"ids out of range [0, {input_dim})")
    return ops.take(weights, ids, axis=0)


def _valid(ids, input_dim):
    return ops.logical_and(ops.greater_equal(ids, 0), ops.less(ids, input_dim))


def _masked(weights, ids, valid):
    rows = ops.take(weights, ops.where(valid, ids, 0), axis=0)
    return ops.where(ops.expand_dims(valid, -1), rows, 0)


def cond_masked(weights, ids, input_dim):
    """Traced path that pays for masking only when a bad id is present:
    `cond` runs the plain take when all ids are valid, so the output is
    written once; the mask (ids-sized) is still computed."""
    valid = _valid(ids, input_dim)
    return ops.cond(
        ops.all(valid),
        lambda: ops.take(weights, ids, axis=0),
        lambda: _masked(weights, ids, valid),
    )


# name -> (function, modes it is measured in, backends that skip it)
ALTERNATIVES = {
    "bare_take": (bare_take, ("eager", "compiled", "compiled_xla"), ()),
    "alt_minmax_flag": (minmax_flag, ("eager",), ()),
    # torch.compile re-traces Keras' `cond` on every call (a guard on the
    # op's auto-generated name) until its recompile limit: not measurable.
    "alt_cond_masked": (cond_masked, ("compiled", "compiled_xla"), ("torch",)),
}
