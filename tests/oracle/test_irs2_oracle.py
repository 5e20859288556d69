"""NIRSpec IRS2 against jwst 3.0: the official Detector1Pipeline and ours on the same
simulated IRS2 exposure (NRS1, NRSIRS2RAPID, 3200 x 2048, 4 groups) and the same
synthetic CRDS cache (REFPIX alpha/beta table, IRS2-layout MASK and SUPERBIAS).

Compared: the rate and rateints products array by array, and the ramp after refpix
(the official step's saved output) with ours after the same steps."""

import numpy as np
import pytest
from astropy.io import fits

from tests.irs2_support import run_ours
from tests.oracle.official import official_steps, run_official
from tests.oracle.ours import run_detector1_cli
from tests.irs2_support import detector1_config

pytestmark = pytest.mark.oracle

ARRAYS = ("SCI", "DQ", "ERR", "VAR_POISSON", "VAR_RNOISE")


@pytest.fixture(scope="module")
def products(irs2_program, tmp_path_factory):
    out = tmp_path_factory.mktemp("irs2_products")
    cache = irs2_program.parent / "crds_cache"
    run_detector1_cli(irs2_program, out / "ours", cache)
    steps = official_steps(detector1_config())
    steps["refpix"] = {"save_results": True}  # the CRDS REFPIX, not the override to N/A
    run_official([(irs2_program, steps)], cache, out / "official")
    return irs2_program, out


def _name(uncal, suffix):
    return uncal.name.replace("_uncal.fits", f"_{suffix}.fits")


@pytest.mark.parametrize("suffix", ["rate", "rateints"])
def test_rate_matches_official(products, suffix):
    uncal, out = products
    with fits.open(out / "ours" / _name(uncal, suffix)) as ours, \
            fits.open(out / "official" / _name(uncal, suffix)) as theirs:
        assert ours[0].header["S_REFPIX"] == theirs[0].header["S_REFPIX"] == "COMPLETE"
        for step in ("S_DQINIT", "S_SATURA", "S_IPC", "S_SUPERB", "S_LINEAR", "S_DARK"):
            assert ours[0].header[step] == theirs[0].header[step], step
        for name in ARRAYS:
            a, b = ours[name].data, theirs[name].data
            assert a.shape == b.shape == (a.shape[:-2] + (2048, 2048)), name
            if name == "DQ":
                assert np.array_equal(a, b), f"{name}: {(a != b).sum()} pixels differ"
                continue
            assert np.array_equal(np.isnan(a), np.isnan(b)), name
            ok = np.isfinite(a)
            diff = np.abs(a[ok].astype(np.float64) - b[ok])
            scale = np.maximum(np.abs(b[ok].astype(np.float64)), 1e-3)
            # float32 rounding at most (bit-identical when this was written)
            assert np.max(diff / scale) < 1e-6, f"{name}: worst relative {np.max(diff / scale)}"


def test_refpix_output_matches_official(products):
    """The ramp after refpix: interleaved reference pixels gone, the same values."""
    uncal, out = products
    ramp = run_ours(uncal)
    with fits.open(out / "official" / _name(uncal, "refpix")) as theirs:
        sci, pdq, gdq = theirs["SCI"].data, theirs["PIXELDQ"].data, theirs["GROUPDQ"].data
        assert ramp.data.shape == sci.shape == (1, 4, 2048, 2048)
        assert np.array_equal(ramp.pdq, pdq)
        assert np.array_equal(ramp.gdq, gdq)
        diff = np.abs(ramp.data.astype(np.float64) - sci)
        assert np.max(diff) <= 1e-6 * np.max(np.abs(sci)), np.max(diff)


@pytest.mark.parametrize("nrs_norm,nrs_ref", [(16, 4), (8, 2), (32, 8), (16, 2)])
def test_irs2_layout_matches_official(nrs_norm, nrs_ref):
    """Which of the 3200 samples per row are normal pixels: the same as both official
    masks (refpix's and the one saturation and ipc use)."""
    from jwst.refpix.irs2_subtract_reference import make_irs2_mask
    from jwst.saturation import x_irs2

    from webbflow.steps.irs2 import normal_rows

    ours = normal_rows(3200, nrs_norm, nrs_ref)
    refpix = make_irs2_mask(3200, 2048, nrs_norm, nrs_ref)
    assert np.array_equal(ours, refpix)
    if (nrs_norm, nrs_ref) == (16, 4):  # x_irs2 takes the 640-sample outputs of this one
        saturation = x_irs2.make_mask(np.zeros((3200, 2048), np.float32), n=nrs_norm, r=nrs_ref)
        assert np.array_equal(ours, saturation)
        assert ours.sum() == 2048
