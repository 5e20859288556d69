"""Spectrum plots for the report, on x1d / x1dints / c1d files written by the official
stdatamodels models: every spectrum is plotted, flagged points are left out, one hot
pixel does not set the y-limits."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from webbflow.errors import WebbflowError
from webbflow.io.preview import write_previews
from webbflow.io.spectra import robust_limits, spectrum_panels, spectrum_preview

N = 200
WAVE = np.linspace(1.0, 5.0, N)


def _spec(flux, dq=None, source=1, slit="S1", order=1):
    table = np.zeros(N, dtype=datamodels.SpecModel().get_dtype("spec_table"))
    table["WAVELENGTH"] = WAVE
    table["FLUX"] = flux
    table["FLUX_ERROR"] = 0.05 * np.abs(flux)
    table["SURF_BRIGHT"] = flux
    table["DQ"] = 0 if dq is None else dq
    spec = datamodels.SpecModel(spec_table=table)
    spec.spec_table.columns["wavelength"].unit = "um"
    spec.spec_table.columns["flux"].unit = "Jy"
    spec.spec_table.columns["flux_error"].unit = "Jy"
    spec.source_id, spec.name, spec.spectral_order = source, slit, order
    return spec


def _truth(k):
    """Spectrum k: a slope plus a Gaussian line, around 1e-3 Jy."""
    return 1e-3 * (1.0 + 0.1 * k + 0.2 * WAVE / 5.0 + 0.5 * np.exp(-0.5 * ((WAVE - 3.0) / 0.05) ** 2))


@pytest.fixture
def x1d(tmp_path):
    """Three spectra (MOS-like: two sources, the second in two orders), with NaN
    points, DO_NOT_USE points (finite values that must not be plotted), a point flagged
    only as a non-blocking bit (kept), and a hot pixel."""
    model = datamodels.MultiSpecModel()
    model.meta.exposure.type = "NRS_MSASPEC"
    specs = []
    for k, (source, slit, order) in enumerate([(11, "S11", 1), (12, "S12", 1), (12, "S12", 2)]):
        flux = _truth(k)
        dq = np.zeros(N, np.uint32)
        if k == 0:
            flux[[5, 6, 7]] = np.nan
            flux[[50, 51]] = 99.0            # flagged garbage: finite but DO_NOT_USE
            dq[[50, 51]] = 1 | 2             # DO_NOT_USE + SATURATED
            dq[60] = 4                       # JUMP_DET only: still plotted
            flux[120] = 1e3                  # a hot pixel, unflagged
        specs.append(_spec(flux, dq, source, slit, order))
        model.spec.append(specs[-1])
    path = tmp_path / "jw01345062001_03101_00001_nrs1_x1d.fits"
    model.save(path)
    return path


def test_every_spectrum_has_its_panel_with_table_units(x1d):
    panels = spectrum_panels(x1d)
    assert [p.title for p in panels] == ["source 11, slit S11, order 1",
                                        "source 12, slit S12, order 1",
                                        "source 12, slit S12, order 2"]
    for k, panel in enumerate(panels):
        assert len(panel.lines) == 1
        assert panel.xlabel == "wavelength [um]" and panel.ylabel == "flux [Jy]"
        line = panel.lines[0]
        if k:
            assert np.array_equal(line.x, WAVE)
            assert np.allclose(line.y, _truth(k), rtol=0, atol=1e-15)
            assert np.allclose(line.err, 0.05 * _truth(k))


def test_nan_and_do_not_use_points_are_left_out(x1d):
    line = spectrum_panels(x1d)[0].lines[0]
    left_out = {5, 6, 7, 50, 51}
    kept = np.array([i for i in range(N) if i not in left_out])
    assert np.array_equal(line.index, kept)
    assert np.array_equal(line.x, WAVE[kept])
    assert np.isfinite(line.y).all() and line.y.max() == 1e3    # the hot pixel is data
    assert 99.0 not in line.y
    assert 60 in line.index                                     # JUMP_DET alone is usable


def test_y_limits_ignore_a_single_hot_pixel(x1d):
    panel = spectrum_panels(x1d)[0]
    clean = np.delete(_truth(0), [5, 6, 7, 50, 51, 120])
    lo, hi = panel.ylim
    # the limits bracket the true spectrum's bulk, line peak (1.5e-3 Jy) included,
    # and stay far below the 1e3 Jy pixel
    assert lo < clean.min() + 1e-5 and lo > 0.9 * clean.min() - 1e-4
    assert clean.max() < hi < 1.2 * clean.max()           # the line peak is not cut
    assert robust_limits([np.nan, np.nan]) is None


def test_png_is_written_and_write_previews_plots_spectra(x1d, tmp_path):
    png = tmp_path / "direct.png"
    spectrum_preview(png, x1d)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    outputs = [("x1d", str(x1d)), ("x1d_preview", str(x1d.with_suffix(".png")))]
    write_previews(outputs, {})
    assert x1d.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_x1dints_shows_first_and_median_integration_and_white_light(tmp_path):
    from jwst.datamodels.utils.tso_multispec import make_tso_specmodel

    nints = 8
    depth = np.ones(nints)
    depth[3:6] = 0.99                                   # a 1 % transit
    per_int = []
    for i in range(nints):
        flux = _truth(0) * depth[i]
        dq = np.zeros(N, np.uint32)
        if i == 2:
            flux[10] = 50.0                             # a cosmic ray, flagged
            dq[10] = 1
        per_int.append(_spec(flux, dq))
    tso = make_tso_specmodel(per_int)
    tso.spec_table["MJD-AVG"] = 60000.0 + 0.01 * np.arange(nints)
    tso.source_id, tso.name, tso.spectral_order = 1, "S1600A1", 1
    model = datamodels.TSOMultiSpecModel()
    model.spec.append(tso)
    path = tmp_path / "jw01366004001_04101_00001-seg001_nrs1_x1dints.fits"
    model.save(path)

    spectrum, curve = spectrum_panels(path)
    assert [line.label for line in spectrum.lines] == ["integration 1", f"median of {nints} integrations"]
    first, median = spectrum.lines
    assert np.array_equal(first.x, WAVE) and np.allclose(first.y, _truth(0))
    assert np.allclose(median.y, _truth(0) * np.median(depth))
    assert curve.xlabel == "MJD (mid-integration)"
    assert np.allclose(curve.lines[0].x, 60000.0 + 0.01 * np.arange(nints))
    # white light over the bins usable in every integration (bin 10 is not, in int 3)
    expected = np.delete(_truth(0), 10).mean() * depth
    assert np.allclose(curve.lines[0].y, expected, rtol=1e-12)
    assert "199 bins" in curve.ylabel
    spectrum_preview(tmp_path / "tso.png", path)
    assert (tmp_path / "tso.png").stat().st_size > 0


def test_c1d_uses_its_error_column(tmp_path):
    table = np.zeros(N, dtype=datamodels.CombinedSpecModel().get_dtype("spec_table"))
    table["WAVELENGTH"], table["FLUX"], table["ERROR"] = WAVE, _truth(1), 1e-5
    table["DQ"][:4] = 1
    model = datamodels.CombinedSpecModel(spec_table=table)
    path = tmp_path / "jw01345-o062_s00011_nirspec_f170lp-g235m_c1d.fits"
    model.save(path)
    (panel,) = spectrum_panels(path)
    assert np.array_equal(panel.lines[0].x, WAVE[4:])
    assert np.allclose(panel.lines[0].err, 1e-5)


def test_a_file_without_spectra_is_one_clear_error(tmp_path):
    path = tmp_path / "x_x1d.fits"
    datamodels.ImageModel(np.zeros((4, 4), np.float32)).save(path)
    png = tmp_path / "x_x1d.png"
    with pytest.raises(WebbflowError, match="no EXTRACT1D or COMBINE1D spectrum table"):
        spectrum_preview(png, path)
    assert not png.exists()
