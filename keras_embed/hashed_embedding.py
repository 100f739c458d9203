import keras
import numpy as np
from keras import initializers
from keras import ops

from keras_embed import _hash_ops
from keras_embed import _ids
from keras_embed import hashing
from keras_embed import invalid_ids
from keras_embed._call_context import CallFact
from keras_embed._validation import is_ragged
from keras_embed._validation import positive_int
from keras_embed.embedding import Embedding

COMBINERS = ("weighted", "sum")
# NumPy keys split into halves on the host for this call: `compute_mask`
# and the output shape cannot see it otherwise.
_SPLIT_ON_HOST = CallFact("keys split on the host")
# The optional arguments the shared table's own config carries when used.
_TABLE_OPTIONS = (
    "sparse_optimizer",
    "max_ids_per_step",
    "lora_rank",
    "lora_alpha",
    "quantization_config",
)


@keras.saving.register_keras_serializable(package="keras_embed")
class HashedEmbedding(keras.layers.Layer):
    """Turns arbitrary integer keys into dense vectors through hashed rows.

    For open id spaces (user or item ids up to 2**63, new ids every day,
    tokenizers' unknown ids): there is no vocabulary and no invalid key.
    Each key reads `num_hashes` rows of one shared `(num_buckets,
    output_dim)` table, chosen by `num_hashes` seeded hashes of the key
    (`keras_embed.hash_ids`, MurmurHash3; identical on TensorFlow, JAX and
    PyTorch, eager or compiled, and part of the saved format), and combines
    them:

    - "weighted" (the default; hash embeddings, Svenstrup et al. 2017):
      `sum_j p_j(key) * row_j`, with `p(key)` the key's `num_hashes`
      learned importance weights, a row of a second
      `(importance_buckets, num_hashes)` table chosen by one more hash.
      Two keys that share their table rows rarely share their weights, so
      training can tell them apart; for `num_hashes * importance_buckets`
      extra parameters. Chosen as the default because it keeps more
      accuracy at a given size (docs/hashing.md, measured).
    - "sum": `sum_j row_j`, the plain hashing trick (with `num_hashes=1`
      one hashed row per key, as `keras.layers.Hashing` + `Embedding`).

    The shared table is an inner `keras_embed.Embedding` (`layer.embedding`,
    ids = buckets), so its initializer, regularizer, constraint,
    row-sparse training, LoRA and quantization work as there.
    `Model.quantize` quantizes that table (the importance weights stay
    float); the layer's own `quantize` raises NotImplementedError, as Keras
    layers that do not quantize themselves do.

    Keys are integers of any dtype up to int64 (uint64 hash by their bits),
    or floats holding whole numbers in `[-2**31, 2**31)`. A float key that
    is not one raises ValueError when the keys hold values (eager calls);
    inside a compiled function it gives a zero vector and no gradient.
    Strings raise TypeError: turn them into keys with
    `keras_embed.string_keys` first. Under JAX's default 32-bit mode,
    `fit`/`predict` turn int64 keys into int32 before any layer sees them
    (keys beyond int32 wrap to their low 32 bits): feed
    `keras_embed.key_halves(keys)` with `key_halves=True`, or enable JAX's
    x64 mode (docs/hashing.md). Eager calls on NumPy keys are exact on every
    backend.

    Args:
        num_buckets: Rows of the shared table, `1 <= num_buckets < 2**31`.
        output_dim: Size of each embedding vector. A positive integer.
        num_hashes: Rows read per key. A positive integer.
        combiner: "weighted" (default) or "sum", see above.
        embeddings_initializer: Initializer for the shared table.
        embeddings_regularizer: Regularizer for the shared table.
        activity_regularizer: Regularizer applied to the output.
        embeddings_constraint: Constraint for the shared table.
        mask_zero: If True, key 0 is padding: `compute_mask` returns
            `keys != 0`, and key 0 gives a zero vector that trains nothing
            (its hashed rows belong to other keys too).
        seed: Hash seed, an integer in `[0, 2**32)`. Hash `j` uses seed
            `seed + j` (mod 2**32) over `num_buckets`, the importance
            weights seed `seed + num_hashes` over `importance_buckets`.
        importance_buckets: Rows of the importance table ("weighted" only);
            defaults to `num_buckets`.
        importance_initializer: Initializer of the importance weights;
            None (default) is the constant 0.1: keys that training rarely
            sees then stay near a zero vector instead of taking on the
            full rows of the frequent keys they collide with (+0.003 AUC
            over "ones", which starts as the plain sum; docs/hashing.md).
        key_halves: If True, the inputs are `keras_embed.key_halves(keys)`:
            int32 `(..., 2)`, the low and high 32 bits of each key.
        sparse_optimizer: Row-sparse training of the shared table, as
            `Embedding`'s; the importance weights train with the model's
            optimizer.
        max_ids_per_step: With `sparse_optimizer`, the most table reads one
            training call makes: keys per batch times `num_hashes`.
        lora_rank: Build with LoRA enabled (see `enable_lora`).
        lora_alpha: LoRA scale numerator, as `Embedding`'s.
        quantization_config: The shared table's quantization config (set by
            quantizing it, kept in `get_config()`).
        table_dtype: The shared table's dtype policy when it differs from
            the layer's (a quantized table's, kept in `get_config()`).
        **kwargs: Base layer arguments such as `name`, `dtype` and
            `trainable`.

    Call arguments:
        inputs: Integer keys of any shape (a TensorFlow `RaggedTensor`
            gives a ragged output), or with `key_halves=True` their
            `(..., 2)` int32 halves.
        training: Passed to the shared table (row-sparse training).

    Input shape:
        Any shape `(d1, ..., dn)`; with `key_halves`, `(d1, ..., dn, 2)`.

    Output shape:
        `(d1, ..., dn, output_dim)`.

    Example:

    >>> layer = HashedEmbedding(num_buckets=1000, output_dim=8)
    >>> layer(np.array([[2**62 + 7, -5, 0]])).shape
    (1, 3, 8)
    >>> layer(string_keys([["user_42", "item_7"]])).shape
    (1, 2, 8)
    """

    def __init__(
        self,
        num_buckets,
        output_dim,
        num_hashes=2,
        combiner="weighted",
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        activity_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        *,
        seed=0,
        importance_buckets=None,
        importance_initializer=None,
        key_halves=False,
        sparse_optimizer=None,
        max_ids_per_step=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        table_dtype=None,
        **kwargs,
    ):
        num_buckets = hashing.check_num_buckets(num_buckets, "num_buckets")
        output_dim = positive_int(output_dim, "output_dim")
        num_hashes = positive_int(num_hashes, "num_hashes")
        importance_buckets = _check_combiner(
            combiner, importance_buckets, num_buckets
        )
        seed = hashing.check_seed(seed)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.embedding = Embedding(
            num_buckets,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            sparse_optimizer=sparse_optimizer,
            max_ids_per_step=max_ids_per_step,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            quantization_config=quantization_config,
            dtype=self.dtype_policy if table_dtype is None else table_dtype,
            trainable=self.trainable,
            # The layer's own name, and no count of its own: bucket ids are
            # valid by construction, this layer counts its invalid keys.
            name=self.name,
            invalid_id_counter=None,
        )
        self.num_buckets = num_buckets
        self.output_dim = output_dim
        self.num_hashes = num_hashes
        self.combiner = combiner
        self.mask_zero = mask_zero
        self.seed = seed
        self.importance_buckets = importance_buckets
        if importance_initializer is None:
            importance_initializer = initializers.Constant(0.1)
        self.importance_initializer = initializers.get(importance_initializer)
        self.key_halves = bool(key_halves)
        self.supports_masking = mask_zero
        self.autocast = False
        self.invalid_id_counter = "metric"
        # Hash j picks table row j; one more picks the importance weights.
        extra = [] if importance_buckets is None else [importance_buckets]
        self._sizes = [num_buckets] * num_hashes + extra
        self._seeds = [(seed + j) % 2**32 for j in range(len(self._sizes))]

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("quantization_config") is not None:
            config["quantization_config"] = (
                keras.saving.deserialize_keras_object(
                    config["quantization_config"]
                )
            )
        if config.get("table_dtype") is not None:
            config["table_dtype"] = keras.dtype_policies.deserialize(
                config["table_dtype"]
            )
        return super().from_config(config)

    @property
    def embeddings(self):
        """The shared `(num_buckets, output_dim)` table (as a float matrix
        when quantized or with LoRA)."""
        return self.embedding.embeddings

    def build(self, input_shape=None):
        if self.built:
            return
        self.embedding.build()
        self.invalid_id_metric = invalid_ids.InvalidIdCount(self.name)
        if self.combiner == "weighted":
            self.importance = self.add_weight(
                shape=(self.importance_buckets, self.num_hashes),
                initializer=self.importance_initializer,
                name="importance",
                trainable=not self.embedding.lora_enabled,
            )
        self.built = True

    def enable_lora(
        self,
        rank,
        lora_alpha=None,
        a_initializer="he_uniform",
        b_initializer="zeros",
    ):
        """Enables LoRA on the shared table (see `Embedding.enable_lora`)
        and freezes the importance weights: only the factors train."""
        self.embedding.enable_lora(
            rank, lora_alpha, a_initializer, b_initializer
        )
        if self.combiner == "weighted":
            self.importance.trainable = False

    def quantize(self, mode=None, type_check=True, config=None):
        raise NotImplementedError(
            f"Layer '{self.name}' (HashedEmbedding) does not quantize "
            "itself: `Model.quantize` quantizes its shared table, the inner "
            "Embedding `layer.embedding`, and keeps the importance weights "
            "in float. To quantize this layer alone, call "
            "`layer.embedding.quantize(mode)`."
        )

    def flush(self):
        """Applies a pending row-sparse update of the shared table."""
        self.embedding.flush()

    @property
    def valid_ids_rule(self):
        """Which keys are valid, and the fix, as error messages say it."""
        return (
            "Float keys must hold whole numbers in [-2**31, 2**31); integer "
            "keys are always valid. Pass integer keys "
            "(keras_embed.string_keys turns strings into them)"
        )

    @property
    def invalid_id_count(self):
        """How many invalid keys (traced float keys that are not whole
        numbers in range) this layer has read as zero vectors since it was
        built or last reset; see `keras_embed.invalid_ids`."""
        if not self.built:
            return 0
        return int(ops.convert_to_numpy(self.invalid_id_metric.total))

    def reset_invalid_id_count(self):
        """Sets `invalid_id_count` back to 0."""
        if self.built:
            self.invalid_id_metric.reset_total()

    def bucket_ids(self, inputs):
        """The table rows `(..., num_hashes)` that the keys read, as int32:
        `hash_ids(keys, num_buckets, (seed + j) % 2**32)` for hash `j`."""
        halves = self._host_halves(inputs)
        if halves is None:
            halves, keys = self.key_halves, ops.convert_to_tensor(inputs)
        else:
            halves, keys = True, ops.convert_to_tensor(halves)
        keys, _ = self._integer_keys(keys, halves)
        return self._buckets(keys, halves)[..., : self.num_hashes]

    def __call__(self, inputs, *args, **kwargs):
        halves = self._host_halves(inputs)
        if halves is None:
            # Checked before Keras wraps errors raised inside `call`.
            self._check_tensor_keys(inputs)
            return super().__call__(inputs, *args, **kwargs)
        # NumPy keys are split on the host: JAX without x64 would wrap int64
        # keys beyond int32 when Keras converts them.
        with _SPLIT_ON_HOST.during(self):
            return super().__call__(halves, *args, **kwargs)

    def call(self, inputs, training=None):
        if is_ragged(inputs):
            flat = self._embed(inputs.flat_values, training)
            return inputs.with_flat_values(flat)
        return self._embed(
            ops.convert_to_tensor(inputs, sparse=False), training
        )

    def _embed(self, keys, training):
        halves = self._halves()
        keys, keep = self._integer_keys(keys, halves)
        if keep is not None:
            self.invalid_id_metric.update_state(_ids.count_invalid(keep))
        buckets = self._buckets(keys, halves)
        training = bool(training) and self.trainable
        rows, _ = self.embedding.lookup(
            buckets[..., : self.num_hashes], training, ids_checked=True
        )
        if self.combiner == "weighted":
            weights = ops.take(self.importance, buckets[..., -1], axis=0)
            rows = rows * ops.expand_dims(ops.cast(weights, rows.dtype), -1)
        outputs = ops.sum(rows, axis=-2)
        if self.mask_zero:
            present = _nonzero(keys, halves)
            keep = present if keep is None else ops.logical_and(keep, present)
        if keep is not None:
            outputs = ops.where(ops.expand_dims(keep, -1), outputs, 0)
        return ops.cast(outputs, self.compute_dtype)

    def _buckets(self, keys, halves):
        words = _hash_ops.key_words(keys, halves)
        return _hash_ops.buckets(words, self._seeds, self._sizes)

    def _integer_keys(self, keys, halves):
        """Integer `keys`, and where float keys are traced, the mask of the
        whole ones in range (None when every key is usable)."""
        dtype = self._check_dtype(keys.dtype, keys.shape, halves)
        if "float" not in dtype:
            return keys, None
        values = _ids.concrete_value(keys)
        if values is not None:
            hashing.float_keys(values, f"Layer '{self.name}'")
            return ops.cast(keys, "int32"), None
        keep = ops.logical_and(
            ops.equal(ops.floor(keys), keys),
            ops.logical_and(
                ops.greater_equal(keys, -(2.0**31)), ops.less(keys, 2.0**31)
            ),
        )
        return ops.cast(ops.where(keep, keys, 0), "int32"), keep

    def _check_dtype(self, dtype, shape, halves):
        dtype = keras.backend.standardize_dtype(dtype)
        caller = f"Layer '{self.name}'"
        if "int" not in dtype and "float" not in dtype:
            raise hashing.not_keys_error(caller, dtype)
        if halves and ("int" not in dtype or shape[-1] != 2):
            raise ValueError(
                f"{caller} has key_halves=True and expects int32 inputs of "
                f"shape (..., 2) from keras_embed.key_halves(keys), but "
                f"received dtype {dtype}, shape {tuple(shape)}."
            )
        return dtype

    def _check_tensor_keys(self, inputs):
        """Raises for non-numeric keys and, where they hold values, for
        float keys that are not whole numbers in int32 range."""
        if not hasattr(inputs, "dtype") or not hasattr(inputs, "shape"):
            return
        dtype = self._check_dtype(inputs.dtype, inputs.shape, self.key_halves)
        if "float" in dtype and not isinstance(inputs, keras.KerasTensor):
            flat = inputs.flat_values if is_ragged(inputs) else inputs
            values = _ids.concrete_value(flat)
            if values is not None:
                hashing.float_keys(values, f"Layer '{self.name}'")

    def _host_halves(self, inputs):
        """NumPy/Python keys as int32 halves, checked; None for tensors."""
        if not isinstance(
            inputs, (np.ndarray, np.generic, list, tuple, int, float)
        ):
            return None
        caller = f"Layer '{self.name}'"
        if not self.key_halves:
            return hashing.key_halves(hashing.as_int64_keys(inputs, caller))
        array = np.asarray(inputs)
        if array.dtype.kind not in "iu" or array.shape[-1:] != (2,):
            raise ValueError(
                f"{caller} has key_halves=True and expects int32 inputs of "
                f"shape (..., 2) from keras_embed.key_halves(keys), but "
                f"received dtype {hashing.dtype_name(array.dtype)}, shape "
                f"{array.shape}."
            )
        return (
            (array.astype(np.int64) & 0xFFFFFFFF)
            .astype(np.uint32)
            .view(np.int32)
        )

    def _halves(self):
        """Whether this call's keys come as halves: `key_halves`, or NumPy
        keys this layer split on the host."""
        return self.key_halves or _SPLIT_ON_HOST.holds(self)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return _nonzero(inputs, self._halves())

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self._halves():
            input_shape = input_shape[:-1]
        return input_shape + (self.output_dim,)

    def compute_output_spec(self, inputs, training=None):
        self._check_dtype(inputs.dtype, inputs.shape, self._halves())
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape),
            dtype=self.compute_dtype,
            ragged=getattr(inputs, "ragged", False),
        )

    def get_config(self):
        config = super().get_config()
        table = self.embedding.get_config()
        config.update(
            {
                "num_buckets": self.num_buckets,
                "output_dim": self.output_dim,
                "num_hashes": self.num_hashes,
                "combiner": self.combiner,
                "embeddings_initializer": table["embeddings_initializer"],
                "embeddings_regularizer": table["embeddings_regularizer"],
                "activity_regularizer": keras.regularizers.serialize(
                    self.activity_regularizer
                ),
                "embeddings_constraint": table["embeddings_constraint"],
                "mask_zero": self.mask_zero,
                "seed": self.seed,
                "importance_buckets": self.importance_buckets,
                "importance_initializer": initializers.serialize(
                    self.importance_initializer
                ),
                "key_halves": self.key_halves,
            }
        )
        config.update(
            {name: table[name] for name in _TABLE_OPTIONS if name in table}
        )
        if table["dtype"] != config["dtype"]:
            config["table_dtype"] = table["dtype"]
        return config


def _nonzero(keys, halves):
    if halves:
        return ops.any(ops.not_equal(keys, 0), axis=-1)
    return ops.not_equal(keys, 0)


def _check_combiner(combiner, importance_buckets, num_buckets):
    """The importance table's size for `combiner` (None for "sum")."""
    if combiner not in COMBINERS:
        raise ValueError(
            f"`combiner` must be one of {COMBINERS}, but received {combiner!r}."
        )
    if combiner == "sum":
        if importance_buckets is not None:
            raise ValueError(
                "`importance_buckets` sizes the importance weights of "
                f"combiner='weighted', but received importance_buckets="
                f"{importance_buckets!r} with combiner='sum'. Drop it, or "
                "use combiner='weighted'."
            )
        return None
    if importance_buckets is None:
        return num_buckets
    return hashing.check_num_buckets(importance_buckets, "importance_buckets")
