"""Distance on the globe, for "nearest region" decisions."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

# Mean Earth radius (IUGG): the best single radius for a sphere model; the
# error against the ellipsoid (< 0.5 %) is far below GeoIP's own accuracy.
EARTH_RADIUS_KM = 6371.0088


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees (haversine).

    Haversine rather than the spherical law of cosines because it stays
    accurate for nearby points, where clients and regions often are.
    """
    phi1, phi2 = radians(lat1), radians(lat2)
    dphi = phi2 - phi1
    dlambda = radians(lon2 - lon1)
    h = sin(dphi / 2) ** 2 + cos(phi1) * cos(phi2) * sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h)))
