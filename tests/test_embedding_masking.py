"""`mask_zero=True`: the mask, and its propagation into masking layers.

The central fact: a right-padded batch gives, at every real position, the
same outputs as the unpadded sequences run one by one, so downstream layers
really received and honoured the mask: in Sequential, functional and
subclassed models, eagerly and inside `predict`; and inside `fit` the padding
id's row receives no gradient and the padding length does not change a step.
"""

import keras
import numpy as np
from absl.testing import parameterized

from keras_embed import Embedding
from tests.testing import mask_seen_downstream
from tests.testing import to_numpy

VOCAB = 10
DIM = 6
UNITS = 4
# Unpadded sequences of different lengths; id 0 never occurs in them.
SEQUENCES = [[3, 1, 4], [7]]
ATOL = 1e-5


def _right_padded(sequences, length):
    batch = np.zeros((len(sequences), length), dtype="int32")
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = sequence
    return batch


PADDED = _right_padded(SEQUENCES, 5)


# The masking layers under test, as fresh instances: name -> (layer, whether
# it returns one vector per time step).
def _downstream_layers(names=None):
    layers = {
        "lstm": (keras.layers.LSTM(UNITS), False),
        "lstm_sequences": (
            keras.layers.LSTM(UNITS, return_sequences=True),
            True,
        ),
        "gru": (keras.layers.GRU(UNITS), False),
        "simple_rnn": (keras.layers.SimpleRNN(UNITS), False),
        "bidirectional_lstm": (
            keras.layers.Bidirectional(keras.layers.LSTM(UNITS)),
            False,
        ),
        "global_average_pooling": (
            keras.layers.GlobalAveragePooling1D(),
            False,
        ),
        # Self-attention: the mask reaches it as query mask and value mask.
        "attention": (keras.layers.MultiHeadAttention(2, 3), True),
    }
    names = names or list(layers)
    return {name: layers[name] for name in names}


VECTOR_WIDTH = {
    "lstm": UNITS,
    "gru": UNITS,
    "simple_rnn": UNITS,
    "bidirectional_lstm": 2 * UNITS,
    "global_average_pooling": DIM,
}
SEQUENCE_LAYERS = [
    name for name, (_, per_step) in _downstream_layers().items() if per_step
]


def _apply(name, layer, embedded):
    if name == "attention":
        return layer(embedded, embedded)
    return layer(embedded)


class EmbedThenAll(keras.Model):
    """Subclassed model relying on Keras' implicit mask propagation."""

    def __init__(self, names, **kwargs):
        super().__init__(**kwargs)
        self.embedding = Embedding(VOCAB, DIM, mask_zero=True)
        self.downstream = {
            name: layer
            for name, (layer, _) in _downstream_layers(names).items()
        }

    def call(self, ids):
        embedded = self.embedding(ids)
        return {
            name: _apply(name, layer, embedded)
            for name, layer in self.downstream.items()
        }


def _build_model(kind, names):
    """A model from int ids to a dict of the named layers' outputs.

    `sequential` takes exactly one name and returns that layer's output.
    """
    keras.utils.set_random_seed(1)
    if kind == "sequential":
        (name,) = names
        return keras.Sequential(
            [
                keras.Input(shape=(None,), dtype="int32"),
                Embedding(VOCAB, DIM, mask_zero=True),
                _downstream_layers(names)[name][0],
            ]
        )
    if kind == "functional":
        ids = keras.Input(shape=(None,), dtype="int32")
        embedded = Embedding(VOCAB, DIM, mask_zero=True)(ids)
        outputs = {
            name: _apply(name, layer, embedded)
            for name, (layer, _) in _downstream_layers(names).items()
        }
        return keras.Model(ids, outputs)
    model = EmbedThenAll(names)
    model(PADDED[:1])
    return model


def _as_dict(outputs, names):
    if isinstance(outputs, dict):
        return {name: to_numpy(outputs[name]) for name in names}
    (name,) = names
    return {name: to_numpy(outputs)}


def _unpadded_outputs(model, names):
    """Each sequence run alone, without padding: [{name: output}]."""
    return [
        _as_dict(model(np.array([sequence], dtype="int32")), names)
        for sequence in SEQUENCES
    ]


def _assert_matches_unpadded(padded_outputs, unpadded, names, how):
    padded_outputs = _as_dict(padded_outputs, names)
    for name in names:
        batch = np.asarray(padded_outputs[name])
        assert batch.shape[0] == len(SEQUENCES)
        for row, sequence in enumerate(SEQUENCES):
            padded = batch[row]
            if name in SEQUENCE_LAYERS:
                padded = padded[: len(sequence)]
            np.testing.assert_allclose(
                padded,
                unpadded[row][name][0],
                atol=ATOL,
                err_msg=f"{name} ({how}): sequence {sequence} differs once "
                "right-padded",
            )


class ComputeMaskTest(parameterized.TestCase):
    @parameterized.named_parameters(
        ("int32", "int32"),
        ("int64", "int64"),
        ("uint8", "uint8"),
        ("float32", "float32"),
    )
    def test_mask_is_ids_not_equal_zero(self, dtype):
        ids = np.array([[4, 0, 2, 0], [0, 0, 9, 1]], dtype=dtype)
        layer = Embedding(VOCAB, DIM, mask_zero=True)
        mask = layer.compute_mask(keras.ops.convert_to_tensor(ids))
        self.assertEqual(keras.backend.standardize_dtype(mask.dtype), "bool")
        self.assertEqual(tuple(mask.shape), ids.shape)
        np.testing.assert_array_equal(to_numpy(mask), ids != 0)

    def test_mask_of_numpy_ids(self):
        ids = np.array([[0, 3, 0], [5, 0, 0]], dtype="int32")
        mask = Embedding(VOCAB, DIM, mask_zero=True).compute_mask(ids)
        self.assertEqual(keras.backend.standardize_dtype(mask.dtype), "bool")
        np.testing.assert_array_equal(to_numpy(mask), ids != 0)

    def test_mask_of_3d_ids(self):
        ids = np.array(
            [[[1, 0, 3], [0, 0, 0]], [[9, 8, 0], [0, 2, 0]]], dtype="int32"
        )
        layer = Embedding(VOCAB, DIM, mask_zero=True)
        outputs = layer(ids)
        self.assertEqual(tuple(outputs.shape), (2, 2, 3, DIM))
        mask = layer.compute_mask(keras.ops.convert_to_tensor(ids))
        self.assertEqual(keras.backend.standardize_dtype(mask.dtype), "bool")
        self.assertEqual(tuple(mask.shape), (2, 2, 3))
        np.testing.assert_array_equal(to_numpy(mask), ids != 0)

    def test_mask_zero_false_gives_none(self):
        layer = Embedding(VOCAB, DIM)
        self.assertFalse(layer.supports_masking)
        self.assertIsNone(layer.compute_mask(np.array([[0, 1, 0]])))
        ids = keras.Input(shape=(3,), dtype="int32")
        self.assertIsNone(mask_seen_downstream(layer(ids)))

    def test_mask_zero_true_supports_masking(self):
        self.assertTrue(Embedding(VOCAB, DIM, mask_zero=True).supports_masking)

    def test_symbolic_mask_is_bool_with_the_ids_shape(self):
        ids = keras.Input(shape=(5,), dtype="int32")
        outputs = Embedding(VOCAB, DIM, mask_zero=True)(ids)
        mask = mask_seen_downstream(outputs)
        self.assertEqual(keras.backend.standardize_dtype(mask.dtype), "bool")
        self.assertEqual(tuple(mask.shape), (None, 5))

    def test_mask_does_not_change_the_embedding_outputs(self):
        ids = np.array([[4, 0, 2]], dtype="int32")
        masked = Embedding(VOCAB, DIM, mask_zero=True)
        plain = Embedding(VOCAB, DIM)
        plain.build()
        masked.build()
        plain.embeddings.assign(masked.embeddings)
        np.testing.assert_array_equal(
            to_numpy(masked(ids)), to_numpy(plain(ids))
        )


class MaskPropagationTest(parameterized.TestCase):
    """Padded batch == unpadded sequences, eagerly and in `predict`.

    Every masking layer is covered once, spread over the three model kinds:
    on JAX each eager RNN call compiles its own scan, so the full product
    would cost minutes and check nothing more about this layer.
    """

    def _check_eager_and_predict(self, kind, names):
        model = _build_model(kind, names)
        unpadded = _unpadded_outputs(model, names)
        _assert_matches_unpadded(model(PADDED), unpadded, names, "eager")
        predicted = model.predict(PADDED, batch_size=len(PADDED), verbose=0)
        _assert_matches_unpadded(predicted, unpadded, names, "predict")

    @parameterized.named_parameters(
        ("lstm", "lstm"), ("global_average_pooling", "global_average_pooling")
    )
    def test_sequential(self, name):
        self._check_eager_and_predict("sequential", [name])

    def test_functional(self):
        self._check_eager_and_predict(
            "functional",
            ["gru", "simple_rnn", "bidirectional_lstm", "attention"],
        )

    def test_subclassed(self):
        self._check_eager_and_predict(
            "subclassed", ["lstm_sequences", "attention"]
        )

    def test_sequence_outputs_carry_the_mask(self):
        model = _build_model("functional", ["lstm_sequences", "attention"])
        for output in model.outputs:
            mask = mask_seen_downstream(output)
            self.assertEqual(
                keras.backend.standardize_dtype(mask.dtype), "bool"
            )
            self.assertEqual(tuple(mask.shape), (None, None))

    def test_padding_matters_without_the_mask(self):
        # Guard for the tests above: without a mask, padding changes both an
        # LSTM's and attention's outputs, so equality there is the mask's doing.
        keras.utils.set_random_seed(1)
        ids = keras.Input(shape=(None,), dtype="int32")
        embedded = Embedding(VOCAB, DIM)(ids)
        model = keras.Model(
            ids,
            [
                keras.layers.LSTM(UNITS)(embedded),
                keras.layers.MultiHeadAttention(2, 3)(embedded, embedded),
            ],
        )
        length = len(SEQUENCES[0])
        padded = [to_numpy(x)[0] for x in model(PADDED)]
        alone = [to_numpy(x)[0] for x in model(PADDED[:1, :length])]
        self.assertGreater(np.max(np.abs(padded[0] - alone[0])), 1e-4)
        self.assertGreater(np.max(np.abs(padded[1][:length] - alone[1])), 1e-4)


class MaskInFitTest(parameterized.TestCase):
    def _fit_one_step(self, kind, names, padded_length):
        """Returns the embedding table and all other weights, before and
        after one SGD step on the right-padded SEQUENCES."""
        model = _build_model(kind, names)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        table = next(
            layer for layer in model.layers if isinstance(layer, Embedding)
        ).embeddings
        weights = [table] + [w for w in model.weights if w is not table]
        before = [to_numpy(w).copy() for w in weights]
        targets = {
            name: np.ones((len(SEQUENCES), VECTOR_WIDTH[name]))
            for name in names
        }
        if kind == "sequential":
            (targets,) = targets.values()
        ids = _right_padded(SEQUENCES, padded_length)
        model.fit(ids, targets, batch_size=len(SEQUENCES), verbose=0)
        return before, [to_numpy(w) for w in weights]

    def _assert_padding_row_untouched(self, before, after):
        self.assertEqual(before.shape, (VOCAB, DIM))
        used = sorted({i for sequence in SEQUENCES for i in sequence})
        self.assertTrue(
            np.all(np.any(before[used] != after[used], axis=1)),
            "the fit step did not train every row of the ids it saw",
        )
        # The padding id is masked out, so its row receives no gradient.
        np.testing.assert_array_equal(after[0], before[0])

    def test_fit_step_ignores_padding_length(self):
        before, short = self._fit_one_step("sequential", ["lstm"], 3)
        _, long = self._fit_one_step("sequential", ["lstm"], 6)
        self._assert_padding_row_untouched(before[0], short[0])
        self._assert_padding_row_untouched(before[0], long[0])
        for short_weight, long_weight in zip(short, long, strict=True):
            np.testing.assert_allclose(short_weight, long_weight, atol=ATOL)

    @parameterized.named_parameters(
        ("functional", "functional", ["simple_rnn", "global_average_pooling"]),
        ("subclassed", "subclassed", ["gru"]),
    )
    def test_fit_sends_no_gradient_to_padding(self, kind, names):
        before, after = self._fit_one_step(kind, names, 5)
        self._assert_padding_row_untouched(before[0], after[0])
