"""The scratch ramp between stage 1's two passes gives back exactly what was written,
by row blocks, whatever the row length's alignment, with and without O_DIRECT."""

import numpy as np
import pytest

from webbflow.pipelines.ramp_store import RampStore


def _roundtrip(shape, blocks, chunk, in_memory=False):
    rng = np.random.default_rng(3)
    cube = rng.normal(size=shape).astype(np.float32)
    cube[0, 0, 0, 0] = np.nan
    store = RampStore(shape, blocks, in_memory=in_memory, source="test.fits")
    try:
        for i0 in range(0, shape[0], chunk):
            store.write_integrations(i0, cube[i0:i0 + chunk])
        for h0, h1 in reversed(blocks):  # any order
            got = store.read_rows(h0, h1)
            assert got.flags.c_contiguous and got.dtype == np.float32
            np.testing.assert_array_equal(got, cube[:, :, h0:h1])
        # in order, each block read while the one before is looked at (or not)
        for ahead in (False, True):
            store.read_ahead = ahead
            seen = []
            for rows, got in store.read_blocks():
                assert got.flags.c_contiguous and got.dtype == np.float32
                np.testing.assert_array_equal(got, cube[:, :, rows[0]:rows[1]])
                seen.append(rows)
            assert seen == blocks
        return store.direct
    finally:
        store.close()


@pytest.mark.parametrize("nx", [512, 1032])  # a row of 1032 float32 is not 4096-aligned
def test_roundtrip_by_blocks(nx):
    shape = (5, 3, 20, nx)
    blocks = [(0, 8), (6, 15), (13, 20)]  # overlapping halo rows, as jump reads them
    _roundtrip(shape, blocks, chunk=2)


def test_roundtrip_through_the_page_cache(monkeypatch):
    """A file system that takes O_DIRECT at open but refuses the I/O (EINVAL): the store
    switches the file to the page cache and carries on with the same layout."""
    import errno
    import os

    import webbflow.pipelines.ramp_store as ramp_store

    real_pwrite = os.pwrite
    refused = []

    def pwrite(fd, data, offset):
        if os.get_blocking(fd) and fcntl_direct(fd):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    def fcntl_direct(fd):
        import fcntl
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)

    monkeypatch.setattr(ramp_store.os, "pwrite", pwrite)
    direct = _roundtrip((3, 4, 12, 1032), [(0, 7), (5, 12)], chunk=1)
    assert refused and direct is False


def test_small_ramp_kept_in_memory():
    _roundtrip((2, 3, 20, 64), [(0, 8), (6, 15), (13, 20)], chunk=1, in_memory=True)


def test_read_ahead_only_where_its_buffer_is_a_small_part_of_the_ramp():
    many = [(y, y + 4) for y in range(0, 400, 4)]
    assert RampStore((50, 45, 400, 512), many, in_memory=True, source="x").read_ahead
    assert not RampStore((2, 50, 400, 1032), [(0, 200), (200, 400)], in_memory=True,
                         source="x").read_ahead
