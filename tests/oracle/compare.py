"""Array-by-array comparison of a webbflow product with the official pipeline's: the
stage-1 figures the acceptance thresholds are stated in, and the stage-2/3 checks."""

import numpy as np
import pytest
from astropy.io import fits

from webbflow.wcs.output import footprint_from_s_region


def _relative(ours, theirs):
    both = np.isfinite(ours) & np.isfinite(theirs)
    scale = np.maximum(np.abs(theirs[both]), np.float32(1e-6) * np.nanmax(np.abs(theirs[both]), initial=1.0))
    return np.abs(ours[both] - theirs[both]) / scale


def compare(ours_path, official_path):
    """Agreement figures the acceptance thresholds are stated in."""
    with fits.open(ours_path) as a, fits.open(official_path) as b:
        sci_a, sci_b = a["SCI"].data.astype(np.float64), b["SCI"].data.astype(np.float64)
        out = {
            "nan_agree": float(np.mean(np.isnan(sci_a) == np.isnan(sci_b))),
            "dq_agree": float(np.mean(a["DQ"].data == b["DQ"].data)),
            "sci_rel_p999": float(np.percentile(_relative(sci_a, sci_b), 99.9)),
        }
        for name in ("ERR", "VAR_POISSON", "VAR_RNOISE"):
            rel = _relative(a[name].data.astype(np.float64), b[name].data.astype(np.float64))
            out[f"{name.lower()}_rel_p999"] = float(np.percentile(rel, 99.9))
    return out


THRESHOLDS = {
    "nan_agree": (">=", 0.9999),
    "dq_agree": (">=", 0.999),
    "sci_rel_p999": ("<=", 1e-4),
    "err_rel_p999": ("<=", 1e-3),
    "var_poisson_rel_p999": ("<=", 1e-3),
    "var_rnoise_rel_p999": ("<=", 1e-3),
}


def failures(metrics):
    bad = {}
    for key, (op, limit) in THRESHOLDS.items():
        value = metrics[key]
        ok = value >= limit if op == ">=" else value <= limit
        if not ok:
            bad[key] = value
    return bad


# --------------------------------------------------------------- stage 2 and 3 products

GRID_KEYS = ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2",
             "PC1_1", "PC1_2", "PC2_1", "PC2_2")
ARRAYS = ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")


def relative(ours, theirs):
    """|ours - theirs| / |theirs| where both are finite, the scale floored at 1e-6 of the
    largest value (float64)."""
    both = np.isfinite(ours) & np.isfinite(theirs)
    scale = np.abs(theirs[both]).astype(np.float64)
    scale = np.maximum(scale, 1e-6 * max(scale.max(initial=0.0), 1e-30))
    return np.abs(ours[both].astype(np.float64) - theirs[both]) / scale


def header_value(hdul, key):
    """A keyword from the SCI header, else the primary."""
    return hdul["SCI"].header[key] if key in hdul["SCI"].header else hdul[0].header[key]


def assert_cal_matches(a, b):
    """A cal product (open HDU lists, ours and the official): NaNs, DQ and AREA
    identical, the arrays within 1e-5 relative, the photometric keywords and step
    statuses equal."""
    assert np.array_equal(np.isnan(a["SCI"].data), np.isnan(b["SCI"].data))
    assert np.array_equal(a["DQ"].data, b["DQ"].data)
    for name in ARRAYS:
        rel = relative(a[name].data, b[name].data)
        assert rel.max() <= 1e-5, (name, rel.max())
    assert np.array_equal(a["AREA"].data, b["AREA"].data)
    for key in ("BUNIT", "PHOTMJSR", "PHOTUJA2", "PIXAR_SR", "PIXAR_A2"):
        theirs = b["SCI"].header[key]
        if isinstance(theirs, float):
            assert a["SCI"].header[key] == pytest.approx(theirs, rel=1e-7), key
        else:
            assert a["SCI"].header[key] == theirs, key
    for key in ("S_WCS", "S_FLAT", "S_PHOTOM"):
        assert a[0].header[key] == b[0].header[key] == "COMPLETE"


def assert_crf_matches(a, b):
    """A crf product: DQ and NaNs identical, arrays within 1e-6, the stage-3 statuses
    and sky level equal. Returns how many pixels outlier detection flagged."""
    assert np.array_equal(a["DQ"].data, b["DQ"].data)
    assert np.array_equal(np.isnan(a["SCI"].data), np.isnan(b["SCI"].data))
    for name in ARRAYS:
        assert relative(a[name].data, b[name].data).max(initial=0) <= 1e-6, name
    assert a[0].header["S_OUTLIR"] == b[0].header["S_OUTLIR"] == "COMPLETE"
    for key in ("S_TWKREG", "S_SKYMAT", "BKGSUB", "BKGMETH"):
        assert a[0].header.get(key) == b[0].header.get(key), key
    assert a[0].header["BKGLEVEL"] == pytest.approx(b[0].header["BKGLEVEL"], rel=1e-4, abs=1e-5)
    return int(np.count_nonzero(a["DQ"].data & 16))


def assert_i2d_matches(a, b, worst=1e-4, p999=None):
    """An i2d product: the same grid (1e-9), weighted pixels and context, every array
    within ``worst`` relative where weighted (and ``p999`` at the 99.9th percentile if
    given), the same footprint (S_REGION) and exposure times.

    Our pixel map is computed with other arithmetic than astropy's (the same positions
    to ~5e-9 px), which moves overlap areas in the last bits; the stage-2/3 issue asks
    for 1e-3."""
    assert a["SCI"].data.shape == b["SCI"].data.shape
    for key in GRID_KEYS:
        assert a["SCI"].header[key] == pytest.approx(b["SCI"].header[key], abs=1e-9), key
    weighted = b["WHT"].data > 0
    assert np.array_equal(weighted, a["WHT"].data > 0)
    assert np.array_equal(a["CON"].data, b["CON"].data)
    for name in ("WHT",) + ARRAYS:
        rel = relative(a[name].data[weighted], b[name].data[weighted])
        assert rel.max() <= worst, (name, rel.max())
        if p999 is not None:
            assert np.percentile(rel, 99.9) <= p999, (name, np.percentile(rel, 99.9))
    region_a, region_b = a["SCI"].header["S_REGION"], b["SCI"].header["S_REGION"]
    assert region_a.count("POLYGON") == region_b.count("POLYGON")
    vertices_a, vertices_b = footprint_from_s_region(region_a), footprint_from_s_region(region_b)
    assert vertices_a.shape == vertices_b.shape
    assert np.abs(vertices_a - vertices_b).max() < 1e-8
    for key in ("XPOSURE", "TMEASURE", "DURATION", "NDRIZ"):
        assert header_value(a, key) == header_value(b, key), key


def rate_pulls(program, products, stems):
    """(rate - true rate) / ERR over the clean pixels (DQ 0, finite, ERR > 0, never
    saturated in the truth) of every ``<stem>_rate.fits`` in ``products``, pooled; with
    its median and robust width (1.4826 MAD)."""
    from webbflow.io import read_product
    from webbflow.io.truth import read_truth

    pulls = []
    for stem in stems:
        rate = read_product(products / f"{stem}_rate.fits")
        truth = read_truth(program / "truth" / f"{stem}_truth.fits")
        sci, err, dq = rate["data"], rate["err"], rate["dq"]
        clean = (dq == 0) & np.isfinite(sci) & (err > 0) & ~truth["saturated_mask"]
        pulls.append(((sci - truth["rate"]) / err)[clean])
    z = np.concatenate(pulls)
    median = np.median(z)
    return z, median, 1.4826 * np.median(np.abs(z - median))
