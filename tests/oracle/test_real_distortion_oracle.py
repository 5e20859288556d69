"""Flight DISTORTION and FILTEROFFSET reference files (shared/realdata: the CRDS cache's
NIRCam, NIRISS and MIRI imaging models and MIRI's in-flight FLT-9 ones) through our
assign_wcs and image2, against jwst 3.0 on the same rate files with the same overrides.

The rate files are our stage 1 of the simulated imaging program (NIRCam 512x512 at the
detector's first pixel, MIRI SUB256) and of a MIRI full-frame exposure: the one case
where MIRI's model brings its own bounding box (reference columns left out). For the
WCS alone, the NIRCam file is relabelled as a long-wavelength NIRCam or a NIRISS
exposure, so each model meets the instrument code it was made for."""

import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tests.realdata import real_file

pytestmark = pytest.mark.oracle

NIRCAM = "jw01234005001_02101_00001_nrca1"
MIRI = "jw01234006001_02101_00001_mirimage"
MIRI_FULL = "jw01234007001_02101_00001_mirimage"

REFS = "crds_cache/references/jwst"
FLT9 = "ref_other/miricoord_flt9"
LONG_WAVE = {"DETECTOR": "NRCALONG", "CHANNEL": "LONG", "FILTER": "F277W", "PUPIL": "CLEAR"}
NIRISS = {"INSTRUME": "NIRISS", "DETECTOR": "NIS", "EXP_TYPE": "NIS_IMAGE", "FILTER": "CLEAR",
          "PUPIL": "F150W", "CHANNEL": None, "MODULE": None}

# case: (rate, primary-header changes, distortion, filteroffset or None)
WCS_CASES = {
    "nircam_0090": (NIRCAM, LONG_WAVE, f"{REFS}/nircam/jwst_nircam_distortion_0090.asdf",
                    f"{REFS}/nircam/jwst_nircam_filteroffset_0002.asdf"),
    "nircam_0096": (NIRCAM, dict(LONG_WAVE, DETECTOR="NRCBLONG", MODULE="B"),
                    f"{REFS}/nircam/jwst_nircam_distortion_0096.asdf",
                    f"{REFS}/nircam/jwst_nircam_filteroffset_0001.asdf"),
    "niriss_0010": (NIRCAM, NIRISS, f"{REFS}/niriss/jwst_niriss_distortion_0010.asdf", None),
    "niriss_testdata": (NIRCAM, NIRISS, "ref_other/crds_testdata_niriss_ref_distortion.asdf",
                        None),
    "miri_0023_sub256": (MIRI, {}, f"{REFS}/miri/jwst_miri_distortion_0023.asdf",
                         f"{REFS}/miri/jwst_miri_filteroffset_0003.asdf"),
    "miri_0028_sub256": (MIRI, {"FILTER": "F1500W"}, f"{REFS}/miri/jwst_miri_distortion_0028.asdf",
                         f"{REFS}/miri/jwst_miri_filteroffset_0005.asdf"),
    "miri_flt9_sub256": (MIRI, {"FILTER": "F1000W"},
                         f"{FLT9}/jwst_miri_imager_distortion_flt9.asdf",
                         f"{FLT9}/jwst_miri_filteroffset_full_flt9.asdf"),
    "miri_0023_full": (MIRI_FULL, {"FILTER": "F1800W"},
                       f"{REFS}/miri/jwst_miri_distortion_0023.asdf",
                       f"{REFS}/miri/jwst_miri_filteroffset_0003.asdf"),
}
# 0023 (2021) goes with a filteroffset of its time, whose rows name the filter "name"
# and so match none: the official code cannot put a filter shift in front of 0023's
# bounding box (it names inputs the shifted model no longer has)

# the whole of image2 (cal and i2d) for one model per instrument code path
IMAGE2_CASES = {
    "nircam_0090": (NIRCAM, f"{REFS}/nircam/jwst_nircam_distortion_0090.asdf",
                    f"{REFS}/nircam/jwst_nircam_filteroffset_0002.asdf"),
    "miri_flt9_sub256": (MIRI, f"{FLT9}/jwst_miri_imager_distortion_flt9.asdf",
                         f"{FLT9}/jwst_miri_filteroffset_full_flt9.asdf"),
    "miri_0023_full": (MIRI_FULL, f"{REFS}/miri/jwst_miri_distortion_0023.asdf",
                       f"{REFS}/miri/jwst_miri_filteroffset_0003.asdf"),
}
# every other reftype of the official assign_wcs: not imaging's
OTHER_WCS_REFTYPES = ("specwcs", "regions", "wavelengthrange", "camera", "collimator",
                      "disperser", "fore", "fpa", "msa", "ote", "ifupost", "ifufore",
                      "ifuslicer")


@pytest.fixture(scope="module")
def rates(imaging_rates, tmp_path_factory):
    """{stem: (rate path, its CRDS cache)}: the imaging program's NIRCam and MIRI rates
    and a MIRI full-frame exposure of the same field."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import ExposureSpec

    from tests.oracle.ours import run_detector1_cli

    program, imaging = imaging_rates
    found = {path.name.removesuffix("_rate.fits"): (path, program / "crds_cache")
             for path in imaging}
    root = tmp_path_factory.mktemp("miri_full")
    simulate_program(root, [ExposureSpec(instrument="MIRI", detector="MIRIMAGE",
                                         exp_type="MIR_IMAGE", filter="F770W", readpatt="FAST",
                                         ngroups=5, nints=1, observation=7,
                                         scene={"sky": True}, seed=701)], seed=0)
    run_detector1_cli(root / f"{MIRI_FULL}_uncal.fits", root / "rate", root / "crds_cache")
    found[MIRI_FULL] = (root / "rate" / f"{MIRI_FULL}_rate.fits", root / "crds_cache")
    return found


def _relabelled(rate, changes, target):
    shutil.copyfile(rate, target)
    with fits.open(target, mode="update") as hdul:
        for key, value in changes.items():
            if value is None:
                hdul[0].header.remove(key, ignore_missing=True)
            else:
                hdul[0].header[key] = value
    return target


@pytest.fixture(scope="module")
def wcs_products(rates, tmp_path_factory):
    """{case: (our meta and gwcs, the official AssignWcsStep output path)}."""
    from webbflow.io import read_product
    from webbflow.steps.assign_wcs import assign_imaging_wcs

    from tests.oracle.official import run_official_step

    work = tmp_path_factory.mktemp("real_wcs")
    ours, jobs = {}, {}
    for case, (stem, changes, distortion, filteroffset) in WCS_CASES.items():
        rate, cache = rates[stem]
        path = _relabelled(rate, changes, work / f"{case}_rate.fits")
        product = read_product(path)
        meta = product.meta
        wcs = assign_imaging_wcs(meta, product["data"].shape, real_file(distortion),
                                 real_file(filteroffset) if filteroffset else None,
                                 source=str(path))
        ours[case] = (meta, wcs)
        options = {f"override_{r}": "N/A" for r in OTHER_WCS_REFTYPES}
        options.update(override_distortion=str(real_file(distortion)),
                       override_filteroffset=str(real_file(filteroffset)) if filteroffset
                       else "N/A")
        jobs.setdefault(cache, []).append((path, options, work / f"{case}_assignwcs.fits"))
    for cache, batch in jobs.items():
        run_official_step(batch, cache)
    return {case: (*ours[case], work / f"{case}_assignwcs.fits") for case in WCS_CASES}


def _box(wcs):
    return tuple(tuple(float(v) for v in interval)
                 for interval in wcs.bounding_box.bounding_box(order="F"))


@pytest.mark.parametrize("case", list(WCS_CASES))
def test_assign_wcs_with_flight_distortion_matches_official(wcs_products, case):
    from stdatamodels.jwst import datamodels

    meta, wcs, official_path = wcs_products[case]
    with datamodels.open(official_path) as official:
        assert _box(wcs) == _box(official.meta.wcs)
        ny, nx = official.data.shape
        y, x = np.mgrid[0:ny:23, 0:nx:23].astype(float)
        (x0, x1), (y0, y1) = _box(wcs)
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        ra_a, dec_a = wcs(x, y)
        ra_b, dec_b = official.meta.wcs(x, y)
        # the same NaNs outside the bounding box, the same sky inside
        assert np.array_equal(np.isfinite(ra_a), inside) and np.array_equal(np.isfinite(ra_b), inside)
        assert np.max(np.abs(ra_a[inside] - ra_b[inside])) < 1e-10
        assert np.max(np.abs(dec_a[inside] - dec_b[inside])) < 1e-10
        assert meta["wcsinfo"]["s_region"] == official.meta.wcsinfo.s_region
    # the FITS SIP approximations of the two agree to 0.01 px
    header_a = fits.Header({k.upper(): v for k, v in meta["wcsinfo"].items()
                            if isinstance(v, (int, float, str)) and len(k) <= 8})
    with fits.open(official_path) as hdul:
        header_b = hdul["SCI"].header
    sip_a = np.asarray(WCS(header_a).all_pix2world(x[inside], y[inside], 0))
    sip_b = np.asarray(WCS(header_b).all_pix2world(x[inside], y[inside], 0))
    scale = np.sqrt(abs(np.linalg.det(WCS(header_b).pixel_scale_matrix)))
    assert np.max(np.abs(sip_a - sip_b)) < 0.01 * scale


@pytest.fixture(scope="module")
def image2_products(rates, tmp_path_factory):
    """{case: (our directory, the official directory)} of image2 with the overrides."""
    import yaml

    from tests.oracle.official import run_official
    from tests.oracle.ours import _cli

    from webbflow.cli import DEFAULT_CONFIG

    work = tmp_path_factory.mktemp("real_image2")
    made = {}
    for case, (stem, distortion, filteroffset) in IMAGE2_CASES.items():
        rate, cache = rates[stem]
        config = yaml.safe_load(DEFAULT_CONFIG.read_text())
        overrides = {"distortion": str(real_file(distortion)),
                     "filteroffset": str(real_file(filteroffset))}
        config.setdefault("crds", {})["overrides"] = overrides
        (work / f"{case}.yaml").write_text(yaml.safe_dump(config))
        ours, official = work / case / "ours", work / case / "official"
        _cli("image2", rate, ours, cache, extra=["--config", str(work / f"{case}.yaml")])
        run_official([(str(rate), {"assign_wcs": {f"override_{k}": v
                                                  for k, v in overrides.items()}})],
                     cache, official, pipeline="Image2Pipeline")
        made[case] = (ours / f"{stem}", official / f"{stem}")
    return made


def _near(ours, theirs, err):
    """Relative difference, with the pixel's error as the floor of the scale: a pixel
    whose value is far below its noise has no meaningful relative difference."""
    scale = np.maximum(np.abs(theirs.astype(np.float64)), err)
    return np.abs(ours.astype(np.float64) - theirs) / scale


@pytest.mark.parametrize("case", list(IMAGE2_CASES))
def test_image2_with_flight_distortion_matches_official(image2_products, case):
    ours, official = image2_products[case]
    with fits.open(f"{ours}_cal.fits") as a, fits.open(f"{official}_cal.fits") as b:
        for name in ("SCI", "ERR", "DQ"):
            assert np.array_equal(a[name].data, b[name].data, equal_nan=True), name
        assert a["SCI"].header["S_REGION"] == b["SCI"].header["S_REGION"]
    with fits.open(f"{ours}_i2d.fits") as a, fits.open(f"{official}_i2d.fits") as b:
        for key in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2",
                    "PC1_1", "PC1_2", "PC2_1", "PC2_2"):
            assert a["SCI"].header[key] == pytest.approx(b["SCI"].header[key], abs=1e-9), key
        assert a["SCI"].data.shape == b["SCI"].data.shape
        weighted = b["WHT"].data > 0
        assert np.array_equal(weighted, a["WHT"].data > 0)
        assert np.array_equal(a["CON"].data, b["CON"].data)
        err = b["ERR"].data[weighted]
        for name in ("SCI", "ERR", "WHT"):
            rel = _near(a[name].data[weighted], b[name].data[weighted], err if name == "SCI" else 0)
            assert rel.max() <= 1e-4, (name, rel.max())
        assert a["SCI"].header["S_REGION"] == b["SCI"].header["S_REGION"]
