"""CRDS best references offline: real rules, the synthetic cache, and clear failures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realdata import REALDATA, real_file

REAL_CACHE = REALDATA / "crds_cache"


def _run(code, **env):
    """CRDS reads its environment once per process, so each scenario gets its own."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    full_env.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=full_env, timeout=300)
    return result


REAL_HEADERS = """
import json
from webbflow import crds as wc
from webbflow.crds.references import _crds
from webbflow.io import read_product
settings = wc.configure({"path": %r})
crds = _crds()
cases = {
    "nircam": ("%s", ["distortion", "filteroffset", "mask", "saturation", "dark", "refpix"]),
    "niriss": ("%s", ["distortion", "mask", "gain", "readnoise", "persat"]),
}
out = {}
for key, (path, reftypes) in cases.items():
    meta = read_product(path).meta
    names = crds.getrecommendations(wc.references.crds_parameters(meta), reftypes=reftypes,
                                    context="jwst_0676.pmap", observatory="jwst", fast=True)
    out[key] = names
print(json.dumps(out))
"""


def test_real_rules_choose_references_offline():
    nircam = real_file("other/starbug2_jw01227002001_02105_00001_nrcalong_cutout100x100_cal.fits")
    niriss = real_file("rate_cal/niriss_ami_1093/ABDor/jw01093012001_03102_00001_nis_cal.fits")
    real_file("crds_cache/mappings/jwst/jwst_0676.pmap")
    code = REAL_HEADERS % (str(REAL_CACHE), nircam, niriss)
    result = _run(code, CRDS_READONLY_CACHE="1")
    assert result.returncode == 0, result.stderr
    import json

    names = json.loads(result.stdout.strip().splitlines()[-1])
    nircam_names = names["nircam"]
    assert nircam_names["distortion"].startswith("jwst_nircam_distortion_")
    assert nircam_names["filteroffset"].startswith("jwst_nircam_filteroffset_")
    assert nircam_names["dark"].startswith("jwst_nircam_dark_")
    assert "N/A" in nircam_names["refpix"].upper()   # NIRCam has no IRS2 reference
    assert names["niriss"]["distortion"].startswith("jwst_niriss_distortion_")
    assert names["niriss"]["mask"].startswith("jwst_niriss_mask_")


def test_real_cache_resolves_present_files_and_reports_absent_ones():
    real_file("crds_cache/mappings/jwst/jwst_0676.pmap")
    meta = ("{'instrument': {'name': 'NIRCAM', 'detector': 'NRCALONG', 'filter': 'F444W', "
            "'pupil': 'CLEAR', 'channel': 'LONG', 'module': 'A'}, 'exposure': {'type': "
            "'NRC_IMAGE', 'readpatt': 'RAPID'}, 'observation': {'date': '2022-07-01', "
            "'time': '00:00:00'}, 'subarray': {'name': 'FULL'}}")
    code = f"""
from webbflow import crds as wc
from webbflow.errors import WebbflowError
s = wc.configure({{"path": {str(REAL_CACHE)!r}}})
refs = wc.best_references({meta}, ["filteroffset", "refpix"], context="jwst_0676.pmap",
                          settings=s, exposure="jw_test_uncal.fits")
print(refs["refpix"], refs["filteroffset"].endswith(".asdf"))
try:
    wc.best_references({meta}, ["dark"], context="jwst_0676.pmap", settings=s,
                       exposure="jw_test_uncal.fits")
except WebbflowError as exc:
    print("ERROR", exc)
try:
    wc.best_references({meta}, ["nonsense"], context="jwst_0676.pmap", settings=s,
                       exposure="jw_test_uncal.fits")
except WebbflowError as exc:
    print("ERROR", exc)
"""
    result = _run(code, CRDS_READONLY_CACHE="1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-3] == "N/A True"
    assert lines[-2].startswith("ERROR jw_test_uncal.fits: dark reference jwst_nircam_dark_")
    assert "not in the CRDS cache" in lines[-2] and "jwst_0676.pmap" in lines[-2]
    assert lines[-1] == ("ERROR jw_test_uncal.fits: unknown reference type 'nonsense' for "
                         "NIRCAM in CRDS context jwst_0676.pmap")


def test_missing_cache_is_one_clear_error(tmp_path):
    code = f"""
from webbflow import crds as wc
from webbflow.errors import WebbflowError
s = wc.configure({{"path": {str(tmp_path / 'nowhere')!r}}})
try:
    wc.best_references({{'instrument': {{'name': 'NIRCAM'}}}}, ["dark"], context="jwst_0001.pmap",
                       settings=s, exposure="jw_x_uncal.fits")
except WebbflowError as exc:
    print("ERROR", exc)
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ERROR jwst_0001.pmap: cannot read CRDS rules for NIRCAM")


def test_synthetic_cache_selects_by_detector_and_marks_na(synthetic_program):
    code = f"""
from webbflow import crds as wc
from webbflow.io import read_product
s = wc.configure({{"path": {str(synthetic_program / 'crds_cache')!r}}})
ctx = wc.resolve_context(s)
meta = read_product({str(sorted(synthetic_program.glob('*mirimage_uncal.fits'))[0])!r}).meta
refs = wc.best_references(meta, ["mask", "dark", "reset", "rscd", "superbias", "refpix"],
                          context=ctx, settings=s, exposure="x")
print(ctx, *(refs[k] if refs[k] == "N/A" else refs[k].rsplit('/', 1)[-1] for k in ["mask", "dark", "reset", "rscd", "superbias", "refpix"]))
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[0] == "jwst_0001.pmap"
    assert words[1].startswith("jwst_miri_mask_") and words[2].startswith("jwst_miri_dark_")
    assert words[3].startswith("jwst_miri_reset_") and words[4].startswith("jwst_miri_rscd_")
    assert words[5:] == ["N/A", "N/A"]
