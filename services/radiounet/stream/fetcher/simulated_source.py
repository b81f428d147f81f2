"""Simulated LoTSS-like cutouts for demos: a cluster at the centre, maybe with diffuse emission.

Each field is :func:`radiounet.examples.example_field` (image-plane sky: halo
and/or relic, compact sources, FR II radio galaxies, beam-correlated noise),
seeded from a hash of the pointing id, so a pointing always gives the same
cutout and different pointings give different ones. A deterministic fraction
``p_diffuse`` of pointings get diffuse emission (a halo, a relic or both); the
others only contaminants and noise. What was drawn is in the header
(``RUSIMDIF``, ``RUSIMHAL``, ``RUSIMREL``...) and from :meth:`SimulatedSkySource.truth`,
so a demo can score the pipeline against it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from radiounet.core.cosmology import theta500_arcmin
from radiounet.examples import example_field

from .regrid import Regridded, check_survey, cutout_hdu, request_wcs
from .request import CutoutRequest
from .surveys import DEFAULT_SURVEY, get_survey

__all__ = ["SimulatedSkySource", "SimulatedTruth", "pointing_seed"]

#: ``example_field`` needs at least this many pixels; smaller cutouts are cut from its centre.
_MIN_FIELD_PX = 64
#: Kinds of diffuse emission of the diffuse pointings, and their probabilities.
_KINDS = ("halo", "relic", "halo+relic")
_KIND_WEIGHTS = (0.4, 0.2, 0.4)
#: Clusters drawn for pointings without cluster data: z uniform, M500 log-uniform (1e14
#: Msun), the bulk of the PSZ2 clusters in LoTSS-DR2 (as in radiounet.simulate.sky).
_Z_RANGE = (0.05, 0.4)
_M500_RANGE = (3.0, 10.0)


def pointing_seed(pointing_id: str, salt: str = "") -> int:
    """A 63-bit seed from the pointing id: stable across runs, machines and Python versions.

    >>> pointing_seed("PSZ2_G055.59+31.85") == pointing_seed("PSZ2_G055.59+31.85")
    True
    """
    digest = hashlib.sha256(f"{salt}\0{pointing_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class SimulatedTruth:
    """What the simulated field of a pointing holds.

    Attributes
    ----------
    seed : int
        Seed of the field.
    diffuse : bool
        Whether it has diffuse emission (``halo or relic``).
    halo, relic : bool
    radio_galaxies : int
        Number of FR II radio galaxies.
    z, m500_1e14 : float
        The cluster (the request's or drawn).
    r500_arcmin : float
        Angular R500 used (the request's theta500 when given).
    """

    seed: int
    diffuse: bool
    halo: bool
    relic: bool
    radio_galaxies: int
    z: float
    m500_1e14: float
    r500_arcmin: float


class SimulatedSkySource:
    """Cutouts of a simulated, LoTSS-like sky (see the module doc).

    Parameters
    ----------
    survey : str, keyword-only
        Survey imitated: its beam and noise level, and the ``survey`` of requests.
    p_diffuse : float, keyword-only
        Fraction of pointings with diffuse emission.
    rms_jy_beam : float, keyword-only
        Noise; default the survey's typical noise.
    salt : str, keyword-only
        Mixed into the seeds: another salt gives another sky for the same ids.

    Raises
    ------
    ValueError
        An option out of range.
    InvalidRequestError
        An unknown survey.
    """

    def __init__(
        self,
        *,
        survey: str = DEFAULT_SURVEY,
        p_diffuse: float = 0.5,
        rms_jy_beam: float | None = None,
        salt: str = "",
    ) -> None:
        self._survey = get_survey(survey)
        if not 0.0 <= p_diffuse <= 1.0:
            raise ValueError(f"p_diffuse must be a probability in [0, 1], got {p_diffuse!r}")
        rms = self._survey.rms_jy_beam if rms_jy_beam is None else rms_jy_beam
        if not (math.isfinite(rms) and rms > 0):
            raise ValueError(f"rms_jy_beam must be a positive number, got {rms!r}")
        self.p_diffuse = float(p_diffuse)
        self.rms_jy_beam = float(rms)
        self.salt = salt

    @property
    def survey(self) -> str:
        return self._survey.name

    def describe(self) -> str:
        """Where cutouts come from, one line (the ``source`` of cutout messages)."""
        return f"simulated {self._survey.name}-like sky (radiounet.examples.example_field)"

    def truth(self, request: CutoutRequest) -> SimulatedTruth:
        """What the field of ``request`` holds; cheap (nothing is rendered)."""
        seed = pointing_seed(request.pointing_id, self.salt)
        # The choices have their own stream, independent of the field's pixels.
        rng = np.random.default_rng([seed, 1])
        diffuse = bool(rng.random() < self.p_diffuse)
        kind = _KINDS[int(rng.choice(len(_KINDS), p=_KIND_WEIGHTS))]
        radio_galaxies = 1 + int(rng.random() < 0.5)
        z = float(rng.uniform(*_Z_RANGE))
        m500 = float(10 ** rng.uniform(*np.log10(_M500_RANGE)))
        cluster = request.cluster
        r500 = None
        if cluster is not None:
            z = cluster.z if cluster.z is not None else z
            m500 = cluster.m500_1e14 if cluster.m500_1e14 is not None else m500
            r500 = cluster.theta500_arcmin
        if r500 is None:
            r500 = theta500_arcmin(m500, z)
        return SimulatedTruth(
            seed=seed,
            diffuse=diffuse,
            halo=diffuse and "halo" in kind,
            relic=diffuse and "relic" in kind,
            radio_galaxies=radio_galaxies,
            z=z,
            m500_1e14=m500,
            r500_arcmin=float(r500),
        )

    def fetch(self, request: CutoutRequest) -> fits.PrimaryHDU:
        """The simulated cutout of ``request``: the same for the same pointing id."""
        survey = self._survey
        check_survey(request, survey)
        # A simulated sky *of the survey*: where the survey has no data, neither does it.
        survey.check_footprint(request.ra_deg, request.dec_deg)
        truth = self.truth(request)
        size = max(request.size_px, _MIN_FIELD_PX)
        name = request.cluster.name if request.cluster is not None else ""
        field = example_field(
            seed=truth.seed,
            size=size,
            pixel_arcsec=request.pixel_scale_arcsec,
            beam_arcsec=survey.beam.bmaj_deg * 3600,
            rms_jy_beam=self.rms_jy_beam,
            ra_deg=request.ra_deg,
            dec_deg=request.dec_deg,
            z=truth.z,
            m500_1e14=truth.m500_1e14,
            name=name or request.pointing_id,
            halo=truth.halo,
            relic=truth.relic,
            radio_galaxies=truth.radio_galaxies,
            r500_arcmin=truth.r500_arcmin,
        )
        start = size // 2 - request.centre_pixel  # keeps the cluster at size_px // 2
        image = field.image[start : start + request.size_px, start : start + request.size_px]
        grid = Regridded(image, request_wcs(request, projection=survey.projection), "none")
        return cutout_hdu(
            grid,
            request,
            survey=survey,
            bunit="JY/BEAM",
            beam=survey.beam,
            source_kind="simulated",
            origin="radiounet.examples.example_field",
            valid=1.0,
            extra_cards=[
                ("RUSIMSEE", truth.seed, "simulation seed (from the pointing id)"),
                ("RUSIMDIF", truth.diffuse, "simulated diffuse emission present"),
                ("RUSIMHAL", truth.halo, "simulated radio halo present"),
                ("RUSIMREL", truth.relic, "simulated radio relic present"),
                ("RUSIMNRG", truth.radio_galaxies, "simulated FR II radio galaxies"),
                ("RUSIMZ", truth.z, "simulated cluster redshift"),
                ("RUSIMM5", truth.m500_1e14, "[1e14 Msun] simulated cluster M500"),
                ("RUSIMR5", truth.r500_arcmin, "[arcmin] simulated cluster R500"),
                ("RUSIMRMS", self.rms_jy_beam, "[Jy/beam] simulated noise rms"),
            ],
        )
