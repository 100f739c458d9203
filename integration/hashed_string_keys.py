"""A click model trained on string ids through HashedEmbedding.

Users are strings ("user_17"), with no vocabulary: `keras_embed.string_keys`
turns them into 64-bit keys (FNV-1a 64, the same on every machine),
`keras_embed.key_halves` into int32 pairs that survive every backend's
conversion (JAX's 32-bit mode included), and a HashedEmbedding with 1,000
buckets stands for 20,000 users. The script checks and prints:

1. the rows each user reads are the NumPy reference `keras_embed.hash_ids`;
2. training beats a model that ignores the user (held-out log-loss);
3. a `.keras` round trip gives the same predictions.

Exits 1 if any check fails. Works under any KERAS_BACKEND:

    KERAS_BACKEND=torch python integration/hashed_string_keys.py
"""

import os
import sys
import tempfile

import keras
import numpy as np

from keras_embed import HashedEmbedding
from keras_embed import hash_ids
from keras_embed import key_halves
from keras_embed import string_keys

USERS, BUCKETS, EXAMPLES = 20_000, 1_000, 60_000


def make_clicks(rng):
    """Each user clicks with a probability of their own; users are drawn
    Zipf-like, so a few are frequent and most are rare."""
    names = np.array([f"user_{i}" for i in range(USERS)])
    propensity = rng.normal(-1.0, 1.5, USERS)
    weights = 1.0 / np.arange(1, USERS + 1) ** 1.1
    users = rng.choice(USERS, EXAMPLES, p=weights / weights.sum())
    clicks = rng.random(EXAMPLES) < 1 / (1 + np.exp(-propensity[users]))
    return names[users], clicks.astype("float32")


def build_model():
    halves = keras.Input((2,), dtype="int32", name="user")
    layer = HashedEmbedding(BUCKETS, 8, key_halves=True, name="users")
    logit = keras.layers.Dense(1, activation="sigmoid")(layer(halves))
    model = keras.Model(halves, logit)
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy")
    return model


def log_loss(labels, p):
    p = np.clip(p.reshape(-1), 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    names, clicks = make_clicks(rng)
    keys = string_keys(names)
    inputs = key_halves(keys)
    train, test = slice(0, 50_000), slice(50_000, None)
    model = build_model()
    layer = model.get_layer("users")
    print(f"backend: {keras.backend.backend()}")
    print(
        f"{str(names[0])!r} -> key {keys[0]} -> rows "
        f"{keras.ops.convert_to_numpy(layer.bucket_ids(inputs[:1]))[0]}"
    )

    found = keras.ops.convert_to_numpy(layer.bucket_ids(inputs))
    expected = np.stack([hash_ids(keys, BUCKETS, j) for j in (0, 1)], -1)
    rows_ok = np.array_equal(found, expected)
    print(f"1. rows equal keras_embed.hash_ids for {len(keys)} keys: {rows_ok}")

    model.fit(inputs[train], clicks[train], batch_size=512, epochs=3, verbose=0)
    predicted = model.predict(inputs[test], batch_size=4096, verbose=0)
    trained = log_loss(clicks[test], predicted)
    constant = log_loss(
        clicks[test], np.full(predicted.shape, clicks[train].mean())
    )
    learned = trained < constant - 0.02
    print(
        f"2. held-out log-loss {trained:.4f} vs {constant:.4f} for the "
        f"click rate alone: learned = {learned}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clicks.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    again = reloaded.predict(inputs[test], batch_size=4096, verbose=0)
    saved_ok = np.allclose(again, predicted, rtol=1e-6, atol=1e-7)
    print(f"3. reloaded model predicts the same: {saved_ok}")

    if not (rows_ok and learned and saved_ok):
        print("FAILED: see the checks above.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
