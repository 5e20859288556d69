"""tweakreg's matching and fitting against simulated truth (no files, no oracle): a
random star list seen through a known rotation and shift, with centroid noise, a few
stars missing and a few spurious ones."""

import numpy as np
import pytest

from webbflow.steps.tweakreg_match import estimate_shift_2dhist, fit_linear, xyxymatch


def _scene(rng, n=60, rot_deg=0.01, shift=(0.045, -0.03), noise=0.002):
    ref = rng.uniform(-8, 8, (n, 2))
    theta = np.radians(rot_deg)
    matrix = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    # the image sees ref through the inverse of (matrix, shift)
    img = (ref - shift) @ np.linalg.inv(matrix).T + rng.normal(0, noise, (n, 2))
    keep = rng.random(n) > 0.1
    spurious = rng.uniform(-8, 8, (5, 2))
    return ref, np.vstack([img[keep], spurious]), np.flatnonzero(keep), matrix, np.array(shift)


@pytest.mark.parametrize("fitgeom", ["shift", "rshift", "rscale", "general"])
def test_match_and_fit_recover_the_true_transform(fitgeom):
    rng = np.random.default_rng(3)
    ref, img, kept, matrix, shift = _scene(rng)
    offset = estimate_shift_2dhist(img, ref, searchrad=2.0, pscale=0.031)
    # the histogram peak is the image - reference offset to a bin (one pixel)
    assert np.hypot(*(np.asarray(offset) + shift)) < 0.031
    r, i = xyxymatch(img, ref, offset, tolerance=0.7, separation=1.0)
    assert len(r) >= 15
    # every match is a true pair (image row k came from reference row kept[k])
    real = i < kept.size
    assert real.all() and np.array_equal(kept[i], r)
    fit = fit_linear(ref[r], img[i], fitgeom=fitgeom)
    moved = img[i] @ fit["matrix"].T + fit["shift"]
    truth = img[i] @ matrix.T + shift
    # within a few centroid errors of the true map over the field
    tol = 0.02 if fitgeom == "shift" else 0.004
    assert np.abs(moved - truth).max() < tol
    assert fit["rmse"] < 0.005 if fitgeom != "shift" else fit["rmse"] < 0.01


def test_clipping_drops_a_mismatch():
    rng = np.random.default_rng(5)
    ref = rng.uniform(-8, 8, (40, 2))
    img = ref - [0.02, 0.01] + rng.normal(0, 0.002, (40, 2))
    img[7] += 0.5
    fit = fit_linear(ref, img, fitgeom="rshift")
    assert not fit["fitmask"][7] and fit["fitmask"].sum() >= 38
    assert np.allclose(fit["shift"], [0.02, 0.01], atol=0.002)
