import pytest

from webbflow.sim import readout as R


def test_nircam_frame_times():
    assert R.frame_time("NIRCAM") == pytest.approx(10.73677, abs=1e-9)
    assert R.frame_time("NIRCAM", "SUB640") == pytest.approx(4.18584, abs=1e-9)
    assert R.frame_time("NIRCAM", "SUB160") == pytest.approx(0.27864, abs=1e-9)
    assert R.frame_time("NIRCAM", "SUB64P") == pytest.approx(0.05016, abs=1e-9)
    assert R.group_time("NIRCAM", "DEEP8") == pytest.approx(20 * 10.73677, abs=1e-6)


def test_patterns():
    p = R.READ_PATTERNS[("NIRCAM", "MEDIUM8")]
    assert (p.nframes, p.groupgap, p.max_ngroups) == (8, 2, 10)
    assert R.READ_PATTERNS[("NIRISS", "NIS")].nframes == 4
    assert R.frame_time("MIRI", "FULL", "FASTR1") == 2.775
    with pytest.raises(KeyError):
        R.frame_time("MIRI", "SUB256", "FAST")
