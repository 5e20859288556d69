"""Where the calibrated ramp waits between the integration pass and the row-block pass.

Stage 1 runs the steps before ``jump`` a few integrations at a time (they act on whole
frames), and ``jump`` + ``ramp_fit`` a few rows at a time (they need every integration of
a pixel). Between the two the float32 ramp is written once and read back by row blocks.
Small ramps stay in memory; big ones go to an unnamed temporary file (``$TMPDIR``; on a
cluster point it at node-local disk).

The file is laid out block by block: each row block (with its halo rows) is one
contiguous region holding every integration and group of those rows, so the second pass
reads one region in one read. Each integration's slab of a block is padded to
``webbflow.io.direct.ALIGN`` bytes, so that the file can be opened with ``O_DIRECT``: the data then goes
between our buffers and the disk without a page-cache copy. Touching fresh memory can cost
more than the disk on virtual machines (0.3 to 7 ms per MB measured here, against 1.5
GB/s to the disk), and a page-cache copy of the whole ramp is exactly that much fresh memory.
Where the file system refuses ``O_DIRECT`` (tmpfs) the same layout is written through
the page cache, whose pages are dropped after each write and read so that later chunks
reuse them. The write and read buffers are allocated once and reused for the same reason.
"""

import errno
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io.direct import aligned_buffer, open_direct, padded, stop_direct


# the largest share of the ramp a second read buffer may take (see RampStore.read_ahead)
READ_AHEAD_FRACTION = 0.05


class RampStore:
    """A float32 (nints, ngroups, ny, nx) cube written by integrations, read by the row
    blocks ``blocks`` (a sequence of ``(h0, h1)`` row ranges, halo rows included)."""

    def __init__(self, shape, blocks, *, in_memory, source):
        self.shape = tuple(int(n) for n in shape)
        self.blocks = [(int(h0), int(h1)) for h0, h1 in blocks]
        self.source = source
        self._in_memory = in_memory
        self._cube = None  # allocated on first write, or the written block itself
        self._fd = None
        self.direct = False
        nints, ngroups, _, nx = self.shape
        # per block: (file offset of its region, padded bytes of one integration's slab)
        self._layout = {}
        offset = 0
        for h0, h1 in self.blocks:
            slab = padded(ngroups * (h1 - h0) * nx * 4)
            self._layout[(h0, h1)] = (offset, slab)
            offset += nints * slab
        self._max_slab = max((slab for _, slab in self._layout.values()), default=0)
        self._buffer = None  # reused by every write and read
        # O_DIRECT writes and reads run in one worker thread, a block behind (writes) or
        # ahead (reads) of the steps: two slots of the buffer take turns
        self._worker = None
        self._pending = [None, None]
        # reads run ahead only where the second slot is a small part of the ramp (long
        # ramps, whose reading takes seconds); elsewhere the memory is worth more
        self.read_ahead = (nints * self._max_slab) <= READ_AHEAD_FRACTION * offset
        if not in_memory:
            self._open()

    def _open(self):
        try:
            fd, path = tempfile.mkstemp(prefix="webbflow-ramp-")
        except OSError as exc:
            raise WebbflowError(self.source, f"cannot create a scratch file in "
                                             f"{tempfile.gettempdir()}: {exc}") from None
        try:
            self._fd, self.direct = open_direct(path, os.O_RDWR)
            os.close(fd)
        except OSError:
            self._fd = fd
        os.unlink(path)

    def _fall_back_to_page_cache(self):
        """The file system took O_DIRECT at open but refuses the I/O itself."""
        stop_direct(self._fd)
        self.direct = False

    @property
    def in_memory(self):
        return self._in_memory

    def _slot(self, slot, nbytes, slot_bytes, slots):
        """Bytes ``nbytes`` of slot ``slot`` (of ``slots``, each ``slot_bytes``) of the
        reused buffer, once the I/O still using that slot is done."""
        self._wait(slot)
        if self._buffer is None or self._buffer.nbytes < slots * slot_bytes:
            self._wait()
            self._buffer = aligned_buffer(slots * slot_bytes)
        return self._buffer[slot * slot_bytes:slot * slot_bytes + nbytes]

    def _in_background(self, slot, call, *args):
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratch-ramp")
        self._pending[slot] = self._worker.submit(call, *args)

    def _wait(self, slot=None):
        """Finish the I/O of a slot (both if None); its errors surface here."""
        for index in (0, 1) if slot is None else (slot,):
            pending, self._pending[index] = self._pending[index], None
            if pending is not None:
                try:
                    pending.result()
                except OSError as exc:
                    raise WebbflowError(self.source, f"cannot use the scratch ramp: {exc}") from None

    def _io(self, call, buffer, offset):
        """pwrite/preadv ``buffer`` fully at ``offset``; retried once through the page
        cache if O_DIRECT is refused."""
        view = memoryview(buffer)
        while view:
            try:
                done = call(self._fd, view, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._fall_back_to_page_cache()
                continue
            if done == 0:
                raise WebbflowError(self.source, "the scratch ramp file is shorter than written")
            view, offset = view[done:], offset + done

    def _drop_pages(self, offset=0, length=0):
        if not self.direct:
            os.posix_fadvise(self._fd, offset, length, os.POSIX_FADV_DONTNEED)

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
        _, ngroups, _, nx = self.shape
        n = block.shape[0]
        self._wait()  # the previous integrations' last block
        slots = 2 if self.direct else 1
        try:
            for index, (h0, h1) in enumerate(self.blocks):
                offset, slab = self._layout[(h0, h1)]
                slot = index % slots
                part = self._slot(slot, n * slab, n * self._max_slab, slots).reshape(n, slab)
                elems = ngroups * (h1 - h0) * nx
                for i in range(n):
                    np.copyto(part[i, :elems * 4].view(np.float32).reshape(ngroups, h1 - h0, nx),
                              block[i, :, h0:h1])
                if self.direct:
                    # written while the next block is copied and, for the last, while the
                    # next integrations go through the steps
                    self._in_background(slot, self._io, os.pwrite, part.reshape(-1),
                                        offset + i0 * slab)
                else:
                    self._io(os.pwrite, part.reshape(-1), offset + i0 * slab)
            if not self.direct:
                self._wait()
                os.fdatasync(self._fd)
                self._drop_pages()
        except OSError as exc:
            raise WebbflowError(self.source, f"cannot write the scratch ramp: {exc}") from None

    def read_blocks(self):
        """Every block of ``blocks`` in order: yields ``((h0, h1), cube)``, each cube
        valid until the next one is asked for. With :attr:`read_ahead` the next block is
        read while the caller works on this one."""
        ahead = self.read_ahead and self.direct and not self._in_memory
        self._wait()  # the last writes
        for index, rows in enumerate(self.blocks):
            if not ahead:
                yield rows, self.read_rows(*rows)
                continue
            if index == 0:
                self._read_into(0, rows, slots=2, background=True)
            self._wait(index % 2)
            cube = self._cube_of(index % 2, rows)
            if index + 1 < len(self.blocks):
                # into the other slot, whose block the caller is done with
                self._read_into((index + 1) % 2, self.blocks[index + 1], slots=2,
                                background=True)
            yield rows, cube

    def _read_into(self, slot, rows, slots=1, background=False):
        nints = self.shape[0]
        offset, slab = self._layout[rows]
        part = self._slot(slot, nints * slab, nints * self._max_slab, slots)
        if background:
            self._in_background(slot, self._io,
                                lambda fd, view, at: os.preadv(fd, [view], at), part, offset)
        else:
            self._io(lambda fd, view, at: os.preadv(fd, [view], at), part, offset)
            self._drop_pages(offset, nints * slab)

    def _cube_of(self, slot, rows):
        nints, ngroups, _, nx = self.shape
        h0, h1 = rows
        _, slab = self._layout[rows]
        start = slot * nints * self._max_slab
        part = self._buffer[start:start + nints * slab].reshape(nints, slab)
        elems = ngroups * (h1 - h0) * nx
        cube = part[:, :elems * 4].view(np.float32).reshape(nints, ngroups, h1 - h0, nx)
        # padding between the integrations' slabs (rows whose bytes are not a multiple
        # of ALIGN): one copy to make the cube contiguous for the kernels
        return cube if elems * 4 == slab else np.ascontiguousarray(cube)

    def read_rows(self, h0, h1):
        """Rows h0 .. h1-1 (one of ``blocks``) of every integration and group. The array
        may be a view of the store's buffer: valid until the next ``read_rows``."""
        if self._in_memory:
            return np.ascontiguousarray(self._cube[..., h0:h1, :])
        try:
            self._wait()
            self._read_into(0, (h0, h1))
        except OSError as exc:
            raise WebbflowError(self.source, f"cannot read the scratch ramp: {exc}") from None
        return self._cube_of(0, (h0, h1))

    def close(self):
        """Let the ramp go. The file's last close frees its blocks, which is slow on a file
        system mounted with online discard (here: 0.37-0.42 s for 2.4 GB, 0.84 s once on a
        loaded machine); it is done in a thread, so that it overlaps the writing of the products
        (the interpreter waits for the thread before it exits)."""
        self._cube = None
        try:
            self._wait()
        finally:
            self._buffer = None
            if self._fd is not None:
                threading.Thread(target=os.close, args=(self._fd,),
                                 name="scratch-ramp-release").start()
                self._fd = None
            if self._worker is not None:
                self._worker.shutdown(wait=False)
                self._worker = None
