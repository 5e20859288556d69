"""Bad input to stages 2 and 3: one clear line naming the file and the problem, no output."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from astropy.io import fits

from tests.pipelines.test_bad_input import _error_line

NIRCAM = "jw01234005001_02101_00001_nrca1"
CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


def _image2(rate, cache, outdir, *extra):
    outdir.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "webbflow.cli", "image2", str(rate),
                           "--outdir", str(outdir), "--crds-path", str(cache), *extra],
                          capture_output=True, text=True, timeout=900)


@pytest.fixture
def rate(imaging_rates, tmp_path):
    program, rates = imaging_rates
    target = tmp_path / f"{NIRCAM}_rate.fits"
    shutil.copy(program / "rate" / target.name, target)
    return program, target


def test_truncated_rate(rate, tmp_path):
    program, path = rate
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    line = _error_line(_image2(path, program / "crds_cache", out))
    assert path.name in line and ("truncated" in line or "readable" in line), line
    assert not list(out.iterdir())


def test_missing_err_extension(rate, tmp_path):
    program, path = rate
    with fits.open(path) as hdul:
        del hdul["ERR"]
        hdul.writeto(path, overwrite=True)
    out = tmp_path / "out"
    line = _error_line(_image2(path, program / "crds_cache", out))
    assert path.name in line and "err" in line.lower(), line
    assert not list(out.iterdir())


def test_no_distortion_reference(rate, tmp_path):
    program, path = rate
    config = yaml.safe_load(CONFIG.read_text())
    config["crds"]["overrides"] = {"distortion": "N/A"}
    custom = tmp_path / "config.yaml"
    custom.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    line = _error_line(_image2(path, program / "crds_cache", out, "--config", str(custom)))
    assert path.name in line and "DISTORTION" in line, line
    assert not list(out.iterdir())


def test_image3_member_without_wcs(rate, tmp_path):
    """A rate file offered as a cal member: no WCS, so no stage 3, and no output."""
    program, path = rate
    asn = {"asn_type": "image3", "asn_id": "o005",
           "products": [{"name": "jw01234-o005_t001_nircam_f200w",
                         "members": [{"expname": path.name, "exptype": "science"}]}]}
    asn_path = tmp_path / "image3_asn.json"
    asn_path.write_text(json.dumps(asn))
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", "image3", str(asn_path),
                             "--outdir", str(out), "--crds-path", str(program / "crds_cache")],
                            capture_output=True, text=True, timeout=900)
    line = _error_line(result)
    assert path.name in line and "WCS" in line, line
    assert not list(out.iterdir())


@pytest.mark.parametrize("problem", ["rateints", "missing", "no_dq"])
def test_bad_background_member(rate, tmp_path, problem):
    """A background member that is a 3-D rateints, absent, or without DQ."""
    program, path = rate
    background = tmp_path / "jw01234009001_02101_00001_nrca1_rate.fits"
    if problem == "rateints":
        shutil.copy(program / "rate" / f"{NIRCAM}_rateints.fits", background)
    elif problem == "no_dq":
        shutil.copy(path, background)
        with fits.open(background) as hdul:
            del hdul["DQ"]
            hdul.writeto(background, overwrite=True)
    out = tmp_path / "out"
    line = _error_line(_image2(path, program / "crds_cache", out, "--background",
                               str(background)))
    assert background.name in line, line
    expected = {"rateints": "3-d background", "missing": "no such file", "no_dq": "dq"}
    assert expected[problem] in line.lower(), line
    assert not list(out.iterdir())
