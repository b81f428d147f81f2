"""Cutout sources of the fetcher service: a pointing in, a 2-D FITS cutout out.

The fetcher turns a pointing message into a :class:`CutoutRequest` and asks a
:class:`CutoutSource` for it; the source returns a primary HDU on exactly the
requested grid (``size_px`` square pixels of ``pixel_scale_arcsec``, the
position at pixel ``size_px // 2``), with BUNIT, beam and ``RU*`` provenance
keywords. Sources:

- :class:`HttpCutoutSource`: a cutout web service (LoTSS-DR2 by default);
- :class:`MosaicDirectorySource`: a folder of FITS mosaics;
- :class:`SimulatedSkySource`: a deterministic LoTSS-like sky, for demos.

They raise only :class:`FetchError` subclasses, each with a stable ``code``:
``invalid_request``, ``outside_footprint``, ``invalid_cutout`` (permanent) and
``source_unavailable`` (transient: retry with back-off).
"""

from .errors import (
    FetchError,
    InvalidCutoutError,
    InvalidRequestError,
    OutsideFootprintError,
    SourceUnavailableError,
)
from .http_source import HttpCutoutSource
from .mosaic_source import MosaicDirectorySource
from .request import ClusterInfo, CutoutRequest
from .simulated_source import SimulatedSkySource, SimulatedTruth
from .source import CutoutSource
from .surveys import DEFAULT_SURVEY, SURVEYS, Survey, get_survey

__all__ = [
    "DEFAULT_SURVEY",
    "SURVEYS",
    "ClusterInfo",
    "CutoutRequest",
    "CutoutSource",
    "FetchError",
    "HttpCutoutSource",
    "InvalidCutoutError",
    "InvalidRequestError",
    "MosaicDirectorySource",
    "OutsideFootprintError",
    "SimulatedSkySource",
    "SimulatedTruth",
    "SourceUnavailableError",
    "Survey",
    "get_survey",
]
