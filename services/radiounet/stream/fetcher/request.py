"""What the fetcher is asked for: a square cutout of a survey around a position."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from radiounet.core.cosmology import theta500_arcmin
from radiounet.stream.keys import validate_pointing_id
from radiounet.stream.messages import (
    DEFAULT_PIXEL_SCALE_ARCSEC,
    DEFAULT_SIZE_PX,
    MAX_SIZE_PX,
    MIN_SIZE_PX,
)

from .errors import InvalidRequestError

__all__ = [
    "DEFAULT_PIXEL_SCALE_ARCSEC",
    "DEFAULT_SIZE_PX",
    "MAX_SIZE_PX",
    "MIN_SIZE_PX",
    "ClusterInfo",
    "CutoutRequest",
]

#: Cutout side and pixel scale of Stuardi et al. (2024): 960 px of 4.5 arcsec (72 arcmin).


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive(label: str, value: float | None) -> None:
    if value is not None and not (_real(value) and math.isfinite(value) and value > 0):
        raise InvalidRequestError(f"{label} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ClusterInfo:
    """The galaxy cluster at a pointing (used only by the simulated source).

    R500 is ``theta500_arcmin`` when given, else computed from ``z`` and ``m500_1e14``.

    Raises
    ------
    InvalidRequestError
        A value that is not a positive number.
    """

    name: str = ""
    z: float | None = None
    m500_1e14: float | None = None
    theta500_arcmin: float | None = None

    def __post_init__(self) -> None:
        for label, field in (
            ("cluster z", "z"),
            ("cluster M500", "m500_1e14"),
            ("cluster theta500", "theta500_arcmin"),
        ):
            value = getattr(self, field)
            _positive(label, value)
            if value is not None:
                object.__setattr__(self, field, float(value))  # plain floats (numpy in, too)
        if not isinstance(self.name, str):
            raise InvalidRequestError(f"cluster name must be text, got {self.name!r}")

    def r500_arcmin(self) -> float | None:
        """Angular R500, or None when neither theta500 nor both z and M500 are known.

        >>> round(ClusterInfo(z=0.224, m500_1e14=7.77852).r500_arcmin(), 2)
        6.0
        """
        if self.theta500_arcmin is not None:
            return self.theta500_arcmin
        if self.z is not None and self.m500_1e14 is not None:
            return theta500_arcmin(self.m500_1e14, self.z)
        return None


@dataclass(frozen=True)
class CutoutRequest:
    """A square cutout of ``survey``: ``size_px`` pixels of ``pixel_scale_arcsec`` at a position.

    Attributes
    ----------
    pointing_id : str
        The pointing's id ([A-Za-z0-9._+-], see :func:`radiounet.stream.keys.validate_pointing_id`).
    survey : str
        Survey name (see :mod:`radiounet.stream.fetcher.surveys`).
    ra_deg, dec_deg : float
        Centre, ICRS degrees; ``0 <= ra < 360``, ``-90 <= dec <= 90``.
    size_px : int
        Side of the cutout, ``MIN_SIZE_PX..MAX_SIZE_PX``.
    pixel_scale_arcsec : float
        Pixel side, positive.
    cluster : ClusterInfo or None
        The cluster at the centre, if the pointing is one.

    Raises
    ------
    InvalidRequestError
        Any value out of range; the message names it.

    Examples
    --------
    >>> r = CutoutRequest("p1", "lotss-dr2-lowres", 260.6, 32.1)
    >>> r.size_px, r.size_arcmin
    (960, 72.0)
    >>> try:
    ...     CutoutRequest("p1", "lotss-dr2-lowres", 360.0, 32.1)
    ... except InvalidRequestError as exc:
    ...     print(exc.code, "-", exc)
    invalid_request - RA must be in [0, 360) degrees, got 360.0
    """

    pointing_id: str
    survey: str
    ra_deg: float
    dec_deg: float
    size_px: int = DEFAULT_SIZE_PX
    pixel_scale_arcsec: float = DEFAULT_PIXEL_SCALE_ARCSEC
    cluster: ClusterInfo | None = None

    def __post_init__(self) -> None:
        try:
            validate_pointing_id(self.pointing_id)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        if not (isinstance(self.survey, str) and self.survey.strip()):
            raise InvalidRequestError(f"survey must be a non-empty name, got {self.survey!r}")
        ra, dec = self.ra_deg, self.dec_deg
        if not (_real(ra) and math.isfinite(ra) and 0.0 <= ra < 360.0):
            raise InvalidRequestError(f"RA must be in [0, 360) degrees, got {ra!r}")
        if not (_real(dec) and math.isfinite(dec) and -90.0 <= dec <= 90.0):
            raise InvalidRequestError(f"Dec must be in [-90, 90] degrees, got {dec!r}")
        size = self.size_px
        if not (
            isinstance(size, numbers.Integral)
            and not isinstance(size, bool)
            and MIN_SIZE_PX <= size <= MAX_SIZE_PX
        ):
            raise InvalidRequestError(
                f"cutout size must be an integer of {MIN_SIZE_PX}..{MAX_SIZE_PX} pixels, "
                f"got {size!r}"
            )
        _positive("pixel scale (arcsec)", self.pixel_scale_arcsec)
        if self.cluster is not None and not isinstance(self.cluster, ClusterInfo):
            raise InvalidRequestError(f"cluster must be a ClusterInfo, got {self.cluster!r}")
        # Plain Python numbers from here on (numpy scalars in, too): equal requests compare equal.
        for name, kind in (
            ("ra_deg", float),
            ("dec_deg", float),
            ("size_px", int),
            ("pixel_scale_arcsec", float),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))

    @property
    def pixel_scale_deg(self) -> float:
        return self.pixel_scale_arcsec / 3600.0

    @property
    def size_arcmin(self) -> float:
        """Side of the cutout in arcmin."""
        return self.size_px * self.pixel_scale_arcsec / 60.0

    @property
    def centre_pixel(self) -> int:
        """0-based index (x and y) of the pixel at the requested position: ``size_px // 2``."""
        return self.size_px // 2
