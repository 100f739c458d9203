"""One memory case, run alone in a fresh child process (see memory.py).

Peak resident memory is `resource.getrusage(...).ru_maxrss`, read when the
child starts (`start_mb`), once the case's weights and inputs exist
(`setup_mb`) and after the case ran (`peak_mb`).
"""

import resource

from keras import ops

from benchmarks import backends
from benchmarks import grid as grids
from benchmarks import layers
from benchmarks import training

FORWARD_IMPLS = ("keras_embed", "keras", "native")
_CALLS = 3


def peak_mb():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def forward_mode():
    """The mode `predict` runs in by default on this backend."""
    return "eager" if backends.name() == "torch" else "compiled"


def run(spec):
    start = peak_mb()
    if spec["section"] == "forward":
        setup, peak = _forward(spec)
    else:
        setup, peak = _training(spec)
    return {
        **spec,
        "start_mb": start,
        "setup_mb": setup,
        "peak_mb": peak,
        "case_mb": peak - start,
    }


def _forward(spec):
    vocab, dim = spec["vocab"], spec["dim"]
    weights = layers.weight_matrix(vocab, dim)
    ids = ops.convert_to_tensor(layers.random_ids(vocab, spec["ids_shape"]))
    lookup = _lookup(spec["impl"], weights, spec["mode"], spec["cheap"])
    setup = peak_mb()
    with backends.inference():
        for _ in range(_CALLS):
            out = lookup(ids)
        backends.sync(out)
    return setup, peak_mb()


def _lookup(impl, weights, mode, cheap):
    if impl == "native":
        tensor = ops.convert_to_tensor(weights)
        native = backends.native_lookup()
        if mode == "eager":
            return lambda ids: native(tensor, ids)
        return backends.compile_pure(native, tensor, cheap)
    layer = layers.build(impl, weights)
    if mode == "eager":
        return layer
    return backends.compile_layer(layer, cheap)


def _training(spec):
    case = grids.TrainCase(
        spec["vocab"], spec["dim"], spec["optimizer"], 0, 1, spec["steps"]
    )
    weights = layers.weight_matrix(case.vocab, case.dim)
    model = training.build_model(spec["impl"], weights, case)
    x, y = training.batches(case, spec["steps"])
    setup = peak_mb()
    training.fit(model, x, y, case, spec["steps"])
    return setup, peak_mb()


def specs(grid):
    found = []
    # Only the largest ids: the smaller ones change the peak by less than
    # their output (160 KiB at most), and each case costs a child process.
    largest = max(case.ids_shape for case in grid.forward)
    for case in grid.forward:
        if case.ids_shape != largest:
            continue
        for impl in FORWARD_IMPLS:
            found.append(
                {
                    "section": "forward",
                    "vocab": case.vocab,
                    "dim": case.dim,
                    "ids_shape": list(case.ids_shape),
                    "impl": impl,
                    "mode": forward_mode(),
                    "cheap": grid.cheap_compile,
                }
            )
    for case in grid.training:
        for impl in ("keras_embed", "keras"):
            found.append(
                {
                    "section": "training",
                    "vocab": case.vocab,
                    "dim": case.dim,
                    "optimizer": case.optimizer,
                    "impl": impl,
                    "steps": 3,
                }
            )
    return found
