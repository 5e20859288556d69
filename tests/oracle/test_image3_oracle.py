"""calwebb_image3 side by side with the official Image3Pipeline on the same cal files
(our stage 2 of the four dithered NIRCam exposures): outlier_detection's crf, the
combined i2d, array by array, and the mosaic's source catalog and segmentation map.
Every step runs on both sides with the official defaults; tweakreg, with four stars an
exposure on this field, aligns nothing (test_tweakreg_oracle.py has a dense field), and
skymatch finds the levels test_skymatch_oracle.py checks in detail."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from tests.oracle.compare import assert_crf_matches, assert_i2d_matches
from tests.oracle.official import run_official
from webbflow.wcs.output import footprint_from_s_region

pytestmark = pytest.mark.oracle

OFFICIAL_DEFAULTS = {}
PRODUCT = "jw01234-o005_t001_nircam_f200w-generic"


@pytest.fixture(scope="module")
def image3_side_by_side(imaging_rates, image2_products, tmp_path_factory):
    program, _ = imaging_rates
    ours2, _ = image2_products
    work = tmp_path_factory.mktemp("image3_inputs")
    cals = sorted(ours2.glob("jw01234005001_*_nrca1_cal.fits"))
    assert len(cals) == 4
    for cal in cals:
        shutil.copy(cal, work / cal.name)
    # injected cosmic-ray-like hits the dithers disagree on: outlier detection must find them
    with fits.open(work / cals[1].name, mode="update") as hdul:
        hdul["SCI"].data[100:103, 200:202] += 50.0
        hdul["SCI"].data[300, 301] += 80.0
    asn = {"asn_type": "image3", "asn_rule": "Asn_Lv3Image", "asn_id": "o005",
           "asn_pool": "test", "program": "01234", "target": "1",
           "products": [{"name": PRODUCT,
                         "members": [{"expname": c.name, "exptype": "science"} for c in cals]}]}
    asn_path = work / "image3_asn.json"
    asn_path.write_text(json.dumps(asn))
    ours = tmp_path_factory.mktemp("ours_image3")
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", "image3", str(asn_path),
                             "--outdir", str(ours), "--crds-path", str(program / "crds_cache")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    official = tmp_path_factory.mktemp("official_image3")
    run_official([(str(asn_path), OFFICIAL_DEFAULTS)], program / "crds_cache", official,
                 pipeline="Image3Pipeline")
    return ours, official, [c.name.removesuffix("_cal.fits") for c in cals]


def test_crf_matches_official(image3_side_by_side):
    ours, official, stems = image3_side_by_side
    flagged = 0
    for stem in stems:
        name = f"{stem}_o005_crf.fits"
        with fits.open(ours / name) as a, fits.open(official / name) as b:
            flagged += assert_crf_matches(a, b)
    # the injected hits (7 pixels) and whatever the data hold
    assert flagged >= 7
    with fits.open(ours / f"{stems[1]}_o005_crf.fits") as a:
        assert (a["DQ"].data[100:103, 200:202] & 16).all() and a["DQ"].data[300, 301] & 16


def test_i2d_matches_official(image3_side_by_side):
    ours, official, _ = image3_side_by_side
    name = f"{PRODUCT}_i2d.fits"
    with fits.open(ours / name) as a, fits.open(official / name) as b:
        assert_i2d_matches(a, b)
        # the union of the members' footprints, cut to the grid: more than a box
        assert len(footprint_from_s_region(a["SCI"].header["S_REGION"])) > 4


def test_catalog_matches_official(image3_side_by_side):
    """The mosaic's catalog and segmentation map: same sources, positions and fluxes
    (the i2d agree to float precision, so everything downstream does too)."""
    ours, official, _ = image3_side_by_side
    a = Table.read(ours / f"{PRODUCT}_cat.ecsv")
    b = Table.read(official / f"{PRODUCT}_cat.ecsv")
    assert len(a) == len(b) > 0
    assert a.colnames == b.colnames
    assert np.array_equal(a["label"], b["label"])
    for name in ("xcentroid", "ycentroid"):
        assert np.abs(np.asarray(a[name]) - np.asarray(b[name])).max() < 1e-6, name
    for name in a.colnames:
        if name.endswith("_flux") or name.endswith("_flux_err") or name.endswith("mag"):
            va, vb = np.asarray(a[name], float), np.asarray(b[name], float)
            assert np.array_equal(np.isnan(va), np.isnan(vb)), name
            finite = np.isfinite(vb)
            assert np.allclose(va[finite], vb[finite], rtol=1e-5, atol=0), name
    assert np.array_equal(a["is_extended"], b["is_extended"])
    with fits.open(ours / f"{PRODUCT}_segm.fits") as sa, \
            fits.open(official / f"{PRODUCT}_segm.fits") as sb:
        assert np.array_equal(sa["SCI"].data, sb["SCI"].data)
