"""Storages: where an embedding layer's rows live.

An `Embedding` validates ids, decides which positions are looked up, zeroes
the others, clips norms and casts; its storage only holds the rows and reads
them. Every storage implements the small interface of `Storage`:

- `build(add_weight)` creates its variables through the owning layer's
  `add_weight`, so Keras tracks, saves and distributes them;
- `variables` names them as Keras 3's `Embedding` does (`embeddings`,
  `embeddings_scale`, ...), in the order weight files hold them;
- `rows(ids)` reads the float rows of valid integer ids;
- `float_table()` is the whole float `(input_dim, output_dim)` table;
- `encode(table)` gives the values that store a float table in this
  storage's format (for `weights=`, LoRA merges, quantization);
- `embeddings` is what the layer's `embeddings` property shows.

Row-sparse storages also apply a deferred update (`apply_pending`) and add
a gradient capture to training lookups (`training_rows`); the others
inherit no-ops. `FloatStorage` is the default; `QuantizedStorage`
(`keras_embed.quantized_storage`) and `RowSparseStorage`
(`keras_embed.row_sparse`) are the others, and `LoraStorage`
(`keras_embed.lora_storage`) wraps any of them.

`Embedding.make_storage()` returns the layer's float storage and is the
extension point: override it to keep the rows elsewhere, and quantization
and LoRA still apply on top (docs/features.md has an example).
"""

from keras import ops


class Storage:
    """The interface between an embedding layer and the storage of its rows.

    Args:
        input_dim: Number of rows.
        output_dim: Length of each row.
    """

    def __init__(self, input_dim, output_dim):
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.variables = {}

    def build(self, add_weight):
        """Creates the variables (through `add_weight`, the layer's) and
        fills `self.variables`, in save order."""
        raise NotImplementedError

    def rows(self, ids):
        """Float rows of `ids` (integer, every one in `[0, input_dim)`):
        shape `ids.shape + (output_dim,)`."""
        raise NotImplementedError

    def float_table(self):
        """The whole `(input_dim, output_dim)` float table."""
        raise NotImplementedError

    def encode(self, table):
        """The values that store the float `table` in this storage's
        format, in the order of `variables`."""
        raise NotImplementedError

    @property
    def embeddings(self):
        """What the layer's `embeddings` property shows."""
        return self.float_table()

    def save_order(self):
        """The names of what a weight file holds, in order: by default
        the variables."""
        return list(self.variables)

    def saved_values(self):
        """What a weight file holds, in `save_order()`."""
        return list(self.variables.values())

    def load(self, values):
        """Assigns `values` (in the order of `saved_values`)."""
        for variable, value in zip(
            self.variables.values(), values, strict=True
        ):
            variable.assign(value)

    def assign_float_table(self, table):
        """Stores the float `table`."""
        self.load(self.encode(table))

    def apply_pending(self):
        """Applies a deferred update before rows are read; a no-op here."""

    def training_rows(self, ids, keep, rows):
        """`rows` as a training lookup of `ids` returns them: unchanged
        here; a row-sparse storage adds its gradient capture. `keep` (None:
        every position) marks the positions looked up."""
        return rows


class FloatStorage(Storage):
    """One float `(input_dim, output_dim)` weight named `embeddings`, read
    with `ops.take`: `keras.layers.Embedding`'s storage.

    Args:
        input_dim: Number of rows.
        output_dim: Length of each row.
        initializer: Initializer of the table.
        regularizer: Optional regularizer of the table.
        constraint: Optional constraint of the table.
        trainable: Whether the model's optimizer trains the table.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        initializer="uniform",
        regularizer=None,
        constraint=None,
        trainable=True,
    ):
        super().__init__(input_dim, output_dim)
        self.initializer = initializer
        self.regularizer = regularizer
        self.constraint = constraint
        self.trainable = trainable

    def build(self, add_weight):
        self.variables["embeddings"] = add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.initializer,
            name="embeddings",
            regularizer=self.regularizer,
            constraint=self.constraint,
            trainable=self.trainable,
        )

    @property
    def table(self):
        return self.variables["embeddings"]

    def rows(self, ids):
        return ops.take(self.table, ids, axis=0)

    def float_table(self):
        return self.table

    def encode(self, table):
        return [table]

    @property
    def embeddings(self):
        return self.table
