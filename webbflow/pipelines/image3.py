"""calwebb_image3 for imaging: an association of cal files -> crf (outliers flagged) per
exposure, the combined i2d, and its source catalog (cat) and segmentation map (segm).
tweakreg aligns the members' WCS first (before the output grid is chosen).

skymatch records each member's sky level (meta.background, SCI untouched by default);
as in jwst 3.0, every drizzle of a member (the outlier singles and the final i2d)
subtracts that level when it is not yet subtracted, and the outlier comparison adds it
back to the blotted median (``backg``).

Each input's pixel map onto the output grid is computed once and serves the outlier
singles, the blot of the median and the final drizzle (the official step computes it
three times).
"""

import copy
import logging

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io import Product, read_product, read_wcs, write_product
from webbflow.kernels.drizzle import blot_image
from webbflow.kernels.outlier import compute_weight_threshold, flag_resampled_crs, median_of_singles
from webbflow.pipelines.resample import Resampler, group_id
from webbflow.steps.skymatch import skymatch
from webbflow.steps.tweakreg import tweakreg

log = logging.getLogger("webbflow.image3")

__all__ = ["run_image3", "write_image3_products"]

CAL_ARRAYS = ("data", "err", "dq", "var_poisson", "var_rnoise", "var_flat")


def _read_cal_meta(path):
    with read_product(path, require=("data", "err", "dq")) as cal:
        if len(cal.shape("data")) != 2:
            raise WebbflowError(path, "calwebb_image3 takes 2-D cal images")
        meta = copy.deepcopy(cal.meta)
    meta["wcs"] = read_wcs(path)
    return meta


def _read_cal(path, meta, names=CAL_ARRAYS + ("area",), sky=()):
    """A member's arrays (native byte order) under its already-read ``meta``; ``sky``:
    values skymatch subtracts from SCI, in order (skymatch ``subtract``)."""
    arrays = {}
    with read_product(path, require=("data", "err", "dq")) as cal:
        for name in names:
            if cal.has(name):
                array = cal[name]
                arrays[name] = np.array(array, dtype=array.dtype.newbyteorder("="))
    for value in sky:
        arrays["data"] -= value
    return Product("ImageModel", meta=meta, arrays=arrays, path=path)


def run_image3(cal_paths, config, dqflags, *, asn_id, product_name, write_crf, refs=None,
               tweakreg_catalogs=None):
    """Calibrate one association; ``write_crf(index, product)`` receives each member's crf
    as soon as it is final. ``refs``: reftype -> path for source_catalog (APCORR,
    ABVEGAOFFSET; missing or "N/A": the official fallbacks); ``tweakreg_catalogs``:
    {member file name: user source catalog} (the association's ``tweakreg_catalog``
    entries). Returns {"i2d": Product} and, unless source_catalog is skipped, "cat" (an
    astropy table for write_catalog) and "segm" (a Product).

    Members are read from disk for each pass instead of held together: at any time one
    member's arrays, the pixel maps and the output-grid arrays are in memory."""
    steps = config["steps"]
    if not cal_paths:
        raise WebbflowError(product_name, "the association has no science members")
    metas = [_read_cal_meta(path) for path in cal_paths]
    if steps.get("tweakreg", {}).get("skip"):
        for meta in metas:
            meta.setdefault("cal_step", {})["tweakreg"] = "SKIPPED"
    else:
        tweakreg(cal_paths, metas, steps["tweakreg"], dqflags, catalogs=tweakreg_catalogs)
    skies = [()] * len(cal_paths)
    if steps.get("skymatch", {}).get("skip"):
        for meta in metas:
            meta.setdefault("cal_step", {})["skymatch"] = "SKIPPED"
    else:
        skies = skymatch(cal_paths, metas, steps["skymatch"], dqflags,
                         group_ids=[group_id(m) for m in metas])
    ref = metas[0]
    s_regions = [m["wcsinfo"]["s_region"] for m in metas]
    final = Resampler(ref, ref["wcs"], s_regions, steps["resample"], dqflags)
    pixmaps = [final.pixel_map(m["wcs"], _shape(path)) for m, path in zip(metas, cal_paths)]

    outliers = steps["outlier_detection"]
    median = None
    if not outliers.get("skip") and len({group_id(m) for m in metas}) > 1:
        median = _median_of_singles(cal_paths, metas, pixmaps, s_regions, outliers, dqflags,
                                    skies)
    for index, (path, meta, pixmap) in enumerate(zip(cal_paths, metas, pixmaps)):
        cal = _read_cal(path, meta, sky=skies[index])
        if median is not None:
            _flag_outliers(cal, median, pixmap, outliers, dqflags)
        meta.setdefault("cal_step", {})["outlier_detection"] = \
            "COMPLETE" if median is not None else "SKIPPED"
        meta.setdefault("asn", {})["table_name"] = f"{product_name}_asn"
        final.add(cal.arrays, meta, meta["wcs"], pixmap=pixmap)
        write_crf(index, cal)
        del cal
    i2d = final.product(ref)
    # the official resample resets the output's level (no sky left in the mosaic) and
    # keeps the rest of the first member's background record (BKGMETH)
    background = i2d.meta.get("background")
    if background:
        background.pop("level", None)
        background.pop("subtracted", None)
    i2d.meta["filename"] = f"{product_name}_i2d.fits"
    products = {"i2d": i2d}
    if not steps.get("source_catalog", {}).get("skip"):
        products.update(_source_catalog(i2d, steps["source_catalog"], refs or {},
                                        product_name))
    return products


def write_image3_products(products, paths):
    """Write run_image3's products: ``paths`` maps each product name to its file."""
    from webbflow.steps.source_catalog import write_catalog  # noqa: PLC0415

    for name, product in products.items():
        if name == "cat":
            write_catalog(paths[name], product)
        else:
            write_product(paths[name], product)


def _source_catalog(i2d, options, refs, product_name):
    from webbflow.steps.source_catalog import make_source_catalog, segmentation_product  # noqa: PLC0415

    def given(reftype):
        path = refs.get(reftype, "N/A")
        return None if path in (None, "N/A") else path

    options = {k: v for k, v in options.items() if k != "skip"}
    arrays = i2d.arrays
    catalog, segm = make_source_catalog(arrays["data"], arrays["err"], arrays["wht"],
                                        i2d.meta["wcs"], i2d.meta, given("apcorr"),
                                        given("abvegaoffset"), options)
    log.info("%s: %d sources in the catalog", product_name, len(catalog))
    segm_product = segmentation_product(segm, i2d.meta, i2d.meta["wcs"],
                                        source_catalog=f"{product_name}_cat.ecsv")
    segm_product.meta["filename"] = f"{product_name}_segm.fits"
    return {"cat": catalog, "segm": segm_product}


def _shape(path):
    with read_product(path, require=("data",)) as cal:
        return cal.shape("data")[-2:]


def _median_of_singles(cal_paths, metas, pixmaps, s_regions, options, dqflags, skies):
    """Each exposure group drizzled alone on the output grid (DO_NOT_USE pixels out),
    masked where its weight is below maskpt x its clipped mean weight; their median."""
    ref = metas[0]
    single = Resampler(ref, ref["wcs"], s_regions,
                       {"pixfrac": options.get("pixfrac", 1.0),
                        "weight_type": options.get("weight_type", "ivm")},
                       dqflags, bad_bits=dqflags["DO_NOT_USE"], variances=False)
    groups = {}
    for index, meta in enumerate(metas):
        groups.setdefault(group_id(meta), []).append(index)
    singles = np.empty((len(groups),) + single.shape, np.float32)
    for k, indices in enumerate(groups.values()):
        single.reset()
        for index in indices:
            cal = _read_cal(cal_paths[index], metas[index], ("data", "dq", "var_rnoise"),
                            sky=skies[index])
            single.add(cal.arrays, metas[index], metas[index]["wcs"], pixmap=pixmaps[index])
        threshold = compute_weight_threshold(single.wht, options.get("maskpt", 0.7))
        singles[k] = single.sci
        singles[k][single.wht == 0] = np.nan
        singles[k][single.wht < threshold] = np.nan
    return median_of_singles(singles)


def _flag_outliers(cal, median, pixmap, options, dqflags):
    """Pixels far from the blotted median: DO_NOT_USE|OUTLIER, values NaN."""
    snr1, snr2 = (float(v) for v in str(options.get("snr", "5.0 4.0")).split())
    scale1, scale2 = (float(v) for v in str(options.get("scale", "1.2 0.7")).split())
    arrays = cal.arrays
    blot = np.full(arrays["data"].shape, np.nan, np.float32)
    blot_image(median, np.where(np.isnan(pixmap), -1.0, pixmap), blot, fillval=np.nan,
               interp="linear")
    background = cal.meta.get("background") or {}
    backg = options.get("backg", 0.0)
    if background.get("subtracted") is False and background.get("level") is not None:
        backg = background["level"]
    mask = flag_resampled_crs(arrays["data"], arrays["err"], blot, snr1, snr2, scale1, scale2,
                              backg)
    arrays["dq"] |= mask.astype(np.uint32) * np.uint32(dqflags["DO_NOT_USE"] | dqflags["OUTLIER"])
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
