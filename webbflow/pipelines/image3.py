"""calwebb_image3 for imaging: an association of cal files -> crf (outliers flagged) per
exposure, the combined i2d, and its source catalog.

Each input's pixel map onto the output grid is computed once and serves the outlier
singles, the blot of the median and the final drizzle (the official step computes it
three times).
"""

import copy
import logging

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io import Product, read_product, read_wcs
from webbflow.kernels.drizzle import blot_image
from webbflow.kernels.outlier import compute_weight_threshold, flag_resampled_crs, median_of_singles
from webbflow.pipelines.resample import Resampler, _group_id

log = logging.getLogger("webbflow.image3")

__all__ = ["run_image3", "IMAGE3_STEPS"]

IMAGE3_STEPS = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")
CAL_ARRAYS = ("data", "err", "dq", "var_poisson", "var_rnoise", "var_flat")
NOT_YET = ("tweakreg", "skymatch")


def _read_cal(path):
    cal = read_product(path, require=("data", "err", "dq"))
    arrays = {}
    for name in CAL_ARRAYS + ("area",):
        if cal.has(name):
            array = cal[name]
            arrays[name] = np.array(array, dtype=array.dtype.newbyteorder("="))
    meta = copy.deepcopy(cal.meta)
    cal.close()
    if arrays["data"].ndim != 2:
        raise WebbflowError(path, "calwebb_image3 takes 2-D cal images")
    meta["wcs"] = read_wcs(path)
    return Product("ImageModel", meta=meta, arrays=arrays, path=path)


def run_image3(cal_paths, config, dqflags, *, asn_id, product_name):
    """Returns {"crf": [Product per input], "i2d": Product}."""
    steps = config["steps"]
    for step in NOT_YET:
        if not steps.get(step, {}).get("skip"):
            raise WebbflowError(cal_paths[0], f"{step} is not implemented yet; set "
                                              f"image3.steps.{step}.skip: true")
    if not cal_paths:
        raise WebbflowError(product_name, "the association has no science members")
    cals = [_read_cal(path) for path in cal_paths]
    for cal in cals:
        for step in NOT_YET:
            cal.meta.setdefault("cal_step", {})[step] = "SKIPPED"
    ref = cals[0].meta
    s_regions = [c.meta["wcsinfo"]["s_region"] for c in cals]
    resample_options = steps["resample"]
    final = Resampler(ref, ref["wcs"], s_regions, resample_options, dqflags)
    pixmaps = [final.pixel_map(c.meta["wcs"], c["data"].shape) for c in cals]

    if not steps["outlier_detection"].get("skip") and len({_group_id(c.meta) for c in cals}) > 1:
        _flag_outliers(cals, pixmaps, s_regions, steps["outlier_detection"], dqflags)
        status = "COMPLETE"
    else:
        status = "SKIPPED"
    for cal in cals:
        cal.meta.setdefault("cal_step", {})["outlier_detection"] = status
        cal.meta.setdefault("asn", {})["table_name"] = f"{product_name}_asn"

    for cal, pixmap in zip(cals, pixmaps):
        final.add(cal.arrays, cal.meta, cal.meta["wcs"], pixmap=pixmap)
    i2d = final.product(ref)
    i2d.meta["filename"] = f"{product_name}_i2d.fits"
    return {"crf": cals, "i2d": i2d}


def _flag_outliers(cals, pixmaps, s_regions, options, dqflags):
    """The imaging outlier_detection: each exposure group drizzled alone on the output
    grid, their weight-masked median blotted back to every input, pixels far from it
    flagged DO_NOT_USE|OUTLIER and set to NaN."""
    ref = cals[0].meta
    single = Resampler(ref, ref["wcs"], s_regions,
                       {"pixfrac": options.get("pixfrac", 1.0),
                        "weight_type": options.get("weight_type", "ivm")},
                       dqflags, bad_bits=dqflags["DO_NOT_USE"], variances=False)
    groups = {}
    for index, cal in enumerate(cals):
        groups.setdefault(_group_id(cal.meta), []).append(index)
    singles, thresholds = [], []
    maskpt = options.get("maskpt", 0.7)
    for indices in groups.values():
        single.reset()
        for index in indices:
            single.add(cals[index].arrays, cals[index].meta, cals[index].meta["wcs"],
                       pixmap=pixmaps[index])
        sci = single.sci.copy()
        sci[single.wht == 0] = np.nan
        threshold = compute_weight_threshold(single.wht, maskpt)
        sci[single.wht < threshold] = np.nan
        singles.append(sci)
        thresholds.append(threshold)
    median = median_of_singles(np.stack(singles))
    del singles
    snr1, snr2 = (float(v) for v in str(options.get("snr", "5.0 4.0")).split())
    scale1, scale2 = (float(v) for v in str(options.get("scale", "1.2 0.7")).split())
    flag = np.uint32(dqflags["DO_NOT_USE"] | dqflags["OUTLIER"])
    for cal, pixmap in zip(cals, pixmaps):
        arrays = cal.arrays
        blot = np.full(arrays["data"].shape, np.nan, np.float32)
        where = np.where(np.isnan(pixmap), -1.0, pixmap)
        blot_image(median, where, blot, fillval=np.nan, interp="linear")
        background = cal.meta.get("background") or {}
        backg = options.get("backg", 0.0)
        if background.get("subtracted") is False and background.get("level") is not None:
            backg = background["level"]
        mask = flag_resampled_crs(arrays["data"], arrays["err"], blot, snr1, snr2, scale1,
                                  scale2, backg)
        arrays["dq"] |= mask.astype(np.uint32) * flag
        log.info("%s: %d pixels marked as outliers", cal.path, int(np.count_nonzero(mask)))
        _match_nans_and_flags(arrays, dqflags["DO_NOT_USE"])


def _match_nans_and_flags(arrays, do_not_use):
    names = [n for n in ("data", "err", "var_rnoise", "var_poisson", "var_flat") if n in arrays]
    invalid = np.zeros(arrays["data"].shape, bool)
    for name in names:
        invalid |= np.isnan(arrays[name])
    invalid |= (arrays["dq"] & np.uint32(do_not_use)) != 0
    arrays["dq"][invalid] |= np.uint32(do_not_use)
    for name in names:
        arrays[name][invalid] = np.nan
