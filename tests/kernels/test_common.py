"""Shared kernel helpers against numpy."""

import numpy as np
import pytest

from webbflow.kernels._common import _any_flag


@pytest.mark.parametrize("flag", [1, 2, 4, 128, 6])
def test_any_flag_matches_numpy(flag):
    """Word-wise scan: any length (tails shorter than a word), any position of the set
    byte, flags of one or several bits."""
    rng = np.random.default_rng(flag)
    for n in list(range(0, 20)) + list(rng.integers(20, 40_000, 200)):
        dq = np.zeros(n, np.uint8)
        if n and rng.random() < 0.7:
            dq[rng.integers(0, n, rng.integers(1, 3))] = rng.integers(1, 256)
        assert _any_flag(dq, np.uint8(flag)) == bool(np.any(dq & flag)), (n, flag)
