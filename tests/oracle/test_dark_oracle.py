"""calwebb_dark side by side with the official DarkPipeline: dark exposures (NIRCam and
MIRI, several integrations) through the stage-1 steps up to, not including,
dark_current; the 4-D corrected ramps compared array by array."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from tests.oracle.official import official_steps, run_official
from webbflow import planning
from webbflow.io import read_product

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
NO_SKY = dict(n_stars=0, n_galaxies=0, background=0.0, n_saturating=0)

pytestmark = pytest.mark.oracle


def dark_program():
    from webbflow.sim.program import ExposureSpec

    return [
        ExposureSpec(instrument="NIRCAM", detector="NRCA1", exp_type="NRC_DARK", filter="F200W",
                     readpatt="BRIGHT2", ngroups=6, nints=2, subarray="SUB320", xstart=1,
                     ystart=1, xsize=320, ysize=320, scene=NO_SKY, seed=51),
        ExposureSpec(instrument="MIRI", detector="MIRIMAGE", exp_type="MIR_DARKIMG",
                     filter="F770W", readpatt="FAST", ngroups=10, nints=2, subarray="SUB256",
                     xstart=413, ystart=51, xsize=256, ysize=256, observation=2, scene=NO_SKY,
                     seed=52),
    ]


@pytest.fixture(scope="module")
def darks(tmp_path_factory):
    from webbflow.sim.observatory import simulate_program

    program = tmp_path_factory.mktemp("darks")
    simulate_program(program, dark_program(), seed=5)
    cache = program / "crds_cache"
    ours = tmp_path_factory.mktemp("ours_dark")
    official = tmp_path_factory.mktemp("official_dark")
    jobs = []
    for uncal in sorted(program.glob("*_uncal.fits")):
        result = subprocess.run([sys.executable, "-m", "webbflow.cli", str(uncal), "--outdir",
                                 str(ours), "--crds-path", str(cache)],
                                capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, result.stderr[-3000:]
        stage = planning.detector1_config(CONFIG, read_product(uncal).meta)
        jobs.append((uncal, official_steps(stage)))
    run_official(jobs, cache, official, pipeline="DarkPipeline")
    return program, ours, official


@pytest.mark.parametrize("stem", ["jw01234001001_02101_00001_nrca1",
                                  "jw01234002001_02101_00001_mirimage"])
def test_dark_matches_official(darks, stem):
    program, ours, official = darks
    assert not list(ours.glob(f"{stem}_rate*.fits")), "a dark exposure makes no rate product"
    # DarkPipeline.call names its product after the class (_darkpipeline); the suffix of
    # the operational product, and ours, is _dark
    theirs = official / f"{stem}_darkpipeline.fits"
    with fits.open(ours / f"{stem}_dark.fits") as a, fits.open(theirs) as b:
        assert a[0].header["DATAMODL"] == b[0].header["DATAMODL"] == "RampModel"
        for ext in ("SCI", "PIXELDQ", "GROUPDQ"):
            np.testing.assert_array_equal(a[ext].data, b[ext].data, err_msg=ext)
        for key in ("S_DARK", "S_JUMP", "S_RAMP"):   # steps calwebb_dark does not run
            assert key not in a[0].header
        steps_run = {k for k in b[0].header if k.startswith("S_")}
        for key in steps_run:
            assert a[0].header.get(key) == b[0].header[key], key
