"""tweakreg side by side with the official TweakRegStep (jwst 3.0, default parameters) on
the same cal files, and against the simulated truth.

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
import sys
from jwst.tweakreg import TweakRegStep
TweakRegStep.call(sys.argv[1], save_results=True, save_catalogs=True, output_dir=sys.argv[2])
"""


def _run_official_tweakreg(asn_path, cache, outdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(cache), CRDS_MODE="local", CRDS_READONLY_CACHE="1",
               CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
               STPIPE_DISABLE_CRDS_STEPPARS="true")
    result = subprocess.run([sys.executable, "-c", _OFFICIAL, str(asn_path), str(outdir)],
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr + result.stdout


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """Our tweakreg (the configured defaults) and the official one on the same cal files:
    (cal paths, our metas before, our metas after, our results, official directory,
    the simulated exposure specs, the official log)."""
    from webbflow.dqflags import PIXEL
    from webbflow.pipelines.image3 import _read_cal_meta
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import imaging_starfield_program
    from webbflow.steps.tweakreg import tweakreg

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
    official = root / "official"
    official.mkdir()
    log = _run_official_tweakreg(asn_path, root / "crds_cache", official)

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    options = config["image3"]["steps"]["tweakreg"]
    before = [_read_cal_meta(c) for c in cals]
    after = [_read_cal_meta(c) for c in cals]
    results = tweakreg(cals, after, options, PIXEL)
    return cals, before, after, results, official, specs, log


def _official_product(official, cal):
    """(meta dict with cal_step and wcsinfo, gwcs) of the official output, read with
    stdatamodels (its ASDF tree points into the FITS extensions)."""
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
