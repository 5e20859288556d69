"""Time each array step on a simulated NIRCam full-frame cube (not collected by pytest).

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/kernels/bench_steps.py [--ngroups 10]

Prints first-call (includes compile or cache load) and warm (second call) times per step.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_jump_rampfit import GT, make_cube  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ny", type=int, default=2048)
    ap.add_argument("--nx", type=int, default=2048)
    ap.add_argument("--ngroups", type=int, default=10)
    ap.add_argument("--nints", type=int, default=1)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    from webbflow.dqflags import PIXEL
    from webbflow.steps.ipc import correct_ipc
    from webbflow.steps.jump import detect_jumps
    from webbflow.steps.ramp_fit import fit_ramps
    from webbflow.steps.refpix import correct_refpix
    from webbflow.steps.saturation import flag_saturated
    from webbflow.steps.dq_init import initialize_dq

    data0, gdq0, pdq0, gain, rn = make_cube(args.ny, args.nx, args.ngroups, args.nints)
    gdq0[:] = 0
    ny, nx = args.ny, args.nx
    rng = np.random.default_rng(3)
    mask = np.zeros((ny, nx), np.uint32)
    mask[rng.random((ny, nx)) < 1e-3] = 1
    sat_thr = np.full((ny, nx), 60000, np.float32)
    kern = np.array([[0.002, 0.01, 0.002], [0.01, 0.95, 0.01], [0.002, 0.01, 0.002]], np.float32)

    def steps():
        data = data0.copy()
        gdq = gdq0.copy()
        pdq = pdq0.copy()
        yield "dq_init", lambda: initialize_dq(gdq, pdq, mask, PIXEL)
        yield "saturation", lambda: flag_saturated(data, gdq, pdq, sat_thr, np.zeros_like(pdq), PIXEL)
        yield "ipc", lambda: correct_ipc(data, kern)
        yield "refpix", lambda: correct_refpix(data, pdq, PIXEL, instrument="NIRCAM", fastaxis=1,
                                               slowaxis=2)
        out = {}
        yield "jump", lambda: out.setdefault("j", detect_jumps(data, gdq, pdq, gain, rn, PIXEL,
                                                               nframes=1, group_time=GT))
        yield "ramp_fit", lambda: fit_ramps(data, out["j"][0], out["j"][1], rn, gain, PIXEL,
                                            frame_time=GT, group_time=GT, nframes=1, groupgap=0)

    res = {}
    for rep in ("first", "warm"):
        for name, fn in steps():
            if args.only and name not in args.only.split(","):
                if name == "jump":
                    fn()
                continue
            t0 = time.perf_counter()
            fn()
            res.setdefault(name, {})[rep] = time.perf_counter() - t0
    tot = 0.0
    for name, r in res.items():
        tot += r["warm"]
        print(f"{name:12s} first {r['first']:7.3f} s   warm {r['warm']:7.3f} s")
    print(f"{'total':12s} warm {tot:7.3f} s")


if __name__ == "__main__":
    main()
