"""The combination of background exposures against astropy's sigma_clip + masked mean
(what the official bkg_subtract runs), including cases where clipping happens."""

import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clip

from webbflow.kernels.background import clipped_mean_stack


def _official(stack, sigma, maxiters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(stack.astype(np.float64), sigma=sigma, maxiters=maxiters, axis=0)
    return clipped.mean(axis=0).data


@pytest.mark.parametrize("n", [2, 3, 15, 40])
@pytest.mark.parametrize("maxiters", [None, 1, 3])
def test_matches_astropy(n, maxiters):
    rng = np.random.default_rng(n)
    stack = rng.normal(0.3, 0.05, (n, 23, 31)).astype(np.float32)
    # outliers (clipping can only happen for n >= 11), NaNs, and a pixel NaN everywhere
    stack[rng.random(stack.shape) < 0.05] = np.float32(9.0)
    stack[rng.random(stack.shape) < 0.05] = np.nan
    stack[:, 4, 5] = np.nan
    ours = clipped_mean_stack(stack, 3.0, -1 if maxiters is None else maxiters)
    theirs = _official(stack, 3.0, maxiters)
    assert ours[4, 5] == theirs[4, 5] == 0.0
    assert np.array_equal(ours, theirs)
    if n >= 15:
        # clipping happened: many pixels' means are far below the unclipped ones
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = np.nanmean(stack.astype(np.float64), axis=0)
        assert np.count_nonzero(ours < plain - 0.1) > 50


def test_clipping_is_iterated():
    """One outlier hidden behind a bigger one is clipped only in the second round."""
    values = np.array([0.0] * 20 + [5.0, 1000.0], np.float32)[:, None, None]
    once = clipped_mean_stack(values, 3.0, 1)[0, 0]
    converged = clipped_mean_stack(values, 3.0, -1)[0, 0]
    assert once == pytest.approx(5.0 / 21)
    assert converged == 0.0
    assert converged == _official(values, 3.0, None)[0, 0]
