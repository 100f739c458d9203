"""The cases each benchmark runs: the full grid, `--quick` and `--tiny`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ForwardCase:
    vocab: int
    dim: int
    ids_shape: tuple

    @property
    def label(self):
        batch, length = self.ids_shape
        return f"V={self.vocab:.0e} d={self.dim} ids={batch}x{length}"


@dataclasses.dataclass(frozen=True)
class TrainCase:
    vocab: int
    dim: int
    optimizer: str
    warmup_steps: int
    rounds: int
    steps_per_round: int
    batch_size: int = 1024
    sequence_length: int = 10

    @property
    def label(self):
        return f"V={self.vocab:.0e} d={self.dim} {self.optimizer}"


@dataclasses.dataclass(frozen=True)
class Grid:
    name: str
    forward: tuple
    training: tuple
    warmup: int
    repeats: int
    min_repeat_s: float
    # Tests only: compile as cheaply as the backend allows (torch: not at
    # all, the "compiled" candidates then run eagerly).
    cheap_compile: bool = False
    copy_bytes: int = 256 * 2**20


def _forward(vocabs, dims, shapes):
    return tuple(
        ForwardCase(v, d, s) for v in vocabs for d in dims for s in shapes
    )


def _training(vocabs, dim, optimizers, steps):
    cases = []
    for vocab in vocabs:
        warmup, rounds, per_round = steps[vocab]
        for optimizer in optimizers:
            cases.append(
                TrainCase(vocab, dim, optimizer, warmup, rounds, per_round)
            )
    return tuple(cases)


# Training steps per case: (warm-up steps, rounds, steps per round). Each
# timed fit call drops its first step, so a round of n steps gives n - 1
# samples; many short rounds alternate the two layers (see training.py).
FULL = Grid(
    name="full",
    forward=_forward(
        (1_000, 100_000, 1_000_000), (16, 128), ((32, 10), (4096, 50))
    ),
    training=_training(
        (10_000, 1_000_000),
        64,
        ("sgd", "adam"),
        {10_000: (3, 6, 4), 1_000_000: (2, 5, 3)},
    ),
    warmup=2,
    repeats=11,
    min_repeat_s=0.02,
)

QUICK = Grid(
    name="quick",
    forward=_forward((1_000, 100_000), (16,), ((32, 10), (4096, 50))),
    training=_training((10_000,), 64, ("sgd",), {10_000: (2, 4, 3)}),
    warmup=1,
    repeats=10,
    min_repeat_s=0.005,
)

# One case of everything, for tests/test_benchmarks.py: exercises every code
# path in a few seconds; its timings mean nothing.
TINY = Grid(
    name="tiny",
    forward=(ForwardCase(50, 4, (2, 3)),),
    training=(TrainCase(50, 4, "sgd", 1, 1, 2, batch_size=8),),
    warmup=1,
    repeats=2,
    min_repeat_s=0.0,
    cheap_compile=True,
    copy_bytes=2**20,
)

GRIDS = {grid.name: grid for grid in (FULL, QUICK, TINY)}
