"""tweakreg's matching and fitting against simulated truth (no files, no oracle): a
random star list seen through a known rotation and shift, with centroid noise, a few
stars missing and a few spurious ones."""

import numpy as np
import pytest

from webbflow.steps.tweakreg_match import estimate_shift_2dhist, fit_linear, xyxymatch


def _scene(rng, n=60, rot_deg=0.01, shift=(0.045, -0.03), noise=0.002):
    ref = rng.uniform(-8, 8, (n, 2))
    theta = np.radians(rot_deg)
    matrix = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    # the image sees ref through the inverse of (matrix, shift)
    img = (ref - shift) @ np.linalg.inv(matrix).T + rng.normal(0, noise, (n, 2))
    keep = rng.random(n) > 0.1
    spurious = rng.uniform(-8, 8, (5, 2))
    return ref, np.vstack([img[keep], spurious]), np.flatnonzero(keep), matrix, np.array(shift)


@pytest.mark.parametrize("fitgeom", ["shift", "rshift", "rscale", "general"])
def test_match_and_fit_recover_the_true_transform(fitgeom):
    rng = np.random.default_rng(3)
    ref, img, kept, matrix, shift = _scene(rng)
    offset = estimate_shift_2dhist(img, ref, searchrad=2.0, pscale=0.031)
    # the histogram peak is the image - reference offset to a bin (one pixel)
    assert np.hypot(*(np.asarray(offset) + shift)) < 0.031
    r, i = xyxymatch(img, ref, offset, tolerance=0.7, separation=1.0)
    assert len(r) >= 15
    # every match is a true pair (image row k came from reference row kept[k])
    real = i < kept.size
    assert real.all() and np.array_equal(kept[i], r)
    fit = fit_linear(ref[r], img[i], fitgeom=fitgeom)
    moved = img[i] @ fit["matrix"].T + fit["shift"]
    truth = img[i] @ matrix.T + shift
    # within a few centroid errors of the true map over the field
    tol = 0.02 if fitgeom == "shift" else 0.004
    assert np.abs(moved - truth).max() < tol
    assert fit["rmse"] < 0.005 if fitgeom != "shift" else fit["rmse"] < 0.01


def test_clipping_drops_a_mismatch():
    rng = np.random.default_rng(5)
    ref = rng.uniform(-8, 8, (40, 2))
    img = ref - [0.02, 0.01] + rng.normal(0, 0.002, (40, 2))
    img[7] += 0.5
    fit = fit_linear(ref, img, fitgeom="rshift")
    assert not fit["fitmask"][7] and fit["fitmask"].sum() >= 38
    assert np.allclose(fit["shift"], [0.02, 0.01], atol=0.002)


# ------------------------------------------------------- absolute reference catalogs

def _table(**columns):
    from astropy.table import Table

    return Table(columns)


@pytest.mark.parametrize("names", [("RA", "DEC"), ("ra", "dec"), ("Ra", "Dec")])
def test_refcat_ra_dec_columns_any_case(tmp_path, names):
    from webbflow.steps.tweakreg import read_refcat

    path = tmp_path / "cat.ecsv"
    _table(**{names[0]: [53.1, 53.2], names[1]: [-27.7, -27.8], "flux": [1.0, 2.0]}).write(path)
    cat = read_refcat(path)
    assert np.array_equal(cat["ra"], [53.1, 53.2]) and np.array_equal(cat["dec"], [-27.7, -27.8])
    assert cat["weight"] is None and cat["nrows"] == 2 and cat["name"] == "cat.ecsv"


def test_refcat_sky_centroid_and_weights(tmp_path, caplog):
    """A source_catalog-style sky_centroid column; RA/DEC win over it (with a warning);
    masked entries become NaN (not used)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import MaskedColumn, Table

    from webbflow.steps.tweakreg import read_refcat

    coords = SkyCoord([53.1, 53.2] * u.deg, [-27.7, -27.8] * u.deg)
    path = tmp_path / "cat.ecsv"
    Table({"sky_centroid": coords, "weight": MaskedColumn([1.0, 2.0], mask=[False, True])}
          ).write(path)
    cat = read_refcat(path)
    assert np.allclose(cat["ra"], [53.1, 53.2]) and np.allclose(cat["dec"], [-27.7, -27.8])
    assert cat["weight"][0] == 1.0 and np.isnan(cat["weight"][1])
    both = tmp_path / "both.ecsv"
    Table({"sky_centroid": coords, "ra": [1.0, 2.0], "dec": [3.0, 4.0]}).write(both)
    with caplog.at_level("WARNING", logger="webbflow.tweakreg"):
        cat = read_refcat(both)
    assert np.array_equal(cat["ra"], [1.0, 2.0]) and "Ignoring sky_centroid" in caplog.text


def test_refcat_without_coordinates_is_one_error_line(tmp_path):
    from webbflow.errors import WebbflowError
    from webbflow.steps.tweakreg import read_refcat

    path = tmp_path / "cat.ecsv"
    _table(x=[1.0], y=[2.0]).write(path)
    with pytest.raises(WebbflowError, match="neither RA/DEC nor sky_centroid"):
        read_refcat(path)
    _table(ra=[1.0], RA=[1.0], dec=[2.0]).write(path, overwrite=True)
    with pytest.raises(WebbflowError, match="several RA"):
        read_refcat(path)


@pytest.mark.parametrize("name", ["GAIADR3", "gaiadr2", "GAIAREFCAT", " GAIADR3_S3 "])
def test_online_catalogs_are_refused_naming_the_option(name):
    """No network: one line naming the option, before any image is read."""
    from webbflow.errors import WebbflowError
    from webbflow.steps.tweakreg import tweakreg

    with pytest.raises(WebbflowError) as exc:
        tweakreg(["a_cal.fits", "b_cal.fits"], [{}, {}], {"abs_refcat": name}, {})
    message = str(exc.value)
    assert "\n" not in message
    assert "image3.steps.tweakreg.abs_refcat" in message and name.strip() in message
    assert "network" in message


def test_relative_refcat_path_working_directory_then_members(tmp_path, monkeypatch):
    from webbflow.errors import WebbflowError
    from webbflow.steps.tweakreg import resolve_refcat

    members = tmp_path / "cal"
    members.mkdir()
    (members / "ref.ecsv").write_text("x")
    cals = [str(members / "a_cal.fits")]
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert resolve_refcat("ref.ecsv", cals) == members / "ref.ecsv"
    # the working directory first, as officially (the program directory in the workflow)
    (elsewhere / "ref.ecsv").write_text("y")
    assert resolve_refcat("ref.ecsv", cals).resolve() == (elsewhere / "ref.ecsv").resolve()
    assert resolve_refcat(str(members / "ref.ecsv"), cals) == members / "ref.ecsv"
    with pytest.raises(WebbflowError, match="no such catalog file"):
        resolve_refcat("missing.ecsv", cals)
    with pytest.raises(WebbflowError, match="no such catalog file"):
        resolve_refcat(str(tmp_path / "missing.ecsv"), cals)
