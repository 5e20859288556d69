"""clean_flicker_noise against the truth: the simulator's 1/f noise, the step's options
that are errors, and the rate with the step on and off."""

import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

from webbflow.errors import WebbflowError
from webbflow.io import read_product
from webbflow.io.truth import read_truth
from webbflow.sim import detector as sim_detector

from tests.oracle.test_detector1_oracle import CONFIG


def test_flicker_noise_off_by_default_and_on_its_own_stream():
    """Off: the ramp is the one simulated without the option. On: the only change is the
    1/f noise (every other deviate is the same), striped along the fast axis (rows for a
    fast axis along x, columns for NIRISS) and zero-mean per amplifier and frame."""
    for name, shape in (("NRCA1", (64, 96)), ("NIS", (96, 64))):
        det = sim_detector.make_detector(np.random.default_rng(3), "NIRCAM" if name != "NIS"
                                         else "NIRISS", name, ny=shape[0], nx=shape[1])
        rate = np.full(shape, 2.0, np.float32)
        args = dict(ngroups=3, nints=1, frame_time=0.5, cosmic_ray_rate=0.0, quantize=False)
        base, _, _ = sim_detector.simulate_exposure(np.random.default_rng(9), rate, det, **args)
        off, _, _ = sim_detector.simulate_exposure(np.random.default_rng(9), rate, det,
                                                   flicker_noise=0.0, **args)
        on, _, _ = sim_detector.simulate_exposure(np.random.default_rng(9), rate, det,
                                                  flicker_noise=5.0, **args)
        assert np.array_equal(base, off)
        noise = (on - off)[0].astype(np.float64)     # (ngroups, ny, nx), one frame a group
        assert 2.0 < noise.std() < 6.0
        fast = 2 if abs(det.fastaxis) == 1 else 1
        lines = noise.mean(axis=fast)        # one value per line read along the fast axis
        assert lines.var() > 0.3 * noise.var(), (name, lines.var(), noise.var())
        assert noise.mean(axis=3 - fast).var() < 0.1 * noise.var()
        assert np.all(np.abs(noise.mean(axis=(1, 2))) < 1e-3)


def _detector1(params, exp_type="NRC_IMAGE", instrument="NIRCAM"):
    from webbflow.dqflags import PIXEL
    from webbflow.pipelines.detector1 import Detector1, Ramp

    meta = {"instrument": {"name": instrument, "detector": "NRCA1"},
            "exposure": {"type": exp_type}, "subarray": {"name": "FULL", "slowaxis": 2}}
    ramp = Ramp(meta=meta, data=None, gdq=np.zeros((1, 3, 8, 8), np.uint8),
                pdq=np.zeros((8, 8), np.uint32), zeroframe=None, int_times=None)
    config = copy.deepcopy(CONFIG["detector1"])
    config["steps"]["clean_flicker_noise"].update(params)
    return Detector1(ramp, {}, config, PIXEL, source="x_uncal.fits")


@pytest.mark.parametrize("params, named", [
    ({"save_mask": True}, "save_mask"), ({"save_noise": True}, "save_noise"),
    ({"save_background": True}, "save_background"),
    ({"background_method": "median_image"}, "median_image"),
])
def test_options_not_carried_are_one_clear_error(params, named):
    with pytest.raises(WebbflowError, match=f"clean_flicker_noise: .*{named}.* not implemented"):
        _detector1({"skip": False, **params})
    _detector1({"skip": True, **params})  # switched off: nothing is asked


def test_exposure_types_not_carried():
    with pytest.raises(WebbflowError, match="EXP_TYPE NRS_FIXEDSLIT not implemented"):
        _detector1({"skip": False}, exp_type="NRS_FIXEDSLIT")
    with pytest.raises(WebbflowError, match="mask_science_regions for MIR_IMAGE not impl"):
        _detector1({"skip": False, "mask_science_regions": True}, exp_type="MIR_IMAGE",
                   instrument="MIRI")
    _detector1({"skip": False}, exp_type="MIR_IMAGE", instrument="MIRI")
    # no effect on near-IR imaging, as officially
    _detector1({"skip": False, "mask_science_regions": True})
    # where the official skips the step (status FAILED), so do we: no error
    _detector1({"skip": False, "fit_method": "fft"})
    _detector1({"skip": False}, exp_type="MIR_LRS-FIXEDSLIT", instrument="MIRI")


@pytest.fixture(scope="module")
def flicker_rates(tmp_path_factory):
    """A NIRCam (fast axis along rows) and a NIRISS (along columns) subarray inside the
    detector (no reference pixels) with 8 DN of 1/f noise per frame, a sparse field; our
    rates with clean_flicker_noise off and on."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import ExposureSpec

    root = tmp_path_factory.mktemp("flicker_truth")
    scene = dict(n_stars=15, n_galaxies=2)
    simulate_program(root, [
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE",
                     filter="F200W", readpatt="RAPID", ngroups=6, nints=1, subarray="SUB320",
                     xstart=801, ystart=801, xsize=320, ysize=320, seed=61, scene=scene,
                     flicker_noise=8.0),
        ExposureSpec(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE",
                     filter="F150W", readpatt="NISRAPID", ngroups=6, nints=1,
                     subarray="SUB256", xstart=1001, ystart=1001, xsize=256, ysize=256,
                     observation=2, seed=62, scene=scene, flicker_noise=8.0),
    ], seed=6)
    for name, skip in (("off", True), ("on", False)):
        config = copy.deepcopy(CONFIG)
        config["detector1"]["steps"]["clean_flicker_noise"]["skip"] = skip
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        for uncal in sorted(root.glob("*_uncal.fits")):
            result = subprocess.run(
                [sys.executable, "-m", "webbflow.cli", str(uncal), "--outdir", str(root / name),
                 "--crds-path", str(root / "crds_cache"), "--crds-context", "jwst_0001.pmap",
                 "--config", str(path)], capture_output=True, text=True, timeout=1800)
            assert result.returncode == 0, result.stderr[-3000:]
    return root


def _residuals(root, name, stem):
    truth = read_truth(root / "truth" / f"{stem}_truth.fits")
    rate = read_product(root / name / f"{stem}_rate.fits")
    sci, err, dq = rate["data"], rate["err"], rate["dq"]
    clean = (dq == 0) & np.isfinite(sci) & (err > 0) & ~truth["saturated_mask"]
    residual = np.where(clean, sci - truth["rate"], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lines = {0: np.nanmedian(residual, axis=1), 1: np.nanmedian(residual, axis=0)}
    z = ((sci - truth["rate"]) / err)[clean]
    return rate.meta["cal_step"]["clean_flicker_noise"], lines, z


@pytest.mark.parametrize("stem, striped", [("jw01234001001_02101_00001_nrca1", 0),
                                           ("jw01234002001_02101_00001_nis", 1)])
def test_flicker_removed_and_rate_unbiased(flicker_rates, stem, striped):
    """The residual's stripes along the fast read direction (the median of rate - truth
    along each row for NIRCam, each column for NIRISS) drop to less than half; the other
    direction does not get worse; (rate - true rate)/ERR stays centred on 0 and narrows."""
    status_off, lines_off, z_off = _residuals(flicker_rates, "off", stem)
    status_on, lines_on, z_on = _residuals(flicker_rates, "on", stem)
    assert (status_off, status_on) == ("SKIPPED", "COMPLETE")
    stripes_off, stripes_on = np.nanstd(lines_off[striped]), np.nanstd(lines_on[striped])
    assert stripes_on < 0.5 * stripes_off, (stripes_on, stripes_off)
    other_off, other_on = np.nanstd(lines_off[1 - striped]), np.nanstd(lines_on[1 - striped])
    assert other_on < 1.1 * other_off, (other_on, other_off)

    def width(z):
        return 1.4826 * np.median(np.abs(z - np.median(z)))

    assert abs(np.median(z_on)) < 0.1, np.median(z_on)
    assert abs(np.median(z_on) - np.median(z_off)) < 0.05, (np.median(z_on), np.median(z_off))
    assert width(z_on) < width(z_off)


def _tiny_ramp_pipeline(params, tmp_path=None, mask=None):
    """An 8x16 ramp of 3 groups whose group differences carry row stripes (the fast
    axis along x), and a user mask of it when ``mask`` is given."""
    pipeline = _detector1({"skip": False, **params})
    pipeline.ramp.meta["subarray"]["name"] = "SUB8"
    rng = np.random.default_rng(4)
    ny, nx = 8, 16
    stripes = rng.normal(0.0, 5.0, (3, ny, 1)).astype(np.float32)
    sky = rng.normal(0.0, 0.01, (3, ny, nx)).astype(np.float32)
    data = np.cumsum(10.0 + sky + stripes, axis=0).astype(np.float32)[None]
    pipeline.ramp.data = data.copy()
    pipeline.ramp.gdq = np.zeros(data.shape, np.uint8)
    pipeline.ramp.pdq = np.zeros((ny, nx), np.uint32)
    if mask is not None:
        from astropy.io import fits

        path = tmp_path / "mask.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(mask.astype(np.uint8), name="SCI")]
                     ).writeto(path)
        pipeline.steps["clean_flicker_noise"]["user_mask"] = str(path)
    return pipeline, data


def test_fft_on_imaging_is_skipped_as_officially():
    pipeline, data = _tiny_ramp_pipeline({"fit_method": "fft"})
    assert pipeline.do_clean_flicker_noise() == "FAILED"
    assert np.array_equal(pipeline.ramp.data, data)


def test_user_mask_cleans_each_group_difference(tmp_path):
    """A user mask replaces the draft rate: each cleaned group difference keeps its
    background level (the median of the difference) and loses its row stripes; group 0
    is left as it is. A mask of the wrong shape: the step is skipped (FAILED) and the
    data left alone."""
    pipeline, data = _tiny_ramp_pipeline({"n_sigma": 0.0}, tmp_path, np.ones((8, 16), bool))
    assert pipeline.do_clean_flicker_noise() == "COMPLETE"
    out = pipeline.ramp.data[0]
    assert np.array_equal(out[0], data[0, 0])
    diffs = np.diff(out, axis=0)
    assert np.abs(np.median(diffs, axis=2) - np.median(diffs, axis=(1, 2))[:, None]).max() < 1e-3
    before = np.median(np.diff(data[0], axis=0), axis=(1, 2))
    assert np.abs(np.median(diffs, axis=(1, 2)) - before).max() < 1e-3
    (tmp_path / "wrong").mkdir()
    pipeline, data = _tiny_ramp_pipeline({}, tmp_path / "wrong", np.ones((4, 16), bool))
    assert pipeline.do_clean_flicker_noise() == "FAILED"
    assert np.array_equal(pipeline.ramp.data, data)


def test_switched_on_it_takes_the_whole_cube_path():
    """The step needs every group's whole frame after jump and a draft rate: an exposure
    that asks for it is not streamed; switched off, streaming is as before."""
    assert _detector1({"skip": True}).streamable()
    assert not _detector1({"skip": False}).streamable()


def test_flat_reference_asked_for_only_when_used():
    from webbflow import planning

    meta = {"instrument": {"name": "NIRCAM", "detector": "NRCA1"},
            "exposure": {"type": "NRC_IMAGE"}}

    def reftypes(**params):
        steps = copy.deepcopy(CONFIG["detector1"]["steps"])
        steps["clean_flicker_noise"].update(params)
        return planning.detector1_reftypes(meta, steps)

    assert "flat" not in reftypes(skip=True, apply_flat_field=True)
    assert "flat" not in reftypes(skip=False)
    assert "flat" in reftypes(skip=False, apply_flat_field=True)
    assert "flat" in reftypes(skip=False, autoparam=True)
