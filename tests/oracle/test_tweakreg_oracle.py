"""tweakreg side by side with the official TweakRegStep (jwst 3.0, default parameters) on
the same cal files, and against the simulated truth; then the same with an absolute
reference catalog (``abs_refcat``) written from the simulated truth, and the expanding
relative alignment (ordered by overlap) it implies.

Input: our stage 1 and 2 of the four dithered NIRCam exposures of the dense star field
(``imaging_starfield_program``; the default imaging field holds about five stars per
512x512 exposure, far below tweakreg's minobj 15). Each exposure was simulated through a
true pointing that differs from its header by 30-50 mas, so the uncorrected WCS disagree
with each other by that much; relative alignment must bring them onto the reference
exposure's (itself wrong by its own error) to a few mas.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.oracle.ours import run_detector1_cli, run_image2_cli

pytestmark = pytest.mark.oracle

REPO = Path(__file__).resolve().parents[2]

_OFFICIAL = r"""
import json, sys
from jwst.tweakreg import TweakRegStep
for outdir, options in json.loads(sys.argv[2]):
    print("=== RUN", outdir, file=sys.stderr, flush=True)
    TweakRegStep.call(sys.argv[1], save_results=True, output_dir=outdir, **options)
"""


def _run_official_tweakreg(asn_path, cache, runs, cwd=None):
    """``runs``: [(output directory, TweakRegStep options)], one process for all (each
    run's log starts with a line '=== RUN <output directory>')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(cache), CRDS_MODE="local", CRDS_READONLY_CACHE="1",
               CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
               STPIPE_DISABLE_CRDS_STEPPARS="true")
    for outdir, _ in runs:
        Path(outdir).mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-c", _OFFICIAL, str(asn_path),
                             json.dumps([(str(o), opts) for o, opts in runs])],
                            env=env, capture_output=True, text=True, timeout=1800, cwd=cwd)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr + result.stdout


@pytest.fixture(scope="module")
def starfield(tmp_path_factory):
    """Our cal files of the dense star field and their level-3 association:
    (root directory, cal paths, association path, the simulated exposure specs)."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import imaging_starfield_program

    root = tmp_path_factory.mktemp("starfield")
    specs = imaging_starfield_program()
    simulate_program(root, specs, seed=0)
    for uncal in sorted(root.glob("*_uncal.fits")):
        run_detector1_cli(uncal, root / "rate", root / "crds_cache")
    for rate in sorted((root / "rate").glob("*_rate.fits")):
        run_image2_cli(rate, root / "cal", root / "crds_cache")
    cals = sorted(str(p) for p in (root / "cal").glob("*_cal.fits"))
    assert len(cals) == 4
    asn = {"asn_type": "image3", "asn_rule": "Asn_Lv3Image", "asn_id": "o005",
           "asn_pool": "test", "program": "01234", "target": "1",
           "products": [{"name": "jw01234-o005_t001_nircam_f200w-generic",
                         "members": [{"expname": Path(c).name, "exptype": "science"}
                                     for c in cals]}]}
    asn_path = root / "cal" / "image3_asn.json"
    asn_path.write_text(json.dumps(asn))
    return root, cals, asn_path, specs


def _tweakreg_options():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return dict(config["image3"]["steps"]["tweakreg"])


@pytest.fixture(scope="module")
def aligned(starfield):
    """Our tweakreg (the configured defaults) and the official one on the same cal files:
    (cal paths, our metas before, our metas after, our results, official directory,
    the simulated exposure specs, the official log)."""
    from webbflow.dqflags import PIXEL
    from webbflow.pipelines.image3 import _read_cal_meta
    from webbflow.steps.tweakreg import tweakreg

    root, cals, asn_path, specs = starfield
    official = root / "official"
    log = _run_official_tweakreg(asn_path, root / "crds_cache",
                                 [(official, {"save_catalogs": True})])
    before = [_read_cal_meta(c) for c in cals]
    after = [_read_cal_meta(c) for c in cals]
    results = tweakreg(cals, after, _tweakreg_options(), PIXEL)
    return cals, before, after, results, official, specs, log


def _official_product(official, cal):
    """(meta dict with cal_step and wcsinfo, gwcs) of the official output, read with
    stdatamodels (its ASDF tree points into the FITS extensions)."""
    official = Path(official)
    from stdatamodels.jwst.datamodels import ImageModel

    path = official / Path(cal).name.replace("_cal.fits", "_tweakregstep.fits")
    with ImageModel(str(path)) as model:
        meta = {"cal_step": model.meta.cal_step.instance,
                "wcsinfo": model.meta.wcsinfo.instance}
        return meta, model.meta.wcs


def _grid(n=9, size=512):
    x, y = np.meshgrid(np.linspace(0, size - 1, n), np.linspace(0, size - 1, n))
    return x.ravel(), y.ravel()


def _offsets_mas(wcs_a, wcs_b, x, y):
    """(east, north) offsets of wcs_a's sky positions from wcs_b's, milliarcseconds."""
    ra_a, dec_a = wcs_a(x, y)
    ra_b, dec_b = wcs_b(x, y)
    east = (ra_a - ra_b) * np.cos(np.radians(dec_b)) * 3.6e6
    north = (dec_a - dec_b) * 3.6e6
    return np.stack([east, north], axis=-1)


def test_catalogs_match_official(aligned):
    """The same sources in each image: count and positions as the official catalogs."""
    from astropy.table import Table

    cals, _, _, results, official, _, _ = aligned
    for cal, result in zip(cals, results):
        theirs = Table.read(official / Path(cal).name.replace(".fits", "_cat.ecsv"))
        x = np.asarray(next(theirs[c] for c in ("x", "xcentroid", "x_centroid")
                            if c in theirs.colnames))
        y = np.asarray(next(theirs[c] for c in ("y", "ycentroid", "y_centroid")
                            if c in theirs.colnames))
        inside = (x > -0.5) & (x < 511.5) & (y > -0.5) & (y < 511.5)
        ours = result["catalog"]
        print(f"{Path(cal).name}: {len(ours['x'])} sources (official {inside.sum()})")
        assert len(ours["x"]) == inside.sum() >= 15
        assert np.allclose(ours["x"], x[inside], atol=1e-9)
        assert np.allclose(ours["y"], y[inside], atol=1e-9)


def test_corrected_wcs_matches_official(aligned):
    """Every member's corrected gwcs puts a grid of pixels where the official's does
    (< 1 mas), with the same status, S_REGION and SIP approximation."""
    cals, _, after, results, official, _, _ = aligned
    x, y = _grid()
    worst = 0.0
    for cal, meta, result in zip(cals, after, results):
        their_meta, their_wcs = _official_product(official, cal)
        assert meta["cal_step"]["tweakreg"] == their_meta["cal_step"]["tweakreg"] == "COMPLETE"
        ours_corrected = "v2v3corr" in meta["wcs"].available_frames
        assert ours_corrected == ("v2v3corr" in their_wcs.available_frames), cal
        assert ours_corrected == (result["status"] == "SUCCESS")
        diff = np.hypot(*_offsets_mas(meta["wcs"], their_wcs, x, y).T)
        worst = max(worst, diff.max())
        print(f"{Path(cal).name}: {result['status']}, |ours - official| max "
              f"{diff.max():.2e} mas")
        ours_poly = np.array(meta["wcsinfo"]["s_region"].split()[2:], float)
        their_poly = np.array(their_meta["wcsinfo"]["s_region"].split()[2:], float)
        assert np.abs(ours_poly - their_poly).max() < 1e-8
        for key in ("crval1", "crval2", "crpix1", "crpix2", "cd1_1", "cd1_2", "cd2_1",
                    "cd2_2", "a_order", "b_order"):
            if key in their_meta["wcsinfo"]:
                assert meta["wcsinfo"][key] == pytest.approx(their_meta["wcsinfo"][key],
                                                             rel=1e-7, abs=1e-12), key
    assert worst < 1.0
    # the reference stays, every other exposure is aligned
    assert [r["status"] for r in results] == ["REFERENCE"] + ["SUCCESS"] * 3


def test_alignment_recovers_relative_pointing(aligned):
    """Against the true WCS: before, the exposures' errors differ by the simulated
    30-50 mas; after, all agree with the reference exposure's to a few mas."""
    from webbflow.sim.program import true_wcsinfo
    from webbflow.wcs.imaging import v2v3_to_sky

    _, before, after, _, _, specs, _ = aligned
    x, y = _grid()
    errors_before, errors_after = [], []
    for spec, old, new in zip(specs, before, after):
        info = true_wcsinfo(spec, old)
        true = _with_pointing(old["wcs"], v2v3_to_sky(info["v2_ref"], info["v3_ref"],
                                                      info["roll_ref"], info["ra_ref"],
                                                      info["dec_ref"]))
        errors_before.append(_offsets_mas(old["wcs"], true, x, y))
        errors_after.append(_offsets_mas(new["wcs"], true, x, y))
    spread_before = [np.hypot(*(e - errors_before[0]).mean(axis=0)) for e in errors_before[1:]]
    spread_after = [np.hypot(*(e - errors_after[0]).mean(axis=0)) for e in errors_after[1:]]
    worst_after = max(np.hypot(*(e - errors_after[0]).T).max() for e in errors_after[1:])
    print("relative offsets before (mas):", np.round(spread_before, 2))
    print("relative offsets after (mas):", np.round(spread_after, 2),
          f"worst pixel {worst_after:.2f}")
    assert min(spread_before) > 30.0
    assert max(spread_after) < 3.0
    assert worst_after < 5.0


def _with_pointing(wcs, to_sky):
    from gwcs import WCS

    pipeline = list(wcs.pipeline)
    pipeline[-2] = (pipeline[-2].frame, to_sky)
    return WCS(pipeline)


# ------------------------------------------------------------ absolute reference catalog

# each against the official TweakRegStep with the same options (and abs_refcat)
ABS_SCENARIOS = {
    "default": {},
    # the relative alignment in association order (still expanding its reference)
    "user_order": {"enforce_user_order": True},
    # the relative alignment refused (separation <= sqrt(2) x tolerance): absolute alone
    "relative_refused": {"separation": 0.5},
    # fewer matches than abs_minobj: every WCS as it came in, the step COMPLETE
    "few_matches": {"abs_minobj": 50},
    # fewer catalog rows than abs_minobj: every WCS as it came in, the step FAILED
    "few_rows": {"abs_minobj": 100000},
    # no catalog: the relative alignment alone, expanding, in order of overlap
    "expand_only": {"abs_refcat": "", "expand_refcat": True},
}
# (each member's status, the step's cal_step.tweakreg)
ABS_STATUS = {"few_matches": ("FAILED: not enough matches", "COMPLETE"),
              "few_rows": ("SKIPPED", "FAILED")}


def _write_refcat(path):
    """The brightest half of the simulated stars (those the images detect; a real catalog
    also misses some of the field's stars), lower-case 'ra'/'dec' and a flux column."""
    from astropy.table import Table

    sky = Table.read(path.parents[1] / "truth" / "sky.fits", "SKY")
    stars = sky[sky["kind"] == "star"]
    bright = stars[stars["flux_jy"] > np.median(stars["flux_jy"])]
    Table({"ra": np.asarray(bright["ra"]), "dec": np.asarray(bright["dec"]),
           "flux_jy": np.asarray(bright["flux_jy"])}).write(path, overwrite=True)
    return len(bright)


class _Lines(list):
    def write(self, text):
        self.append(text)


@pytest.fixture(scope="module")
def abs_aligned(starfield):
    """Ours and the official with ``abs_refcat: refcat.ecsv`` (a relative path: the
    official runs in the cal directory, ours finds it beside the members), per scenario:
    {name: (our metas, our results, our log lines, official directory, official log)}."""
    import logging

    from webbflow.dqflags import PIXEL
    from webbflow.pipelines.image3 import _read_cal_meta
    from webbflow.steps.tweakreg import tweakreg

    root, cals, asn_path, specs = starfield
    nrows = _write_refcat(Path(cals[0]).parent / "refcat.ecsv")
    assert 15 <= nrows < 100000
    runs = [(root / f"official_abs_{name}", {"abs_refcat": "refcat.ecsv", **options})
            for name, options in ABS_SCENARIOS.items()]
    log = _run_official_tweakreg(asn_path, root / "crds_cache", runs, cwd=asn_path.parent)
    official_logs = {}
    for (outdir, _), name in zip(runs, ABS_SCENARIOS):
        official_logs[name] = log.split(f"=== RUN {outdir}\n", 1)[1].split("=== RUN", 1)[0]
    out = {}
    logger = logging.getLogger("webbflow.tweakreg")
    for (outdir, _), (name, options) in zip(runs, ABS_SCENARIOS.items()):
        metas = [_read_cal_meta(c) for c in cals]
        lines = _Lines()
        handler = logging.StreamHandler(lines)
        logger.addHandler(handler)
        old_level = logger.level
        logger.setLevel(logging.INFO)
        try:
            results = tweakreg(cals, metas, {**_tweakreg_options(), "abs_refcat": "refcat.ecsv",
                                             **options}, PIXEL)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        out[name] = (metas, results, "".join(lines), outdir, official_logs[name])
    return cals, specs, out


@pytest.mark.parametrize("scenario", list(ABS_SCENARIOS))
def test_absolute_alignment_matches_official(abs_aligned, scenario):
    """Every member's WCS after alignment to the catalog puts a pixel grid where the
    official's does (< 1 micro-arcsec), with the same step status, the same corrected
    frames and WCS name (FIT-LVL3-refcat.ecsv), S_REGION and SIP approximation."""
    cals, _, out = abs_aligned
    metas, results, _, official, _ = out[scenario]
    x, y = _grid()
    expected, step = ABS_STATUS.get(scenario, ("SUCCESS", "COMPLETE"))
    for cal, meta, result in zip(cals, metas, results):
        their_meta, their_wcs = _official_product(official, cal)
        assert meta["cal_step"]["tweakreg"] == their_meta["cal_step"]["tweakreg"] == step
        if scenario == "expand_only":
            # the reference exposure (chosen by overlap: not the first) stays as it is
            expected = "REFERENCE" if cal.endswith("00002_nrca1_cal.fits") else "SUCCESS"
        assert result["status"] == expected
        ours_corrected = "v2v3corr" in meta["wcs"].available_frames
        assert ours_corrected == ("v2v3corr" in their_wcs.available_frames) == \
            (expected == "SUCCESS"), cal
        assert meta["wcs"].name == their_wcs.name
        if expected == "SUCCESS" and scenario != "expand_only":
            assert their_wcs.name == "FIT-LVL3-refcat.ecsv"
        diff = np.hypot(*_offsets_mas(meta["wcs"], their_wcs, x, y).T)
        print(f"{scenario} {Path(cal).name}: {result['status']}, |ours - official| max "
              f"{diff.max():.2e} mas")
        assert diff.max() < 1e-3
        ours_poly = np.array(meta["wcsinfo"]["s_region"].split()[2:], float)
        their_poly = np.array(their_meta["wcsinfo"]["s_region"].split()[2:], float)
        assert np.abs(ours_poly - their_poly).max() < 1e-8
        for key in ("crval1", "crval2", "crpix1", "crpix2", "cd1_1", "cd1_2", "cd2_1",
                    "cd2_2", "a_order", "b_order"):
            if key in their_meta["wcsinfo"]:
                assert meta["wcsinfo"][key] == pytest.approx(their_meta["wcsinfo"][key],
                                                             rel=1e-7, abs=1e-12), key


def _alignment_steps(text, official):
    """The reference group and the (matches, group) of every fit, from a log."""
    import re

    ref = re.findall(r"Selected image '(?:GROUP ID: )?([^']+)' as reference", text)
    pattern = r"Found (\d+) matches for 'GROUP ID: ([^']+)'" if official else \
        r"Found (\d+) matches for group '([^']+)'"
    return ref, [(int(n), str(g)) for n, g in re.findall(pattern, text)]


@pytest.mark.parametrize("scenario", ["default", "user_order", "relative_refused",
                                      "expand_only"])
def test_alignment_order_matches_official(abs_aligned, scenario):
    """The same reference group, the same groups in the same order with the same numbers
    of matches, then the absolute fit (group 987654) with the same matches. By default
    (ordered by overlap) the reference is not the first exposure."""
    _, _, out = abs_aligned
    _, _, ours_log, _, their_log = out[scenario]
    ours, theirs = _alignment_steps(ours_log, False), _alignment_steps(their_log, True)
    print(scenario, "ours", ours, "official", theirs)
    assert ours == theirs
    if scenario == "expand_only":
        assert not theirs[0][0].endswith("00001") and len(theirs[1]) == 3
        return
    assert theirs[1][-1][1] == "987654"
    if scenario == "default":
        assert not theirs[0][0].endswith("00001") and len(theirs[1]) == 4
    elif scenario == "user_order":
        assert theirs[0][0].endswith("00001") and len(theirs[1]) == 4
    else:
        assert theirs[0] == [] and len(theirs[1]) == 1


def test_absolute_alignment_recovers_true_pointing(abs_aligned):
    """Against the truth: the simulated stars in each exposure, taken to pixels through
    the exposure's true WCS and back to the sky through its WCS, land 30-60 mas off
    before (the pointing errors of all but the first exposure) and within a few mas of
    where they are after the alignment to the catalog."""
    from astropy.table import Table

    from webbflow.pipelines.image3 import _read_cal_meta
    from webbflow.sim.program import true_wcsinfo
    from webbflow.wcs.imaging import v2v3_to_sky

    cals, specs, out = abs_aligned
    metas, _, _, _, _ = out["default"]
    sky = Table.read(Path(cals[0]).parents[1] / "truth" / "sky.fits", "SKY")
    stars = sky[sky["kind"] == "star"]
    ra, dec = np.asarray(stars["ra"]), np.asarray(stars["dec"])
    before, after = [], []
    for cal, spec, new in zip(cals, specs, metas):
        old = _read_cal_meta(cal)
        info = true_wcsinfo(spec, old)
        true = _with_pointing(old["wcs"], v2v3_to_sky(info["v2_ref"], info["v3_ref"],
                                                      info["roll_ref"], info["ra_ref"],
                                                      info["dec_ref"]))
        x, y = true.invert(ra, dec)
        inside = (x > 0) & (x < 511) & (y > 0) & (y < 511)
        assert inside.sum() > 30
        for wcs, errors in ((old["wcs"], before), (new["wcs"], after)):
            r, d = wcs(x[inside], y[inside])
            east = (r - ra[inside]) * np.cos(np.radians(dec[inside])) * 3.6e6
            north = (d - dec[inside]) * 3.6e6
            errors.append(np.hypot(east, north))
    print("star offsets before (mas, median per exposure):",
          np.round([np.median(e) for e in before], 2))
    print("star offsets after (mas, median / max per exposure):",
          [(round(float(np.median(e)), 2), round(float(e.max()), 2)) for e in after])
    assert min(np.median(e) for e in before[1:]) > 30.0
    # (about 0.2-0.8 mas median, below 1.2 mas everywhere when written)
    assert max(np.median(e) for e in after) < 1.5
    assert max(e.max() for e in after) < 2.5
