import warnings

import keras
import numpy as np
import pytest
from keras import ops

from keras_embed import EmbeddingBag
from tests import testing
from tests.gradients import weight_gradients

RNG = np.random.default_rng(0)
TABLE = RNG.normal(size=(8, 4)).astype("float32")
# Padded bags: id 0 is padding with mask_zero; the last bag is empty.
IDS = np.array([[1, 2, 2, 0], [7, 3, 0, 0], [5, 0, 0, 0], [0, 0, 0, 0]])
WEIGHTS = RNG.uniform(0.5, 2.0, size=IDS.shape).astype("float32")


def reference(ids, combiner, keep, weights=None, table=TABLE):
    """The combiners, one bag at a time, in NumPy float64."""
    out = np.zeros(ids.shape[:-1] + (table.shape[1],))
    w_all = np.ones(ids.shape) if weights is None else weights
    for b in np.ndindex(*ids.shape[:-1]):
        rows = table[ids[b][keep[b]]].astype("float64")
        w = w_all[b][keep[b]][:, None]
        if len(rows) == 0:
            continue
        if combiner == "sum":
            out[b] = (w * rows).sum(0)
        elif combiner == "mean":
            out[b] = (w * rows).sum(0) / w.sum()
        elif combiner == "sqrtn":
            out[b] = (w * rows).sum(0) / np.sqrt((w**2).sum())
        else:
            out[b] = rows.max(0)
    return out


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn", "max"])
def test_layer_contract(combiner):
    testing.run_layer_test(
        EmbeddingBag,
        {"input_dim": 8, "output_dim": 3, "combiner": combiner},
        # One id per bag: "max" trains only the rows it picks.
        input_data=np.array([[1], [2]], dtype="int32"),
        expected_output_shape=(2, 3),
        supports_masking=True,
    )


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn", "max"])
def test_combiners_match_numpy_with_mask_zero(combiner):
    bag = EmbeddingBag(8, 4, combiner, weights=TABLE, mask_zero=True)
    out = testing.to_numpy(bag(IDS.astype("int32")))
    assert out.shape == (4, 4)
    np.testing.assert_allclose(
        out, reference(IDS, combiner, IDS != 0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(out[3], 0)  # the empty bag


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_per_id_weights_match_numpy(combiner):
    bag = EmbeddingBag(8, 4, combiner, weights=TABLE, padding_id=0)
    out = testing.to_numpy(bag(IDS.astype("int32"), id_weights=WEIGHTS))
    np.testing.assert_allclose(
        out, reference(IDS, combiner, IDS != 0, WEIGHTS), rtol=1e-5, atol=1e-6
    )


def test_padding_id_and_incoming_mask_are_left_out_of_the_counts():
    ids = np.array([[1, 6, 2, 3], [6, 6, 4, 5]], dtype="int32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype="bool")
    bag = EmbeddingBag(8, 4, "mean", weights=TABLE, padding_id=-2)
    out = testing.to_numpy(bag(ids, mask=ops.convert_to_tensor(mask)))
    keep = mask & (ids != 6)
    np.testing.assert_allclose(
        out, reference(ids, "mean", keep), rtol=1e-5, atol=1e-6
    )


class MaskSevens(keras.layers.Layer):
    """Passes ids through and masks the 7s, as an upstream layer might."""

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 7)


def test_mask_from_a_previous_layer_in_a_model():
    ids = keras.Input((4,), dtype="int32")
    bag = EmbeddingBag(8, 4, "mean", weights=TABLE, mask_zero=True)
    model = keras.Model(ids, bag(MaskSevens()(ids)))
    assert model.output_shape == (None, 4)
    np.testing.assert_allclose(
        model.predict(IDS.astype("int32"), verbose=0),
        reference(IDS, "mean", (IDS != 0) & (IDS != 7)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("mask_zero", [False, True])
def test_masked_input_raises_no_warning_about_the_inner_layer(mask_zero):
    ids = keras.Input((4,), dtype="int32")
    bag = EmbeddingBag(8, 4, "sum", weights=TABLE, mask_zero=mask_zero)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.Model(ids, bag(MaskSevens()(ids)))
        out = model.predict(IDS.astype("int32"), verbose=0)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "mask" in m], messages
    keep = (IDS != 7) & ((IDS != 0) if mask_zero else True)
    np.testing.assert_allclose(
        out, reference(IDS, "sum", keep), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("combiner", ["mean", "max"])
def test_gradient_matches_numpy(combiner):
    bag = EmbeddingBag(8, 4, combiner, weights=TABLE, mask_zero=True)
    upstream = RNG.normal(size=(4, 4)).astype("float32")
    (grad,) = weight_gradients(
        bag,
        lambda out: ops.sum(out * ops.convert_to_tensor(upstream)),
        ops.convert_to_tensor(IDS.astype("int32")),
    )
    expected = np.zeros_like(TABLE)
    for b, row in enumerate(IDS):
        kept = row[row != 0]
        if combiner == "mean":
            for i in kept:
                expected[i] += upstream[b] / len(kept)
        elif len(kept):
            winners = kept[np.argmax(TABLE[kept], axis=0)]
            for d, i in enumerate(winners):
                expected[i, d] += upstream[b, d]
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_ragged_inputs_on_tensorflow():
    if testing.backend() != "tensorflow":
        pytest.skip("RaggedTensor is TensorFlow only")
    import tensorflow as tf

    rows = [[1, 2, 2], [7], []]
    weights = [[0.5, 1.0, 2.0], [3.0], []]
    bag = EmbeddingBag(8, 4, "sqrtn", weights=TABLE)
    out = bag(tf.ragged.constant(rows), id_weights=tf.ragged.constant(weights))
    dense = np.array([[1, 2, 2], [7, 0, 0], [0, 0, 0]])
    keep = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=bool)
    dense_w = np.array([[0.5, 1, 2], [3, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(
        out.numpy(), reference(dense, "sqrtn", keep, dense_w), rtol=1e-5
    )


def test_invalid_ids_raise_eagerly_and_are_left_out_when_traced():
    bag = EmbeddingBag(8, 4, "mean", weights=TABLE)
    ids = np.array([[1, 9, 2]], dtype="int32")
    with pytest.raises(ValueError, match="invalid id 9"):
        bag(ids)
    model = keras.Sequential([keras.Input((3,), dtype="int32"), bag])
    # torch runs predict eagerly unless compiled: compile on every backend.
    model.compile(jit_compile=True)
    np.testing.assert_allclose(
        model.predict(ids, verbose=0),
        reference(ids, "mean", ids != 9),
        rtol=1e-5,
        atol=1e-6,
    )


def test_mixed_precision_max_norm_and_save(tmp_path):
    bag = EmbeddingBag(
        8, 4, "max", weights=TABLE, max_norm=0.5, dtype="mixed_float16"
    )
    out = bag(IDS.astype("int32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    model = keras.Sequential([keras.Input((4,), dtype="int32"), bag])
    reloaded = testing.save_and_load(model)
    assert reloaded.layers[0].get_config() == bag.get_config()
    np.testing.assert_array_equal(
        testing.to_numpy(reloaded(IDS)), testing.to_numpy(model(IDS))
    )


def test_from_pretrained_bag():
    bag = EmbeddingBag.from_pretrained(TABLE, combiner="sum")
    assert isinstance(bag, EmbeddingBag) and not bag.trainable
    np.testing.assert_allclose(
        testing.to_numpy(bag(np.array([[1, 2]]))), [TABLE[1] + TABLE[2]]
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="combiner"):
        EmbeddingBag(8, 4, "median")
    with pytest.raises(ValueError, match="id_weights"):
        EmbeddingBag(8, 4, "max")(IDS, id_weights=WEIGHTS)
    with pytest.raises(ValueError, match="bag_size"):
        EmbeddingBag(8, 4)(np.array([1, 2]))


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "tensor"])
def test_an_eager_batch_is_validated_once(monkeypatch, as_tensor):
    from keras_embed import _ids

    calls = []
    for name in ("raise_for_invalid_ids", "valid_id_mask", "check_ids"):
        original = getattr(_ids, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(_ids, name, counted)
    bag = EmbeddingBag(10, 4, padding_id=0, mask_zero=True)
    ids = np.array([[1, 2, 0], [3, 0, 0]], "int32")
    bag(keras.ops.convert_to_tensor(ids) if as_tensor else ids)
    # NumPy ids: checked on the host before Keras converts them, and only
    # there; tensors: checked once by the inner layer.
    expected = (
        ["check_ids", "raise_for_invalid_ids"]
        if as_tensor
        else ["raise_for_invalid_ids"]
    )
    assert calls == expected


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn", "max"])
def test_combiners_without_masks_match_numpy(combiner, compiled):
    # Nothing is left out of these bags: the layer's plain-reduction path
    # (eager) and its masked path (compiled: traced ids get a validity mask).
    ids = np.array([[1, 2, 3], [4, 4, 7], [5, 6, 1], [2, 2, 2]], "int32")
    bag = EmbeddingBag(8, 4, combiner, weights=TABLE)
    if compiled:
        model = keras.Sequential([keras.Input((3,), dtype="int32"), bag])
        model.compile(jit_compile=True)
        out = model.predict(ids, verbose=0)
    else:
        out = testing.to_numpy(bag(ids))
    expected = reference(ids, combiner, np.ones(ids.shape, bool))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_an_empty_bag_axis_gives_zeros():
    bag = EmbeddingBag(8, 4, "mean", weights=TABLE)
    out = testing.to_numpy(bag(np.zeros((2, 0), "int32")))
    np.testing.assert_array_equal(out, np.zeros((2, 4)))
