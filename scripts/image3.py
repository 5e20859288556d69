"""Stage 3 imaging of one association: cal files -> crf per member, the product's i2d
and (unless switched off) its cat and segm, and the i2d's preview; the rule's outputs name
the products."""

import json
import logging
import sys

from webbflow.associations import read_association
from webbflow.dqflags import PIXEL
from webbflow.errors import WebbflowError
from webbflow.io import write_product
from webbflow.io.preview import write_previews
from webbflow.pipelines.image3 import run_image3, write_image3_products
from webbflow.pipelines.memory import quiet_collector

logging.basicConfig(filename=snakemake.log[0], filemode="w", level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
quiet_collector()

try:
    plan = snakemake.params.plan  # noqa: F821
    if plan["problem"]:
        raise WebbflowError(snakemake.input.asn, plan["problem"].split(": ", 1)[-1])  # noqa: F821
    refs = {reftype: snakemake.input.get(reftype, "N/A")  # noqa: F821
            for reftype in json.loads(plan["references"])}
    products = run_image3(list(snakemake.input.cal), json.loads(plan["steps"]),  # noqa: F821
                          PIXEL, asn_id=snakemake.params.asn_id,  # noqa: F821
                          product_name=snakemake.params.product,  # noqa: F821
                          write_crf=lambda index, crf: write_product(snakemake.output.crf[index], crf),  # noqa: F821
                          refs=refs,
                          tweakreg_catalogs=read_association(snakemake.input.asn).tweakreg_catalogs)  # noqa: F821
    write_image3_products(products, {name: getattr(snakemake.output, name)  # noqa: F821
                                     for name in products})
    write_previews(snakemake.output.items(), products)  # noqa: F821
except WebbflowError as exc:
    logging.error("%s", exc)
    print(f"webbflow: {exc}", file=sys.stderr)
    sys.exit(1)
