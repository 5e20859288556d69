"""Stage 1 of one exposure: uncal -> rate + rateints (calwebb_detector1 / calwebb_tso1), or
uncal -> dark (calwebb_dark) for dark exposures; the rule's outputs name the products."""

import json
import logging
import sys

from webbflow.cli import warm_numba
from webbflow.pipelines.memory import quiet_collector

quiet_collector()
warm_numba()  # before the heavy imports, which it overlaps (see webbflow.cli)

import numba  # noqa: E402

from webbflow.dqflags import PIXEL  # noqa: E402
from webbflow.errors import WebbflowError  # noqa: E402
from webbflow.io import write_products  # noqa: E402
from webbflow.io.preview import PREVIEW, write_previews  # noqa: E402
from webbflow.pipelines.detector1 import check_raw_exposure, run_stage1  # noqa: E402

logging.basicConfig(filename=snakemake.log[0], filemode="w", level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
numba.set_num_threads(snakemake.threads)  # noqa: F821

plan = snakemake.params.plan  # noqa: F821
try:
    check_raw_exposure(snakemake.input.uncal)  # noqa: F821
    if plan["problem"]:
        raise WebbflowError(snakemake.input.uncal, plan["problem"].split(": ", 1)[-1])  # noqa: F821
    refs = {reftype: snakemake.input.get(reftype, "N/A")  # noqa: F821
            for reftype in json.loads(plan["references"])}
    products = run_stage1(snakemake.input.uncal, refs, json.loads(plan["steps"]), PIXEL,  # noqa: F821
                          context=snakemake.config["crds"]["context_used"])  # noqa: F821
    missing = [name for name in snakemake.output.keys()  # noqa: F821
               if not name.endswith(PREVIEW) and name not in products]
    if missing:
        # e.g. save_opt with algorithm LIKELY on a < 4-group exposure: OLS_C ran, and its
        # optional product is fitopt, not likely_chisq
        raise WebbflowError(snakemake.input.uncal,  # noqa: F821
                            f"no {', '.join(missing)} product: this exposure made "
                            f"{', '.join(sorted(products))} (ramp_fit algorithm fallback?)")
    write_products((path, products[name]) for name, path in snakemake.output.items()  # noqa: F821
                   if not name.endswith(PREVIEW))
    write_previews(snakemake.output.items(), products)  # noqa: F821
except WebbflowError as exc:
    logging.error("%s", exc)
    print(f"webbflow: {exc}", file=sys.stderr)
    sys.exit(1)
