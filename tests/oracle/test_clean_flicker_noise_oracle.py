"""clean_flicker_noise switched on, side by side with jwst 3.0's Detector1Pipeline: the
same raw files (1/f noise added by the simulator), the same synthetic CRDS cache, the
same other steps; rate and rateints compared at the stage-1 thresholds.

Three parameter sets: the official defaults, the other options carried (a scene mask
per integration, per-amplifier fits, the flat applied, the photutils background model,
another clipping level, the histogram fit), and autoparam. Exposures: a NIRCam subarray
with two integrations (1/f along rows), a NIRISS subarray (fast axis along columns), a
NIRCam full frame (four amplifiers, reference pixels on all sides), MIRI imaging with two
integrations (its vertical flicker: medians along columns) and a NIRCam time series
(30 integrations, calwebb_tso1's parameters)."""

import copy

import pytest
import yaml

from tests.oracle.compare import compare, failures
from tests.oracle.official import official_steps, run_official
from tests.oracle.ours import _cli
from webbflow import planning
from webbflow.io import read_product

from tests.oracle.test_detector1_oracle import CONFIG

pytestmark = pytest.mark.oracle

STEMS = {
    "nircam_sub320_2ints": "jw01234001001_02101_00001_nrca1",
    "nircam_full_frame": "jw01234001001_02101_00002_nrca1",
    "niriss_sub256": "jw01234002001_02101_00001_nis",
    "miri_sub256_2ints": "jw01234003001_02101_00001_mirimage",
    "nircam_tso_30ints": "jw01234004001_02101_00001_nrca1",
}

VARIANTS = {
    "defaults": {"skip": False},
    "options": {"skip": False, "single_mask": False, "fit_by_channel": True,
                "apply_flat_field": True, "background_method": "model", "n_sigma": 3.0,
                "fit_histogram": True},
    # the parameters chosen from the data (NIRCam, NIRISS; MIRI keeps the given ones)
    "autoparam": {"skip": False, "autoparam": True},
}


@pytest.fixture(scope="module")
def flicker_program(tmp_path_factory):
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import ExposureSpec

    nircam = dict(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE", filter="F200W",
                  flicker_noise=4.0)
    root = tmp_path_factory.mktemp("flicker")
    simulate_program(root, [
        ExposureSpec(**nircam, readpatt="BRIGHT2", ngroups=5, nints=2, subarray="SUB320",
                     xstart=1, ystart=1, xsize=320, ysize=320, exposure=1, seed=51),
        ExposureSpec(**nircam, readpatt="RAPID", ngroups=4, nints=1, exposure=2, seed=52),
        ExposureSpec(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE", filter="F150W",
                     readpatt="NISRAPID", ngroups=4, nints=1, subarray="SUB256", xstart=1793,
                     ystart=1793, xsize=256, ysize=256, observation=2, seed=53,
                     flicker_noise=4.0),
        ExposureSpec(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                     filter="F770W", readpatt="FAST", ngroups=8, nints=2, subarray="SUB256",
                     xstart=413, ystart=51, xsize=256, ysize=256, observation=3, seed=54),
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_TSIMAGE",
                     filter="F200W", readpatt="RAPID", ngroups=5, nints=30, subarray="SUB64P",
                     xstart=1, ystart=1, xsize=64, ysize=64, tso=True, observation=4, seed=55,
                     flicker_noise=4.0),
    ], seed=5)
    return root


def _config(variant):
    config = copy.deepcopy(CONFIG)
    config["detector1"]["steps"]["clean_flicker_noise"].update(VARIANTS[variant])
    return config


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def side_by_side(request, flicker_program, tmp_path_factory):
    variant = request.param
    ours = tmp_path_factory.mktemp(f"ours_flicker_{variant}")
    official = tmp_path_factory.mktemp(f"official_flicker_{variant}")
    config_path = ours / "config.yaml"
    config = _config(variant)
    config_path.write_text(yaml.safe_dump(config))
    cache = flicker_program / "crds_cache"
    jobs = []
    for uncal in sorted(flicker_program.glob("*_uncal.fits")):
        _cli(None, uncal, ours, cache, extra=["--config", str(config_path)])
        stage = planning.detector1_config(config, read_product(uncal).meta)
        jobs.append((uncal, official_steps(stage)))
    run_official(jobs, cache, official)
    return variant, ours, official


@pytest.mark.parametrize("suffix", ["rate", "rateints"])
@pytest.mark.parametrize("case", sorted(STEMS))
def test_matches_official(side_by_side, case, suffix):
    variant, ours, official = side_by_side
    stem = STEMS[case]
    ours_product = read_product(ours / f"{stem}_{suffix}.fits")
    assert ours_product.meta["cal_step"]["clean_flicker_noise"] == "COMPLETE"
    theirs = read_product(official / f"{stem}_{suffix}.fits")
    assert theirs.meta["cal_step"]["clean_flicker_noise"] == "COMPLETE"
    metrics = compare(ours / f"{stem}_{suffix}.fits", official / f"{stem}_{suffix}.fits")
    assert not failures(metrics), (variant, metrics)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kernels_equal_official_functions(seed):
    """The clipping (with and without the histogram fit), the background median and the
    line medians equal jwst 3.0's
    ``clip_to_background``, ``background_level`` and ``median_clean`` bit for bit."""
    import numpy as np
    from jwst.clean_flicker_noise.background_level import background_level, clip_to_background
    from jwst.clean_flicker_noise.clean_flicker_noise import median_clean

    from webbflow.kernels import flicker
    from webbflow.steps.clean_flicker_noise import _line_correction

    rng = np.random.default_rng(seed)
    image = rng.normal(5.0, 2.0, (2048, 96)).astype(np.float32)
    image[rng.random(image.shape) < 0.02] += 100.0
    image += np.linspace(0.0, 3.0, 2048, dtype=np.float32)[:, None]
    image[rng.random(image.shape) < 0.001] = np.nan
    mask = (rng.random(image.shape) > 0.1) & np.isfinite(image)
    for lower_half in (False, True):
        for lower, upper in ((3.0, 2.0), (2.5, 2.5)):
            theirs = mask.copy()
            clip_to_background(image, theirs, sigma_lower=lower, sigma_upper=upper,
                               lower_half_only=lower_half)
            assert np.array_equal(theirs, flicker.clip_to_background(image, mask, lower, upper,
                                                                    lower_half))
    from webbflow.steps.clean_flicker_noise import histogram_clip

    theirs = mask.copy()
    clip_to_background(image, theirs, sigma_lower=3.0, sigma_upper=2.0, fit_histogram=True)
    assert np.array_equal(theirs, histogram_clip(image, mask, 3.0, 2.0))
    clean = np.nan_to_num(image)
    theirs = mask.copy()
    level = background_level(clean, theirs, background_method="median")
    ours = flicker.clip_to_background(clean, mask, 3.0, 3.0, True)
    assert np.array_equal(theirs, ours)
    assert np.float32(flicker.masked_median(clean, ours)) == level
    for axis_to_correct in (1, 2):
        for by_channel in (False, True):
            expected = median_clean(clean, ours, axis_to_correct, fit_by_channel=by_channel)
            got = _line_correction(clean, ours, axis_to_correct - 1, by_channel)
            assert np.array_equal(expected, got)


def test_autoparam_decisions_equal_official():
    """autoparam's decision tree on a grid of statistics around both exposure types'
    limits: the same background_method and fit_by_channel as jwst 3.0's."""
    import itertools
    import logging

    from jwst.clean_flicker_noise.autoparam import _image_decision_tree

    from webbflow.steps.clean_flicker_noise import _AUTO_LIMITS, _decide

    logging.getLogger("jwst").setLevel(logging.WARNING)
    for limits in _AUTO_LIMITS.values():
        official_limits = dict(limits, max_offset_low_mask=0.02)
        grid = itertools.product((0.05, 0.07, 0.1, 0.2), (0.0, 0.03, 0.07, 0.1),
                                 (0.0, 5e-6, 1e-5, 5e-5, 1e-4, 1e-3),
                                 (float("nan"), 1.0, 3.0, 5.0, float("inf")), (0.01, 0.02, 0.05))
        for stats in grid:
            theirs = {}
            _image_decision_tree(theirs, official_limits, *stats)
            assert _decide(limits, *stats) == theirs, stats
