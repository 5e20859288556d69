"""The compiled pixel map (webbflow.wcs.compiled + kernels/transform.py) against astropy's
evaluation of the same gwcs chain: imaging WCSs (full frame, a subarray with a filter
offset and velocity aberration, MIRI's parity) mapped onto a resample output grid and
onto another exposure's detector (the inverse distortion polynomials)."""

import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.modeling import models

from webbflow.sim.optics import aperture, synthetic_distortion
from webbflow.wcs import output as output_module
from webbflow.wcs.compiled import Unsupported, compile_chain
from webbflow.wcs.imaging import imaging_wcs
from webbflow.wcs.output import output_wcs, pixel_map

POINTING = {"roll_ref": 33.0, "ra_ref": 53.16, "dec_ref": -27.78}


def _exposure(detector, shape, ra_offset=0.0, **kwargs):
    distortion = synthetic_distortion(np.random.default_rng(3), detector, shape)
    ap = aperture(detector)
    wcsinfo = dict(POINTING, ra_ref=POINTING["ra_ref"] + ra_offset, v2_ref=ap.v2_ref,
                   v3_ref=ap.v3_ref)
    return imaging_wcs(wcsinfo, distortion, shape=shape, **kwargs)


def _astropy(input_wcs, output, shape):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return output_module._astropy_map(input_wcs.forward_transform, output.backward_transform,
                                      xx, yy)


def _grid(input_wcs, shape):
    from webbflow.steps.assign_wcs import s_region

    wcsinfo = dict(POINTING, v2_ref=0.0, v3_ref=0.0, v3yangle=0.0, vparity=-1)
    return output_wcs([s_region(input_wcs)], input_wcs, wcsinfo)[0]


@pytest.mark.parametrize("case", ["full frame", "subarray", "miri"])
def test_compiled_pixel_map_equals_astropy(case, caplog):
    if case == "full frame":
        shape = (256, 256)
        wcs = _exposure("NRCA1", shape)
    elif case == "subarray":
        shape = (160, 200)
        wcs = _exposure("NRCA1", shape, substrt=(301, 41), offset=(0.234, -0.212),
                        va_scale=1.00003)
    else:
        shape = (128, 144)
        wcs = _exposure("MIRIMAGE", shape)
    grid = _grid(wcs, shape)
    with caplog.at_level(logging.INFO, logger="webbflow.resample"):
        compiled = pixel_map(wcs, grid, shape)
    assert not caplog.records   # no fallback
    expected = _astropy(wcs, grid, shape)
    assert np.abs(compiled - expected).max() < 1e-8
    # onto another exposure's detector: through its inverse distortion polynomials
    other = _exposure("NRCA1", (256, 256), ra_offset=2e-5)
    compiled = pixel_map(wcs, other, shape)
    assert np.abs(compiled - _astropy(wcs, other, shape)).max() < 1e-7


def test_unsupported_models_fall_back_to_astropy(caplog):
    """A chain with an operator the program does not have: astropy evaluates it."""
    wcs = _exposure("NRCA1", (64, 64))
    grid = _grid(wcs, (64, 64))
    bent = wcs.forward_transform | (models.Shift(1e-6) + models.Identity(1)) & models.Identity(1)
    with pytest.raises(Unsupported):
        compile_chain(bent, grid.backward_transform)

    class Bent:
        forward_transform = bent
        backward_transform = grid.backward_transform

    with caplog.at_level(logging.INFO, logger="webbflow.resample"):
        result = pixel_map(Bent, grid, (64, 64))
    assert "pixel map by astropy" in caplog.text
    assert np.array_equal(result, _astropy(Bent, grid, (64, 64)))


def test_a_wrong_program_is_caught(monkeypatch, caplog):
    """The sparse check against astropy guards the compiled map: a program that puts
    pixels off by 1e-5 px is replaced by astropy's evaluation."""
    wcs = _exposure("NRCA1", (64, 64))
    grid = _grid(wcs, (64, 64))
    import webbflow.wcs.compiled as compiled_module   # pixel_map imports it from there

    real = compiled_module.compile_chain

    def skewed(*transforms):
        rows, params, nreg, inputs, outputs = real(*transforms)
        shift = np.flatnonzero(rows[:, 0] == 0)[-1]     # the last shift: output pixels
        params = params.copy()
        params[rows[shift, 7]] += 1e-5
        return rows, params, nreg, inputs, outputs

    monkeypatch.setattr(compiled_module, "compile_chain", skewed)
    with caplog.at_level(logging.WARNING, logger="webbflow.resample"):
        result = pixel_map(wcs, grid, (64, 64))
    assert "disagrees" in caplog.text
    assert np.array_equal(result, _astropy(wcs, grid, (64, 64)))


REAL_IMAGING_DISTORTIONS = [
    ("crds_cache/references/jwst/nircam/jwst_nircam_distortion_0090.asdf", (2048, 2048)),
    ("crds_cache/references/jwst/nircam/jwst_nircam_distortion_0096.asdf", (2048, 2048)),
    ("crds_cache/references/jwst/niriss/jwst_niriss_distortion_0010.asdf", (2048, 2048)),
    ("ref_other/crds_testdata_niriss_ref_distortion.asdf", (2048, 2048)),
    ("crds_cache/references/jwst/miri/jwst_miri_distortion_0023.asdf", (1024, 1032)),
    ("crds_cache/references/jwst/miri/jwst_miri_distortion_0028.asdf", (1024, 1032)),
    ("ref_other/miricoord_flt9/jwst_miri_imager_distortion_flt9.asdf", (1024, 1032)),
]


@pytest.mark.parametrize("relative, full_shape", REAL_IMAGING_DISTORTIONS,
                         ids=[Path(r).stem for r, _ in REAL_IMAGING_DISTORTIONS])
def test_compiled_pixel_map_of_real_distortions(relative, full_shape, caplog):
    """Flight DISTORTION models (MIRI's with 1-D column/row polynomials and a bounding
    box) compile, and map as astropy does; full frame and a subarray."""
    import asdf

    from tests.realdata import real_file

    with asdf.open(real_file(relative), lazy_load=False, memmap=False) as af:
        distortion = af.tree["model"]
    wcsinfo = dict(POINTING, v2_ref=float(distortion(full_shape[1] / 2, full_shape[0] / 2)[0]),
                   v3_ref=float(distortion(full_shape[1] / 2, full_shape[0] / 2)[1]))
    for shape, substrt in ((full_shape, (1, 1)), ((96, 128), (401, 301))):
        wcs = imaging_wcs(wcsinfo, distortion, shape=shape, substrt=substrt)
        grid = _grid(wcs, shape)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="webbflow.resample"):
            compiled = pixel_map(wcs, grid, shape)
        assert not caplog.records   # compiled, no fallback
        expected = _astropy(wcs, grid, shape)
        inside = np.isfinite(compiled[..., 0])
        assert np.abs(compiled[inside] - expected[inside]).max() < 1e-8
        # pixels outside the WCS's bounding box are not mapped, as officially
        (x0, x1), (y0, y1) = wcs.bounding_box.bounding_box(order="F")
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        assert np.array_equal(inside, (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1))
