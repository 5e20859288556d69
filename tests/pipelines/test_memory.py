"""The heap a stage process faults in ahead of its ramp is the heap its arrays then take."""

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import numpy as np
from webbflow.pipelines.memory import prefault_for

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

before = resident_mb()
thread = prefault_for(sys.argv[1])
thread.join()
touched = resident_mb()
working_copy = np.ones(int(sys.argv[2]) * 2**20 // 4, np.float32)
after = resident_mb()
print(before, touched, after)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator")
def test_prefaulted_heap_is_taken_by_the_next_arrays(tmp_path):
    raw = tmp_path / "jw_uncal.fits"
    raw.write_bytes(bytes(48 * 2**20))  # a 48 MB uint16 ramp: a 96 MB float32 copy
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(raw), "96"], check=True,
                         capture_output=True, text=True).stdout
    before, touched, after = map(float, out.split())
    assert touched - before > 90      # every page of the 96 MB was faulted in
    assert after - touched < 8        # the float32 copy took them: no new pages


def test_prefault_of_a_missing_file_does_nothing(tmp_path):
    from webbflow.pipelines.memory import prefault_for

    assert prefault_for(tmp_path / "absent_uncal.fits") is None
