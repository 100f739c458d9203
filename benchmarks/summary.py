"""Ratios derived from the raw timings.

A speed ratio is `reference time / candidate time`: 1.0 is parity, above 1
the candidate is faster. Ratios are taken between medians measured side by
side in one process; `ratio_of_mins` repeats it with the fastest repeats,
which a shared machine disturbs least.
"""

import math

# Rows that are yardsticks, not candidates.
_REFERENCES = ("native", "numpy_copy")


def _key(row):
    return (row["vocab"], row["dim"], tuple(row["ids_shape"]), row["mode"])


def _by_case(rows):
    cases = {}
    for row in rows:
        cases.setdefault(_key(row), {})[row["impl"]] = row
    return cases


def _ratio(reference, candidate, field="median_s"):
    return reference[field] / candidate[field]


def forward_ratios(rows):
    """One entry per (case, mode, candidate) against native and Keras."""
    found = []
    for (vocab, dim, shape, mode), impls in _by_case(rows).items():
        for name, row in impls.items():
            if name in _REFERENCES:
                continue
            found.append(
                {
                    "vocab": vocab,
                    "dim": dim,
                    "ids_shape": list(shape),
                    "mode": mode,
                    "impl": name,
                    "vs_native": _ratio(impls["native"], row),
                    "vs_native_of_mins": _ratio(impls["native"], row, "min_s"),
                    "vs_keras": _ratio(impls["keras"], row),
                    "vs_keras_of_mins": _ratio(impls["keras"], row, "min_s"),
                }
            )
    return found


def safety_cost(rows):
    """keras_embed as shipped vs the same lookup without id checks.

    `cost` compares with the bare `ops.take` on the same weights, so it
    also counts the Keras layer call around the lookup; `check_cost`
    compares with keras_embed's own layer with the checks taken out, so it
    counts only the checks (and, traced, the masking).
    """
    found = []
    for (vocab, dim, shape, mode), impls in _by_case(rows).items():
        ours, bare = impls["keras_embed"], impls["bare_take"]
        unchecked = impls["keras_embed_unchecked"]
        found.append(
            {
                "vocab": vocab,
                "dim": dim,
                "ids_shape": list(shape),
                "mode": mode,
                "keras_embed_s": ours["median_s"],
                "unchecked_s": unchecked["median_s"],
                "bare_take_s": bare["median_s"],
                "keras_s": impls["keras"]["median_s"],
                "cost": ours["median_s"] / bare["median_s"] - 1,
                "check_cost": ours["median_s"] / unchecked["median_s"] - 1,
                "check_cost_of_mins": ours["min_s"] / unchecked["min_s"] - 1,
                "vs_keras": impls["keras"]["median_s"] / ours["median_s"],
            }
        )
    return found


def training_ratios(rows):
    found = []
    cases = {}
    for row in rows:
        key = (row["vocab"], row["dim"], row["optimizer"])
        cases.setdefault(key, {})[row["impl"]] = row
    for (vocab, dim, optimizer), impls in cases.items():
        found.append(
            {
                "vocab": vocab,
                "dim": dim,
                "optimizer": optimizer,
                "vs_keras": _ratio(impls["keras"], impls["keras_embed"]),
                "vs_keras_of_mins": _ratio(
                    impls["keras"], impls["keras_embed"], "min_s"
                ),
                "alternative_vs_keras": _optional_ratio(
                    impls, "keras", "keras_embed_alternative"
                ),
            }
        )
    return found


def _optional_ratio(impls, reference, candidate):
    if reference not in impls or candidate not in impls:
        return None
    return _ratio(impls[reference], impls[candidate])


def vocab_scaling(rows):
    """Step time at the largest vocabulary over the smallest, per layer."""
    vocabs = sorted({row["vocab"] for row in rows})
    if len(vocabs) < 2:
        return []
    small, large = vocabs[0], vocabs[-1]
    times = {
        (row["impl"], row["optimizer"], row["vocab"]): row["median_s"]
        for row in rows
    }
    found = []
    for impl, optimizer, vocab in times:
        if vocab != large or (impl, optimizer, small) not in times:
            continue
        found.append(
            {
                "impl": impl,
                "optimizer": optimizer,
                "small_vocab": small,
                "large_vocab": large,
                "ratio": times[impl, optimizer, large]
                / times[impl, optimizer, small],
            }
        )
    return found


def geometric_mean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))
