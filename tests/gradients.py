"""Gradients of a layer's weights on any backend, for tests.

Each backend's library is imported inside the function body, after Keras
has loaded it as its backend.
"""

import keras
import numpy as np


def weight_gradients(layer, loss_fn, *args, **kwargs):
    """d loss_fn(layer(*args, **kwargs)) / d layer.trainable_variables.

    Returns one dense NumPy array per trainable variable. On JAX the call
    is traced (the layer's compiled path); on TensorFlow and torch it is
    eager.
    """
    if not layer.built:
        layer.build()
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(trainable):
            outputs, _ = layer.stateless_call(
                trainable, non_trainable, *args, **kwargs
            )
            return loss_fn(outputs)

        trainable = [v.value for v in layer.trainable_variables]
        return [np.asarray(g) for g in jax.grad(loss)(trainable)]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(layer(*args, **kwargs))
        grads = tape.gradient(loss, layer.trainable_variables)
        return [
            np.zeros(v.shape, "float32")
            if g is None
            else tf.convert_to_tensor(g).numpy()
            for v, g in zip(layer.trainable_variables, grads, strict=True)
        ]
    for variable in layer.trainable_variables:
        variable.value.grad = None
    loss_fn(layer(*args, **kwargs)).backward()
    return [
        np.zeros(v.shape, "float32")
        if v.value.grad is None
        else v.value.grad.detach().cpu().numpy()
        for v in layer.trainable_variables
    ]
