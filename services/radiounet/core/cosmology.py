"""Cluster scales in the paper's cosmology (flat LambdaCDM, H0 = 70, Om = 0.3)."""

from __future__ import annotations

import math

from astropy import units as u
from astropy.cosmology import FlatLambdaCDM

__all__ = ["COSMOLOGY", "kpc_per_arcmin", "r500_kpc", "theta500_arcmin"]

#: Stuardi et al. (2024), Sec. 6.1.
COSMOLOGY = FlatLambdaCDM(H0=70, Om0=0.3)


def _check_z(z: float) -> None:
    if not (math.isfinite(z) and z > 0):
        raise ValueError(f"redshift z must be a positive number, got {z!r}")


def r500_kpc(m500_1e14: float, z: float) -> float:
    """R500 in kpc from M500 (in 1e14 solar masses) and redshift.

    R500 = (3 M500 / (4 pi 500 rho_c(z)))^(1/3).

    Examples
    --------
    >>> round(r500_kpc(7.77852, 0.224))  # PSZ2 G055.59+31.85: catalogue 1297.5 kpc
    1298
    """
    _check_z(z)
    if not (math.isfinite(m500_1e14) and m500_1e14 > 0):
        raise ValueError(f"M500 must be a positive number (1e14 Msun), got {m500_1e14!r}")
    rho_c = COSMOLOGY.critical_density(z).to(u.Msun / u.kpc**3).value
    return float((3 * m500_1e14 * 1e14 / (4 * math.pi * 500 * rho_c)) ** (1 / 3))


def kpc_per_arcmin(z: float) -> float:
    """Proper transverse scale at redshift ``z``, in kpc per arcminute."""
    _check_z(z)
    return float(COSMOLOGY.kpc_proper_per_arcmin(z).to(u.kpc / u.arcmin).value)


def theta500_arcmin(m500_1e14: float, z: float) -> float:
    """Angular radius of R500 in arcminutes.

    Examples
    --------
    >>> round(theta500_arcmin(7.77852, 0.224), 2)  # catalogue: 6.005
    6.0
    """
    return r500_kpc(m500_1e14, z) / kpc_per_arcmin(z)
