"""LoRA: a trainable low-rank delta over a frozen (float or quantized) table.

`Embedding.enable_lora(rank)` freezes the table and adds two factors,
`lora_embeddings_a` `(input_dim, rank)` and `lora_embeddings_b`
`(rank, output_dim)`, as Keras 3 does. Rows are read through a `LoraTable`:
the base table's rows plus `lora_alpha / rank * a[ids] @ b`. Saving merges
the delta into the stored table (Keras's file format holds no factors).
"""

from keras import initializers
from keras import ops

from keras_embed._validation import positive_int
from keras_embed.tables import LookupTable
from keras_embed.tables import gather


def check_can_enable(layer_name, built, enabled, constraint, sparse):
    if constraint is not None:
        raise ValueError(
            "Lora is incompatible with embedding constraints. In order to "
            f"enable lora on layer '{layer_name}', remove the "
            "`embeddings_constraint` argument."
        )
    if sparse:
        raise ValueError(
            f"Layer '{layer_name}' has a `sparse_optimizer`, which updates "
            "rows of the table itself; LoRA freezes the table and trains "
            "dense low-rank factors instead, so the two cannot be combined. "
            "Create the layer without `sparse_optimizer` to use LoRA."
        )
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


class LoraTable(LookupTable):
    """`base`'s rows plus `scale * a[ids] @ b`."""

    def __init__(self, base, lora_a, lora_b, scale, index_dtype):
        self.base = base
        self.lora_a = lora_a
        self.lora_b = lora_b
        self.scale = scale
        self.index_dtype = index_dtype

    def lookup(self, ids, keep=None, training=False):
        rows = self.base.lookup(ids, keep, training=training)
        low = gather(self.lora_a, ids, keep, self.index_dtype)
        delta = ops.matmul(low, self.lora_b) * self.scale
        return ops.cast(rows, delta.dtype) + delta

    def dense(self):
        delta = ops.matmul(self.lora_a, self.lora_b) * self.scale
        return ops.cast(self.base.dense(), delta.dtype) + delta

    def flush(self):
        self.base.flush()


class LoraMixin:
    """`Embedding.enable_lora`: adds the factors and a `LoraTable`."""

    def _with_lora(self, table):
        """`table`, with the LoRA delta on top once LoRA is enabled."""
        if not self.lora_enabled:
            return table
        return LoraTable(
            table,
            self.lora_embeddings_a,
            self.lora_embeddings_b,
            self.lora_alpha / self.lora_rank,
            self.index_dtype,
        )

    def enable_lora(
        self,
        rank,
        lora_alpha=None,
        a_initializer="he_uniform",
        b_initializer="zeros",
    ):
        """Freezes the table and trains a rank-`rank` delta over it, as
        Keras 3's `Embedding.enable_lora` (see `keras_embed.lora`)."""
        check_can_enable(
            self.name,
            self.built,
            self.lora_enabled,
            self.embeddings_constraint,
            self.sparse_optimizer is not None,
        )
        rank = positive_int(rank, "rank")
        self._tracker.unlock()
        try:
            for name, shape, initializer in (
                ("lora_embeddings_a", (self.input_dim, rank), a_initializer),
                ("lora_embeddings_b", (rank, self.output_dim), b_initializer),
            ):
                variable = self.add_weight(
                    name=name,
                    shape=shape,
                    initializer=initializers.get(initializer),
                    dtype="float32",
                    regularizer=self.embeddings_regularizer,
                )
                setattr(self, name, variable)
        finally:
            self._tracker.lock()
        if self.quantization_mode is None:
            self._embeddings.trainable = False
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank
        self.table = self.make_table()
