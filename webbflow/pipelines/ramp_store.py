"""Where the calibrated ramp waits between the integration pass and the row-block pass.

Stage 1 runs the steps before ``jump`` a few integrations at a time (they act on whole
frames), and ``jump`` + ``ramp_fit`` a few rows at a time (they need every integration of
a pixel). Between the two the float32 ramp is written once and read back by rows. Small
ramps stay in memory; big ones go to an unnamed temporary file (``$TMPDIR``; on a cluster
point it at node-local disk), read and written with plain positioned I/O rather than a
memory map, so only the block being worked on is resident.
"""

import os
import tempfile

import numpy as np

from webbflow.errors import WebbflowError


class RampStore:
    """A float32 (nints, ngroups, ny, nx) cube written by integrations, read by rows."""

    def __init__(self, shape, *, in_memory, source):
        self.shape = tuple(int(n) for n in shape)
        self.source = source
        self._in_memory = in_memory
        self._cube = None  # allocated on first write, or the written block itself
        self._file = None
        if not in_memory:
            try:
                self._file = tempfile.TemporaryFile(prefix="webbflow-ramp-")
            except OSError as exc:
                raise WebbflowError(source, f"cannot create a scratch file in "
                                            f"{tempfile.gettempdir()}: {exc}") from None

    @property
    def in_memory(self):
        return self._in_memory

    def _plane_bytes(self):
        return self.shape[-2] * self.shape[-1] * 4

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
        offset = i0 * self.shape[1] * self._plane_bytes()
        view = memoryview(block.reshape(-1).view(np.uint8))
        try:
            while view:
                written = os.pwrite(self._file.fileno(), view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise WebbflowError(self.source, f"cannot write the scratch ramp: {exc}") from None

    def read_rows(self, y0, y1):
        """Rows y0 .. y1-1 of every integration and group, as a new contiguous array."""
        if self._in_memory:
            return np.ascontiguousarray(self._cube[..., y0:y1, :])
        nints, ngroups, ny, nx = self.shape
        out = np.empty((nints, ngroups, y1 - y0, nx), np.float32)
        flat = out.reshape(nints * ngroups, -1)
        plane_bytes = self._plane_bytes()
        fd = self._file.fileno()
        for plane in range(nints * ngroups):
            target = memoryview(flat[plane].view(np.uint8))
            got = os.preadv(fd, [target], plane * plane_bytes + y0 * nx * 4)
            if got != target.nbytes:
                raise WebbflowError(self.source, "the scratch ramp file is shorter than written")
        return out

    def close(self):
        self._cube = None
        if self._file is not None:
            self._file.close()
            self._file = None
