"""The plan keywords read from primary headers: the quick card reader gives astropy's
values, and leaves every header it does not handle to astropy."""

import pytest
from astropy.io import fits

from webbflow import planning
from webbflow.errors import WebbflowError


def _by_astropy(path):
    return planning._astropy_primary_values(path, planning._plan_cards())


def _astropy_plan(path):
    """The plan as read by astropy alone (what the workflow did before the quick reader):
    the metadata, or the type of the exception raised."""
    try:
        header = fits.getheader(path, 0)
    except Exception:
        return WebbflowError
    meta = {}
    try:
        for dotted, keyword in planning._plan_cards():
            if keyword in header and isinstance(header[keyword], (str, int, float, bool)):
                planning.set_meta(meta, dotted, header[keyword])
    except Exception as exc:
        return type(exc)
    return meta


def _plan(path):
    try:
        return planning._read_plan_header(path)
    except Exception as exc:
        return type(exc)


def _write_header(path, cards):
    """A primary header of these card images, written byte for byte (no data)."""
    images = ["SIMPLE  =                    T", "BITPIX  =                    8",
              "NAXIS   =                    0", *cards, "END"]
    text = "".join(image.ljust(80) for image in images)
    text += " " * (-len(text) % 2880)
    path.write_bytes(text.encode("ascii"))
    return path


@pytest.fixture(scope="module")
def simulated(synthetic_program):
    """The demo program's raw exposures (every instrument, segments of a time series)."""
    return sorted(synthetic_program.rglob("*_uncal.fits"))


def test_simulated_exposures_are_read_quickly_as_astropy_reads_them(simulated):
    wanted = {keyword for _, keyword in planning._plan_cards()}
    for path in simulated:
        quick = planning._quick_primary_values(path, wanted)
        assert quick is not None, path.name
        assert quick == _by_astropy(path), path.name
        assert {k: type(v) for k, v in quick.items()} == \
            {k: type(v) for k, v in _by_astropy(path).items()}
        assert _plan(path) == _astropy_plan(path) and _plan(path)["instrument"]["name"]


PLAIN_CARDS = [
    "INSTRUME= 'NIRCAM  '           / trailing blanks are not part of the value",
    "DETECTOR= '  NRCA1'            / leading blanks are",
    "FILTER  = ''                   / empty",
    "PUPIL   = 'a/b'/no space before the comment",
    "EXP_TYPE=   'NRC_IMAGE'",
    "NINTS   =                   +3 / sign",
    "NGROUPS =                  007",
    "NFRAMES =                   -0",
    "GROUPGAP=                   12/comment",
    "GAINFACT=              1.5D+01 / D exponent",
    "SUBSTRT1=                 1.E3",
    "SUBSTRT2=                  .25",
    "SUBSIZE1=                2048.",
    "TSOVISIT=                    T",
    "BKGDTARG=                    F / bool",
    "SUBSIZE2=                      / undefined",
    "COMMENT   DETECTOR= 'NRCB1' is a comment, not a card",
    "HISTORY INSTRUME = 'MIRI'",
    "DETECTOR= 'NRCB5'              / a second card: the first one counts",
    "PROGRAM = '01234'",
    "TARGNAME= 'M 31: 2 fields'     / colons without a number after them",
]


def test_plain_cards_read_as_astropy_reads_them(tmp_path):
    path = _write_header(tmp_path / "plain.fits", PLAIN_CARDS[:-1])
    wanted = {keyword for _, keyword in planning._plan_cards()}
    quick = planning._quick_primary_values(path, wanted)
    assert quick is not None
    assert quick == _by_astropy(path)
    assert {k: type(v) for k, v in quick.items()} == \
        {k: type(v) for k, v in _by_astropy(path).items()}
    assert quick["DETECTOR"] == "  NRCA1" and quick["INSTRUME"] == "NIRCAM"
    assert quick["GAINFACT"] == 15.0 and quick["NGROUPS"] == 7 and "SUBSIZE2" not in quick
    assert _plan(path) == _astropy_plan(path)


@pytest.mark.parametrize("card", [
    "TARGNAME= 'O''Brien'           / doubled quote",
    "TARGNAME= 'AXIS.1: 2'          / record-valued keyword card",
    "TARGNAME= 'a long value &'",
    "NINTS   =               1.5e3  / lower-case exponent",
    "NINTS   =                (1,2) / complex",
    "NINTS   =                3 4",
    "NINTS= 4",
    " NINTS  =                    4",
    "NINTS   =\t3",
    "HIERARCH ESO DET = 3",
])
def test_other_cards_are_left_to_astropy(tmp_path, card):
    path = _write_header(tmp_path / "other.fits", ["INSTRUME= 'NIRISS'", card,
                                                   "CONTINUE  'more'" if "&" in card else ""])
    wanted = {keyword for _, keyword in planning._plan_cards()}
    assert planning._quick_primary_values(path, wanted) is None
    assert _plan(path) == _astropy_plan(path)


def test_broken_files_fail_as_before(tmp_path):
    truncated = _write_header(tmp_path / "truncated.fits", ["INSTRUME= 'NIRISS'"])
    truncated.write_bytes(truncated.read_bytes()[:1000])
    not_fits = tmp_path / "text.fits"
    not_fits.write_text("hello\n" * 1000)
    for path in (truncated, not_fits, tmp_path / "missing.fits"):
        assert planning._quick_primary_values(path, {"INSTRUME"}) is None
        with pytest.raises(WebbflowError, match=f"{path.name}.*unreadable FITS header"):
            planning._read_plan_header(path)
