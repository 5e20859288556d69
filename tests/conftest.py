"""Shared fixtures: one synthetic demo program per test session."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# tests import their references as ``tests.reference...`` whatever the working directory
sys.path.insert(0, str(REPO))

# kernels compile once per machine; tests share the package's numba cache
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))


@pytest.fixture(scope="session")
def synthetic_program(tmp_path_factory):
    """The demo program and its CRDS cache, simulated once (read-only for tests)."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import demo_program

    root = tmp_path_factory.mktemp("demo")
    simulate_program(root, demo_program(), seed=0)
    return root


@pytest.fixture(scope="session")
def imaging_rates(tmp_path_factory):
    """The dithered imaging program (four NIRCam 512x512 exposures, a MIRI pair) and our
    stage-1 rate files of it: the input of the stage-2/3 tests."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import imaging_program
    from tests.oracle.ours import run_detector1_cli

    root = tmp_path_factory.mktemp("imaging")
    simulate_program(root, imaging_program(), seed=0)
    rates = root / "rate"
    for uncal in sorted(root.glob("*_uncal.fits")):
        run_detector1_cli(uncal, rates, root / "crds_cache")
    return root, sorted(rates.glob("*_rate.fits"))


@pytest.fixture(scope="session")
def image2_products(imaging_rates, tmp_path_factory):
    """calwebb_image2 of every imaging rate file, ours and the official pipeline's:
    (our directory, the official directory)."""
    from tests.oracle.official import run_official
    from tests.oracle.ours import run_image2_cli

    program, rates = imaging_rates
    ours = tmp_path_factory.mktemp("ours_image2")
    official = tmp_path_factory.mktemp("official_image2")
    for rate in rates:
        run_image2_cli(rate, ours, program / "crds_cache")
    run_official([(str(rate), {}) for rate in rates], program / "crds_cache", official,
                 pipeline="Image2Pipeline")
    return ours, official


@pytest.fixture(scope="session")
def nis_fgs_program(tmp_path_factory):
    """The NIRISS and FGS imaging program (four NIRISS 512x512 exposures, a full-frame
    FGS pair) and its CRDS cache (read-only for tests)."""
    from webbflow.sim.observatory import simulate_program
    from webbflow.sim.program import imaging_nis_fgs_program

    root = tmp_path_factory.mktemp("imaging_nis_fgs")
    simulate_program(root, imaging_nis_fgs_program(), seed=0)
    return root


@pytest.fixture(scope="session")
def nis_fgs_rates(nis_fgs_program):
    """``nis_fgs_program`` and our stage-1 rate files of it."""
    from tests.oracle.ours import run_detector1_cli

    root = nis_fgs_program
    rates = root / "rate"
    for uncal in sorted(root.glob("*_uncal.fits")):
        run_detector1_cli(uncal, rates, root / "crds_cache")
    return root, sorted(rates.glob("*_rate.fits"))


@pytest.fixture(scope="session")
def nis_fgs_image2_products(nis_fgs_rates, tmp_path_factory):
    """calwebb_image2 of the NIRISS and FGS rate files, ours and the official pipeline's:
    (our directory, the official directory)."""
    from tests.oracle.official import run_official
    from tests.oracle.ours import run_image2_cli

    program, rates = nis_fgs_rates
    ours = tmp_path_factory.mktemp("ours_image2_nis_fgs")
    official = tmp_path_factory.mktemp("official_image2_nis_fgs")
    for rate in rates:
        run_image2_cli(rate, ours, program / "crds_cache")
    run_official([(str(rate), {}) for rate in rates], program / "crds_cache", official,
                 pipeline="Image2Pipeline")
    return ours, official


@pytest.fixture(scope="session")
def irs2_program(tmp_path_factory):
    """One NIRSpec IRS2 exposure (NRS1, NRSIRS2RAPID, full frame 3200x2048, 4 groups)
    with injected reference signals, its CRDS cache and truth (read-only for tests)."""
    from webbflow.sim.irs2 import simulate_irs2_program

    root = tmp_path_factory.mktemp("irs2")
    return simulate_irs2_program(root)
