"""NIRSpec IRS2 readout: layout, and the IRS2 reference correction of refpix
(``jwst.refpix.irs2_subtract_reference`` and the IRS2 branch of ``refpix_step``, 3.0).

An IRS2 frame is 3200 x 2048 in DMS orientation (3200 along the detector's fast axis):
the reference output (640 samples per row) and four amplifiers of 640 samples, each
reading 16 normal pixels, then 4 interleaved reference pixels (NRS_NORM, NRS_REF), with
8 normal pixels at both ends. The correction, per integration:

1. flag interleaved reference pairs whose mean |difference|, mean or scatter over the
   ramp is a clipped outlier (``ovr_corr_mitigation_ftr`` sigma) as BAD_REF_PIXEL |
   DO_NOT_USE, and replace them by the average of the same-parity pairs one period away
   (or a neighbour, or 0); then also the pairs the REFPIX reference's DQ table marks;
2. subtract each pixel's ramp average, turn every output into its time stream (712
   samples per row), fit and remove a line in time through the traditional reference
   rows (0-3, 2044-2047) per output and group;
3. fill the reference output's gaps (cosine-weighted interpolation, then 3 rounds of
   Fourier low-pass filling);
4. per amplifier: FFT of its interleaved references (stream with zeros elsewhere) times
   beta, plus FFT of the reference output times alpha (the REFPIX coefficients), back
   to time, subtracted at the normal pixels;
5. drop the reference output and interleaved pixels (2048 x 2048 out), add the ramp
   average back.

FFTs are numpy's, in complex64 as the official code runs them; the re-orderings and the
pixel arithmetic are numba kernels (``webbflow.kernels.irs2``).
Not carried: ``irs2_mean_subtraction`` and ``preserve_irs2_refpix`` (both off by
default); they raise.
"""

import numpy as np

from webbflow.kernels import irs2 as _k

__all__ = ["is_irs2", "normal_rows", "to_detector", "flag_bad_reference_pairs",
           "correct_irs2", "IRS2Error", "ALPHA_BETA_ROWS"]

FULL = 2048
NSEC = 5
PAD = 8  # new-row overhead in samples
ALPHA_BETA_ROWS = 2 * 712 * 2048  # REFPIX IRS2 table rows (real/imag alternating)


class IRS2Error(ValueError):
    """An IRS2 input or reference that cannot be corrected (message for the user)."""


def is_irs2(shape):
    """IRS2 layout: a frame axis longer than the 2048 of the detector (as officially)."""
    return max(shape[-1], shape[-2]) > FULL


def normal_rows(nrows, nrs_norm=16, nrs_ref=4):
    """Boolean over the IRS2 axis (``nrows``, 3200): True for normal pixels, False for the
    reference output and the interleaved reference pixels (in the detector's order)."""
    refout = nrows // NSEC
    per_output = refout
    out = np.ones(nrows, bool)
    out[:refout] = False
    one = np.ones(per_output, bool)
    for start in range(nrs_norm // 2, per_output, nrs_norm + nrs_ref):
        one[start:start + nrs_ref] = False
    tail = per_output - (nrs_norm // 2 + nrs_ref)
    symmetric = tail - (tail // (nrs_norm + nrs_ref)) * (nrs_norm + nrs_ref) == nrs_norm // 2
    for k in range(4):
        seg = one if (symmetric or k % 2 == 0) else one[::-1]
        out[refout * (k + 1):refout * (k + 2)] = seg
    return out


def to_detector(array, detector):
    """View of a DMS-oriented NIRSpec array (..., 3200|2048, 2048) in the detector frame
    (NRS1: transposed; NRS2: transposed and flipped)."""
    if detector == "NRS1":
        return np.swapaxes(array, -1, -2)
    if detector == "NRS2":
        return np.swapaxes(array, -1, -2)[..., ::-1, ::-1]
    raise IRS2Error(f"IRS2 data from detector {detector!r}: only NRS1 and NRS2 read IRS2")


def _dms_rows(detector, mask):
    """The DMS-row selection of a detector-column mask."""
    return mask if detector == "NRS1" else mask[::-1]


# ----------------------------------------------------------------------------------
# bad interleaved reference pairs

def _replace(data, bad, interleaved, pix, low, high, period, axis):
    """Replace one bad reference sample line (index ``pix`` along ``axis`` = -2 rows of
    the DMS cube or -1 columns of the detector view) by the mean of the good same-parity
    samples one period below and above, else one of them, else a good neighbour pair two
    away, else 0."""
    def line(i):
        return data[:, :, i, :] if axis == -2 else data[:, :, :, i]

    neighbour = None
    if pix - 2 >= low and interleaved[pix - 2] and not bad[pix - 2]:
        neighbour = pix - 2
    elif pix + 2 < high and interleaved[pix + 2] and not bad[pix + 2]:
        neighbour = pix + 2
    value = line(neighbour) if neighbour is not None else 0.0
    lo, hi = pix - period, pix + period
    v1 = line(lo) if lo >= low and not bad[lo] else None
    v2 = line(hi) if hi < high and not bad[hi] else None
    if v1 is not None and v2 is not None:
        value = np.mean([v1, v2], axis=0)
    elif v1 is not None:
        value = v1
    elif v2 is not None:
        value = v2
    if axis == -2:
        data[:, :, pix, :] = value
    else:
        data[:, :, :, pix] = value


def flag_bad_reference_pairs(data, pdq, dqflags, nrs_norm, nrs_ref, n_sigma=3.0,
                             flag=True, replace=True):
    """Step 1 in DMS orientation (data: nints, ngroups, 3200, 2048 float32, modified in
    place; pdq: 3200 x 2048 uint32, modified in place). ``flag``: find outlier pairs;
    ``replace``: replace all flagged ones. Returns the number of bad rows."""
    from astropy.stats import sigma_clipped_stats

    nints, ngroups, ny, nx = data.shape
    bad_bit = np.uint32(dqflags["BAD_REF_PIXEL"])
    bad = np.any(pdq & bad_bit, axis=1)
    interleaved = np.zeros(ny, bool)
    amp = ny // NSEC
    period = nrs_norm + nrs_ref
    initial = bad.copy()
    for k in range(NSEC):
        offset = k * amp
        for j in range(nints):
            starts, diffs, means, stds = [], [], [], []
            for block in range(nrs_norm // 2, amp, period):
                for pair in range(0, nrs_ref, 2):
                    r = offset + block + pair
                    interleaved[r:r + 2] = True
                    if not flag or initial[r] or initial[r + 1]:
                        continue
                    two = data[j, :, r:r + 2, :]
                    starts.append(r)
                    diffs.append(np.mean(np.abs(data[j, :, r + 1, :] - data[j, :, r, :])))
                    means.append(np.mean(two))
                    stds.append(np.std(two))
            if not flag:
                continue
            starts = np.array(starts, dtype=int)
            found = initial.copy()
            for values in (np.array(diffs), np.array(means), np.array(stds)):
                centre, _, spread = sigma_clipped_stats(values, sigma=n_sigma)
                high = (values - centre) > (n_sigma * spread)
                found[starts[high]] = True
                found[starts[high] + 1] = True
            bad |= found
        if replace:
            for pix in np.arange(offset, offset + amp)[bad[offset:offset + amp]]:
                _replace(data, bad, interleaved, pix, offset, offset + amp, period, -2)
    pdq[bad] |= bad_bit | np.uint32(dqflags["DO_NOT_USE"])
    return int(bad.sum())


def _reference_dq_pairs(det, pdq_det, dqflags, table, normal, nrs_norm, nrs_ref):
    """Replace the interleaved pairs the REFPIX DQ table marks (detector frame view
    ``det`` modified in place) unless already flagged."""
    nx = det.shape[-1]
    amp = nx // NSEC
    period = nrs_norm + nrs_ref
    flagged = np.any(pdq_det & np.uint32(dqflags["BAD_REF_PIXEL"]), axis=0)
    interleaved = ~normal.copy()
    interleaved[:amp] = interleaved[2 * amp:3 * amp]
    for output, odd_even, mask in table:
        output, odd_even, mask = int(output), int(odd_even), int(mask)
        offset = output * amp
        parity = 3 - odd_even if output % 2 == 0 else odd_even
        new = []
        for bit in range(32):
            if not (mask >> bit) & 1:
                continue
            first = offset + nrs_norm // 2 + bit * period + 2 * (parity - 1)
            for pix in (first, first + 1):
                if not flagged[pix]:
                    new.append(pix)
                    flagged[pix] = True
        for pix in new:
            _replace(det, flagged, interleaved, pix, offset, offset + amp, nrs_ref + nrs_norm,
                     -1)


# ----------------------------------------------------------------------------------
# the correction of one integration

def _layout(nrs_norm, nrs_ref):
    row = (nrs_norm + nrs_ref + 2) * 512 // nrs_norm + PAD
    n = np.arange(512)
    m = np.arange(512 // nrs_norm * nrs_ref)
    hnorm = n + nrs_ref * ((n + nrs_norm // 2) // nrs_norm)
    href = m + nrs_norm * (m // nrs_ref) + nrs_norm // 2
    hnorm1 = n + (nrs_ref + 2) * ((n + nrs_norm // 2) // nrs_norm)
    href1 = m + (nrs_norm + 2) * (m // nrs_ref) + nrs_norm // 2 + 1
    # reference samples kept per block (the 4 samples and one repeated on each side of
    # the jump gaps: 2 * nrs_ref per block) and where the repeats come from
    nblk, blk = 512 // nrs_norm, nrs_norm + nrs_ref + 2
    grid = np.arange(nblk * blk).reshape(nblk, blk)
    lo, hi = (nrs_norm - nrs_ref) // 2 + 1, nrs_norm // 2 + 1 + 3 * nrs_ref // 2
    keep = np.zeros(blk, bool)
    keep[lo:hi] = True
    ht = grid[:, keep].ravel()
    half = np.arange(nrs_ref).reshape(2, nrs_ref // 2).T
    order = np.concatenate((half, half), axis=1).ravel() + nrs_norm // 2 + 1
    src = grid.copy()
    src[:, nrs_norm // 2 + 1 - nrs_ref // 2:nrs_norm // 2 + 1 + nrs_ref // 2 + nrs_ref] = \
        grid[:, order]
    hs = src[:, keep].ravel()
    if nrs_ref % 4 == 2:
        hs = hs.reshape(-1, 2)[:, ::-1].ravel()
    as_ip = (lambda a: np.ascontiguousarray(a, dtype=np.intp))
    return row, as_ip(hnorm), as_ip(href), as_ip(hnorm1), as_ip(href1), as_ip(hs), as_ip(ht)


def _fill_filter(ny, row, nrs_norm, nrs_ref):
    """The Fourier fill filter of the reference output: 1, cosine roll-off, 0 and back."""
    elen = 110000 // (nrs_norm + nrs_ref + 2)
    blen = (512 + 512 // nrs_norm * (nrs_ref + 2) + PAD) // (nrs_norm + nrs_ref + 2) \
        * ny // 2 - elen // 2
    roll = (np.cos(np.arange(elen, dtype=np.float64) * np.pi / float(elen)) + 1.0) / 2.0
    half = np.concatenate((np.ones(blen), roll, np.zeros(row * ny // 2 - 2 * blen - 2 * elen),
                           roll[::-1], np.ones(blen)))
    return np.concatenate((half, np.roll(half, -1)[::-1]))


def _remove_lines(streams, time):
    """Per output and group: a least-squares line in time through the nonzero samples of
    rows 0-3 and 2044-2047, subtracted from the nonzero samples (float32 as officially)."""
    nsec, ngroups, ny, row = streams.shape
    rows = np.array([0, 1, 2, 3, ny - 4, ny - 3, ny - 2, ny - 1], dtype=np.intp)
    t_rows = time[rows, :]
    lines = np.zeros((2, ngroups, nsec), np.float32)
    for s in range(nsec):
        for g in range(ngroups):
            y = streams[s, g, rows, :]
            keep = y != 0.0
            x, v = t_rows[keep], y[keep]
            if x.size == 0:
                a = b = 0.0
            else:
                count = float(x.size)
                mx, my = x.mean(), v.mean()
                b = ((x * v).sum() - count * mx * my) / ((x ** 2).sum() - count * mx ** 2)
                a = my - b * mx
            lines[0, g, s], lines[1, g, s] = a, b
    for s in range(nsec):
        for g in range(ngroups):
            _k.subtract_line(streams[s, g], time, lines[0, g, s], lines[1, g, s])


def _fill_reference_output(streams, ny, row, nrs_norm, nrs_ref, hnorm, hnorm1):
    """Cosine-weighted interpolation, then 3 rounds of Fourier low-pass filling, of the
    zeros (gaps) of the reference output's stream, keeping its read samples."""
    from scipy.ndimage import convolve1d

    ngroups = streams.shape[1]
    w = np.sin(np.arange(1, 32, dtype=np.float32) / 32.0 * np.pi)
    for g in range(ngroups):
        dat = streams[0, g].reshape(row * ny)
        have = (dat != 0.0).astype(np.float32)
        num = convolve1d(dat, w, mode="wrap")
        den = convolve1d(have, w, mode="wrap")
        zero = den == 0.0
        num = np.where(zero, 0.0, num)
        den = np.where(zero, 1.0, den)
        streams[0, g] += (num / den).reshape(ny, row) * (1.0 - have.reshape(ny, row))
    filt = _fill_filter(ny, row, nrs_norm, nrs_ref)
    keep = np.zeros((ny, row), bool)
    keep[:, hnorm1] = True
    keep = keep.ravel()
    for g in range(ngroups):
        plane = streams[0, g]
        kept = plane.ravel()[keep].copy()
        p = plane.ravel().copy()
        for _ in range(3):
            spectrum = np.fft.fft(p)
            spectrum *= filt
            p[:] = np.fft.ifft(spectrum).real
            p[keep] = kept
        streams[0, g] = p.reshape(ny, row)


def _correct_integration(det, alpha, beta, normal, nrs_norm, nrs_ref, out):
    """One integration in the detector frame (det: ngroups, ny, 3200 view; out: ngroups,
    ny, 2048 float32 detector-frame view to fill)."""
    ngroups, ny, nx = det.shape
    row, hnorm, href, hnorm1, href1, hs, ht = _layout(nrs_norm, nrs_ref)
    b_offset = np.empty((ny, nx), np.float64)
    _k.ramp_average(det, b_offset)
    streams = np.zeros((NSEC, ngroups, ny, row), np.float32)
    _k.time_streams(det, b_offset, hnorm, href, hnorm1, href1, streams)

    time = np.arange(ny * row, dtype=np.float32).reshape(ny, row)
    time -= time.mean(dtype=np.float64)
    _remove_lines(streams, time)
    _fill_reference_output(streams, ny, row, nrs_norm, nrs_ref, hnorm, hnorm1)

    norm = float(ny * row)
    refout = np.fft.fft(streams[0].reshape(ngroups, ny * row), axis=1) / norm
    for s in range(1, NSEC):
        model = np.zeros((ngroups, ny * row), np.complex64)
        _k.gather_reference(streams[s], hs, ht, model)
        spectrum = np.fft.fft(model, axis=1) / norm
        spectrum *= beta[s - 1]
        spectrum += alpha[s - 1] * refout
        model = np.fft.ifft(spectrum, axis=1) * norm
        del spectrum
        _k.subtract_model(streams[s], model, hnorm1)
        del model
    normal_cols = np.ascontiguousarray(np.flatnonzero(normal), dtype=np.intp)
    _k.assemble_normal(streams, b_offset, hnorm1, normal_cols, out)


def read_coefficients(table):
    """alpha, beta (4, 712*2048) complex64 from the REFPIX IRS2 table columns
    (real and imaginary parts in alternating rows)."""
    def complex_of(col):
        col = np.asarray(col)
        return col[0:-1:2] + 1j * col[1::2]

    n = len(table["alpha_0"]) // 2
    alpha = np.ones((4, n), np.complex64)
    beta = np.zeros((4, n), np.complex64)
    for k in range(4):
        alpha[k] = complex_of(table[f"alpha_{k}"])
        beta[k] = complex_of(table[f"beta_{k}"])
    return alpha, beta


def correct_irs2(data, gdq, pdq, dqflags, *, detector, alpha, beta, dq_table=None,
                 nrs_norm=16, nrs_ref=4):
    """Steps 2-5 (plus the REFPIX DQ-table pairs) on an IRS2 ramp whose bad pairs are
    already flagged and replaced. data (nints, ngroups, 3200, 2048) float32 DMS (modified:
    used as scratch), gdq uint8 same shape, pdq (3200, 2048) uint32.
    Returns (data, gdq, pdq) of the normal pixels, (nints, ngroups, 2048, 2048)."""
    nints, ngroups, ny_dms, nx_dms = data.shape
    if ny_dms != 3200 or nx_dms != FULL:
        raise IRS2Error(f"IRS2 data must be 3200 x 2048, got {ny_dms} x {nx_dms}")
    if alpha.shape[-1] * 2 != ALPHA_BETA_ROWS:
        raise IRS2Error("REFPIX IRS2 table has the wrong length")
    det = to_detector(data, detector)
    pdq_det = to_detector(pdq, detector)
    normal = normal_rows(ny_dms, nrs_norm, nrs_ref)
    if dq_table is not None and len(dq_table):
        _reference_dq_pairs(det, pdq_det, dqflags, dq_table, normal, nrs_norm, nrs_ref)
    result = np.empty((nints, ngroups, FULL, FULL), np.float32)
    out_det = to_detector(result, detector)
    for i in range(nints):
        _correct_integration(det[i], alpha, beta, normal, nrs_norm, nrs_ref, out_det[i])
    rows = _dms_rows(detector, normal)
    return (result, np.ascontiguousarray(gdq[:, :, rows, :]),
            np.ascontiguousarray(pdq[rows, :]))


# ----------------------------------------------------------------------------------
# saturation of an IRS2 ramp (``jwst.saturation.saturation.irs2_flag_saturation``)

def _grow(flags, n):
    """SATURATED-style growth of a boolean plane into a (2n+1)^2 box."""
    from scipy.ndimage import binary_dilation

    return binary_dilation(flags, structure=np.ones((2 * n + 1, 2 * n + 1), bool))


def flag_saturated_irs2(data, gdq, pdq, sat_thresh, sat_dq, dqflags, *, detector,
                        n_pix_grow_sat=1, use_readpatt=True, nframes=1, bias=None,
                        nrs_norm=16, nrs_ref=4, atod_limit=65535.0):
    """The official IRS2 saturation flagging: thresholds (2048 x 2048, like the
    normal pixels) applied to the normal pixels only; SATURATED from the first group over
    the threshold on (grown by ``n_pix_grow_sat``), AD_FLOOR|DO_NOT_USE on groups <= 0;
    with ``use_readpatt`` (any NFRAMES) group 2 (index 1) gets SATURATED (grown) where
    the first group predicts no saturation by group 3, the jump into group 2 is large
    and group 3 is saturated. ``bias``: the IRS2-layout superbias (3200 x 2048) or None.
    No backward pass (as officially for IRS2). gdq, pdq are modified and returned."""
    nints, ngroups = data.shape[:2]
    rows = _dms_rows(detector, normal_rows(data.shape[-2], nrs_norm, nrs_ref))
    sat = np.uint8(dqflags["SATURATED"])
    low = np.uint8(dqflags["AD_FLOOR"] | dqflags["DO_NOT_USE"])
    nosat = np.uint32(dqflags["NO_SAT_CHECK"])
    thr = np.array(sat_thresh, dtype=np.float32)
    sdq = np.array(sat_dq, dtype=np.uint32)
    thr[(sdq & nosat) == nosat] = atod_limit + 1
    nan = np.isnan(thr)
    sdq[nan] |= nosat
    thr[nan] = atod_limit + 1
    bias_n = 0.0 if bias is None else np.asarray(bias, np.float32)[rows, :]
    pattern = ([[x + 1 + g * nframes for x in range(nframes)] for g in range(ngroups)]
               if use_readpatt else None)
    n = int(n_pix_grow_sat)
    for i in range(nints):
        for g in range(ngroups):
            sci = data[i, g][rows, :]
            over = sci >= thr
            if g == 2 and pattern is not None:
                first = data[i, 0][rows, :]
                first_net = first - bias_n
                mask = (first_net / np.mean(pattern[0])) * pattern[2][-1] + bias_n < thr
                jump = data[i, 1][rows, :] - first
                mask &= jump > (thr - first) / len(pattern[1])
                mask &= over
                if n > 0:
                    mask = _grow(mask, n)
                gdq[i, 1][rows, :] |= np.where(mask, sat, np.uint8(0))
            grown = _grow(over, n) if n > 0 else over
            flags = np.where(grown, sat, np.uint8(0))
            for later in range(g, ngroups):
                gdq[i, later][rows, :] |= flags
            gdq[i, g][rows, :] |= np.where(sci <= 0, low, np.uint8(0))
    pdq[rows, :] |= sdq
    return gdq, pdq
