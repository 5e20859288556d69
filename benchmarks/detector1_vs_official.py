"""Stage 1, webbflow against the official Detector1Pipeline, in one run on this machine.

Both pipelines take the same raw files and the same synthetic CRDS cache, with the same
steps switched on. Each run is a whole fresh process; wall time and peak RSS come from
the kernel (``wait4``). webbflow is run cold (an empty numba cache: first JIT, and CRDS
asked for the references), then warm (the numba cache every later job on the machine
reuses, and the reference choice the output directory remembers, as a workflow job gets
its references from the plan), then once more warm but asking CRDS again ("first": a
first command-line run of a new exposure). The result is reported as ratios, since
absolute times drift on shared machines.

    .venv/bin/python benchmarks/detector1_vs_official.py [--cases nircam,miri,tso] [--repeat 2]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.oracle.official import official_steps  # noqa: E402
from webbflow import planning  # noqa: E402
from webbflow.io import read_product  # noqa: E402

CASES = {
    "nircam": "jw01234001001_02101_00001_nrca1",   # 2048x2048, 10 groups, 1 int
    "miri": "jw01234002001_02101_00001_mirimage",  # 1032x1024, 50 groups, 2 ints
    "tso": "jw01234003001_02101_00001_nrca1",      # 512x512, 45 groups, 50 ints
}

OFFICIAL = r"""
import json, sys
from jwst.pipeline import Detector1Pipeline
uncal, steps, outdir = json.loads(sys.argv[1])
Detector1Pipeline.call(uncal, steps=steps, save_results=True, output_dir=outdir)
"""


def measure(command, env):
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace")
    if status:
        raise RuntimeError(f"{command[:3]} failed:\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0  # MB


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "work"))
    parser.add_argument("--cases", default="nircam,miri,tso")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    program = workdir / "program"
    if not (program / "crds_cache").exists():
        print("simulating the full-frame program ...", flush=True)
        # in its own process: a child inherits its parent's peak RSS across exec, so
        # the measuring process must stay small
        subprocess.run([sys.executable, "-m", "webbflow.sim.cli", str(program),
                        "--program", "fullframe", "--seed", "7"], check=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    # PYTHONDONTWRITEBYTECODE would make every run compile webbflow's modules again
    # (~0.3 s; an installed package has its bytecode, as the official one has)
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("CRDS_") and k != "PYTHONDONTWRITEBYTECODE"}
    crds_env = dict(base_env, CRDS_PATH=str(program / "crds_cache"), CRDS_MODE="local",
                    CRDS_READONLY_CACHE="1",
                    CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu",
                    STPIPE_DISABLE_CRDS_STEPPARS="true")
    results = {}
    for case in args.cases.split(","):
        stem = CASES[case]
        uncal = program / f"{stem}_uncal.fits"
        steps = official_steps(planning.detector1_config(config, read_product(uncal).meta))
        ours_out = workdir / "ours"
        official_out = workdir / "official"
        ours_out.mkdir(parents=True, exist_ok=True)
        official_out.mkdir(parents=True, exist_ok=True)
        ours_cmd = [sys.executable, "-m", "webbflow.cli", str(uncal), "--outdir", str(ours_out),
                    "--crds-path", str(program / "crds_cache")]
        cache_dir = tempfile.mkdtemp(prefix="numba-cold-")
        # the output directory's remembered reference choices (as a workflow job gets its
        # references from the plan) go with the cold run; "first" asks CRDS again with a
        # warm numba cache: a first command-line run of a new exposure
        shutil.rmtree(ours_out / planning.STATE_DIR, ignore_errors=True)
        try:
            cold = measure(ours_cmd, dict(crds_env, NUMBA_CACHE_DIR=cache_dir))
            warm = [measure(ours_cmd, dict(crds_env, NUMBA_CACHE_DIR=cache_dir))
                    for _ in range(args.repeat)]
            shutil.rmtree(ours_out / planning.STATE_DIR, ignore_errors=True)
            first = measure(ours_cmd, dict(crds_env, NUMBA_CACHE_DIR=cache_dir))
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        official = [measure([sys.executable, "-c", OFFICIAL,
                             json.dumps([str(uncal), steps, str(official_out)])], crds_env)
                    for _ in range(args.repeat)]
        best_warm = min(warm)
        best_official = min(official)
        results[case] = {
            "official_s": best_official[0], "official_mb": best_official[1],
            "ours_cold_s": cold[0], "ours_warm_s": best_warm[0], "ours_mb": best_warm[1],
            "ours_first_s": first[0], "speedup_first": best_official[0] / first[0],
            "speedup_warm": best_official[0] / best_warm[0],
            "speedup_cold": best_official[0] / cold[0],
            "memory_fraction": best_warm[1] / best_official[1],
        }
        print(f"{case:7s} official {best_official[0]:7.1f} s {best_official[1]:7.0f} MB | "
              f"webbflow cold {cold[0]:6.1f} s, warm {best_warm[0]:6.1f} s {best_warm[1]:6.0f} MB | "
              f"speed-up {results[case]['speedup_warm']:.1f}x warm, "
              f"{results[case]['speedup_cold']:.1f}x cold, "
              f"{results[case]['speedup_first']:.1f}x asking CRDS ({first[0]:.1f} s); memory "
              f"{results[case]['memory_fraction']:.2f} of official", flush=True)
    out = workdir / "detector1_vs_official.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
