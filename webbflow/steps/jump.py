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
DO_NOT_USE/SATURATED groups. Snowball (``expand_large_events``) and shower
(``find_showers``) expansion are not implemented yet and raise NotImplementedError.

Row blocks: detection is per pixel, but (1) neighbour flagging reaches one row up and
down, so a block caller must pass one halo row on each side and discard it afterwards;
(2) the choice of detector and the "skip" decision depend on groups that are
DO_NOT_USE in *every* pixel of the frame, and the sigma-clip path clears planes that
are JUMP/DO_NOT_USE everywhere. A block caller must take those exposure-wide decisions
on the full frame (pass ``all_dnu_groups``, see below); ``stats`` counts are per block.
"""

import numpy as np

from webbflow.kernels.jump import (
    MODE_ITERATIVE,
    MODE_SIGMA_CLIP,
    MODE_SINGLE_PASS,
    _after_jump,
    _apply_neighbors,
    _cleanup,
    _detect,
    _neighbor_sources,
)


def all_dnu_groups(gdq, dqflags):
    """bool (nints, ngroups): groups that are DO_NOT_USE in every pixel."""
    dnu = np.uint8(dqflags["DO_NOT_USE"])
    nints, ngroups = gdq.shape[:2]
    out = np.zeros((nints, ngroups), bool)
    for i in range(nints):
        for g in range(ngroups):
            out[i, g] = bool(np.all(gdq[i, g] & dnu))
    return out


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
                 max_extended_radius=200, all_dnu=None):
    """Flag cosmic-ray jumps; returns ``(gdq, pdq, stats)`` (new arrays, inputs untouched).

    data : float32 (nints, ngroups, ny, nx) in DN; gdq uint8 same shape; pdq uint32
    (ny, nx); gain float32 (ny, nx) e-/DN; readnoise float32 (ny, nx) CDS read noise in DN.
    ``minimum_groups`` is accepted for signature parity but, as in stcal's single-process
    path (``twopt_params.minimum_groups = 3``), 3 is used. ``all_dnu`` optionally gives
    the exposure-wide :func:`all_dnu_groups` for row-block callers.

    stats: ``n_primary_crs`` (stcal's count, -99 when detection was skipped),
    ``n_extended_events``, ``primary_cosmic_rays`` (PRIMECRS) and
    ``extended_emission_events`` (EXTNCRS) or None, ``mode`` and ``skipped``.
    """
    if expand_large_events:
        raise NotImplementedError("jump: snowball flagging (expand_large_events) is not implemented yet")
    if find_showers:
        raise NotImplementedError("jump: shower flagging (find_showers) is not implemented yet")
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 4 or np.shape(gdq) != data.shape or np.shape(pdq) != data.shape[2:]:
        raise ValueError("detect_jumps: data/gdq must be (nints, ngroups, ny, nx), pdq (ny, nx)")
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
        src = np.empty_like(gdq) if flag_4_neighbors else np.zeros((1, 1, 1, 1), np.uint8)
        _detect(data, gdq, gain, rn2, float(nframes), dnu, sat, jump, mode,
                float(rejection_threshold), float(four_group_rejection_threshold),
                float(three_group_rejection_threshold), bool(flag_4_neighbors), rmin, rmax,
                med, sig, ncr_rows, src)
        num_primary = int(ncr_rows.sum())
        if mode == MODE_SIGMA_CLIP:
            changed = False
            for i in range(nints):
                for g in range(ngroups):
                    plane = gdq[i, g]
                    if np.all(plane & np.uint8(jump | dnu)):
                        plane[plane == jump] = 0
                        changed = True
            if changed:
                num_primary = int(np.count_nonzero(gdq & np.uint8(jump)))
                if flag_4_neighbors:  # sources must see the cleared planes
                    _neighbor_sources(data, gdq, gain, med, sig, dnu, sat, jump, rmin, rmax, src)
        if flag_4_neighbors:
            _apply_neighbors(gdq, src, dnu, sat, jump)
        del src
        n1 = int(after_jump_flag_time1 // group_time)
        n2 = int(after_jump_flag_time2 // group_time)
        if n1 > 0 or n2 > 0:
            gmed = float(np.nanmedian(gain))
            _after_jump(data, gdq, gain, med, dnu, sat, jump,
                        float(after_jump_flag_dn1) * gmed, n1,
                        float(after_jump_flag_dn2) * gmed, n2)
    else:
        stats["skipped"] = True
    _cleanup(gdq, dnu, sat, jump)
    stats["n_primary_crs"] = num_primary

    # header keywords, as jwst JumpStep
    n_flagged = int(all_dnu_groups(gdq, dqflags).sum())
    tot = nints * ngroups - n_flagged - nints
    if tot >= 1:
        total_time = group_time * tot
        npix = ny * nx
        stats["primary_cosmic_rays"] = 1000.0 * num_primary / (total_time * npix)
        stats["extended_emission_events"] = 1e6 * stats["n_extended_events"] / (total_time * npix)
    return gdq, pdq, stats
