"""keras_embed: one Embedding layer, the same on TensorFlow, JAX, PyTorch."""

from keras_embed import row_sparse
from keras_embed import tables
from keras_embed.embedding import Embedding
from keras_embed.embedding_bag import EmbeddingBag
from keras_embed.hashed_embedding import HashedEmbedding
from keras_embed.hashing import hash_ids
from keras_embed.hashing import key_halves
from keras_embed.hashing import string_keys
from keras_embed.invalid_id_check import InvalidIdCheck
from keras_embed.pretrained import PretrainedVectors
from keras_embed.pretrained import load_word_vectors
from keras_embed.reversible_embedding import ReversibleEmbedding
from keras_embed.row_sparse import RowSparseFlush
from keras_embed.tables import DenseTable
from keras_embed.tables import LookupTable

__all__ = [
    "DenseTable",
    "Embedding",
    "EmbeddingBag",
    "HashedEmbedding",
    "InvalidIdCheck",
    "LookupTable",
    "PretrainedVectors",
    "ReversibleEmbedding",
    "RowSparseFlush",
    "hash_ids",
    "key_halves",
    "load_word_vectors",
    "row_sparse",
    "string_keys",
    "tables",
]
__version__ = "0.2.0"
