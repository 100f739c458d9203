"""LoRA: a trainable low-rank delta over any storage's frozen rows.

`Embedding.enable_lora(rank)` wraps the layer's storage (float, quantized or
a custom one) in a `LoraStorage`, which adds the two factors Keras 3 adds,
`lora_embeddings_a` `(input_dim, rank)` and `lora_embeddings_b`
`(rank, output_dim)`, float32, and reads rows as the base rows plus
`lora_alpha / rank * a[ids] @ b`.

Weight files hold what Keras's do: the table with the delta merged in, in
the base storage's format (re-quantized when quantized), never the factors;
after loading one, `b` restarts at zero so fine-tuning continues from the
loaded table. (Keras zeroes both factors, which leaves neither a gradient;
ours keeps `a`.)
"""

from keras import initializers
from keras import ops

from keras_embed.storage import Storage


class LoraStorage(Storage):
    """`base`'s rows plus a scaled low-rank delta.

    Args:
        base: The `Storage` whose rows the delta is added to; its variables
            are frozen by the layer.
        rank: The rank of the delta.
        alpha: The delta is scaled by `alpha / rank`.
        a_initializer, b_initializer: Initializers of the two factors.
        regularizer: Optional regularizer of both factors (the layer's
            `embeddings_regularizer`, as Keras).
        factors: The factor variables of an earlier `LoraStorage` to reuse
            (the layer re-wraps its new base when it is quantized).
    """

    def __init__(
        self,
        base,
        rank,
        alpha,
        a_initializer="he_uniform",
        b_initializer="zeros",
        regularizer=None,
        factors=None,
    ):
        super().__init__(base.input_dim, base.output_dim)
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.a_initializer = initializers.get(a_initializer)
        self.b_initializer = initializers.get(b_initializer)
        self.regularizer = regularizer
        self.factors = dict(factors or {})

    def build(self, add_weight):
        if not self.factors:
            shapes = {
                "lora_embeddings_a": (self.input_dim, self.rank),
                "lora_embeddings_b": (self.rank, self.output_dim),
            }
            inits = (self.a_initializer, self.b_initializer)
            for (name, shape), initializer in zip(
                shapes.items(), inits, strict=True
            ):
                # float32, as Keras: low-precision factors under- and
                # overflow while fine-tuning.
                self.factors[name] = add_weight(
                    name=name,
                    shape=shape,
                    initializer=initializer,
                    dtype="float32",
                    regularizer=self.regularizer,
                )
        self.variables = {**self.base.variables, **self.factors}

    def with_base(self, base):
        """This delta over another base storage (same factor variables)."""
        return LoraStorage(
            base,
            self.rank,
            self.alpha,
            self.a_initializer,
            self.b_initializer,
            self.regularizer,
            factors=self.factors,
        )

    @property
    def scale(self):
        return self.alpha / self.rank

    def delta(self):
        a = self.factors["lora_embeddings_a"]
        b = self.factors["lora_embeddings_b"]
        return ops.matmul(a, b) * self.scale

    def rows(self, ids):
        low = ops.take(self.factors["lora_embeddings_a"], ids, axis=0)
        delta = ops.matmul(low, self.factors["lora_embeddings_b"])
        rows = self.base.rows(ids)
        return ops.cast(rows, delta.dtype) + delta * self.scale

    def float_table(self):
        delta = self.delta()
        return ops.cast(self.base.float_table(), delta.dtype) + delta

    def encode(self, table):
        return self.base.encode(table)

    @property
    def embeddings(self):
        # As Keras: the base's view (codes when quantized) plus the delta.
        delta = self.delta()
        return ops.cast(self.base.embeddings, delta.dtype) + delta

    def save_order(self):
        return self.base.save_order()

    def saved_values(self):
        return self.base.encode(self.float_table())

    def load(self, values):
        self.base.load(values)
        b = self.factors["lora_embeddings_b"]
        b.assign(ops.zeros(b.shape, b.dtype))

    def apply_pending(self):
        self.base.apply_pending()

    def training_rows(self, ids, keep, rows):
        return self.base.training_rows(ids, keep, rows)
