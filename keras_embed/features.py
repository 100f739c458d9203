"""Which features of the embedding layers combine, and the errors when not.

Every combination rule lives here, called where the combination would
arise: the layers' constructors, `quantize`, `enable_lora` and the reverse
call of `ReversibleEmbedding`.

With `sparse_optimizer` (row-sparse training):

- `embeddings_regularizer`: refused; it would send a gradient to every row
  of the table each step, which row-sparse training exists to avoid.
- `embeddings_constraint`: applied to the updated rows only, so it must act
  row by row.
- `quantize`: refused; a quantized table cannot be updated row by row.
- LoRA (`lora_rank`, `enable_lora`): refused; LoRA freezes the table that
  row-sparse training updates.
- a tied `reverse=True` call in training: refused; it needs a gradient for
  every row.
- `padding_id`, `max_norm`, masks: as without `sparse_optimizer`.

Other pairs:

- LoRA x `embeddings_constraint`: refused (Keras's rule and message).
- LoRA x quantization: either order; LoRA trains over the quantized rows.
- quantization x training: the quantized table is frozen (as Keras).
- `EmbeddingBag` x `input_length`: refused; a bag's output has no sequence
  axis.
- `padding_id`, `max_norm` x anything: applied at lookup, after the
  storage.
"""


def check_arguments(
    sparse_optimizer, embeddings_regularizer, embeddings_constraint, lora_rank
):
    """The rules among an `Embedding`'s constructor arguments."""
    if sparse_optimizer is None:
        if lora_rank and embeddings_constraint is not None:
            raise _lora_constraint_error("this layer")
        return
    if embeddings_regularizer is not None:
        raise ValueError(
            "`embeddings_regularizer` is not supported with "
            "`sparse_optimizer`: it would send a gradient to every row of "
            "the table on every step, which is what row-sparse training "
            f"avoids. Received {embeddings_regularizer!r}. Regularize the "
            "looked-up vectors instead (`activity_regularizer=`), or train "
            "without `sparse_optimizer`."
        )
    if lora_rank:
        raise _sparse_lora_error("this layer")


def check_quantize(layer_name, sparse_optimizer):
    if sparse_optimizer is not None:
        raise ValueError(
            f"Layer '{layer_name}' trains its rows with a `sparse_optimizer`; "
            "a quantized table cannot be trained row by row. Quantize a copy "
            "built without `sparse_optimizer` (copy the weights over) "
            "instead."
        )


def check_enable_lora(layer_name, built, enabled, constraint, sparse):
    if constraint is not None:
        raise _lora_constraint_error(f"layer '{layer_name}'")
    if sparse:
        raise _sparse_lora_error(f"layer '{layer_name}'")
    if not built:
        raise ValueError(
            f"Cannot enable lora on layer '{layer_name}', which isn't yet "
            "built. Build it first, or pass `lora_rank` to the constructor."
        )
    if enabled:
        raise ValueError(
            f"lora is already enabled on layer '{layer_name}'. This can "
            "only be done once per layer."
        )


def check_reverse_call(layer_name, sparse, tie_weights, training):
    if sparse and tie_weights and training:
        raise ValueError(
            f"Layer '{layer_name}' has `sparse_optimizer` and "
            "`tie_weights=True`: a training call with `reverse=True` would "
            "need a gradient for every row of the table, which row-sparse "
            "training does not compute. Use `tie_weights=False` (a separate "
            "output matrix trained by the model's optimizer), or call "
            "`reverse=True` only outside training."
        )


def check_bag_arguments(layer_name, embedding_arguments):
    if embedding_arguments.get("input_length") is not None:
        raise ValueError(
            f"Layer '{layer_name}' is an EmbeddingBag, whose output has no "
            "sequence axis, so it takes no `input_length` (received "
            f"{embedding_arguments['input_length']!r}). Give the model an "
            "`keras.Input(shape=(bag_size,), dtype='int32')` instead."
        )


def _lora_constraint_error(where):
    return ValueError(
        "Lora is incompatible with embedding constraints. In order to "
        f"enable lora on {where}, remove the `embeddings_constraint` "
        "argument."
    )


def _sparse_lora_error(where):
    return ValueError(
        f"LoRA cannot be enabled on {where}: it has a `sparse_optimizer`, "
        "which updates rows of the table itself, while LoRA freezes the "
        "table and trains dense low-rank factors instead. Create the layer "
        "without `sparse_optimizer` to use LoRA."
    )
