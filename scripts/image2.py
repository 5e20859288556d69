"""Stage 2 imaging of one exposure: rate -> cal (+ i2d) and their previews; the rule's
outputs name the products."""

import json
import logging
import sys

from webbflow.dqflags import PIXEL
from webbflow.errors import WebbflowError
from webbflow.io import write_products
from webbflow.io.preview import PREVIEW, write_previews
from webbflow.pipelines.image2 import run_image2
from webbflow.pipelines.memory import quiet_collector

logging.basicConfig(filename=snakemake.log[0], filemode="w", level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
quiet_collector()

plan = snakemake.params.plan  # noqa: F821
try:
    if plan["problem"]:
        raise WebbflowError(snakemake.input.rate, plan["problem"].split(": ", 1)[-1])  # noqa: F821
    refs = {reftype: snakemake.input.get(reftype, "N/A")  # noqa: F821
            for reftype in json.loads(plan["references"])}
    products = run_image2(snakemake.input.rate, refs, json.loads(plan["steps"]), PIXEL,  # noqa: F821
                          context=snakemake.config["crds"]["context_used"],  # noqa: F821
                          backgrounds=list(snakemake.input.backgrounds))  # noqa: F821
    write_products((path, products[name]) for name, path in snakemake.output.items()  # noqa: F821
                   if not name.endswith(PREVIEW))
    write_previews(snakemake.output.items(), products)  # noqa: F821
except WebbflowError as exc:
    logging.error("%s", exc)
    print(f"webbflow: {exc}", file=sys.stderr)
    sys.exit(1)
