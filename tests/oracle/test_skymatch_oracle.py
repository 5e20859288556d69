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

import numpy as np
import pytest
from astropy.io import fits

from tests.oracle.official import run_official

pytestmark = pytest.mark.oracle

OFFSETS = (0.0, 0.3, -0.2, 0.5)      # MJy/sr added to SCI of each member
PRODUCT = "jw01234-o005_t001_nircam_f200w-generic"
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


@pytest.fixture(scope="module")
def offset_association(imaging_rates, image2_products, tmp_path_factory):
    program, _ = imaging_rates
    ours2, _ = image2_products
    work = tmp_path_factory.mktemp("skymatch_inputs")
    cals = sorted(ours2.glob("jw01234005001_*_nrca1_cal.fits"))
    assert len(cals) == len(OFFSETS)
    for cal, offset in zip(cals, OFFSETS):
        shutil.copy(cal, work / cal.name)
        with fits.open(work / cal.name, mode="update") as hdul:
            hdul["SCI"].data += np.float32(offset)
    asn = {"asn_type": "image3", "asn_rule": "Asn_Lv3Image", "asn_id": "o005",
           "asn_pool": "test", "program": "01234", "target": "1",
           "products": [{"name": PRODUCT,
                         "members": [{"expname": c.name, "exptype": "science"} for c in cals]}]}
    asn_path = work / "image3_asn.json"
    asn_path.write_text(json.dumps(asn))
    return program / "crds_cache", asn_path, [work / c.name for c in cals]


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
    cache, asn_path, cals = offset_association
    theirs = official_skymatch(asn_path, cache)
    levels = _compare_levels(ours_skymatch(cals), theirs, "match")
    # match_down: the lowest sky is 0; the others are the injected differences
    assert levels.min() == 0.0
    recovered = levels - levels[0]
    injected = np.array(OFFSETS) - OFFSETS[0]
    print("match: recovered - injected", recovered - injected)
    assert np.abs(recovered - injected).max() < 0.01


@pytest.mark.parametrize("method", ["local", "global", "global+match"])
def test_other_methods(offset_association, method):
    cache, asn_path, cals = offset_association
    theirs = official_skymatch(asn_path, cache, skymethod=method)
    levels = _compare_levels(ours_skymatch(cals, skymethod=method), theirs, method)
    if method == "local":
        # each member's own sky: the flat simulated background plus its offset
        print("local: levels - offsets", levels - np.array(OFFSETS))
        assert np.ptp(levels - np.array(OFFSETS)) < 0.01
    if method == "global":
        assert np.ptp(levels) == 0.0


def test_image3_with_skymatch(offset_association, tmp_path_factory):
    from tests.oracle.test_image3_oracle import _relative

    cache, asn_path, cals = offset_association
    ours = tmp_path_factory.mktemp("ours_image3_sky")
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", "image3", str(asn_path),
                             "--outdir", str(ours)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    official = tmp_path_factory.mktemp("official_image3_sky")
    run_official([(str(asn_path), SKIPPED)], cache, official, pipeline="Image3Pipeline")
    for cal in cals:
        name = cal.name.replace("_cal.fits", "_o005_crf.fits")
        with fits.open(ours / name) as a, fits.open(official / name) as b:
            for key in ("BKGSUB", "BKGMETH", "S_SKYMAT", "S_OUTLIR"):
                assert a[0].header.get(key) == b[0].header.get(key), (name, key)
            level_a, level_b = a[0].header["BKGLEVEL"], b[0].header["BKGLEVEL"]
            assert level_a == pytest.approx(level_b, rel=1e-4, abs=1e-5), name
            assert np.array_equal(a["DQ"].data, b["DQ"].data), name
            for ext in ("SCI", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
                assert _relative(a[ext].data, b[ext].data).max(initial=0) <= 1e-6, (name, ext)
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
