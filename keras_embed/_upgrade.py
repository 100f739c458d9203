"""Reading keras_embed 0.1.0 configs and arguments.

0.1.0's `Embedding` had a reverse projection (`tie_weights`,
`reverse_dtype`, `logit_soft_cap`); 0.2.0 moved it to
`ReversibleEmbedding`. A saved 0.1.0 `Embedding` config whose reverse
arguments hold their defaults never needed them and loads; any other is
refused with the way forward (docs/migrating.md).
"""

MOVED_REVERSE_ARGUMENTS = {
    "tie_weights": True,
    "reverse_dtype": None,
    "logit_soft_cap": None,
}


def refuse_reverse_arguments(layer_name, kwargs):
    """Names `ReversibleEmbedding` when `Embedding` gets its arguments."""
    moved = sorted(set(MOVED_REVERSE_ARGUMENTS) & set(kwargs))
    if moved:
        raise TypeError(
            f"Embedding '{layer_name or 'embedding'}' received {moved}, the "
            "reverse-projection arguments of keras_embed 0.1.0's Embedding, "
            "which moved to keras_embed.ReversibleEmbedding in 0.2.0. Use "
            "ReversibleEmbedding (same arguments) for a tied or untied "
            "output projection; see docs/migrating.md."
        )


def reverse_call_error(layer_name):
    return TypeError(
        f"Layer '{layer_name}' is an Embedding, which has no reverse "
        "projection since keras_embed 0.2.0. Use "
        "keras_embed.ReversibleEmbedding (same arguments, plus tie_weights, "
        "reverse_dtype, logit_soft_cap) for `reverse=True` calls; see "
        "docs/migrating.md."
    )


def embedding_config(config):
    """A saved `Embedding` config without 0.1.0's default reverse
    arguments; refuses one that used them."""
    moved = set(MOVED_REVERSE_ARGUMENTS) & set(config)
    if not moved:
        return config
    used = {
        name: config[name]
        for name in sorted(moved)
        if config[name] != MOVED_REVERSE_ARGUMENTS[name]
    }
    if used:
        raise ValueError(
            "This Embedding config was saved by keras_embed 0.1.0 with "
            f"reverse-projection arguments {used}, which moved to "
            "keras_embed.ReversibleEmbedding in 0.2.0. Rebuild the model "
            "with ReversibleEmbedding and copy the weights over (see "
            "docs/migrating.md)."
        )
    return {name: value for name, value in config.items() if name not in moved}
