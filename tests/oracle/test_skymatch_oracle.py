"""skymatch side by side with the official SkyMatchStep (jwst 3.0) on our cal files of
the four dithered NIRCam exposures, with known sky offsets added to three of them; and
calwebb_image3 with skymatch on (tweakreg and source_catalog off) against the official
Image3Pipeline: the recorded levels, the crf files and the i2d.

Truth: the simulated sky is one flat background under every exposure, so the levels
skymatch recovers must differ by the injected offsets (within the sky statistic's noise).
"""

import json
import os
import shutil
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.oracle.official import run_official

pytestmark = pytest.mark.oracle

OFFSETS = (0.0, 0.3, -0.2, 0.5)      # MJy/sr added to SCI of each member
PRODUCT = "jw01234-o005_t001_nircam_f200w-generic"
ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {"tweakreg": {"skip": True}, "source_catalog": {"skip": True}}

_OFFICIAL_SKYMATCH = r"""
import json, sys
from jwst.skymatch import SkyMatchStep
asn, options = sys.argv[1], json.loads(sys.argv[2])
library = SkyMatchStep.call(asn, **options)
out = []
with library:
    for index in range(len(library)):
        model = library.borrow(index)
        bkg = model.meta.background
        out.append([model.meta.filename, bkg.level, bkg.subtracted, bkg.method,
                    model.meta.cal_step.skymatch])
        library.shelve(model, index, modify=False)
print("RESULT" + json.dumps(out))
"""


def official_skymatch(asn_path, cache, **options):
    """meta.background (filename, level, subtracted, method, cal_step) of each member
    after the official SkyMatchStep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(cache), CRDS_MODE="local", CRDS_READONLY_CACHE="1",
               CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
               STPIPE_DISABLE_CRDS_STEPPARS="true")
    result = subprocess.run([sys.executable, "-c", _OFFICIAL_SKYMATCH, str(asn_path),
                             json.dumps(options)], env=env, capture_output=True, text=True,
                            timeout=1800, cwd=asn_path.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def ours_skymatch(cal_paths, **options):
    from webbflow.dqflags import PIXEL
    from webbflow.pipelines.image3 import _read_cal_meta
    from webbflow.pipelines.resample import group_id
    from webbflow.steps.skymatch import skymatch

    metas = [_read_cal_meta(path) for path in cal_paths]
    skymatch(cal_paths, metas, options, PIXEL, group_ids=[group_id(m) for m in metas])
    return metas


def _association(work, cals, name="image3_asn.json"):
    asn = {"asn_type": "image3", "asn_rule": "Asn_Lv3Image", "asn_id": "o005",
           "asn_pool": "test", "program": "01234", "target": "1",
           "products": [{"name": PRODUCT,
                         "members": [{"expname": c.name, "exptype": "science"} for c in cals]}]}
    path = work / name
    path.write_text(json.dumps(asn))
    return path


@pytest.fixture(scope="module")
def offset_association(imaging_rates, image2_products, tmp_path_factory):
    """(CRDS cache, association of the offset copies, offset copies, original cal files)."""
    program, _ = imaging_rates
    ours2, _ = image2_products
    work = tmp_path_factory.mktemp("skymatch_inputs")
    cals = sorted(ours2.glob("jw01234005001_*_nrca1_cal.fits"))
    assert len(cals) == len(OFFSETS)
    for cal, offset in zip(cals, OFFSETS):
        shutil.copy(cal, work / cal.name)
        with fits.open(work / cal.name, mode="update") as hdul:
            hdul["SCI"].data += np.float32(offset)
    return program / "crds_cache", _association(work, cals), [work / c.name for c in cals], cals


def _compare_levels(ours, theirs, what):
    levels = np.array([m["background"]["level"] for m in ours])
    official = np.array([row[1] for row in theirs])
    scale = np.abs(official).max()
    worst = np.abs(levels - official).max() / scale
    print(f"{what}: ours {levels}, official {official}, max |diff|/max|level| {worst:.2e}")
    assert worst <= 1e-4, what
    for meta, row in zip(ours, theirs):
        assert meta["background"]["subtracted"] is row[2] is False
        assert meta["background"]["method"] == row[3]
        assert meta["cal_step"]["skymatch"] == row[4] == "COMPLETE"
    return levels


def test_match_levels_official_and_truth(offset_association):
    cache, asn_path, cals, originals = offset_association
    theirs = official_skymatch(asn_path, cache)
    levels = _compare_levels(ours_skymatch(cals), theirs, "match")
    assert levels.min() == 0.0                      # match_down: the lowest sky is 0
    # the same members without the offsets: the level differences move by exactly the
    # injected offsets (the statistic shifts with the data; the pixel samples are equal)
    base = np.array([m["background"]["level"] for m in ours_skymatch(originals)])
    moved = (levels - base) - (levels - base)[0]
    injected = np.array(OFFSETS) - OFFSETS[0]
    print("match: level changes - injected offsets", moved - injected)
    assert np.abs(moved - injected).max() < 1e-5


@pytest.mark.parametrize("method, skystat", [("local", "mode"), ("global", "mode"),
                                             ("global+match", "mode"), ("match", "median"),
                                             ("local", "median"), ("match", "midpt")])
def test_other_methods(offset_association, method, skystat):
    cache, asn_path, cals, _ = offset_association
    theirs = official_skymatch(asn_path, cache, skymethod=method, skystat=skystat)
    levels = _compare_levels(ours_skymatch(cals, skymethod=method, skystat=skystat), theirs,
                             f"{method}/{skystat}")
    if method == "global":
        assert np.ptp(levels) == 0.0
    if (method, skystat) == ("local", "median"):
        # each member's own sky: the simulated 0.1 MJy/sr background plus its offset; our
        # stage 1-2 leave per-exposure sky residuals of about 0.02 MJy/sr in the cal files
        print("local/median: levels - offsets", levels - np.array(OFFSETS))
        assert np.abs(levels - np.array(OFFSETS) - 0.1).max() < 0.03


def test_user_method(offset_association, tmp_path):
    cache, asn_path, cals, _ = offset_association
    skylist = tmp_path / "skylist.txt"
    values = (0.123456789, -0.5, 1.0, 2.25)
    skylist.write_text("".join(f"{c.name} {v}\n" for c, v in zip(cals[::-1], values[::-1])))
    theirs = official_skymatch(asn_path, cache, skymethod="user", skylist=str(skylist))
    ours = ours_skymatch(cals, skymethod="user", skylist=str(skylist))
    assert [m["background"]["level"] for m in ours] == [row[1] for row in theirs]
    assert [m["background"]["method"] for m in ours] == [row[3] for row in theirs]


def test_exposure_groups(offset_association, tmp_path):
    """Two members made one exposure (same EXPOSURE number): skymatch moves them
    together, as a sky group, on both sides."""
    cache, _, cals, _ = offset_association
    for cal in cals:
        shutil.copy(cal, tmp_path / cal.name)
    with fits.open(cals[0]) as hdul:
        exposure = hdul[0].header["EXPOSURE"]
    with fits.open(tmp_path / cals[2].name, mode="update") as hdul:
        hdul[0].header["EXPOSURE"] = exposure
    copies = [tmp_path / c.name for c in cals]
    asn_path = _association(tmp_path, cals)
    for method in ("match", "global+match", "local"):
        theirs = official_skymatch(asn_path, cache, skymethod=method)
        levels = _compare_levels(ours_skymatch(copies, skymethod=method), theirs,
                                 f"grouped {method}")
        assert levels[0] == levels[2]


@pytest.mark.parametrize("options", [{}, {"subtract": True, "skymethod": "global+match"}],
                         ids=["default", "subtract-global+match"])
def test_image3_with_skymatch(offset_association, tmp_path_factory, options):
    """crf and i2d with skymatch on: by default the level is only recorded (outlier
    detection and resample subtract it); with subtract the crf SCI carries the
    subtraction."""
    import yaml

    from tests.oracle.compare import relative

    cache, asn_path, cals, _ = offset_association
    ours = tmp_path_factory.mktemp("ours_image3_sky")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["image3"]["steps"]["skymatch"].update(options)
    for step in SKIPPED:
        config["image3"]["steps"][step]["skip"] = True
    config_path = ours / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", "image3", str(asn_path),
                             "--outdir", str(ours), "--config", str(config_path)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    official = tmp_path_factory.mktemp("official_image3_sky")
    steps = {**SKIPPED, "skymatch": options} if options else SKIPPED
    run_official([(str(asn_path), steps)], cache, official, pipeline="Image3Pipeline")
    for cal in cals:
        name = cal.name.replace("_cal.fits", "_o005_crf.fits")
        with fits.open(ours / name) as a, fits.open(official / name) as b:
            for key in ("BKGSUB", "BKGMETH", "S_SKYMAT", "S_OUTLIR"):
                assert a[0].header.get(key) == b[0].header.get(key), (name, key)
            level_a, level_b = a[0].header["BKGLEVEL"], b[0].header["BKGLEVEL"]
            assert level_a == pytest.approx(level_b, rel=1e-4, abs=1e-5), name
            assert np.array_equal(a["DQ"].data, b["DQ"].data), name
            for ext in ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
                assert relative(a[ext].data, b[ext].data).max(initial=0) <= 1e-6, (name, ext)
    i2d = f"{PRODUCT}_i2d.fits"
    with fits.open(ours / i2d) as a, fits.open(official / i2d) as b:
        for key in ("BKGLEVEL", "BKGSUB", "BKGMETH", "S_SKYMAT"):
            assert a[0].header.get(key) == b[0].header.get(key), key
        weighted = b["WHT"].data > 0
        assert np.array_equal(weighted, a["WHT"].data > 0)
        assert np.array_equal(a["CON"].data, b["CON"].data)
        for ext in ("SCI", "WHT", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
            diff = np.abs(a[ext].data[weighted].astype(np.float64) - b[ext].data[weighted])
            scale = np.nanmax(np.abs(b[ext].data[weighted]))
            print(ext, "max |diff| / max |official|", np.nanmax(diff) / scale)
            assert np.nanmax(diff) <= 1e-5 * scale, ext
