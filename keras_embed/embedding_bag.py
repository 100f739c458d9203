import keras
from keras import ops

from keras_embed import _ids
from keras_embed import _padding
from keras_embed._validation import is_ragged
from keras_embed.embedding import Embedding
from keras_embed.pretrained import FromPretrainedMixin

COMBINERS = ("sum", "mean", "sqrtn", "max")


@keras.saving.register_keras_serializable(package="keras_embed")
class EmbeddingBag(FromPretrainedMixin, keras.layers.Layer):
    """Looks up bags of ids and pools each bag into one vector.

    Like `torch.nn.EmbeddingBag` (with `padding_idx`, without `offsets`)
    and keras-rs `EmbedReduce`: the last axis of the ids holds one bag,
    e.g. the words of a document or the items a user clicked. Each id is
    looked up by an inner `keras_embed.Embedding` (so ids are validated,
    `padding_id` and `max_norm` act as there) and the bag's vectors are
    combined, vectorised over all bags:

    - "sum": `sum_i w_i v_i`;
    - "mean": `sum_i w_i v_i / sum_i w_i` (TensorFlow's weighted mean);
    - "sqrtn": `sum_i w_i v_i / sqrt(sum_i w_i**2)`;
    - "max": the element-wise maximum (no per-id weights).

    `w_i` is the per-id weight (1 without `id_weights`). Positions that
    are not part of a bag are left out of every combiner, counts included:
    id 0 with `mask_zero=True`, `padding_id`, positions where an incoming
    Keras mask is False, the padding of a ragged input, and, in traced
    code, invalid ids. A bag with nothing left (or whose weights sum to 0
    for "mean") gives a zero vector.

    Args:
        input_dim: Size of the vocabulary: the largest id + 1.
        output_dim: Size of each embedding vector.
        combiner: "sum", "mean" (default), "sqrtn" or "max".
        embeddings_initializer: Initializer for the `embeddings` matrix.
        embeddings_regularizer: Regularizer for the `embeddings` matrix.
        activity_regularizer: Regularizer applied to the pooled output.
        embeddings_constraint: Constraint for the `embeddings` matrix.
        mask_zero: If True, id 0 is padding and left out of the bags. The
            output has no mask (it has no sequence axis).
        padding_id: Id of a padding row, left out of the bags; see
            `Embedding`.
        max_norm: Clip each looked-up vector to this norm before pooling;
            see `Embedding`.
        norm_type: The p of the p-norm for `max_norm`.
        weights: Optional initial `(input_dim, output_dim)` matrix. See
            also `EmbeddingBag.from_pretrained`.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Call arguments:
        inputs: Ids `(..., bag_size)`, padded (dense) or a TensorFlow
            `RaggedTensor` with ragged last axis.
        id_weights: Optional float weights shaped like `inputs` (ragged
            like it for ragged inputs). Not allowed with "max".
        mask: Optional boolean mask shaped like `inputs`; Keras passes it
            from the layer before.

    Input shape:
        `(batch_size, bag_size)`, or more generally `(..., bag_size)`.

    Output shape:
        `(batch_size, output_dim)`, or `(..., output_dim)`.

    Example:

    >>> bag = EmbeddingBag(1000, 16, combiner="mean", mask_zero=True)
    >>> bag(np.array([[4, 8, 15, 0], [16, 23, 0, 0]])).shape
    (2, 16)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        combiner="mean",
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        activity_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        *,
        padding_id=None,
        max_norm=None,
        norm_type=2.0,
        weights=None,
        **kwargs,
    ):
        if combiner not in COMBINERS:
            raise ValueError(
                f"`combiner` must be one of {COMBINERS}, but received "
                f"{combiner!r}."
            )
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.embedding = Embedding(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            weights=weights,
            padding_id=padding_id,
            max_norm=max_norm,
            norm_type=norm_type,
            dtype=self.dtype_policy,
            trainable=self.trainable,
            name="embedding",
        )
        self.input_dim = self.embedding.input_dim
        self.output_dim = self.embedding.output_dim
        self.combiner = combiner
        self.mask_zero = mask_zero
        self.padding_id = self.embedding.padding_id
        self.max_norm = self.embedding.max_norm
        self.norm_type = self.embedding.norm_type
        self.supports_masking = True
        self.autocast = False

    @property
    def embeddings(self):
        return self.embedding.embeddings

    @property
    def invalid_id_count(self):
        """As `Embedding.invalid_id_count`, for the bag's ids."""
        return self.embedding.invalid_id_count

    def reset_invalid_id_count(self):
        """As `Embedding.reset_invalid_id_count`."""
        self.embedding.reset_invalid_id_count()

    def build(self, input_shape=None):
        self.embedding.build()
        self.built = True

    def __call__(self, inputs, *args, **kwargs):
        # As in Embedding: host ids are checked before Keras converts them.
        inputs = _ids.host_ids(inputs, self.input_dim, self.name)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, id_weights=None, mask=None):
        if id_weights is not None and self.combiner == "max":
            raise ValueError(
                f"Layer '{self.name}' has combiner='max', which takes no "
                "`id_weights`. Use 'sum', 'mean' or 'sqrtn', or drop the "
                "weights."
            )
        present = None
        if is_ragged(inputs):
            present = inputs.with_flat_values(
                ops.ones_like(inputs.flat_values, dtype="bool")
            ).to_tensor(False)
            if id_weights is not None:
                id_weights = id_weights.to_tensor(0.0)
            inputs = inputs.to_tensor(0)
        ids = ops.convert_to_tensor(inputs)
        _check_rank(ids.shape, self.name)
        # `call`, not `__call__`: the ids may carry this layer's input mask,
        # which the inner layer would warn it drops; the bag applies it.
        vectors = self.embedding.call(ids)
        keep = self._keep(ids, present, mask)
        return self._combine(vectors, keep, id_weights)

    def _keep(self, ids, present, mask):
        """Which positions belong to a bag."""
        keep = _ids.valid_id_mask(ids, self.input_dim)
        for extra in (present, mask):
            if extra is not None:
                keep = ops.logical_and(keep, ops.cast(extra, "bool"))
        if self.mask_zero:
            keep = ops.logical_and(keep, self.embedding.compute_mask(ids))
        return _padding.keep_mask(ids, keep, self.padding_id)

    def _combine(self, vectors, keep, id_weights):
        if self.combiner == "max":
            masked = ops.where(
                ops.expand_dims(keep, -1), vectors, -float("inf")
            )
            pooled = ops.max(masked, axis=-2)
            nonempty = ops.expand_dims(ops.any(keep, axis=-1), -1)
            return ops.where(nonempty, pooled, 0)
        weights = ops.cast(keep, vectors.dtype)
        if id_weights is not None:
            id_weights = ops.cast(id_weights, vectors.dtype)
            weights = ops.where(keep, id_weights, 0)
        total = ops.sum(vectors * ops.expand_dims(weights, -1), axis=-2)
        if self.combiner == "sum":
            return total
        if self.combiner == "mean":
            norm = ops.sum(weights, axis=-1, keepdims=True)
        else:
            norm = ops.sqrt(
                ops.sum(ops.square(weights), axis=-1, keepdims=True)
            )
        nonzero = ops.not_equal(norm, 0)
        return ops.where(nonzero, total / ops.where(nonzero, norm, 1), 0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        _check_rank(input_shape, self.name)
        return tuple(input_shape)[:-1] + (self.output_dim,)

    def compute_output_spec(self, inputs, id_weights=None, mask=None):
        _ids.check_id_dtype(inputs.dtype, self.input_dim, self.name)
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )

    def get_config(self):
        config = super().get_config()
        embedding = self.embedding.get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "combiner": self.combiner,
                "embeddings_initializer": embedding["embeddings_initializer"],
                "embeddings_regularizer": embedding["embeddings_regularizer"],
                "activity_regularizer": keras.regularizers.serialize(
                    self.activity_regularizer
                ),
                "embeddings_constraint": embedding["embeddings_constraint"],
                "mask_zero": self.mask_zero,
                "padding_id": self.padding_id,
                "max_norm": self.max_norm,
                "norm_type": self.norm_type,
            }
        )
        return config


def _check_rank(shape, layer_name):
    if len(shape) < 2:
        raise ValueError(
            f"Layer '{layer_name}' expects ids of shape (..., bag_size), at "
            f"least 2D, but received shape {tuple(shape)}. For one bag per "
            "example, pass shape (batch_size, bag_size)."
        )
