"""Array-by-array comparison of a webbflow product with the official pipeline's."""

import numpy as np
from astropy.io import fits


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
