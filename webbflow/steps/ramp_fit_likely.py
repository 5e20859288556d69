"""Ramp fitting with the likelihood algorithm (``ramp_fit`` ``algorithm: LIKELY``).

stcal's ``LIKELY`` (Brandt 2024, PASP 136 045004 and 045005): each pixel's resultant
differences are fitted with their full covariance (read noise and photon noise, a
tridiagonal matrix set by the read times), jumps are found as the single difference or
pair of adjacent differences whose omission lowers chi square by more than 20.25 (one)
or 23.8 (two) and are flagged JUMP_DET, and the final fit uses the debiased rate of the
jump search for the photon-noise covariance. Integrations are combined as stcal does
(nanmedian start, two passes of inverse-variance weights with the Poisson variance
rescaled to the common rate).

Array layer: :func:`fit_ramps_likely` takes the ramp arrays and returns a
:class:`webbflow.steps.ramp_fit.RampFitResult` (its ``chisq`` holds the exposure chi
square stcal writes as the ``likely_chisq`` product with ``save_opt``). Pixels are
independent: any row block of a frame may be passed. Unlike OLS_C there is no MIRI group
dropping, no exit when group 0 is saturated everywhere and no one-group suppression, as
in stcal. Needs at least 4 groups (``LIKELY_MIN_NGROUPS``; the caller falls back to
OLS_C, as jwst does).
"""

import numpy as np

from webbflow.kernels.ramp_fit_likely import _combine, _likely_fit

LIKELY_MIN_NGROUPS = 4
THRESHOLD_ONE_OMIT = 20.25
THRESHOLD_TWO_OMIT = 23.8


def read_pattern(ngroups, nframes, groupgap, frame_time):
    """Read times of the frames averaged in each group, evenly sampled (stcal
    get_readtimes): group k holds frames ``k*(nframes+groupgap) + 1 .. + nframes``."""
    reads = np.arange(1, nframes + 1)
    return [(reads + k * (nframes + groupgap)) * frame_time for k in range(ngroups)]


def covariance_terms(readtimes):
    """Mean read times, variance-weighted times, reads per resultant (paper I eqs 4, 11)
    and the read- and photon-noise alphas (diagonal) and betas (off-diagonal) of the
    covariance of the resultant differences (eqs 28, 29); ``dt`` the differences' spans."""
    mean_t, tau, nreads = [], [], []
    for times in readtimes:
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        n = len(t)
        mean_t.append(np.mean(t))
        weight = (2 * n + 1) - 2 * np.arange(1, n + 1)
        tau.append(np.sum(weight * t) / n**2)
        nreads.append(n)
    mean_t, tau, n = np.array(mean_t), np.array(tau), np.array(nreads)
    dt = mean_t[1:] - mean_t[:-1]
    return dict(
        dt=dt, nreads=n,
        alpha_rn=(1 / n[:-1] + 1 / n[1:]) / dt**2,
        beta_rn=-1 / (n[1:-1] * dt[1:] * dt[:-1]),
        alpha_ph=(tau[:-1] + tau[1:] - 2 * mean_t[:-1]) / dt**2,
        beta_ph=(mean_t[1:-1] - tau[1:-1]) / (dt[1:] * dt[:-1]))


def fit_ramps_likely(data, gdq, pdq, readnoise, gain, dqflags, *, frame_time, nframes,
                     groupgap, average_dark_current=None, zeroframe=None, readtimes=None):
    """Likelihood ramp fit; returns a RampFitResult (rate, rateints, chisq).

    data : float32 (nints, ngroups, ny, nx), DN; gdq uint8 same shape; pdq uint32 (ny, nx).
    readnoise : float32 (ny, nx), CDS read noise in DN; gain : float32 (ny, nx), e-/DN.
    average_dark_current : (ny, nx) or None (zeros), added to the rate guess of the
        final covariance as stcal does.
    zeroframe : (nints, ny, nx) or None: used as a resultant of its own when the first
        group averages two or more frames (the first group then loses that frame).
    readtimes : list of per-group read-time sequences (the exposure's ``read_times``),
        or None for the evenly sampled pattern of :func:`read_pattern`.
    Inputs are not modified; group DQ flags found here (JUMP_DET) go into the
    integration and exposure DQ, as officially.
    """
    from webbflow.steps.ramp_fit import RampFitResult

    data = np.ascontiguousarray(data, dtype=np.float32)
    gdq = np.ascontiguousarray(gdq, dtype=np.uint8)
    pdq = np.ascontiguousarray(pdq, dtype=np.uint32)
    if data.ndim != 4 or gdq.shape != data.shape or pdq.shape != data.shape[2:]:
        raise ValueError("fit_ramps_likely: data/gdq must be (nints, ngroups, ny, nx), pdq (ny, nx)")
    nints, ngroups, ny, nx = data.shape
    if ngroups < LIKELY_MIN_NGROUPS:
        raise ValueError(f"the LIKELY ramp fit needs at least {LIKELY_MIN_NGROUPS} groups")
    if readtimes is None:
        readtimes = read_pattern(ngroups, int(nframes), int(groupgap), float(frame_time))
    readtimes = [np.atleast_1d(np.asarray(t, dtype=np.float64)) for t in readtimes]
    use_zf = zeroframe is not None and len(readtimes[0]) >= 2
    if use_zf:
        readtimes = [readtimes[0][:1], readtimes[0][1:]] + readtimes[1:]
        zf = np.ascontiguousarray(zeroframe, dtype=np.float32)
    else:
        zf = np.zeros((1, 1, 1), np.float32)
    cov = covariance_terms(readtimes)
    one_ok = (cov["nreads"][1:] * cov["nreads"][:-1] >= 1).astype(np.float64)
    one_ok[0] = one_ok[-1] = 1.0
    two_ok = (cov["nreads"][1:-1] > 1).astype(np.float64)
    # two_ok is padded so the kernel may index nd entries
    two_ok = np.concatenate([two_ok, [0.0]])

    rn = np.ascontiguousarray(readnoise, dtype=np.float32)
    gain = np.ascontiguousarray(gain, dtype=np.float32)
    dark = (np.zeros((ny, nx), np.float32) if average_dark_current is None
            else np.ascontiguousarray(average_dark_current, dtype=np.float32))
    dnu, sat, jump = (int(dqflags[k]) for k in ("DO_NOT_USE", "SATURATED", "JUMP_DET"))

    ri = [np.empty((nints, ny, nx), np.float32) for _ in range(5)]
    ri[1] = np.empty((nints, ny, nx), np.uint32)
    chisq_i = np.empty((nints, ny, nx), np.float32)
    _likely_fit(data, gdq, pdq, zf, use_zf, int(nframes), rn, gain, dark, cov["dt"],
                cov["alpha_rn"], np.append(cov["beta_rn"], 0.0), cov["alpha_ph"],
                np.append(cov["beta_ph"], 0.0), one_ok, two_ok, THRESHOLD_ONE_OMIT,
                THRESHOLD_TWO_OMIT, dnu, sat, jump,
                ri[0], ri[1], ri[2], ri[3], ri[4], chisq_i)
    if nints == 1:
        rate = tuple(a[0] for a in ri)
        chisq = chisq_i[0]
    else:
        r = [np.empty((ny, nx), np.float32) for _ in range(5)]
        r[1] = np.empty((ny, nx), np.uint32)
        chisq = np.empty((ny, nx), np.float32)
        _combine(ri[0], ri[1], ri[2], ri[3], chisq_i, dnu, r[0], r[1], r[2], r[3], r[4], chisq)
        rate = tuple(r)
    # rateints: (sci, dq, var_poisson, var_rnoise, err), as the OLS_C result
    return RampFitResult(rate=rate, rateints=tuple(ri), chisq=chisq)
