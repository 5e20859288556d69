"""The imaging WCS of one exposure: detector pixels -> V2/V3 -> sky, as a gwcs object.

Frames and transforms follow the observatory's convention (jwst-algorithms.md §3.1):

* detector -> v2v3: subarray offset (SUBSTRT - 1) | filter offset | DISTORTION model
  (0-based full-frame pixels, pixel centres at integers, output arcsec);
* v2v3 -> v2v3vacorr: differential velocity aberration, a scale about (V2_REF, V3_REF);
* v2v3vacorr -> world: arcsec -> deg, a 3-D rotation by
  ``[V2_REF, -V3_REF, ROLL_REF, DEC_REF, -RA_REF]`` about ``z, y, x, y, z``, RA in 0-360.

The same function serves the simulator (with the true pointing) and assign_wcs (with the
pointing keywords), so a simulated source lands where calibration puts it.
"""

import astropy.units as u
import numpy as np
from astropy import coordinates as coord
from astropy.modeling import bind_bounding_box
from astropy.modeling.models import Identity, RotationSequence3D, Scale, Shift

__all__ = ["imaging_wcs", "distortion_transform", "filter_offset", "v2v3_to_sky",
           "va_correction", "subarray_bounding_box", "detector_bounding_box"]


def filter_offset(rows, filter_name, pupil=None):
    """(column, row) offset in pixels for ``filter_name``/``pupil`` from the FILTEROFFSET
    ``filters`` list, or None. A row without a pupil matches any pupil."""
    for row in rows:
        if row.get("filter") != filter_name:
            continue
        if "pupil" in row and row["pupil"] not in (None, "N/A", "ANY") and row["pupil"] != pupil:
            continue
        column, line = row.get("column_offset", "N/A"), row.get("row_offset", "N/A")
        if column == "N/A" or line == "N/A":
            return None
        return float(column), float(line)
    return None


def distortion_transform(distortion, offset=None, substrt=(1, 1)):
    """detector (subarray pixels) -> V2/V3 arcsec."""
    transform = distortion
    if offset is not None:
        transform = Shift(offset[0]) & Shift(offset[1]) | transform
    xstart, ystart = substrt
    if xstart != 1 or ystart != 1:
        to_full = (Shift(xstart - 1) if xstart != 1 else Identity(1)) & \
                  (Shift(ystart - 1) if ystart != 1 else Identity(1))
        transform = to_full | transform
    return transform


def va_correction(scale, v2_ref, v3_ref):
    """Differential velocity aberration about the reference point (arcsec)."""
    if scale is None or scale == 1:
        return Identity(2)
    if scale <= 0:
        raise ValueError("velocity aberration scale must be positive")
    model = Scale(scale, name="dva_scale_v2") & Scale(scale, name="dva_scale_v3")
    v2_ref, v3_ref = v2_ref or 0.0, v3_ref or 0.0
    if v2_ref or v3_ref:
        model = model | Shift((1 - scale) * v2_ref, name="dva_v2_shift") & \
            Shift((1 - scale) * v3_ref, name="dva_v3_shift")
    model.name = "DVA_Correction"
    return model


def v2v3_to_sky(v2_ref, v3_ref, roll_ref, ra_ref, dec_ref):
    """V2/V3 arcsec -> RA/Dec deg for a pointing whose (V2_REF, V3_REF) lies at
    (RA_REF, DEC_REF) with V3 at position angle ROLL_REF there."""
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian  # noqa: PLC0415

    angles = np.array([v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref])
    model = (Scale(1 / 3600) & Scale(1 / 3600)) | SphericalToCartesian(wrap_lon_at=180) | \
        RotationSequence3D(angles, axes_order="zyxyz") | CartesianToSpherical(wrap_lon_at=360)
    model.name = "v23tosky"
    return model


def subarray_bounding_box(xsize, ysize):
    """The bounding box of a (ysize, xsize) image in gwcs (x, y) order."""
    return ((-0.5, xsize - 0.5), (-0.5, ysize - 0.5))


def detector_bounding_box(distortion, shape, substrt=(1, 1)):
    """The pixels an imaging WCS is valid on, in gwcs (x, y) order, as the official
    assign_wcs decides: an exposure whose first pixel is the detector's (1, 1) keeps the
    DISTORTION model's own bounding box when it has one (MIRI's leaves out the
    reference-pixel columns); any other subarray, or a model without one, the image."""
    ny, nx = shape
    if tuple(substrt) == (1, 1):
        try:
            box = distortion.bounding_box.bounding_box(order="F")
        except NotImplementedError:
            pass
        else:
            return tuple((float(lower), float(upper)) for lower, upper in box)
    return subarray_bounding_box(nx, ny)


def imaging_wcs(wcsinfo, distortion, *, shape, substrt=(1, 1), offset=None, va_scale=1.0):
    """The gwcs of an imaging exposure of ``shape`` (ny, nx).

    ``wcsinfo``: dict with v2_ref, v3_ref (arcsec), roll_ref, ra_ref, dec_ref (deg);
    ``distortion``: the DISTORTION reference's astropy model (full-frame pixels -> arcsec).
    """
    from gwcs import coordinate_frames as cf  # noqa: PLC0415 - gwcs costs a second to import
    from gwcs.wcs import WCS  # noqa: PLC0415

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"),
                      unit=(u.arcsec, u.arcsec))
    v2v3vacorr = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"),
                            unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")

    box = detector_bounding_box(distortion, shape, substrt)
    to_v2v3 = distortion_transform(distortion, offset, substrt)
    bind_bounding_box(to_v2v3, box, order="F")
    pipeline = [
        (detector, to_v2v3),
        (v2v3, va_correction(va_scale, wcsinfo["v2_ref"], wcsinfo["v3_ref"])),
        (v2v3vacorr, v2v3_to_sky(wcsinfo["v2_ref"], wcsinfo["v3_ref"], wcsinfo["roll_ref"],
                                 wcsinfo["ra_ref"], wcsinfo["dec_ref"])),
        (world, None),
    ]
    wcs = WCS(pipeline)
    wcs.bounding_box = box
    return wcs
