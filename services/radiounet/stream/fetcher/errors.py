"""Why a cutout could not be fetched: permanent (dead-letter it) or transient (retry later).

The classes plug into the stage errors of :mod:`radiounet.stream.errors`, so the
service loop needs no fetcher-specific handling: :class:`SourceUnavailableError`
is a :class:`~radiounet.stream.errors.TransientError`, the others are
:class:`~radiounet.stream.errors.PermanentError`. Each class has a fixed
``code``, the dead-letter reason and metric label.
"""

from __future__ import annotations

from radiounet.stream.errors import PermanentError, StageError, TransientError

__all__ = [
    "FetchError",
    "InvalidCutoutError",
    "InvalidRequestError",
    "OutsideFootprintError",
    "SourceUnavailableError",
    "position_text",
]


def position_text(ra_deg: float, dec_deg: float) -> str:
    """The position as error messages write it.

    >>> position_text(10, -45)
    'RA 10.000 Dec -45.000'
    """
    return f"RA {ra_deg:.3f} Dec {dec_deg:.3f}"


class FetchError(StageError):
    """Base of the fetcher's errors; ``code`` is short, stable and label-safe."""

    code = "fetch_error"


class InvalidRequestError(FetchError, PermanentError, ValueError):
    """The request itself is wrong (bad coordinates or size, unknown survey)."""

    code = "invalid_request"


class OutsideFootprintError(FetchError, PermanentError):
    """The survey has no data at the position (or too little of the cutout is covered)."""

    code = "outside_footprint"

    @classmethod
    def at(cls, survey: str, ra_deg: float, dec_deg: float, reason: str) -> OutsideFootprintError:
        """The error for a position, with the reason in parentheses.

        >>> str(OutsideFootprintError.at("lotss-dr2-lowres", 10, -45, "dec >= 10"))
        'RA 10.000 Dec -45.000 is outside the footprint of lotss-dr2-lowres (dec >= 10)'
        """
        where = position_text(ra_deg, dec_deg)
        return cls(f"{where} is outside the footprint of {survey} ({reason})")


class InvalidCutoutError(FetchError, PermanentError):
    """The source answered, but not with a usable image (corrupt FITS, no celestial WCS...)."""

    code = "invalid_cutout"


class SourceUnavailableError(FetchError, TransientError):
    """The source cannot answer now (connection refused, timeout, HTTP 5xx or 429).

    Attributes
    ----------
    retry_after_s : float or None
        The server's ``Retry-After``, in seconds, when it sent one.
    """

    code = "source_unavailable"

    def __init__(self, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
