"""Stage 3 imaging of one association: cal files -> crf per member + the product's i2d;
the rule's outputs name the products."""

import json
import logging
import sys

from webbflow.dqflags import PIXEL
from webbflow.errors import WebbflowError
from webbflow.io import write_product
from webbflow.pipelines.image3 import run_image3

logging.basicConfig(filename=snakemake.log[0], filemode="w", level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")

try:
    i2d = run_image3(list(snakemake.input.cal), json.loads(snakemake.params.steps),  # noqa: F821
                     PIXEL, asn_id=snakemake.params.asn_id,  # noqa: F821
                     product_name=snakemake.params.product,  # noqa: F821
                     write_crf=lambda index, crf: write_product(snakemake.output.crf[index], crf))  # noqa: F821
    write_product(snakemake.output.i2d, i2d)  # noqa: F821
except WebbflowError as exc:
    logging.error("%s", exc)
    print(f"webbflow: {exc}", file=sys.stderr)
    sys.exit(1)
