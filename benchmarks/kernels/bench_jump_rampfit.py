"""Time webbflow detect_jumps + fit_ramps against stcal on a full-frame cube.

    .venv/bin/python benchmarks/kernels/bench_jump_rampfit.py [--ny 2048 --nx 2048
        --ngroups 10 --nints 1 --threads N]

Each implementation runs in its own subprocess (so peak RSS is its own). Ours is run
with a fresh NUMBA_CACHE_DIR (cold: compile included in the first call) and then again
in the same process (warm), and once more in a new process using the on-disk cache
(cached: what a Snakemake job sees). Not collected by pytest.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

GT = 10.737


def make_cube(ny, nx, ngroups, nints, seed=1):
    from webbflow.dqflags import PIXEL

    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.5, 3.0, (ny, nx)).astype(np.float32)          # DN/s
    bright = rng.random((ny, nx)) < 2e-3
    rate[bright] *= 300.0
    gain = np.float32(2.0) * rng.uniform(0.95, 1.05, (ny, nx)).astype(np.float32)
    rn = np.full((ny, nx), 9.0, np.float32)
    data = np.empty((nints, ngroups, ny, nx), np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    for i in range(nints):
        acc = np.zeros((ny, nx), np.float32)
        for g in range(ngroups):
            lam = rate * GT
            acc += (lam + np.sqrt(lam) * rng.standard_normal((ny, nx), np.float32) / np.sqrt(gain))
            data[i, g] = acc + rng.standard_normal((ny, nx), np.float32) * (rn / np.sqrt(2))
        ncr = ny * nx // 200
        ys, xs = rng.integers(0, ny, ncr), rng.integers(0, nx, ncr)
        gs = rng.integers(1, ngroups, ncr)
        amp = rng.uniform(100, 5000, ncr).astype(np.float32)
        for y, x, g0, a in zip(ys, xs, gs, amp):
            data[i, g0:, y, x] += a
    gdq[data > 60000] = PIXEL["SATURATED"]
    gdq = np.maximum.accumulate(gdq, axis=1)
    return data, gdq, np.zeros((ny, nx), np.uint32), gain, rn


def run_ours(args):
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    from webbflow.dqflags import PIXEL
    from webbflow.steps.jump import detect_jumps
    from webbflow.steps.ramp_fit import fit_ramps

    data, gdq, pdq, gain, rn = make_cube(args.ny, args.nx, args.ngroups, args.nints)
    out = {}
    for label in ("first", "warm"):
        c0, t0 = time.process_time(), time.perf_counter()
        g, p, st = detect_jumps(data, gdq, pdq, gain, rn, PIXEL, nframes=1, group_time=GT)
        t1 = time.perf_counter()
        res = fit_ramps(data, g, p, rn, gain, PIXEL, frame_time=GT, group_time=GT, nframes=1,
                        groupgap=0)
        c2, t2 = time.process_time(), time.perf_counter()
        out[label] = dict(jump=t1 - t0, ramp_fit=t2 - t1, total=t2 - t0, cpu=c2 - c0)
    out["n_jump_groups"] = int(np.count_nonzero(g & 4))
    out["rate_checksum"] = float(np.nansum(res.rate[0], dtype=np.float64))
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["threads"] = numba.get_num_threads()
    return out


def run_stcal(args):
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData
    from stcal.ramp_fitting.ramp_fit import ramp_fit_data
    from stcal.ramp_fitting.ramp_fit_class import RampData

    from webbflow.dqflags import PIXEL

    data, gdq, pdq, gain, rn = make_cube(args.ny, args.nx, args.ngroups, args.nints)
    c0, t0 = time.process_time(), time.perf_counter()
    jd = JumpData(gain2d=gain, rnoise2d=rn, dqflags=PIXEL)
    jd.init_arrays_from_arrays(data.copy(), gdq, pdq)
    jd.nframes = 1
    jd.dt_group = np.ones(1)
    jd.n_reads_groupdiff = np.ones(1) * 2
    jd.set_detection_settings(4.0, 6.0, 5.0, 1000.0, 10.0, True)
    jd.set_sigma_clipping_info(3, 100, True)
    jd.max_cores = "1"
    g, p, _, _ = detect_jumps_data(jd)
    t1 = time.perf_counter()
    rd = RampData()
    rd.set_arrays(data, g, p, np.zeros_like(gain))
    rd.set_meta(name="NIRCAM", frame_time=GT, group_time=GT, groupgap=0, nframes=1,
                drop_frames1=None)
    rd.algorithm = "OLS_C"
    rd.set_dqflags(PIXEL)
    rd.start_row, rd.num_rows = 0, data.shape[2]
    rd.suppress_one_group_ramps = True
    im, _, _ = ramp_fit_data(rd, False, rn.copy(), gain, "OLS_C", "optimal", "none")
    c2, t2 = time.process_time(), time.perf_counter()
    return dict(jump=t1 - t0, ramp_fit=t2 - t1, total=t2 - t0, cpu=c2 - c0,
                n_jump_groups=int(np.count_nonzero(g & 4)),
                rate_checksum=float(np.nansum(im["slope"], dtype=np.float64)),
                maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(args, impl, env=None):
    cmd = [sys.executable, __file__, "--impl", impl, "--ny", str(args.ny), "--nx", str(args.nx),
           "--ngroups", str(args.ngroups), "--nints", str(args.nints),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ny", type=int, default=2048)
    ap.add_argument("--nx", type=int, default=2048)
    ap.add_argument("--ngroups", type=int, default=10)
    ap.add_argument("--nints", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--impl", choices=("ours", "stcal"))
    args = ap.parse_args()
    if args.impl == "ours":
        print(json.dumps(run_ours(args)))
        return
    if args.impl == "stcal":
        print(json.dumps(run_stcal(args)))
        return
    with tempfile.TemporaryDirectory() as cache:
        cold = child(args, "ours", {"NUMBA_CACHE_DIR": cache})
        cached = child(args, "ours", {"NUMBA_CACHE_DIR": cache})
    ref = child(args, "stcal")
    print(f"cube {args.nints}x{args.ngroups}x{args.ny}x{args.nx}, numba threads {cold['threads']}")
    print(f"stcal            : jump {ref['jump']:8.2f} s  ramp_fit {ref['ramp_fit']:8.2f} s  "
          f"total {ref['total']:8.2f} s  cpu {ref['cpu']:8.2f} s  maxrss {ref['maxrss_mb']:.0f} MB")
    for name, r in (("ours cold (JIT)", cold["first"]), ("ours cached", cached["first"]),
                    ("ours warm", cached["warm"])):
        print(f"{name:17s}: jump {r['jump']:8.2f} s  ramp_fit {r['ramp_fit']:8.2f} s  "
              f"total {r['total']:8.2f} s  cpu {r['cpu']:8.2f} s  "
              f"speed-up x{ref['total'] / r['total']:.1f} (cpu x{ref['cpu'] / r['cpu']:.1f})")
    print(f"ours maxrss {cached['maxrss_mb']:.0f} MB; jump groups ours {cached['n_jump_groups']} "
          f"stcal {ref['n_jump_groups']}; rate checksum ours {cached['rate_checksum']:.6e} "
          f"stcal {ref['rate_checksum']:.6e}")


if __name__ == "__main__":
    main()
