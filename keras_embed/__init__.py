"""keras_embed: one Embedding layer, the same on TensorFlow, JAX, PyTorch."""

from keras_embed.embedding import Embedding

__all__ = ["Embedding"]
__version__ = "0.1.0"
