"""How long Snakemake takes to plan a large program: N exposures, dry run.

The exposures are hard links of a few small simulated ones under distinct MAST names
(planning reads each one's header, so the cost is the real one). Target: a 1,000-exposure
program plans in under 10 s, first run (cold header cache) and later runs.

    .venv/bin/python benchmarks/dag_scale.py [--exposures 1000]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from webbflow.sim.observatory import simulate_program  # noqa: E402
from webbflow.sim.program import demo_program  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=1000)
    parser.add_argument("--profile", default=None, help="write a cProfile of the first run here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seed_dir = Path(tmp) / "seed"
        simulate_program(seed_dir, [demo_program()[i] for i in (3, 4, 6)], seed=1)
        sources = sorted(seed_dir.glob("*_uncal.fits"))
        program = Path(tmp) / "program"
        program.mkdir()
        os.symlink(seed_dir / "crds_cache", program / "crds_cache")
        for i in range(args.exposures):
            source = sources[i % len(sources)]
            detector = source.name.split("_")[3]
            name = f"jw01234{100 + i // 100:03d}001_02101_{i % 100 + 1:05d}_{detector}_uncal.fits"
            os.link(source, program / name)
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        snakemake = ["-m", "snakemake", "-s", str(REPO / "Snakefile"),
                     "--workflow-profile", "none", "-n", "--quiet", "--cores", "16",
                     "--directory", str(program)]
        for run, label in enumerate(("first dry run (headers read)",
                                     "second dry run (headers cached)")):
            command = [sys.executable, *(profile if run == 0 else []), *snakemake]
            start = time.perf_counter()
            cpu_start = _children_cpu()
            result = subprocess.run(command, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if result.returncode:
                raise SystemExit(result.stderr[-3000:])
            # on a shared machine the wall time follows the load; the CPU time much less
            print(f"{args.exposures} exposures, {label}: {elapsed:.1f} s "
                  f"(CPU {_children_cpu() - cpu_start:.1f} s)")


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
