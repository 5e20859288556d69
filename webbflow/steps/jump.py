"""Jump detection (``jump``): stcal's two-point-difference method on arrays.

:func:`detect_jumps` mirrors ``jwst.jump.JumpStep`` + ``stcal.jump.detect_jumps_data``
for JWST data (uniform groups, single process): data and read noise go to electrons,
DO_NOT_USE/SATURATED groups are ignored, and one of three detectors runs on each
pixel's first differences pooled over integrations:

* sigma clipping across integrations (``only_use_ints`` and NINTS >= minimum_sigclip_groups),
* a single pass against the median difference (>= ``min_diffs_single_pass`` usable diffs),
* otherwise the iterative "drop the largest" search with thresholds depending on the
  number of usable differences.

Then edge-neighbour flagging, optional after-jump flagging and the JUMP_DET cleanup on
DO_NOT_USE/SATURATED groups, and optionally snowball expansion
(``expand_large_events``) and MIRI shower flagging (``find_showers``). Those two are
whole-frame region operations done with the same libraries as stcal (scikit-image
labelling/drawing, astropy Ring2DKernel and sigma_clipped_stats, scipy oaconvolve).

Official quirk kept on purpose: jwst's JumpStep never passes its
``max_shower_amplitude`` (4 DN/s) to stcal, which uses JumpData's default of 6 DN/s
(times the group time); ``max_shower_amplitude`` is accepted but, like in jwst, unused.

Row blocks: detection is per pixel, but (1) neighbour flagging reaches one row up and
down, so a block caller must pass one halo row on each side and discard it afterwards;
(2) the choice of detector and the "skip" decision depend on groups that are
DO_NOT_USE in *every* pixel of the frame, and the sigma-clip path clears planes that
are JUMP/DO_NOT_USE everywhere. A block caller must take those exposure-wide decisions
on the full frame (pass ``all_dnu_groups``, see below); ``stats`` counts are per block.
"""

import numpy as np

from webbflow.kernels._common import _all_flag
from webbflow.kernels.jump import (
    MODE_ITERATIVE,
    MODE_SIGMA_CLIP,
    MODE_SINGLE_PASS,
    _after_jump,
    _apply_neighbor_list,
    _apply_neighbors,
    _cleanup,
    _detect,
    _neighbor_sources,
)


def planes_all_flagged(gdq, flags):
    """bool (nints, ngroups): groups where every pixel has a bit of ``flags``."""
    gdq = np.ascontiguousarray(gdq, dtype=np.uint8)
    flags = np.uint8(flags)
    nints, ngroups = gdq.shape[:2]
    out = np.zeros((nints, ngroups), bool)
    for i in range(nints):
        for g in range(ngroups):
            out[i, g] = _all_flag(gdq[i, g].reshape(-1), flags)
    return out


def all_dnu_groups(gdq, dqflags):
    """bool (nints, ngroups): groups that are DO_NOT_USE in every pixel."""
    return planes_all_flagged(gdq, dqflags["DO_NOT_USE"])


def detect_jumps(data, gdq, pdq, gain, readnoise, dqflags, *, nframes, group_time,
                 rejection_threshold=4.0, three_group_rejection_threshold=6.0,
                 four_group_rejection_threshold=5.0, flag_4_neighbors=True,
                 max_jump_to_flag_neighbors=1000.0, min_jump_to_flag_neighbors=10.0,
                 after_jump_flag_dn1=0.0, after_jump_flag_time1=0.0,
                 after_jump_flag_dn2=0.0, after_jump_flag_time2=0.0,
                 min_diffs_single_pass=10, minimum_groups=3, minimum_sigclip_groups=100,
                 only_use_ints=True, expand_large_events=False, min_sat_area=1.0,
                 min_jump_area=5.0, expand_factor=2.0, sat_required_snowball=True,
                 min_sat_radius_extend=2.5, sat_expand=2, edge_size=25,
                 mask_snowball_core_next_int=True, snowball_time_masked_next_int=4000.0,
                 find_showers=False, max_shower_amplitude=4.0, extend_snr_threshold=1.2,
                 extend_min_area=90, extend_inner_radius=1.0, extend_outer_radius=2.6,
                 extend_ellipse_expand_ratio=1.1, time_masked_after_shower=15.0,
                 max_extended_radius=200, all_dnu=None, interior=None, gain_median=None):
    """Flag cosmic-ray jumps; returns ``(gdq, pdq, stats)`` (new arrays, inputs untouched).

    data : float32 (nints, ngroups, ny, nx) in DN; gdq uint8 same shape; pdq uint32
    (ny, nx); gain float32 (ny, nx) e-/DN; readnoise float32 (ny, nx) CDS read noise in DN.
    Snowball/shower parameters follow the JumpStep spec (the step doubles ``sat_expand`` and
    ``max_extended_radius`` before passing them on; so does this function).
    ``minimum_groups`` is accepted for signature parity but, as in stcal's single-process
    path (``twopt_params.minimum_groups = 3``), 3 is used. ``all_dnu`` optionally gives
    the exposure-wide :func:`all_dnu_groups` for row-block callers.

    ``interior=(a, b)``: the call is one row block of a frame whose rows a .. b-1 are kept
    (the others are halo). Then the exposure-wide parts are left to the caller: cosmic rays
    are counted on the interior only, the sigma-clip path reports in
    ``stats["planes_all_jump_dnu"]`` which planes are JUMP_DET/DO_NOT_USE over the whole
    interior instead of clearing them (the caller clears only if that holds frame-wide),
    snowballs and showers must be off, and the rate keywords are left to
    :func:`jump_keywords`; ``gain_median`` then gives the frame's median gain (after-jump
    flagging thresholds).

    stats: ``n_primary_crs`` (stcal's count, -99 when detection was skipped),
    ``n_extended_events``, ``primary_cosmic_rays`` (PRIMECRS) and
    ``extended_emission_events`` (EXTNCRS) or None, ``mode`` and ``skipped``.
    """
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 4 or np.shape(gdq) != data.shape or np.shape(pdq) != data.shape[2:]:
        raise ValueError("detect_jumps: data/gdq must be (nints, ngroups, ny, nx), pdq (ny, nx)")
    if interior is not None and (expand_large_events or find_showers):
        raise ValueError("detect_jumps: snowballs and showers need the whole frame")
    gdq = np.array(gdq, dtype=np.uint8, order="C", copy=True)
    pdq = np.array(pdq, dtype=np.uint32, order="C", copy=True)
    nints, ngroups, ny, nx = data.shape
    stats = dict(n_primary_crs=0, n_extended_events=0, primary_cosmic_rays=None,
                 extended_emission_events=None, mode=None, skipped=False)
    if ngroups <= 2:  # jwst JumpStep skips the step
        stats["skipped"] = True
        return gdq, pdq, stats

    dnu = int(dqflags["DO_NOT_USE"])
    sat = int(dqflags["SATURATED"])
    jump = int(dqflags["JUMP_DET"])
    gain = np.ascontiguousarray(gain, dtype=np.float32)
    bad_gain = (gain <= 0.0) | np.isnan(gain)
    pdq[bad_gain] |= np.uint32(dqflags["NO_GAIN_VALUE"] | dnu)
    rn_e = np.asarray(readnoise, dtype=np.float32) * gain
    rn2 = np.ascontiguousarray(rn_e ** 2, dtype=np.float32)

    # exposure-wide group counts (stcal groups_all_set_dnu)
    if all_dnu is None:
        all_dnu = all_dnu_groups(gdq, dqflags)
    flagged_per_int = all_dnu.sum(axis=1)
    total_groups = nints * ngroups - int(flagged_per_int.sum())
    min_usable_groups = ngroups - int(flagged_per_int.max())
    min_usable_diffs = min_usable_groups - 1
    total_sigclip_groups = nints if only_use_ints else total_groups
    sigclip_fails = nints < minimum_sigclip_groups if only_use_ints else \
        total_sigclip_groups < minimum_sigclip_groups
    noise_fails = min_usable_groups < 3

    num_primary = -99
    # stcal NaNs DO_NOT_USE/SATURATED groups of its electron cube in place during
    # detection; the shower search later sees that cube
    shower_nan = None
    if find_showers and not (sigclip_fails and noise_fails):
        shower_nan = (gdq & np.uint8(dnu | sat)) != 0
    if not (sigclip_fails and noise_fails):
        use_sigclip = (only_use_ints and nints >= minimum_sigclip_groups) or \
            (not only_use_ints and total_groups >= minimum_sigclip_groups)
        if use_sigclip:
            if not only_use_ints:
                raise NotImplementedError("jump: sigma clipping over groups (only_use_ints=False)")
            mode = MODE_SIGMA_CLIP
        elif min_usable_diffs >= min_diffs_single_pass:
            mode = MODE_SINGLE_PASS
        else:
            mode = MODE_ITERATIVE
        stats["mode"] = {MODE_SIGMA_CLIP: "sigma_clip", MODE_SINGLE_PASS: "single_pass",
                         MODE_ITERATIVE: "iterative"}[mode]
        med = np.empty((ny, nx), np.float64)
        sig = np.empty((ny, nx), np.float64)
        ncr_rows = np.zeros(ny, np.int64)
        rmin = float(min_jump_to_flag_neighbors)
        rmax = float(max_jump_to_flag_neighbors)
        n1 = int(after_jump_flag_time1 // group_time)
        n2 = int(after_jump_flag_time2 // group_time)
        after = n1 > 0 or n2 > 0
        # after-jump flagging reads the median of pixels flagged as neighbours too
        srcs = _detect(data, gdq, gain, rn2, float(nframes), dnu, sat, jump, mode,
                       float(rejection_threshold), float(four_group_rejection_threshold),
                       float(three_group_rejection_threshold), bool(flag_4_neighbors), rmin,
                       rmax, med, sig, ncr_rows, after)
        num_primary = int(ncr_rows.sum() if interior is None
                          else ncr_rows[interior[0]:interior[1]].sum())
        if mode == MODE_SIGMA_CLIP and interior is not None:
            a, b = interior
            stats["planes_all_jump_dnu"] = planes_all_flagged(gdq[:, :, a:b], jump | dnu)
        elif mode == MODE_SIGMA_CLIP:
            changed = False
            for i, g in zip(*np.nonzero(planes_all_flagged(gdq, jump | dnu))):
                plane = gdq[i, g]
                only_jump = plane == jump
                if only_jump.any():
                    plane[only_jump] = 0
                    changed = True
            if changed:
                num_primary = int(np.count_nonzero(gdq & np.uint8(jump)))
                if flag_4_neighbors:  # sources must see the cleared planes
                    src = np.empty_like(gdq)     # every element is written
                    _neighbor_sources(data, gdq, gain, med, sig, dnu, sat, jump, rmin, rmax, src)
                    _apply_neighbors(gdq, src, dnu, sat, jump)
                    del src
                    srcs = None
        if flag_4_neighbors and srcs is not None:
            _apply_neighbor_list(gdq, srcs, dnu, sat, jump)
        del srcs
        if after:
            gmed = float(np.nanmedian(gain)) if gain_median is None else float(gain_median)
            _after_jump(data, gdq, gain, med, dnu, sat, jump,
                        float(after_jump_flag_dn1) * gmed, n1,
                        float(after_jump_flag_dn2) * gmed, n2)
    else:
        stats["skipped"] = True
    _cleanup(gdq, dnu, sat, jump)
    stats["n_primary_crs"] = num_primary
    if expand_large_events:
        stats["n_extended_events"] = _flag_snowballs(
            gdq, sat, jump, min_sat_area=min_sat_area, min_jump_area=min_jump_area,
            expand_factor=expand_factor, sat_required=sat_required_snowball,
            min_sat_radius_extend=min_sat_radius_extend, sat_expand=2 * sat_expand,
            edge_size=edge_size, max_width=2 * max_extended_radius,
            persist_groups=(int(snowball_time_masked_next_int // group_time)
                            if mask_snowball_core_next_int else 0))
    if find_showers:
        stats["n_extended_events"] = _flag_showers(
            data, gdq, pdq, gain, rn2, dqflags, shower_nan, nframes=nframes,
            minimum_sigclip_groups=minimum_sigclip_groups,
            snr_threshold=extend_snr_threshold, min_area=extend_min_area,
            inner_radius=extend_inner_radius, outer_radius=extend_outer_radius,
            expand_ratio=extend_ellipse_expand_ratio, max_width=2 * max_extended_radius,
            groups_masked=int(time_masked_after_shower // group_time),
            max_amplitude=_JUMPDATA_SHOWER_AMPLITUDE * group_time)

    if interior is None:
        stats.update(jump_keywords(num_primary, stats["n_extended_events"], gdq, dqflags,
                                   group_time))
    return gdq, pdq, stats


def jump_keywords(num_primary, n_extended, gdq, dqflags, group_time):
    """PRIMECRS and EXTNCRS (per 1000 s per pixel, per 1e6 s per pixel), as jwst JumpStep
    computes them from the whole frame's final group DQ; None when no time is usable."""
    nints, ngroups, ny, nx = gdq.shape
    n_flagged = int(all_dnu_groups(gdq, dqflags).sum())
    tot = nints * ngroups - n_flagged - nints
    if tot < 1:
        return dict(primary_cosmic_rays=None, extended_emission_events=None)
    total_time = group_time * tot
    npix = ny * nx
    return dict(primary_cosmic_rays=1000.0 * num_primary / (total_time * npix),
                extended_emission_events=1e6 * n_extended / (total_time * npix))


# --------------------------------------------------------------------------- snowballs
# Sparse, whole-frame region work (label -> ellipse -> draw), done as in stcal with
# scikit-image; the centre convention of stcal's ellipse tuples is kept:
# ((x_centroid, y_centroid), (minor_len, major_len), angle_deg).


def _regions(mask, min_area):
    import skimage.measure

    out = []
    for reg in skimage.measure.regionprops(skimage.measure.label(mask)):
        if reg.area_filled < min_area:
            continue
        out.append(((float(reg.centroid[1]), float(reg.centroid[0])),
                    (reg.axis_minor_length - 1, reg.axis_major_length - 1),
                    np.degrees(reg.orientation)))
    return out


def _ellipse_mask(cx, cy, axis1, axis2, angle, shape):
    """Filled ellipse (full axis lengths axis1 along x, axis2 along y) in a cut-out.

    Returns (row slice, col slice, bool mask) clipped to ``shape`` (rows, cols).
    """
    import skimage.draw

    xc, yc = round(cx), round(cy)
    half = max(round(axis1 / 2), round(axis2 / 2)) + 2
    c0, c1 = max(xc - half, 0), min(xc + half + 1, shape[1])
    r0, r1 = max(yc - half, 0), min(yc + half + 1, shape[0])
    mask = np.zeros((r1 - r0, c1 - c0), bool)
    ra, ca = round(axis2 / 2), round(axis1 / 2)
    if ra != 0 and ca != 0:
        rr, cc = skimage.draw.ellipse(yc - r0, xc - c0, ra, ca, mask.shape, np.radians(angle))
        mask[rr, cc] = True
    return slice(r0, r1), slice(c0, c1), mask


def _inside(point, ell):
    ang = np.radians(180 - ell[2])
    ca, sa = np.cos(ang), np.sin(ang)
    dx, dy = point[0] - ell[0][0], point[1] - ell[0][1]
    u = dx * ca - dy * sa
    v = dx * sa + dy * ca
    big, small = (ell[1][1], ell[1][0]) if ell[1][1] >= ell[1][0] else (ell[1][0], ell[1][1])
    return (u ** 2 / (big * 0.5) ** 2) + (v ** 2 / (small * 0.5) ** 2) <= 1


def _flag_snowballs(gdq, sat, jump, *, min_sat_area, min_jump_area, expand_factor, sat_required,
                    min_sat_radius_extend, sat_expand, edge_size, max_width, persist_groups):
    """Snowball expansion (stcal flag_large_events) in place; returns the snowball count."""
    nints, ngroups, ny, nx = gdq.shape
    lo, hi = edge_size, max(0, ny - edge_size)
    persist = np.zeros((nints, ny, nx), np.uint8)
    total = 0
    for i in range(nints):
        next_new = None
        for g in range(1, ngroups):
            cur_sat = (gdq[i, g] & sat) != 0
            new_sat = cur_sat & ((gdq[i, g - 1] & sat) == 0)
            if g < ngroups - 1:
                next_new = ((gdq[i, g + 1] & sat) != 0) & ~cur_sat
            sat_ells = _regions(new_sat, min_sat_area)
            next_ells = _regions(next_new, min_sat_area) if g < ngroups - 1 else []
            jump_ells = _regions((gdq[i, g] & jump) != 0, min_jump_area)
            if sat_required:
                snow = []
                for j, je in enumerate(jump_ells):
                    x, y = je[0]
                    if x < lo or y < lo or x > hi or y > hi:
                        snow.append(j)
                        continue
                    if any(_inside(se[0], je) for se in sat_ells) or \
                            any(_inside(se[0], je) for se in next_ells):
                        snow.append(j)
                snow = [jump_ells[j] for j in snow]
                # saturated cores: grow the SATURATED flag in this and later groups
                for se in sat_ells:
                    if min(se[1]) <= min_sat_radius_extend:
                        continue
                    a1 = min(se[1][0] + sat_expand, max_width)
                    a2 = min(se[1][1] + sat_expand, max_width)
                    rs, cs, m = _ellipse_mask(se[0][0], se[0][1], a1, a2, se[2], (ny, nx))
                    for gg in range(g, ngroups):
                        gdq[i, gg, rs, cs][m] = sat
                    rs, cs, m = _ellipse_mask(se[0][0], se[0][1], se[1][0], se[1][1], se[2],
                                              (ny, nx))
                    persist[i, rs, cs][m] = jump
            else:
                snow = jump_ells
            total += len(snow)
            for je in snow:
                minor, major = je[1]
                if major < minor:
                    a1 = minor + (expand_factor - 1.0) * major
                    a2 = major * expand_factor
                else:
                    a1 = minor * expand_factor
                    a2 = major + (expand_factor - 1.0) * minor
                a1 = round(min(a1, max_width) / 2) * 2
                a2 = round(min(a2, max_width) / 2) * 2
                rs, cs, m = _ellipse_mask(je[0][0], je[0][1], a1, a2, je[2], (ny, nx))
                plane = gdq[i, g, rs, cs]
                m &= (plane & sat) != sat
                plane[m] |= np.uint8(jump)
    if persist_groups >= 1:
        last = min(persist_groups, ngroups)
        for i in range(1, nints):
            gdq[i, 1:last] |= persist[i - 1][None]
    return total


# --------------------------------------------------------------------------- showers
_JUMPDATA_SHOWER_AMPLITUDE = 6.0  # stcal JumpData default; JumpStep's own value is unused


def _draw_ellipses(gdq, i, g, ells, sat, jump, expand, max_width, ngroups_masked):
    """stcal extend_ellipses(expand_by_ratio=True) for one integration/group."""
    ngroups, ny, nx = gdq.shape[1:]
    for e in ells:
        minor, major = e[1]
        if major < minor:
            a1, a2 = minor + (expand - 1.0) * major, major * expand
        else:
            a1, a2 = minor * expand, major + (expand - 1.0) * minor
        a1 = round(min(a1, max_width) / 2) * 2
        a2 = round(min(a2, max_width) / 2) * 2
        rs, cs, m = _ellipse_mask(e[0][0], e[0][1], a1, a2, e[2], (ny, nx))
        for gg in range(g, min(g + ngroups_masked + 1, ngroups)):
            plane = gdq[i, gg, rs, cs]
            m &= (plane & sat) != sat      # stcal zeroes the stamp cumulatively
            plane[m] |= np.uint8(jump)


def _flag_showers(data, gdq, pdq, gain, rn2, dqflags, nan_mask, *, nframes,
                  minimum_sigclip_groups,
                  snr_threshold, min_area, inner_radius, outer_radius, expand_ratio, max_width,
                  groups_masked, max_amplitude, min_diffs=10):
    """MIRI shower flagging (stcal find_faint_extended + max_flux_showers), in place."""
    import warnings

    from astropy import stats as astats
    from astropy.convolution import Ring2DKernel
    from scipy import signal

    dnu, sat, jump = dqflags["DO_NOT_USE"], dqflags["SATURATED"], dqflags["JUMP_DET"]
    ref = dqflags["REFERENCE_PIXEL"]
    nints, ngroups, ny, nx = data.shape
    n_dnu = int(all_dnu_groups(gdq, dqflags).sum())
    if nints * (ngroups - 1) - n_dnu < min_diffs:
        return 0
    ingdq = gdq.copy()
    work = gdq.copy()
    edata = data * gain                      # electrons, float32 as stcal
    if nan_mask is not None:
        edata[nan_mask] = np.nan
    nanned = edata.copy()
    for v in (jump + dnu, sat + dnu, sat, jump, dnu):
        nanned[work == v] = np.nan
    refy, refx = np.where(pdq == ref)
    work[:, :, refy, refx] = dnu
    diffs = np.diff(nanned, axis=1)
    del nanned
    kernel = Ring2DKernel(inner_radius, outer_radius).array
    n = kernel.shape[0] // 2
    kmean = np.mean(kernel)
    found = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        sigclip = nints >= minimum_sigclip_groups
        if sigclip:
            _, med_g, std_g = astats.sigma_clipped_stats(diffs, sigma=5, axis=0)
        else:
            med = np.nanmedian(diffs, axis=(0, 1))
            sig = np.sqrt(np.abs(med) + rn2 / nframes)
        for i in range(nints):
            if not sigclip:
                ratio_i = np.abs(diffs[i] - med[None]) / sig[None]
            first = 0
            for g in range(ngroups):
                if not np.all(work[i, g] & dnu):
                    first = g
                    break
            for g in range(first + 1, ngroups):
                if sigclip:
                    r = np.abs(diffs[i, g - 1] - med_g[g - 1]) / std_g[g - 1]
                else:
                    r = ratio_i[g - 1].copy()
                bad = ((work[i, g] | pdq) & (jump | sat | dnu)) != 0
                r[bad] = np.nan
                good = np.isfinite(r)
                r[~good] = 0
                conv = signal.oaconvolve(r, kernel, mode="same")
                pad = np.ones((ny + kernel.shape[0] - 1, nx + kernel.shape[1] - 1))
                pad[n:-n, n:-n] = good
                norm = signal.oaconvolve(pad, kernel, mode="valid")
                good &= norm > 1e-3 * kmean
                conv /= norm
                conv[~good] = np.nan
                ells = _regions((conv > snr_threshold).astype(np.uint8), min_area)
                if ells:
                    found.append((i, g, ells))
    total = 0
    for i, g, ells in found:
        total += len(ells)
        _draw_ellipses(work, i, g, ells, sat, jump, expand_ratio, max_width, groups_masked)
    # undo flags that change the mean difference too much (stcal max_flux_showers)
    invalid = dnu | sat | jump
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        for i in range(nints):
            a = edata[i].copy()
            a[(ingdq[i] & invalid) != 0] = np.nan
            img1 = np.nanmean(np.diff(a, axis=0), axis=0)
            a = edata[i].copy()
            a[(work[i] & invalid) != 0] = np.nan
            img2 = np.nanmean(np.diff(a, axis=0), axis=0)
            dd = np.abs(img1 - img2)
            yy, xx = np.where(~np.isfinite(dd) | (dd > max_amplitude))
            work[i][:, yy, xx] = ingdq[i][:, yy, xx]
    gdq[...] = work
    return total
