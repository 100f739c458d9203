"""Walking a model's layers, nested models and layers included."""


def walk_layers(layer, seen=None):
    """Yields `layer` and every layer below it, each once."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    for child in getattr(layer, "layers", None) or ():
        yield from walk_layers(child, seen)
