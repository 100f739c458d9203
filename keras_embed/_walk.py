"""Walking a model's layers: nested models, and layers that hold others."""

import keras


def walk_layers(layer, seen=None):
    """Yields `layer` and every layer below it, each once: a model's
    `layers`, and the layers a layer holds as attributes (an
    `EmbeddingBag`'s inner `Embedding`)."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    held = list(vars(layer).values())
    if keras.backend.backend() == "torch" and hasattr(layer, "children"):
        # There a layer is a torch Module, which keeps the layers it holds
        # out of its `__dict__`, in `children()`.
        held += list(layer.children())
    children = list(getattr(layer, "layers", None) or ())
    children += [v for v in held if isinstance(v, keras.layers.Layer)]
    for child in children:
        yield from walk_layers(child, seen)
