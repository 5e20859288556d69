"""Spectra MAST delivered with a program are plotted and shown in the report, through
the Snakemake CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
             "--workflow-profile", "none", "--cores", "2"]

pytestmark = pytest.mark.workflow

X1D = "mast/jw01345062001_03101_00001_nrs1_x1d"
X1DINTS = "jw01366004001_04101_00001-seg001_nrs1_x1dints"
BROKEN = "jw01345062001_03101_00002_nrs1_x1d"


def _snakemake(workdir, *args):
    return subprocess.run(SNAKEMAKE + ["--directory", str(workdir), *args],
                          capture_output=True, text=True, timeout=600)


def _spec(nwave, nints=None):
    dtype = datamodels.SpecModel().get_dtype("spec_table")
    table = np.zeros(nwave, dtype=dtype)
    table["WAVELENGTH"] = np.linspace(1.0, 5.0, nwave)
    table["FLUX"] = 1e-3
    table["FLUX"][::17] = np.nan
    table["DQ"][::17] = 1
    return datamodels.SpecModel(spec_table=table)


@pytest.fixture
def program(tmp_path):
    """A program directory with a delivered x1d (two sources, in a subdirectory) and a
    delivered x1dints."""
    root = tmp_path / "jw01345"
    (root / "mast").mkdir(parents=True)
    model = datamodels.MultiSpecModel()
    for source in (1, 2):
        spec = _spec(100)
        spec.source_id = source
        model.spec.append(spec)
    model.save(root / f"{X1D}.fits")
    from jwst.datamodels.utils.tso_multispec import make_tso_specmodel

    tso = datamodels.TSOMultiSpecModel()
    tso.spec.append(make_tso_specmodel([_spec(50) for _ in range(4)]))
    tso.save(root / f"{X1DINTS}.fits")
    return root


def test_report_shows_a_plot_of_every_delivered_spectrum(program):
    result = _snakemake(program)
    assert result.returncode == 0, result.stderr[-3000:]
    for stem in (X1D, X1DINTS):
        assert (program / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = _snakemake(program, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (program / "report.html").read_text(errors="replace")
    assert Path(X1D).name + ".png" in html and X1DINTS + ".png" in html
    assert "Spectra" in html
    assert f"{X1D}.fits</tt> as" in html              # the caption, with its wildcards
    # nothing left to do: the plots are up to date
    assert "Nothing to be done" in _snakemake(program, "-n").stdout


def test_a_delivered_file_without_spectra_fails_in_one_line(program):
    datamodels.ImageModel(np.zeros((4, 4), np.float32)).save(program / f"{BROKEN}.fits")
    result = _snakemake(program, f"{BROKEN}.png")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("webbflow:")]
    assert lines == [f"webbflow: {BROKEN}.fits: no EXTRACT1D or COMBINE1D spectrum table to plot"]
    assert not (program / f"{BROKEN}.png").exists()
