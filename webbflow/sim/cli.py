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
    parser.add_argument("--program", choices=sorted(PROGRAMS), default="demo",
                        help="demo: small mixed program (minutes on 2 cores); fullframe: "
                             "benchmark sizes")
    parser.add_argument("--seed", type=int, default=0, help="detector-model seed")
    parser.add_argument("--only", default=None,
                        help="comma-separated indices of the program's exposures to keep")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
