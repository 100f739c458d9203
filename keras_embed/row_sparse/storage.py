"""`RowSparseStorage`: the storage of a row-sparse `Embedding`.

The table is a non-trainable variable (the model's optimizer never sees
it); a `RowSparseTable` owns the gradient capture, the row-wise optimizer's
state and the deferred update (see `keras_embed.row_sparse.table`). Weight
files of such a layer hold the table and all that state, in creation
order: they are keras_embed's own.
"""

from keras_embed.row_sparse.table import RowSparseTable
from keras_embed.storage import Storage


class RowSparseStorage(Storage):
    """Rows trained by the layer's own row-wise optimizer, a batch's rows
    at a time.

    Args:
        input_dim: Number of rows.
        output_dim: Length of each row.
        optimizer: A `keras_embed.row_sparse.RowOptimizer`.
        max_ids_per_step: The most ids one training call may look up.
        index_dtype: "int32" or "int64", the dtype of row indices.
        initializer: Initializer of the table.
        constraint: Optional constraint applied to every updated row.
        add_loss: The owning layer's `add_loss` (for the step's tag).
        name: The owning layer's name, for error messages.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        optimizer,
        max_ids_per_step,
        index_dtype,
        initializer="uniform",
        constraint=None,
        add_loss=None,
        name="embedding",
    ):
        super().__init__(input_dim, output_dim)
        self.optimizer = optimizer
        self.max_ids_per_step = max_ids_per_step
        self.index_dtype = index_dtype
        self.initializer = initializer
        self.constraint = constraint
        self.add_loss = add_loss
        self.name = name
        self.table = None

    def build(self, add_weight):
        def recorded(**kwargs):
            variable = add_weight(**kwargs)
            self.variables[kwargs["name"]] = variable
            return variable

        embeddings = recorded(
            shape=(self.input_dim, self.output_dim),
            initializer=self.initializer,
            name="embeddings",
            trainable=False,
        )
        self.table = RowSparseTable(
            embeddings,
            self.optimizer,
            self.max_ids_per_step,
            self.index_dtype,
            add_weight=recorded,
            add_loss=self.add_loss,
            constraint=self.constraint,
            name=self.name,
        )

    @property
    def slots(self):
        """The optimizer state variables by slot name."""
        return self.table.slots

    @property
    def iterations(self):
        """int32 variable: the number of row updates applied."""
        return self.table.iterations

    def rows(self, ids):
        return self.table.read_rows(ids)

    def float_table(self):
        return self.variables["embeddings"]

    def encode(self, table):
        # Only the table; the optimizer state keeps its values.
        return [table]

    def assign_float_table(self, table):
        self.variables["embeddings"].assign(table)

    @property
    def embeddings(self):
        return self.variables["embeddings"]

    def apply_pending(self):
        self.table.flush()

    def training_rows(self, ids, keep, rows):
        return rows + self.table.capture_gradient(ids, keep)
