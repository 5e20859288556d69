"""emicorr: MIRI EMI correction, as jwst 3.0 does it (``jwst/emicorr/emicorr.py``,
``emicorr_step.py``).

Entry point: :func:`correct_emi` on the whole ramp (every integration: both
algorithms phase integrations against each other).

Timing model (the official one): MIRI reads its four output channels at once, one
sample every ``nsamples`` pixel clocks (10 us; 1 FAST, 9 SLOW); a row takes
``rowclocks`` clocks; a frame ``ny * rowclocks + (1024 - ny) * 7`` clocks; the R1
patterns add ``frameclocks`` (one reset frame) between integrations. ``rowclocks`` and
``frameclocks`` come from the EMICORR reference's ``subarray_cases`` entry of the
subarray (``FULL_FAST`` / ``FULL_SLOW`` for full frames), which also lists the
frequencies to correct (per readout speed, and per detector for SLOW).

* ``joint``: pixels with modest scatter (group std < 2x the median std, PIXELDQ 0)
  are summed by first-group phase; for 500 trial phases of the reference waveform (a
  periodic cubic spline through ``phase_amplitudes``) the amplitude that makes their
  ramps straightest (least chi squared after a line fit) is solved for; a parabola
  through the best three gives the phase; the scaled, phased waveform is subtracted
  from every pixel (one phase and amplitude for the exposure, or per integration
  with ``fit_ints_separately``).
* ``sequential``: each integration loses a crude line fit and a median bias; the
  four channels are averaged; their values are binned by phase (sigma-clipped means)
  into a phased-amplitude wave, which is cross-correlated with the reference wave to
  phase it (and scaled to it with ``scale_reference``), or used itself when the
  frequencies come from ``onthefly_corr_freq``; the looked-up noise is subtracted.
"""

import logging

import numpy as np

from webbflow.kernels import emicorr as kernels

log = logging.getLogger("webbflow.emicorr")

DEFAULTS = {
    "algorithm": "joint", "nints_to_phase": None, "nbins": None, "scale_reference": True,
    "onthefly_corr_freq": None, "use_n_cycles": 3, "fit_ints_separately": False,
    "save_intermediate_results": False,
}

READ_PATTERNS = ("FAST", "FASTR1", "SLOW", "SLOWR1")

# rowclocks and frameclocks of the MIRI subarrays, for on-the-fly frequencies (no
# reference): the table in jwst 3.0 ``jwst/emicorr/emicorr.py`` (``subarray_clocks``)
SUBARRAY_CLOCKS = {
    "SLITLESSPRISM": (28, 15904), "MASKLYOT": (90, 32400), "SUB64": (28, 8512),
    "SUB128": (44, 11904), "MASK1140": (82, 23968), "MASK1550": (82, 23968),
    "MASK1065": (82, 23968), "FULL_FAST": (271, 277504), "FULL_SLOW": (2333, 2388992),
    "BRIGHTSKY": (162, 86528), "SUB256": (96, 29952),
}

PIXEL_CLOCK_S = 10.0e-6
TRIAL_PHASES = 500


def unsupported_options(params):
    """Options webbflow does not carry, each named."""
    bad = []
    if params.get("save_intermediate_results"):
        bad.append("save_intermediate_results (the on-the-fly EMICORR reference file)")
    if params.get("user_supplied_reffile") is not None:
        bad.append("user_supplied_reffile (deprecated officially; use crds overrides: "
                   "{emicorr: <file>})")
    return bad


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def subarray_case(reference, subarray, readpatt, detector):
    """(rowclocks, frameclocks, [frequency names]) of the reference's ``subarray_cases``
    entry for this exposure, or None when it has none (the step then skips)."""
    readpatt = readpatt.upper()
    speed = "SLOW" if "SLOW" in readpatt else "FAST" if "FAST" in readpatt else None
    if speed is None:
        return None
    name = f"{subarray}_{speed}" if "FULL" in subarray else subarray
    case = reference["subarray_cases"].get(name)
    if case is None:
        return None
    try:
        freqs = case["freqs"][speed]
        if speed == "SLOW":
            freqs = freqs[detector]
        return int(case["rowclocks"]), int(case["frameclocks"]), [str(f) for f in freqs]
    except (KeyError, TypeError):
        return None


def read_reference(path):
    """The EMICORR reference as plain dicts: {"frequencies": {name: (Hz, waveform)},
    "subarray_cases": {...}}."""
    import asdf

    with asdf.open(path, lazy_load=False, memmap=False) as af:
        tree = af.tree
        frequencies = {str(name): (float(entry["frequency"]),
                                   np.array(entry["phase_amplitudes"], dtype=np.float64))
                       for name, entry in tree["frequencies"].items()}
        cases = _plain(tree["subarray_cases"])
    return {"frequencies": frequencies, "subarray_cases": cases}


def _plain(node):
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def correct_emi(data, pdq, *, subarray, readpatt, detector, nsamples, reference=None,
                xstart=1, xsize=None, **params):
    """EMI-correct ``data`` (nints, ngroups, ny, nx) float32 in place.

    Returns "COMPLETE", or "SKIPPED" where the official step skips (read pattern not
    FAST/FASTR1/SLOW/SLOWR1, fewer than 3 groups, no subarray case or frequency)."""
    p = {**DEFAULTS, **params}
    readpatt = str(readpatt).upper()
    if readpatt not in READ_PATTERNS:
        log.warning("emicorr: not implemented for read pattern %s: skipped", readpatt)
        return "SKIPPED"
    nints, ngroups, ny, nx = data.shape
    if ngroups < 3:
        log.warning("emicorr: cannot correct ngroups=%d: skipped", ngroups)
        return "SKIPPED"
    algorithm = p["algorithm"]
    onthefly = p["onthefly_corr_freq"]
    if onthefly is not None:
        reference = None
    if algorithm == "joint" and reference is None:
        log.warning("emicorr: the joint algorithm needs the EMICORR reference: sequential")
        algorithm = "sequential"
    waves = []
    if reference is not None:
        case = subarray_case(reference, subarray, readpatt, detector)
        if case is None:
            log.warning("emicorr: no correction for %s %s %s: skipped", subarray, readpatt,
                        detector)
            return "SKIPPED"
        rowclocks, frameclocks, names = case
        for name in names:
            waves.append(reference["frequencies"][name])
        freqs = [f for f, _ in waves]
    else:
        name = f"{subarray}_{'FAST' if 'FAST' in readpatt else 'SLOW'}" \
            if subarray == "FULL" else subarray
        if name not in SUBARRAY_CLOCKS:
            log.warning("emicorr: no clocks for subarray %s: skipped", subarray)
            return "SKIPPED"
        rowclocks, frameclocks = SUBARRAY_CLOCKS[name]
        freqs = [float(f) for f in onthefly]
    if not freqs:
        log.warning("emicorr: no frequency to correct: skipped")
        return "SKIPPED"
    r1 = readpatt in ("FASTR1", "SLOWR1")
    log.info("emicorr: %s algorithm, frequencies %s Hz", algorithm, freqs)
    if algorithm == "joint":
        for freq, (_, wave) in zip(freqs, waves):
            joint_fit_subtract(data, pdq, wave, nsamples, rowclocks,
                               frameclocks if r1 else 0, _period(freq),
                               fit_ints_separately=p["fit_ints_separately"])
    else:
        sequential_subtract(data, freqs, [w for _, w in waves], nsamples, rowclocks,
                            frameclocks, r1=r1, xstart=xstart, xsize=nx if xsize is None else xsize,
                            nints_to_phase=p["nints_to_phase"], nbins=p["nbins"],
                            scale_reference=p["scale_reference"], use_n_cycles=p["use_n_cycles"])
    return "COMPLETE"


def _period(freq):
    """EMI period in pixel clocks."""
    return (1.0 / freq) / PIXEL_CLOCK_S


def _frame_clocks(ny, rowclocks):
    return ny * rowclocks + (1024.0 - ny) * (4 + 3.0)


# -- joint ---------------------------------------------------------------------------

class _Waveform:
    """The reference waveform as a periodic function of phase: a not-a-knot cubic
    spline through the samples at phases (n + 0.5) / N, wrapped by one sample at each
    end (the official interpolation)."""

    def __init__(self, wave):
        from scipy.interpolate import make_interp_spline

        wave = np.asarray(wave, dtype=np.float64)
        n = wave.size
        self.samples = np.concatenate([wave[-1:], wave, wave[:1]])
        self.phases = (np.arange(n + 2) - 0.5) / n
        self.spline = make_interp_spline(self.phases, self.samples, k=3, check_finite=False)

    def __call__(self, phase):
        return self.spline(phase)


def joint_fit_subtract(data, pdq, wave, nsamples, rowclocks, frameclocks, period,
                       fit_ints_separately=False):
    """One frequency of the joint algorithm on ``data`` in place."""
    nints, ngroups, ny, nx = data.shape
    nx4 = nx // 4
    times = (np.arange(ny)[:, None] * rowclocks + np.arange(nx4)[None, :] * nsamples)
    phase = (times.astype(np.float64) / period) % 1
    dphase = (_frame_clocks(ny, rowclocks) / period) % 1
    dphase_int = dphase * ngroups + frameclocks / period
    waveform = _Waveform(wave)
    groups = np.arange(ngroups)
    template = (waveform.phases[1:-1, None] + groups * dphase) % 1   # (nphases, ngroups)
    nphases = template.shape[0]

    spread = np.std(data, axis=1)
    good = np.ascontiguousarray((spread < 2 * np.median(spread)) & (pdq == 0))
    all_y = np.zeros((nints, nphases, ngroups))
    all_n = np.zeros((nints, nphases))
    index = (phase * nphases).astype(np.int64)
    kernels.sum_by_phase(np.ascontiguousarray(data), good, index, all_y, all_n)

    trial = np.arange(TRIAL_PHASES) * 1.0 / TRIAL_PHASES
    fit = _ChiSquare(all_y, all_n, waveform, template, trial, dphase_int)
    if fit_ints_separately:
        offsets, amplitudes = [], []
        for i in range(nints):
            best = _parabola_minimum(trial, fit.chisq(ints=[i])[0])
            offsets.append(best + i * dphase_int)
            amplitudes.append(fit.chisq(ints=[i], phases=[best])[1][0])
    else:
        best = _parabola_minimum(trial, fit.chisq()[0])
        amplitude = fit.chisq(phases=[best])[1][0]
        offsets = (best + np.arange(nints) * dphase_int) % 1
        amplitudes = [amplitude] * nints
    for i in range(nints):
        for g in range(ngroups):
            model = amplitudes[i] * waveform((phase + dphase * g + offsets[i]) % 1)
            kernels.subtract_channels(data[i, g], model)
    return data


class _ChiSquare:
    """Chi squared of straight-line fits to the phase-summed ramps after the waveform,
    scaled by the best amplitude, is taken off; the waveform sums at each trial phase
    are computed once (the official write-up's algebra)."""

    def __init__(self, all_y, all_n, waveform, template, trial, dphase_int):
        self.all_y, self.all_n = all_y, all_n
        self.nints, _, self.ngroups = all_y.shape
        t = np.arange(self.ngroups)
        self.s_tt = np.sum(t ** 2)
        self.s_t = np.sum(t)
        self.delta = self.ngroups * self.s_tt - self.s_t ** 2
        self.s_y = np.sum(all_y, axis=2)
        self.s_ty = np.sum(all_y * t, axis=2)
        self.trial = trial
        self.dphase_int = dphase_int
        self.z, self.s_z, self.s_tz, self.s_zz = [], [], [], []
        for offset in trial:
            z = waveform((template.T + offset) % 1).T
            self.z.append(z)
            self.s_tz.append(np.sum(t * z, axis=1))
            self.s_z.append(np.sum(z, axis=1))
            self.s_zz.append(np.sum(z ** 2, axis=1))

    def chisq(self, ints=None, phases=None):
        """(chi squared, amplitude) lists at ``phases`` (default: every trial phase),
        summed over the integrations ``ints`` (default all)."""
        ints = np.arange(self.nints) if ints is None else ints
        phases = self.trial if phases is None else phases
        chi, amp = [], []
        n_g, s_t, s_tt, delta = self.ngroups, self.s_t, self.s_tt, self.delta
        for phase in phases:
            a = 0
            b = 0
            for i in ints:
                k = np.argmin(np.abs((self.trial - phase - self.dphase_int * i) % 1))
                z, s_z, s_tz, s_zz = self.z[k], self.s_z[k], self.s_tz[k], self.s_zz[k]
                s_y, s_ty, n = self.s_y[i], self.s_ty[i], self.all_n[i]
                s_yz = np.sum(z * self.all_y[i], axis=1)
                a += np.sum(n / delta * (-s_tt * s_z ** 2 + 2 * s_t * s_z * s_tz
                                         - n_g * s_tz ** 2 + s_zz * delta))
                b += (2 / delta) * np.sum(s_tt * s_z * s_y - s_t * s_tz * s_y
                                          - s_t * s_z * s_ty + n_g * s_tz * s_ty)
                b -= 2 * np.sum(s_yz)
            if np.isclose(a, 0, atol=1e-8) or not np.isfinite(a) or not np.isfinite(b):
                chi.append(np.nan)
                amp.append(0.0)
            else:
                c = -b / (2 * a)
                chi.append(a * c ** 2 + b * c)
                amp.append(c)
        return chi, amp


def _parabola_minimum(phases, chisq):
    """Vertex of the parabola through the lowest chi squared and its two (periodic)
    neighbours; the grid phase itself where that cannot be formed."""
    chisq = np.asarray(chisq)
    if not np.any(np.isfinite(chisq)):
        log.warning("emicorr: chi squared is NaN at every phase")
        return phases[0]
    best = int(np.nanargmin(chisq))
    lo, hi = best - 1, best + 1 if best + 1 < len(chisq) else 0
    three = [chisq[lo], chisq[best], chisq[hi]]
    if not np.all(np.isfinite(three)) or np.nanstd(three) == 0:
        return phases[best]
    a, b, _ = np.polyfit([phases[lo], phases[best], phases[hi]], three, 2)
    return -b / (2 * a)


# -- sequential ----------------------------------------------------------------------

def _line_fit(data):
    """Per-pixel slope (per group) of a least-squares line through data (n, ny, nx)."""
    n = data.shape[0]
    t = np.arange(n) * 1.0
    sxy = np.zeros(data.shape[1:])
    sy = np.zeros(data.shape[1:])
    sx = np.zeros(data.shape[1:])
    sxx = np.zeros(data.shape[1:])
    for g in range(n):
        sxy = sxy + t[g] * data[g]
        sx = sx + t[g]
        sy = sy + data[g]
        sxx = sxx + t[g] ** 2
    return (n * sxy - sx * sy) / (n * sxx - sx * sx)


def _resample(values, size):
    """values taken at the nearest lower index on a grid of ``size`` points (IDL
    congrid without interpolation, as the official ``rebin``)."""
    old = values.shape[0]
    return values[np.mgrid[0:old:float(old) / size].astype("i")]


def _cleaned_channels(cube):
    """One integration (ngroups, ny, nx) without its line fit and median bias, the four
    channels averaged (ngroups, ny, nx // 4), samples 1 and 2 replaced by the mean of
    0 and 3, each group less its median."""
    ngroups, ny, nx = cube.shape
    slope = _line_fit(cube[1:ngroups - 1])
    work = np.empty_like(cube)
    for g in range(ngroups):
        work[g] = cube[g] - slope * g
    inner = work[1:ngroups - 1]
    bias = np.nanmin(inner, axis=0) if inner.shape[0] <= 2 else np.nanmedian(inner, axis=0)
    out = np.empty((ngroups, ny, nx // 4))
    for g in range(ngroups):
        plane = work[g] - bias
        avg = (plane[:, 0:nx:4] + plane[:, 1:nx:4] + plane[:, 2:nx:4] + plane[:, 3:nx:4]) / 4.0
        avg[:, 1] = (avg[:, 0] + avg[:, 3]) / 2
        avg[:, 2] = (avg[:, 0] + avg[:, 3]) / 2
        out[g] = avg - np.median(avg)
    return out


def _sample_phases(nints, ngroups, ny, nx4, nsamples, rowclocks, frameclocks, r1,
                   last_column_shift, period):
    """Phase (0-1) of every sample of every group and integration, counting pixel
    clocks from the first pixel of the exposure (integer clock counts, as officially)."""
    extra = (1024.0 - ny) * (4 + 3.0)
    row_start = np.empty((nints, ngroups, ny))
    start = 0
    for i in range(nints):
        for g in range(ngroups):
            for j in range(ny):
                row_start[i, g, j] = start
                start += rowclocks
            start += extra
        if r1:
            start += frameclocks
    times = (np.arange(nx4, dtype=np.uint64) * np.uint64(nsamples))[None, None, None, :] \
        + row_start[..., None].astype(np.uint64)
    if last_column_shift:
        times[..., nx4 - 1] += np.uint64(3 + 2 ** 32)
    phase = times / period
    return phase - phase.astype(np.uint64)


def sequential_subtract(data, freqs, waves, nsamples, rowclocks, frameclocks, *, r1,
                        xstart, xsize, nints_to_phase=None, nbins=None,
                        scale_reference=True, use_n_cycles=3):
    """The sequential algorithm, frequency after frequency, on ``data`` in place;
    ``waves`` holds the reference waveforms (empty: the phased wave corrects itself)."""
    from astropy.stats import sigma_clipped_stats

    nints, ngroups, ny, nx = data.shape
    nx4 = nx // 4
    shift = int(xsize / 4 + xstart - 1) == 258   # the full frame's right reference column
    for fi, freq in enumerate(freqs):
        period = _period(freq)
        # the official phasing count, carried from one frequency to the next as it is
        if nints_to_phase is None and use_n_cycles is None:
            nints_to_phase = nints
        elif nints_to_phase is None:
            nints_to_phase = int(np.ceil((use_n_cycles * period) / (frameclocks * ngroups)))
        elif use_n_cycles == 3 and nints_to_phase > nints:
            nints_to_phase = nints
        cleaned = np.empty((nints, ngroups, ny, nx4))
        for i in range(nints):
            cleaned[i] = _cleaned_channels(data[i].copy())
        phase = _sample_phases(nints, ngroups, ny, nx4, nsamples, rowclocks, frameclocks,
                               r1, shift, period)
        n_bins = int(period / 2.0) if nbins is None else nbins
        n_bins = 500 if n_bins > 501 else n_bins
        lower = np.array([b / n_bins for b in range(n_bins)])
        upper = np.array([(b + 1) / n_bins for b in range(n_bins)])
        used = slice(0, nints_to_phase)
        bins = kernels.phase_bins(np.ascontiguousarray(phase[used]).ravel(), lower, upper)
        values = cleaned[used].ravel()
        order = np.argsort(bins, kind="stable")
        edges = np.searchsorted(bins[order], np.arange(n_bins + 1))
        wave = np.empty(n_bins)
        import warnings

        for b in range(n_bins):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                wave[b] = sigma_clipped_stats(values[order[edges[b]:edges[b + 1]]])[0]
        wave -= np.median(wave)
        lut = _resample(wave, period)
        if waves:
            ref = np.asarray(waves[fi], dtype=np.float64)
            coarse = _resample(wave, ref.size)
            corr = np.zeros(ref.size)
            for s in range(ref.size):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    corr[s] = np.corrcoef(np.roll(ref, s), coarse)[0, 1]
            shifted = _resample(np.roll(ref, int(np.argmax(corr))), period)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                slope, _ = np.polyfit(shifted, lut, 1)
            lut = shifted * slope if scale_reference else shifted
        index = (phase * period).astype(int)
        for i in range(nints):
            for g in range(ngroups):
                kernels.subtract_channels_lookup(data[i, g], lut, index[i, g])
    return data
