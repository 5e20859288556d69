"""flat_field and photom for imaging (jwst flatfield / photom, imaging branch)."""

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.kernels.flat_photom import _flat_photom
from webbflow.steps._checks import check_dtypes

__all__ = ["flat_field_and_photom", "photom_conversion", "MJSR_TO_UJA2"]

# uJy/arcsec^2 per MJy/sr
MJSR_TO_UJA2 = 23.504430468331198


def photom_conversion(meta, table, *, source=None):
    """PHOTMJSR (float32) of the table row matching the exposure: FILTER and PUPIL for the
    near-IR imagers, FILTER and SUBARRAY (else GENERIC) for MIRI, the first row for FGS
    (no filters: the official ``calc_fgs`` matches nothing). None if no row matches
    (the official step then leaves the data in DN/s)."""
    instrument = meta.get("instrument", {})
    names = table.dtype.names
    if instrument.get("name") == "FGS":
        if not len(table):
            return None
        return np.float32(table["photmjsr"][0])

    def text(column):
        return np.char.strip(np.char.upper(np.asarray(table[column]).astype(str)))

    match = text("filter") == str(instrument.get("filter", "")).upper()
    if instrument.get("name") == "MIRI":
        subarray = text("subarray")
        rows = np.flatnonzero(match & (subarray == str(meta.get("subarray", {}).get("name"))))
        if not len(rows):
            rows = np.flatnonzero(match & (subarray == "GENERIC"))
    else:
        if "pupil" in names:
            match &= text("pupil") == str(instrument.get("pupil", "")).upper()
        if "subarray" in names:
            match &= text("subarray") == str(meta.get("subarray", {}).get("name"))
        rows = np.flatnonzero(match)
    if len(rows) > 1:
        raise WebbflowError(source, f"{len(rows)} PHOTOM rows match the exposure")
    if not len(rows):
        return None
    return np.float32(table["photmjsr"][rows[0]])


def flat_field_and_photom(arrays, dqflags, *, flat=None, flat_err=None, flat_dq=None,
                          conversion=None):
    """In place on ``arrays`` (data, err, dq, var_poisson, var_rnoise: the rate product's
    2-D arrays); adds ``var_flat``. ``flat*``: the flat cut to the science frame, or
    None to skip flat_field; ``conversion``: PHOTMJSR or None to skip photom."""
    sci = arrays["data"]
    check_dtypes(data=(sci, np.float32), err=(arrays["err"], np.float32),
                 dq=(arrays["dq"], np.uint32), var_poisson=(arrays["var_poisson"], np.float32),
                 var_rnoise=(arrays["var_rnoise"], np.float32))
    if sci.ndim != 2:
        raise ValueError("flat_field_and_photom takes 2-D images")
    shape = sci.shape
    arrays.setdefault("var_flat", np.zeros(shape, np.float32))
    do_flat = flat is not None
    if do_flat:
        flat = np.ascontiguousarray(flat, np.float32)
        flat_err = np.ascontiguousarray(flat_err, np.float32) if flat_err is not None \
            else np.zeros(shape, np.float32)
        flat_dq = np.array(flat_dq, np.uint32) if flat_dq is not None \
            else np.zeros(shape, np.uint32)
        if flat.shape != shape or flat_err.shape != shape or flat_dq.shape != shape:
            raise ValueError("flat arrays must match the science frame")
    else:
        flat = flat_err = np.zeros((1, 1), np.float32)
        flat_dq = np.zeros((1, 1), np.uint32)
    _flat_photom(sci, arrays["err"], arrays["dq"], arrays["var_poisson"], arrays["var_rnoise"],
                 arrays["var_flat"], flat, flat_err, flat_dq, do_flat,
                 np.float32(conversion if conversion is not None else 1.0),
                 conversion is not None, np.uint32(dqflags["DO_NOT_USE"]),
                 np.uint32(dqflags["NO_FLAT_FIELD"]))
    return arrays
