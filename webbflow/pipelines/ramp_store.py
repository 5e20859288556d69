"""Where the calibrated ramp waits between the integration pass and the row-block pass.

Stage 1 runs the steps before ``jump`` a few integrations at a time (they act on whole
frames), and ``jump`` + ``ramp_fit`` a few rows at a time (they need every integration of
a pixel). Between the two the float32 ramp is written once and read back by row blocks.
Small ramps stay in memory; big ones go to an unnamed temporary file (``$TMPDIR``; on a
cluster point it at node-local disk).

The file is laid out block by block: each row block (with its halo rows) is one
contiguous region holding every integration and group of those rows, so the second pass
reads one region in one sequential read. The pages of the file are written back and
dropped from the page cache as soon as a chunk is written or a region read: touching
fresh memory costs far more than the disk on virtual machines (about 4 ms per MB here),
and a page-cache copy of the whole ramp would be exactly that much fresh memory, while
dropped pages are reused by the next chunk.
"""

import os
import tempfile

import numpy as np

from webbflow.errors import WebbflowError


class RampStore:
    """A float32 (nints, ngroups, ny, nx) cube written by integrations, read by the row
    blocks ``blocks`` (a sequence of ``(h0, h1)`` row ranges, halo rows included)."""

    def __init__(self, shape, blocks, *, in_memory, source):
        self.shape = tuple(int(n) for n in shape)
        self.blocks = [(int(h0), int(h1)) for h0, h1 in blocks]
        self.source = source
        self._in_memory = in_memory
        self._cube = None  # allocated on first write, or the written block itself
        self._file = None
        nints, ngroups, _, nx = self.shape
        self._offsets = {}
        offset = 0
        for h0, h1 in self.blocks:
            self._offsets[(h0, h1)] = offset
            offset += nints * ngroups * (h1 - h0) * nx * 4
        if not in_memory:
            try:
                self._file = tempfile.TemporaryFile(prefix="webbflow-ramp-")
            except OSError as exc:
                raise WebbflowError(source, f"cannot create a scratch file in "
                                            f"{tempfile.gettempdir()}: {exc}") from None

    @property
    def in_memory(self):
        return self._in_memory

    def write_integrations(self, i0, block):
        """Store integrations i0 .. i0 + len(block) - 1 (float32, C order)."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self._in_memory:
            if self._cube is None and i0 == 0 and block.shape == self.shape:
                self._cube = block  # the whole ramp in one chunk: keep it, no copy
                return
            if self._cube is None:
                self._cube = np.empty(self.shape, np.float32)
            self._cube[i0:i0 + block.shape[0]] = block
            return
        nints, ngroups, _, nx = self.shape
        n = block.shape[0]
        fd = self._file.fileno()
        part = None
        try:
            for h0, h1 in self.blocks:
                shape = (n, ngroups, h1 - h0, nx)
                if part is None or part.shape != shape:
                    part = np.empty(shape, np.float32)
                np.copyto(part, block[:, :, h0:h1])
                offset = self._offsets[(h0, h1)] + i0 * ngroups * (h1 - h0) * nx * 4
                view = memoryview(part.reshape(-1).view(np.uint8))
                while view:
                    written = os.pwrite(fd, view, offset)
                    view, offset = view[written:], offset + written
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            raise WebbflowError(self.source, f"cannot write the scratch ramp: {exc}") from None

    def read_rows(self, h0, h1):
        """Rows h0 .. h1-1 (one of ``blocks``) of every integration and group, as a new
        contiguous array."""
        if self._in_memory:
            return np.ascontiguousarray(self._cube[..., h0:h1, :])
        nints, ngroups, _, nx = self.shape
        out = np.empty((nints, ngroups, h1 - h0, nx), np.float32)
        offset = self._offsets[(h0, h1)]
        target = memoryview(out.reshape(-1).view(np.uint8))
        fd = self._file.fileno()
        try:
            while target:
                got = os.preadv(fd, [target], offset)
                if got == 0:
                    raise WebbflowError(self.source, "the scratch ramp file is shorter "
                                                     "than written")
                target, offset = target[got:], offset + got
            os.posix_fadvise(fd, self._offsets[(h0, h1)], out.nbytes, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            raise WebbflowError(self.source, f"cannot read the scratch ramp: {exc}") from None
        return out

    def close(self):
        self._cube = None
        if self._file is not None:
            self._file.close()
            self._file = None
