"""Reading a level-3 association (generated here or delivered by MAST)."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from webbflow.errors import WebbflowError


@dataclass
class Level3:
    """What a stage-3 run needs from an association file: its id, its (first) product's
    name, the science members' file names, and any user catalogs for tweakreg
    ({member file name: catalog path beside the association})."""

    asn_type: str
    asn_id: str
    product: str
    members: list
    tweakreg_catalogs: dict = field(default_factory=dict)


def read_level3(path, text=None):
    """The association at ``path`` (``text``: its content, when already read)."""
    path = Path(path)
    try:
        asn = json.loads(path.read_text() if text is None else text)
        product = asn["products"][0]
        members, catalogs = [], {}
        for member in product["members"]:
            if member.get("exptype", "science") != "science":
                continue
            members.append(member["expname"])
            if str(member.get("tweakreg_catalog") or "").strip():
                catalogs[Path(member["expname"]).name] = \
                    str(path.parent / member["tweakreg_catalog"])
        return Level3(asn["asn_type"], asn["asn_id"], product["name"], members, catalogs)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise WebbflowError(path, f"not a readable association: {exc!r}") from None
