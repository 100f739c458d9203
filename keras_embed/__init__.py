"""keras_embed: one Embedding layer, the same on TensorFlow, JAX, PyTorch."""

from keras_embed import row_sparse
from keras_embed import storage
from keras_embed.embedding import Embedding
from keras_embed.embedding_bag import EmbeddingBag
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
    "InvalidIdCheck",
    "InvalidIdCount",
    "LoraStorage",
    "PretrainedVectors",
    "QuantizedStorage",
    "QuotientRemainderEmbedding",
    "ReversibleEmbedding",
    "RowSparseFlush",
    "Storage",
    "load_word_vectors",
    "row_sparse",
    "storage",
]
__version__ = "0.3.0.dev0"
