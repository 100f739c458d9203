"""Which of an `Embedding`'s variables a weight file holds, in what order.

Keras 3's `Embedding` saves by position (`store["0"]`, ...) following its
`variable_serialization_spec`; ours saves the same names in the same order
for each quantization mode, so `.weights.h5` and `.keras` files cross with
the built-in layers. Never saved: the invalid-id counter (state, not a
weight). With LoRA the file holds the table with the delta merged in, as
Keras's does, not the factors. A row-sparse layer also saves its optimizer
state, after the table (such files are keras_embed's own).
"""

from keras import ops

from keras_embed import _padding
from keras_embed.quantization import MODES
from keras_embed.quantization import quantize_matrix
from keras_embed.quantization import variable_specs


class WeightFileMixin:
    """Saving, loading and `get_weights` / `set_weights` of `Embedding`."""

    @property
    def variable_serialization_spec(self):
        """The names of the variables saved, in order, by quantization
        mode: those of Keras 3's `Embedding`, so weight files cross. Any
        other state of the layer is not saved."""
        names = {None: ["embeddings"]}
        for mode in MODES:
            names[mode] = [
                name
                for name, _, _ in variable_specs(
                    self.input_dim,
                    self.output_dim,
                    mode,
                    getattr(self, "_block_size", None),
                )
            ]
        return names

    def _saved_variables(self, names):
        return [
            self._embeddings if name == "embeddings" else getattr(self, name)
            for name in names
        ]

    def _saved_values(self):
        """Name -> value to save: LoRA's delta merged into the table."""
        names = self.variable_serialization_spec[self.quantization_mode]
        if not self.lora_enabled:
            return dict(zip(names, self._saved_variables(names), strict=True))
        merged = self.table.dense()
        if self.padding_id is not None:
            merged = _padding.zero_row(merged, self.padding_id)
        values = {"embeddings": merged}
        if self.quantization_mode is not None:
            values = quantize_matrix(
                merged, self.quantization_mode, self._block_size
            )
            values = dict(zip(self._quantized_names(), values, strict=True))
        # Others (a reversible layer's untied kernel) are saved as held.
        for name in names:
            if name not in values:
                values[name] = self._saved_variables([name])[0]
        return values

    def save_own_variables(self, store):
        if not self.built:
            return
        self.flush()
        if self.sparse_optimizer is not None:
            # The optimizer state is saved with the table (keras_embed only).
            for index, variable in enumerate(self._state_variables()):
                store[str(index)] = variable
            return
        values = self._saved_values()
        names = self.variable_serialization_spec[self.quantization_mode]
        for index, name in enumerate(names):
            store[str(index)] = values[name]

    def load_own_variables(self, store):
        if not self.built:
            return
        if self.sparse_optimizer is not None:
            variables = self._state_variables()
            names = [variable.name for variable in variables]
        else:
            names = self.variable_serialization_spec[self.quantization_mode]
            variables = self._saved_variables(names)
        if len(store.keys()) != len(names):
            raise ValueError(
                f"Layer '{self.name}' loads {len(names)} variables {names}, "
                f"but the file holds {len(store.keys())}. Load a file saved "
                "by a layer with the same arguments (quantization mode, "
                "`tie_weights`, `sparse_optimizer`)."
            )
        for index, variable in enumerate(variables):
            variable.assign(store[str(index)])
        if self.lora_enabled:
            # The file holds the merged table: start the delta at zero.
            self.lora_embeddings_b.assign(
                ops.zeros(self.lora_embeddings_b.shape)
            )

    def _state_variables(self):
        """Every variable but the invalid-id counter, in tracking order."""
        return [v for v in self.weights if v is not self._invalid_ids]

    def get_weights(self):
        """The layer's weights as NumPy arrays, without the invalid-id
        counter: the same list `keras.layers.Embedding` gives."""
        return [ops.convert_to_numpy(v) for v in self._state_variables()]

    def set_weights(self, weights):
        """Sets the weights `get_weights` returns, in the same order."""
        variables = self._state_variables()
        if len(weights) != len(variables):
            raise ValueError(
                f"Layer '{self.name}' expects {len(variables)} weight "
                f"arrays ({[v.name for v in variables]}), but received "
                f"{len(weights)}. Pass the list `get_weights()` returns."
            )
        for variable, value in zip(variables, weights, strict=True):
            variable.assign(value)
