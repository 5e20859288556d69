"""A synthetic sky: sources at (RA, Dec) with flux densities in Jy, seen through each
exposure's true WCS.

Photometric convention (the one the calibration inverts): a detector pixel of relative
area ``A`` and response ``QE`` records ``QE * (A * SB + point-source flux share) / C``
DN/s per MJy/sr, with ``C = PHOTMJSR`` and the point-source share
``F_Jy / (1e6 * PIXAR_SR)`` spread by the PSF. The FLAT reference is ``QE * A`` (a flat
from uniform illumination sees the pixel areas), so flat-fielded, calibrated pixels are
surface brightness, and drizzling them onto the sky returns ``F_Jy`` for a point source.
"""

import numpy as np

from webbflow.sim.scene import add_galaxy, add_star

SKY_DTYPE = np.dtype([
    ("id", "i4"), ("ra", "f8"), ("dec", "f8"), ("flux_jy", "f8"), ("kind", "U8"),
    ("r_eff_arcsec", "f8"), ("sersic_n", "f8"), ("axis_ratio", "f8"), ("theta", "f8"),
])


def make_sky(rng, ra, dec, radius_arcsec, *, n_stars=150, n_galaxies=40,
             flux_range_jy=(2e-7, 2e-4), r_eff_range_arcsec=(0.1, 0.4)):
    """Sources uniformly in a disc of ``radius_arcsec`` around (ra, dec); fluxes drawn
    log-uniformly in ``flux_range_jy``."""
    n = n_stars + n_galaxies
    r = radius_arcsec * np.sqrt(rng.random(n)) / 3600.0
    phi = rng.uniform(0, 2 * np.pi, n)
    sky = np.zeros(n, SKY_DTYPE)
    sky["id"] = np.arange(1, n + 1)
    sky["dec"] = dec + r * np.sin(phi)
    sky["ra"] = ra + r * np.cos(phi) / np.cos(np.radians(dec))
    lo, hi = np.log(flux_range_jy)
    sky["flux_jy"] = np.exp(rng.uniform(lo, hi, n))
    sky["kind"][:n_stars] = "star"
    sky["kind"][n_stars:] = "galaxy"
    sky["r_eff_arcsec"][n_stars:] = rng.uniform(*r_eff_range_arcsec, n_galaxies)
    sky["sersic_n"][n_stars:] = rng.uniform(0.7, 3.0, n_galaxies)
    sky["axis_ratio"] = 1.0
    sky["axis_ratio"][n_stars:] = rng.uniform(0.4, 1.0, n_galaxies)
    sky["theta"][n_stars:] = rng.uniform(0, np.pi, n_galaxies)
    return sky


def render(sky, wcs, shape, *, photmjsr, pixar_sr, area, background_mjysr, psf_fwhm_pix,
           pixel_scale_arcsec):
    """The count rate (DN/s, before the pixel response) that ``sky`` produces on an
    image of ``shape`` whose true WCS is ``wcs``. ``area`` is the relative pixel-area
    map of the image's pixels. Returns (rate float32, positions (n, 2) 0-based x, y)."""
    ny, nx = shape
    x, y = wcs.invert(sky["ra"], sky["dec"], with_bounding_box=False)
    image = np.zeros(shape, np.float64)
    to_dn = 1.0 / (1e6 * pixar_sr * photmjsr)
    margin = 12
    for k in np.flatnonzero((x > -margin) & (x < nx - 1 + margin) &
                            (y > -margin) & (y < ny - 1 + margin)):
        flux = sky["flux_jy"][k] * to_dn
        if sky["kind"][k] == "star":
            add_star(image, x[k], y[k], flux, psf_fwhm_pix)
        else:
            add_galaxy(image, x[k], y[k], flux, sky["r_eff_arcsec"][k] / pixel_scale_arcsec,
                       sky["sersic_n"][k], sky["axis_ratio"][k], sky["theta"][k],
                       psf_fwhm=psf_fwhm_pix)
    image += area * (background_mjysr / photmjsr)
    return image.astype(np.float32), np.stack([x, y], axis=-1)
