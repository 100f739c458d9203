"""Facts about a layer's current call that `compute_mask` cannot be told.

Keras computes a call's output mask with `compute_mask(first_argument,
previous_mask)`: no other argument of the call reaches it, and Keras has no
public way for `call` to attach a mask itself (its own layers use a private
helper). A layer whose mask depends on how it was called (a reverse call of
`ReversibleEmbedding`, keys split into halves on the host by
`HashedEmbedding`) records that for the call's duration in a `CallFact`: on
the call stack of this thread, never on the instance, so nested and
concurrent calls do not see each other's.
"""

import contextlib
import contextvars


class CallFact:
    """Whether a layer's current call has one property.

    Args:
        name: What the property is, for debugging.
    """

    def __init__(self, name):
        self._active_layer_ids = contextvars.ContextVar(
            f"keras_embed_{name}", default=()
        )

    @contextlib.contextmanager
    def during(self, layer):
        """Records the fact for `layer` while the block runs."""
        token = self._active_layer_ids.set(
            (*self._active_layer_ids.get(), id(layer))
        )
        try:
            yield
        finally:
            self._active_layer_ids.reset(token)

    def holds(self, layer):
        return id(layer) in self._active_layer_ids.get()
