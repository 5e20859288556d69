"""Product and reference-file I/O. Only ``io``, ``crds`` and ``associations`` touch files."""

from webbflow.io.products import (  # noqa: F401
    Product,
    flatten_meta,
    get_meta,
    read_product,
    read_wcs,
    set_meta,
    write_product,
    write_products,
)
