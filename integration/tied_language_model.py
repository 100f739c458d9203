"""A tiny language model whose output layer is its input embedding.

`ReversibleEmbedding(..., padding_id=0, mask_zero=True)` embeds the tokens,
a GRU mixes the context, and the same layer called with `reverse=True` turns
the hidden states into logits over the vocabulary (tied weights, as in Press
& Wolf 2016). As with Keras's `ReversibleEmbedding`, the logits of a
reverse call carry no mask, so padded targets are left out of the loss by
sample weights. Prints the loss as it falls and exits non-zero if it does
not fall, if the weights are not tied, or if the padding row moved.
"""

import sys

import keras
import numpy as np

from keras_embed import ReversibleEmbedding

VOCAB = 40  # id 0 is padding
DIM = 24
LENGTH = 12


def corpus(count, rng):
    """Sequences following next = (3 * token + 1) mod 39, plus 1, from a
    random start, with random padded tails: learnable from context."""
    ids = np.zeros((count, LENGTH + 1), dtype="int32")
    for row in range(count):
        token = rng.integers(1, VOCAB)
        length = rng.integers(LENGTH // 2, LENGTH + 2)
        for position in range(length):
            ids[row, position] = token
            token = (3 * token + 1) % (VOCAB - 1) + 1
    return ids[:, :-1], ids[:, 1:]


def tied_model():
    tokens = keras.Input((LENGTH,), dtype="int32")
    embedding = ReversibleEmbedding(
        VOCAB, DIM, padding_id=0, mask_zero=True, logit_soft_cap=30.0
    )
    hidden = embedding(tokens)
    # The GRU skips padded steps (the embedding's mask reaches it).
    hidden = keras.layers.GRU(DIM, return_sequences=True)(hidden)
    logits = embedding(hidden, reverse=True)
    return keras.Model(tokens, logits), embedding


def main():
    keras.utils.set_random_seed(0)
    inputs, targets = corpus(512, np.random.default_rng(0))
    model, embedding = tied_model()
    model.compile(
        optimizer=keras.optimizers.AdamW(0.01, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Tied: the only vocabulary-sized weight is the embedding table.
    vocab_sized = [w for w in model.weights if VOCAB in tuple(w.shape)]
    tied = len(vocab_sized) == 1 and vocab_sized[0] is embedding.embeddings
    # Weight 0 for padded targets: they add nothing to the loss.
    real_targets = (targets != 0).astype("float32")

    history = model.fit(
        inputs,
        targets,
        sample_weight=real_targets,
        batch_size=64,
        epochs=12,
        verbose=0,
    ).history["loss"]
    for epoch, loss in enumerate(history, start=1):
        print(f"epoch {epoch:2d}: loss {loss:.4f}")
    first, last = history[0], history[-1]
    padding_row = keras.ops.convert_to_numpy(embedding.embeddings)[0]

    print(f"backend: {keras.backend.backend()}")
    print(f"weights tied (one vocabulary-sized matrix): {tied}")
    print(f"loss fell from {first:.4f} to {last:.4f}")
    print(f"padding row still zero: {not padding_row.any()}")
    ok = tied and last < 0.5 * first and not padding_row.any()
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
