"""Brightness units and the Gaussian restoring beam.

Radio images come in Jy/beam (or mJy/beam); the synthetic training images in
Jy/pixel. Converting between them needs the beam area in pixels.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from astropy import units as u
from numpy.typing import NDArray

__all__ = ["BUNIT_SCALE", "beam_area_pixels", "convert_brightness", "parse_bunit"]

#: Accepted BUNIT spellings (upper-cased, spaces removed) -> (unit, factor to Jy).
BUNIT_SCALE: dict[str, tuple[str, float]] = {
    "JY/BEAM": ("Jy/beam", 1.0),
    "JY/BM": ("Jy/beam", 1.0),
    "JANSKY/BEAM": ("Jy/beam", 1.0),
    "BEAM-1JY": ("Jy/beam", 1.0),
    "MJY/BEAM": ("Jy/beam", 1e-3),
    "MJY/BM": ("Jy/beam", 1e-3),
    "UJY/BEAM": ("Jy/beam", 1e-6),
    "JY/PIXEL": ("Jy/pixel", 1.0),
    "JY/PIX": ("Jy/pixel", 1.0),
    "MJY/PIXEL": ("Jy/pixel", 1e-3),
}


def parse_bunit(bunit: str) -> tuple[str, float]:
    """Return ``(unit, scale)`` such that ``data * scale`` is in ``unit`` (Jy/beam or Jy/pixel).

    Examples
    --------
    >>> parse_bunit("mJy/beam")
    ('Jy/beam', 0.001)
    """
    key = bunit.strip().replace(" ", "")
    # FITS unit strings are case-sensitive for the prefix only (mJy vs MJy); the
    # latter is never used for radio images, so m/M both mean milli here.
    upper = key.upper()
    if upper in BUNIT_SCALE:
        return BUNIT_SCALE[upper]
    # Other FITS spellings ("Jy beam-1", "Jy.beam-1", "JY BEAM-1", "mJy beam-1"): astropy
    # parses them. Headers are often upper case, so the case is folded the same way
    # as above (m/M milli) before parsing.
    folded = bunit.strip().lower().replace("jy", "Jy")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            parsed = u.Unit(folded, format="fits")
    except ValueError:
        parsed = None
    for unit, target in (("Jy/beam", u.Jy / u.beam), ("Jy/pixel", u.Jy / u.pix)):
        if parsed is not None and parsed.is_equivalent(target):
            return unit, float(parsed.to(target))
    raise ValueError(
        f"unknown brightness unit BUNIT={bunit!r}: expected Jy/beam, mJy/beam, uJy/beam or "
        "Jy/pixel (override with --bunit if the header is wrong)"
    )


def beam_area_pixels(bmaj_deg: float, bmin_deg: float, pixel_area_deg2: float) -> float:
    """Area of a Gaussian beam (FWHM ``bmaj`` x ``bmin``) in pixels.

    Examples
    --------
    >>> round(beam_area_pixels(20 / 3600, 20 / 3600, (4.5 / 3600) ** 2), 2)
    22.38
    """
    for name, value in (("bmaj", bmaj_deg), ("bmin", bmin_deg), ("pixel area", pixel_area_deg2)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return math.pi * bmaj_deg * bmin_deg / (4 * math.log(2)) / pixel_area_deg2


def convert_brightness(
    data: NDArray[np.floating],
    from_unit: str,
    to_unit: str,
    *,
    beam_area_pix: float | None = None,
) -> NDArray[np.floating]:
    """Convert ``data`` between Jy/beam and Jy/pixel (a no-op when the units agree)."""
    if from_unit == to_unit:
        return data
    if beam_area_pix is None:
        raise ValueError(
            f"converting {from_unit} to {to_unit} needs the beam (BMAJ/BMIN in the header)"
        )
    if from_unit == "Jy/beam" and to_unit == "Jy/pixel":
        return data / beam_area_pix
    if from_unit == "Jy/pixel" and to_unit == "Jy/beam":
        return data * beam_area_pix
    raise ValueError(f"cannot convert {from_unit!r} to {to_unit!r}")
