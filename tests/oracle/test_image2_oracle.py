"""calwebb_image2 side by side with the official Image2Pipeline: the same rate files (our
stage 1 of the dithered imaging program), the same synthetic CRDS cache; cal and i2d
compared array by array (thresholds of the stage-2/3 issue)."""


import numpy as np
import pytest
from astropy.io import fits

from tests.oracle.compare import assert_cal_matches, assert_i2d_matches, header_value

pytestmark = pytest.mark.oracle

NIRCAM = "jw01234005001_02101_00002_nrca1"
MIRI = "jw01234006001_02101_00001_mirimage"


@pytest.mark.parametrize("stem", [NIRCAM, MIRI])
def test_cal_matches_official(image2_products, stem):
    ours, official = image2_products
    with fits.open(ours / f"{stem}_cal.fits") as a, fits.open(official / f"{stem}_cal.fits") as b:
        assert_cal_matches(a, b)


@pytest.mark.parametrize("stem", [NIRCAM, MIRI])
def test_cal_wcs_matches_official(image2_products, stem):
    """The gwcs in the ASDF tree and the FITS SIP approximation: ours, read by the
    official datamodels, give the official sky positions."""
    from stdatamodels.jwst import datamodels
    from astropy.wcs import WCS

    ours, official = image2_products
    with datamodels.open(ours / f"{stem}_cal.fits") as a, \
            datamodels.open(official / f"{stem}_cal.fits") as b:
        ny, nx = b.data.shape
        y, x = np.mgrid[0:ny:17, 0:nx:17].astype(float)
        ra_a, dec_a = a.meta.wcs(x, y)
        ra_b, dec_b = b.meta.wcs(x, y)
        assert np.max(np.abs(ra_a - ra_b)) < 1e-10 and np.max(np.abs(dec_a - dec_b)) < 1e-10
        xb, yb = a.meta.wcs.invert(ra_b, dec_b)
        assert np.max(np.hypot(xb - x, yb - y)) < 1e-3
    with fits.open(ours / f"{stem}_cal.fits") as a, fits.open(official / f"{stem}_cal.fits") as b:
        assert a["SCI"].header["S_REGION"] == b["SCI"].header["S_REGION"]
        sip_a = WCS(a["SCI"].header).all_pix2world(x, y, 0)
        sip_b = WCS(b["SCI"].header).all_pix2world(x, y, 0)
        # both SIP fits approximate the same gwcs to 0.01 px
        assert np.max(np.abs(np.asarray(sip_a) - np.asarray(sip_b))) < 0.01 * 0.12 / 3600


def test_cal_truth(imaging_rates, image2_products):
    """Against the simulation: the cal image is the true count rate divided by the flat
    (pixel response x area) in MJy/sr, within the propagated ERR; and the sky, away from
    sources, is the simulated 0.1 MJy/sr to the stage-1 accuracy."""
    program, _ = imaging_rates
    ours, _ = image2_products
    with fits.open(ours / f"{NIRCAM}_cal.fits") as cal, \
            fits.open(program / "truth" / f"{NIRCAM}_truth.fits") as truth:
        conversion = cal["SCI"].header["PHOTMJSR"]
        flat_path = next((program / "crds_cache/references/jwst/nircam").glob("*_flat_*.fits"))
        ny, nx = cal["SCI"].data.shape
        flat = fits.getdata(flat_path, "SCI")[:ny, :nx]  # SUBSTRT 1, 1
        expected = truth["RATE"].data / flat * conversion
        sci = cal["SCI"].data.copy()
        pull = ((sci - expected) / cal["ERR"].data)[4:-4, 4:-4]
    pull = pull[np.isfinite(pull)]
    median = np.median(pull)
    width = 1.4826 * np.median(np.abs(pull - median))
    assert abs(median) < 0.05 and 0.9 < width < 1.1, (median, width)
    faint = expected[4:-4, 4:-4] < 0.15
    sky = np.nanmean(np.clip(sci[4:-4, 4:-4][faint], -5, 5))
    assert sky == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("stem", [NIRCAM, MIRI])
def test_i2d_matches_official(image2_products, stem):
    """The exposure drizzled alone: the same output grid, the same pixels."""
    ours, official = image2_products
    with fits.open(ours / f"{stem}_i2d.fits") as a, fits.open(official / f"{stem}_i2d.fits") as b:
        assert_i2d_matches(a, b)
        for key in ("PIXAR_SR", "PIXAR_A2"):
            assert a["SCI"].header[key] == pytest.approx(b["SCI"].header[key], rel=1e-12)
        for key in ("PIXFRAC", "RESWHT"):
            assert header_value(a, key) == header_value(b, key), key


def test_i2d_conserves_flux(image2_products):
    """Drizzling conserves total flux (surface brightness x pixel solid angle) to 0.1 %
    over the image interior."""
    ours, _ = image2_products
    with fits.open(ours / f"{NIRCAM}_cal.fits") as cal, \
            fits.open(ours / f"{NIRCAM}_i2d.fits") as i2d:
        area = cal["AREA"].data
        cal_flux = np.nansum(cal["SCI"].data * area) * cal["SCI"].header["PIXAR_SR"]
        i2d_flux = np.nansum(i2d["SCI"].data) * i2d["SCI"].header["PIXAR_SR"]
    assert i2d_flux == pytest.approx(cal_flux, rel=1e-3)
