"""The command line remembers its reference choices in the output directory: the same
exposure run again gets the same products without loading the CRDS client, and an
override added to the config afterwards still takes effect."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from webbflow.io import read_product

REPO = Path(__file__).resolve().parents[2]
NIS3 = "jw01234002001_02101_00001_nis"

# runs the command line in this process and says whether the CRDS client was imported
RUN_AND_REPORT = """
import sys
from webbflow.cli import detector1
status = detector1(sys.argv[1:])
print("crds imported:", "crds" in sys.modules)
sys.exit(status)
"""


def _run(uncal, cache, outdir, *extra):
    result = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, str(uncal), "--outdir",
                             str(outdir), "--crds-path", str(cache), *extra],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1] == "crds imported: True"


def _rate(outdir):
    product = read_product(outdir / f"{NIS3}_rate.fits")
    arrays = {name: np.array(product[name]) for name in ("data", "dq", "err")}
    meta = product.meta
    product.close()
    return arrays, meta


def test_second_run_reuses_the_choice_and_overrides_still_apply(synthetic_program, tmp_path):
    uncal = tmp_path / f"{NIS3}_uncal.fits"
    shutil.copy(synthetic_program / f"{NIS3}_uncal.fits", uncal)
    cache = synthetic_program / "crds_cache"
    out = tmp_path / "out"

    assert _run(uncal, cache, out)  # first run: CRDS chooses
    assert list((out / ".webbflow").glob("refs_*.json"))
    first, first_meta = _rate(out)

    assert not _run(uncal, cache, out)  # same question: answered from the output directory
    second, second_meta = _rate(out)
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])
    assert second_meta["ref_file"] == first_meta["ref_file"]
    assert first_meta["cal_step"]["dark_sub"] == "COMPLETE"

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.setdefault("crds", {})["overrides"] = {"dark": "N/A"}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    _run(uncal, cache, out, "--config", str(config_path))
    _, overridden = _rate(out)
    assert overridden["cal_step"]["dark_sub"] == "SKIPPED"
