"""Writing through O_DIRECT: the bytes on disk are the bytes written, whatever the sizes
of the pieces and of the file, also when the file system refuses O_DIRECT; products get
the permissions the umask allows."""

import errno
import os
import stat

import numpy as np
import pytest

from webbflow.io import Product, direct, read_product, write_product


def _write(path, pieces, buffer_bytes):
    fd, took = direct.open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    sink = direct.DirectWriter(fd, took, buffer_bytes=buffer_bytes)
    for piece in pieces:
        sink.write(piece)
    sink.close()
    os.close(fd)
    return took


@pytest.mark.parametrize("sizes", [[0], [1], [4096], [4095, 1, 2880 * 3],
                                   [10_000, 3, 70_000, 2880], [300_000]])
def test_pieces_of_any_size_land_in_order(tmp_path, sizes):
    rng = np.random.default_rng(len(sizes))
    pieces = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    path = tmp_path / "out.bin"
    _write(path, pieces, buffer_bytes=16384)
    assert path.read_bytes() == b"".join(pieces)


def test_refused_io_falls_back_to_the_page_cache(tmp_path, monkeypatch):
    """A file system that takes O_DIRECT at open but refuses the write itself."""
    import fcntl

    real_write = os.write
    refused = []

    def write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & direct.DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct.os, "write", write)
    pieces = [bytes(range(256)) * 100, b"tail"]
    path = tmp_path / "out.bin"
    took = _write(path, pieces, buffer_bytes=8192)
    assert path.read_bytes() == b"".join(pieces)
    assert refused or not took


def test_products_readable_as_the_umask_allows(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_product(tmp_path / "x_rate.fits", Product(
            "ImageModel", meta={"instrument": {"name": "NIRCAM"}},
            arrays={"data": np.arange(12, dtype=np.float32).reshape(3, 4)}))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    product = read_product(path)
    np.testing.assert_array_equal(product["data"], np.arange(12, dtype=np.float32).reshape(3, 4))
    product.close()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("offset,nbytes", [(0, 10), (2880, 4096), (4095, 3), (5760, 70_001),
                                           (100_000, 0), (8192, 91_808)])
def test_spans_read_past_the_page_cache_are_the_file_bytes(tmp_path, offset, nbytes):
    content = np.random.default_rng(3).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    path = tmp_path / "in.bin"
    path.write_bytes(content)
    got = bytearray(nbytes)

    def consume(piece, position):
        got[position:position + piece.size] = piece.tobytes()

    if direct.read_span(path, offset, nbytes, consume, buffer_bytes=8192):
        assert bytes(got) == content[offset:offset + nbytes]


def test_raw_ramp_read_past_the_page_cache(tmp_path, monkeypatch):
    """uint16 ramp planes (BZERO 32768) read whole through read_span decode as astropy
    reads them, for any range of integrations."""
    from astropy.io import fits

    from webbflow.io import products

    rng = np.random.default_rng(5)
    ramp = rng.integers(0, 65536, (3, 4, 37, 45), dtype=np.uint16)
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(ramp, name="SCI")])
    path = tmp_path / "x_uncal.fits"
    hdus.writeto(path)
    monkeypatch.setattr(products, "DIRECT_READ_BYTES", 1)
    spans = []
    read_span = products.read_span
    monkeypatch.setattr(products, "read_span",
                        lambda *args: spans.append(args[1:3]) or read_span(*args))
    product = read_product(path)
    for first in ((0, 3), (1, 2), (2, 3)):
        got = product.rows("data", 0, 37, np.float32, first=first, direct=True)
        np.testing.assert_array_equal(got, ramp[first[0]:first[1]].astype(np.float32))
    np.testing.assert_array_equal(product.rows("data", 0, 37, direct=True), ramp)
    assert len(spans) == 4
    # without direct (a reference, which other jobs read too): through the page cache
    np.testing.assert_array_equal(product.rows("data", 0, 37), ramp)
    assert len(spans) == 4
    product.close()
