"""keras_embed: one Embedding layer, the same on TensorFlow, JAX, PyTorch."""

from keras_embed.embedding import Embedding
from keras_embed.embedding_bag import EmbeddingBag
from keras_embed.pretrained import PretrainedVectors
from keras_embed.pretrained import load_word_vectors

__all__ = [
    "Embedding",
    "EmbeddingBag",
    "PretrainedVectors",
    "load_word_vectors",
]
__version__ = "0.1.0"
