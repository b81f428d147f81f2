"""What the fetcher service calls: a source of cutouts for one survey."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from astropy.io import fits

from .request import CutoutRequest

__all__ = ["CutoutSource"]


@runtime_checkable
class CutoutSource(Protocol):
    """A source of cutouts for one survey.

    ``fetch`` returns a primary HDU with 2-D float32 data on the requested grid
    (celestial WCS, the requested position at pixel ``size_px // 2``), BUNIT,
    BMAJ/BMIN/BPA when known and the ``RU*`` provenance keywords of
    :func:`~radiounet.stream.fetcher.regrid.cutout_hdu`. It raises only
    :class:`~radiounet.stream.fetcher.errors.FetchError` subclasses:
    ``InvalidRequestError``, ``OutsideFootprintError`` and ``InvalidCutoutError``
    (permanent) or ``SourceUnavailableError`` (transient: retry with back-off).
    """

    @property
    def survey(self) -> str:
        """Name of the survey served (requests for another survey are refused)."""
        ...

    def describe(self) -> str:
        """Where cutouts come from, one line (URL template, mosaic folder, simulator)."""
        ...

    def fetch(self, request: CutoutRequest) -> fits.PrimaryHDU:
        """The cutout for ``request``."""
        ...
