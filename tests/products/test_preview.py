"""Report previews: NaN pixels (cal, i2d) neither break the stretch nor warn."""

import struct
import warnings
import zlib

import numpy as np

from webbflow.io.preview import image_preview, write_previews


def _read_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    rows = np.frombuffer(zlib.decompress(data[idat + 4:idat + 4 + length]), np.uint8)
    rows = rows.reshape(height, width + 1)
    assert not rows[:, 0].any()          # filter type 0 on every row
    return rows[:, 1:][::-1]             # back to FITS order (row 0 at the bottom)


def test_nan_pixels_and_empty_bins_are_black(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(1.0, 0.1, (1500, 3000)).astype(np.float32)
    image[:, :600] = np.nan              # an i2d's empty border: whole bins of NaN
    image[700:703, 1500:1503] = 50.0     # a star
    image[1000, 2000] = np.nan           # a single bad pixel inside a bin
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image_preview(tmp_path / "x.png", image)
    gray = _read_png(tmp_path / "x.png")
    assert gray.shape == (500, 1000)     # binned 3x3 to at most 1024 on a side
    assert not gray[:, :200].any()
    assert gray[233, 500] == 255
    assert 0 < np.median(gray[:, 200:]) < 255


def test_each_preview_output_shows_its_product(tmp_path):
    products = {"cal": {"data": np.arange(12.0).reshape(3, 4)},
                "i2d": {"data": np.full((2, 2), np.nan)}}
    outputs = [("cal", str(tmp_path / "x_cal.fits")), ("cal_preview", tmp_path / "x_cal.png"),
               ("i2d_preview", tmp_path / "x_i2d.png")]
    write_previews(outputs, products)
    assert _read_png(tmp_path / "x_cal.png").shape == (3, 4)
    assert not _read_png(tmp_path / "x_i2d.png").any()     # nothing finite: all black
    assert not (tmp_path / "x_cal.fits").exists()
