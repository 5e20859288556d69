"""resample for imaging: cal images drizzled onto one tangent-plane grid -> i2d.

The official recipe (jwst resample on stcal/drizzle): weights 1/VAR_RNOISE ('ivm') or
the measurement time ('exptime'), times the good-pixel mask (DQ without DO_NOT_USE or
NON_SCIENCE); SCI is the drizzled weighted mean; each variance is drizzled as its square
root, squared, and combined over inputs with the output-pixel weights; ERR is the root
of the summed variances; CON records which inputs touched each output pixel.
"""

import copy
import logging

import numpy as np

from webbflow.io import Product
from webbflow.kernels.drizzle import (accumulate_variance, drizzle_image, error_from_variances,
                                      finalize_variance, ivm_output_weight)
from webbflow.wcs.output import combined_s_region, output_wcs, pixel_map

log = logging.getLogger("webbflow.resample")

__all__ = ["Resampler", "resample_single", "drizzle_weight", "group_id"]

VARIANCES = ("var_rnoise", "var_poisson", "var_flat")


def drizzle_weight(arrays, meta, weight_type, bad_bits):
    """float32 input weights: 'ivm' 1/VAR_RNOISE (0 where not finite), 'exptime' the
    measurement time (else the exposure time); 0 on pixels with any of ``bad_bits``."""
    good = (arrays["dq"] & np.uint32(bad_bits)) == 0
    if weight_type == "ivm":
        var = arrays.get("var_rnoise")
        if var is None or var.shape != arrays["data"].shape:
            weight = np.ones(arrays["data"].shape, np.float32)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                weight = np.float32(1.0) / var
            weight[~np.isfinite(weight)] = 0
    elif weight_type == "exptime":
        weight = np.full(arrays["data"].shape, np.float32(_tmeasure(meta)[0]), np.float32)
    else:
        raise ValueError(f"unknown weight_type {weight_type!r}")
    return (weight * good.astype(np.uint8)).astype(np.float32)


def _tmeasure(meta):
    exposure = meta.get("exposure", {})
    if exposure.get("measurement_time") is not None:
        return exposure["measurement_time"], True
    return exposure.get("exposure_time"), False


class Resampler:
    """Drizzle cal images one at a time onto the grid covering ``s_regions`` (the first
    input's orientation and scale); :meth:`product` gives the i2d."""

    def __init__(self, ref_meta, ref_wcs, s_regions, options, dqflags, *, bad_bits=None,
                 variances=True):
        """``bad_bits``: DQ bits that zero a pixel's weight (default DO_NOT_USE and
        NON_SCIENCE); ``variances=False`` drizzles SCI and WHT only (outlier singles)."""
        self.options = options
        self.variances = variances
        self.s_regions = list(s_regions)
        scale = options.get("pixel_scale")
        self.wcs, self.shape, scale_deg = output_wcs(
            s_regions, ref_wcs, ref_meta["wcsinfo"],
            pixel_scale_ratio=options.get("pixel_scale_ratio", 1.0),
            pixel_scale=scale / 3600.0 if scale else None, rotation=options.get("rotation"))
        self.pixel_scale = 3600.0 * scale_deg
        # the official ratio is the configured one unless a pixel scale is given
        if scale:
            nominal = 3600.0 * np.rad2deg(np.sqrt(ref_meta["photometry"]["pixelarea_steradians"]))
            self.pixel_scale_ratio = self.pixel_scale / nominal
        else:
            self.pixel_scale_ratio = options.get("pixel_scale_ratio", 1.0)
        self.bad_bits = dqflags["DO_NOT_USE"] | dqflags["NON_SCIENCE"] if bad_bits is None \
            else bad_bits
        self.reset()

    def reset(self):
        """Empty output arrays on the same grid (the next outlier single)."""
        self.sci = np.zeros(self.shape, np.float32)
        self.wht = np.zeros(self.shape, np.float32)
        self.con = np.zeros((0,) + self.shape, np.int32)
        self.var_sum = {name: np.full(self.shape, np.nan, np.float32) for name in VARIANCES}
        self.var_wt = {name: np.zeros(self.shape, np.float32) for name in VARIANCES}
        self.metas = []

    def pixel_map(self, wcs, shape):
        """Output-grid position of every input pixel centre (reusable across passes:
        outlier singles, blot and the final drizzle share the grid)."""
        return pixel_map(wcs, self.wcs, shape)

    def add(self, arrays, meta, wcs, pixmap=None):
        """Drizzle one cal image (arrays: data, dq, err, var_*; its meta and gwcs)."""
        index = len(self.metas)
        if index // 32 >= self.con.shape[0]:
            self.con = np.concatenate([self.con, np.zeros((1,) + self.shape, np.int32)])
        data = np.ascontiguousarray(arrays["data"], np.float32)
        if pixmap is None:
            pixmap = self.pixel_map(wcs, data.shape)
        weight = drizzle_weight(arrays, meta, self.options.get("weight_type", "ivm"),
                                self.bad_bits)
        level = (meta.get("background") or {}).get("level")
        if level is not None and not (meta.get("background") or {}).get("subtracted"):
            data = data - np.float32(level)
        pixfrac = self.options.get("pixfrac", 1.0)
        names = [name for name in VARIANCES if self.variances
                 and arrays.get(name) is not None and arrays[name].shape == data.shape]
        # the variances ride along as extra channels of the SCI pass: one overlap
        # computation per input pixel for all four images
        extra = {}
        if names:
            err_in = np.empty((len(names),) + data.shape, np.float32)
            for k, name in enumerate(names):
                np.sqrt(arrays[name], out=err_in[k])
            err_out = np.zeros((len(names),) + self.shape, np.float32)
            err_wht = np.zeros(self.shape, np.float32)
            extra = dict(extra_data=err_in, extra_out=err_out, extra_wht=err_wht)
        drizzle_image(data, weight, pixmap, self.sci, self.wht, self.con[index // 32],
                      index % 32, pixfrac=pixfrac, **extra)
        if names:
            del extra, err_in           # the square roots are not needed for the sums
            self._add_variances(meta, names, err_out, err_wht)
        self.metas.append(meta)

    def _add_variances(self, meta, names, err_out, err_wht):
        """Accumulate this input's drizzled square-root variances (err_out, one plane per
        name, with their weights err_wht; overwritten) into the variance sums."""
        err_out[:, err_wht == 0] = np.nan
        resampled = dict(zip(names, np.multiply(err_out, err_out, out=err_out)))
        if self.options.get("weight_type", "ivm") == "ivm":
            out_weight = np.zeros(self.shape, np.float64)
            if "var_rnoise" in resampled:
                ivm_output_weight(resampled["var_rnoise"], out_weight)
        else:
            out_weight = np.full(self.shape, float(_tmeasure(meta)[0]), np.float64)
        for name, var in resampled.items():
            accumulate_variance(var, out_weight, self.var_sum[name], self.var_wt[name])

    def product(self, template_meta):
        """The i2d Product: SCI (NaN where no weight), ERR, CON, WHT, VAR_*."""
        sci = self.sci.copy()
        sci[self.wht == 0] = np.nan
        arrays = {"data": sci, "wht": self.wht, "con": self.con}
        variances = []
        for name in VARIANCES:
            out = np.empty(self.shape, np.float32)
            finalize_variance(self.var_sum[name], self.var_wt[name],
                              1.0 / self.pixel_scale_ratio ** 2, out)
            arrays[name] = out
            variances.append(out)
        err = np.empty(self.shape, np.float32)
        error_from_variances(np.stack(variances), err)
        arrays["err"] = err
        meta = self._output_meta(template_meta)
        return Product("ImageModel", meta=meta, arrays=arrays)

    def _output_meta(self, template_meta):
        meta = copy.deepcopy(template_meta)
        meta.pop("wcs", None)
        meta["wcs"] = self.wcs
        fits_transform = self.wcs.forward_transform
        wcsinfo = {k: v for k, v in meta.get("wcsinfo", {}).items()
                   if not _is_sip_or_cd(k) and k not in
                   ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity")}
        wcsinfo.update(crpix1=float(fits_transform.crpix[0] + 1),
                       crpix2=float(fits_transform.crpix[1] + 1),
                       cdelt1=float(fits_transform.cdelt[0]), cdelt2=float(fits_transform.cdelt[1]),
                       crval1=float(fits_transform.crval[0]), crval2=float(fits_transform.crval[1]),
                       pc1_1=float(fits_transform.pc[0][0]), pc1_2=float(fits_transform.pc[0][1]),
                       pc2_1=float(fits_transform.pc[1][0]), pc2_2=float(fits_transform.pc[1][1]),
                       ctype1="RA---TAN", ctype2="DEC--TAN", cunit1="deg", cunit2="deg",
                       radesys="ICRS")
        region = combined_s_region(self.s_regions, self.wcs)
        if region is None:
            log.warning("no input footprint overlaps the output grid: no S_REGION")
            wcsinfo.pop("s_region", None)
        else:
            wcsinfo["s_region"] = region
        meta["wcsinfo"] = wcsinfo
        area_a2 = self.pixel_scale ** 2
        meta.setdefault("photometry", {}).update(
            pixelarea_arcsecsq=area_a2, pixelarea_steradians=area_a2 / np.rad2deg(3600) ** 2)
        opts = self.options
        meta["resample"] = {"pixel_scale_ratio": self.pixel_scale_ratio,
                            "pixfrac": opts.get("pixfrac", 1.0),
                            "kernel": opts.get("kernel", "square"), "fillval": "NAN",
                            "weight_type": opts.get("weight_type", "ivm"),
                            "pointings": len({group_id(m) for m in self.metas})}
        exposure = meta.setdefault("exposure", {})
        firsts = {}
        for m in self.metas:
            firsts.setdefault(group_id(m), m)
        groups = list(firsts.values())
        exposure["exposure_time"] = sum(m["exposure"].get("exposure_time") or 0 for m in groups)
        exposure["effective_exposure_time"] = exposure["exposure_time"]
        exposure["start_time"] = min(m["exposure"]["start_time"] for m in groups)
        exposure["end_time"] = max(m["exposure"]["end_time"] for m in groups)
        exposure["duration"] = sum(m["exposure"].get("duration") or 0 for m in groups)
        exposure["elapsed_exposure_time"] = exposure["duration"]
        measured = [_tmeasure(m) for m in groups]
        if all(ok for _, ok in measured):
            exposure["measurement_time"] = sum(t for t, _ in measured)
        meta.setdefault("cal_step", {})["resample"] = "COMPLETE"
        return meta


def _is_sip_or_cd(key):
    import re  # noqa: PLC0415

    return re.match(r"^(cd[12]_[12]|[ab]p?_\d_\d|[ab]p?_order)$", key) is not None


def group_id(meta):
    """The exposure group (all detectors of one exposure), as the official group_id."""
    obs = meta.get("observation", {})
    return (f"jw{obs.get('program_number')}{obs.get('observation_number')}"
            f"{obs.get('visit_number')}_{obs.get('visit_group')}{obs.get('sequence_id')}"
            f"{obs.get('activity_id')}_{obs.get('exposure_number')}")


def resample_single(cal, options, dqflags):
    """calwebb_image2's resample: one cal Product alone -> its i2d Product."""
    meta = cal.meta
    resampler = Resampler(meta, meta["wcs"], [meta["wcsinfo"]["s_region"]], options, dqflags)
    resampler.add(cal.arrays, meta, meta["wcs"])
    return resampler.product(meta)
