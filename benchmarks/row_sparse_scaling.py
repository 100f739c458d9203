"""Step time and peak memory of row-sparse training vs keras.layers.Embedding.

Model: ids (1024 x 10) -> embedding (dim 64) -> GlobalAveragePooling1D ->
Dense(1), mse, `train_on_batch`. For each backend, one process times every
configuration on the same inputs (median ms/step after warm-up steps):

* `keras.layers.Embedding` + the model optimizer (Adam or SGD) on everything;
* `keras_embed.Embedding(sparse_optimizer=...)`: the table trained row-wise
  (Adam -> LazyAdam, SGD -> SGD), the Dense layer by the same Keras
  optimizer;

at vocabulary 10k and 1M. Peak memory: one child process per configuration
reports `resource.getrusage(RUSAGE_SELF).ru_maxrss` before the first step
(model and optimizer state built) and after the timed steps; their
difference is what the training steps allocate beyond the weights.

Run from the repository root:

    python -m benchmarks.row_sparse_scaling            # all backends
    python -m benchmarks.row_sparse_scaling --backends jax --steps 10

Each backend runs under its own interpreter: `--python-<backend>` (default:
the current interpreter, which then needs every backend installed).
Writes benchmarks/results/row_sparse_scaling.{md,json}.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from benchmarks import machine as machine_info

BATCH, LENGTH, DIM = 1024, 10, 64
VOCABS = (10_000, 1_000_000)
OPTIMIZERS = ("adam", "sgd")
LAYERS = ("keras", "row_sparse")
PARTS = ("timing", "memory", "scatter")
BACKENDS = ("tensorflow", "jax", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(layer_kind, vocab, optimizer_name):
    import keras

    import keras_embed

    def make_optimizer():
        if optimizer_name == "adam":
            return keras.optimizers.Adam(1e-3)
        return keras.optimizers.SGD(0.1)

    if layer_kind == "keras":
        embedding = keras.layers.Embedding(vocab, DIM)
    else:
        embedding = keras_embed.Embedding(
            vocab,
            DIM,
            sparse_optimizer=make_optimizer(),
            max_ids_per_step=BATCH * LENGTH,
        )
    inputs = keras.Input((LENGTH,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(embedding(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model.compile(make_optimizer(), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def batches(vocab, count=8, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        (
            rng.integers(0, vocab, size=(BATCH, LENGTH)).astype("int32"),
            rng.normal(size=(BATCH, 1)).astype("float32"),
        )
        for _ in range(count)
    ]


def time_steps(model, data, warmup, steps):
    for i in range(warmup):
        model.train_on_batch(*data[i % len(data)])
    times = []
    for i in range(steps):
        start = time.perf_counter()
        model.train_on_batch(*data[i % len(data)])  # returns host floats
        times.append((time.perf_counter() - start) * 1e3)
    return times


def child_timing(args):
    """All configurations of one backend, in this one process."""
    import keras

    results = []
    for vocab in VOCABS:
        data = batches(vocab)
        for optimizer in OPTIMIZERS:
            for layer in LAYERS:
                model = build(layer, vocab, optimizer)
                times = time_steps(model, data, args.warmup, args.steps)
                results.append(
                    {
                        "layer": layer,
                        "vocab": vocab,
                        "optimizer": optimizer,
                        "median_ms": statistics.median(times),
                        "min_ms": min(times),
                        "steps": len(times),
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
                del model
                keras.utils.clear_session()
    print(json.dumps(results))


def _max_rss_mib():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _reset_peak_rss():
    """Linux: restart the peak-RSS count from the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_memory(args):
    """Peak RSS of one configuration's training steps, in its own process.

    The peak-RSS count is reset (Linux `/proc/self/clear_refs`) once the
    model and optimizer state are built, and again after one warm-up step:
    `first_step_growth` is the warm-up step's peak over the RSS before it
    (it includes compilation and buffers a backend keeps pooled for later
    steps, e.g. JAX's), `step_growth` the later steps' peak over the RSS
    before them.
    """
    import numpy as np

    model = build(args.layer, args.vocab, args.optimizer)
    variables = list(model.weights) + list(model.optimizer.variables)
    state_bytes = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables
    )
    data = batches(args.vocab, count=2)
    reset = _reset_peak_rss()
    built = _max_rss_mib()
    time_steps(model, data, warmup=1, steps=0)
    first_peak = _max_rss_mib()
    reset = _reset_peak_rss() and reset
    before = _max_rss_mib()
    time_steps(model, data, warmup=0, steps=args.memory_steps)
    after = _max_rss_mib()
    print(
        json.dumps(
            {
                "layer": args.layer,
                "vocab": args.vocab,
                "optimizer": args.optimizer,
                "state_mib": state_bytes / 2**20,
                "peak_reset": reset,
                "rss_built_mib": built,
                "first_step_growth_mib": first_peak - built,
                "rss_before_steps_mib": before,
                "peak_rss_during_steps_mib": after,
                "step_growth_mib": after - before,
            }
        )
    )


def child_profile(args):
    """cProfile of row-sparse steps (eager backends show their ops)."""
    import cProfile
    import pstats

    model = build("row_sparse", args.vocab, args.optimizer)
    data = batches(args.vocab, count=4)
    time_steps(model, data, warmup=2, steps=0)
    profile = cProfile.Profile()
    profile.enable()
    time_steps(model, data, warmup=0, steps=4)
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


def child_scatter(args):
    """Where a row-sparse step's time goes beyond JAX: one keras.ops row
    update (`var.assign(ops.scatter_update(var.value, ids, rows))`, what
    the layer does per table/slot variable), compiled as the backend's
    trainer compiles a step, at each vocabulary size."""
    import keras
    import numpy as np
    from keras import ops

    backend = keras.backend.backend()
    results = []
    for vocab in VOCABS:
        var = keras.Variable(np.zeros((vocab, DIM), "float32"))
        rng = np.random.default_rng(0)
        ids = ops.convert_to_tensor(
            rng.integers(0, vocab, (BATCH * LENGTH, 1)).astype("int32")
        )
        rows = ops.convert_to_tensor(
            rng.normal(size=(BATCH * LENGTH, DIM)).astype("float32")
        )
        if backend == "jax":
            import jax

            step = jax.jit(
                lambda t, i, r: ops.scatter_update(t, i, r),
                donate_argnums=0,
            )
            state = [var.value]

            def run(step=step, state=state, ids=ids, rows=rows):
                state[0] = step(state[0], ids, rows)
                state[0].block_until_ready()

        else:
            run = _row_update(var, ids, rows)
            if backend == "tensorflow":
                import tensorflow as tf

                run = tf.function(run)
        for _ in range(2):
            run()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1e3)
        results.append(
            {"vocab": vocab, "scatter_assign_ms": statistics.median(times)}
        )
        del var
    print(json.dumps(results))


def thread_env(threads):
    """Pins every backend's CPU thread pools (the machine is shared: with
    more threads than free cores, spin-waiting pools slow down 5x)."""
    if not threads:
        return {}
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": n,
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
        f"intra_op_parallelism_threads={n}",
    }


def _row_update(var, ids, rows):
    from keras import ops

    def update():
        var.assign(ops.scatter_update(var.value, ids, rows))

    return update


def run_child(backend, python, extra, threads=None):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(thread_env(threads))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [python, "-m", "benchmarks.row_sparse_scaling", "--child"]
    command += extra
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{backend} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def interpreter(backend, args):
    return getattr(args, f"python_{backend}") or sys.executable


def machine():
    return dict(machine_info.describe(), python=platform.python_version())


def versions(python, backend):
    code = (
        "import keras, importlib; "
        f"m = importlib.import_module({_module(backend)!r}); "
        "print(keras.__version__, m.__version__)"
    )
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True
    ).stdout.split()
    return {"keras": out[0], backend: out[1]} if len(out) == 2 else {}


def _module(backend):
    return {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]


def targets(results):
    """The issue's targets, checked against the medians above."""
    lines = []
    for backend, entry in results["backends"].items():
        rows = {
            (r["layer"], r["optimizer"], r["vocab"]): r["median_ms"]
            for r in entry.get("timing", [])
        }
        if not rows:
            continue
        for optimizer in OPTIMIZERS:
            dense = rows[("keras", optimizer, VOCABS[1])]
            sparse = rows[("row_sparse", optimizer, VOCABS[1])]
            ok = "met" if dense / sparse >= 10 else "NOT met"
            lines.append(
                f"- {backend}, {optimizer}: 1M row-sparse is "
                f"{dense / sparse:.1f}x faster than keras.layers.Embedding "
                f"(target >= 10x): {ok}"
            )
        if backend == "jax":
            for optimizer in OPTIMIZERS:
                small = rows[("row_sparse", optimizer, VOCABS[0])]
                large = rows[("row_sparse", optimizer, VOCABS[1])]
                ok = "met" if large <= 2 * small else "NOT met"
                lines.append(
                    f"- jax, {optimizer}: row-sparse 1M / 10k = "
                    f"{large / small:.2f} (target <= 2): {ok}"
                )
    return lines


def report(results):
    lines = [
        "# Row-sparse training: step time and memory vs vocabulary",
        "",
        "Generated by `benchmarks/row_sparse_scaling.py`. Model: ids "
        f"({BATCH} x {LENGTH}) -> embedding (dim {DIM}) -> "
        "GlobalAveragePooling1D -> Dense(1), mse, `train_on_batch`. "
        "`keras`: `keras.layers.Embedding`, the model optimizer updates the "
        "whole table. `row_sparse`: `keras_embed.Embedding(sparse_optimizer="
        "<same Keras optimizer>, max_ids_per_step=10240)` (Adam -> LazyAdam "
        "on the touched rows), the Dense layer trained by the model's "
        "optimizer. Median ms/step over "
        f"{results['steps']} steps after {results['warmup']} warm-up steps, "
        "each backend in one process.",
        "",
        f"Machine: {results['machine']['cpu_model']}, "
        f"{results['machine']['cpu_count']} CPUs visible, "
        f"{results['machine']['platform']}, Python "
        f"{results['machine']['python']}. The machine is shared with other "
        "jobs (load average at start: "
        f"{', '.join(f'{x:.1f}' for x in results['load_average_at_start'])}"
        "); each backend was pinned to "
        f"{results['threads'] or 'its default number of'} CPU thread(s); "
        "medians are reported.",
        "",
        "## Step time (median ms/step)",
        "",
        "| backend | optimizer | layer | 10k | 1M | 1M / 10k | "
        "speed-up at 1M vs keras |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for backend, entry in results["backends"].items():
        rows = {
            (r["layer"], r["optimizer"], r["vocab"]): r["median_ms"]
            for r in entry.get("timing", [])
        }
        for optimizer in OPTIMIZERS:
            for layer in LAYERS:
                small = rows.get((layer, optimizer, VOCABS[0]))
                large = rows.get((layer, optimizer, VOCABS[1]))
                if small is None or large is None:
                    continue
                dense_large = rows[("keras", optimizer, VOCABS[1])]
                speedup = (
                    f"{dense_large / large:.1f}x"
                    if layer == "row_sparse"
                    else ""
                )
                lines.append(
                    f"| {backend} | {optimizer} | {layer} | {small:.1f} | "
                    f"{large:.1f} | {large / small:.2f} | {speedup} |"
                )
    lines += ["", "## Targets", ""] + targets(results)
    lines += [
        "",
        "## Peak memory at vocabulary 1M (MiB, `ru_maxrss`, one process "
        "per row)",
        "",
        "`state`: weights + optimizer variables. `built`: RSS once the "
        "model and optimizer state exist. The peak-RSS count "
        "(`ru_maxrss`) is then reset (`/proc/self/clear_refs`): `first "
        "step` = the first step's peak - built (compilation, and buffers "
        "a backend pools for later steps, as JAX does); reset again, "
        "`steps` = the next steps' peak - the RSS before them. A dense "
        f"{VOCABS[1]:,} x {DIM} float32 gradient or table copy is "
        f"{VOCABS[1] * DIM * 4 / 2**20:.0f} MiB.",
        "",
        "| backend | optimizer | layer | state | built | first step | steps |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for backend, entry in results["backends"].items():
        for r in entry.get("memory", []):
            if "rss_built_mib" not in r:
                continue  # measured by an older version of this script
            lines.append(
                f"| {backend} | {r['optimizer']} | {r['layer']} | "
                f"{r['state_mib']:.0f} | {r['rss_built_mib']:.0f} | "
                f"+{r['first_step_growth_mib']:.0f} | "
                f"+{r['step_growth_mib']:.0f} |"
            )
    scatter = {
        backend: {r["vocab"]: r["scatter_assign_ms"] for r in entry["scatter"]}
        for backend, entry in results["backends"].items()
        if entry.get("scatter")
    }
    if scatter:
        lines += [
            "",
            "## Where the time goes: one keras.ops row update",
            "",
            "`var.assign(ops.scatter_update(var.value, ids, rows))` with "
            f"{BATCH * LENGTH} rows of {DIM} floats, compiled as the "
            "backend's trainer compiles a step (JAX: `jit` with the state "
            "donated; TensorFlow: `tf.function`; PyTorch: eager). The "
            "row-sparse step does this once per variable: the table, plus "
            "one accumulator (Adagrad) or two moments (LazyAdam). Median ms.",
            "",
            "| backend | 10k | 1M | 1M / 10k |",
            "|---|---:|---:|---:|",
        ]
        for backend, row in scatter.items():
            small, large = row[VOCABS[0]], row[VOCABS[1]]
            lines.append(
                f"| {backend} | {small:.2f} | {large:.2f} | "
                f"{large / small:.0f}x |"
            )
    lines += ["", "## Versions", ""]
    for backend, entry in results["backends"].items():
        lines.append(f"- {backend}: {entry.get('versions')}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per backend (0: the backends' defaults)",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    for backend in BACKENDS:
        parser.add_argument(f"--python-{backend}", default=None)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated parts to (re)measure into the existing "
        f"results: {', '.join(PARTS)}",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--scatter", action="store_true", help=argparse.SUPPRESS
    )
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="with --child --vocab --optimizer and KERAS_BACKEND set: "
        "cProfile of 4 row-sparse steps",
    )
    parser.add_argument("--layer", help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--optimizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.scatter:
            return child_scatter(args)
        if args.profile:
            return child_profile(args)
        return child_memory(args) if args.memory else child_timing(args)
    parts = args.only.split(",") if args.only else PARTS
    results = {
        "machine": machine(),
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "load_average_at_start": os.getloadavg(),
        "backends": {},
    }
    if args.only:
        with open(os.path.join(args.out, "row_sparse_scaling.json")) as f:
            results = json.load(f)
    for backend in filter(None, args.backends.split(",")):
        python = interpreter(backend, args)
        entry = results["backends"].setdefault(backend, {})
        entry["versions"] = versions(python, backend)
        if "timing" in parts:
            print(f"[{backend}] timing ...", flush=True)
            entry["timing"] = run_child(
                backend,
                python,
                [f"--steps={args.steps}", f"--warmup={args.warmup}"],
                args.threads,
            )
        if "memory" in parts:
            print(f"[{backend}] memory ...", flush=True)
            entry["memory"] = [
                run_child(
                    backend,
                    python,
                    [
                        "--memory",
                        f"--layer={layer}",
                        f"--vocab={VOCABS[1]}",
                        f"--optimizer={optimizer}",
                        f"--memory-steps={args.memory_steps}",
                    ],
                    args.threads,
                )
                for optimizer in OPTIMIZERS
                for layer in LAYERS
            ]
        if "scatter" in parts:
            print(f"[{backend}] keras.ops row-update cost ...", flush=True)
            entry["scatter"] = run_child(
                backend,
                python,
                ["--scatter", f"--steps={args.steps}"],
                args.threads,
            )
        _write(args.out, results)
    print(report(results))
    return None


def _write(out, results):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "row_sparse_scaling.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out, "row_sparse_scaling.md"), "w") as f:
        f.write(report(results))


if __name__ == "__main__":
    main()
