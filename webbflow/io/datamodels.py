"""Where each datamodel keeps its values: FITS keyword and HDU per ``meta`` attribute,
extension name and dtype per array, table extensions.

The tables come from the official schemas (``tools/make_datamodel_tables.py``), so a
product webbflow writes puts every value where stdatamodels looks for it, and a product
the official pipeline wrote reads back into the same attribute names.
"""

import json
from functools import lru_cache
from pathlib import Path

_TABLES_PATH = Path(__file__).with_name("datamodel_tables.json")

@lru_cache(maxsize=1)
def _tables():
    return json.loads(_TABLES_PATH.read_text())


def model_layout(model_type):
    """The arrays, tables and keywords of one datamodel class."""
    try:
        return _tables()["models"][model_type]
    except KeyError:
        raise KeyError(f"unknown datamodel {model_type!r}") from None


def keyword_enum(path):
    return _tables()["enums"].get(path)


@lru_cache(maxsize=None)
def keywords_by_hdu(model_type):
    """{HDU name: [(meta path, FITS keyword), ...]} for one model."""
    out = {}
    for path, (keyword, hdu) in model_layout(model_type)["keywords"].items():
        out.setdefault(hdu, []).append((path, keyword))
    return out


@lru_cache(maxsize=None)
def array_hdus(model_type):
    """{attribute: (EXTNAME, dtype or None, ndim or None)} for one model."""
    arrays = model_layout(model_type)["arrays"]
    return {name: (a["hdu"], a["dtype"], a["ndim"]) for name, a in arrays.items()}


@lru_cache(maxsize=None)
def table_hdus(model_type):
    return {name: t["hdu"] for name, t in model_layout(model_type)["tables"].items()}
