"""bkg_subtract in calwebb_image2 side by side with the official Image2Pipeline: MIRI
imaging with two dedicated background exposures (the simulated ``imaging-background``
program), the level-2 association with background members generated from the headers,
and against the simulated sky: the zodiacal level is gone after the subtraction."""

import numpy as np
import pytest
from astropy.io import fits

from tests.oracle.official import run_official
from tests.oracle.compare import relative
from tests.oracle.ours import run_detector1_cli, run_image2_cli
from webbflow.associations import Exposure, dumps, level2_associations, level3_associations
from webbflow.io import read_product

pytestmark = pytest.mark.oracle

SCIENCE = ["jw01234006001_02101_00001_mirimage", "jw01234006001_02101_00002_mirimage"]
BACKGROUND = ["jw01234007001_02101_00001_mirimage", "jw01234007001_02101_00002_mirimage"]


@pytest.fixture(scope="module")
def background_program(tmp_path_factory):
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import imaging_background_program

    root = tmp_path_factory.mktemp("imaging_background")
    simulate_program(root, imaging_background_program(), seed=3)
    rates = root / "rate"
    for uncal in sorted(root.glob("*_uncal.fits")):
        run_detector1_cli(uncal, rates, root / "crds_cache")
    exposures = [Exposure(p.name.removesuffix("_rate.fits"), read_product(p).meta)
                 for p in sorted(rates.glob("*_rate.fits"))]
    return root, rates, exposures


def test_associations_carry_the_backgrounds(background_program):
    _, _, exposures = background_program
    level2 = level2_associations(exposures)
    for stem in SCIENCE:
        members = level2[f"{stem}_image2_asn.json"]["products"][0]["members"]
        assert members == [{"expname": f"{stem}_rate.fits", "exptype": "science"}] + [
            {"expname": f"{b}_rate.fits", "exptype": "background"} for b in BACKGROUND]
    for stem in BACKGROUND:
        # a background pointing is calibrated on its own, without backgrounds
        members = level2[f"{stem}_image2_asn.json"]["products"][0]["members"]
        assert [m["exptype"] for m in members] == ["science"]
    (level3,) = level3_associations(exposures).values()
    assert [m["expname"] for m in level3["products"][0]["members"]] == [
        f"{s}_cal.fits" for s in SCIENCE]


@pytest.fixture(scope="module")
def side_by_side(background_program, tmp_path_factory):
    root, rates, exposures = background_program
    cache = root / "crds_cache"
    ours = tmp_path_factory.mktemp("ours_bkg")
    official = tmp_path_factory.mktemp("official_bkg")
    plain = tmp_path_factory.mktemp("ours_no_bkg")
    jobs = []
    for name, asn in level2_associations(exposures).items():
        if asn["products"][0]["name"] not in SCIENCE:
            continue
        # the official Image2Pipeline opens members by the names as written (relative
        # to its working directory), so its copy names them by absolute path
        for member in asn["products"][0]["members"]:
            member["expname"] = str(rates / member["expname"])
        path = rates / name
        path.write_text(dumps(asn))
        jobs.append((str(path), {}))
        stem = asn["products"][0]["name"]
        run_image2_cli(rates / f"{stem}_rate.fits", ours, cache,
                       backgrounds=[rates / f"{b}_rate.fits" for b in BACKGROUND])
        run_image2_cli(rates / f"{stem}_rate.fits", plain, cache)
    run_official(jobs, cache, official, pipeline="Image2Pipeline")
    return root, ours, official, plain


@pytest.mark.parametrize("stem", SCIENCE)
def test_cal_matches_official(side_by_side, stem):
    _, ours, official, _ = side_by_side
    with fits.open(ours / f"{stem}_cal.fits") as a, fits.open(official / f"{stem}_cal.fits") as b:
        assert a[0].header["S_BKDSUB"] == b[0].header["S_BKDSUB"] == "COMPLETE"
        assert np.array_equal(a["DQ"].data, b["DQ"].data)
        for name in ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
            assert np.array_equal(a[name].data, b[name].data, equal_nan=True), name
    with fits.open(official / f"{stem}_i2d.fits") as b, fits.open(ours / f"{stem}_i2d.fits") as a:
        weighted = b["WHT"].data > 0
        assert np.array_equal(weighted, a["WHT"].data > 0)
        # as in test_image2_oracle: our compiled pixel map moves overlaps in the last bits
        assert relative(a["SCI"].data[weighted], b["SCI"].data[weighted]).max() <= 1e-4


@pytest.mark.parametrize("stem", SCIENCE)
def test_zodiacal_level_removed(side_by_side, stem):
    """The simulated sky level (0.3 MJy/sr) is in the cal without backgrounds and gone
    with them; what is left is the two backgrounds' noise."""
    _, ours, _, plain = side_by_side
    with fits.open(ours / f"{stem}_cal.fits") as a, fits.open(plain / f"{stem}_cal.fits") as b:
        good = np.isfinite(a["SCI"].data) & np.isfinite(b["SCI"].data) & (a["DQ"].data & 1 == 0)
        level_before = np.median(b["SCI"].data[good])
        level_after = np.median(a["SCI"].data[good])
        noise = np.median(a["ERR"].data[good])
        assert "S_BKDSUB" not in b[0].header
    print(f"{stem}: sky before {level_before:.4f}, after {level_after:.4f} MJy/sr, "
          f"ERR {noise:.4f}")
    assert level_before == pytest.approx(0.3, abs=0.03)
    # what is left: the sources' pull on the median and the noise of the median of
    # 65,000 pixels (ERR ~2 MJy/sr on these short exposures: ~0.01)
    assert abs(level_after) < 0.03


def test_workflow_gives_each_science_exposure_its_backgrounds(background_program, tmp_path):
    """The DAG: every science image2 job reads both background rate files, the
    background exposures' own jobs read none, and there is one level-3 job."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root, _, _ = background_program
    program = tmp_path / "jw01234"
    program.mkdir()
    for uncal in root.glob("*_uncal.fits"):
        (program / uncal.name).symlink_to(uncal)
    (program / "crds_cache").symlink_to(root / "crds_cache")
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"),
                             "--workflow-profile", "none", "--cores", "1", "-n",
                             "--directory", str(program)],
                            capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    blocks = [b for b in re.split(r"\n(?=(?:local)?rule )", out) if re.match(r"rule image2:", b)]
    assert len(blocks) == 4
    for block in blocks:
        exposure = re.search(r"wildcards: exposure=(\S+)", block).group(1)
        inputs = re.search(r"input: (.*)", block).group(1).split(", ")
        rates = {Path(p).name for p in inputs if p.endswith("_rate.fits")}
        expected = {f"{exposure}_rate.fits"}
        if exposure in SCIENCE:
            expected |= {f"{b}_rate.fits" for b in BACKGROUND}
        assert rates == expected, exposure
    assert len(re.findall(r"\nrule image3_\d+:", out)) == 1
