"""Points on the celestial sphere as unit vectors, shared by the footprint overlaps of
skymatch and tweakreg's alignment order."""

import numpy as np

__all__ = ["unit_vectors", "tangent_basis"]


def unit_vectors(ra, dec):
    """(n, 3) unit vectors of RA, Dec (deg), operation for operation as
    spherical_geometry's lonlat_to_vector: a corner that ends up as an overlap vertex
    then maps back to exactly the official pixel position."""
    lon, lat = np.deg2rad(np.asarray(ra, np.float64)), np.deg2rad(np.asarray(dec, np.float64))
    cos_lat = np.cos(lat)
    return np.column_stack([np.cos(lon) * cos_lat, np.sin(lon) * cos_lat, np.sin(lat)])


def tangent_basis(points):
    """(centre, e1, e2): the normalised mean direction of ``points`` (n, 3) and two unit
    vectors completing a right-handed frame there (a tangent plane's axes)."""
    centre = points.sum(axis=0)
    centre /= np.linalg.norm(centre)
    axis = np.eye(3)[np.argmin(np.abs(centre))]
    e1 = np.cross(axis, centre)
    e1 /= np.linalg.norm(e1)
    return centre, e1, np.cross(centre, e1)
