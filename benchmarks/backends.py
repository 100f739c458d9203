"""The only place that names TensorFlow, JAX or PyTorch.

Each function imports its backend library when called, so the harness
imports on any backend and keras_embed's own code stays backend-free.
"""

import contextlib
import importlib.metadata
import os
import platform

import keras

NATIVE_LOOKUP = {
    "tensorflow": "tf.nn.embedding_lookup",
    "jax": "jnp.take(w, ids, axis=0)",
    "torch": "torch.nn.functional.embedding",
}
# TensorFlow also runs "compiled_xla" (tf.function(jit_compile=True)): what
# Keras' fit/predict use there by default.
XLA_MODE = "compiled_xla"
COMPILER = {
    "tensorflow": "tf.function (graph, no XLA)",
    "jax": "jax.jit",
    "torch": "torch.compile (inductor, dynamic=False)",
}
_LIBRARY = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def name():
    return keras.backend.backend()


def versions():
    found = {"python": platform.python_version()}
    for package in ("keras", "numpy", _LIBRARY[name()]):
        found[package] = _version(package)
    if name() == "tensorflow":
        found["tensorflow"] = _tf_version()
    return found


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tf_version():
    import tensorflow as tf

    return tf.__version__


def limit_threads(count):
    """Caps the backend's intra-op thread pool; call before any backend op.

    On a shared machine a second worker thread is often descheduled, and a
    parallel kernel then waits for it at a barrier: timings swing by 100x.
    """
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        # Not inter-op: eager ops then queue for its one thread (slower).
        tf.config.threading.set_intra_op_parallelism_threads(count)
    elif backend == "jax":
        # Read when JAX creates its CPU client, at the first computation.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false "
            f"intra_op_parallelism_threads={count}"
        ).strip()
    else:
        import torch

        torch.set_num_threads(count)


def sync(value):
    """Blocks until `value` is computed; only JAX returns before that."""
    if name() == "jax" and hasattr(value, "block_until_ready"):
        value.block_until_ready()
    return value


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


def modes():
    if name() == "tensorflow":
        return ("eager", "compiled", XLA_MODE)
    return ("eager", "compiled")


def compile_pure(fn, weights, cheap=False, xla=False):
    """Compiles `fn(weights, ids)`; returns a callable of `ids` alone."""
    backend = name()
    if backend == "jax":
        import jax

        jitted = jax.jit(fn)
        return lambda ids: jitted(weights, ids)

    # TensorFlow and torch capture the weights (a variable) by closure, as
    # a layer's call does.
    def call(ids):
        return fn(weights, ids)

    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(call, jit_compile=xla)
    if cheap:
        # Dynamo alone takes 10+ s to start: too slow for the test suite.
        return call
    import torch

    return torch.compile(call, dynamic=False)


def compile_layer(layer, cheap=False, xla=False):
    """Compiles a layer call as `fit`/`predict` would trace it."""
    if name() == "jax":
        # jax.jit would bake a closed-over weight matrix into the program as
        # a constant; Keras' own JAX trainer passes the state in instead.
        state = [variable.value for variable in layer.trainable_variables]

        def call(weights, ids):
            return layer.stateless_call(weights, [], ids)[0]

        return compile_pure(call, state, cheap)
    return compile_pure(lambda weights, ids: layer(ids), None, cheap, xla)


def weights_of(variable):
    """What a `keras.ops` function is handed as the weights: the Keras
    variable itself, as a layer uses it, except under jax.jit, which takes
    arrays as arguments."""
    return variable.value if name() == "jax" else variable
