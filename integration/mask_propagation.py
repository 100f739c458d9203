"""Padding masked by Embedding(mask_zero=True) is invisible to an LSTM.

Runs one Embedding -> LSTM model on a right-padded batch and on each
sequence alone, unpadded, and prints both side by side. With the mask
reaching the LSTM they agree; the script exits 1 if any output differs by
more than 1e-5. Works under any KERAS_BACKEND:

    KERAS_BACKEND=jax python integration/mask_propagation.py
"""

import sys

import keras
import numpy as np

from keras_embed import Embedding

TOLERANCE = 1e-5
SEQUENCES = [[5, 3, 8, 2], [7, 1], [4]]


def right_pad(sequences, length):
    batch = np.zeros((len(sequences), length), dtype="int32")
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = sequence
    return batch


def main():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            # Id 0 is the padding, so the vocabulary is ids 1..9.
            Embedding(input_dim=10, output_dim=8, mask_zero=True),
            keras.layers.LSTM(4),
        ]
    )
    padded = right_pad(SEQUENCES, length=6)
    batch_outputs = keras.ops.convert_to_numpy(model(padded))

    print(f"backend: {keras.backend.backend()}")
    print(f"right-padded batch:\n{padded}\n")
    print(f"{'sequence':<14} {'in the padded batch':<40} alone, unpadded")
    worst = 0.0
    for row, sequence in enumerate(SEQUENCES):
        alone = model(np.array([sequence], dtype="int32"))
        alone = keras.ops.convert_to_numpy(alone)[0]
        worst = max(worst, float(np.max(np.abs(batch_outputs[row] - alone))))
        print(
            f"{str(sequence):<14} "
            f"{np.array2string(batch_outputs[row], precision=5):<40} "
            f"{np.array2string(alone, precision=5)}"
        )
    print(f"\nlargest difference: {worst:.2e} (tolerance {TOLERANCE:.0e})")
    if not worst <= TOLERANCE:
        print(
            "FAILED: the padded batch gives different LSTM outputs from the "
            "unpadded sequences, so the mask did not reach the LSTM."
        )
        return 1
    print("OK: the LSTM ignored the padding.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
