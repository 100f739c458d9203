"""The only harness module that names TensorFlow, JAX or PyTorch.

Each function imports its backend library when called, so the harness
imports on any backend and keras_embed's own code stays backend-free.
Data and weights go through `keras.ops` / `keras.Variable`, which put them
on the backend's default device (a GPU when there is one).
"""

import contextlib
import functools
import importlib
import os
import platform

import keras

NATIVE_LOOKUP = {
    "tensorflow": "tf.nn.embedding_lookup",
    "jax": "jnp.take(w, ids, axis=0)",
    "torch": "torch.nn.functional.embedding",
}
COMPILER = {
    "tensorflow": "tf.function (graph, no XLA)",
    "jax": "jax.jit",
    "torch": "torch.compile (inductor, dynamic=False)",
}
# TensorFlow also runs tf.function(jit_compile=True): what Keras' fit and
# predict use there by default.
XLA_MODE = "compiled_xla"
# Set by `limit_threads`, so harness/memory.py's children limit theirs too.
THREADS_ENV = "KERAS_EMBED_BENCH_THREADS"


def name():
    return keras.backend.backend()


def versions():
    # The modules' own versions, not their distributions': keras-nightly
    # and tensorflow-cpu install `keras` and `tensorflow` under other names.
    found = {"python": platform.python_version()}
    for module in ("keras", "numpy", name()):
        imported = importlib.import_module(module)
        found[module] = getattr(imported, "__version__", None)
    return found


@functools.cache
def device():
    """'cpu' or 'gpu: <name>', the device Keras puts new tensors on."""
    backend = name()
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        return "cpu" if first.platform == "cpu" else f"gpu: {first.device_kind}"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu: {torch.cuda.get_device_name()}"
        return "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"gpu: {details.get('device_name', gpus[0].name)}"


def on_gpu():
    return device() != "cpu"


def sync(value):
    """Blocks until `value` (and the work queued before it) is computed."""
    backend = name()
    if backend == "jax":
        import jax

        jax.block_until_ready(value)
    elif on_gpu() and backend == "torch":
        import torch

        torch.cuda.synchronize()
    elif on_gpu():
        import tensorflow as tf

        tf.test.experimental.sync_devices()
    return value


def limit_threads(count):
    """Caps the backend's intra-op CPU threads; call before any backend op.

    On a shared machine a second worker thread is often descheduled, and a
    parallel kernel then waits for it at a barrier: timings swing by 100x.
    """
    backend = name()
    os.environ[THREADS_ENV] = str(count)
    if backend == "tensorflow":
        import tensorflow as tf

        # Not inter-op: eager ops then queue for its one thread (slower).
        tf.config.threading.set_intra_op_parallelism_threads(count)
    elif backend == "jax":
        # Read when JAX creates its CPU client, at the first computation.
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" in flags:
            return  # inherited from the process that started this one
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false "
            f"intra_op_parallelism_threads={count}"
        ).strip()
    else:
        import torch

        torch.set_num_threads(count)


def inference():
    """Context for forward timings: no autograd tape, as `predict` runs."""
    if name() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def reset_compiler():
    """Forgets compiled graphs, so each case compiles for its own shapes."""
    if name() == "torch":
        import torch

        torch._dynamo.reset()


def modes():
    if name() == "tensorflow":
        return ("eager", "compiled", XLA_MODE)
    return ("eager", "compiled")


def native_lookup():
    """The backend's own lookup as `fn(weights, ids)`."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.nn.embedding_lookup
    if backend == "jax":
        import jax.numpy as jnp

        return lambda weights, ids: jnp.take(weights, ids, axis=0)
    import torch

    return lambda weights, ids: torch.nn.functional.embedding(ids, weights)


def compile_fn(fn, weights, mode, cheap=False):
    """`fn(weights, ids)` run in `mode`, as a callable of `ids` alone.

    `cheap` (tests only): torch skips torch.compile, whose start-up alone
    takes 10+ s.
    """
    backend = name()
    if backend == "jax" and isinstance(weights, keras.Variable):
        weights = weights.value
    if mode == "eager" or (cheap and backend == "torch"):
        return lambda ids: fn(weights, ids)
    if backend == "jax":
        import jax

        jitted = jax.jit(fn)
        return lambda ids: jitted(weights, ids)
    if backend == "tensorflow":
        import tensorflow as tf

        # The weights (a variable) are captured, as a layer's call does.
        return tf.function(
            lambda ids: fn(weights, ids), jit_compile=mode == XLA_MODE
        )
    import torch

    return torch.compile(lambda ids: fn(weights, ids), dynamic=False)


def compile_layer(layer, mode, cheap=False):
    """A layer call run in `mode`, as `predict` would trace it."""
    if mode == "eager":
        return layer
    if name() == "jax":
        # jax.jit would bake a closed-over table into the program as a
        # constant; Keras' own JAX trainer passes the state in instead.
        state = (
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
        )

        def call(weights, ids):
            return layer.stateless_call(*weights, ids)[0]

        return compile_fn(call, state, mode, cheap)
    return compile_fn(lambda _, ids: layer(ids), None, mode, cheap)


def device_peak_mb():
    """Peak device memory allocated so far, in MiB; None on CPU."""
    if not on_gpu():
        return None
    backend = name()
    if backend == "torch":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20
    import tensorflow as tf

    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
