"""Where the project's real JWST files are (read-only, shared beside the checkout).

``WEBBFLOW_REALDATA`` wins; otherwise ``../shared/realdata`` next to the repository, then
the workplace's ``/work/shared/realdata``. Tests needing them skip when none exists.
"""

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [os.environ.get("WEBBFLOW_REALDATA"), _REPO.parent / "shared" / "realdata",
               "/work/shared/realdata"]

REALDATA = next((Path(c) for c in _CANDIDATES if c and Path(c).is_dir()),
                _REPO.parent / "shared" / "realdata")


def real_file(relative):
    """The path of a real file, or a skip of the calling test when it is absent."""
    path = REALDATA / relative
    if not path.exists():
        pytest.skip(f"real data {relative} not available")
    return path
