"""Log scaling of radio images into the network's [0, 1] input range.

As in Stuardi et al. (2024, Sec. 5 step iii and Sec. 6.1): values are clipped
to ``[vmin, vmax]`` in the profile's brightness unit, then
``(log10 x - log10 vmin) / (log10 vmax - log10 vmin)``. Zero and negative
values (noise) go to 0. NaN (blanked) pixels stay NaN, so callers decide
explicitly what the network sees there and what the map says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BRIGHTNESS_UNITS",
    "PROFILES",
    "SETUP_PROFILES",
    "NormalisationProfile",
    "get_profile",
    "normalise",
]

#: Brightness units a profile may be defined in.
BRIGHTNESS_UNITS = ("Jy/beam", "Jy/pixel")


@dataclass(frozen=True)
class NormalisationProfile:
    """Clipping bounds of the log scaling for one kind of image.

    Attributes
    ----------
    name : str
        Short name used on the command line and in FITS provenance.
    vmin, vmax : float
        Brightness mapped to 0 and 1, in ``unit``; ``0 < vmin < vmax``.
    unit : str
        ``"Jy/beam"`` or ``"Jy/pixel"``; images are converted to it first.
    description : str
        What images the profile is for.
    """

    name: str
    vmin: float
    vmax: float
    unit: str
    description: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.vmin) and math.isfinite(self.vmax)):
            raise ValueError(f"profile bounds must be finite, got {self.vmin!r}..{self.vmax!r}")
        if not 0 < self.vmin < self.vmax:
            raise ValueError(
                f"profile bounds must satisfy 0 < vmin < vmax, got {self.vmin!r}..{self.vmax!r}"
            )
        if self.unit not in BRIGHTNESS_UNITS:
            raise ValueError(f"profile unit must be one of {BRIGHTNESS_UNITS}, got {self.unit!r}")


#: Built-in profiles, by name.
PROFILES: dict[str, NormalisationProfile] = {
    p.name: p
    for p in (
        NormalisationProfile(
            "lotss-dr2-lowres",
            1e-7,
            1e-2,
            "Jy/beam",
            "LoTSS-DR2 20-arcsec images (Stuardi et al. 2024, Sec. 6.1)",
        ),
        NormalisationProfile(
            "synthetic",
            1e-10,
            1e-5,
            "Jy/pixel",
            "synthetic LOFAR HBA training images (Stuardi et al. 2024, Sec. 5)",
        ),
    )
}

#: The profile for the images of each simulator set-up (``radiounet simulate --setup``).
SETUP_PROFILES: dict[str, str] = {
    "lotss-dr2-lowres": "lotss-dr2-lowres",
    "paper-6arcsec": "synthetic",
}

_CUSTOM = re.compile(r"^\s*([^:]+):([^:]+):\s*(Jy/beam|Jy/pixel)\s*$", re.IGNORECASE)


def get_profile(spec: str) -> NormalisationProfile:
    """Return a built-in profile by name, or parse a user-defined ``VMIN:VMAX:UNIT``.

    Examples
    --------
    >>> get_profile("lotss-dr2-lowres").vmax
    0.01
    >>> get_profile("1e-6:1e-1:Jy/beam").vmin
    1e-06
    """
    if spec in PROFILES:
        return PROFILES[spec]
    match = _CUSTOM.match(spec)
    if match is None:
        raise ValueError(
            f"unknown profile {spec!r}: use one of {sorted(PROFILES)} "
            "or VMIN:VMAX:UNIT with UNIT Jy/beam or Jy/pixel (e.g. 1e-7:1e-2:Jy/beam)"
        )
    try:
        vmin, vmax = float(match[1]), float(match[2])
    except ValueError as exc:
        raise ValueError(f"profile bounds must be numbers, got {spec!r}") from exc
    unit = "Jy/beam" if match[3].lower() == "jy/beam" else "Jy/pixel"
    return NormalisationProfile(spec.strip(), vmin, vmax, unit, "user-defined")


def normalise(data: NDArray[np.floating], profile: NormalisationProfile) -> NDArray[np.float32]:
    """Log-scale ``data`` (in ``profile.unit``) into [0, 1]; NaN stays NaN.

    Examples
    --------
    >>> p = get_profile("lotss-dr2-lowres")
    >>> normalise(np.array([-1.0, 1e-7, 1e-5, 1.0, np.nan]), p).tolist()
    [0.0, 0.0, 0.4000000059604645, 1.0, nan]
    """
    lo, hi = math.log10(profile.vmin), math.log10(profile.vmax)
    # One float64 working copy, updated in place: this runs on every tile and
    # temporaries were most of the tiling overhead (float32 log10 is not exact
    # enough at the bounds).
    x = np.array(data, dtype=np.float64)
    np.clip(x, profile.vmin, profile.vmax, out=x)
    with np.errstate(invalid="ignore"):
        np.log10(x, out=x)
    x -= lo
    x /= hi - lo
    return x.astype(np.float32)
