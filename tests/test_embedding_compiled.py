"""The layer inside compiled code: XLA, `jax.jit`, `tf.function`,
`torch.compile`, and `fit`/`predict`/`evaluate` compiled by Keras.

The documented contract for bad ids (negative, `>= input_dim`, not a whole
number, NaN): eager calls raise `ValueError`; inside traced or compiled code,
where no backend can raise on a value, a bad id looks up an all-zero vector,
the valid positions are unchanged, and no gradient reaches any row from a
bad position.
"""

import functools

import keras
import numpy as np
import pytest
from absl.testing import parameterized

from keras_embed import Embedding
from tests.testing import backend
from tests.testing import to_numpy

VOCAB = 10
DIM = 4
# No row is zero and no entry is 1.0, so a zero output vector can only come
# from a bad id and an SGD step towards targets of ones changes every entry
# of a row that receives gradient.
TABLE = (np.arange(VOCAB * DIM, dtype="float32").reshape(VOCAB, DIM) + 0.5) / 8
GOOD_IDS = np.array([[1, 9, 0], [3, 3, 7]], dtype="int32")
# Each batch mixes valid ids with bad ones; float batches add non-whole,
# NaN and infinite ids.
BAD_IDS = {
    "float": np.array(
        [[1, -1, 10, 2.5, 9], [np.nan, 4, np.inf, -np.inf, 4.0]],
        dtype="float32",
    ),
    "int": np.array(
        [[2, -3, 10, 12345, 0], [-(2**31), 5, 9, 11, 5]], dtype="int32"
    ),
}
# Same shape as BAD_IDS["float"], so torch.compile does not recompile.
BAD_ONLY_IDS = np.array(
    [[-1, 10, 2.5, np.inf, 3.5], [np.nan, 0.5, 11, -np.inf, -0.0001]],
    dtype="float32",
)


def _valid(ids):
    ids = np.asarray(ids)
    with np.errstate(invalid="ignore"):
        return (ids == np.floor(ids)) & (ids >= 0) & (ids < VOCAB)


def _numpy_reference(ids):
    """`TABLE[ids]`, with an all-zero row wherever the id is bad."""
    valid = _valid(ids)
    outputs = np.zeros(np.shape(ids) + (DIM,), dtype="float32")
    outputs[valid] = TABLE[np.asarray(ids)[valid].astype("int64")]
    return outputs


def _numpy_gradient_of_sum(ids):
    """d sum(outputs) / d table: each row counts its valid occurrences."""
    valid_ids = np.asarray(ids)[_valid(ids)].astype("int64")
    counts = np.bincount(valid_ids, minlength=VOCAB).astype("float32")
    return np.repeat(counts[:, None], DIM, axis=1)


def _layer():
    layer = Embedding(VOCAB, DIM, weights=TABLE)
    layer.build()
    return layer


def _compile_on_backend(layer, id_arrays):
    """Runs `layer` on every id array inside ONE compiled function of the
    current backend, and differentiates the sum of the outputs for the first
    array with respect to the table. Returns NumPy (outputs, gradient)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def run(*ids):
            with tf.GradientTape() as tape:
                outputs = [layer(x) for x in ids]
                total = tf.reduce_sum(outputs[0])
            (gradient,) = tape.gradient(total, layer.trainable_variables)
            return outputs, tf.convert_to_tensor(gradient)

        outputs, gradient = run(*[tf.constant(x) for x in id_arrays])
    elif name == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def lookups(trainable, ids):
            return [
                layer.stateless_call(trainable, non_trainable, x)[0]
                for x in ids
            ]

        @jax.jit
        def run(trainable, ids):
            gradient = jax.grad(lambda t: jnp.sum(lookups(t, ids)[0]))(
                trainable
            )
            return lookups(trainable, ids), gradient[0]

        trainable = [v.value for v in layer.trainable_variables]
        outputs, gradient = run(trainable, [jnp.asarray(x) for x in id_arrays])
    elif name == "torch":
        import torch

        # One compile for the whole module: torch.compile on CPU takes
        # seconds per graph.
        run = torch.compile(lambda *ids: [layer(x) for x in ids])
        outputs = run(*[torch.as_tensor(x) for x in id_arrays])
        table = layer.embeddings.value
        (gradient,) = torch.autograd.grad(outputs[0].sum(), [table])
    else:
        raise AssertionError(f"no compiled path for backend {name}")
    return [to_numpy(x) for x in outputs], to_numpy(gradient)


@functools.cache
def _compiled_results():
    """The compiled lookups of BAD_IDS["float"], BAD_IDS["int"] and
    GOOD_IDS, computed once per test session."""
    outputs, gradient = _compile_on_backend(
        _layer(), [BAD_IDS["float"], BAD_IDS["int"], GOOD_IDS]
    )
    return {
        "float": outputs[0],
        "int": outputs[1],
        "good": outputs[2],
        "gradient": gradient,
    }


def _keras_embedding_outputs(ids):
    reference = keras.layers.Embedding(VOCAB, DIM)
    reference.build()
    reference.set_weights([TABLE])
    return to_numpy(reference(ids))


def _lookup_model(ids_dtype, jit_compile):
    model = keras.Sequential(
        [keras.Input(shape=(None,), dtype=ids_dtype), _layer()]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=jit_compile
    )
    return model


def _skip_on_torch():
    if backend() == "torch":
        pytest.skip(
            "TensorFlow and JAX only: plain compile() runs eagerly on torch "
            "(EagerModelTest), and each jit_compile=True function costs a "
            "torch.compile of ~30 s on CPU; torch's compiled lookup is "
            "checked by CompiledFunctionTest and the jit_compile fit test"
        )


class CompiledFunctionTest(parameterized.TestCase):
    """tf.function(jit_compile=True) / jax.jit / torch.compile."""

    def test_in_range_ids_match_eager_and_keras_embedding(self):
        compiled = _compiled_results()["good"]
        eager = to_numpy(_layer()(GOOD_IDS))
        np.testing.assert_array_equal(compiled, eager)
        np.testing.assert_array_equal(
            compiled, _keras_embedding_outputs(GOOD_IDS)
        )
        np.testing.assert_array_equal(compiled, TABLE[GOOD_IDS])

    @parameterized.named_parameters(("float_ids", "float"), ("int_ids", "int"))
    def test_bad_ids_match_numpy_reference(self, kind):
        # The same batch gives this exact array on every backend.
        compiled = _compiled_results()[kind]
        expected = _numpy_reference(BAD_IDS[kind])
        self.assertFalse(np.isnan(compiled).any(), "NaN in the outputs")
        np.testing.assert_array_equal(compiled, expected)
        valid = _valid(BAD_IDS[kind])
        self.assertTrue(0 < valid.sum() < valid.size)
        np.testing.assert_array_equal(compiled[~valid], 0.0)
        # Valid positions are exactly what an eager lookup of them gives.
        valid_ids = BAD_IDS[kind][valid].astype("int32")
        np.testing.assert_array_equal(
            compiled[valid], to_numpy(_layer()(valid_ids))
        )

    def test_no_gradient_from_bad_positions(self):
        gradient = _compiled_results()["gradient"]
        self.assertEqual(gradient.shape, (VOCAB, DIM))
        np.testing.assert_array_equal(
            gradient, _numpy_gradient_of_sum(BAD_IDS["float"])
        )
        # Row 0 stands in for every bad id during the lookup; it must not
        # collect their gradient (no 0 in the float batch is valid).
        np.testing.assert_array_equal(gradient[0], 0.0)

    @parameterized.named_parameters(("float_ids", "float"), ("int_ids", "int"))
    def test_same_ids_raise_when_called_eagerly(self, kind):
        with self.assertRaisesRegex(ValueError, "invalid id"):
            _layer()(keras.ops.convert_to_tensor(BAD_IDS[kind]))


class CompiledModelTest(parameterized.TestCase):
    """`model.compile(jit_compile=...)` then fit / predict / evaluate."""

    @parameterized.named_parameters(("jit", True), ("auto", "auto"))
    def test_predict_in_range_ids_match_eager_and_keras(self, jit_compile):
        _skip_on_torch()
        model = _lookup_model("int32", jit_compile)
        predicted = model.predict(GOOD_IDS, verbose=0)
        np.testing.assert_array_equal(predicted, to_numpy(model(GOOD_IDS)))
        np.testing.assert_array_equal(
            predicted, _keras_embedding_outputs(GOOD_IDS)
        )

    @parameterized.named_parameters(("jit", True), ("auto", "auto"))
    def test_predict_and_evaluate_zero_bad_ids(self, jit_compile):
        _skip_on_torch()
        ids = BAD_IDS["float"]
        model = _lookup_model("float32", jit_compile)
        predicted = model.predict(ids, verbose=0)
        np.testing.assert_array_equal(predicted, _numpy_reference(ids))
        # Against targets of ones, an all-zero vector costs exactly 1.
        logs = model.evaluate(
            BAD_ONLY_IDS,
            np.ones(BAD_ONLY_IDS.shape + (DIM,)),
            verbose=0,
            return_dict=True,
        )
        self.assertEqual(logs["loss"], 1.0)
        self.assertEqual(
            logs[f"{model.layers[0].name}/invalid_ids"], BAD_ONLY_IDS.size
        )

    def test_fit_sends_no_gradient_from_bad_ids(self):
        # Runs on torch too: there jit_compile=True means torch.compile.
        model = _lookup_model("float32", jit_compile=True)
        table = model.layers[0].embeddings
        before = to_numpy(table).copy()

        history = model.fit(
            BAD_ONLY_IDS,
            np.ones(BAD_ONLY_IDS.shape + (DIM,)),
            batch_size=len(BAD_ONLY_IDS),
            verbose=0,
        )
        # All outputs were zero vectors, so the mse against ones is 1.
        self.assertEqual(history.history["loss"], [1.0])
        np.testing.assert_array_equal(to_numpy(table), before)

        if backend() == "torch":
            # Keras' torch train step leaves `.grad` set, and torch.compile
            # guards on it: clearing it avoids a second ~30 s CPU compile.
            model.zero_grad()
        mixed = BAD_IDS["float"]
        model.fit(
            mixed,
            np.ones(mixed.shape + (DIM,)),
            batch_size=len(mixed),
            verbose=0,
        )
        after = to_numpy(table)
        self.assertFalse(np.isnan(after).any())
        trained = np.zeros(VOCAB, dtype=bool)
        trained[mixed[_valid(mixed)].astype("int64")] = True
        changed = np.any(after != before, axis=1)
        np.testing.assert_array_equal(changed, trained)
        # Every entry of a trained row moves, since none equals its target.
        self.assertTrue(np.all(after[trained] != before[trained]))


class EagerModelTest(parameterized.TestCase):
    """Where fit/predict/evaluate run eagerly, bad ids raise ValueError.

    That is plain `model.compile()` on torch, and `run_eagerly=True`
    elsewhere.
    """

    @parameterized.named_parameters(
        ("fit", "fit"), ("predict", "predict"), ("evaluate", "evaluate")
    )
    def test_eager_model_methods_raise(self, method):
        model = keras.Sequential(
            [keras.Input(shape=(None,), dtype="float32"), _layer()]
        )
        if backend() == "torch":
            model.compile(optimizer="sgd", loss="mse")
        else:
            model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
        ids = BAD_IDS["float"]
        targets = np.ones(ids.shape + (DIM,))
        calls = {
            "fit": lambda: model.fit(ids, targets, shuffle=False, verbose=0),
            "predict": lambda: model.predict(ids, verbose=0),
            "evaluate": lambda: model.evaluate(ids, targets, verbose=0),
        }
        # The weights are not checked afterwards: on JAX, Keras leaves a
        # model's variables emptied when an error interrupts fit/predict.
        with self.assertRaisesRegex(
            ValueError, r"invalid id -1 at position \(0, 1\)"
        ):
            calls[method]()
