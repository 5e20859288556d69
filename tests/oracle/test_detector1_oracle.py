"""Stage 1 side by side with the official pipeline: same raw files, same synthetic CRDS
cache, same switches; products compared array by array (thresholds of the stage-1 issue)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.oracle.compare import compare, failures, rate_pulls
from tests.oracle.official import official_steps, run_official
from webbflow import planning
from webbflow.io import read_product

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

pytestmark = pytest.mark.oracle


def _stage_config(meta):
    return planning.detector1_config(CONFIG, meta)


def _ours(uncal, outdir, cache, context):
    """Our products through the command-line entry point (a process per exposure, as
    the workflow runs it, and CRDS loads each cache's rules afresh)."""
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", str(uncal), "--outdir",
                             str(outdir), "--crds-path", str(cache), "--crds-context", context],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return _stage_config(read_product(uncal).meta)


def _run_both(program, tmp_path_factory, label):
    """Both pipelines on every raw file of ``program``; returns (ours, official) dirs."""
    ours = tmp_path_factory.mktemp(f"ours_{label}")
    official = tmp_path_factory.mktemp(f"official_{label}")
    cache = program / "crds_cache"
    jobs = []
    for uncal in sorted(program.glob("*_uncal.fits")):
        stage = _ours(str(uncal), ours, cache, "jwst_0001.pmap")
        jobs.append((uncal, official_steps(stage)))
    run_official(jobs, cache, official)
    return ours, official


@pytest.fixture(scope="module")
def side_by_side(synthetic_program, tmp_path_factory):
    return (synthetic_program, *_run_both(synthetic_program, tmp_path_factory, "demo"))


CASES = {
    "nircam_subarray_bright2_2ints": "jw01234001001_02101_00001_nrca1",
    "nircam_subarray_dither": "jw01234001001_02101_00002_nrca1",
    "nircam_shallow4_groupgap": "jw01234001001_02101_00003_nrca1",
    "niriss_3_groups": "jw01234002001_02101_00001_nis",
    "niriss_2_groups": "jw01234002001_02101_00002_nis",
    "niriss_1_group": "jw01234002001_02101_00003_nis",
    "miri_rscd_reset_2ints": "jw01234003001_02101_00001_mirimage",
    "tso_segment1_100_ints_sigma_clip": "jw01234004001_02101_00001-seg001_nrca1",
    "tso_segment2_100_ints_sigma_clip": "jw01234004001_02101_00001-seg002_nrca1",
}


@pytest.mark.parametrize("suffix", ["rate", "rateints"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_official(side_by_side, case, suffix):
    _, ours, official = side_by_side
    stem = CASES[case]
    metrics = compare(ours / f"{stem}_{suffix}.fits", official / f"{stem}_{suffix}.fits")
    assert not failures(metrics), metrics


def test_rate_recovers_truth_with_honest_errors(side_by_side):
    """(rate - true rate)/ERR over clean pixels: centred on 0 with unit width."""
    program, ours, _ = side_by_side
    z, median, width = rate_pulls(program, ours, ("jw01234001001_02101_00001_nrca1",
                                                  "jw01234001001_02101_00002_nrca1",
                                                  "jw01234002001_02101_00001_nis"))
    assert z.size > 50000
    assert abs(median) < 0.05, median
    assert 0.9 <= width <= 1.1, width


FULL_FRAME = {
    "nircam_full_frame_rapid": "jw01234001001_02101_00001_nrca1",
    "miri_full_frame_3ints": "jw01234002001_02101_00001_mirimage",
}


@pytest.fixture(scope="module")
def full_frame_side_by_side(tmp_path_factory):
    """Full frames: NIRCam 2048x2048 RAPID with cosmic rays and saturated stars; MIRI
    1032x1024 with RSCD, RESET and three integrations."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import ExposureSpec

    program = tmp_path_factory.mktemp("fullframe")
    simulate_program(program, [
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_IMAGE",
                     filter="F200W", readpatt="RAPID", ngroups=10, nints=1, seed=201),
        ExposureSpec(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                     filter="F770W", readpatt="FAST", ngroups=10, nints=3, observation=2,
                     seed=202),
    ], seed=3)
    return _run_both(program, tmp_path_factory, "fullframe")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["rate", "rateints"])
@pytest.mark.parametrize("case", sorted(FULL_FRAME))
def test_full_frame_matches_official(full_frame_side_by_side, case, suffix):
    ours, official = full_frame_side_by_side
    stem = FULL_FRAME[case]
    metrics = compare(ours / f"{stem}_{suffix}.fits", official / f"{stem}_{suffix}.fits")
    assert not failures(metrics), metrics
