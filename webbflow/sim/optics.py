"""Synthetic telescope optics for imaging: where each detector sits in the focal plane,
its geometric distortion, its pixel areas, its flat and its photometric calibration.

The distortion has the structure of the delivered SIAF-based DISTORTION files: 0-based
pixels -> (+1, -CRPIX) -> degree-5 polynomials to the ideal frame (arcsec) -> rotation
by V3IdlYAngle with the ideal-frame parity -> + (V2_REF, V3_REF); with a fitted inverse.
Numbers are plausible, not SIAF values: what matters is that the simulator and the
calibration share them through the reference files.
"""

from dataclasses import dataclass

import numpy as np
from astropy.modeling import fitting
from astropy.modeling.models import Mapping, Polynomial2D, Shift

# aperture reference point (arcsec), V3IdlYAngle (deg), ideal parity, pixel scale (arcsec)
@dataclass(frozen=True)
class Aperture:
    v2_ref: float
    v3_ref: float
    v3_idl_yang: float
    parity: int
    scale: float


APERTURES = {
    **{f"NRCA{k}": Aperture(120.6 - 70 * ((k - 1) % 2), -527.4 + 70 * ((k - 1) // 2),
                            -0.5, -1, 0.0311) for k in range(1, 5)},
    **{f"NRCB{k}": Aperture(-120.6 + 70 * ((k - 1) % 2), -527.4 + 70 * ((k - 1) // 2),
                            -0.3, -1, 0.0311) for k in range(1, 5)},
    "NRCALONG": Aperture(86.04, -493.39, -0.074, -1, 0.0630),
    "NRCBLONG": Aperture(-89.0, -493.4, -0.2, -1, 0.0630),
    "NIS": Aperture(-289.9, -697.5, -0.57, -1, 0.0656),
    "GUIDER1": Aperture(207.2, -697.5, -1.25, 1, 0.0691),
    "GUIDER2": Aperture(-22.9, -697.5, -1.0, -1, 0.0691),
    "MIRIMAGE": Aperture(-453.4, -373.8, 4.45, -1, 0.1108),
}

# PHOTMJSR, (MJy/sr)/(DN/s), by filter: the right order of magnitude for each instrument
PHOTMJSR = {"NIRCAM": 0.45, "NIRISS": 0.35, "FGS": 0.30, "MIRI": 0.25}
# MIRI's imager reads a subset of the 1032 columns as science pixels (left: Lyot/4QPM)
FULL_SHAPE = {"MIRI": (1024, 1032)}


def aperture(detector):
    try:
        return APERTURES[detector]
    except KeyError:
        raise ValueError(f"no synthetic aperture for detector {detector}") from None


def subarray_reference(detector, full_shape, xstart, ystart, xsize, ysize):
    """(V2, V3) arcsec of a subarray's centre through the aperture's linear model (scale,
    V3IdlYAngle, parity about the full-frame centre): the reference point of a subarray
    aperture, where the telescope puts the target when the exposure uses that aperture
    (the higher-order distortion terms, a pixel or so, are left out)."""
    ap = aperture(detector)
    nrows, ncols = full_shape
    x = ap.scale * (xstart + (xsize - 1) / 2.0 - (ncols + 1) / 2.0)
    y = ap.scale * (ystart + (ysize - 1) / 2.0 - (nrows + 1) / 2.0)
    angle = np.radians(ap.v3_idl_yang)
    return (ap.v2_ref + ap.parity * x * np.cos(angle) + y * np.sin(angle),
            ap.v3_ref - ap.parity * x * np.sin(angle) + y * np.cos(angle))


def _distortion_terms(rng, scale, ncols, nrows):
    """Small higher-order terms: about a pixel of distortion at the frame corners."""
    half = max(ncols, nrows) / 2.0
    terms = {}
    for i in range(6):
        for j in range(6 - i):
            if i + j >= 2:
                amplitude = 2.0 * scale / half ** (i + j) / (i + j) ** 2
                terms[(i, j)] = rng.normal(0.0, amplitude)
    return terms


def _poly(degree, coeffs):
    model = Polynomial2D(degree)
    for (i, j), value in coeffs.items():
        setattr(model, f"c{i}_{j}", value)
    return model


def synthetic_distortion(rng, detector, shape):
    """DISTORTION model of ``detector`` (full frame ``shape`` (ny, nx)) with its inverse."""
    ap = aperture(detector)
    nrows, ncols = shape
    crpix = ((ncols + 1) / 2.0, (nrows + 1) / 2.0)
    xterms = {(1, 0): ap.scale * (1 + rng.normal(0, 2e-3)), (0, 1): rng.normal(0, 2e-4) * ap.scale}
    yterms = {(0, 1): ap.scale * (1 + rng.normal(0, 2e-3)), (1, 0): rng.normal(0, 2e-4) * ap.scale}
    xterms.update(_distortion_terms(rng, ap.scale, ncols, nrows))
    yterms.update(_distortion_terms(rng, ap.scale, ncols, nrows))
    to_ideal = _poly(5, xterms) & _poly(5, yterms)
    angle = np.radians(ap.v3_idl_yang)
    cos, sin = np.cos(angle), np.sin(angle)
    # V2 = parity*x cos + y sin, V3 = -parity*x sin + y cos (ideal -> telescope)
    rotate = _poly(1, {(1, 0): ap.parity * cos, (0, 1): sin}) & \
        _poly(1, {(1, 0): -ap.parity * sin, (0, 1): cos})
    unrotate = _poly(1, {(1, 0): ap.parity * cos, (0, 1): -ap.parity * sin}) & \
        _poly(1, {(1, 0): sin, (0, 1): cos})
    forward = (Shift(1) & Shift(1) | Shift(-crpix[0]) & Shift(-crpix[1]) | Mapping((0, 1, 0, 1))
               | to_ideal | Mapping((0, 1, 0, 1)) | rotate | Shift(ap.v2_ref) & Shift(ap.v3_ref))

    # inverse polynomials fitted on a grid that overfills the detector
    u, v = np.meshgrid(np.linspace(-0.55 * ncols, 0.55 * ncols, 60),
                       np.linspace(-0.55 * nrows, 0.55 * nrows, 60))
    xi, yi = to_ideal(u, v, u, v)
    fitter = fitting.LinearLSQFitter()
    inv_x = fitter(Polynomial2D(5), xi, yi, u)
    inv_y = fitter(Polynomial2D(5), xi, yi, v)
    inverse = (Shift(-ap.v2_ref) & Shift(-ap.v3_ref) | Mapping((0, 1, 0, 1)) | unrotate
               | Mapping((0, 1, 0, 1)) | inv_x & inv_y | Shift(crpix[0]) & Shift(crpix[1])
               | Shift(-1) & Shift(-1))
    forward.inverse = inverse
    return forward


def pixel_area_map(distortion, shape, step=8):
    """Relative pixel areas (mean 1 over the frame) and the mean area in arcsec^2,
    from the Jacobian of ``distortion`` sampled every ``step`` pixels and interpolated."""
    from scipy.interpolate import RegularGridInterpolator  # noqa: PLC0415

    ny, nx = shape
    ys = np.unique(np.r_[np.arange(0, ny, step), ny - 1]).astype(float)
    xs = np.unique(np.r_[np.arange(0, nx, step), nx - 1]).astype(float)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    h = 0.5
    x1, y1 = distortion(xx + h, yy)
    x0, y0 = distortion(xx - h, yy)
    x3, y3 = distortion(xx, yy + h)
    x2, y2 = distortion(xx, yy - h)
    area = np.abs((x1 - x0) * (y3 - y2) - (x3 - x2) * (y1 - y0))
    interp = RegularGridInterpolator((ys, xs), area)
    gy, gx = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    full = interp(np.stack([gy.ravel(), gx.ravel()], axis=-1)).reshape(ny, nx)
    mean_a2 = float(full.mean())
    return (full / mean_a2).astype(np.float32), mean_a2


def quantum_efficiency(rng, shape):
    """Pixel-to-pixel and large-scale response, mean 1: smooth gradients, 1 % pixel
    scatter and a few dead (NaN) pixels."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    smooth = 1.0 + 0.03 * np.cos(2 * np.pi * x / nx + rng.uniform(0, 6)) * \
        np.sin(2 * np.pi * y / ny + rng.uniform(0, 6))
    qe = (smooth * (1.0 + rng.normal(0.0, 0.01, shape))).astype(np.float32)
    bad = rng.random(shape) < 2e-4
    qe[bad] = np.nan
    return qe


def photmjsr(instrument, filter_name):
    """PHOTMJSR of a filter: the instrument's level, varied by filter deterministically."""
    base = PHOTMJSR[instrument]
    wobble = (sum(filter_name.encode()) % 17) / 17.0
    return float(np.float32(base * (0.8 + 0.4 * wobble)))
