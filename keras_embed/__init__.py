"""keras_embed: one Embedding layer, the same on TensorFlow, JAX, PyTorch."""

from keras_embed import row_sparse
from keras_embed import storage
from keras_embed.embedding import Embedding
from keras_embed.embedding_bag import EmbeddingBag
from keras_embed.hashed_embedding import HashedEmbedding
from keras_embed.hashing import hash_ids
from keras_embed.hashing import key_halves
from keras_embed.hashing import string_keys
from keras_embed.invalid_ids import InvalidIdCheck
from keras_embed.invalid_ids import InvalidIdCount
from keras_embed.lora_storage import LoraStorage
from keras_embed.pretrained import PretrainedVectors
from keras_embed.pretrained import load_word_vectors
from keras_embed.quantized_storage import QuantizedStorage
from keras_embed.quotient_remainder_embedding import QuotientRemainderEmbedding
from keras_embed.reversible_embedding import ReversibleEmbedding
from keras_embed.row_sparse import RowSparseFlush
from keras_embed.storage import FloatStorage
from keras_embed.storage import Storage

__all__ = [
    "Embedding",
    "EmbeddingBag",
    "FloatStorage",
    "HashedEmbedding",
    "InvalidIdCheck",
    "InvalidIdCount",
    "LoraStorage",
    "PretrainedVectors",
    "QuantizedStorage",
    "QuotientRemainderEmbedding",
    "ReversibleEmbedding",
    "RowSparseFlush",
    "Storage",
    "hash_ids",
    "key_halves",
    "load_word_vectors",
    "row_sparse",
    "storage",
    "string_keys",
]
__version__ = "0.3.0.dev0"
