"""Loop-per-pixel reference implementations and a small ramp simulator for kernel tests."""

import numpy as np

from webbflow.dqflags import PIXEL as DQFLAGS  # tests only; algorithms take it as argument


def simulate_ramps(seed, nints=3, ngroups=8, ny=24, nx=20, group_time=10.737, nframes=1,
                   n_cr=8, n_sat=4, rate_range=(0.0, 50.0), readnoise_dn=9.0, gain_e=2.0,
                   sat_level=60000.0):
    """Seeded ramps in DN: rate (DN/s), Poisson + read noise, cosmic rays, saturation.

    Returns dict(data, gdq, pdq, gain, readnoise, rate, cr) with float32/uint8/uint32 dtypes.
    ``readnoise`` is the CDS read noise (DN) as stored in READNOISE references.
    """
    rng = np.random.default_rng(seed)
    rate = rng.uniform(*rate_range, size=(ny, nx))
    # a few bright pixels that saturate mid-ramp
    for _ in range(n_sat):
        y, x = rng.integers(0, ny), rng.integers(0, nx)
        rate[y, x] = rng.uniform(0.3, 3.0) * sat_level / (ngroups * group_time)
    gain = np.full((ny, nx), gain_e, np.float32)
    gain *= rng.uniform(0.9, 1.1, (ny, nx)).astype(np.float32)
    rn_cds = np.full((ny, nx), readnoise_dn, np.float32)
    rn_group = rn_cds / np.sqrt(2.0)  # per-group read noise (DN) for nframes=1
    t = group_time * np.arange(1, ngroups + 1)
    data = np.empty((nints, ngroups, ny, nx), np.float64)
    for i in range(nints):
        e = rng.poisson(rate[None] * gain[None] * group_time, size=(ngroups, ny, nx)).cumsum(0)
        data[i] = e / gain[None] + rng.normal(0, 1, (ngroups, ny, nx)) * rn_group[None]
    del t
    cr = np.zeros(data.shape, bool)
    for _ in range(n_cr if ngroups > 1 else 0):
        i = rng.integers(0, nints)
        g = rng.integers(1, ngroups)
        y, x = rng.integers(1, ny - 1), rng.integers(1, nx - 1)
        amp = rng.uniform(300.0, 3000.0)
        data[i, g:, y, x] += amp
        cr[i, g, y, x] = True
    gdq = np.zeros(data.shape, np.uint8)
    gdq[data > sat_level] |= DQFLAGS["SATURATED"]
    # saturation is sticky
    gdq = np.maximum.accumulate(gdq, axis=1).astype(np.uint8)
    return dict(data=data.astype(np.float32), gdq=gdq, pdq=np.zeros((ny, nx), np.uint32),
                gain=gain, readnoise=rn_cds, rate=rate, cr=cr)
