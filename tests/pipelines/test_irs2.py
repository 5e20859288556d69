"""NIRSpec IRS2 against the simulated truth, and bad IRS2 input."""

import subprocess
import sys

import numpy as np
import pytest

from tests.irs2_support import UP_TO_REFPIX, cache_references, run_ours
from webbflow.sim.irs2 import write_irs2_reference
from webbflow.steps.irs2 import normal_rows


@pytest.fixture(scope="module")
def corrected(irs2_program):
    """Our ramp after refpix, from the raw file with the injected reference signals and
    from the same ramp without them (truth/…_irs2.npz)."""
    truth = np.load(irs2_program.parent / "truth" /
                    irs2_program.name.replace("_uncal.fits", "_irs2.npz"))
    with_signals = run_ours(irs2_program)
    clean = run_ours(irs2_program, data=truth["clean"])
    return with_signals, clean, truth


def _group_residual(a, b):
    """(a - b) per group, less its per-pixel mean over the groups (the ramp average that
    the correction keeps), over the science pixels."""
    d = a.astype(np.float64) - b
    d -= d.mean(axis=1, keepdims=True)
    return d[..., 4:-4, 4:-4]


def test_injected_reference_signals_removed(corrected, irs2_program):
    with_signals, clean, truth = corrected
    raw = run_ours(irs2_program, steps=UP_TO_REFPIX[:-1])  # before refpix: 3200 rows
    raw_clean = run_ours(irs2_program, steps=UP_TO_REFPIX[:-1], data=truth["clean"])
    rows = normal_rows(3200)
    injected = _group_residual(raw.data[:, :, rows, :], raw_clean.data[:, :, rows, :])
    left = _group_residual(with_signals.data, clean.data)
    rms_in, rms_left = np.sqrt(np.mean(injected ** 2)), np.sqrt(np.mean(left ** 2))
    # offsets ~30 DN, drifts ~20 DN and common mode ~10 DN per group go in
    assert rms_in > 20.0, rms_in
    assert rms_left < 0.03 * rms_in, (rms_in, rms_left)
    # no amplifier keeps a group offset: per-output mean residual per group
    for k in range(4):
        block = left[..., :, k * 512:(k + 1) * 512 - 8]
        assert np.max(np.abs(block.mean(axis=(2, 3)))) < 0.2


def test_bad_pairs_flagged(irs2_program):
    """The interleaved pair the simulator made noisy (300 DN rms) is found by the outlier
    test, the pair the MASK flags stays flagged; both get BAD_REF_PIXEL | DO_NOT_USE."""
    from webbflow.dqflags import PIXEL
    from webbflow.steps.irs2 import flag_bad_reference_pairs

    raw = run_ours(irs2_program, steps=UP_TO_REFPIX[:-1])
    interleaved = ~normal_rows(3200)
    noisy = np.flatnonzero(interleaved[640:1280])[10] + 640       # as webbflow.sim.irs2
    in_mask = np.flatnonzero(interleaved[1280:1920])[6] + 1280
    assert np.all(raw.pdq[in_mask:in_mask + 2] & PIXEL["BAD_REF_PIXEL"])
    assert not np.any(raw.pdq[noisy:noisy + 2] & PIXEL["BAD_REF_PIXEL"])
    flag_bad_reference_pairs(raw.data, raw.pdq, PIXEL, 16, 4, flag=True, replace=False)
    flagged = np.flatnonzero(np.all(raw.pdq & (PIXEL["BAD_REF_PIXEL"] | PIXEL["DO_NOT_USE"])
                                    == (PIXEL["BAD_REF_PIXEL"] | PIXEL["DO_NOT_USE"]), axis=1))
    for row in (noisy, noisy + 1, in_mask, in_mask + 1):
        assert row in flagged
    # only interleaved reference rows are ever flagged
    assert np.all(interleaved[flagged] | (flagged < 640))


def test_refpix_of_the_wrong_shape(irs2_program, tmp_path):
    """A REFPIX table of the wrong length: one line naming the file, no product."""
    cache = irs2_program.parent / "crds_cache"
    bad = tmp_path / "crds_cache"
    for path in cache.rglob("*"):
        target = bad / path.relative_to(cache)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name != "jwst_nirspec_refpix_0001.fits":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    refpix = bad / "references" / "jwst" / "nirspec" / "jwst_nirspec_refpix_0001.fits"
    alpha = np.zeros((4, 10), np.complex64)
    write_irs2_reference(refpix, "NRS1", alpha, alpha, nrows=2 * 712 * 1024)
    assert cache_references(bad)["refpix"] == str(refpix)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-m", "webbflow.cli", str(irs2_program),
                             "--outdir", str(out), "--crds-path", str(bad)],
                            capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stderr.splitlines() if line.startswith("webbflow: ")]
    assert result.returncode == 1, result.stderr[-2000:]
    assert lines == [f"webbflow: {refpix}: REFPIX IRS2 table has 1458176 rows; the IRS2 "
                     "readout needs 2 x 712 x 2048 = 2916352"], result.stderr[-2000:]
    assert not list(out.iterdir())
