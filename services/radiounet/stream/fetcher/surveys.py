"""The surveys cutouts can come from: normalisation profile, pixel grid, beam, footprint, server.

Only LoTSS-DR2 at 20 arcsec for now, the images Radio U-Net was applied to
(Stuardi et al. 2024, Sec. 6). Add an entry to ``SURVEYS`` for another survey;
its ``profile`` must be one of :data:`radiounet.core.normalisation.PROFILES`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from radiounet.core.normalisation import PROFILES
from radiounet.io.fits_image import Beam
from radiounet.stream.messages import DEFAULT_SURVEY

from .errors import InvalidRequestError, OutsideFootprintError

__all__ = ["DEFAULT_SURVEY", "LOTSS_DR2_LOWRES_URL", "SURVEYS", "Survey", "get_survey"]

#: The LoTSS-DR2 20-arcsec cutout service. ``pos`` and ``size`` (arcmin) are the
#: parameters of the survey team's example client (github.com/mhardcastle/lotss-cutout-api,
#: ``dr2-low-cutout.fits`` for the 20-arcsec images) and ``pos=<ra>,<dec>`` in decimal
#: degrees is how Stuardi et al. fetched their LoTSS-DR2 cluster images (their download
#: script: ``dr2-low-cutout.fits?pos=RA,DEC&size=116``). Not verified here (no network):
#: the live answer, the size limit (reported as 120 arcmin by a third-party client) and
#: the answer for a position without coverage (a 200 with an HTML page instead of FITS,
#: as third-party clients report).
LOTSS_DR2_LOWRES_URL = (
    "https://lofar-surveys.org/dr2-low-cutout.fits?pos={ra},{dec}&size={size_arcmin}"
)


@dataclass(frozen=True)
class Survey:
    """A survey's images and where to get them.

    Attributes
    ----------
    name : str
        Registry key, also the ``survey`` of requests and messages.
    profile : str
        Normalisation profile of its images (a key of ``PROFILES``).
    description : str
    pixel_scale_arcsec : float
        Native pixel side of its images.
    beam : Beam
        Restoring beam, used when an image's header has none.
    bunit : str
        Brightness unit, used when an image's header has no BUNIT.
    freq_hz : float
        Central frequency.
    rms_jy_beam : float
        Typical noise (the simulated source's noise level).
    projection : str
        Projection code of the grids built for it (``"SIN"``, as LOFAR images).
    min_dec_deg : float
        Coarse footprint: no data below this declination.
    url_template : str or None
        Default cutout-service URL (see :class:`~.http_source.HttpCutoutSource`).
    max_size_arcmin : float or None
        Largest cutout the service hands out.
    text_reply_means_outside : bool
        The service answers a position it does not cover with a text/HTML page
        (HTTP 200) instead of an error status.
    """

    name: str
    profile: str
    description: str
    pixel_scale_arcsec: float
    beam: Beam
    bunit: str
    freq_hz: float
    rms_jy_beam: float
    projection: str = "SIN"
    min_dec_deg: float = -90.0
    url_template: str | None = None
    max_size_arcmin: float | None = None
    text_reply_means_outside: bool = False

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(
                f"survey {self.name}: unknown normalisation profile {self.profile!r} "
                f"(known: {sorted(PROFILES)})"
            )

    def footprint_problem(self, ra_deg: float, dec_deg: float) -> str | None:
        """Why the position is certainly outside the survey, or None if it may be inside.

        >>> get_survey("lotss-dr2-lowres").footprint_problem(10.0, -45.0)
        'dec >= 10'
        """
        if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)) or dec_deg < self.min_dec_deg:
            return f"dec >= {self.min_dec_deg:g}"
        return None

    def check_footprint(self, ra_deg: float, dec_deg: float) -> None:
        """Raise :class:`OutsideFootprintError` if the position is certainly not covered."""
        problem = self.footprint_problem(ra_deg, dec_deg)
        if problem is not None:
            raise OutsideFootprintError.at(self.name, ra_deg, dec_deg, problem)


_LOTSS_DR2_LOWRES = Survey(
    name="lotss-dr2-lowres",
    profile="lotss-dr2-lowres",
    description="LoTSS-DR2 20-arcsec Stokes I images, 120-168 MHz (Shimwell et al. 2022)",
    pixel_scale_arcsec=4.5,
    beam=Beam(20.0 / 3600, 20.0 / 3600, 0.0),
    bunit="JY/BEAM",
    freq_hz=1.44e8,
    # The level of radiounet.examples (LoTSS-DR2 20" maps reach ~0.1 mJy/beam).
    rms_jy_beam=95e-6,
    # DR2 is two regions, centred near 12h45m +44.5 deg and 1h00m +28 deg (Shimwell et al.
    # 2022). The DR2 mosaic names in public code reach down to dec +18 deg (P002+18...), and a
    # mosaic spans ~2 deg, so nothing below +10 deg is covered. Finer (RA-dependent) limits
    # are left to the server's answer.
    min_dec_deg=10.0,
    url_template=LOTSS_DR2_LOWRES_URL,
    max_size_arcmin=120.0,
    text_reply_means_outside=True,
)

#: Surveys by name.
SURVEYS: Mapping[str, Survey] = MappingProxyType({_LOTSS_DR2_LOWRES.name: _LOTSS_DR2_LOWRES})

#: The survey of Stuardi et al. (2024), and of pointings that name none.


def get_survey(name: str) -> Survey:
    """The registered survey ``name``.

    Raises
    ------
    InvalidRequestError
        For an unknown name (the message lists the known ones).

    Examples
    --------
    >>> get_survey("lotss-dr2-lowres").profile
    'lotss-dr2-lowres'
    """
    try:
        return SURVEYS[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown survey {name!r}: known surveys are {', '.join(sorted(SURVEYS))}"
        ) from None
