"""JWST readout patterns and frame times (facts only, each with its source).

Sources:

* [jwst-dark] spacetelescope/jwst 3.0.0, ``jwst/dark_current/tests/test_dark_sub.py``
  (``_params``): the nine NIRCam patterns with ``nframes``, ``nskip`` (= GROUPGAP) and the
  maximum ``ngroups`` (DEEP*: 20, the rest: 10).
* [jdox-nrc-sub] JDox "NIRCam Detector Subarrays": 10 µs per pixel;
  ``tframe = ((ncols/noutputs + 12) * (nrows + 1) + 1) * 10 µs`` for 4 outputs and
  ``tframe = (ncols + 12) * (nrows + 2) * 10 µs`` for 1 output; full frame (4 outputs)
  10.737 s. The 4-output formula gives 10.73677 s, the value the jwst 3.0.0 tests use
  (``TFRAME = 10.73677`` in ``jwst/dark_current/tests/test_dark_sub.py``).
* [jdox-nis] JDox "NIRISS Detector Readout Patterns": NISRAPID saves every frame
  (NFRAMES = 1), NIS averages 4 frames (NFRAMES = 4); "for the NIRISS readout patterns, no
  frames are skipped"; full frame through 4 outputs in 10.737 s. JDox "NIRISS imaging
  template": at most 30 groups in NISRAPID.
* [jdox-miri] JDox "Comparison of Old and New MIRI Detector Readout Patterns" and "MIRI
  Detector Readout FAST/FASTR1/SLOWR1": one frame per group (NFRAMES = 1; SLOW/SLOWR1
  average 8 samples of a pixel inside that one frame), group time
  for the FULL array 2.775 s (FAST, FASTR1) and 23.890 s (SLOW, SLOWR1); the R1 patterns
  add one reset between integrations. jwst 3.0.0 tests use ``group_time = 2.775`` for
  MIRI FULL (``jwst/emicorr/tests/test_emicorr.py``).
* [jdox-fgs] JDox "FGS Science Readout Patterns": FGSRAPID reads one frame per group
  and skips none (NFRAMES = 1, GROUPGAP = 0), full frame through 4 outputs with the
  near-IR SIDECAR clocking (the frame time follows ``nircam_frame_time``).
* [miri-sub64] the real MIRI ground-test ramp in ``/work/shared/realdata/uncal``
  (``MIRI_5582_89_S_20180308-010230_SCE1_pipe.fits``): SUBARRAY SUB64, READPATT FAST,
  SUBSTRT1 1, SUBSTRT2 779, SUBSIZE1 72, SUBSIZE2 64, TFRAME 0.085 s.

* [jdox-nrs-irs2] JDox "NIRSpec Detector Readout Modes and Patterns": NRSIRS2RAPID saves
  every frame (NFRAMES = 1), NRSIRS2 averages 5 frames per group, none skipped.
* [jwst-irs2] spacetelescope/jwst 3.0.0 ``jwst/refpix/irs2_subtract_reference.py``
  (``correct_model`` comments): TPIX 10 us, 712 samples per row of each output
  (16 normal, 4 reference, 2 jump overheads per 20; 8 samples of new-row overhead),
  NFOH 714 samples, tframe 14.5889 s.

Nothing here is guessed: values not found in these sources are absent.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ReadPattern",
    "READ_PATTERNS",
    "nircam_frame_time",
    "FRAME_TIMES",
    "NIRCAM_SUBARRAYS",
    "frame_time",
    "group_time",
]


@dataclass(frozen=True)
class ReadPattern:
    instrument: str
    name: str
    nframes: int
    groupgap: int
    max_ngroups: int | None = None
    nresets_between_ints: int = 1


READ_PATTERNS = {
    # NIRCam [jwst-dark]
    ("NIRCAM", "RAPID"): ReadPattern("NIRCAM", "RAPID", 1, 0, 10),
    ("NIRCAM", "BRIGHT1"): ReadPattern("NIRCAM", "BRIGHT1", 1, 1, 10),
    ("NIRCAM", "BRIGHT2"): ReadPattern("NIRCAM", "BRIGHT2", 2, 0, 10),
    ("NIRCAM", "SHALLOW2"): ReadPattern("NIRCAM", "SHALLOW2", 2, 3, 10),
    ("NIRCAM", "SHALLOW4"): ReadPattern("NIRCAM", "SHALLOW4", 4, 1, 10),
    ("NIRCAM", "MEDIUM2"): ReadPattern("NIRCAM", "MEDIUM2", 2, 8, 10),
    ("NIRCAM", "MEDIUM8"): ReadPattern("NIRCAM", "MEDIUM8", 8, 2, 10),
    ("NIRCAM", "DEEP2"): ReadPattern("NIRCAM", "DEEP2", 2, 18, 20),
    ("NIRCAM", "DEEP8"): ReadPattern("NIRCAM", "DEEP8", 8, 12, 20),
    # NIRISS [jdox-nis]
    ("NIRISS", "NISRAPID"): ReadPattern("NIRISS", "NISRAPID", 1, 0, 30),
    ("NIRISS", "NIS"): ReadPattern("NIRISS", "NIS", 4, 0, None),
    # FGS [jdox-fgs]
    ("FGS", "FGSRAPID"): ReadPattern("FGS", "FGSRAPID", 1, 0, None),
    # NIRSpec IRS2 [jdox-nrs-irs2]
    ("NIRSPEC", "NRSIRS2RAPID"): ReadPattern("NIRSPEC", "NRSIRS2RAPID", 1, 0, None),
    ("NIRSPEC", "NRSIRS2"): ReadPattern("NIRSPEC", "NRSIRS2", 5, 0, None),
    # MIRI [jdox-miri]: one (possibly multi-sample) frame per group; R1 = extra reset
    ("MIRI", "FAST"): ReadPattern("MIRI", "FAST", 1, 0, None, 1),
    ("MIRI", "SLOW"): ReadPattern("MIRI", "SLOW", 1, 0, None, 1),
    ("MIRI", "FASTR1"): ReadPattern("MIRI", "FASTR1", 1, 0, None, 2),
    ("MIRI", "SLOWR1"): ReadPattern("MIRI", "SLOWR1", 1, 0, None, 2),
}


def nircam_frame_time(ncols, nrows, noutputs):
    """NIRCam frame time in s [jdox-nrc-sub]."""
    if noutputs == 4:
        return ((ncols / 4 + 12) * (nrows + 1) + 1) * 10e-6
    if noutputs == 1:
        return (ncols + 12) * (nrows + 2) * 10e-6
    raise ValueError("noutputs must be 1 or 4")


# NIRCam imaging subarrays with their size (SUBSIZE1 = ncols, SUBSIZE2 = nrows) and
# NOUTPUTS; names are in stdatamodels' subarray enum. Sizes are the number in the name.
NIRCAM_SUBARRAYS = {
    "FULL": (2048, 2048, 4),
    "SUB640": (640, 640, 1),
    "SUB320": (320, 320, 1),
    "SUB160": (160, 160, 1),
    "SUB400P": (400, 400, 1),
    "SUB160P": (160, 160, 1),
    "SUB64P": (64, 64, 1),
}

# (instrument, subarray, readpatt) -> frame time in s
FRAME_TIMES = {
    ("NIRCAM", "FULL", None): nircam_frame_time(2048, 2048, 4),      # 10.73677 [jdox-nrc-sub]
    ("NIRISS", "FULL", None): nircam_frame_time(2048, 2048, 4),      # 10.737 [jdox-nis]
    ("MIRI", "FULL", "FAST"): 2.775,                                 # [jdox-miri]
    ("MIRI", "FULL", "FASTR1"): 2.775,                               # [jdox-miri]
    ("MIRI", "FULL", "SLOW"): 23.890,                                # [jdox-miri]
    ("MIRI", "FULL", "SLOWR1"): 23.890,                              # [jdox-miri]
    ("MIRI", "SUB64", "FAST"): 0.085,                                # [miri-sub64]
    # IRS2 full frame: ((16 + 4 + 2) * 32 + 8) * 2048 + 714 samples of 10 us [jwst-irs2]
    ("NIRSPEC", "FULL", "NRSIRS2RAPID"): 14.5889,
    ("NIRSPEC", "FULL", "NRSIRS2"): 14.5889,
}
for _name, (_nc, _nr, _no) in NIRCAM_SUBARRAYS.items():
    FRAME_TIMES.setdefault(("NIRCAM", _name, None), nircam_frame_time(_nc, _nr, _no))


def frame_time(instrument, subarray="FULL", readpatt=None):
    """Frame time (s) from :data:`FRAME_TIMES`; KeyError when no source gives it."""
    instrument = instrument.upper()
    for key in ((instrument, subarray, readpatt), (instrument, subarray, None)):
        if key in FRAME_TIMES:
            return FRAME_TIMES[key]
    raise KeyError(f"no confirmed frame time for {instrument} {subarray} {readpatt}")


def group_time(instrument, readpatt, subarray="FULL"):
    """TGROUP = (NFRAMES + GROUPGAP) * TFRAME."""
    p = READ_PATTERNS[(instrument.upper(), readpatt)]
    return (p.nframes + p.groupgap) * frame_time(instrument, subarray, readpatt)


# MIRI EMI: frequencies (Hz) by the names the EMICORR reference gives them, the values
# in jwst 3.0 ``jwst/emicorr/tests/test_emicorr.py`` (Hz390, Hz10) and the
# ``emicorr.py`` comments (218.52055 Hz); samples per pixel read (NSAMPLES) per pattern,
# ``emicorr.py``: "1 for fastmode, 9 for slowmode"
MIRI_EMI_FREQUENCIES = {"Hz390": 390.625, "Hz218a": 218.52055, "Hz10": 10.039216}
MIRI_NSAMPLES = {"FAST": 1, "FASTR1": 1, "SLOW": 9, "SLOWR1": 9}
