"""Quality and cost of compressed tables on a synthetic click-through task:
keys drawn Zipf(1.1) from V distinct ids, each id with a planted latent
vector z, labels ~ Bernoulli(sigmoid(0.53 z.x - 1)) for the example's 8
Gaussian features x; model sigmoid(a * <table(key), Dense(16)(x)> + b),
one epoch of Adam. A full `Embedding` against `HashedEmbedding` at 10x,
100x and 1000x fewer embedding parameters: held-out AUC and log-loss,
parameter count, fit step time (median), peak RSS (one child process per
case).

Each layer is one entry of `LAYERS`: `factory(vocab, dim, budget)` returns
`(layer, feed)`, a layer with at most `budget` parameters and the input
it reads: "ids" (dense ids in [0, vocab), as `Embedding`) or "halves"
(each id's random 64-bit key as `keras_embed.key_halves`, exact on every
backend, JAX's 32-bit mode included). The lead adds
`QuotientRemainderEmbedding` as one more entry ("quotient_remainder",
feed "ids"); nothing else changes.

Quality does not depend on the machine's load, timings do. Records: one
per layer and compression, `params` holding auc, log_loss, parameters and
the Bayes-optimal auc / log_loss of the planted model. Table and plot:

    python -m benchmarks run --suites hashing [--quick]   # any backend
    python -m benchmarks.suites.hashing report benchmarks/results/<file>.json
"""

import time

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


LAYERS = {
    "embedding": _embedding,
    "hashed_weighted": _hashed("weighted", 2),
    "hashed_sum": _hashed("sum", 2),
    "hashing_trick": _hashed("sum", 1),
}


def run(grid, log):
    specs = [
        {
            "layer": name,
            "compression": compression,
            "vocab": vocab,
            "train": train,
            "test": test,
            "batch": batch,
        }
        for vocab, train, test, compressions, batch in GRIDS[grid]
        for name in LAYERS
        for compression in ((1,) if name == BASELINE else compressions)
    ]
    log(f"hashing: {len(specs)} cases")
    return memory.isolated(
        "benchmarks.suites.hashing:measure", specs, inline=grid == "tiny"
    )


def measure(spec):
    """Trains and scores one layer at one compression; returns its record."""
    data = make_data(spec["vocab"], spec["train"], spec["test"])
    start = memory.peak_rss_mb()
    keras.utils.set_random_seed(0)
    budget = spec["vocab"] * DIM // spec["compression"]
    layer, feed = LAYERS[spec["layer"]](spec["vocab"], DIM, budget)
    model = _model(layer, feed)
    train, test = _inputs(data, feed, "train"), _inputs(data, feed, "test")
    timer = _StepTimer()
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
        **spec,
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


class _StepTimer(keras.callbacks.Callback):
    """Seconds per training step; reading the loss waits for the step."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])
        self.seconds.append(time.perf_counter() - self._start)


def report(paths, markdown_path, plot_path=None):
    """A markdown table of every hashing record in the results files at
    `paths`, and (with matplotlib installed) AUC against parameters, one
    line per layer."""
    import json

    found, machines = [], []
    for path in paths:
        with open(path) as file:
            doc = json.load(file)
        picked = [r for r in doc["records"] if r["suite"] == "hashing"]
        found += picked
        if picked:
            m = doc["machine"]
            machines.append(
                f"{path}: {doc['backend']}, {m['device']}, {m['cpu_count']} x "
                f"{m['cpu_model']}, load {m['load_average'][0]:.1f}, "
                f"{m['date']}"
            )
    with open(markdown_path, "w") as file:
        file.write(_table(found, machines))
    if plot_path:
        _plot(found, plot_path)


def _table(found, machines):
    lines = [
        "# Hashed tables on the synthetic click-through task",
        "",
        "Generated by `python -m benchmarks.suites.hashing report`. "
        "Quality (AUC, log-loss) does not depend on the machine's load; "
        "step times and their ratios do (ratio = full table step / this "
        "step).",
        "",
        *[f"- {m}" for m in machines],
        "",
        "| V | layer | compression | parameters | AUC | AUC - full | "
        "log-loss | Bayes AUC | step ms | ratio | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    full = {
        r["params"]["vocab"]: r["params"]["auc"]
        for r in found
        if r["impl"] == BASELINE
    }
    for r in found:
        p = r["params"]
        gap = p["auc"] - full.get(p["vocab"], float("nan"))
        lines.append(
            f"| {p['vocab']:.0e} | {p['layer']} | "
            f"{p['actual_compression']:.0f}x | {p['parameters']:,} | "
            f"{p['auc']:.4f} | {gap:+.4f} | {p['log_loss']:.4f} | "
            f"{p['bayes_auc']:.4f} | {r['median_ms']:.1f} | "
            f"{r['ratio'] or float('nan'):.2f} | {r.get('rss_mb') or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _plot(found, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vocabs = sorted({r["params"]["vocab"] for r in found})
    fig, axes = plt.subplots(
        1, len(vocabs), figsize=(5.5 * len(vocabs), 4), dpi=110, squeeze=False
    )
    for ax, vocab in zip(axes[0], vocabs, strict=True):
        picked = [r for r in found if r["params"]["vocab"] == vocab]
        full = [r for r in picked if r["impl"] == BASELINE]
        for name in dict.fromkeys(r["params"]["layer"] for r in picked):
            points = sorted(
                (r["params"]["parameters"], r["params"]["auc"])
                for r in picked
                if r["params"]["layer"] == name
            )
            if name == BASELINE:
                continue
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
        if full:
            p = full[0]["params"]
            ax.axhline(p["auc"], color="black", label="full Embedding")
            ax.axhline(
                p["auc"] - 0.005, color="black", ls=":", label="full - 0.005"
            )
            ax.axhline(
                p["bayes_auc"], color="grey", ls="--", label="Bayes optimum"
            )
        ax.set_xscale("log")
        ax.set_xlabel("embedding parameters")
        ax.set_ylabel("held-out AUC")
        ax.set_title(f"{vocab:.0e} distinct keys, Zipf {EXPONENT}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suites.hashing",
        description="Table and plot of hashing results (needs matplotlib "
        "for the plot).",
    )
    parser.add_argument("command", choices=["report"])
    parser.add_argument("results", nargs="+", help="results JSON files")
    parser.add_argument("--markdown", default="benchmarks/results/hashing.md")
    parser.add_argument("--plot", default="docs/img/hashing_auc.png")
    args = parser.parse_args()
    report(args.results, args.markdown, args.plot)
