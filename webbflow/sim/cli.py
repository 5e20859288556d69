"""``webbflow-synth``: write a synthetic program directory and its CRDS cache."""

import argparse
import logging
import sys
import time

from webbflow.sim.observatory import simulate_program
from webbflow.sim.program import PROGRAMS


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="webbflow-synth",
        description="Simulate a JWST program (MAST-named uncal files), the CRDS cache that "
                    "calibrates it, and the truth beside it.")
    parser.add_argument("outdir", help="program directory to create")
    parser.add_argument("--program", choices=sorted(PROGRAMS) + ["irs2"], default="demo",
                        help="demo: small mixed program (minutes on 2 cores); fullframe: "
                             "benchmark sizes; irs2: one NIRSpec IRS2 exposure (NRS1, "
                             "NRSIRS2RAPID) with its own CRDS cache")
    parser.add_argument("--seed", type=int, default=0, help="detector-model seed")
    parser.add_argument("--only", default=None,
                        help="comma-separated indices of the program's exposures to keep")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.program == "irs2":
        from webbflow.sim.irs2 import simulate_irs2_program

        start = time.perf_counter()
        path = simulate_irs2_program(args.outdir, seed=args.seed or 3)
        print(f"{path} and its CRDS context jwst_0001.pmap written in "
              f"{time.perf_counter() - start:.1f} s")
        return 0
    specs = PROGRAMS[args.program]()
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        specs = [s for i, s in enumerate(specs) if i in keep]
    start = time.perf_counter()
    context = simulate_program(args.outdir, specs, seed=args.seed)
    print(f"{len(specs)} exposures and CRDS context {context} written to {args.outdir} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
