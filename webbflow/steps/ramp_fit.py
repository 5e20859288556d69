"""Ramp fitting (``ramp_fit``): OLS with optimal weighting, as stcal's ``OLS_C``.

Array layer: :func:`fit_ramps` takes the ramp cube and reference arrays and returns
rate (2-D) and rateints (3-D) products in DN/s. Per-pixel work is done by
:func:`webbflow.kernels.ramp_fit._ols_fit`; this wrapper does the exposure-wide
decisions of stcal/jwst (firstgroup/lastgroup, MIRI all-DO_NOT_USE group dropping,
all-saturated-first-group exit), read-noise conversion and output allocation.

Row blocks: every pixel is independent, so the function can be run on any row block
of a frame, *except* that the MIRI group dropping and the "group 0 saturated in every
pixel" exit are exposure-wide decisions; a block caller takes them on the full frame
(:func:`miri_drop`, ``np.all(gdq[:, 0] & SATURATED)``) and passes ``miri_groups=`` and
``check_saturated=False``.
"""

from dataclasses import dataclass

import numpy as np

from webbflow.kernels._common import _any_flag
from webbflow.kernels.ramp_fit import _ols_fit, _weight_table


@dataclass
class RampFitResult:
    """rate = (sci, dq, var_poisson, var_rnoise, err), 2-D; rateints the same, 3-D."""

    rate: tuple
    rateints: tuple
    fitopt: dict | None = None
    chisq: np.ndarray | None = None  # LIKELY: the exposure chi square (likely_chisq)


def miri_drop(gdq, dqflags):
    """Leading/trailing groups that are DO_NOT_USE in every pixel (stcal discard_miri_groups).

    Returns (first, last_exclusive) or None if fewer than 2 groups remain.
    """
    dnu = dqflags["DO_NOT_USE"]
    ngroups = gdq.shape[1]
    first = 0
    while first < ngroups and np.all(gdq[:, first] & dnu):
        first += 1
    if first >= ngroups:
        return None
    last = ngroups
    if np.all(gdq[:, last - 1] & dnu):
        last -= 1
    if last - first < 2:
        return None
    return first, last


def use_likely(algorithm, ngroups):
    """Whether the LIKELY fit runs: asked for and at least 4 groups (jwst falls back to
    OLS_C below that, with a log message)."""
    from webbflow.steps.ramp_fit_likely import LIKELY_MIN_NGROUPS

    if str(algorithm).upper() not in ("OLS_C", "LIKELY"):
        raise ValueError(f"ramp_fit algorithm must be OLS_C or LIKELY, not {algorithm!r}")
    return str(algorithm).upper() == "LIKELY" and ngroups >= LIKELY_MIN_NGROUPS


def _group_range(firstgroup, lastgroup, ngroups):
    """jwst ramp_fit_step.set_groupdq: (first, last) groups to keep, or None."""
    if firstgroup is None and lastgroup is None:
        return None
    first = 0 if firstgroup is None else int(firstgroup)
    last = ngroups - 1 if lastgroup is None else int(lastgroup)
    if first < 0:
        first = 0
    if first >= last:
        first, last = 0, ngroups - 1
    return first, last


def fit_ramps(data, gdq, pdq, readnoise, gain, dqflags, *, frame_time, group_time, nframes,
              groupgap, drop_frames1=0, suppress_one_group=True, average_dark_current=None,
              zeroframe=None, firstgroup=None, lastgroup=None, save_opt=False, is_miri=False,
              miri_groups=None, check_saturated=True, algorithm="OLS_C", readtimes=None,
              rows=None, out=None):
    """Fit ramps; returns a :class:`RampFitResult`, or None where jwst makes no product.

    Parameters
    ----------
    data : float32 (nints, ngroups, ny, nx), DN.
    gdq : uint8, same shape.  pdq : uint32 (ny, nx).
    readnoise : float32 (ny, nx), CDS read noise in DN.  gain : float32 (ny, nx), e-/DN.
    dqflags : dict name -> bit value.
    frame_time, group_time : s.  nframes, groupgap, drop_frames1 : ints.
    average_dark_current : float32 (ny, nx) or None (zeros), e-/s as jwst passes it.
    zeroframe : float32 (nints, ny, nx) or None; used only if suppress_one_group False.
    firstgroup, lastgroup : groups outside are OR-ed with DO_NOT_USE (jwst step).
    save_opt : also return the ``fitopt`` arrays (RampFitOutputModel): slope, sigslope,
        var_poisson, var_rnoise, yint, sigyint, weights (nints, nseg, ny, nx), pedestal
        (nints, ny, nx) and crmag (nints, ncr, ny, nx). Costs a second pass.
    is_miri : apply MIRI leading/trailing all-DO_NOT_USE group dropping.
    miri_groups : (first, last_exclusive) from :func:`miri_drop` on the full frame, for
        row-block callers (default: computed here).
    check_saturated : return None when group 0 is saturated in every pixel (stcal).
    algorithm : "OLS_C" or "LIKELY" (:mod:`webbflow.steps.ramp_fit_likely`; with fewer
        than 4 groups OLS_C is used, as jwst does). LIKELY ignores ``suppress_one_group``,
        ``is_miri``/``miri_groups``, ``check_saturated`` and ``save_opt`` (its optional
        product is the chi square, ``result.chisq``), as stcal does.
    readtimes : LIKELY only: the exposure's read times (list per group), else evenly
        sampled.
    rows : (r0, r1): fit rows r0 .. r1-1 of ``data`` and ``gdq`` only (a row block read
        with halo rows, passed without a copy); every other array, and the results, hold
        those rows alone.
    out : (rate, rateints), each five C-contiguous arrays (slope, dq, var_poisson,
        var_rnoise, err; dq uint32, the others float32) of the result's shapes: the OLS
        fit writes its result there (rows of whole-frame arrays) instead of into new
        arrays, and the RampFitResult holds them.

    Inputs are not modified.
    """
    data = np.ascontiguousarray(data, dtype=np.float32)
    gdq = np.ascontiguousarray(gdq, dtype=np.uint8)
    pdq = np.ascontiguousarray(pdq, dtype=np.uint32)
    row0, row1 = (0, data.shape[2] if data.ndim == 4 else 0) if rows is None else rows
    if (data.ndim != 4 or gdq.shape != data.shape or not 0 <= row0 < row1 <= data.shape[2]
            or pdq.shape != (row1 - row0, data.shape[3])):
        raise ValueError("fit_ramps: data/gdq must be (nints, ngroups, ny, nx), pdq the "
                         "(ny, nx) of the rows fitted")
    nints, ngroups, _, nx = data.shape
    ny = row1 - row0
    dnu = int(dqflags["DO_NOT_USE"])
    sat = int(dqflags["SATURATED"])
    jump = int(dqflags["JUMP_DET"])
    chg = int(dqflags.get("CHARGELOSS", 0))

    rng = _group_range(firstgroup, lastgroup, ngroups)
    if rng is not None:
        gdq = gdq.copy()
        if rng[0] > 0:
            gdq[:, : rng[0]] |= np.uint8(dnu)
        if rng[1] < ngroups - 1:
            gdq[:, rng[1] + 1:] |= np.uint8(dnu)

    if use_likely(algorithm, ngroups):
        from webbflow.steps.ramp_fit_likely import fit_ramps_likely

        return fit_ramps_likely(data[:, :, row0:row1], gdq[:, :, row0:row1], pdq, readnoise, gain, dqflags, frame_time=frame_time,
                                nframes=nframes, groupgap=groupgap,
                                average_dark_current=average_dark_current, zeroframe=zeroframe,
                                readtimes=readtimes)

    if ngroups == 1:
        suppress_one_group = False

    clear_jump_g0 = False
    if is_miri and ngroups > 1:
        kept = miri_drop(gdq, dqflags) if miri_groups is None else miri_groups
        if kept is None:
            return None
        first, last = kept
        clear_jump_g0 = first > 0
        data = data[:, first:last]
        gdq = gdq[:, first:last]
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
            gdq = np.ascontiguousarray(gdq)
        ngroups = last - first

    if check_saturated and np.all(gdq[:, 0, row0:row1] & sat):
        return None

    gain = np.ascontiguousarray(gain, dtype=np.float32)
    # stcal: readnoise_2d *= gain_2d / sqrt(2 nframes)  (float64 product, stored float32)
    rn = np.asarray(readnoise, dtype=np.float32) * (gain / np.sqrt(2.0 * nframes))
    rn = rn.astype(np.float32)
    if average_dark_current is None:
        dark = np.zeros((ny, nx), dtype=np.float32)
    else:
        dark = np.ascontiguousarray(average_dark_current, dtype=np.float32)
    use_zf = zeroframe is not None and not suppress_one_group
    zf = (np.ascontiguousarray(zeroframe, dtype=np.float32) if use_zf
          else np.zeros((1, 1, 1), dtype=np.float32))
    use_chg = bool(chg) and _any_flag(gdq.reshape(-1), np.uint8(chg))

    # the C code reads times as C floats
    gt = float(np.float32(group_time))
    ft = float(np.float32(frame_time))
    one_t = (float(nframes) + 1.0) * ft / 2.0

    if out is None:
        r = [np.empty((ny, nx), np.float32) for _ in range(5)]
        r[1] = np.empty((ny, nx), np.uint32)
        ri = [np.empty((nints, ny, nx), np.float32) for _ in range(5)]
        ri[1] = np.empty((nints, ny, nx), np.uint32)
    else:
        r, ri = (list(arrays) for arrays in out)
    args = (data, gdq, row0, pdq, rn, gain, dark, zf, use_zf, use_chg, clear_jump_g0,
            bool(suppress_one_group), dnu, sat, jump, int(dqflags["PERSISTENCE"]),
            int(dqflags["NO_GAIN_VALUE"]), chg, gt, ft, one_t, _weight_table(ngroups),
            r[0], r[1], r[2], r[3], r[4], ri[0], ri[1], ri[2], ri[3], ri[4])
    ped_tmp = ((nframes + 1) / 2.0 + (drop_frames1 or 0)) / (nframes + groupgap)
    maxseg = np.zeros(ny, np.int64)
    maxcr = np.zeros(ny, np.int64)
    d4 = np.zeros((1, 1, 1, 1), np.float32)
    d3 = np.zeros((1, 1, 1), np.float32)
    fitopt = None
    if not save_opt:
        _ols_fit(*args, 0, ped_tmp, maxseg, maxcr, d4, d4, d4, d4, d4, d4, d4, d3, d4)
    else:
        _ols_fit(*args, 1, ped_tmp, maxseg, maxcr, d4, d4, d4, d4, d4, d4, d4, d3, d4)
        nseg, ncr = int(maxseg.max(initial=0)), int(maxcr.max(initial=0))
        names = ("slope", "sigslope", "yint", "sigyint", "weights", "var_poisson", "var_rnoise")
        fitopt = {k: np.zeros((nints, nseg, ny, nx), np.float32) for k in names}
        fitopt["pedestal"] = np.zeros((nints, ny, nx), np.float32)
        fitopt["crmag"] = np.zeros((nints, ncr, ny, nx), np.float32)
        _ols_fit(*args, 2, ped_tmp, maxseg, maxcr, *(fitopt[k] for k in names),
                 fitopt["pedestal"], fitopt["crmag"])
    return RampFitResult(rate=tuple(r), rateints=tuple(ri), fitopt=fitopt)
