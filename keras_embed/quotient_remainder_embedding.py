import math

import keras
from keras import initializers
from keras import ops

from keras_embed._validation import positive_int
from keras_embed.embedding import Embedding
from keras_embed.storage import Storage

OPERATIONS = ("multiply", "add", "concatenate")


class QuotientRemainderStorage(Storage):
    """`input_dim` rows held by two small tables (Shi et al. 2020,
    "Compositional Embeddings Using Complementary Partitions"): row `i`
    combines row `i // num_collisions` of `quotient_embeddings`
    (`ceil(input_dim / num_collisions)` rows) with row `i % num_collisions`
    of `remainder_embeddings` (`num_collisions` rows). No two ids share
    both, so every id keeps a row of its own.

    Args:
        input_dim: Number of ids.
        output_dim: Length of each row.
        num_collisions: How many ids share a quotient row.
        operation: "multiply" (element-wise), "add", or "concatenate" (the
            quotient table holds the first `ceil(output_dim / 2)` columns,
            the remainder table the others).
        initializer: Initializer of the quotient table, and (a copy, so
            with other values) of the remainder table for "add" and
            "concatenate"; with "multiply" the remainder table starts at
            ones, so each row starts as its quotient row.
        regularizer, constraint: Applied to both tables.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        num_collisions,
        operation="multiply",
        initializer="uniform",
        regularizer=None,
        constraint=None,
    ):
        super().__init__(input_dim, output_dim)
        self.num_collisions = num_collisions
        self.operation = operation
        self.initializer = initializer
        self.regularizer = regularizer
        self.constraint = constraint

    def shapes(self):
        quotient_rows = math.ceil(self.input_dim / self.num_collisions)
        if self.operation == "concatenate":
            first = math.ceil(self.output_dim / 2)
            widths = (first, self.output_dim - first)
        else:
            widths = (self.output_dim, self.output_dim)
        return {
            "quotient_embeddings": (quotient_rows, widths[0]),
            "remainder_embeddings": (self.num_collisions, widths[1]),
        }

    def build(self, add_weight):
        if self.operation == "multiply":
            remainder_init = initializers.get("ones")
        else:
            # A copy: an initializer without a seed draws one when created,
            # so the same instance would give both tables the same values.
            remainder_init = initializers.get(
                initializers.serialize(initializers.get(self.initializer))
            )
        inits = (self.initializer, remainder_init)
        for (name, shape), initializer in zip(
            self.shapes().items(), inits, strict=True
        ):
            self.variables[name] = add_weight(
                shape=shape,
                initializer=initializer,
                name=name,
                regularizer=self.regularizer,
                constraint=self.constraint,
            )

    def rows(self, ids):
        quotient = ops.take(
            self.variables["quotient_embeddings"],
            ops.floor_divide(ids, self.num_collisions),
            axis=0,
        )
        remainder = ops.take(
            self.variables["remainder_embeddings"],
            ops.mod(ids, self.num_collisions),
            axis=0,
        )
        if self.operation == "multiply":
            return quotient * remainder
        if self.operation == "add":
            return quotient + remainder
        return ops.concatenate([quotient, remainder], axis=-1)

    def float_table(self):
        return self.rows(ops.arange(self.input_dim, dtype="int32"))

    def encode(self, table):
        raise ValueError(
            "A quotient-remainder table cannot hold an arbitrary "
            f"({self.input_dim}, {self.output_dim}) table: its rows are "
            "combinations of two smaller tables. Train it, or load weights "
            "saved by a QuotientRemainderEmbedding."
        )


@keras.saving.register_keras_serializable(package="keras_embed")
class QuotientRemainderEmbedding(Embedding):
    """An `Embedding` whose rows are built from two small tables.

    The quotient-remainder trick (Shi et al. 2020): id `i` reads row
    `i // num_collisions` of a `(ceil(input_dim / num_collisions),
    output_dim)` table and row `i % num_collisions` of a `(num_collisions,
    output_dim)` table, combined by `operation`. About `input_dim /
    num_collisions + num_collisions` rows replace `input_dim`: at
    `num_collisions = sqrt(input_dim)` a table of 1e7 rows takes 2 x 3163.
    Unlike a hashed table, no two ids get the same vector.

    Ids are checked exactly as by `Embedding` (the same errors in eager
    calls, zero vectors and the same count in compiled ones), and masks,
    `padding_id` (read as zeros; its quotient and remainder rows are shared
    with other ids, so they are not zeroed), `max_norm` and saving work as
    there. Not supported, each with a clear error: `weights=` and
    `from_pretrained` (two small tables cannot hold an arbitrary table),
    `sparse_optimizer`, quantization and LoRA (each would need a row per
    id, which this layer exists to avoid). See docs/hashing.md.

    Args:
        input_dim: Number of ids: the largest id + 1.
        output_dim: Size of each embedding vector.
        num_collisions: How many ids share a quotient row: the size of the
            remainder table. A positive integer.
        operation: How the two rows combine: "multiply" (element-wise, the
            default, as in the paper's best results), "add", or
            "concatenate" (`ceil(output_dim / 2)` quotient columns, the
            rest remainder columns).
        embeddings_initializer: Initializer of the quotient table (and of
            the remainder table for "add" and "concatenate"; with
            "multiply" it starts at ones).
        embeddings_regularizer, embeddings_constraint: Applied to both
            tables.
        **kwargs: Other `keras_embed.Embedding` arguments (`mask_zero`,
            `input_length`, `padding_id`, `max_norm`, ...) and base layer
            arguments.

    Call arguments:
        inputs: Integer ids in `[0, input_dim)`, as for `Embedding`.

    Input shape:
        Any shape `(d1, ..., dn)`.

    Output shape:
        `(d1, ..., dn, output_dim)`.

    Example:

    >>> layer = QuotientRemainderEmbedding(10_000_000, 16, num_collisions=3163)
    >>> layer(np.array([[0, 9_999_999]])).shape
    (1, 2, 16)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        num_collisions,
        operation="multiply",
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        **kwargs,
    ):
        input_dim = positive_int(input_dim, "input_dim")
        num_collisions = positive_int(num_collisions, "num_collisions")
        if num_collisions > input_dim:
            raise ValueError(
                f"`num_collisions` must be at most input_dim={input_dim}, "
                f"but received {num_collisions}. Pass e.g. "
                f"num_collisions={math.isqrt(input_dim)} (about "
                "sqrt(input_dim) gives the smallest tables)."
            )
        if operation not in OPERATIONS:
            raise ValueError(
                f"`operation` must be one of {OPERATIONS}, but received "
                f"{operation!r}."
            )
        for name in ("weights", "sparse_optimizer", "lora_rank"):
            if kwargs.get(name) is not None:
                raise ValueError(_unsupported(name))
        self.num_collisions = num_collisions
        self.operation = operation
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            **kwargs,
        )

    def make_storage(self):
        return QuotientRemainderStorage(
            self.input_dim,
            self.output_dim,
            self.num_collisions,
            self.operation,
            self.embeddings_initializer,
            self.embeddings_regularizer,
            self.embeddings_constraint,
        )

    def _set_initial_rows(self):
        # Padding positions read zeros (the layer's rule); the padding id's
        # quotient and remainder rows belong to other ids too.
        pass

    def quantize(self, mode=None, type_check=True, config=None):
        # NotImplementedError: Keras's `Model.quantize` skips such layers.
        raise NotImplementedError(_unsupported("quantize"))

    def enable_lora(self, rank, *args, **kwargs):
        raise ValueError(_unsupported("lora_rank"))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_collisions": self.num_collisions,
                "operation": self.operation,
            }
        )
        return config


def _unsupported(feature):
    why = {
        "weights": "`weights=` (and `from_pretrained`): two small tables "
        "cannot hold an arbitrary table",
        "sparse_optimizer": "`sparse_optimizer`: row-sparse training "
        "updates the rows of one full table",
        "lora_rank": "LoRA (`lora_rank`, `enable_lora`): its factor has a "
        "row per id",
        "quantize": "quantization: a quantized table has a row per id",
    }[feature]
    return (
        f"QuotientRemainderEmbedding does not support {why}, which this "
        "layer exists to avoid. Use keras_embed.Embedding for it."
    )
