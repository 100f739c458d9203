"""Every constructor argument of every layer, set to a value other than its
default, comes back through `get_config` / `from_config` and a `.keras`
file. The arguments are read from the signatures, so a new argument that
`get_config` forgets fails here."""

import inspect
import json

import keras
import numpy as np
import pytest

from keras_embed import Embedding
from keras_embed import EmbeddingBag
from keras_embed import ReversibleEmbedding
from tests.testing import save_and_load

# Never part of a config, as in Keras: the initial weights.
NOT_IN_CONFIG = {"weights"}

COMMON = {
    "input_dim": 12,
    "output_dim": 6,
    "embeddings_initializer": "he_normal",
    "activity_regularizer": "l1",
    "mask_zero": True,
    "padding_id": 3,
    "max_norm": 2.0,
    "norm_type": 3.0,
    "invalid_id_counter": "variable",
    "name": "layer",
    "dtype": "mixed_float16",
    "trainable": False,
}
# Arguments that cannot be combined go in separate configurations.
DENSE = {
    **COMMON,
    "embeddings_regularizer": "l2",
    "embeddings_constraint": "non_neg",
    "input_length": 7,
}
LORA = {
    **COMMON,
    "lora_rank": 2,
    "lora_alpha": 4,
    "quantization_config": keras.quantizers.Int8QuantizationConfig(),
}
ROW_SPARSE = {
    **COMMON,
    "sparse_optimizer": "lazy_adam",
    "max_ids_per_step": 64,
    "embeddings_constraint": "non_neg",
}
REVERSIBLE = {
    "tie_weights": False,
    "reverse_dtype": "float32",
    "logit_soft_cap": 30.0,
}


def configurations(cls):
    if cls is EmbeddingBag:
        bag = [dict(c, combiner="sqrtn") for c in (DENSE, LORA, ROW_SPARSE)]
        for c in bag:
            c.pop("input_length", None)
        return bag
    extra = REVERSIBLE if cls is ReversibleEmbedding else {}
    return [{**c, **extra} for c in (DENSE, LORA, ROW_SPARSE)]


def arguments(cls):
    """The arguments `cls` takes: its own and, for the layers that pass
    `**kwargs` on, `Embedding`'s."""
    names = set()
    for owner in {cls, Embedding}:
        params = inspect.signature(owner.__init__).parameters
        names |= {
            p for p in params if p not in {"self", "kwargs"} | NOT_IN_CONFIG
        }
    if cls is EmbeddingBag:
        names -= {"input_length"}
    return names | {"name", "dtype", "trainable"}


def expected(value):
    """What `get_config` holds for a constructor value."""
    if isinstance(value, keras.quantizers.QuantizationConfig):
        return keras.saving.serialize_keras_object(value)
    return value


def as_json(config):
    # What a `.keras` file holds: tuples come back as lists.
    return json.loads(json.dumps(config))


def serialized_matches(config, name, value):
    held = config[name]
    if name == "embeddings_initializer":
        return held["class_name"] == "HeNormal"
    if name in ("embeddings_regularizer", "activity_regularizer"):
        return held["class_name"] == {"l2": "L2", "l1": "L1"}[value]
    if name == "embeddings_constraint":
        return held["class_name"] == "NonNeg"
    if name == "dtype":
        return held["config"]["name"] == value
    if name == "sparse_optimizer":
        return held["class_name"] == "LazyAdam"
    return held == expected(value)


@pytest.mark.parametrize(
    "cls",
    [Embedding, ReversibleEmbedding, EmbeddingBag],
    ids=lambda c: c.__name__,
)
def test_every_argument_survives_config_and_a_keras_file(cls):
    covered = set()
    for kwargs in configurations(cls):
        layer = cls(**kwargs)
        config = layer.get_config()
        for name, value in kwargs.items():
            assert name in config, f"{cls.__name__} config lacks {name!r}"
            assert serialized_matches(config, name, value), (name, config[name])
        assert as_json(cls.from_config(config).get_config()) == as_json(config)
        model = keras.Sequential([keras.Input((7,), dtype="int32"), layer])
        revived = save_and_load(model).layers[0]
        assert type(revived) is cls
        assert as_json(revived.get_config()) == as_json(config)
        covered |= set(kwargs)
    missing = arguments(cls) - covered
    assert not missing, f"arguments not checked: {sorted(missing)}"


def test_weights_are_never_config():
    layer = Embedding(4, 2, weights=np.ones((4, 2)))
    assert "weights" not in layer.get_config()
