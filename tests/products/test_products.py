"""Product I/O: what webbflow writes opens in stdatamodels as the same thing; bad files
fail with one line naming the file."""

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.realdata import real_file
from webbflow.errors import WebbflowError
from webbflow.io import Product, products, read_product, write_product
from webbflow.sim.program import demo_program, exposure_meta, int_times



def _meta():
    return exposure_meta(demo_program()[0], -1, 2)


def _products():
    rng = np.random.default_rng(3)
    meta = _meta()
    nints, ngroups, ny, nx = 2, 3, 8, 16
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    u32 = lambda *shape: rng.integers(0, 2**31, shape, dtype=np.uint32)  # noqa: E731
    meta["subarray"].update(xsize=nx, ysize=ny)
    meta["exposure"].update(nints=nints, ngroups=ngroups)
    meta.setdefault("cal_step", {})["dark_sub"] = "COMPLETE"
    meta.setdefault("ref_file", {})["dark"] = {"name": "crds://jwst_nircam_dark_0001.fits"}
    meta["ref_file"]["crds"] = {"context_used": "jwst_0001.pmap", "sw_version": "14.0.3"}
    image = dict(data=f32(ny, nx), dq=u32(ny, nx), err=f32(ny, nx), var_poisson=f32(ny, nx),
                 var_rnoise=f32(ny, nx))
    cube = dict(data=f32(nints, ny, nx), dq=u32(nints, ny, nx), err=f32(nints, ny, nx),
                var_poisson=f32(nints, ny, nx), var_rnoise=f32(nints, ny, nx))
    ramp = dict(data=f32(nints, ngroups, ny, nx), pixeldq=u32(ny, nx),
                groupdq=rng.integers(0, 255, (nints, ngroups, ny, nx), dtype=np.uint8))
    fitopt = {k: f32(nints, 2, ny, nx) for k in ("slope", "sigslope", "yint", "sigyint",
                                                 "weights", "var_poisson", "var_rnoise")}
    fitopt.update(pedestal=f32(nints, ny, nx), crmag=f32(nints, ngroups, ny, nx))
    return {
        "uncal": Product("Level1bModel", dict(meta), {"data": rng.integers(0, 65535, (nints, ngroups, ny, nx), dtype=np.uint16)},
                         tables={"int_times": int_times(meta)}),
        "ramp": Product("RampModel", dict(meta), ramp),
        "rate": Product("ImageModel", dict(meta, bunit_data="DN/s", bunit_err="DN/s"), image),
        "rateints": Product("CubeModel", dict(meta, bunit_data="DN/s"), cube,
                            tables={"int_times": int_times(meta)}),
        "fitopt": Product("RampFitOutputModel", dict(meta), fitopt),
    }


@pytest.mark.oracle
@pytest.mark.parametrize("suffix", ["uncal", "ramp", "rate", "rateints", "fitopt"])
def test_written_products_open_in_stdatamodels(tmp_path, suffix, monkeypatch):
    monkeypatch.setenv("STRICT_VALIDATION", "true")
    from stdatamodels.jwst import datamodels

    product = _products()[suffix]
    path = write_product(tmp_path / f"jw01234001001_02101_00001_nrca1_{suffix}.fits", product)
    with datamodels.open(path) as model:
        assert type(model).__name__ == product.model_type
        model.validate()
        for name, array in product.arrays.items():
            np.testing.assert_array_equal(getattr(model, name), array)
        assert model.meta.instrument.detector == "NRCA1"
        assert model.meta.exposure.ngroups == 3
        assert model.meta.subarray.xsize == 16
        assert model.meta.observation.date == product.meta["observation"]["date"]
        assert model.meta.ref_file.crds.context_used == "jwst_0001.pmap"
        assert model.meta.ref_file.dark.name == "crds://jwst_nircam_dark_0001.fits"
        assert model.meta.cal_step.dark_sub == "COMPLETE"
        if "int_times" in product.tables:
            np.testing.assert_allclose(model.int_times["int_mid_MJD_UTC"],
                                       product.tables["int_times"]["int_mid_MJD_UTC"])
    # and back through our reader, unchanged
    again = read_product(path)
    for name, array in product.arrays.items():
        np.testing.assert_array_equal(again[name], array)
    assert again.get("exposure.type") == "NRC_IMAGE"


def test_ramp_rows_are_read_lazily(tmp_path):
    product = _products()["uncal"]
    path = write_product(tmp_path / "x_uncal.fits", product)
    lazy = read_product(path)
    np.testing.assert_array_equal(lazy.rows("data", 2, 5), product["data"][..., 2:5, :])
    assert lazy.rows("data", 2, 5).dtype == np.uint16
    assert lazy.shape("data") == product["data"].shape
    # decoded straight into the working type, integrations picked on the way
    np.testing.assert_array_equal(lazy.rows("data", 1, 7, dtype=np.float32, first=(1, 2)),
                                  product["data"][1:2, :, 1:7, :].astype(np.float32))
    ramp = _products()["ramp"]
    lazy = read_product(write_product(tmp_path / "x_ramp.fits", ramp))
    np.testing.assert_array_equal(lazy.rows("pixeldq", 0, 8), ramp["pixeldq"])  # uint32
    assert lazy.rows("pixeldq", 0, 8).dtype == np.uint32


@pytest.mark.parametrize("writer", ["direct", "astropy"])
def test_write_is_atomic(tmp_path, monkeypatch, writer):
    product = _products()["rate"]
    if writer == "astropy":   # a table only astropy writes sends the product to astropy
        product = _products()["rateints"]
        product.tables["int_times"] = np.zeros(1, dtype=[("flag", "?")])
    target = tmp_path / "x_rate.fits"

    def explode(*args, **kwargs):
        first = args[1] if writer == "astropy" else args[0]
        if writer == "astropy":
            Path(first).write_bytes(b"partial")
        else:
            first.write(b"partial")
        raise OSError("disk full")

    if writer == "astropy":
        monkeypatch.setattr(fits.HDUList, "writeto", explode)
    else:
        monkeypatch.setattr(products, "_write_blocks", explode)
    with pytest.raises(OSError):
        write_product(target, product)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


class _FixedClock:
    @staticmethod
    def now(tz=None):
        from datetime import datetime

        return datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=tz)


@pytest.mark.parametrize("suffix", ["uncal", "ramp", "rate", "rateints", "fitopt"])
def test_products_are_written_as_astropy_writes_them(tmp_path, suffix, monkeypatch):
    """Byte for byte, without astropy's writer (and so without importing astropy.table)."""
    monkeypatch.setattr(products, "datetime", _FixedClock)
    product = _products()[suffix]
    expected = tmp_path / "astropy.fits"
    products.atomic_hdulist_write(expected, products.build_hdulist(product, "x.fits"))

    def refuse(*args, **kwargs):
        raise AssertionError("astropy's writer used")

    with monkeypatch.context() as patch:
        patch.setattr(fits.HDUList, "writeto", refuse)
        patch.setattr(fits.BinTableHDU, "__init__", refuse)
        path = write_product(tmp_path / "x.fits", product)
    assert path.read_bytes() == expected.read_bytes()


def _direct_and_astropy(tmp_path, images, tables):
    """The same HDUs written by both writers; None when the direct one declines."""
    def hdus():
        return fits.HDUList([fits.PrimaryHDU()] + [
            fits.ImageHDU(np.array(a), name=f"IM{i}") for i, a in enumerate(images)])

    blocks = products._direct_blocks(hdus(), list(tables))
    if blocks is None:
        return None
    direct = tmp_path / "direct.fits"
    with open(direct, "wb") as handle:
        products._write_blocks(handle, blocks)
    legacy = hdus()
    for extname, records in tables:
        if extname == "ASDF":   # as the ASDF extension is made: a 2-D byte column
            column = records["ASDF_METADATA"]
            legacy.append(fits.BinTableHDU.from_columns([fits.Column(
                name="ASDF_METADATA", format=f"{column.shape[1]}B", array=column)],
                name=extname))
        else:
            legacy.append(fits.BinTableHDU(records, name=extname))
    legacy.writeto(tmp_path / "astropy.fits")
    return direct.read_bytes(), (tmp_path / "astropy.fits").read_bytes()


def test_direct_writer_matches_astropy_for_every_layout_it_takes(tmp_path):
    rng = np.random.default_rng(5)
    big = (products._CHUNK_BYTES // 4) * 2 + 77  # several conversion chunks and a tail
    images = [rng.standard_normal(big).astype(np.float32),
              rng.standard_normal((3, 5)).astype(">f4"),
              rng.standard_normal((2, 3, 7)),
              rng.integers(-2**15, 2**15, (4, 9), dtype=np.int16),
              rng.integers(-2**31, 2**31, (5, 5), dtype=np.int32),
              rng.integers(-2**62, 2**62, 17, dtype=np.int64),
              rng.integers(0, 256, (6, 6), dtype=np.uint8),
              rng.integers(0, 2**16, (3, 11), dtype=np.uint16),
              rng.integers(0, 2**32, big, dtype=np.uint32),
              rng.integers(0, 2**32, (7, 3), dtype=np.uint32).astype(">u4"),
              rng.integers(0, 2**63, 9, dtype=np.uint64)]
    records = np.zeros(3, dtype=[("a", "i2"), ("b", ">i4"), ("c", "i8"), ("d", "f4"),
                                 ("e", "f8"), ("f", "u1"), ("g", "f4", (4,)),
                                 ("h", "u1", (5,))])
    for name in records.dtype.names:
        records[name] = rng.integers(0, 100, records[name].shape)
    tables = [("T1", records), ("T2", np.zeros(0, dtype=[("x", "f8")])),
              ("ASDF", products._asdf_record(b"#ASDF 1.0.0\n" * 50))]
    direct, legacy = _direct_and_astropy(tmp_path, images, tables)
    assert direct == legacy
    # what it leaves to astropy
    for odd_images, odd_tables in [([np.zeros(3, np.int8)], []),
                                   ([], [("T", np.zeros(2, dtype=[("s", "S4")]))]),
                                   ([], [("T", np.zeros(2, dtype=[("b", "?")]))]),
                                   ([], [("T", np.zeros(2, dtype=[("u", "u2")]))]),
                                   ([], [("T", np.zeros(2, dtype=[("m", "f4", (2, 2))]))]),
                                   ([], [("T", np.zeros(2, dtype=np.dtype(
                                       [("a", "u1"), ("b", "f8")], align=True)))])]:
        assert _direct_and_astropy(tmp_path, odd_images, odd_tables) is None


def test_truncated_file_is_one_clear_error(tmp_path):
    path = write_product(tmp_path / "x_uncal.fits", _products()["uncal"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])
    with pytest.raises(WebbflowError, match=r"x_uncal.fits: truncated file"):
        read_product(path)


def test_not_fits_is_one_clear_error(tmp_path):
    path = tmp_path / "x_uncal.fits"
    path.write_text("hello")
    with pytest.raises(WebbflowError, match="x_uncal.fits: not a readable FITS file"):
        read_product(path)


def test_missing_sci_is_one_clear_error(tmp_path):
    path = write_product(tmp_path / "x_uncal.fits", _products()["uncal"])
    with fits.open(path) as hdulist:
        del hdulist["SCI"]
        hdulist.writeto(tmp_path / "nosci_uncal.fits")
    with pytest.raises(WebbflowError, match="nosci_uncal.fits: missing SCI extension"):
        read_product(tmp_path / "nosci_uncal.fits")


@pytest.mark.parametrize("path", [
    "other/jw01714001001_02103_00003_mirimage_i2d_cutout64.fits",
    "other/starbug2_jw01227002001_02105_00001_nrcalong_cutout100x100_cal.fits",
    "uncal/jw01019001001_gs-acq1_2022117003102_uncal.fits",
    "rate_cal/MIRI_5582_89_S_20180308-010230_SCE1_pipe_rateints.fits",
    "rate_cal/niriss_ami_1093/ABDor/jw01093012001_03102_00001_nis_cal.fits",
])
def test_real_products_read(path):
    full = real_file(path)
    with fits.open(full) as hdulist:
        sci = hdulist["SCI"].data
        instrument = hdulist[0].header["INSTRUME"]
    product = read_product(full)
    np.testing.assert_array_equal(product["data"], sci)
    assert product.get("instrument.name") == instrument
    assert product["data"].dtype.isnative


EXPECTED_MODELS = {
    "mask": "MaskModel", "saturation": "SaturationModel", "superbias": "SuperBiasModel",
    "linearity": "LinearityModel", "gain": "GainModel", "readnoise": "ReadnoiseModel",
    "ipc": "IPCModel", "rscd": "RSCDModel", "reset": "ResetModel", "flat": "FlatModel",
    "area": "PixelAreaModel", "distortion": "DistortionModel",
    "filteroffset": "FilteroffsetModel", "abvegaoffset": "ABVegaOffsetModel",
    "emicorr": "EmiModel"}
# only in caches of NIRSpec IRS2 exposures
IRS2_MODELS = {"refpix": "IRS2Model"}
PER_INSTRUMENT_MODELS = {
    "photom": {"nircam": "NrcImgPhotomModel", "niriss": "NisImgPhotomModel",
               "miri": "MirImgPhotomModel", "fgs": "FgsImgPhotomModel"},
    "apcorr": {"nircam": "NrcImgApcorrModel", "niriss": "NisImgApcorrModel",
               "miri": "MirImgApcorrModel", "fgs": "FgsImgApcorrModel"},
}


def _open_references(program):
    """Open every reference of a synthetic cache as the official model its type implies,
    validated; returns {instrument: set of reftypes}."""
    from stdatamodels.jwst import datamodels

    seen = {}
    references = program / "crds_cache/references/jwst"
    for path in sorted([*references.rglob("*.fits"), *references.rglob("*.asdf")]):
        reftype = path.name.split("_")[2]
        instrument = path.name.split("_")[1]
        model_type = EXPECTED_MODELS.get(reftype) or IRS2_MODELS.get(reftype) or (
            PER_INSTRUMENT_MODELS[reftype][instrument] if reftype in PER_INSTRUMENT_MODELS
            else "DarkMIRIModel" if instrument == "miri" else "DarkModel")
        with datamodels.open(path) as model:
            assert type(model).__name__ == model_type, path.name
            model.validate()
            assert model.meta.reftype.lower() == reftype
            assert model.meta.instrument.name == instrument.upper()
        seen.setdefault(instrument, set()).add(reftype)
    return seen


@pytest.mark.oracle
def test_synthetic_references_open_as_their_models(synthetic_program, monkeypatch):
    """Every reference file the synthetic observatory writes is a valid official model."""
    monkeypatch.setenv("STRICT_VALIDATION", "true")
    seen = set().union(*_open_references(synthetic_program).values())
    assert seen == set(EXPECTED_MODELS) | {"dark", *PER_INSTRUMENT_MODELS}


@pytest.mark.oracle
def test_synthetic_irs2_references(irs2_program, monkeypatch):
    """The NIRSpec IRS2 cache: every reference a valid official model, the REFPIX an
    IRS2Model."""
    monkeypatch.setenv("STRICT_VALIDATION", "true")
    seen = _open_references(irs2_program.parent)  # the fixture is the uncal file
    assert "refpix" in seen["nirspec"]
    assert {"mask", "saturation", "superbias", "linearity", "dark"} <= seen["nirspec"]


@pytest.mark.oracle
def test_synthetic_nis_fgs_references(nis_fgs_program, monkeypatch):
    """The NIRISS and FGS imaging references: valid official models under strict
    validation, each with its instrument's table layout (FGS: a PHOTOM row and an
    APCORR table without selector columns, ABVEGAOFFSET by detector, no FILTEROFFSET:
    the official FGS assign_wcs takes none)."""
    monkeypatch.setenv("STRICT_VALIDATION", "true")
    from stdatamodels.jwst import datamodels

    seen = _open_references(nis_fgs_program)
    imaging = {"distortion", "flat", "photom", "area", "apcorr", "abvegaoffset"}
    stage1 = {"mask", "saturation", "superbias", "linearity", "gain", "readnoise", "ipc",
              "dark"}
    assert seen["niriss"] == stage1 | imaging | {"filteroffset"}
    assert seen["fgs"] == stage1 | imaging
    refs = nis_fgs_program / "crds_cache/references/jwst"
    with datamodels.open(next((refs / "fgs").glob("*_photom_*.fits"))) as model:
        assert model.phot_table.dtype.names == ("photmjsr", "uncertainty")
        assert len(model.phot_table) == 1
    with datamodels.open(next((refs / "fgs").glob("*_apcorr_*.fits"))) as model:
        assert model.apcorr_table.dtype.names == ("eefraction", "radius", "apcorr", "skyin",
                                                  "skyout")
    with datamodels.open(next((refs / "fgs").glob("*_abvegaoffset_*.asdf"))) as model:
        assert list(model.abvega_offset["detector"]) == ["GUIDER2"]
    with datamodels.open(next((refs / "niriss").glob("*_photom_*.fits"))) as model:
        table = model.phot_table
        assert [(f.strip(), p.strip()) for f, p in zip(table["filter"], table["pupil"])] == \
            [("CLEAR", "F150W")]
    with datamodels.open(next((refs / "niriss").glob("*_filteroffset_*.asdf"))) as model:
        assert [(row.filter, row.pupil) for row in model.filters] == [("CLEAR", "F150W")]
