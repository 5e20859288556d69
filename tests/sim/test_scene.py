"""Tests of the synthetic scene: flux normalisation, positions, determinism."""

import numpy as np
import pytest

from webbflow.sim import scene as S


def test_star_flux_normalisation():
    img = np.zeros((64, 64))
    for fwhm in (1.2, 2.0, 3.5):
        img[...] = 0
        on = S.add_star(img, 31.3, 30.7, 1234.5, fwhm)
        assert abs(img.sum() / 1234.5 - 1) < 1e-3
        assert abs(on / 1234.5 - 1) < 1e-12
        # centroid at the requested position (pixel-phase bias of the pixel-integrated
        # profile is a few 1e-3 pix for undersampled PSFs)
        yy, xx = np.mgrid[0:64, 0:64]
        assert abs((img * xx).sum() / img.sum() - 31.3) < 5e-3
        assert abs((img * yy).sum() / img.sum() - 30.7) < 5e-3


def test_galaxy_flux_normalisation_and_shape():
    img = np.zeros((128, 128))
    S.add_galaxy(img, 64.2, 63.6, 500.0, 5.0, 1.0, 0.5, 0.3, psf_fwhm=2.0)
    assert abs(img.sum() / 500.0 - 1) < 1e-3
    # half the light within ~r_eff (ellipse), within a PSF-broadened tolerance
    img[...] = 0
    S.add_galaxy(img, 64.0, 64.0, 1.0, 6.0, 1.0, 1.0, 0.0, extent=12.0)
    yy, xx = np.mgrid[0:128, 0:128]
    r = np.hypot(xx - 64, yy - 64)
    assert abs(img[r < 6.0].sum() - 0.5) < 0.03


def test_make_scene():
    rng = np.random.default_rng(3)
    img, src = S.make_scene(rng, 200, 180, n_stars=20, n_galaxies=5, background=0.25,
                            psf_fwhm_pix=2.0, flux_range=(50, 5000), n_saturating=2,
                            saturation_peak_rate=1000.0)
    assert img.dtype == np.float32 and img.shape == (200, 180)
    assert len(src) == 27 and src["saturating"].sum() == 2
    assert set(src["kind"]) == {"star", "galaxy"}
    # total = background + everything that landed on the frame
    assert abs(img.sum() - (0.25 * 200 * 180 + src["flux_in_image"].sum())) < 1e-4 * img.sum()
    # the saturating stars reach the requested peak rate
    for s in src[src["saturating"]]:
        iy, ix = int(round(s["y"])), int(round(s["x"]))
        assert img[iy - 1:iy + 2, ix - 1:ix + 2].max() > 1000.0
    img2, src2 = S.make_scene(np.random.default_rng(3), 200, 180, n_stars=20, n_galaxies=5,
                              background=0.25, psf_fwhm_pix=2.0, flux_range=(50, 5000),
                              n_saturating=2, saturation_peak_rate=1000.0)
    np.testing.assert_array_equal(img, img2)
    np.testing.assert_array_equal(src, src2)


def test_saturating_flux():
    f = S.saturating_flux(2.0, 100.0)
    img = np.zeros((31, 31))
    S.add_star(img, 15.0, 15.0, f, 2.0)
    assert img.max() == pytest.approx(100.0, rel=1e-9)
