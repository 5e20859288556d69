"""Write one association file (its content was decided while the DAG was built)."""

import os
from pathlib import Path

output = Path(snakemake.output[0])  # noqa: F821
tmp = output.with_name(f".{output.name}.tmp")
tmp.write_text(snakemake.params.content)  # noqa: F821
os.replace(tmp, output)
Path(snakemake.log[0]).write_text(f"wrote {output}\n")  # noqa: F821
