"""A 10-million-row table trained row-sparse on one CPU machine.

    KERAS_BACKEND=jax python integration/row_sparse_scale.py [--vocab 1e7]
        [--steps 300] [--dense-steps 5]
        [--modes lazy_adam,rowwise_adagrad,dense_adam] [--threads 1]

Trains ids (1024 x 10) -> Embedding(vocab, 64) -> GlobalAveragePooling1D ->
Dense(1) with `train_on_batch`, with
`keras_embed.Embedding(sparse_optimizer="lazy_adam")`, with
`sparse_optimizer="rowwise_adagrad"` (one accumulator per row) and with
`keras.layers.Embedding` + Adam, each in its own process so that each peak
RSS is its own. Prints median ms/step and peak RSS of each, or that the
dense model did not fit (its process killed or out of memory). Exits 1 when
a row-sparse run fails or its loss is not finite. Not a test: it needs
several GB of memory and minutes, so `integration/run_all.py` skips it
(exit 77) unless KERAS_EMBED_SCALE=1 is set. Runs on every backend, with
one backend thread by default (`--threads 0`: the backend's default; on a
shared 2-core machine two threads made the PyTorch step 17x slower).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BATCH, LENGTH, DIM = 1024, 10, 64
MODES = ("lazy_adam", "rowwise_adagrad", "dense_adam")


def limit_threads(count):
    """Caps the backend's intra-op CPU threads, before any backend op."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false "
            f"intra_op_parallelism_threads={count}"
        ).strip()
    elif backend == "torch":
        import torch

        torch.set_num_threads(count)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(count)


def train(mode, vocab, steps):
    import keras
    import numpy as np

    from keras_embed import Embedding

    if mode == "dense_adam":
        embedding = keras.layers.Embedding(vocab, DIM)
    else:
        embedding = Embedding(
            vocab,
            DIM,
            sparse_optimizer=mode,
            max_ids_per_step=BATCH * LENGTH,
        )
    model = keras.Sequential(
        [
            keras.Input((LENGTH,), dtype="int32"),
            embedding,
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse")
    rng = np.random.default_rng(0)
    seconds, loss = [], None
    for _ in range(steps + 1):
        ids = rng.integers(0, vocab, (BATCH, LENGTH), dtype="int32")
        y = rng.standard_normal((BATCH, 1), dtype="float32")
        start = time.perf_counter()
        loss = float(model.train_on_batch(ids, y))
        seconds.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "vocab": vocab,
        "steps": steps,
        # The first step compiles.
        "ms_per_step": 1e3 * float(np.median(seconds[1:])),
        "first_step_s": seconds[0],
        "peak_rss_mib": peak_mib,
        "loss": loss,
    }


def run_child(mode, vocab, steps, threads):
    command = [sys.executable, __file__, "--child", mode, "--vocab", str(vocab)]
    command += ["--steps", str(steps), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        return {"mode": mode, "vocab": vocab, "failed": done.returncode,
                "why": " | ".join(tail)}  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=float, default=1e7)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dense-steps", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child")
    args = parser.parse_args()
    vocab = int(args.vocab)
    if os.environ.get("KERAS_EMBED_SCALE") != "1" and not args.child:
        print("skipped: set KERAS_EMBED_SCALE=1 (needs GB of memory, minutes)")
        return 77
    if args.child:
        if args.threads:
            limit_threads(args.threads)
        print(json.dumps(train(args.child, vocab, args.steps)))
        return 0
    backend = os.environ.get("KERAS_BACKEND", "tensorflow (default)")
    print(
        f"backend {backend}, vocab {vocab:,} x {DIM}, batch {BATCH}x{LENGTH}, "
        f"threads {args.threads or 'default'}"
    )
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        print(f"unknown modes {unknown}; known: {', '.join(MODES)}")
        return 2
    ok = True
    for mode in modes:
        steps = args.dense_steps if mode == "dense_adam" else args.steps
        result = run_child(mode, vocab, steps, args.threads)
        print(json.dumps(result))
        if "failed" in result:
            print(f"{mode}: did not run to the end ({result['why']})")
            ok = ok and mode == "dense_adam"
            continue
        print(
            f"{mode}: {result['ms_per_step']:.1f} ms/step over {steps} "
            f"steps, peak RSS {result['peak_rss_mib']:.0f} MiB, "
            f"loss {result['loss']:.4f}"
        )
        if mode != "dense_adam" and not result["loss"] == result["loss"]:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
