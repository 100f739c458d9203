"""The `feature_arguments` model saved on every backend loads everywhere
with padding_id, max_norm and the untied reverse projection intact."""

import numpy as np
import pytest

from tests import testing
from tests.test_embedding_saving import FIXTURE_BACKENDS
from tests.test_embedding_saving import load_fixture
from tests.test_embedding_saving import numpy_reference


@pytest.mark.parametrize("backend", FIXTURE_BACKENDS)
def test_fixture_keeps_feature_arguments(backend):
    model, data = load_fixture(backend, "feature_arguments")
    layer = model.get_layer("embedding")
    assert (layer.padding_id, layer.max_norm, layer.norm_type) == (0, 1.0, 2.0)
    assert layer.tie_weights is False
    assert (layer.reverse_dtype, layer.logit_soft_cap) == ("float32", 5.0)
    assert tuple(layer.reverse_embeddings.shape) == (4, 18)
    # One Adam step went by before saving; the padding row did not move.
    np.testing.assert_array_equal(data["embeddings"][0], 0)
    np.testing.assert_array_equal(testing.to_numpy(layer.embeddings)[0], 0)
    logits = testing.to_numpy(model(data["ids"]))
    assert logits.shape == (3, 6, 18)
    assert np.abs(logits).max() <= 5.0
    # padding_id, max_norm, the untied projection and the soft cap, from
    # NumPy; max_norm must clip some looked-up row for this to bite.
    norms = np.linalg.norm(data["embeddings"][data["ids"]], axis=-1)
    assert (norms > 1.0).any()
    np.testing.assert_allclose(
        logits,
        numpy_reference("feature_arguments", model, data),
        **testing.matmul_tolerance(rtol=1e-5, atol=1e-6),
    )
