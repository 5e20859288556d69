"""Synthetic sky scenes as count-rate images (DN/s), pure arrays.

Positions are 0-based pixel coordinates of the full frame, pixel centres at integers
(the DMS/gWCS convention). Every source is rendered by integrating its profile over the
pixels of a finite stamp and normalising the stamp, so the image of one source sums to
its catalogued ``flux_dn_s`` exactly (float32 rounding aside) unless the stamp is cut by
the frame edge; ``flux_in_image`` records what actually landed on the frame.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, gammaincinv

__all__ = [
    "SOURCE_DTYPE",
    "make_scene",
    "add_star",
    "add_galaxy",
    "gaussian_stamp",
    "sersic_stamp",
    "peak_fraction",
    "saturating_flux",
    "add_saturating_stars",
]

SOURCE_DTYPE = np.dtype([
    ("id", "i4"),
    ("x", "f8"), ("y", "f8"),          # 0-based full-frame pixel coordinates
    ("flux_dn_s", "f8"),               # total rate of the source, DN/s
    ("flux_in_image", "f8"),           # part of it that falls on the frame
    ("kind", "U8"),                    # "star" | "galaxy"
    ("fwhm", "f8"),                    # stars: PSF FWHM (pix)
    ("r_eff", "f8"),                   # galaxies: half-light radius along the major axis (pix)
    ("sersic_n", "f8"),
    ("axis_ratio", "f8"),              # b/a
    ("theta", "f8"),                   # position angle of the major axis from +x, radians
    ("saturating", "?"),
])

_SIG_PER_FWHM = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def gaussian_stamp(dx, dy, fwhm, half):
    """Pixel-integrated circular Gaussian on a (2*half+1)^2 stamp, normalised to sum 1.

    ``dx, dy`` are the sub-pixel offsets of the centre from the stamp's central pixel.
    """
    s = fwhm * _SIG_PER_FWHM * np.sqrt(2.0)
    edges = np.arange(-half - 0.5, half + 1.0)
    px = np.diff(erf((edges - dx) / s)) * 0.5
    py = np.diff(erf((edges - dy) / s)) * 0.5
    stamp = np.outer(py, px)
    return stamp / stamp.sum()


def sersic_stamp(dx, dy, r_eff, n, q, theta, half, oversample=5):
    """Sérsic profile, sampled ``oversample``^2 times per pixel, normalised to sum 1."""
    b = gammaincinv(2.0 * n, 0.5)
    o = oversample
    sub = (np.arange(o) + 0.5) / o - 0.5
    coords = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()
    yy, xx = np.meshgrid(coords - dy, coords - dx, indexing="ij")
    c, s = np.cos(theta), np.sin(theta)
    xr = xx * c + yy * s
    yr = -xx * s + yy * c
    r = np.sqrt(xr ** 2 + (yr / q) ** 2)
    prof = np.exp(-b * ((r / r_eff) ** (1.0 / n) - 1.0))
    m = 2 * half + 1
    stamp = prof.reshape(m, o, m, o).sum(axis=(1, 3))
    return stamp / stamp.sum()


def _paste(image, stamp, iy, ix, flux):
    """Add ``flux * stamp`` centred on pixel (iy, ix); return the flux on the frame."""
    half = stamp.shape[0] // 2
    ny, nx = image.shape
    y0, y1 = iy - half, iy + half + 1
    x0, x1 = ix - half, ix + half + 1
    sy0, sx0 = max(0, -y0), max(0, -x0)
    sy1 = stamp.shape[0] - max(0, y1 - ny)
    sx1 = stamp.shape[1] - max(0, x1 - nx)
    if sy1 <= sy0 or sx1 <= sx0:
        return 0.0
    part = stamp[sy0:sy1, sx0:sx1] * flux
    image[max(0, y0):min(ny, y1), max(0, x0):min(nx, x1)] += part.astype(image.dtype)
    return float(part.sum())


def add_star(image, x, y, flux, fwhm):
    """Add a Gaussian star (flux DN/s, FWHM pix); returns the flux on the frame."""
    ix, iy = int(np.rint(x)), int(np.rint(y))
    half = int(np.ceil(4.0 * fwhm)) + 2
    return _paste(image, gaussian_stamp(x - ix, y - iy, fwhm, half), iy, ix, flux)


def add_galaxy(image, x, y, flux, r_eff, n, q, theta, *, extent=6.0, oversample=5,
               psf_fwhm=0.0):
    """Add a Sérsic galaxy truncated at ``extent`` r_eff (stamp normalised to ``flux``)."""
    ix, iy = int(np.rint(x)), int(np.rint(y))
    half = int(np.ceil(extent * r_eff)) + 1
    stamp = sersic_stamp(x - ix, y - iy, r_eff, n, q, theta, half, oversample)
    if psf_fwhm > 0:
        from scipy.signal import fftconvolve
        k = gaussian_stamp(0.0, 0.0, psf_fwhm, int(np.ceil(3 * psf_fwhm)) + 1)
        stamp = fftconvolve(stamp, k, mode="same")
        stamp = np.clip(stamp, 0, None)
        stamp /= stamp.sum()
    return _paste(image, stamp, iy, ix, flux)


def peak_fraction(fwhm, dx=0.0, dy=0.0):
    """Fraction of a star's flux in its brightest pixel (centred at offset dx, dy)."""
    return float(gaussian_stamp(dx, dy, fwhm, int(np.ceil(4 * fwhm)) + 2).max())


def saturating_flux(fwhm, peak_rate_dn_s):
    """Total flux (DN/s) whose centred peak pixel receives ``peak_rate_dn_s``.

    For a star to saturate in time ``t`` on a pixel with well depth ``W`` (linear DN
    above bias), pass ``peak_rate_dn_s = W / t`` (a worst case: off-centre stars are
    fainter in their peak pixel).
    """
    return peak_rate_dn_s / peak_fraction(fwhm)


def add_saturating_stars(rng, image, sources, n, *, fwhm, peak_rate_dn_s,
                         factor=(1.5, 20.0), margin=8):
    """Append ``n`` stars whose centred peak pixel exceeds ``peak_rate_dn_s`` by a factor
    drawn log-uniformly from ``factor``; returns the extended ``sources`` array."""
    ny, nx = image.shape
    rows = []
    start = int(sources["id"].max()) + 1 if len(sources) else 1
    fmin = saturating_flux(fwhm, peak_rate_dn_s)
    for k in range(n):
        x = rng.uniform(margin, nx - 1 - margin)
        y = rng.uniform(margin, ny - 1 - margin)
        flux = fmin * np.exp(rng.uniform(np.log(factor[0]), np.log(factor[1])))
        on = add_star(image, x, y, flux, fwhm)
        rows.append((start + k, x, y, flux, on, "star", fwhm, 0.0, 0.0, 1.0, 0.0, True))
    return np.concatenate([sources, np.array(rows, dtype=SOURCE_DTYPE)])


def make_scene(rng, ny, nx, *, n_stars=50, n_galaxies=20, background=0.5,
               psf_fwhm_pix=2.0, flux_range=(10.0, 1e4), galaxy_flux_range=None,
               r_eff_range=(1.5, 8.0), sersic_n_range=(0.5, 4.0), axis_ratio_range=(0.3, 1.0),
               convolve_galaxies=True, n_saturating=0, saturation_peak_rate=None,
               margin=0):
    """Render a scene: a flat ``background`` (DN/s per pixel) plus stars and galaxies.

    Fluxes are drawn log-uniformly in ``flux_range`` (DN/s, total per source); galaxies
    use ``galaxy_flux_range`` (default ``flux_range``). Stars are pixel-integrated
    Gaussians of FWHM ``psf_fwhm_pix``; galaxies Sérsic profiles (n in
    ``sersic_n_range``; n = 1 an exponential disc), optionally convolved with the PSF.
    ``n_saturating`` extra stars exceed ``saturation_peak_rate`` (DN/s in the peak pixel,
    see :func:`saturating_flux`).

    Returns ``(rate float32 (ny, nx) DN/s, sources SOURCE_DTYPE array)``.
    """
    image = np.zeros((ny, nx), np.float64)
    rows = []
    lo, hi = np.log(flux_range[0]), np.log(flux_range[1])
    glo, ghi = np.log(np.asarray(galaxy_flux_range or flux_range, float))
    sid = 1
    for _ in range(n_stars):
        x = rng.uniform(margin, nx - 1 - margin)
        y = rng.uniform(margin, ny - 1 - margin)
        flux = float(np.exp(rng.uniform(lo, hi)))
        on = add_star(image, x, y, flux, psf_fwhm_pix)
        rows.append((sid, x, y, flux, on, "star", psf_fwhm_pix, 0.0, 0.0, 1.0, 0.0, False))
        sid += 1
    for _ in range(n_galaxies):
        x = rng.uniform(margin, nx - 1 - margin)
        y = rng.uniform(margin, ny - 1 - margin)
        flux = float(np.exp(rng.uniform(glo, ghi)))
        r_eff = float(rng.uniform(*r_eff_range))
        n = float(rng.uniform(*sersic_n_range))
        q = float(rng.uniform(*axis_ratio_range))
        theta = float(rng.uniform(0.0, np.pi))
        on = add_galaxy(image, x, y, flux, r_eff, n, q, theta,
                        psf_fwhm=psf_fwhm_pix if convolve_galaxies else 0.0)
        rows.append((sid, x, y, flux, on, "galaxy", 0.0, r_eff, n, q, theta, False))
        sid += 1
    sources = np.array(rows, dtype=SOURCE_DTYPE)
    if n_saturating:
        if saturation_peak_rate is None:
            raise ValueError("n_saturating needs saturation_peak_rate (DN/s)")
        sources = add_saturating_stars(rng, image, sources, n_saturating, fwhm=psf_fwhm_pix,
                                       peak_rate_dn_s=saturation_peak_rate,
                                       margin=max(margin, 8))
    image += background
    return image.astype(np.float32), sources
