"""Quality and cost of compressed tables on a synthetic click-through task:
keys drawn Zipf(1.1) from V distinct ids, each id with a planted latent
vector z, labels ~ Bernoulli(sigmoid(0.53 z.x - 1)) for the example's 8
Gaussian features x; model sigmoid(a * <table(key), Dense(16)(x)> + b),
one epoch of Adam. A full `Embedding` against `HashedEmbedding` at 10x,
100x and 1000x fewer embedding parameters: held-out AUC and log-loss,
parameter count, fit step time (median), peak RSS of training and
scoring over the loaded data (one child process per case).

Each layer is one entry of `LAYERS`: `factory(vocab, dim, budget)` returns
`(layer, feed)`, a layer with at most `budget` parameters and the input
it reads: "ids" (dense ids in [0, vocab), as `Embedding`) or "halves"
(each id's random 64-bit key as `keras_embed.key_halves`, exact on every
backend, JAX's 32-bit mode included). `QuotientRemainderEmbedding`
("quotient_remainder", feed "ids") uses `operation="multiply"` with the
fewest collisions the budget allows; where two full-width tables cannot fit
(they need at least 2 sqrt(V) rows: 1000x at V=1e6), `"concatenate"`, whose
tables are half as wide.

Quality does not depend on the machine's load, timings do. Records: one
per layer and compression, `params` holding auc, log_loss, parameters and
the Bayes-optimal auc / log_loss of the planted model. Table and plot:

    python -m benchmarks run --suites hashing [--quick]   # any backend
    python -m benchmarks.suites.hashing_report benchmarks/results/<file>.json
"""

import os
import tempfile

import keras
import numpy as np

from benchmarks.harness import memory
from benchmarks.harness import records
from benchmarks.harness import timing

BASELINE = "embedding"
DIM = 16
FEATURES = 8
EXPONENT = 1.1
SIGNAL, BIAS = 1.5 / np.sqrt(FEATURES), -1.0
LEARNING_RATE = 3e-3

# (vocab, train examples, test examples, compressions, batch)
GRIDS = {
    "full": [
        (1_000_000, 4_000_000, 500_000, (10, 100, 1000), 2048),
        (10_000_000, 8_000_000, 500_000, (10, 100, 1000), 2048),
    ],
    "quick": [(1_000_000, 1_000_000, 200_000, (10, 100, 1000), 2048)],
    "tiny": [(1_000, 2_000, 500, (10,), 256)],
}


def _embedding(vocab, dim, budget):
    from keras_embed import Embedding

    return Embedding(vocab, dim), "ids"


def _hashed(combiner, num_hashes):
    def factory(vocab, dim, budget):
        from keras_embed import HashedEmbedding

        per_bucket = dim + (num_hashes if combiner == "weighted" else 0)
        buckets = max(1, budget // per_bucket)
        layer = HashedEmbedding(
            buckets,
            dim,
            num_hashes=num_hashes,
            combiner=combiner,
            key_halves=True,
        )
        return layer, "halves"

    return factory


def _quotient_remainder(vocab, dim, budget):
    from keras_embed import QuotientRemainderEmbedding

    for operation, width in (("multiply", dim), ("concatenate", dim / 2)):
        rows = budget / width
        # ceil(V / m) + m rows fit when m solves m**2 - rows * m + V <= 0;
        # the smallest such m shares each quotient row among fewest ids.
        disc = rows * rows - 4 * vocab
        if disc < 0:
            continue
        m = max(1, int(np.ceil((rows - np.sqrt(disc)) / 2)))
        while -(-vocab // m) + m > rows:
            m += 1
        layer = QuotientRemainderEmbedding(
            vocab, dim, num_collisions=m, operation=operation
        )
        return layer, "ids"
    raise ValueError(f"no quotient-remainder table fits {budget} parameters")


LAYERS = {
    "embedding": _embedding,
    "quotient_remainder": _quotient_remainder,
    "hashed_weighted": _hashed("weighted", 2),
    "hashed_sum": _hashed("sum", 2),
    "hashing_trick": _hashed("sum", 1),
}


def run(grid, log):
    with tempfile.TemporaryDirectory() as cache:
        specs = []
        for vocab, train, test, compressions, batch in GRIDS[grid]:
            # Made once and loaded by each case: the cases' peak RSS then
            # holds the arrays, not the transient memory of making them.
            path = os.path.join(cache, f"ctr_{vocab}_{train}_{test}.npz")
            np.savez(path, **make_data(vocab, train, test))
            specs += [
                {
                    "layer": name,
                    "compression": compression,
                    "vocab": vocab,
                    "train": train,
                    "test": test,
                    "batch": batch,
                    "data": path,
                }
                for name in LAYERS
                for compression in ((1,) if name == BASELINE else compressions)
            ]
        log(f"hashing: {len(specs)} cases")
        return memory.isolated(
            "benchmarks.suites.hashing:measure", specs, inline=grid == "tiny"
        )


def measure(spec):
    """Trains and scores one layer at one compression; returns its record."""
    with np.load(spec["data"]) as stored:
        data = {key: stored[key] for key in stored.files}
    start = memory.peak_rss_mb()
    keras.utils.set_random_seed(0)
    budget = spec["vocab"] * DIM // spec["compression"]
    layer, feed = LAYERS[spec["layer"]](spec["vocab"], DIM, budget)
    model = _model(layer, feed)
    train, test = _inputs(data, feed, "train"), _inputs(data, feed, "test")
    timer = timing.StepTimer()
    model.fit(
        train,
        data["train_y"],
        batch_size=spec["batch"],
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    scores = model.predict(test, batch_size=8192, verbose=0).reshape(-1)
    parameters = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    labels = data["test_y"]
    params = {
        **{k: v for k, v in spec.items() if k != "data"},
        "dim": DIM,
        "parameters": parameters,
        "actual_compression": spec["vocab"] * DIM / parameters,
        "auc": auc(labels, scores),
        "log_loss": log_loss(labels, scores),
        "bayes_auc": auc(labels, data["test_p"]),
        "bayes_log_loss": log_loss(labels, data["test_p"]),
        "mode": "fit",
    }
    impl = spec["layer"]
    if spec["compression"] != 1:
        impl = f"{impl} {spec['compression']}x"
    return records.record(
        "hashing",
        f"ctr V={spec['vocab']:.0e} d={DIM}",
        impl,
        params,
        timing.stats(timer.seconds[1:] or timer.seconds),
        rss_mb=memory.peak_rss_mb() - start,
    )


def make_data(vocab, train, test, seed=0):
    """The task's examples, the same for every case of a grid: ids, their
    64-bit keys, features, labels and the planted click probabilities."""
    rng = np.random.default_rng(seed)
    n = train + test
    cdf = np.cumsum(np.arange(1, vocab + 1, dtype=np.float64) ** -EXPONENT)
    ranks = np.searchsorted(cdf / cdf[-1], rng.random(n))
    del cdf
    # Ids in random order, so that no layer profits from rank order.
    ids = _bijection(ranks.astype(np.uint64), vocab)
    unique, inverse = np.unique(ids, return_inverse=True)
    latent = rng.standard_normal((len(unique), FEATURES), dtype=np.float32)
    x = rng.standard_normal((n, FEATURES), dtype=np.float32)
    logits = SIGNAL * np.einsum("ij,ij->i", latent[inverse], x) + BIAS
    p = 1 / (1 + np.exp(-logits))
    y = (rng.random(n) < p).astype(np.float32)
    keys = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)).view(
        np.int64
    )
    parts = {"ids": ids.astype(np.int32), "keys": keys, "x": x, "y": y}
    data = {f"train_{k}": v[:train] for k, v in parts.items()}
    data.update({f"test_{k}": v[train:] for k, v in parts.items()})
    data["test_p"] = p[train:]
    return data


def _bijection(ranks, vocab):
    """A fixed pseudo-random permutation of [0, vocab): an affine map mod
    vocab with a multiplier coprime to it."""
    multiplier = 2_654_435_761
    while np.gcd(multiplier, vocab) != 1:
        multiplier += 2
    return (ranks * np.uint64(multiplier) + np.uint64(12345)) % np.uint64(vocab)


def _inputs(data, feed, part):
    if feed == "halves":
        from keras_embed import key_halves

        keys = key_halves(data[f"{part}_keys"])
    else:
        keys = data[f"{part}_ids"]
    return {"keys": keys, "x": data[f"{part}_x"]}


def _model(layer, feed):
    shape, dtype = ((2,), "int32") if feed == "halves" else ((), "int32")
    keys = keras.Input(shape, dtype=dtype, name="keys")
    x = keras.Input((FEATURES,), name="x")
    projected = keras.layers.Dense(DIM, use_bias=False)(x)
    score = keras.layers.Dot(axes=-1)([layer(keys), projected])
    outputs = keras.layers.Dense(1, activation="sigmoid")(score)
    model = keras.Model({"keys": keys, "x": x}, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
    )
    return model


def auc(labels, scores):
    """Area under the ROC curve (Mann-Whitney U, ties at mean rank)."""
    labels = np.asarray(labels) > 0.5
    order = np.argsort(scores, kind="stable")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order), dtype=np.float64)
    _, first, counts = np.unique(
        sorted_scores, return_index=True, return_counts=True
    )
    mean_ranks = first + (counts + 1) / 2
    ranks[order] = np.repeat(mean_ranks, counts)
    positives = labels.sum()
    negatives = len(labels) - positives
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def log_loss(labels, p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
