"""Seeds of simulated batches: every random draw of lensnet flows from one integer seed through here.

A dataset, a test set or a training run with seed ``s`` simulates its batch ``k`` from
``batch_seed(s, k)``, so a lens depends only on (config, seed, batch size, its index), never on
what was simulated before it, on the device count or on a resumed run. Training draws its batches,
its fixed sets and its dropout from separate streams of the same seed, and each DDP rank from its own.
"""

from __future__ import annotations

import numpy as np

from lensnet.errors import LensnetRangeError, LensnetValueError

__all__ = ["STREAMS", "TEST_SET", "batch_seed"]

#: The default seeded test set of ``lensnet evaluate``, ``combine`` and exported model cards: 1,000
#: lenses as in the paper's released code (its Fig. 1 used 10,000), seed 2024, 50 per forward pass.
TEST_SET = {"num": 1000, "seed": 2024, "batch_size": 50}
#: Streams of a training run; "dataset" is the stream of datasets and test sets (``lensnet simulate``,
#: ``lensnet evaluate``).
#: The training codes start at 1: numpy's SeedSequence pads entropy with zeros, so a code 0 with rank 0
#: would repeat the dataset stream.
STREAMS = {"dataset": None, "train": 1, "val": 2, "test": 3, "stats": 4, "dropout": 5}


def batch_seed(seed: int, index: int, stream: str = "dataset", rank: int = 0) -> int:
    """The 63-bit seed of batch ``index`` of ``stream`` (on DDP rank ``rank``) of a run seeded ``seed``.

    A hash (numpy's ``SeedSequence``) of (seed, index), and of the stream and rank for the training
    streams, so that neighbouring seeds and indices give unrelated batches.

    Parameters
    ----------
    seed : int
        The dataset's or the run's seed, >= 0.
    index : int
        The batch number (the global step for ``"train"``), >= 0.
    stream : str
        One of :data:`STREAMS` ['dataset'].
    rank : int
        Global DDP rank of a training stream [0].
    """
    if stream not in STREAMS:
        raise LensnetValueError(f"stream {stream!r} is not one of {', '.join(STREAMS)}")
    for name, value in (("seed", seed), ("index", index), ("rank", rank)):
        if int(value) != value or value < 0:
            raise LensnetRangeError(name, value, 0, None, "seeds are built from non-negative integers")
    entropy = [int(seed), int(index)] if STREAMS[stream] is None else [int(seed), int(index), STREAMS[stream], int(rank)]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1
