"""The private Keras attributes keras_embed touches, each with why.

Keras offers no public way to do these; every other use of Keras goes
through its public API. `tests/test_package.py` fails on any `self._name`
in the package that is one of Keras's private layer attributes and is not
listed here.
"""

USED = {
    "_tracker": (
        "`enable_lora` adds the factors to a built layer, whose state Keras "
        "has locked; Keras's own `Embedding.enable_lora` unlocks "
        "`self._tracker` the same way."
    ),
    "_is_quantized": (
        "Keras's quantization protocol: its `quantize` wrapper and "
        "`dtype_policy` setter read it to know a layer is quantized; its own "
        "layers set it in `quantized_build`."
    ),
    "_input_shape_arg": (
        "What `Sequential` reads to create the model's input from its first "
        "layer, so `input_length` gives `model.output_shape` before any "
        "data; passing `input_shape=` instead makes Keras warn."
    ),
    "_untrack_variable": (
        "`quantize` replaces a custom storage whose variables no attribute "
        "holds; Keras untracks a variable only when the attribute holding "
        "it is deleted (as its own `quantize` does with `del "
        "self._embeddings`, which keras_embed does too for Keras-named "
        "variables)."
    ),
}

EXPOSED = {
    "_embeddings": (
        "Keras's `Embedding` keeps its raw table variable there and its "
        "code and tests read it: keras_embed sets it to the storage's "
        "`embeddings` variable."
    ),
    "_int4_block_size": (
        "Keras's int4 group size as configured, which its tests read: a "
        "property giving the storage's."
    ),
}
