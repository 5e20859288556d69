"""calwebb_image2 for imaging: rate -> cal (bkg_subtract when the level-2 association has
background members, assign_wcs, flat_field, photom) and, for the imaging types, the
exposure drizzled alone -> i2d.

The cal product carries the WCS twice, as the official one does: a gwcs object in the
ASDF tree (what stage 3 uses) and its FITS SIP approximation in the SCI header (what
DS9 and astropy.wcs read).
"""

import copy
import logging

import numpy as np

from webbflow.crds.references import provenance
from webbflow.errors import WebbflowError
from webbflow.io import Product, read_product
from webbflow.io.references import load_reference
from webbflow.planning import RESAMPLED_EXP_TYPES, image2_reftypes
from webbflow.steps.assign_wcs import assign_imaging_wcs
from webbflow.steps.bkg_subtract import subtract_backgrounds
from webbflow.steps.flat_photom import MJSR_TO_UJA2, flat_field_and_photom, photom_conversion

log = logging.getLogger("webbflow.image2")

__all__ = ["run_image2"]

RATE_ARRAYS = ("data", "err", "dq", "var_poisson", "var_rnoise")


def _skipped(meta, step):
    meta.setdefault("cal_step", {})[step] = "SKIPPED"


def _given(refs, reftype):
    path = refs.get(reftype, "N/A")
    return None if path in (None, "N/A") else path


def run_image2(rate_path, refs, config, dqflags, *, context, backgrounds=()):
    """Calibrate one rate file; ``backgrounds``: the rate files of its association's
    background members. Returns {"cal": Product[, "i2d": Product]}."""
    steps = config["steps"]
    rate = read_product(rate_path, require=RATE_ARRAYS)
    meta = copy.deepcopy(rate.meta)
    exp_type = meta.get("exposure", {}).get("type")
    arrays = {}
    for name in RATE_ARRAYS:
        array = rate[name]
        if array.ndim != 2:
            raise WebbflowError(rate_path, f"{name} is {array.ndim}-D; calwebb_image2 takes a "
                                           "2-D rate image (rateints are not supported yet)")
        arrays[name] = np.array(array, dtype=array.dtype.newbyteorder("="))
    rate.close()
    shape = arrays["data"].shape
    for name, array in arrays.items():
        if array.shape != shape:
            raise WebbflowError(rate_path, f"{name} has shape {array.shape}, SCI {shape}")

    if backgrounds:
        # as officially, the step runs (and is recorded) only for exposures with
        # background members
        if steps.get("bkg_subtract", {}).get("skip"):
            _skipped(meta, "bkg_subtract")
        else:
            subtract_backgrounds(arrays, meta, list(backgrounds), steps["bkg_subtract"],
                                 source=rate_path)

    wcs = None
    if not steps["assign_wcs"].get("skip"):
        if not _given(refs, "distortion"):
            raise WebbflowError(rate_path, f"no DISTORTION reference under {context}: "
                                           "assign_wcs cannot build the WCS")
        wcs = assign_imaging_wcs(meta, shape, refs["distortion"], _given(refs, "filteroffset"),
                                 source=rate_path, options=steps["assign_wcs"])
        meta["wcs"] = wcs
    else:
        _skipped(meta, "assign_wcs")

    flat = {}
    if not steps["flat_field"].get("skip") and _given(refs, "flat"):
        ref = load_reference(refs["flat"], "flat", meta, shape)
        flat = {"flat": ref.full("data", np.float32),
                "flat_err": ref.full("err", np.float32) if ref.has("err") else None,
                "flat_dq": ref.full("dq", np.uint32) if ref.has("dq") else None}
        ref.close()
        meta.setdefault("cal_step", {})["flat_field"] = "COMPLETE"
    else:
        _skipped(meta, "flat_field")

    conversion = None
    if not steps["photom"].get("skip") and _given(refs, "photom"):
        photom = read_product(refs["photom"], require=())
        table = photom.tables.get("phot_table")
        if table is None:
            raise WebbflowError(refs["photom"], "has no PHOTOM table")
        conversion = photom_conversion(meta, table, source=refs["photom"])
        pixar = _pixel_area(meta, refs, photom, shape, arrays)
        photom.close()
        if conversion is None:
            log.warning("%s: no PHOTOM row for this filter; data stay in DN/s", rate_path)
            _skipped(meta, "photom")
        else:
            photometry = meta.setdefault("photometry", {})
            photometry.update(pixar)
            photometry["conversion_megajanskys"] = float(conversion)
            photometry["conversion_microjanskys"] = float(conversion * MJSR_TO_UJA2)
            meta["bunit_data"] = meta["bunit_err"] = "MJy/sr"
            meta.setdefault("cal_step", {})["photom"] = "COMPLETE"
    else:
        _skipped(meta, "photom")

    flat_field_and_photom(arrays, dqflags, conversion=conversion, **flat)
    if not flat:
        arrays.pop("var_flat")
    provenance(meta, {r: p for r, p in refs.items() if r in image2_reftypes(steps)}, context)
    cal = Product("ImageModel", meta=meta, arrays=arrays)
    outputs = {"cal": cal}
    if exp_type in RESAMPLED_EXP_TYPES and not steps["resample"].get("skip") and wcs is not None:
        from webbflow.pipelines.resample import resample_single  # noqa: PLC0415

        outputs["i2d"] = resample_single(cal, steps["resample"], dqflags)
    return outputs


def _pixel_area(meta, refs, photom, shape, arrays):
    """PIXAR_SR/PIXAR_A2 from AREA (whose map goes into the cal's AREA extension), else
    from PHOTOM's header."""
    source = photom
    if _given(refs, "area"):
        area = load_reference(refs["area"], "area", meta, shape)
        arrays["area"] = area.full("data", np.float32)
        if area.get("photometry.pixelarea_steradians") is not None:
            source = area
        area.close()
    out = {}
    for key in ("pixelarea_steradians", "pixelarea_arcsecsq"):
        value = source.get(f"photometry.{key}")
        if value is not None:
            out[key] = float(value)
    return out
