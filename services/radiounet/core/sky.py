"""ICRS positions on a map's pixel grid, whatever the map's celestial frame.

Cluster catalogues (PSZ2, ...) give ICRS (J2000) RA/Dec, but a FITS map may be
in FK4 B1950, in galactic coordinates, or have its latitude axis first. Feeding
RA/Dec straight into the WCS as its own world coordinates puts the aperture in
the wrong place (0.65 deg off for B1950), so every position goes through
astropy's ``SkyCoord``, which honours the WCS's frame, equinox and axis order.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame
from numpy.typing import ArrayLike, NDArray

__all__ = ["icrs_to_pixel", "pixel_to_icrs"]

# Longitude types whose frame astropy derives correctly from a WCS. For others it
# fails (supergalactic) or, for ecliptic axes, silently takes ICRS.
_KNOWN_LONGITUDES = ("RA", "GLON")


def _celestial(wcs: WCS) -> WCS:
    """The celestial part of ``wcs``, once it is known to have a frame astropy can transform."""
    celestial = wcs.celestial
    known = celestial.wcs.lngtyp in _KNOWN_LONGITUDES
    try:
        wcs_to_celestial_frame(celestial)
    except ValueError:  # e.g. RADESYS GAPPT
        known = False
    if not known:
        raise ValueError(
            f"the map's celestial frame (CTYPE {list(celestial.wcs.ctype)}, RADESYS "
            f"{celestial.wcs.radesys or '-'}) is not one that astropy relates to ICRS RA/Dec "
            "(equatorial ICRS/FK5/FK4, or galactic)"
        )
    return celestial


def icrs_to_pixel(wcs: WCS, ra_deg: float, dec_deg: float) -> tuple[float, float]:
    """0-based pixel ``(x, y)`` of the ICRS position ``(ra_deg, dec_deg)`` on ``wcs``.

    NaN beyond the projection's horizon.

    Examples
    --------
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    >>> w.wcs.crval = [0.0, 0.0]
    >>> w.wcs.cdelt = [-0.01, 0.01]
    >>> w.wcs.crpix = [51.0, 51.0]
    >>> [round(v, 6) for v in icrs_to_pixel(w, 266.4049882865447, -28.936177761791473)]
    [50.0, 50.0]
    """
    position = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    x, y = _celestial(wcs).world_to_pixel(position)
    return float(x), float(y)


def pixel_to_icrs(
    wcs: WCS, x: ArrayLike, y: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """ICRS RA and Dec (degrees) of 0-based pixel positions on ``wcs``."""
    sky = _celestial(wcs).pixel_to_world(np.asarray(x, np.float64), np.asarray(y, np.float64))
    icrs = sky.icrs
    return np.asarray(icrs.ra.deg, np.float64), np.asarray(icrs.dec.deg, np.float64)
