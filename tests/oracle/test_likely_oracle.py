"""ramp_fit ``algorithm: LIKELY`` side by side with jwst 3.0's Detector1Pipeline (ramp_fit
algorithm LIKELY): the same raw files, the same synthetic CRDS cache, the same other
steps; rate and rateints compared array by array (SCI, ERR, DQ, VAR_POISSON,
VAR_RNOISE), the rate against the simulated truth, and the < 4 groups fallback to OLS_C.
The fit kernels also against stcal's ``likely_ramp_fit`` on random cubes with edge cases.

Exposures: a NIRCam subarray with frame averaging (BRIGHT2: the ZEROFRAME becomes a
resultant of its own), cosmic rays and three integrations; a MIRI subarray with two
integrations; a 5-group NIRCam RAPID ramp; a 3-group NIRISS ramp (OLS_C runs instead); a
NIRCam time series (20 integrations, calwebb_tso1's parameters)."""

import copy

import numpy as np
import pytest
import yaml
from astropy.io import fits

from tests.oracle.compare import rate_pulls
from tests.oracle.official import official_steps, run_official
from tests.oracle.ours import _cli
from tests.oracle.test_detector1_oracle import CONFIG
from webbflow import planning
from webbflow.io import read_product

pytestmark = pytest.mark.oracle

STEMS = {
    "nircam_bright2_3ints": "jw01234001001_02101_00001_nrca1",
    "nircam_rapid_5_groups": "jw01234001001_02101_00002_nrca1",
    "miri_fast_2ints": "jw01234003001_02101_00001_mirimage",
    "niriss_3_groups_fallback": "jw01234002001_02101_00001_nis",
    "nircam_tso_20ints": "jw01234004001_02101_00001_nrca1",
}
ARRAYS = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE")


@pytest.fixture(scope="module")
def likely_program(tmp_path_factory):
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import ExposureSpec

    nircam = dict(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE", filter="F200W",
                  subarray="SUB160", xstart=1, ystart=1, xsize=160, ysize=160)
    root = tmp_path_factory.mktemp("likely")
    simulate_program(root, [
        ExposureSpec(**nircam, readpatt="BRIGHT2", ngroups=6, nints=3, exposure=1, seed=61,
                     zeroframe=True),
        ExposureSpec(**nircam, readpatt="RAPID", ngroups=5, nints=1, exposure=2, seed=62),
        ExposureSpec(instrument="NIRISS", detector="NIS", exp_type="NIS_IMAGE", filter="F150W",
                     readpatt="NISRAPID", ngroups=3, nints=1, subarray="SUB64", xstart=1985,
                     ystart=1985, xsize=64, ysize=64, observation=2, seed=63),
        ExposureSpec(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                     filter="F770W", readpatt="FAST", ngroups=8, nints=2, subarray="SUB128",
                     xstart=1, ystart=889, xsize=136, ysize=128, observation=3, seed=64),
        # time series: calwebb_tso1's parameters (planning applies the TSO overrides)
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_TSIMAGE",
                     filter="F210M", readpatt="RAPID", ngroups=6, nints=20, subarray="SUB64P",
                     xstart=1, ystart=1, xsize=64, ysize=64, tso=True, observation=4, seed=65,
                     zeroframe=True),
    ], seed=6)
    return root


def _config(algorithm, save_opt=False):
    config = copy.deepcopy(CONFIG)
    config["detector1"]["steps"]["ramp_fit"].update(algorithm=algorithm, save_opt=save_opt)
    return config


def _ours(program, outdir, algorithm, save_opt=False):
    config = _config(algorithm, save_opt)
    path = outdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = []
    for uncal in sorted(program.glob("*_uncal.fits")):
        _cli(None, uncal, outdir, program / "crds_cache", extra=["--config", str(path)])
        stage = planning.detector1_config(config, read_product(uncal).meta)
        steps = official_steps(stage)
        steps["ramp_fit"] = {"algorithm": stage["steps"]["ramp_fit"]["algorithm"],
                             "save_opt": save_opt}
        jobs.append((uncal, steps))
    return jobs


@pytest.fixture(scope="module")
def side_by_side(likely_program, tmp_path_factory):
    ours = tmp_path_factory.mktemp("ours_likely")
    official = tmp_path_factory.mktemp("official_likely")
    jobs = _ours(likely_program, ours, "LIKELY", save_opt=True)
    run_official(jobs, likely_program / "crds_cache", official)
    return likely_program, ours, official


def agreement(ours_path, official_path):
    """Per array: the fraction of pixels bit-identical (NaN = NaN) and the largest
    relative difference where both are finite."""
    out = {}
    with fits.open(ours_path) as a, fits.open(official_path) as b:
        for name in ARRAYS:
            x, y = a[name].data, b[name].data
            assert x.shape == y.shape and x.dtype == y.dtype, name
            same = (x == y)
            if x.dtype.kind == "f":
                same |= np.isnan(x) & np.isnan(y)
                both = np.isfinite(x) & np.isfinite(y)
                scale = np.maximum(np.abs(y[both].astype(np.float64)), 1e-30)
                rel = np.abs(x[both].astype(np.float64) - y[both]) / scale
                out[f"{name}_maxrel"] = float(rel.max(initial=0.0))
            out[f"{name}_identical"] = float(np.mean(same))
    return out


@pytest.mark.parametrize("suffix", ["rate", "rateints"])
@pytest.mark.parametrize("case", sorted(STEMS))
def test_matches_official(side_by_side, case, suffix):
    """Bit-identical to jwst 3.0 array by array (every pixel of SCI, ERR, DQ, VAR_*)."""
    _, ours, official = side_by_side
    stem = STEMS[case]
    metrics = agreement(ours / f"{stem}_{suffix}.fits", official / f"{stem}_{suffix}.fits")
    bad = {k: v for k, v in metrics.items() if k.endswith("_identical") and v < 1.0}
    assert not bad, metrics


def _ours_ols(program, stem, outdir):
    path = outdir / "config.yaml"
    path.write_text(yaml.safe_dump(_config("OLS_C")))
    _cli(None, program / f"{stem}_uncal.fits", outdir, program / "crds_cache",
         extra=["--config", str(path)])


@pytest.mark.parametrize("case", sorted(STEMS))
def test_optional_product_matches_official(side_by_side, case):
    """save_opt: LIKELY writes the chi-square image (``_likely_chisq``, no fitopt), equal
    to the official one bit for bit; the 3-group fallback writes OLS_C's fitopt instead."""
    _, ours, official = side_by_side
    stem = STEMS[case]
    if case.endswith("fallback"):
        assert (ours / f"{stem}_fitopt.fits").exists()
        assert (official / f"{stem}_fitopt.fits").exists()
        assert not (ours / f"{stem}_likely_chisq.fits").exists()
        return
    assert not (ours / f"{stem}_fitopt.fits").exists()
    assert not (official / f"{stem}_fitopt.fits").exists()
    with fits.open(ours / f"{stem}_likely_chisq.fits") as a, \
            fits.open(official / f"{stem}_likely_chisq.fits") as b:
        x, y = a["SCI"].data, b["SCI"].data
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.isfinite(x).mean() > 0.9
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        # numpy's array power (SVML on AVX-512 machines) may differ from libm's pow by
        # an ulp in the covariance rescaling; that only shows where chi square is
        # rounding noise around 0 (a ramp with one usable difference)
        assert same.mean() > 0.99, same.mean()
        assert np.all(np.abs(x[~same]) < 1e-9) and np.all(np.abs(y[~same]) < 1e-9)


def test_likely_is_not_ols(side_by_side, tmp_path):
    """The NIRCam BRIGHT2 exposure (with a ZEROFRAME, which LIKELY fits as a resultant of
    its own) fitted by LIKELY differs from OLS_C in nearly every pixel, by a fraction of
    its error, and its own jump search adds JUMP_DET flags to the jump step's."""
    program, ours, _ = side_by_side
    stem = STEMS["nircam_bright2_3ints"]
    with fits.open(program / f"{stem}_uncal.fits") as raw:
        assert "ZEROFRAME" in raw
    _ours_ols(program, stem, tmp_path)
    likely = read_product(ours / f"{stem}_rateints.fits")
    ols = read_product(tmp_path / f"{stem}_rateints.fits")
    good = (likely["dq"] == 0) & (ols["dq"] == 0)
    assert np.mean(likely["data"][good] != ols["data"][good]) > 0.9
    shift = np.abs(likely["data"] - ols["data"])[good] / ols["err"][good]
    assert np.median(shift) < 0.3, np.median(shift)
    jumps = np.count_nonzero(likely["dq"] & 4), np.count_nonzero(ols["dq"] & 4)
    assert jumps[0] > jumps[1], jumps


def test_rate_recovers_truth_with_honest_errors(side_by_side):
    """(rate - true rate)/ERR over clean pixels of the NIRCam exposures: median ~0, robust
    width 0.9-1.1."""
    program, ours, _ = side_by_side
    z, median, width = rate_pulls(program, ours, [STEMS[case] for case in
                                                  ("nircam_bright2_3ints", "nircam_rapid_5_groups")])
    print(f"LIKELY truth: n={z.size} median={median:.4f} width={width:.4f}")
    assert z.size > 20000
    assert abs(median) < 0.05, median
    assert 0.9 <= width <= 1.1, width


def test_fewer_than_4_groups_fall_back_to_ols(side_by_side, tmp_path):
    """A 3-group ramp with LIKELY asked for is fitted by OLS_C: equal to our OLS_C run."""
    program, ours, _ = side_by_side
    stem = STEMS["niriss_3_groups_fallback"]
    _ours_ols(program, stem, tmp_path)
    for suffix in ("rate", "rateints"):
        metrics = agreement(ours / f"{stem}_{suffix}.fits", tmp_path / f"{stem}_{suffix}.fits")
        assert all(v == 1.0 for k, v in metrics.items() if k.endswith("_identical")), metrics


DQ = dict(DO_NOT_USE=1, SATURATED=2, JUMP_DET=4, NO_GAIN_VALUE=2**19, PERSISTENCE=2**30,
          CHARGELOSS=2**7, UNRELIABLE_SLOPE=2**24)


def _random_case(nints, ngroups, nframes, groupgap, with_zeroframe, seed, ny=9, nx=11,
                 frame_time=10.737):
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.0, 40.0, (ny, nx))
    rate[0, :3] = 3000.0
    gain = rng.uniform(1.8, 2.2, (ny, nx)).astype(np.float32)
    rn = rng.uniform(8.0, 12.0, (ny, nx)).astype(np.float32)
    t = (np.arange(ngroups) + 1) * (nframes + groupgap) * frame_time
    data = rate[None, None] * t[None, :, None, None] + rng.normal(0.0, 8.0, (nints, ngroups, ny, nx))
    data = data.astype(np.float32)
    for _ in range(ny * nx // 4):  # cosmic rays
        i, g = rng.integers(nints), rng.integers(1, ngroups)
        data[i, g:, rng.integers(ny), rng.integers(nx)] += rng.uniform(50.0, 2000.0)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[:, ngroups - 2:, 0, :3] = DQ["SATURATED"]
    gdq[0, :, 1, 1] = DQ["DO_NOT_USE"]        # one integration unusable
    gdq[:, :, 1, 2] = DQ["DO_NOT_USE"]        # every integration unusable
    gdq[:, 1:, 2, 2] = DQ["SATURATED"]        # saturated after group 0
    gdq[:, :, 2, 3] = DQ["SATURATED"]         # saturated from group 0
    gdq[0, 2, 3, 3] = DQ["JUMP_DET"]          # a jump from the jump step
    gain[4, 5] = 0.0                           # no gain
    pdq = np.zeros((ny, nx), np.uint32)
    pdq[4, 4] = DQ["DO_NOT_USE"]
    zeroframe = None
    if with_zeroframe:
        zeroframe = (data[:, 0] - rate * frame_time * (nframes - 1) / 2).astype(np.float32)
    dark = rng.uniform(0.0, 0.01, (ny, nx)).astype(np.float32)
    return data, gdq, pdq, rn, gain, zeroframe, dark, frame_time


@pytest.mark.parametrize("nints,ngroups,nframes,groupgap,with_zeroframe", [
    (1, 4, 1, 0, False), (3, 10, 4, 1, True), (2, 5, 2, 0, False), (2, 25, 1, 0, False),
    (4, 7, 2, 0, True)])
def test_kernels_equal_stcal(nints, ngroups, nframes, groupgap, with_zeroframe):
    """fit_ramps_likely equals stcal's likely_ramp_fit bit for bit on random cubes with
    cosmic rays, saturation (late, after group 0, from group 0), DO_NOT_USE groups and
    integrations, a zero gain, a dark current and the zero frame."""
    from stcal.ramp_fitting import likely_fit
    from stcal.ramp_fitting.ramp_fit_class import RampData

    from webbflow.steps.ramp_fit_likely import fit_ramps_likely

    seed = ngroups * 100 + nints
    data, gdq, pdq, rn, gain, zf, dark, ft = _random_case(nints, ngroups, nframes, groupgap,
                                                          with_zeroframe, seed)
    ramp = RampData()
    ramp.set_arrays(data.copy(), gdq.copy(), pdq.copy(), dark.copy(),
                    zeroframe=None if zf is None else zf.copy())
    ramp.set_meta(name="NIRCAM", frame_time=ft, group_time=(nframes + groupgap) * ft,
                  groupgap=groupgap, nframes=nframes, drop_frames1=None)
    ramp.set_dqflags(DQ)
    with np.errstate(all="ignore"):
        image, integ, _ = likely_fit.likely_ramp_fit(ramp, rn.copy(), gain.copy())
    ours = fit_ramps_likely(data, gdq, pdq, rn, gain, DQ, frame_time=ft, nframes=nframes,
                            groupgap=groupgap, average_dark_current=dark, zeroframe=zf)
    names = ("slope", "dq", "var_poisson", "var_rnoise", "err")
    for theirs, mine in ((integ, ours.rateints), (image, ours.rate)):
        for name, array in zip(names, mine):
            assert array.dtype == np.asarray(theirs[name]).dtype, name
            assert np.array_equal(array, theirs[name], equal_nan=True), name
    assert np.array_equal(ours.chisq, image["chisq"], equal_nan=True)
    assert np.count_nonzero(ours.rateints[1] & DQ["JUMP_DET"]) > 1


@pytest.mark.parametrize("case", ["nircam_bright2_3ints", "miri_fast_2ints"])
def test_streamed_equals_whole_cube(likely_program, case, tmp_path):
    """LIKELY in the streamed stage 1 (one integration per chunk, 7-row fit blocks, the
    scratch ramp on disk, the zero frame carried through) equals the whole-cube run bit
    for bit."""
    import json
    import subprocess
    import sys

    from tests.pipelines.test_streaming import SCRIPT

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config("LIKELY")))
    uncal = likely_program / f"{STEMS[case]}_uncal.fits"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(uncal),
                             str(likely_program / "crds_cache"), "streamed", str(config)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["how"] == "streamed"
    assert report["differences"] == []


def test_read_times_force_likely_and_few_groups_fall_back():
    """jwst's choice of algorithm: read_times in the exposure (uneven sampling) force
    LIKELY whatever was asked; LIKELY with fewer than 4 groups becomes OLS_C; a bad name
    is one clear error."""
    from webbflow.errors import WebbflowError
    from webbflow.pipelines.detector1 import Detector1, Ramp

    def algorithm(ngroups, asked, read_times=None):
        meta = {"instrument": {"name": "NIRCAM"}, "exposure": {"type": "NRC_IMAGE"}}
        if read_times is not None:
            meta["exposure"]["read_times"] = read_times
        ramp = Ramp(meta=meta, data=None, gdq=np.zeros((1, ngroups, 2, 2), np.uint8),
                    pdq=np.zeros((2, 2), np.uint32), zeroframe=None, int_times=None)
        config = {"steps": {"ramp_fit": {"algorithm": asked},
                            "clean_flicker_noise": {"skip": True}}}
        return Detector1(ramp, {}, config, {}, source="x_uncal.fits").fit_algorithm()

    assert algorithm(5, "OLS_C") == "OLS_C"
    assert algorithm(5, "LIKELY") == "LIKELY"
    assert algorithm(3, "LIKELY") == "OLS_C"
    assert algorithm(6, "OLS_C", read_times=[[1.0], [2.0], [4.0], [8.0], [9.0], [10.0]]) == "LIKELY"
    with pytest.raises(WebbflowError, match="algorithm"):
        algorithm(5, "GLS")
