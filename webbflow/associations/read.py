"""Reading an association file (generated here or delivered by MAST): its first product."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from webbflow.errors import WebbflowError


@dataclass
class Association:
    """What a stage-2 or stage-3 run needs from an association file: its type and id,
    its (first) product's name, the science and background members' file names, and any
    user catalogs for tweakreg ({member file name: catalog path beside the
    association})."""

    asn_type: str
    asn_id: str
    product: str
    members: list
    backgrounds: list = field(default_factory=list)
    tweakreg_catalogs: dict = field(default_factory=dict)


def read_association(path, text=None):
    """The association at ``path`` (``text``: its content, when already read)."""
    path = Path(path)
    try:
        asn = json.loads(path.read_text() if text is None else text)
        product = asn["products"][0]
        members, backgrounds, catalogs = [], [], {}
        for member in product["members"]:
            exptype = str(member.get("exptype", "science")).lower()
            if exptype == "background":
                backgrounds.append(member["expname"])
            if exptype != "science":
                continue
            members.append(member["expname"])
            if str(member.get("tweakreg_catalog") or "").strip():
                catalogs[Path(member["expname"]).name] = \
                    str(path.parent / member["tweakreg_catalog"])
        return Association(asn["asn_type"], asn["asn_id"], product["name"], members,
                           backgrounds, catalogs)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise WebbflowError(path, f"not a readable association: {exc!r}") from None
