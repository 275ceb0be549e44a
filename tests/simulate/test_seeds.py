"""Batch seeds: one function for datasets, test sets and every training stream."""

import numpy as np
import pytest

from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.simulate.seeds import STREAMS, batch_seed


def test_batch_seed_is_deterministic_and_differs_by_every_argument():
    seed = batch_seed(3, 10, "train", 1)
    assert seed == batch_seed(3, 10, "train", 1) and 0 <= seed < 2**63
    others = {batch_seed(4, 10, "train", 1), batch_seed(3, 10, "val", 1), batch_seed(3, 11, "train", 1),
              batch_seed(3, 10, "train", 0), batch_seed(3, 10)}
    assert seed not in others and len(others) == 5


def test_dataset_stream_is_the_hash_of_seed_and_index():
    """Datasets and test sets written before the streams were unified keep their seeds."""
    state = np.random.SeedSequence([7, 2]).generate_state(2, np.uint32)
    assert batch_seed(7, 2) == int(state[0]) << 31 | int(state[1]) >> 1
    assert STREAMS["dataset"] is None


def test_bad_arguments_are_named():
    with pytest.raises(LensnetValueError, match="stream"):
        batch_seed(0, 0, "training")
    with pytest.raises(LensnetRangeError, match="index"):
        batch_seed(0, -1)
