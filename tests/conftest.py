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
