"""`max_norm` at lookup: looked-up vectors are clipped, the table is not."""

from keras import ops

from keras_embed._validation import positive_number


def check_max_norm(max_norm, norm_type):
    """Returns (max_norm, norm_type) as floats, max_norm possibly None."""
    if max_norm is not None:
        max_norm = positive_number(
            max_norm, "max_norm", "Pass e.g. max_norm=1.0, or None to disable."
        )
    norm_type = positive_number(
        norm_type,
        "norm_type",
        "Pass the p of the p-norm, e.g. norm_type=2.0 for the Euclidean norm.",
        minimum=1,
    )
    return max_norm, norm_type


def clip_by_norm(vectors, max_norm, norm_type):
    """Scales each vector (last axis) whose p-norm exceeds `max_norm` down
    to norm `max_norm`; the others are returned bit for bit.

    As `tf.nn.embedding_lookup(max_norm=...)`, the gradient flows through
    the norm: it is the derivative of `v * max_norm / ||v||_p`.
    """
    if max_norm is None:
        return vectors
    # |v| as v * sign(v) has derivative 0 at 0 on every backend (ops.abs
    # does not), so zero entries get the same gradient everywhere.
    magnitude = vectors * ops.sign(vectors)
    if norm_type == 2.0:
        powered = ops.square(vectors)
    elif norm_type == 1.0:
        powered = magnitude
    else:
        powered = ops.power(magnitude, norm_type)
    total = ops.sum(powered, axis=-1, keepdims=True)
    # Unclipped vectors (zero vectors included) never reach the root or the
    # division, so their gradient stays finite and exact.
    clipped = ops.greater(total, max_norm**norm_type)
    safe_total = ops.where(clipped, total, 1.0)
    if norm_type == 2.0:
        norm = ops.sqrt(safe_total)
    else:
        norm = ops.power(safe_total, 1.0 / norm_type)
    scale = ops.where(clipped, max_norm / norm, 1.0)
    return ops.where(clipped, vectors * scale, vectors)
