"""Bad input to stage 1: one clear line naming the file and the problem, no output."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.realdata import real_file
from webbflow.io import read_product, write_product

NIS3 = "jw01234002001_02101_00001_nis"


def _detector1(uncal, cache, outdir, *extra):
    outdir.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "webbflow.cli", str(uncal), "--outdir",
                           str(outdir), "--crds-path", str(cache), *extra],
                          capture_output=True, text=True, timeout=900)


def _error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("webbflow: ")]
    assert result.returncode == 1, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.fixture
def raw(synthetic_program, tmp_path):
    target = tmp_path / f"{NIS3}_uncal.fits"
    shutil.copy(synthetic_program / f"{NIS3}_uncal.fits", target)
    return target


def test_unknown_exp_type(raw, synthetic_program, tmp_path):
    fits.setval(raw, "EXP_TYPE", value="NIS_SELFIE")
    line = _error_line(_detector1(raw, synthetic_program / "crds_cache", tmp_path / "out"))
    assert line == f"webbflow: {raw}: unknown EXP_TYPE 'NIS_SELFIE'"
    assert not list((tmp_path / "out").iterdir())


def test_ramp_shape_contradicting_nints(raw, synthetic_program, tmp_path):
    fits.setval(raw, "NINTS", value=4)
    fits.setval(raw, "INTEND", value=4)
    line = _error_line(_detector1(raw, synthetic_program / "crds_cache", tmp_path / "out"))
    assert "header NINTS=4 contradicts the SCI shape (1, 3, 256, 256)" in line
    assert not list((tmp_path / "out").iterdir())


def test_raw_ramp_of_the_wrong_dtype(raw, synthetic_program, tmp_path):
    product = read_product(raw)
    data = product["data"].astype(np.float32)
    product.close()
    with fits.open(raw) as hdulist:
        hdulist["SCI"].data = data
        hdulist.writeto(tmp_path / "float_uncal.fits")
    bad = tmp_path / f"{NIS3}_uncal.fits"
    shutil.move(tmp_path / "float_uncal.fits", bad)
    line = _error_line(_detector1(bad, synthetic_program / "crds_cache", tmp_path / "out"))
    assert line.endswith("SCI of a raw exposure must be uint16 (BITPIX 16, BZERO 32768), got BITPIX -32")
    assert not list((tmp_path / "out").iterdir())


def test_reference_of_the_wrong_shape(raw, synthetic_program, tmp_path):
    cache = tmp_path / "crds_cache"
    shutil.copytree(synthetic_program / "crds_cache", cache, symlinks=True,
                    copy_function=lambda s, d: Path(d).symlink_to(s))
    gain_name = next(p.name for p in (cache / "references/jwst/niriss").iterdir() if "_gain_" in p.name)
    gain_path = cache / "references/jwst/niriss" / gain_name
    gain = read_product(gain_path)
    small = gain["data"][:1024, :1024].copy()
    gain.close()
    gain_path.unlink()
    product = read_product(synthetic_program / "crds_cache/references/jwst/niriss" / gain_name)
    product["data"] = small
    product.meta["subarray"].update(xsize=1024, ysize=1024)
    write_product(gain_path, product)
    line = _error_line(_detector1(raw, cache, tmp_path / "out"))
    assert gain_name in line and "does not fit in the reference" in line
    assert not list((tmp_path / "out").iterdir())


def test_missing_reference_file(raw, synthetic_program, tmp_path):
    cache = tmp_path / "crds_cache"
    shutil.copytree(synthetic_program / "crds_cache", cache, symlinks=True,
                    copy_function=lambda s, d: Path(d).symlink_to(s))
    dark = next(p for p in (cache / "references/jwst/niriss").iterdir() if "_dark_" in p.name)
    dark.unlink()
    line = _error_line(_detector1(raw, cache, tmp_path / "out"))
    assert line == (f"webbflow: {raw}: dark reference {dark.name} (context jwst_0001.pmap) is "
                    f"not in the CRDS cache {cache} and CRDS is offline")
    assert not list((tmp_path / "out").iterdir())


def test_ramp_fit_switched_off_is_refused(raw, synthetic_program, tmp_path):
    config = tmp_path / "config.yaml"
    text = (Path(__file__).resolve().parents[2] / "config/config.yaml").read_text()
    config.write_text(text.replace("    ramp_fit:\n      skip: false", "    ramp_fit:\n      skip: true"))
    line = _error_line(_detector1(raw, synthetic_program / "crds_cache", tmp_path / "out",
                                  "--config", str(config)))
    assert line.endswith("ramp_fit is skipped: no rate product can be made")


def test_real_ground_test_ramp_without_exp_type_fails_clearly(synthetic_program, tmp_path):
    """A real MIRI ground-test ramp (JPL, 2018) with a minimal header: no EXP_TYPE."""
    real = real_file("uncal/MIRI_5582_89_S_20180308-010230_SCE1_pipe.fits")
    line = _error_line(_detector1(real, synthetic_program / "crds_cache", tmp_path / "out"))
    assert line == f"webbflow: {real}: missing EXP_TYPE keyword"
    assert not list((tmp_path / "out").iterdir())
