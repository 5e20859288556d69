"""assign_wcs for imaging: the exposure's gwcs from DISTORTION, FILTEROFFSET and the
pointing keywords, plus its FITS SIP approximation and S_REGION (jwst assign_wcs)."""

import logging
import warnings

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.wcs.imaging import filter_offset, imaging_wcs

log = logging.getLogger("webbflow.assign_wcs")

__all__ = ["assign_imaging_wcs", "s_region", "IMAGING_TYPES"]

IMAGING_TYPES = ("FGS_IMAGE", "FGS_FOCUS", "MIR_IMAGE", "MIR_TACQ", "MIR_LYOT", "MIR_4QPM",
                 "MIR_CORONCAL", "NIS_AMI", "NIS_IMAGE", "NIS_TACQ", "NIS_TACONFIRM",
                 "NIS_FOCUS", "NRC_IMAGE", "NRC_CORON", "NRC_FOCUS", "NRC_TACQ",
                 "NRC_TACONFIRM", "NRC_TSIMAGE")
MAX_SIP_DEGREE = 6
POINTING_KEYS = ("v2_ref", "v3_ref", "roll_ref", "ra_ref", "dec_ref")


def _read_asdf(path, key):
    import asdf  # noqa: PLC0415 - seconds of extension loading, only where a WCS is built

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(path, lazy_load=False, memmap=False) as af:
                return af.tree[key]
    except KeyError:
        raise WebbflowError(path, f"has no {key!r} in its ASDF tree") from None
    except Exception as exc:
        raise WebbflowError(path, f"unreadable ASDF reference: {exc}") from None


def _sip_options(options):
    """gwcs ``to_fits_sip`` arguments from the step options; a null degree means
    the lowest of 1..5 that meets the error, as officially."""
    def degrees(value):
        return range(1, MAX_SIP_DEGREE) if value is None else int(value)

    return dict(max_pix_error=options.get("sip_max_pix_error", 0.01),
                degree=degrees(options.get("sip_degree")),
                max_inv_pix_error=options.get("sip_max_inv_pix_error", 0.01),
                inv_degree=degrees(options.get("sip_inv_degree")),
                npoints=options.get("sip_npoints", 12))


def assign_imaging_wcs(meta, shape, distortion_path, filteroffset_path=None, *, source=None,
                       options=None):
    """The gwcs of an imaging exposure; ``meta['wcsinfo']`` gains the SIP keywords (if
    ``options['sip_approx']``, the default) and S_REGION, ``meta['cal_step']`` records
    the step."""
    options = options or {}
    wcsinfo = meta.get("wcsinfo") or {}
    missing = [k for k in POINTING_KEYS if wcsinfo.get(k) is None]
    if missing:
        raise WebbflowError(source, "no pointing for a WCS: missing " +
                            ", ".join(k.upper() for k in missing))
    distortion = _read_asdf(distortion_path, "model")
    offset = None
    # FGS has no filter wheel: its imaging WCS takes no FILTEROFFSET (jwst assign_wcs/fgs.py)
    if filteroffset_path and filteroffset_path != "N/A" and \
            meta.get("instrument", {}).get("name") != "FGS":
        instrument = meta.get("instrument", {})
        offset = filter_offset(_read_asdf(filteroffset_path, "filters"),
                               instrument.get("filter"), instrument.get("pupil"))
    sub = meta.get("subarray", {})
    wcs = imaging_wcs(wcsinfo, distortion, shape=shape,
                      substrt=(int(sub.get("xstart") or 1), int(sub.get("ystart") or 1)),
                      offset=offset,
                      va_scale=(meta.get("velocity_aberration") or {}).get("scale_factor"))
    if options.get("sip_approx", True):
        _update_fits_wcsinfo(wcsinfo, wcs, source, _sip_options(options))
    wcsinfo["s_region"] = s_region(wcs)
    meta.setdefault("cal_step", {})["assign_wcs"] = "COMPLETE"
    return wcs


def _update_fits_wcsinfo(wcsinfo, wcs, source, sip_options):
    crpix = [wcsinfo.get("crpix1"), wcsinfo.get("crpix2")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = wcs.to_fits_sip(crpix=None if None in crpix else crpix, **sip_options)
    except (ValueError, RuntimeError) as exc:
        log.warning("%s: no FITS SIP approximation of the WCS: %s", source, exc)
        return
    for key in list(wcsinfo):
        if key in ("naxis", "cdelt1", "cdelt2", "pc1_1", "pc1_2", "pc2_1", "pc2_2") or \
                key.split("_")[0] in ("a", "b", "ap", "bp") and key[-1].isdigit() or \
                key in ("a_order", "b_order", "ap_order", "bp_order"):
            del wcsinfo[key]
    for key, value in header.items():
        key = key.lower()
        if not key.startswith("naxis"):
            wcsinfo[key] = value.item() if isinstance(value, np.generic) else value


def s_region(wcs):
    """POLYGON of the bounding box corners (pixel edges), RA in 0-360."""
    footprint = wcs.footprint(wcs.bounding_box, center=False, axis_type="spatial")
    corners = " ".join(f"{np.mod(ra, 360):.9f} {dec:.9f}" for ra, dec in footprint[:, :2])
    return f"POLYGON ICRS  {corners}"
