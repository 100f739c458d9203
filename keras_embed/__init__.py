"""keras_embed: one Embedding layer, the same on TensorFlow, JAX, PyTorch."""

from keras_embed import row_sparse
from keras_embed.embedding import Embedding
from keras_embed.embedding_bag import EmbeddingBag
from keras_embed.pretrained import PretrainedVectors
from keras_embed.pretrained import load_word_vectors
from keras_embed.row_sparse import RowSparseFlush

__all__ = [
    "Embedding",
    "EmbeddingBag",
    "PretrainedVectors",
    "RowSparseFlush",
    "load_word_vectors",
    "row_sparse",
]
__version__ = "0.1.0"
