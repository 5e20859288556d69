"""The report plot of a spectrum product MAST delivered (x1d, x1dints, c1d)."""

import logging
import sys

from webbflow.errors import WebbflowError
from webbflow.io.spectra import spectrum_preview

logging.basicConfig(filename=snakemake.log[0], filemode="w", level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")

try:
    spectrum_preview(snakemake.output.plot, snakemake.input[0])  # noqa: F821
except WebbflowError as exc:
    logging.error("%s", exc)
    print(f"webbflow: {exc}", file=sys.stderr)
    sys.exit(1)
