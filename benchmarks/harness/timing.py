"""Round-robin timing: every candidate is timed once per repeat, in turn.

Interleaving the candidates spreads the noise of a shared machine over all
of them alike, so their ratios stay meaningful when absolute times do not.
"""

import statistics
import time

import keras

from benchmarks.harness import backends

_MAX_CALLS_PER_REPEAT = 2000


def round_robin(candidates, warmup, repeats, min_repeat_s):
    """Times each zero-argument callable; returns {name: stats}.

    A repeat is `calls` back-to-back calls, enough to last `min_repeat_s`
    judged by the fastest warm-up call, then one sync; its time is divided
    by `calls`.
    """
    calls = {
        name: _calls_per_repeat(fn, warmup, min_repeat_s)
        for name, fn in candidates.items()
    }
    samples = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            samples[name].append(_one_repeat(fn, calls[name]))
    return {name: stats(times) for name, times in samples.items()}


def _calls_per_repeat(fn, warmup, min_repeat_s):
    fastest = min(_one_repeat(fn, 1) for _ in range(max(1, warmup)))
    if fastest <= 0 or min_repeat_s <= 0:
        return 1
    return max(1, min(_MAX_CALLS_PER_REPEAT, round(min_repeat_s / fastest)))


def _one_repeat(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        out = fn()
    backends.sync(out)
    return (time.perf_counter() - start) / calls


def stats(seconds):
    """The schema's timing fields from samples in seconds."""
    return {
        "median_ms": statistics.median(seconds) * 1e3,
        "min_ms": min(seconds) * 1e3,
        "max_ms": max(seconds) * 1e3,
        "repeats": len(seconds),
    }


class StepTimer(keras.callbacks.Callback):
    """Records each training step's seconds in `seconds`; reading the loss
    waits for the step to finish."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])
        self.seconds.append(time.perf_counter() - self._start)
