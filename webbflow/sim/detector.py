"""Synthetic JWST detectors: the forward model that ``calwebb_detector1`` inverts.

Pure array code, no file I/O. Everything is in DMS orientation, numpy order ``(ny, nx)``,
0-based pixel indices; subarrays use the 1-based ``SUBSTRT`` convention of the headers.

Units and conventions (the same ones the pipeline and its reference files use,
``/work/shared/reference/jwst-algorithms.md`` §2):

* ``gain`` e-/DN; ``readnoise_cds`` DN, noise of the *difference* of two single frames
  (READNOISE convention) in the linearised data at zero signal, so one frame has
  ``sigma_frame = readnoise_cds / sqrt(2) / f'(pedestal)`` raw DN (f' = 1 for near-IR;
  ~1.02 for MIRI, whose linearity acts on raw DN including the bias).
* ``superbias`` DN; ``dark_rate`` DN/s in the linearised domain (the dark step runs after
  linearity); ``saturation`` the SATURATION reference threshold in *raw* DN, bias included
  (stcal compares raw group values with it, before superbias subtraction).
* ``linearity_coeffs`` ``(ncoeff, ny, nx)`` float32: the correction ``F_c = sum_k c_k F^k``.
  Near-IR: ``F`` is bias-subtracted (and refpix-corrected) DN. MIRI: ``F`` is raw DN, bias
  included (MIRI has no superbias step; its linearity runs on the raw ramp after the reset
  correction). The simulator inverts exactly these float32 coefficients (Newton, float64).

Forward model per read frame (frame index ``k`` counted from the reset, 0-based; a frame
read at ``(k + 1) * frame_time`` after the reset):

1. electrons ``E += Poisson((rate + dark_rate) * gain * dt)`` (``dt`` covers skipped and
   dropped frames too), plus cosmic-ray charge; ``E`` is clipped at the full well (the
   linear level reached at ``hard_saturation``), so charge stops accumulating;
2. linear DN ``L = E / gain``; near-IR: ``N = f^-1(L)``, ``raw = bias + N``;
   MIRI: ``raw = f^-1(f(bias) + L)``;
3. optional IPC: ``raw = K (*) raw`` on the science pixels (K = ``ipc_kernel``, the
   physical kernel, centre < 1; the IPC reference is its inverse, centre > 1);
4. ``+`` MIRI reset anomaly (removed by the RESET reference), ``+`` per-amplifier,
   per-column-parity bias drift shared with the reference pixels (removed by refpix),
   ``+`` optional 1/f (flicker) noise (off by default, :func:`flicker_frame`),
   ``+`` Gaussian read noise ``sigma_frame``;
   (Poisson and read-noise deviates come from counter-based splitmix64 streams seeded
   from ``rng``: reproducible by seed and independent of the numba thread count);
5. NFRAMES read frames are averaged into a group, GROUPGAP frames skipped between groups,
   DROP_FRAMES1 frames skipped after each reset; rounded and clipped to uint16.

Reference pixels and dead pixels collect no charge (bias, drift and read noise only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import prange

from webbflow.kernels._options import njit

__all__ = [
    "DetectorModel",
    "make_detector",
    "simulate_exposure",
    "linearity_forward",
    "linearity_correct",
    "dark_frame_indices",
    "reference_mask",
    "reference_saturation",
    "reference_superbias",
    "reference_linearity",
    "reference_dark",
    "reference_avdrkcur",
    "reference_gain",
    "reference_readnoise",
    "reference_ipc",
    "reference_rscd_table",
    "reference_reset",
    "reset_anomaly",
    "flicker_frame",
    "emi_frame",
    "emi_sample_clocks",
    "CR_DTYPE",
    "RSCD_DTYPE",
]

# DQ bit values (stdatamodels dqflags.pixel, see webbflow/dqflags.py). The simulator is not
# an algorithm step: it *is* the synthetic truth, so it fixes the JWST convention here.
_DO_NOT_USE = 1 << 0
_DEAD = 1 << 10
_HOT = 1 << 11
_WARM = 1 << 12
_REFERENCE_PIXEL = 1 << 31

# Full-frame geometry (jwst-algorithms.md §2.1 "A reference without these keywords is
# assumed full frame (2048x2048 NIR, 1032x1024 MIRI)"; refpix: 4 reference rows/columns on
# each NIR edge, 4 reference columns on each side for MIRI).
NIR_SHAPE = (2048, 2048)
MIRI_SHAPE = (1024, 1032)
NIR_INSTRUMENTS = ("NIRCAM", "NIRISS", "NIRSPEC", "FGS")

# FASTAXIS/SLOWAXIS values confirmed in jwst 3.0.0 test helpers:
# NRCA5 (-1, 2) assign_wcs/tests/helpers.py; NIS (-2, -1) lib/tests/helpers.py and
# saturation/tests/helpers.py; NRCB1 (1, -2) lib/tests/helpers.py. Other detectors fall back
# to (1, 2) (MIRI's value) unless given to make_detector(). GUIDER1 (-2, -1) and GUIDER2
# (2, -1): jwst 3.0.0 refpix/tests/test_refpix.py.
_AXES = {"NRCA5": (-1, 2), "NRCALONG": (-1, 2), "NIS": (-2, -1), "NRCB1": (1, -2),
         "GUIDER1": (-2, -1), "GUIDER2": (2, -1)}

CR_DTYPE = np.dtype([
    ("int", "i4"),        # integration index (0-based)
    ("frame", "i4"),      # frame index from the reset (0-based, incl. dropped/skipped frames)
    ("group", "i4"),      # first group whose reads contain the charge (ngroups: never read)
    ("y", "i4"), ("x", "i4"),   # pixel in the subarray (0-based)
    ("charge_dn", "f4"),  # deposited linear DN (before full-well clipping)
    ("event", "i4"),      # event id (pixels of one hit share it)
    ("large", "?"),       # part of a large ("snowball") event
])


@dataclass
class DetectorModel:
    """Per-pixel properties of one synthetic detector (full frame, DMS orientation)."""

    instrument: str
    detector: str
    gain: np.ndarray            # float32 e-/DN
    readnoise_cds: np.ndarray   # float32 DN (CDS)
    superbias: np.ndarray       # float32 DN
    dark_rate: np.ndarray       # float32 DN/s (linear DN)
    saturation: np.ndarray      # float32 raw DN threshold (incl. bias) = SATURATION ref
    hard_saturation: np.ndarray # float32 raw DN where the pixel stops (full well), > saturation
    linearity_coeffs: np.ndarray  # float32 (ncoeff, ny, nx)
    mask_dq: np.ndarray         # uint32
    ipc_kernel: np.ndarray      # float32 (7, 7), physical coupling, centre < 1, sum 1
    amp_map: np.ndarray         # uint8: 2*amplifier + column parity, both in detector frame
    nref: tuple = (4, 4, 4, 4)  # reference rows/cols: (bottom, top, left, right) in DMS
    fastaxis: int = 1
    slowaxis: int = 2
    bias_drift_sigma: float = 0.0   # DN, per-amp/parity offset per integration
    bias_drift_step: float = 0.0    # DN, random-walk step per read frame
    reset_amplitude: np.ndarray | None = None  # MIRI reset anomaly at group 0, int 0 (DN)
    reset_tau_groups: float = 2.0
    reset_later_ints: float = 0.3   # anomaly scale for integrations >= 2
    ipc_reference: np.ndarray | None = None  # float32 (3, 3) IPC reference: inverse kernel
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.gain.shape

    @property
    def is_miri(self):
        return self.instrument.upper() == "MIRI"

    @property
    def reference_pixels(self):
        """Boolean map of the reference pixels (full frame)."""
        return (self.mask_dq & np.uint32(_REFERENCE_PIXEL)) != 0

    @property
    def dead(self):
        return (self.mask_dq & np.uint32(_DEAD)) != 0


# --------------------------------------------------------------------------------------
# linearity helpers

def linearity_correct(raw, coeffs):
    """``F_c = sum_k c_k F^k`` (Horner, float64), the pipeline's correction."""
    raw = np.asarray(raw, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(raw.shape, coeffs.shape[1:]), dtype=np.float64)
    for c in coeffs[::-1]:
        out = out * raw + c
    return out


@njit
def _invert_poly(target, coeffs_pix, start):
    """Solve sum_k c_k R^k = target for R by Newton from ``start`` (float64)."""
    nc = coeffs_pix.shape[0]
    r = start
    for _ in range(50):
        f = 0.0
        d = 0.0
        for k in range(nc - 1, -1, -1):
            d = d * r + f
            f = f * r + coeffs_pix[k]
        if d <= 0.0:
            d = 1.0
        step = (f - target) / d
        r -= step
        if abs(step) <= 1e-10 * (1.0 + abs(r)):
            break
    return r


@njit(parallel=True)
def _read_frame(acc_e, fw_e, gain, coeffs, lin0, bias_add, warm, frame):
    """Clip charge at full well, then frame = bias_add + f^-1(lin0 + E/gain) (noiseless)."""
    ny, nx = acc_e.shape
    nc = coeffs.shape[0]
    for y in prange(ny):
        cp = np.empty(nc, dtype=np.float64)
        for x in range(nx):
            e = acc_e[y, x]
            if e > fw_e[y, x]:
                e = fw_e[y, x]
                acc_e[y, x] = e
            target = np.float64(lin0[y, x]) + np.float64(e) / np.float64(gain[y, x])
            for k in range(nc):
                cp[k] = coeffs[k, y, x]
            r = _invert_poly(target, cp, warm[y, x])
            warm[y, x] = r
            frame[y, x] = bias_add[y, x] + r


def linearity_forward(linear, coeffs, start=None):
    """Inverse of :func:`linearity_correct`: the raw ``R`` with ``f(R) = linear``."""
    linear = np.ascontiguousarray(np.broadcast_to(linear, coeffs.shape[1:]), dtype=np.float32)
    acc = linear.astype(np.float32).copy()
    ones = np.ones_like(acc)
    big = np.full_like(acc, np.inf)
    zero = np.zeros_like(acc)
    warm = np.zeros(acc.shape, np.float64) if start is None else np.array(start, np.float64)
    out = np.empty_like(acc)
    _read_frame(acc, big, ones, np.ascontiguousarray(coeffs, np.float32), zero, zero, warm, out)
    return warm


# --------------------------------------------------------------------------------------
# counter-based random numbers (deterministic for any thread count) and fused kernels
#
# Each pixel's draws for one purpose come from its own splitmix64 sequence, started at
# mix(seed ^ mix(key * npix + pixel + 1)); `key` numbers the (integration, read, purpose).
# numpy's Generator.poisson is single-threaded and ~4x slower; these kernels run in
# parallel over rows and give the same numbers whatever the thread count.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 1.0 / 9007199254740992.0


@njit
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit
def _uniform(state):
    """Advance ``state`` (1-element uint64 array) and return a float in (0, 1)."""
    state[0] += _GOLDEN
    return (np.float64(_mix(state[0]) >> np.uint64(11)) + 0.5) * _TWO53


@njit
def _poisson(lam, state):
    """Poisson deviate: inversion for lam < 10, PTRS (Hoermann 1993) otherwise."""
    if lam <= 0.0:
        return 0.0
    if lam < 10.0:
        enlam = np.exp(-lam)
        k = 0
        prod = _uniform(state)
        while prod > enlam:
            k += 1
            prod *= _uniform(state)
        return np.float64(k)
    slam = np.sqrt(lam)
    loglam = np.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = _uniform(state) - 0.5
        v = _uniform(state)
        us = 0.5 - abs(u)
        k = np.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (np.log(v) + np.log(invalpha) - np.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1.0)):
            return k


@njit(parallel=True)
def _add_poisson(acc, e_rate, dt, seed, key):
    """acc += Poisson(e_rate * dt), per pixel."""
    ny, nx = acc.shape
    npix = np.uint64(ny * nx)
    base = np.uint64(key) * npix
    for y in prange(ny):
        state = np.empty(1, np.uint64)
        for x in range(nx):
            state[0] = _mix(np.uint64(seed) ^ _mix(base + np.uint64(y * nx + x + 1)))
            acc[y, x] += np.float32(_poisson(np.float64(e_rate[y, x]) * dt, state))


@njit(parallel=True)
def _add_normal(frame, sigma, seed, key):
    """frame += sigma * N(0, 1) (Box-Muller), per pixel."""
    ny, nx = frame.shape
    npix = np.uint64(ny * nx)
    base = np.uint64(key) * npix
    for y in prange(ny):
        state = np.empty(1, np.uint64)
        for x in range(nx):
            state[0] = _mix(np.uint64(seed) ^ _mix(base + np.uint64(y * nx + x + 1)))
            u1 = _uniform(state)
            u2 = _uniform(state)
            g = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
            frame[y, x] += np.float32(sigma[y, x] * g)


@njit(parallel=True)
def _convolve_sci(img, kernel, sci, out):
    """out(y,x) = sum_{j,i} K[j,i] img(y+c-j, x+c-i) over science pixels (others = 0);
    non-science pixels keep their value."""
    ny, nx = img.shape
    nk = kernel.shape[0]
    c = nk // 2
    for y in prange(ny):
        for x in range(nx):
            if not sci[y, x]:
                out[y, x] = img[y, x]
                continue
            acc = 0.0
            for j in range(nk):
                yy = y + c - j
                if yy < 0 or yy >= ny:
                    continue
                for i in range(nk):
                    xx = x + c - i
                    if xx < 0 or xx >= nx or not sci[yy, xx]:
                        continue
                    acc += kernel[j, i] * img[yy, xx]
            out[y, x] = acc


# --------------------------------------------------------------------------------------
# detector construction

def _amp_map(ny, nx, instrument, fastaxis, slowaxis):
    """2*amp + parity per DMS pixel, amplifier geometry defined in the detector frame."""
    if instrument.upper() == "MIRI":
        # MIRI: amplifiers interleaved every 4th column (jwst-algorithms.md §2.3 refpix);
        # "parity" is the row parity there (odd/even rows treated separately).
        yy, xx = np.mgrid[0:ny, 0:nx]
        return ((xx % 4) * 2 + (yy % 2)).astype(np.uint8)
    # near-IR: detector frame has the fast (amplifier) axis along x
    if abs(fastaxis) == 1:
        dny, dnx = ny, nx
    else:
        dny, dnx = nx, ny
    namp = 4 if dnx % 4 == 0 else 1
    width = dnx // namp
    xd = np.arange(dnx)
    row = ((xd // width) * 2 + (xd % 2)).astype(np.uint8)
    det = np.broadcast_to(row, (dny, dnx))
    # detector -> DMS (jwst.lib.reffile_utils.detector_science_frame_transform)
    if abs(fastaxis) == 1:
        dms = det[::int(np.sign(slowaxis)), ::int(np.sign(fastaxis))]
    else:
        dms = np.swapaxes(det, -2, -1)[::int(np.sign(fastaxis)), ::int(np.sign(slowaxis))]
    return np.ascontiguousarray(dms, dtype=np.uint8)


def _pink_series(gen, n):
    """A zero-mean, unit-variance series of ``n`` samples with a 1/f power spectrum
    (white Gaussian deviates shaped in Fourier space; no power at zero frequency)."""
    spectrum = np.fft.rfft(gen.standard_normal(n))
    freq = np.fft.rfftfreq(n)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(freq[1:])
    series = np.fft.irfft(spectrum, n)
    return series / series.std()


def emi_sample_clocks(shape, rowclocks, nsamples):
    """Pixel clock (10 us) of each pixel's read within a MIRI frame: row ``j`` starts at
    ``j * rowclocks``, the four output channels read sample ``x // 4`` together every
    ``nsamples`` clocks (the timing jwst's emicorr assumes)."""
    ny, nx = shape
    return (np.arange(ny)[:, None] * rowclocks
            + (np.arange(nx)[None, :] // 4) * nsamples).astype(np.float64)


def emi_frame(clocks, waves):
    """EMI of one read: the sum of ``amplitude * sin(2 pi (t / period + phase))`` over
    ``waves`` ((Hz, DN, phase), ...), t the read's pixel clock, as float32."""
    out = np.zeros(clocks.shape)
    for freq, amplitude, phase in waves:
        period = (1.0 / freq) / 10.0e-6
        out += amplitude * np.sin(2 * np.pi * (clocks / period + phase))
    return out.astype(np.float32)


def flicker_frame(gen, shape, fastaxis, slowaxis, noutputs, sigma, amp_fraction=0.25):
    """One read frame of 1/f noise (float32 DN, DMS orientation, ``shape`` (ny, nx)).

    H2RG readout in the detector frame: the ``noutputs`` amplifiers read their stripes
    of the fast axis in parallel, pixel by pixel along the fast axis and row by row
    along the slow one, with 12 pixel times of overhead per row (the clocking behind
    the frame time); alternate amplifiers read in opposite directions. Each amplifier's
    sample stream is a 1/f series, ``1 - amp_fraction`` of its variance shared by all
    amplifiers (the common mode) and ``amp_fraction`` its own, so the noise is correlated
    along the fast read direction (stripes along rows for NIRCam, columns for NIRISS)
    and differs between amplifiers. Each amplifier's frame mean is taken out: a frame-wide
    offset per amplifier is the bias drift the reference pixels track (``bias_drift``),
    not flicker. ``sigma``: rms per pixel (before that mean is removed).
    """
    ny, nx = shape
    dny, dnx = (ny, nx) if abs(fastaxis) == 1 else (nx, ny)
    noutputs = noutputs if dnx % noutputs == 0 else 1
    width = dnx // noutputs
    nsamp = dny * (width + 12)
    common = _pink_series(gen, nsamp)
    det = np.empty((dny, dnx), np.float64)
    for amp in range(noutputs):
        series = np.sqrt(1.0 - amp_fraction) * common
        if amp_fraction > 0:
            series = series + np.sqrt(amp_fraction) * _pink_series(gen, nsamp)
        block = series.reshape(dny, width + 12)[:, :width]
        block = block - block.mean()
        det[:, amp * width:(amp + 1) * width] = block[:, ::-1] if amp % 2 else block
    det *= sigma
    # detector -> DMS, as in _amp_map
    if abs(fastaxis) == 1:
        dms = det[::int(np.sign(slowaxis)), ::int(np.sign(fastaxis))]
    else:
        dms = np.swapaxes(det, -2, -1)[::int(np.sign(fastaxis)), ::int(np.sign(slowaxis))]
    return np.ascontiguousarray(dms, dtype=np.float32)


def _ref_mask(shape, nref):
    ny, nx = shape
    b, t, l, r = nref
    m = np.zeros(shape, bool)
    m[:b, :] = True
    m[ny - t:, :] = True
    m[:, :l] = True
    m[:, nx - r:] = True
    return m


def make_detector(rng, instrument, detector, *, ny=None, nx=None, fastaxis=None,
                  slowaxis=None, dead_fraction=5e-4, hot_fraction=1e-3,
                  ipc_alpha=None, nonlinearity=0.08) -> DetectorModel:
    """Draw a synthetic detector.

    ``ny, nx`` default to the full frame (NIR 2048x2048, MIRI 1024x1032); smaller values
    give a miniature detector with the same reference-pixel border (handy for tests).
    ``nonlinearity``: fractional deficit of the raw signal at the hard-saturation level.
    """
    instrument = instrument.upper()
    detector = detector.upper()
    miri = instrument == "MIRI"
    if not miri and instrument not in NIR_INSTRUMENTS:
        raise ValueError(f"unknown instrument {instrument!r}")
    dshape = MIRI_SHAPE if miri else NIR_SHAPE
    ny = dshape[0] if ny is None else int(ny)
    nx = dshape[1] if nx is None else int(nx)
    shape = (ny, nx)
    nref = (0, 0, 4, 4) if miri else (4, 4, 4, 4)
    fa, sa = (1, 2) if miri else _AXES.get(detector, (1, 2))
    fastaxis = fa if fastaxis is None else int(fastaxis)
    slowaxis = sa if slowaxis is None else int(slowaxis)
    f32 = np.float32

    def n(scale=1.0):
        return rng.standard_normal(shape, dtype=f32) * f32(scale)

    gain0, rn0, bias0, dark0 = (4.0, 6.0, 10000.0, 0.05) if miri else (2.0, 10.0, 12000.0, 0.003)
    gain = (gain0 * (1 + n(0.03))).astype(f32)
    readnoise = np.clip(rn0 * (1 + n(0.1)), 0.3 * rn0, None).astype(f32)
    colbias = rng.standard_normal(nx).astype(f32) * f32(100.0)
    superbias = (bias0 + n(300.0) + colbias[None, :]).astype(f32)
    dark = (dark0 * np.exp(n(0.3))).astype(f32)
    hot = rng.random(shape) < hot_fraction
    dark[hot] = (10 ** rng.uniform(-1.0, 1.5, hot.sum())).astype(f32)   # 0.1 .. 30 DN/s
    saturation = np.clip(57500.0 + n(1000.0), 55000.0, 60000.0).astype(f32)
    hard = (saturation + rng.uniform(800.0, 2000.0, shape).astype(f32)).astype(f32)

    # correction polynomial f(F) = F + c2 F^2 + c3 F^3 (c0 = 0, c1 = 1, c4 = 0): the raw
    # signal at the hard-saturation level is short by ~`nonlinearity` of the linear signal.
    ncoeff = 5
    top = (hard if miri else hard - superbias).astype(np.float64)
    frac = nonlinearity * (1 + 0.1 * n())
    c2 = 0.8 * frac / top
    c3 = 0.2 * frac / top ** 2
    coeffs = np.zeros((ncoeff,) + shape, f32)
    coeffs[1] = 1.0
    coeffs[2] = c2
    coeffs[3] = c3

    mask = np.zeros(shape, np.uint32)
    ref = _ref_mask(shape, nref)
    dead = (rng.random(shape) < dead_fraction) & ~ref
    mask[ref] |= np.uint32(_REFERENCE_PIXEL)
    mask[dead] |= np.uint32(_DEAD | _DO_NOT_USE)
    mask[hot & ~ref & ~dead] |= np.uint32(_HOT)
    dark[ref | dead] = 0.0

    # IPC: the reference (deconvolution) kernel is 3x3 with centre > 1 and sum 1, like the
    # delivered IPC files (e.g. a NIRSpec one: centre 1.0403, edge neighbours ~ -0.0065);
    # the physical kernel is its exact inverse truncated to 7x7 (error ~alpha^4).
    a = float(rng.uniform(0.005, 0.010)) if ipc_alpha is None else float(ipc_alpha)
    ad = a / 10.0
    ipc_ref = np.array([[-ad, -a, -ad], [-a, 1 + 4 * a + 4 * ad, -a], [-ad, -a, -ad]])
    ipc = _kernel_inverse(ipc_ref, 7).astype(f32)

    det = DetectorModel(
        instrument=instrument, detector=detector, gain=gain, readnoise_cds=readnoise,
        superbias=superbias, dark_rate=dark, saturation=saturation, hard_saturation=hard,
        linearity_coeffs=coeffs, mask_dq=mask, ipc_kernel=ipc,
        ipc_reference=ipc_ref.astype(f32),
        amp_map=_amp_map(ny, nx, instrument, fastaxis, slowaxis), nref=nref,
        fastaxis=fastaxis, slowaxis=slowaxis,
        bias_drift_sigma=0.0 if miri else 8.0, bias_drift_step=0.0 if miri else 0.5,
    )
    if miri:
        det.reset_amplitude = (40.0 * (1 + n(0.2))).astype(f32)
    return det


# --------------------------------------------------------------------------------------
# readout bookkeeping

def _read_frames(ngroups, nframes, groupgap, drop_frames1):
    """Frame indices (from the reset) that are read, shape (ngroups, nframes)."""
    g = np.arange(ngroups)[:, None]
    j = np.arange(nframes)[None, :]
    return drop_frames1 + g * (nframes + groupgap) + j


def dark_frame_indices(ngroups, nframes=1, groupgap=0):
    """Frames averaged by stcal's dark step for each group (start_0 = 0)."""
    return _read_frames(ngroups, nframes, groupgap, 0)


# --------------------------------------------------------------------------------------
# cosmic rays

def _cosmic_rays(rng, ints, nframes_total, frame_time, sci_mask, rate, large_rate,
                 charge_median_e, gain, fw_e):
    """Draw hits for every integration; return a CR_DTYPE array (group filled later)."""
    ys, xs = np.nonzero(sci_mask)
    npix = ys.size
    ny, nx = sci_mask.shape
    rows = []
    event = 0
    t_int = nframes_total * frame_time
    for i in range(ints):
        for large, r in ((False, rate), (True, large_rate)):
            if r <= 0 or npix == 0:
                continue
            nev = rng.poisson(r * npix * t_int)
            if nev == 0:
                continue
            frames = np.minimum((rng.random(nev) * nframes_total).astype(np.int64),
                                nframes_total - 1)
            pick = rng.integers(0, npix, nev)
            for e in range(nev):
                y0, x0 = int(ys[pick[e]]), int(xs[pick[e]])
                if not large:
                    q = charge_median_e * np.exp(rng.normal(0.0, 0.8))
                    # most charge in the struck pixel, some diffuses into the 4 neighbours
                    share = rng.uniform(0.0, 0.08) if rng.random() < 0.4 else 0.0
                    deps = [(0, 0, q * (1 - 4 * share))]
                    if share > 0:
                        deps += [(dy, dx, q * share) for dy, dx in
                                 ((-1, 0), (1, 0), (0, -1), (0, 1))]
                else:
                    rc = rng.uniform(1.5, 4.0)
                    h = rng.uniform(1.0, 3.0)
                    rmax = int(np.ceil(rc + 4 * h))
                    deps = []
                    for dy in range(-rmax, rmax + 1):
                        for dx in range(-rmax, rmax + 1):
                            rr = np.hypot(dy, dx)
                            if rr <= rc:
                                q = 3.0 * fw_e[y0, x0]   # saturated core
                            else:
                                q = 4000.0 * np.exp(-(rr - rc) / h) * gain[y0, x0]
                                if q < 5.0 * gain[y0, x0]:
                                    continue
                            deps.append((dy, dx, q))
                for dy, dx, q in deps:
                    y, x = y0 + dy, x0 + dx
                    if 0 <= y < ny and 0 <= x < nx and sci_mask[y, x]:
                        rows.append((i, frames[e], -1, y, x, q, event, large))
                event += 1
    out = np.array(rows, dtype=[("int", "i4"), ("frame", "i4"), ("group", "i4"),
                                ("y", "i4"), ("x", "i4"), ("charge_e", "f8"),
                                ("event", "i4"), ("large", "?")])
    return out


# --------------------------------------------------------------------------------------
# the exposure

def _ipc_convolve(img, kernel, sci_mask, out=None):
    """out(y,x) = sum_{j,i} K[j,i] in(y+c-j, x+c-i), reference pixels as zero and kept
    (the convolution jwst's IPC step applies with the IPC reference kernel)."""
    img = np.ascontiguousarray(img, np.float32)
    out = np.empty_like(img) if out is None else out
    _convolve_sci(img, np.ascontiguousarray(kernel, np.float64),
                  np.ascontiguousarray(sci_mask, np.bool_), out)
    return out


def simulate_exposure(rng, rate_dn_s, det: DetectorModel, *, xstart=1, ystart=1,
                      xsize=None, ysize=None, nints=1, ngroups=10, nframes=1, groupgap=0,
                      frame_time=10.73677, nresets_between_ints=1, drop_frames1=0,
                      cosmic_ray_rate=1.5e-5, large_event_rate=1e-9,
                      cr_charge_median_e=1500.0, include_ipc=False,
                      miri_reset_anomaly=False, bias_drift=True, noiseless=False,
                      quantize=True, flicker_noise=0.0, flicker_amp_fraction=0.25,
                      noutputs=None, emi=None):
    """Simulate a raw ramp (``uncal`` SCI) on a subarray of ``det``.

    Parameters
    ----------
    rng : numpy.random.Generator
    rate_dn_s : ndarray, float
        Source + background count rate in DN/s, either full frame ``det.shape`` or
        already the ``(ysize, xsize)`` cut-out. Dark current is added by the detector.
    xstart, ystart, xsize, ysize : int
        SUBSTRT1/2 (1-based) and SUBSIZE1/2; default the full frame.
    nints, ngroups, nframes, groupgap, frame_time, drop_frames1 :
        Readout (frame_time in s). ``drop_frames1`` frames are skipped after every reset.
    nresets_between_ints : int
        Reset frames between integrations; charge never carries over, so this only enters
        the timing recorded in ``truth``.
    cosmic_ray_rate : float
        Primary hits per science pixel per second (log-normal charge, median
        ``cr_charge_median_e`` electrons, 40% with charge shared into the 4 neighbours).
    large_event_rate : float
        Snowball-like events per science pixel per second: a saturated core (radius
        1.5-4 px) and an exponential halo.
    include_ipc, miri_reset_anomaly, bias_drift : bool
        Switch the IPC coupling, the MIRI reset anomaly (needs ``det.reset_amplitude``)
        and the reference-pixel-tracked bias drift.
    noiseless : bool
        No Poisson noise, no read noise, no bias drift: groups follow the model exactly.
    flicker_noise : float
        rms (raw DN per read frame) of 1/f noise added to every read frame, reference
        pixels included (:func:`flicker_frame`); 0 (the default) adds none and leaves every
        other deviate unchanged (its stream is seeded apart from them).
    flicker_amp_fraction : float
        Share of the 1/f variance independent per amplifier (the rest is common mode).
    noutputs : int or None
        Amplifiers reading the subarray (NOUTPUTS); None: 4 when the fast axis spans the
        full 2048 pixels, else 1. Only the flicker noise uses it.
    emi : dict or None
        MIRI EMI added to every read frame (:func:`emi_frame`): ``waves`` ((Hz, DN
        amplitude, phase), ...), ``rowclocks``, ``frameclocks``, ``nsamples``, ``r1``
        (a reset frame between integrations). None (the default) adds none.
    quantize : bool
        Round and clip to uint16 (the ``uncal`` convention); False returns float32.

    Returns
    -------
    sci : (nints, ngroups, ysize, xsize) uint16 (float32 if not quantize)
    zeroframe : (nints, ysize, xsize) same dtype, the first read frame of each integration
    truth : dict
        ``rate`` float32 DN/s (what calibrated rates should recover; 0 on reference pixels),
        ``cosmic_rays`` (:data:`CR_DTYPE`), ``saturated_mask`` bool (ysize, xsize): any
        group at or above the SATURATION threshold (noiseless values),
        ``first_saturated_group`` int16 (nints, ysize, xsize) (ngroups = never),
        ``dead_mask``, ``reference_mask`` bool, ``read_frames`` (ngroups, nframes),
        ``group_time``, ``frame_time``, ``integration_time`` (reset to last read, s),
        ``bias_drift`` float32 (nints, ngroups, 8) mean group offsets per amp/parity.
    """
    f32 = np.float32
    fny, fnx = det.shape
    xsize = fnx if xsize is None else int(xsize)
    ysize = fny if ysize is None else int(ysize)
    y0, x0 = int(ystart) - 1, int(xstart) - 1
    if y0 < 0 or x0 < 0 or y0 + ysize > fny or x0 + xsize > fnx:
        raise ValueError("subarray outside the detector")
    sl = (slice(y0, y0 + ysize), slice(x0, x0 + xsize))
    shape = (ysize, xsize)
    rate_dn_s = np.asarray(rate_dn_s)
    if rate_dn_s.shape == det.shape:
        rate = rate_dn_s[sl].astype(f32)
    elif rate_dn_s.shape == shape:
        rate = rate_dn_s.astype(f32)
    else:
        raise ValueError(f"rate shape {rate_dn_s.shape} fits neither {det.shape} nor {shape}")
    if ngroups < 1 or nframes < 1 or nints < 1:
        raise ValueError("nints, ngroups and nframes must be >= 1")

    ref = det.reference_pixels[sl]
    dead = det.dead[sl]
    sci_mask = ~ref & ~dead
    rate = np.where(ref, f32(0.0), rate).astype(f32)
    light = np.where(sci_mask, np.clip(rate, 0, None), f32(0.0)).astype(f32)

    gain = np.ascontiguousarray(det.gain[sl], f32)
    bias = np.ascontiguousarray(det.superbias[sl], f32)
    coeffs = np.ascontiguousarray(det.linearity_coeffs[:, sl[0], sl[1]], f32)
    sat = det.saturation[sl]
    miri = det.is_miri
    # electrons per second collected, and the full well in electrons
    e_rate = ((light + det.dark_rate[sl]) * gain).astype(f32)
    if miri:
        lin0 = linearity_correct(bias, coeffs).astype(f32)
        bias_add = np.zeros(shape, f32)
        warm0 = bias.astype(np.float64)
        top = det.hard_saturation[sl].astype(np.float64)
        fw_lin = linearity_correct(top, coeffs) - lin0
    else:
        lin0 = np.zeros(shape, f32)
        bias_add = bias
        warm0 = np.zeros(shape, np.float64)
        fw_lin = linearity_correct(det.hard_saturation[sl] - bias.astype(np.float64), coeffs)
    fw_e = np.ascontiguousarray(np.where(sci_mask, fw_lin * gain, np.inf), f32)
    # READNOISE describes the noise of the *linearised* data at zero signal (what jump and
    # ramp_fit assume); the raw-domain frame noise is that divided by f'(raw pedestal),
    # which is 1 for near-IR (c1 = 1 at F = 0) and ~1.03 for MIRI (linearity on raw DN).
    r0 = bias.astype(np.float64) if miri else np.zeros(shape)
    fprime0 = np.zeros(shape)
    for k in range(coeffs.shape[0] - 1, 0, -1):
        fprime0 = fprime0 * r0 + k * coeffs[k]
    sigma_frame = (det.readnoise_cds[sl] / np.sqrt(2.0) / fprime0).astype(f32)

    reads = _read_frames(ngroups, nframes, groupgap, drop_frames1)
    nframes_total = int(reads[-1, -1]) + 1
    read_list = reads.ravel()
    group_of_read = np.repeat(np.arange(ngroups), nframes)

    # cosmic rays, with the read they first appear in
    crs = _cosmic_rays(rng, nints, nframes_total, frame_time, sci_mask, cosmic_ray_rate,
                       large_event_rate, cr_charge_median_e, gain, fw_e)
    first_read = np.searchsorted(read_list, crs["frame"], side="left") if crs.size else \
        np.zeros(0, int)
    crs["group"] = group_of_read[np.minimum(first_read, read_list.size - 1)]

    amp = det.amp_map[sl]
    namp = 8
    drift_on = bias_drift and not noiseless and (det.bias_drift_sigma > 0 or
                                                 det.bias_drift_step > 0)
    reset_on = miri_reset_anomaly and det.reset_amplitude is not None
    ipc_on = include_ipc

    out_dtype = np.uint16 if quantize else f32
    sci = np.empty((nints, ngroups) + shape, out_dtype)
    zeroframe = np.empty((nints,) + shape, out_dtype)
    first_sat = np.full((nints,) + shape, ngroups, np.int16)
    drift_groups = np.zeros((nints, ngroups, namp), f32)

    acc = np.empty(shape, f32)
    warm = np.empty(shape, np.float64)
    frame = np.empty(shape, f32)
    gsum = np.empty(shape, f32)
    gsum_nl = np.empty(shape, f32)
    ipc_buf = np.empty(shape, f32)
    sci_pix = np.ascontiguousarray(~ref)
    sigma64 = sigma_frame.astype(np.float64)
    ipc_k = det.ipc_kernel.astype(np.float64)
    seed = int(rng.integers(0, 2 ** 63))      # counter-based streams for Poisson/read noise
    nreads = read_list.size
    flicker_on = flicker_noise > 0 and not noiseless
    if flicker_on and miri:
        raise ValueError("the 1/f noise model is the near-IR (H2RG) readout's; not for MIRI")
    if flicker_on:
        # a stream of its own, so that switching it on changes no other deviate
        flicker_gen = np.random.default_rng([seed, 0x1F])
        fast_len = shape[1] if abs(det.fastaxis) == 1 else shape[0]
        outputs = noutputs or (4 if fast_len == 2048 else 1)

    emi_on = bool(emi and emi.get("waves"))
    if emi_on:
        emi_clock = emi_sample_clocks(shape, emi["rowclocks"], emi["nsamples"])
        emi_frame_clocks = shape[0] * emi["rowclocks"] + (1024 - shape[0]) * 7
        emi_int_clocks = ngroups * emi_frame_clocks + (emi["frameclocks"] if emi["r1"] else 0)

    def store(dst, src):
        if quantize:
            np.rint(src, out=src)
            np.clip(src, 0, 65535, out=src)
        dst[...] = src

    for i in range(nints):
        acc[...] = 0.0
        warm[...] = warm0
        sel = crs[crs["int"] == i]
        cr_read = np.searchsorted(read_list, sel["frame"], side="left") if sel.size else sel
        offsets = (rng.normal(0.0, det.bias_drift_sigma, namp) if drift_on
                   else np.zeros(namp))
        last_frame = -1
        for r, k in enumerate(read_list):
            g = r // nframes
            j = r % nframes
            dt = (k - last_frame) * frame_time
            last_frame = k
            if noiseless:
                acc += e_rate * f32(dt)
            else:
                _add_poisson(acc, e_rate, float(dt), seed, 2 * (i * nreads + r))
            if sel.size:
                hit = sel[cr_read == r]
                if hit.size:
                    np.add.at(acc, (hit["y"], hit["x"]), hit["charge_e"].astype(f32))
            _read_frame(acc, fw_e, gain, coeffs, lin0, bias_add, warm, frame)
            if j == 0:
                gsum_nl[...] = 0.0
                gsum[...] = 0.0
            gsum_nl += frame
            if ipc_on:
                _convolve_sci(frame, ipc_k, sci_pix, ipc_buf)
                frame, ipc_buf = ipc_buf, frame
            if reset_on:
                scale = 1.0 if i == 0 else det.reset_later_ints
                frame += det.reset_amplitude[sl] * f32(scale * np.exp(-g / det.reset_tau_groups))
            if drift_on:
                if r > 0:
                    offsets = offsets + rng.normal(0.0, det.bias_drift_step, namp)
                frame += offsets.astype(f32)[amp]
                drift_groups[i, g] += f32(offsets / nframes)
            if flicker_on:
                frame += flicker_frame(flicker_gen, shape, det.fastaxis, det.slowaxis, outputs,
                                       float(flicker_noise), float(flicker_amp_fraction))
            if emi_on:
                frame += emi_frame(emi_clock + (i * emi_int_clocks + g * emi_frame_clocks),
                                   emi["waves"])
            if not noiseless:
                _add_normal(frame, sigma64, seed, 2 * (i * nreads + r) + 1)
            if r == 0:
                store(zeroframe[i], frame.copy())
            gsum += frame
            if j == nframes - 1:
                gsum /= f32(nframes)
                gsum_nl /= f32(nframes)
                newly = (gsum_nl >= sat) & (first_sat[i] == ngroups)
                first_sat[i][newly] = g
                store(sci[i, g], gsum)

    group_time = (nframes + groupgap) * frame_time
    cr_out = np.zeros(crs.size, CR_DTYPE)
    for name in ("int", "frame", "group", "y", "x", "event", "large"):
        cr_out[name] = crs[name]
    if crs.size:
        cr_out["charge_dn"] = crs["charge_e"] / gain[crs["y"], crs["x"]]
    truth = {
        "rate": rate,
        "cosmic_rays": cr_out,
        "saturated_mask": (first_sat < ngroups).any(axis=0),
        "first_saturated_group": first_sat,
        "dead_mask": dead,
        "reference_mask": ref,
        "read_frames": reads,
        "frame_time": float(frame_time),
        "group_time": float(group_time),
        "integration_time": float(nframes_total * frame_time),
        "nresets_between_ints": int(nresets_between_ints),
        "bias_drift": drift_groups,
    }
    return sci, zeroframe, truth


# --------------------------------------------------------------------------------------
# reference arrays (full frame) for the CRDS cache writer

def reference_mask(det):
    """MASK DQ uint32 (ny, nx): REFERENCE_PIXEL border, DEAD|DO_NOT_USE, HOT.

    Reference pixels carry REFERENCE_PIXEL only: jwst's refpix ignores reference pixels
    that have DO_NOT_USE, so flagging them so would disable the correction.
    """
    return det.mask_dq.copy()


def reference_saturation(det):
    """SATURATION: (SCI float32 raw-DN threshold incl. bias, DQ uint32)."""
    return det.saturation.astype(np.float32).copy(), np.zeros(det.shape, np.uint32)


def reference_superbias(det, nstack=50):
    """SUPERBIAS: (SCI, ERR, DQ); ERR = frame noise of an ``nstack``-frame average."""
    err = (det.readnoise_cds / np.sqrt(2.0 * nstack)).astype(np.float32)
    return det.superbias.astype(np.float32).copy(), err, np.zeros(det.shape, np.uint32)


def reference_linearity(det):
    """LINEARITY: (COEFFS float32 (ncoeff, ny, nx), DQ uint32)."""
    return det.linearity_coeffs.astype(np.float32).copy(), np.zeros(det.shape, np.uint32)


def reference_dark(det, ngroups, nframes=1, groupgap=0, frame_time=10.73677, nints=None,
                   nstack=20):
    """DARK: (SCI, ERR, DQ) of the noiseless dark signal in linear DN.

    Group ``g`` is the mean over its frames ``k`` of ``dark_rate * (k + 1) * frame_time``
    (frames as in stcal's dark averaging, start_0 = 0). Near-IR: SCI/ERR
    ``(ngroups, ny, nx)``, DQ ``(ny, nx)``. MIRI: SCI/ERR ``(nints, ngroups, ny, nx)``
    (default nints=2), DQ ``(nints, 1, ny, nx)``. DQ flags hot pixels (HOT) and dead pixels.
    ERR: Poisson + read noise of an ``nstack``-dark average.
    """
    frames = dark_frame_indices(ngroups, nframes, groupgap)
    t = ((frames + 1).mean(axis=1) * frame_time).astype(np.float32)     # (ngroups,)
    shape = det.shape
    sci = np.empty((ngroups,) + shape, np.float32)
    err = np.empty((ngroups,) + shape, np.float32)
    rn2 = (det.readnoise_cds ** 2 / 2.0 / nframes).astype(np.float32)
    for g in range(ngroups):
        np.multiply(det.dark_rate, t[g], out=sci[g])
        err[g] = np.sqrt((sci[g] / det.gain + rn2) / nstack)
    dq = (det.mask_dq & np.uint32(_HOT | _DEAD | _DO_NOT_USE)).astype(np.uint32)
    if det.is_miri:
        nints = 2 if nints is None else int(nints)
        sci = np.broadcast_to(sci, (nints,) + sci.shape).copy()
        err = np.broadcast_to(err, (nints,) + err.shape).copy()
        dq = np.broadcast_to(dq, (nints, 1) + shape).copy()
    return sci, err, dq


def reference_avdrkcur(det, units="DN/s"):
    """Average dark current per pixel (the DARK ``AVDRKCUR`` array), float32.

    stcal's OLS_C adds AVDRKCUR *as is* to the DN/s median rate in the Poisson variance
    (``slope_fitter.c``: ``var_p = (median_rate + dcurrent) / (tgroup * gain * (n-1))``),
    so ``units="DN/s"`` (default) is what gives honest errors on hot pixels; the jwst
    dark step documents the parameter as e-/s (``units="e-/s"`` multiplies by the gain).
    """
    if units == "DN/s":
        return det.dark_rate.astype(np.float32).copy()
    if units == "e-/s":
        return (det.dark_rate * det.gain).astype(np.float32)
    raise ValueError("units must be 'DN/s' or 'e-/s'")


def reference_gain(det):
    """GAIN SCI float32 (ny, nx), e-/DN."""
    return det.gain.astype(np.float32).copy()


def reference_readnoise(det):
    """READNOISE SCI float32 (ny, nx), CDS read noise in DN."""
    return det.readnoise_cds.astype(np.float32).copy()


def _kernel_inverse(kernel, size, n=64):
    """Convolution inverse of a small kernel (periodic FFT on n x n), cut to size x size,
    renormalised to sum 1."""
    k = np.zeros((n, n))
    c = kernel.shape[0] // 2
    for j in range(kernel.shape[0]):
        for i in range(kernel.shape[1]):
            k[(j - c) % n, (i - c) % n] = kernel[j, i]
    inv = np.real(np.fft.ifft2(1.0 / np.fft.fft2(k)))
    h = size // 2
    out = np.empty((size, size))
    for j in range(size):
        for i in range(size):
            out[j, i] = inv[(j - h) % n, (i - h) % n]
    return out / out.sum()


def reference_ipc(det):
    """IPC SCI float32 (3, 3): the deconvolution kernel (centre > 1, sum 1).

    The simulator's physical kernel ``det.ipc_kernel`` is the inverse of this one, so
    the pipeline's IPC step undoes the coupling to ~alpha^4 (~1e-8).
    """
    if det.ipc_reference is None:
        return _kernel_inverse(det.ipc_kernel, 3).astype(np.float32)
    return det.ipc_reference.astype(np.float32).copy()


RSCD_DTYPE = np.dtype([("subarray", "U20"), ("readpatt", "U10"),
                       ("group_skip1", "i4"), ("group_skip", "i4")])


def reference_rscd_table(subarrays=("FULL", "BRIGHTSKY", "SUB256", "SUB128", "SUB64",
                                    "MASK1065", "MASK1140", "MASK1550", "MASKLYOT",
                                    "SLITLESSPRISM", "GENERIC"),
                         readpatts=("FAST", "SLOW", "FASTR1", "SLOWR1", "FASTR100",
                                    "ANY"),
                         group_skip1=0, group_skip=3):
    """RSCD ``RSCD_GROUP_SKIP`` rows (synthetic values; the simulator adds no RSCD signal).

    ``group_skip1`` applies to the first integration, ``group_skip`` to later ones.
    """
    rows = [(s, r, group_skip1, group_skip) for s in subarrays for r in readpatts]
    return np.array(rows, dtype=RSCD_DTYPE)


def reset_anomaly(det, nints, ngroups):
    """The anomaly the simulator adds: (nints, ngroups, ny, nx) float32 DN."""
    if det.reset_amplitude is None:
        raise ValueError("detector has no reset anomaly (MIRI only)")
    g = np.arange(ngroups)
    prof = np.exp(-g / det.reset_tau_groups)
    scale = np.where(np.arange(nints) == 0, 1.0, det.reset_later_ints)
    fac = (scale[:, None] * prof[None, :]).astype(np.float32)
    return fac[:, :, None, None] * det.reset_amplitude[None, None]


def reference_reset(det, nints, ngroups):
    """RESET: (SCI (nints, ngroups, ny, nx), ERR same, DQ (ny, nx)) float32/uint32.

    The pipeline subtracts ``SCI[min(i, nints-1), g]``; use nints >= 2 so integration 1's
    larger anomaly and the later ones are both represented.
    """
    sci = reset_anomaly(det, nints, ngroups)
    err = np.full(sci.shape, 0.1, np.float32)
    return sci, err, np.zeros(det.shape, np.uint32)
