"""calwebb_detector1 (and calwebb_tso1): one raw exposure to rate and rateints.

The glue between products and the array steps: it reads the ramp, opens each reference
(cut to the subarray), runs the steps in the official order for the instrument family,
records ``meta.cal_step`` and provenance, and returns the products for the caller to
write. The science is in ``webbflow.steps``; nothing here touches a path except through
``webbflow.io``.
"""

import logging
import resource
import time
from dataclasses import dataclass

import numpy as np

from webbflow.errors import WebbflowError
from webbflow.io import Product, read_product
from webbflow.io.direct import populate_in_background
from webbflow.io.references import load_reference
from webbflow.planning import detector1_steps, stage1_steps

log = logging.getLogger("webbflow.detector1")

# meta.cal_step attribute of each step alias
CAL_STEP = {
    "group_scale": "group_scale", "dq_init": "dq_init", "emicorr": "emicorr",
    "saturation": "saturation", "ipc": "ipc", "superbias": "superbias",
    "firstframe": "firstframe", "lastframe": "lastframe", "reset": "reset",
    "linearity": "linearity", "rscd": "rscd", "dark_current": "dark_sub", "refpix": "refpix",
    "charge_migration": "charge_migration", "jump": "jump",
    "clean_flicker_noise": "clean_flicker_noise", "persistence": "persistence",
    "ramp_fit": "ramp_fit", "gain_scale": "gain_scale",
}

# refpix options that only the IRS2 correction reads
IRS2_REFPIX_OPTIONS = ("ovr_corr_mitigation_ftr", "preserve_irs2_refpix",
                       "irs2_mean_subtraction")

# steps not yet carried by webbflow: asking for them is an error, not a silent skip
NOT_IMPLEMENTED = ()


@dataclass
class Ramp:
    """The working state of one exposure between steps."""

    meta: dict
    data: np.ndarray      # float32 (nints, ngroups, ny, nx)
    gdq: np.ndarray       # uint8, same shape
    pdq: np.ndarray       # uint32 (ny, nx)
    zeroframe: np.ndarray | None
    int_times: np.ndarray | None
    average_dark_current: np.ndarray | None = None
    # a ZEROFRAME extension whose ZEROFRAM keyword is not set: the steps leave it alone,
    # ramp_fit still reads it (as officially: the steps test the keyword, stcal the array)
    raw_zeroframe: np.ndarray | None = None

    def fit_zeroframe(self, rows=slice(None)):
        """The zero frame ramp_fit sees (rows of it), or None."""
        zf = self.zeroframe if self.zeroframe is not None else self.raw_zeroframe
        return None if zf is None else np.ascontiguousarray(zf[:, rows])


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _exposure(meta, key, default=None):
    return meta.get("exposure", {}).get(key, default)


def validate_ramp(path, product):
    """The header must describe the data: one clear line otherwise."""
    meta = product.meta
    shape = product.shape("data")
    if len(shape) != 4:
        raise WebbflowError(path, f"SCI must be 4-D (nints, ngroups, ny, nx), got shape {shape}")
    if product.model_type == "Level1bModel":
        dtype = product._lazy["data"].header if "data" in product._lazy else None
        if dtype is not None and not (dtype["BITPIX"] == 16 and dtype.get("BZERO") == 32768):
            raise WebbflowError(path, "SCI of a raw exposure must be uint16 "
                                      f"(BITPIX 16, BZERO 32768), got BITPIX {dtype['BITPIX']}")
    for key in ("name", "detector"):
        if not meta.get("instrument", {}).get(key):
            raise WebbflowError(path, f"missing instrument.{key} (INSTRUME/DETECTOR keyword)")
    exp_type = _exposure(meta, "type")
    if not exp_type:
        raise WebbflowError(path, "missing EXP_TYPE keyword")
    from webbflow.io.datamodels import keyword_enum

    allowed = set(keyword_enum("meta.exposure.type") or [exp_type]) - {"ANY", "N/A"}
    if exp_type not in allowed:
        raise WebbflowError(path, f"unknown EXP_TYPE {exp_type!r}")
    nints, ngroups, ny, nx = shape
    expected_ints = _exposure(meta, "nints")
    start, end = _exposure(meta, "integration_start"), _exposure(meta, "integration_end")
    if start and end:
        expected_ints = end - start + 1
    for label, have, want in (("NGROUPS", ngroups, _exposure(meta, "ngroups")),
                              ("NINTS", nints, expected_ints),
                              ("SUBSIZE2", ny, meta.get("subarray", {}).get("ysize")),
                              ("SUBSIZE1", nx, meta.get("subarray", {}).get("xsize"))):
        if want is None:
            raise WebbflowError(path, f"missing {label} keyword")
        if label == "SUBSIZE2" and int(want) == 2048 and have == 3200:
            continue  # NIRSpec IRS2: 2048 rows plus the interleaved reference pixels
        if int(want) != have:
            raise WebbflowError(path, f"header {label}={want} contradicts the SCI shape {shape}")
    for key in ("frame_time", "group_time", "nframes", "groupgap"):
        if _exposure(meta, key) is None:
            raise WebbflowError(path, f"missing exposure.{key} keyword")


def check_raw_exposure(path):
    """Raise the input's own problem (unreadable, header contradicting the data) before
    anything is asked of CRDS, so that the root cause is what the user reads."""
    product = read_product(path)
    try:
        validate_ramp(path, product)
    finally:
        product.close()


def open_ramp(path):
    """The ramp's DQ, ZEROFRAME and metadata; SCI stays on disk (``Ramp.data`` is None)
    until :func:`read_ramp_data` reads all of it or a range of integrations."""
    product = read_product(path)
    validate_ramp(path, product)
    shape = product.shape("data")
    if product.has("groupdq"):
        gdq = np.array(product["groupdq"], dtype=np.uint8)
    else:
        gdq = np.zeros(shape, dtype=np.uint8)
        # first written by dq_init, after the first integrations are read: time enough
        # for another thread to fault it in (590 MB in the TSO case)
        populate_in_background(gdq)
    pdq = (np.array(product["pixeldq"], dtype=np.uint32) if product.has("pixeldq")
           else np.zeros(shape[-2:], dtype=np.uint32))
    zeroframe = (np.asarray(product["zeroframe"], dtype=np.float32)
                 if product.has("zeroframe") else None)
    raw = None
    if zeroframe is not None and not _exposure(product.meta, "zero_frame"):
        zeroframe, raw = None, zeroframe
    ramp = Ramp(meta=product.meta, data=None, gdq=gdq, pdq=pdq, zeroframe=zeroframe,
                int_times=product.tables.get("int_times"), raw_zeroframe=raw)
    product.close()
    return ramp, product


def read_ramp_data(product, first=None):
    """SCI as float32, all integrations or ``first=(i0, i1)``."""
    return product.rows("data", 0, product.shape("data")[-2], np.float32, first=first,
                        direct=True)


def _read_chunks(product, nints, per_chunk):
    """SCI as float32, ``per_chunk`` integrations at a time: yields ``((i0, i1), data)``.
    Where a chunk is a small share of the ramp (at most READ_AHEAD_FRACTION, as for the
    scratch ramp's blocks: two chunks in memory then cost little), the next one is read
    in a thread while the caller's steps work on this one. The reads mostly wait on the
    disk with the GIL released (the TSO case: 1.2 GB in 25 chunks)."""
    from concurrent.futures import ThreadPoolExecutor

    from webbflow.pipelines.ramp_store import READ_AHEAD_FRACTION

    ranges = [(i0, min(nints, i0 + per_chunk)) for i0 in range(0, nints, per_chunk)]
    if len(ranges) < 2 or per_chunk > READ_AHEAD_FRACTION * nints:
        for first in ranges:
            yield first, read_ramp_data(product, first)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ramp-read") as pool:
        pending = pool.submit(read_ramp_data, product, ranges[0])
        for index, first in enumerate(ranges):
            data = pending.result()
            if index + 1 < len(ranges):
                pending = pool.submit(read_ramp_data, product, ranges[index + 1])
            yield first, data
            del data


# bytes of float32 ramp per row block: big enough to amortise the loop, small enough
# that a block's copies and its slice of a reference stay a few tens of MB
ROW_BLOCK_BYTES = 16 * 2**20
# streamed runs: integrations per pass-1 chunk, rows per jump + ramp_fit block (its two
# halo rows are detected twice, so blocks are bigger), and the largest calibrated ramp
# kept in memory between the passes (bigger ones wait in a scratch file)
INTEGRATION_CHUNK_BYTES = 128 * 2**20
FIT_BLOCK_BYTES = 32 * 2**20
FIT_BLOCK_MIN_ROWS = 16
RESIDENT_RAMP_BYTES = 64 * 2**20
# per reference, what a chunked run keeps of its reads instead of decoding them again
KEPT_REFERENCE_BYTES = 128 * 2**20


class _RateAssembly:
    """rate and rateints arrays filled row block by row block from fit_ramps results."""

    DTYPES = (np.float32, np.uint32, np.float32, np.float32, np.float32)  # sci dq vp vr err

    def __init__(self, nints, ny, nx):
        self.rate = [np.empty((ny, nx), t) for t in self.DTYPES]
        self.rateints = [np.empty((nints, ny, nx), t) for t in self.DTYPES]
        self.chisq = None  # LIKELY's chi square image, when the fits return one

    def targets(self, rows):
        """The result's rows as (rate, rateints) arrays for ``fit_ramps(out=...)`` to
        fill in place, or None where the rateints rows are not contiguous (several
        integrations): the fit then returns new arrays for :meth:`add`."""
        rateints = tuple(whole[:, rows] for whole in self.rateints)
        if not all(view.flags.c_contiguous for view in rateints):
            return None
        return tuple(whole[rows] for whole in self.rate), rateints

    def add(self, rows, part):
        if part.rate[0].base is self.rate[0]:
            return  # filled in place (targets)
        for whole, piece in zip(self.rate, part.rate):
            whole[rows] = piece
        for whole, piece in zip(self.rateints, part.rateints):
            whole[:, rows] = piece
        if part.chisq is not None:
            if self.chisq is None:
                self.chisq = np.empty(self.rate[0].shape, np.float32)
            self.chisq[rows] = part.chisq

    def result(self):
        from webbflow.steps.ramp_fit import RampFitResult

        return RampFitResult(rate=tuple(self.rate), rateints=tuple(self.rateints),
                             chisq=self.chisq)


class _WholeFrameNeeded(Exception):
    """A streamed run met an exposure-wide condition that needs the whole cube."""


class _RowBlock:
    """Rows ``y0:y1`` of the ramp: views for the steps that work in place (no copy in or
    out: these steps are memory-bound, and a copy is two more passes over the block), else
    contiguous copies; ``store()`` writes back whatever is not the ramp's own memory."""

    def __init__(self, ramp, y0, y1, views=False):
        self.ramp, self.y0, self.y1 = ramp, y0, y1
        take = (lambda a: a) if views else np.ascontiguousarray
        self.data = take(ramp.data[..., y0:y1, :])
        self.gdq = take(ramp.gdq[..., y0:y1, :])
        self.pdq = take(ramp.pdq[y0:y1])
        self.zeroframe = (None if ramp.zeroframe is None
                          else take(ramp.zeroframe[..., y0:y1, :]))

    def store(self):
        r = self.ramp
        rows = slice(self.y0, self.y1)
        for piece, whole in ((self.data, r.data[..., rows, :]), (self.gdq, r.gdq[..., rows, :]),
                             (self.pdq, r.pdq[rows]),
                             (self.zeroframe, None if r.zeroframe is None
                              else r.zeroframe[..., rows, :])):
            if piece is not None and not np.may_share_memory(piece, whole):
                whole[...] = piece


class Detector1:
    """Runs the steps of one exposure; ``config`` is the merged detector1 config block."""

    def __init__(self, ramp, refs, config, dqflags, *, source, steps=None):
        self.ramp = ramp
        self.refs = refs
        self.steps = config.get("steps", {})
        self.dqflags = dqflags
        self.source = source
        self.instrument = ramp.meta["instrument"]["name"]
        self.is_miri = self.instrument == "MIRI"
        self.step_names = tuple(steps) if steps else detector1_steps(self.instrument)
        self.used_refs = {}
        self.chunked = False  # run_streamed: the steps run once per integration chunk
        self.fit = None
        self._opened = {}
        # streamed runs: the first integration of the chunk in self.ramp, of total_ints
        self.chunk_start = 0
        self.total_ints = ramp.gdq.shape[0]
        # NIRSpec IRS2 layout (interleaved reference pixels) until refpix removes them
        self.irs2 = max(ramp.pdq.shape) > 2048
        self._check_options()

    def _check_options(self):
        """Options asked for that webbflow does not carry: one error before any work."""
        # the steps' modules are imported only when they run (emicorr's pulls in scipy)
        if "ramp_fit" in self.step_names and not self.skipped("ramp_fit"):
            self.fit_algorithm()  # an unknown algorithm name
        if "emicorr" in self.step_names and not self.skipped("emicorr"):
            from webbflow.steps import emicorr

            bad = emicorr.unsupported_options(self.params("emicorr"))
            if bad:
                raise WebbflowError(self.source, "emicorr: " + ", ".join(bad)
                                    + " not implemented in webbflow yet")
        if "clean_flicker_noise" in self.step_names and not self.skipped("clean_flicker_noise"):
            from webbflow.steps.clean_flicker_noise import unsupported_options

            bad = unsupported_options(self.params("clean_flicker_noise"),
                                      _exposure(self.ramp.meta, "type") or "")
            if bad:
                raise WebbflowError(self.source, "clean_flicker_noise: " + ", ".join(bad)
                                    + " not implemented in webbflow yet")

    # -- helpers
    def ref(self, reftype):
        path = self.refs.get(reftype, "N/A")
        if path == "N/A":
            return None
        self.used_refs[reftype] = path
        if reftype not in self._opened:
            self._opened[reftype] = load_reference(path, reftype, self.ramp.meta,
                                                   self.ramp.pdq.shape)
            if self.chunked:
                self._opened[reftype].keep_reads(KEPT_REFERENCE_BYTES)
        return self._opened[reftype]

    def dq_of(self, ref, block=None):
        """A reference's DQ (zeros if it has none) for the frame or one row block."""
        y0, y1 = (0, self.ramp.pdq.shape[0]) if block is None else (block.y0, block.y1)
        if not ref.has("dq"):
            return np.zeros((y1 - y0, self.ramp.pdq.shape[1]), np.uint32)
        return ref.rows("dq", y0, y1, np.uint32)

    def row_blocks(self, reference=None, name="data", frames=None, views=False):
        """Row blocks of the ramp for pixel-local steps, so that big references (darks,
        resets, linearity coefficients) are read a block at a time. The block size counts
        the reference's planes too (``reference.rows(name, ..., first=frames)``): a MIRI
        dark or reset holds more integrations and groups than the science ramp.
        ``views``: the blocks are views of the ramp (steps that update in place)."""
        nints, ngroups, ny, nx = self.ramp.data.shape
        row_bytes = nints * ngroups * nx * 4
        if reference is not None:
            shape = reference.product.shape(name)
            planes = int(np.prod(shape[:-2], dtype=np.int64))
            if frames is not None:
                planes = planes // shape[0] * (frames[1] - frames[0])
            row_bytes += planes * nx * 4
        rows = max(1, min(ny, ROW_BLOCK_BYTES // row_bytes))
        for y0 in range(0, ny, rows):
            yield _RowBlock(self.ramp, y0, min(ny, y0 + rows), views)

    def mark(self, step, status):
        self.ramp.meta.setdefault("cal_step", {})[CAL_STEP[step]] = status

    def params(self, step):
        return {k: v for k, v in self.steps.get(step, {}).items() if k != "skip"}

    # -- the pipeline
    def skipped(self, step):
        if self.steps.get(step, {}).get("skip", False):
            return True
        if step in NOT_IMPLEMENTED:
            raise WebbflowError(self.source, f"step {step} is switched on but webbflow "
                                             "does not implement it yet")
        return False

    def run_step(self, step):
        """Run one step on ``self.ramp``; returns its status (not yet recorded)."""
        start = time.perf_counter()
        status = getattr(self, f"do_{step}")()
        log.info("%s: %s in %.2f s, peak memory so far %.0f MB", step, status,
                 time.perf_counter() - start,
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return status

    def run(self):
        """Whole cube in memory: every step on every integration at once."""
        for step in self.step_names:
            self.mark(step, "SKIPPED" if self.skipped(step) else self.run_step(step))
        return self.fit

    def streamable(self, save_calibrated_ramp=False):
        """Whether :meth:`run_streamed` can take this exposure: near-IR steps act on one
        integration at a time before jump, and jump and ramp_fit on rows, unless an
        option needs the whole cube (snowballs, showers, fitopt, group ranges,
        persistence, clean_flicker_noise, which needs whole frames of every group after
        jump and a draft rate, emicorr, which phases all integrations together, the
        calibrated-ramp product) or ramp_fit is off (the
        whole-cube run then stops with the official message). MIRI: reset and dark take
        the chunk's integration numbers; rscd, which decides on every integration's saturation flags
        at once, reads and writes only the group DQ, and no later step before jump reads
        that, so it runs once on the whole frame's DQ after the pass. MIRI refpix (a stop
        state across integrations) and charge_migration (reads the DQ after rscd) keep
        the whole cube."""
        jump = self.steps.get("jump", {})
        fit = self.steps.get("ramp_fit", {})
        persistence = self.steps.get("persistence", {})
        if "ramp_fit" not in self.step_names:
            return False
        if self.irs2:  # refpix changes the frame shape: whole cube
            return False
        if self.is_miri and not (self.skipped("refpix") and self.skipped("charge_migration")):
            return False
        if "emicorr" in self.step_names and not self.skipped("emicorr"):
            return False  # fits the EMI phase across all integrations at once
        return not (save_calibrated_ramp or fit.get("skip")
                    or jump.get("expand_large_events") or jump.get("find_showers")
                    or ("clean_flicker_noise" in self.step_names
                        and not self.skipped("clean_flicker_noise"))
                    or (fit.get("save_opt") and self.fit_algorithm() != "LIKELY")
                    or fit.get("firstgroup") is not None
                    or fit.get("lastgroup") is not None
                    or (not persistence.get("skip", False)
                        and persistence.get("persistence_time") is not None))

    def run_streamed(self, product):
        """Pass 1: the steps before jump, a few integrations at a time, into a
        :class:`RampStore`. Pass 2: jump and ramp_fit on row blocks read back from it.
        Peak memory is the DQ cube plus one chunk and one block, not the float32 cube.
        Raises :class:`_WholeFrameNeeded` in the rare case an exposure-wide jump decision
        needs the whole cube (the caller then runs :meth:`run`)."""
        from webbflow.pipelines.ramp_store import RampStore

        frame = self.ramp
        nints, ngroups, ny, nx = frame.gdq.shape
        steps = self.step_names
        pre_jump = steps[:steps.index("jump")]
        # DQ-only steps that run once on the whole frame's DQ after the integration pass
        deferred = ("rscd",) if self.is_miri else ()
        int_bytes = ngroups * ny * nx * 4
        per_chunk = max(1, INTEGRATION_CHUNK_BYTES // int_bytes)
        # MIRI references differ by integration (per-integration darks and resets)
        self.chunked = nints > per_chunk and not self.is_miri
        store = RampStore(frame.gdq.shape, [(h0, h1) for _, _, h0, h1 in self._fit_blocks()],
                          in_memory=nints * int_bytes <= RESIDENT_RAMP_BYTES, source=self.source)
        try:
            statuses = {}
            for (i0, i1), data in _read_chunks(product, nints, per_chunk):
                chunk = Ramp(meta=frame.meta, data=data,
                             gdq=frame.gdq[i0:i1], pdq=frame.pdq,
                             zeroframe=None if frame.zeroframe is None else frame.zeroframe[i0:i1],
                             int_times=frame.int_times)
                self.ramp = chunk
                self.chunk_start = i0
                for step in pre_jump:
                    if step in deferred:
                        continue
                    status = "SKIPPED" if self.skipped(step) else self.run_step(step)
                    if statuses.setdefault(step, status) != status:
                        raise WebbflowError(self.source, f"{step} was {statuses[step]} on the "
                                                         f"first integrations, {status} on later ones")
                frame.gdq[i0:i1] = chunk.gdq
                frame.pdq = chunk.pdq
                if chunk.zeroframe is not None:
                    frame.zeroframe[i0:i1] = chunk.zeroframe
                frame.average_dark_current = chunk.average_dark_current
                store.write_integrations(i0, chunk.data)
                self.ramp = frame  # let the chunk go before the next one is read
                del chunk, data
            self.ramp = frame
            self.chunk_start = 0
            # the chunks are done: the row-block pass reads each reference row once
            self.chunked = False
            for reference in self._opened.values():
                reference.forget_reads()
            for step in deferred:
                statuses[step] = "SKIPPED" if self.skipped(step) else self.run_step(step)
            if (self.params("ramp_fit").get("suppress_one_group", True)
                    and self.fit_algorithm() != "LIKELY"):
                frame.zeroframe = frame.raw_zeroframe = None  # unused from here on
            for step, status in statuses.items():
                self.mark(step, status)
            self._jump_and_fit_by_rows(store)
        finally:
            store.close()
        for step in steps[steps.index("jump") + 1:]:
            if step != "ramp_fit":
                self.mark(step, "SKIPPED" if self.skipped(step) else self.run_step(step))
        return self.fit

    def _do_jump(self):
        return not self.skipped("jump") and self.ramp.gdq.shape[1] > 2

    def _fit_blocks(self):
        """The row blocks of the jump + ramp_fit pass: (y0, y1, h0, h1), rows y0 .. y1-1
        kept, h0 .. h1-1 read (jump needs one halo row each side)."""
        nints, ngroups, ny, nx = self.ramp.gdq.shape
        rows = min(ny, max(FIT_BLOCK_MIN_ROWS, FIT_BLOCK_BYTES // (nints * ngroups * nx * 4)))
        halo = 1 if self._do_jump() else 0
        return [(y0, min(ny, y0 + rows), max(0, y0 - halo), min(ny, y0 + rows + halo))
                for y0 in range(0, ny, rows)]

    def _jump_and_fit_by_rows(self, store):
        from webbflow.steps.jump import all_dnu_groups, detect_jumps, jump_keywords
        from webbflow.steps.ramp_fit import fit_ramps

        r = self.ramp
        nints, ngroups, ny, nx = r.gdq.shape
        if self.ref("gain") is None or self.ref("readnoise") is None:
            raise WebbflowError(self.source, "ramp_fit needs GAIN and READNOISE references")
        do_jump = self._do_jump()
        jump_params = self.params("jump")
        after_jump = any(jump_params.get(f"after_jump_flag_time{n}", 0) for n in (1, 2))
        all_dnu = all_dnu_groups(r.gdq, self.dqflags) if do_jump else None
        options = self._fit_options()
        # taken on the DQ before jump: jump adds and removes only JUMP_DET, never
        # DO_NOT_USE or SATURATED
        kept, no_product = self._fit_frame_decisions()
        fit = _RateAssembly(nints, ny, nx)
        num_primary = 0
        detection_skipped = False
        gain_median = (float(np.nanmedian(self._gain_readnoise()[0]))
                       if do_jump and after_jump else None)
        planes_all_jump_dnu = None
        pending_halo = None  # pre-jump DQ of the row above the block (overwritten since)
        start = time.perf_counter()
        # the store was made with these blocks' row ranges: it hands them out in order
        for (y0, y1, h0, h1), (_, data) in zip(self._fit_blocks(), store.read_blocks()):
            gain, readnoise = self._gain_readnoise((h0, h1))
            gdq = np.ascontiguousarray(r.gdq[:, :, h0:h1])
            if h0 < y0:
                gdq[:, :, 0] = pending_halo
            pdq = r.pdq[h0:h1]
            if do_jump:
                pending_halo = r.gdq[:, :, y1 - 1].copy()
                gdq, pdq, stats = detect_jumps(
                    data, gdq, pdq, gain, readnoise, self.dqflags,
                    nframes=_exposure(r.meta, "nframes"), group_time=_exposure(r.meta, "group_time"),
                    all_dnu=all_dnu, interior=(y0 - h0, y1 - h0), gain_median=gain_median,
                    **jump_params)
                detection_skipped = stats["skipped"]
                num_primary += stats["n_primary_crs"]
                if stats.get("planes_all_jump_dnu") is not None:
                    planes = stats["planes_all_jump_dnu"]
                    planes_all_jump_dnu = planes if planes_all_jump_dnu is None \
                        else planes_all_jump_dnu & planes
            keep = slice(y0 - h0, y1 - h0)
            r.gdq[:, :, y0:y1] = gdq[:, :, keep]
            r.pdq[y0:y1] = pdq[keep]
            if no_product:
                continue
            dark = None if r.average_dark_current is None else r.average_dark_current[y0:y1]
            zeroframe = r.fit_zeroframe(slice(y0, y1))
            # the block's halo'd ramp and (post-jump) DQ go in whole: no copy of the rows kept
            fit.add(slice(y0, y1), fit_ramps(
                data, gdq, r.pdq[y0:y1], readnoise[keep], gain[keep], self.dqflags,
                average_dark_current=dark, zeroframe=zeroframe, miri_groups=kept,
                check_saturated=False, rows=(keep.start, keep.stop),
                out=fit.targets(slice(y0, y1)), **options))
        if planes_all_jump_dnu is not None and planes_all_jump_dnu.any():
            raise _WholeFrameNeeded("a group is JUMP_DET/DO_NOT_USE in every pixel")
        if do_jump:
            if detection_skipped:
                num_primary = -99  # stcal's count when no detector could run
            stats = jump_keywords(num_primary, 0, r.gdq, self.dqflags,
                                  _exposure(r.meta, "group_time"))
            for key in ("primary_cosmic_rays", "extended_emission_events"):
                if stats.get(key) is not None:
                    r.meta.setdefault("exposure", {})[key] = stats[key]
        self.mark("jump", "COMPLETE" if do_jump else "SKIPPED")
        self.mark("ramp_fit", "COMPLETE")
        self.fit = None if no_product else fit.result()
        log.info("jump + ramp_fit by rows: %.2f s, peak memory so far %.0f MB",
                 time.perf_counter() - start,
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    def close(self):
        for reference in self._opened.values():
            reference.close()
        self._opened.clear()

    def do_group_scale(self):
        from webbflow.steps.group_scale import group_scale_needed, scale_groups

        nframes = _exposure(self.ramp.meta, "nframes")
        divisor = _exposure(self.ramp.meta, "frame_divisor")
        if not group_scale_needed(nframes, divisor):
            return "SKIPPED"
        self.ramp.data = scale_groups(self.ramp.data, nframes, divisor)
        return "COMPLETE"

    def do_dq_init(self):
        from webbflow.steps.dq_init import initialize_dq

        mask = self.ref("mask")
        if mask is None:
            return "SKIPPED"
        r = self.ramp
        r.gdq, r.pdq = initialize_dq(r.gdq, r.pdq, mask.full("dq", np.uint32), self.dqflags)
        return "COMPLETE"

    def do_emicorr(self):
        from webbflow.steps import emicorr

        r = self.ramp
        if not self.is_miri:
            log.warning("emicorr: not implemented for instrument %s: skipped", self.instrument)
            return "SKIPPED"
        p = {**emicorr.DEFAULTS, **self.params("emicorr")}
        readpatt = str(_exposure(r.meta, "readpatt") or "").upper()
        if readpatt not in emicorr.READ_PATTERNS:
            log.warning("emicorr: not implemented for read pattern %s: skipped", readpatt)
            return "SKIPPED"
        reference = None
        if p["onthefly_corr_freq"] is None:
            path = self.refs.get("emicorr", "N/A")
            if path == "N/A":  # as officially: no reference, no correction
                log.warning("emicorr: no EMICORR reference for this exposure: skipped")
                return "SKIPPED"
            try:
                reference = emicorr.read_reference(path)
            except Exception as err:  # noqa: BLE001 - any unreadable file, one line
                raise WebbflowError(path, f"unreadable EMICORR reference: {err}") from None
            self.used_refs["emicorr"] = path
        nsamples = _exposure(r.meta, "nsamples")
        if nsamples is None:
            raise WebbflowError(self.source, "emicorr needs the NSAMPLES keyword")
        sub = r.meta.get("subarray", {})
        return emicorr.correct_emi(
            r.data, r.pdq, subarray=str(sub.get("name")), readpatt=readpatt,
            detector=r.meta["instrument"]["detector"], nsamples=int(nsamples),
            reference=reference, xstart=sub.get("xstart", 1), xsize=sub.get("xsize"), **p)

    def do_saturation(self):
        from webbflow.steps.saturation import flag_saturated, make_read_pattern

        sat = self.ref("saturation")
        if sat is None:
            return "SKIPPED"
        p = self.params("saturation")
        r = self.ramp
        nframes = _exposure(r.meta, "nframes")
        if self.irs2:
            return self._saturation_irs2(sat, p, nframes)
        read_pattern = bias = None
        if p.get("use_readpatt", True) and nframes > 1:
            read_pattern = make_read_pattern(r.data.shape[1], nframes)
            bias_ref = None if self.is_miri else self.ref("superbias")
            bias = None if bias_ref is None else bias_ref.full("data", np.float32)
        r.gdq, r.pdq, r.zeroframe = flag_saturated(
            r.data, r.gdq, r.pdq, sat.full("data", np.float32), self.dq_of(sat), self.dqflags,
            n_pix_grow_sat=p.get("n_pix_grow_sat", 1), read_pattern=read_pattern, bias=bias,
            zeroframe=r.zeroframe)
        return "COMPLETE"

    def _saturation_irs2(self, sat, p, nframes):
        from webbflow.steps.irs2 import flag_saturated_irs2

        r = self.ramp
        if r.zeroframe is not None:
            raise WebbflowError(self.source, "ZEROFRAME of an IRS2 exposure is not carried "
                                             "by webbflow yet")
        bias_ref = self.ref("superbias")
        nn, nr = self._irs2_readout()
        r.gdq, r.pdq = flag_saturated_irs2(
            r.data, r.gdq, r.pdq, sat.full("data", np.float32), self.dq_of_normal(sat),
            self.dqflags, detector=r.meta["instrument"]["detector"],
            n_pix_grow_sat=p.get("n_pix_grow_sat", 1), use_readpatt=p.get("use_readpatt", True),
            nframes=nframes, bias=None if bias_ref is None else bias_ref.full("data", np.float32),
            nrs_norm=nn, nrs_ref=nr)
        return "COMPLETE"

    def dq_of_normal(self, ref):
        """A reference's DQ over its own (normal-pixel) frame, zeros if it has none."""
        if not ref.has("dq"):
            return np.zeros((2048, 2048), np.uint32)
        return ref.full("dq", np.uint32)

    def _irs2_readout(self):
        """NRS_NORM, NRS_REF (16 and 4 when the header lacks them, as officially)."""
        exp = self.ramp.meta.get("exposure", {})
        nn, nr = exp.get("nrs_normal"), exp.get("nrs_reference")
        if nn is None or nr is None:
            log.warning("NRS_NORM/NRS_REF missing: using 16 and 4")
        return int(nn or 16), int(nr or 4)

    def do_ipc(self):
        from webbflow.steps.ipc import correct_ipc

        kernel = self.ref("ipc")
        if kernel is None:
            return "SKIPPED"
        sub = self.ramp.meta.get("subarray", {})
        options = dict(instrument=self.instrument, xstart=sub.get("xstart", 1),
                       ystart=sub.get("ystart", 1), xsize=sub.get("xsize"),
                       ysize=sub.get("ysize"))
        if self.irs2:  # the normal pixels only, as officially (jwst.ipc.x_irs2)
            from webbflow.steps.irs2 import normal_rows, _dms_rows

            rows = _dms_rows(self.ramp.meta["instrument"]["detector"],
                             normal_rows(self.ramp.data.shape[-2], *self._irs2_readout()))
            normal = np.ascontiguousarray(self.ramp.data[:, :, rows, :])
            self.ramp.data[:, :, rows, :] = correct_ipc(
                normal, kernel.full("data", np.float32), **options)
            return "COMPLETE"
        self.ramp.data = correct_ipc(self.ramp.data, kernel.full("data", np.float32), **options)
        return "COMPLETE"

    def do_superbias(self):
        from webbflow.steps.superbias import subtract_superbias

        bias = self.ref("superbias")
        if bias is None:
            return "SKIPPED"
        r = self.ramp
        r.data, r.pdq, r.zeroframe = subtract_superbias(
            r.data, r.pdq, bias.full("data", np.float32), self.dq_of(bias), self.dqflags,
            zeroframe=r.zeroframe)
        return "COMPLETE"

    def do_refpix(self):
        from webbflow.steps.refpix import correct_refpix

        params = self.params("refpix")
        irs2_options = {k: params.pop(k) for k in IRS2_REFPIX_OPTIONS if k in params}
        if self.irs2:
            return self._refpix_irs2(irs2_options)
        r = self.ramp
        sub = r.meta.get("subarray", {})
        r.data, status = correct_refpix(
            r.data, r.pdq, self.dqflags, instrument=self.instrument,
            fastaxis=sub.get("fastaxis", 1), slowaxis=sub.get("slowaxis", 2),
            xstart=sub.get("xstart", 1), ystart=sub.get("ystart", 1),
            xsize=sub.get("xsize"), ysize=sub.get("ysize"),
            noutputs=_exposure(r.meta, "noutputs") or 4, subarray_name=sub.get("name"),
            zeroframe=r.zeroframe, continuing=self.chunk_start > 0, **params)
        return status

    def _refpix_irs2(self, options):
        """NIRSpec IRS2: bad interleaved pairs flagged and replaced, then the REFPIX
        (alpha/beta) correction; the interleaved reference pixels leave the ramp."""
        from webbflow.io.references import load_irs2_reference
        from webbflow.steps.irs2 import IRS2Error, correct_irs2, flag_bad_reference_pairs

        for name in ("irs2_mean_subtraction", "preserve_irs2_refpix"):
            if options.get(name):
                raise WebbflowError(self.source, f"refpix: {name} is not implemented in "
                                                 "webbflow yet")
        path = self.refs.get("refpix", "N/A")
        if path == "N/A":
            raise WebbflowError(self.source, "IRS2 exposure but no REFPIX reference: the "
                                             "interleaved reference pixels cannot be removed")
        alpha, beta, dq_table = load_irs2_reference(path)
        self.used_refs["refpix"] = path
        r = self.ramp
        if r.zeroframe is not None:
            raise WebbflowError(self.source, "ZEROFRAME of an IRS2 exposure is not carried "
                                             "by webbflow yet")
        nn, nr = self._irs2_readout()
        detector = r.meta["instrument"]["detector"]
        try:
            flag_bad_reference_pairs(r.data, r.pdq, self.dqflags, nn, nr,
                                     n_sigma=options.get("ovr_corr_mitigation_ftr", 3.0),
                                     flag=True, replace=False)
            flag_bad_reference_pairs(r.data, r.pdq, self.dqflags, nn, nr, flag=False,
                                     replace=True)
            r.data, r.gdq, r.pdq = correct_irs2(
                r.data, r.gdq, r.pdq, self.dqflags, detector=detector, alpha=alpha, beta=beta,
                dq_table=dq_table, nrs_norm=nn, nrs_ref=nr)
        except IRS2Error as exc:
            raise WebbflowError(self.source, str(exc)) from None
        self.irs2 = False
        return "COMPLETE"

    def do_linearity(self):
        from webbflow.steps.linearity import correct_linearity

        lin = self.ref("linearity")
        if lin is None:
            return "SKIPPED"
        for block in self.row_blocks(lin, "coeffs", views=True):
            block.data, block.pdq, block.zeroframe = correct_linearity(
                block.data, block.gdq, block.pdq, lin.rows("coeffs", block.y0, block.y1, np.float32),
                self.dq_of(lin, block), self.dqflags, zeroframe=block.zeroframe)
            block.store()
        return "COMPLETE"

    def do_dark_current(self):
        from webbflow.steps.dark_current import average_dark_current, subtract_dark

        dark = self.ref("dark")
        if dark is None:
            return "SKIPPED"
        r = self.ramp
        status = "SKIPPED"
        frames = self._dark_frames_used(dark)
        for block in self.row_blocks(dark, "data", frames, views=True):
            block.data, block.pdq, status = subtract_dark(
                block.data, block.pdq,
                dark.rows("data", block.y0, block.y1, np.float32, first=frames),
                self.dq_of(dark, block), self.dqflags,
                sci_nframes=_exposure(r.meta, "nframes"), sci_groupgap=_exposure(r.meta, "groupgap"),
                dark_nframes=dark.get("exposure.nframes", 1),
                dark_groupgap=dark.get("exposure.groupgap", 0), is_miri=self.is_miri,
                integration_start=_exposure(r.meta, "integration_start") or 1,
                first_integration=self.chunk_start, data_nints=self.total_ints)
            if status != "COMPLETE":
                break
            block.store()
        if status == "COMPLETE":
            # jwst 3.0 compares a 2-D AVDRKCUR with the raw ramp's (absent) array, so a
            # nonzero 2-D reference value is never applied: the same here, to match it
            user = self.params("dark_current").get("average_dark_current")
            two_d = dark.full("average_dark_current") if dark.has("average_dark_current") else None
            if user is not None or two_d is None or not np.any(two_d):
                r.average_dark_current = average_dark_current(
                    r.pdq.shape, user, None, dark.get("exposure.average_dark_current"))
        return status

    def _dark_frames_used(self, dark):
        """(0, n) when a near-IR dark (frames, ny, nx) holds more frames than the science
        ramp spans, so that only those are read; None to read it all (MIRI 4-D darks,
        averaged or extrapolated darks)."""
        if self.is_miri or dark.get("exposure.nframes", 1) != 1 or dark.get("exposure.groupgap", 0):
            return None
        shape = dark.product.shape("data")
        meta = self.ramp.meta
        ngroups = self.ramp.gdq.shape[1]
        span = ngroups * _exposure(meta, "nframes") + (ngroups - 1) * _exposure(meta, "groupgap")
        return (0, span) if len(shape) == 3 and span < shape[0] else None

    def do_charge_migration(self):
        from webbflow.steps.charge_migration import flag_charge_migration

        r = self.ramp
        r.gdq, status = flag_charge_migration(
            r.data, r.gdq, self.dqflags, **self.params("charge_migration"))
        return status

    def do_firstframe(self):
        from webbflow.steps.firstframe import flag_firstframe

        r = self.ramp
        r.gdq, r.pdq, status = flag_firstframe(r.gdq, r.pdq, self.dqflags,
                                               **self.params("firstframe"))
        return status

    def do_lastframe(self):
        from webbflow.steps.lastframe import flag_lastframe

        r = self.ramp
        r.gdq, status = flag_lastframe(r.gdq, self.dqflags)
        return status

    def do_reset(self):
        from webbflow.steps.reset import subtract_reset

        reset = self.ref("reset")
        if reset is None:
            return "SKIPPED"
        r = self.ramp
        for block in self.row_blocks(reset, views=True):
            block.data, block.pdq = subtract_reset(
                block.data, block.pdq, reset.rows("data", block.y0, block.y1, np.float32),
                self.dq_of(reset, block), self.dqflags,
                integration_start=(_exposure(r.meta, "integration_start") or 1) + self.chunk_start,
                integration_end=_exposure(r.meta, "integration_end"),
                nints=_exposure(r.meta, "nints"))
            block.store()
        return "COMPLETE"

    def do_rscd(self):
        from webbflow.steps.rscd import flag_rscd

        rscd = self.ref("rscd")
        if rscd is None:
            return "SKIPPED"
        r = self.ramp
        subarray = r.meta["subarray"]["name"]
        subarray = "SLITLESSPRISM" if subarray.upper() == "SUBPRISM" else subarray
        readpatt = _exposure(r.meta, "readpatt")
        for row in rscd.tables.get("rscd_group_skip_table", []):
            if _text(row["subarray"]) == subarray and _text(row["readpatt"]) == readpatt:
                skip1, skip2 = int(row["group_skip1"]), int(row["group_skip"])
                break
        else:
            log.warning("rscd: no row for SUBARRAY=%s READPATT=%s", subarray, readpatt)
            return "SKIPPED"
        r.gdq, r.pdq, status = flag_rscd(
            r.gdq, r.pdq, 1 if skip1 < 0 else skip1, skip2, self.dqflags,
            nints=_exposure(r.meta, "nints"),
            integration_start=_exposure(r.meta, "integration_start") or 1)
        return status

    def _gain_readnoise(self, rows=None):
        """GAIN and READNOISE arrays (rows ``(y0, y1)`` only, if given), or (None, None)."""
        gain, readnoise = self.ref("gain"), self.ref("readnoise")
        if gain is None or readnoise is None:
            return None, None
        if gain.get("exposure.gain_factor") is not None:
            self.ramp.meta.setdefault("exposure", {})["gain_factor"] = gain.get("exposure.gain_factor")
        y0, y1 = (0, self.ramp.pdq.shape[0]) if rows is None else rows
        return gain.rows("data", y0, y1, np.float32), readnoise.rows("data", y0, y1, np.float32)

    def do_jump(self):
        from webbflow.steps.jump import detect_jumps

        r = self.ramp
        if r.data.shape[1] <= 2:
            return "SKIPPED"
        gain, readnoise = self._gain_readnoise()
        if gain is None:
            return "SKIPPED"
        r.gdq, r.pdq, stats = detect_jumps(
            r.data, r.gdq, r.pdq, gain, readnoise, self.dqflags,
            nframes=_exposure(r.meta, "nframes"), group_time=_exposure(r.meta, "group_time"),
            **self.params("jump"))
        for key in ("primary_cosmic_rays", "extended_emission_events"):
            if stats.get(key) is not None:
                r.meta.setdefault("exposure", {})[key] = stats[key]
        return "COMPLETE"

    def do_clean_flicker_noise(self):
        from webbflow.steps import clean_flicker_noise as cfn

        r = self.ramp
        p = {**cfn.DEFAULTS, **self.params("clean_flicker_noise")}
        exp_type = _exposure(r.meta, "type")
        bad = cfn.unsupported_options(p, exp_type)
        if bad:
            raise WebbflowError(self.source, "clean_flicker_noise: " + ", ".join(bad)
                                + " not implemented in webbflow yet")
        sub = r.meta.get("subarray", {})
        axis = cfn.correction_axis(exp_type, sub.get("slowaxis"))
        draft = []

        def draft_rate():
            """ramp_fit with its software defaults, made once: the fit result."""
            if not draft:
                draft.append(self._draft_rate())
            return draft[0]

        if p["autoparam"]:
            chosen = None
            if exp_type in ("NRC_IMAGE", "NIS_IMAGE") and draft_rate() is not None:
                chosen = cfn.auto_parameters(exp_type, draft_rate().rate[0],
                                             self._flicker_flat(exp_type), axis)
            if chosen is None:
                log.warning("clean_flicker_noise: no auto parameters for EXP_TYPE %s; the "
                            "given ones are used", exp_type)
            else:
                p.update(chosen)
        if cfn.skipped_officially(p, exp_type):
            log.warning("clean_flicker_noise: fit_method %r is not applied to EXP_TYPE %s "
                        "(as officially): step skipped", p["fit_method"], exp_type)
            return "FAILED"
        by_channel = bool(p["fit_by_channel"])
        if by_channel and (str(sub.get("name", "")).upper() != "FULL" or self.is_miri):
            log.warning("clean_flicker_noise: fit_by_channel needs full-frame near-IR "
                        "data; off")
            by_channel = False
        background = p["background_method"]
        background = None if str(background).lower() == "none" else background
        flat = self._flicker_flat(exp_type) if p["apply_flat_field"] else None
        user_mask = p["user_mask"]
        if user_mask is not None and str(user_mask).lower() != "none":
            product = read_product(user_mask, require=("data",))
            mask = np.asarray(product["data"]).astype(bool)
            product.close()
        else:
            fit = draft_rate()
            if fit is None:
                log.warning("clean_flicker_noise: no draft rate can be made: step skipped")
                return "FAILED"
            rate = fit.rate[0] if p["single_mask"] else fit.rateints[0]
            mask = cfn.scene_mask(rate, p["n_sigma"], flat, p["fit_histogram"])
        nints = r.data.shape[0]
        if mask.shape[-2:] != r.data.shape[-2:] or (mask.ndim == 3 and mask.shape[0] != nints) \
                or mask.ndim not in (2, 3):
            log.warning("clean_flicker_noise: mask shape %s does not match the data %s: "
                        "step skipped", mask.shape, r.data.shape)
            return "FAILED"
        r.data = cfn.clean_ramp(r.data, r.gdq, mask, self.dqflags, axis=axis,
                                background_method=background,
                                background_box_size=p["background_box_size"],
                                n_sigma=p["n_sigma"], fit_by_channel=by_channel, flat=flat)
        return "COMPLETE"

    def _draft_rate(self):
        """clean_flicker_noise's draft rate: ramp_fit with its software defaults on the
        ramp after jump (None where ramp_fit makes no product)."""
        from webbflow.steps.ramp_fit import fit_ramps

        r = self.ramp
        gain, readnoise = self._gain_readnoise()
        if gain is None:
            raise WebbflowError(self.source, "clean_flicker_noise needs GAIN and READNOISE "
                                             "references for its draft rate")
        options = dict(self._fit_options(), suppress_one_group=True)
        return fit_ramps(r.data, r.gdq, r.pdq, readnoise, gain, self.dqflags,
                         average_dark_current=r.average_dark_current, zeroframe=r.fit_zeroframe(),
                         **options)

    def _flicker_flat(self, exp_type):
        """The FLAT as clean_flicker_noise reads it (bad pixels smoothed over), or None."""
        from webbflow.steps.clean_flicker_noise import prepare_flat

        if not hasattr(self, "_flicker_flat_data"):
            ref = self.ref("flat")
            if ref is None:
                log.warning("clean_flicker_noise: no FLAT for EXP_TYPE %s: not applied",
                            exp_type)
                self._flicker_flat_data = None
            else:
                self._flicker_flat_data = prepare_flat(ref.full("data", np.float32))
        return self._flicker_flat_data

    def do_persistence(self):
        from webbflow.steps.persistence import flag_persistence, persistence_group_times

        p = self.params("persistence")
        if p.get("persistence_time") is None:
            return "SKIPPED"
        r = self.ramp
        times = persistence_group_times(
            r.data.shape[0], r.data.shape[1], _exposure(r.meta, "start_time"),
            _exposure(r.meta, "integration_time"), _exposure(r.meta, "group_time"),
            None if r.int_times is None else r.int_times["int_start_MJD_UTC"])
        r.gdq, _, status = flag_persistence(
            r.data, r.gdq, None, times, p["persistence_time"], self.dqflags,
            dn_threshold=p.get("dn_threshold"), persistence_dnu=p.get("persistence_dnu", False))
        return status

    def fit_algorithm(self):
        """The ramp_fit algorithm that runs, as jwst decides it: ``read_times`` in the
        exposure (uneven sampling) force LIKELY; LIKELY with fewer than 4 groups falls
        back to OLS_C."""
        from webbflow.steps.ramp_fit_likely import LIKELY_MIN_NGROUPS

        algorithm = str(self.params("ramp_fit").get("algorithm", "OLS_C")).upper()
        if algorithm not in ("OLS_C", "LIKELY"):
            raise WebbflowError(self.source, f"ramp_fit algorithm {algorithm!r}: "
                                             "must be OLS_C or LIKELY")
        read_times = _exposure(self.ramp.meta, "read_times")
        if read_times is not None and len(read_times) > 0 and algorithm != "LIKELY":
            if not getattr(self, "_forced_logged", False):
                log.warning("Setting the algorithm to LIKELY for unevenly sampled exposure")
                self._forced_logged = True
            algorithm = "LIKELY"
        ngroups = self.ramp.gdq.shape[1]
        if algorithm == "LIKELY" and ngroups < LIKELY_MIN_NGROUPS:
            if not getattr(self, "_fallback_logged", False):
                log.warning("ramp_fit: the LIKELY algorithm needs at least %d groups, this "
                            "exposure has %d: OLS_C is used, as officially",
                            LIKELY_MIN_NGROUPS, ngroups)
                self._fallback_logged = True
            algorithm = "OLS_C"
        return algorithm

    def _fit_options(self):
        """fit_ramps keywords from the exposure and the ramp_fit parameters."""
        meta = self.ramp.meta
        algorithm = self.fit_algorithm()
        read_times = _exposure(meta, "read_times")
        readtimes = (None if algorithm != "LIKELY" or read_times is None or len(read_times) == 0
                     else [np.atleast_1d(np.asarray(t, np.float64)) for t in read_times])
        return dict(
            algorithm=algorithm, readtimes=readtimes,
            frame_time=_exposure(meta, "frame_time"), group_time=_exposure(meta, "group_time"),
            nframes=_exposure(meta, "nframes"), groupgap=_exposure(meta, "groupgap"),
            drop_frames1=_exposure(meta, "drop_frames1") or 0,
            suppress_one_group=self.params("ramp_fit").get("suppress_one_group", True),
            is_miri=self.is_miri)

    def _fit_frame_decisions(self):
        """The two exposure-wide ramp_fit decisions a row-block fit takes on the whole
        frame first: the MIRI groups kept (or None) and whether no product can be made
        (fewer than 2 MIRI groups left, or the first kept group saturated everywhere)."""
        from webbflow.steps.ramp_fit import miri_drop

        gdq = self.ramp.gdq
        if self.fit_algorithm() == "LIKELY":
            return None, False  # LIKELY drops no MIRI groups and always makes a product
        kept, first = None, 0
        if self.is_miri and gdq.shape[1] > 1:
            kept = miri_drop(gdq, self.dqflags)
            if kept is None:
                return None, True
            first = kept[0]
        return kept, bool(np.all(gdq[:, first] & self.dqflags["SATURATED"]))

    def do_ramp_fit(self):
        from webbflow.steps.ramp_fit import fit_ramps

        r = self.ramp
        gain, readnoise = self._gain_readnoise()
        if gain is None:
            raise WebbflowError(self.source, "ramp_fit needs GAIN and READNOISE references")
        p = self.params("ramp_fit")
        options = self._fit_options()
        whole_frame = (p.get("save_opt") or p.get("firstgroup") is not None
                       or p.get("lastgroup") is not None)
        if whole_frame:
            # per-segment fitopt arrays are sized by the whole frame's segments
            self.fit = fit_ramps(r.data, r.gdq, r.pdq, readnoise, gain, self.dqflags,
                                 average_dark_current=r.average_dark_current,
                                 zeroframe=r.fit_zeroframe(), save_opt=p.get("save_opt", False),
                                 firstgroup=p.get("firstgroup"), lastgroup=p.get("lastgroup"),
                                 **options)
            return "COMPLETE"
        # pixels are independent: fit row blocks after the frame-wide decisions
        kept, no_product = self._fit_frame_decisions()
        if no_product:
            self.fit = None
            return "COMPLETE"
        nints, _, ny, nx = r.data.shape
        fit = _RateAssembly(nints, ny, nx)
        for block in self.row_blocks():
            rows = slice(block.y0, block.y1)
            dark = None if r.average_dark_current is None else r.average_dark_current[rows]
            fit.add(rows, fit_ramps(block.data, block.gdq, block.pdq, readnoise[rows], gain[rows],
                                    self.dqflags, average_dark_current=dark,
                                    zeroframe=r.fit_zeroframe(rows), miri_groups=kept,
                                    check_saturated=False, **options))
        self.fit = fit.result()
        return "COMPLETE"

    def do_gain_scale(self):
        from webbflow.steps.gain_scale import scale_gain

        factor = _exposure(self.ramp.meta, "gain_factor")
        if self.fit is None or factor is None:
            return "SKIPPED"
        for attr in ("rate", "rateints"):
            sci, dq, var_poisson, var_rnoise, err = getattr(self.fit, attr)
            sci, err, var_poisson, var_rnoise = scale_gain(sci, err, factor, var_poisson, var_rnoise)
            setattr(self.fit, attr, (sci, dq, var_poisson, var_rnoise, err))
        return "COMPLETE"


def _image_product(model_type, meta, arrays, int_times=None):
    sci, dq, var_poisson, var_rnoise, err = arrays
    product = Product(model_type, meta=meta, arrays={
        "data": np.asarray(sci, np.float32), "dq": np.asarray(dq, np.uint32),
        "err": np.asarray(err, np.float32), "var_poisson": np.asarray(var_poisson, np.float32),
        "var_rnoise": np.asarray(var_rnoise, np.float32)})
    if int_times is not None and model_type == "CubeModel":
        product.tables["int_times"] = int_times
    return product


def run_dark(uncal_path, refs, config, dqflags, *, context):
    """calwebb_dark on one raw dark exposure: the stage-1 steps up to, not including,
    dark_current. Returns {"dark": RampModel Product} for the caller to write."""
    from webbflow.crds.references import provenance

    ramp, product = open_ramp(uncal_path)
    ramp.data = read_ramp_data(product)
    pipeline = Detector1(ramp, refs, config, dqflags, source=uncal_path,
                         steps=stage1_steps(ramp.meta))
    pipeline.run()
    pipeline.close()
    provenance(ramp.meta, dict(refs), context)
    arrays = {"data": ramp.data, "groupdq": ramp.gdq, "pixeldq": ramp.pdq}
    if ramp.fit_zeroframe() is not None:
        arrays["zeroframe"] = ramp.fit_zeroframe()
    return {"dark": Product("RampModel", meta=ramp.meta, arrays=arrays)}


def run_stage1(uncal_path, refs, config, dqflags, *, context):
    """The stage-1 pipeline the exposure's EXP_TYPE calls for (calwebb_dark for darks,
    else calwebb_detector1 / calwebb_tso1)."""
    from webbflow.pipelines.memory import reuse_freed_memory
    from webbflow.planning import stage1_pipeline

    reuse_freed_memory()
    meta = read_product(uncal_path).meta
    run = run_dark if stage1_pipeline(meta) == "dark" else run_detector1
    return run(uncal_path, refs, config, dqflags, context=context)


def run_detector1(uncal_path, refs, config, dqflags, *, context):
    """Calibrate one raw exposure. Returns {"rate", "rateints", ["ramp"], ["fitopt"]}
    (OLS_C) or ["likely_chisq"] (LIKELY) as Products; the caller writes them."""
    import copy

    from webbflow.crds.references import provenance

    ramp, product = open_ramp(uncal_path)
    pipeline = Detector1(ramp, refs, config, dqflags, source=uncal_path)
    fit = None
    streamed = pipeline.streamable(config.get("save_calibrated_ramp", False))
    if streamed:
        try:
            fit = pipeline.run_streamed(product)
        except _WholeFrameNeeded as reason:
            log.info("whole-cube run: %s", reason)
            streamed = False
            pipeline.close()
            ramp, product = open_ramp(uncal_path)
            pipeline = Detector1(ramp, refs, config, dqflags, source=uncal_path)
    if not streamed:
        ramp.data = read_ramp_data(product)
        fit = pipeline.run()
    pipeline.close()
    meta = ramp.meta
    provenance(meta, {k: v for k, v in refs.items()}, context)
    outputs = {}
    if config.get("save_calibrated_ramp"):
        arrays = {"data": ramp.data, "groupdq": ramp.gdq, "pixeldq": ramp.pdq}
        if ramp.fit_zeroframe() is not None:
            arrays["zeroframe"] = ramp.fit_zeroframe()
        outputs["ramp"] = Product("RampModel", meta=copy.deepcopy(meta), arrays=arrays)
    if fit is None:
        raise WebbflowError(uncal_path, "ramp_fit is skipped: no rate product can be made")
    rate_meta = copy.deepcopy(meta)
    rate_meta["bunit_data"] = "DN/s"
    rate_meta["bunit_err"] = "DN/s"
    outputs["rate"] = _image_product("ImageModel", rate_meta, fit.rate)
    outputs["rateints"] = _image_product("CubeModel", copy.deepcopy(rate_meta), fit.rateints,
                                         ramp.int_times)
    if fit.chisq is not None and pipeline.params("ramp_fit").get("save_opt"):
        # LIKELY's optional product: the chi square of the fits (jwst suffix likely_chisq)
        outputs["likely_chisq"] = Product("ImageModel", meta=copy.deepcopy(meta),
                                          arrays={"data": np.asarray(fit.chisq, np.float32)})
    if fit.fitopt:
        outputs["fitopt"] = Product("RampFitOutputModel", meta=copy.deepcopy(meta),
                                    arrays={k: np.asarray(v, np.float32) for k, v in fit.fitopt.items()})
    return outputs
