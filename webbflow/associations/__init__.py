"""Associations: the grouping of exposures into level-2 and level-3 products."""

from webbflow.associations.generate import (  # noqa: F401
    Exposure,
    dumps,
    level2_associations,
    level3_associations,
)
from webbflow.associations.read import Association, read_association  # noqa: F401
