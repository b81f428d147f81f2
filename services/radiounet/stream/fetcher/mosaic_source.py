"""Cutouts from a folder of FITS mosaics (e.g. the LoTSS-DR2 ``low-mosaic-blanked.fits`` files).

The folder is indexed from the headers alone (shape, WCS, centre, radius); the
index is kept and re-read only for files added, removed or changed (size or
modification time), at most every ``rescan_interval_s``. A request is served
from the mosaics that contain its position: first those that hold the whole
cutout, nearest centre first (LoTSS mosaics are deepest at their centre), and
the first of them whose cutout has no blank pixel wins. Otherwise the cutout
with most data is used if at least ``min_valid_fraction`` of it has data (the
rest stays NaN, as blanked mosaic edges are), else the position is outside the
footprint. Mosaics are memory-mapped: a cutout reads only its own pixels.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from radiounet.io.fits_image import (
    InvalidImageError,
    beam_from_header,
    image_hdu,
    image_plane,
    open_2d,
)

from .errors import InvalidCutoutError, OutsideFootprintError, SourceUnavailableError
from .regrid import (
    Regridded,
    check_coverage,
    check_survey,
    cutout_hdu,
    image_unit,
    to_request_grid,
    valid_fraction,
)
from .request import CutoutRequest
from .surveys import DEFAULT_SURVEY, get_survey

__all__ = ["MosaicDirectorySource", "MosaicInfo", "read_mosaic_info"]

#: Points per edge used to measure how far a mosaic reaches from its centre.
_EDGE_POINTS = 17


@dataclass(frozen=True, eq=False)
class MosaicInfo:
    """What the index knows of a mosaic, from its header.

    Attributes
    ----------
    path : Path
    name : str
        Path relative to the folder (provenance and messages).
    stamp : (int, int)
        ``(st_mtime_ns, st_size)`` when read; a change re-reads the header.
    shape : (int, int)
        ``(ny, nx)`` of the image plane.
    wcs : astropy.wcs.WCS
        2-D celestial WCS.
    centre : SkyCoord
        Sky position of the central pixel.
    radius_deg : float
        Largest distance from the centre to the image's edge.
    pixel_scale_arcsec : float
        Geometric mean pixel side at the reference point.
    """

    path: Path
    name: str
    stamp: tuple[int, int]
    shape: tuple[int, int]
    wcs: WCS
    centre: SkyCoord
    radius_deg: float
    pixel_scale_arcsec: float


def _stamp(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_mtime_ns, stat.st_size)


def read_mosaic_info(path: Path, name: str | None = None) -> MosaicInfo:
    """Index entry of a mosaic, from its header only.

    Raises
    ------
    InvalidImageError
        Not a FITS image, several planes along an extra axis, or no usable celestial WCS
        (the celestial axes may be any two, see :func:`~radiounet.io.fits_image.image_plane`).
    """
    label = name or str(path)
    stamp = _stamp(path.stat())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)  # header fixes; data unread
            with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
                header = image_hdu(hdul, label, None).header.copy()
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        if isinstance(exc, InvalidImageError):
            raise
        raise InvalidImageError(f"{label}: not a readable FITS file ({exc})") from None
    (ny, nx), wcs = image_plane(header, label)
    centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    t = np.linspace(0.0, 1.0, _EDGE_POINTS)
    ex, ey = t * nx - 0.5, t * ny - 0.5
    xs = np.concatenate([ex, ex, np.full_like(t, -0.5), np.full_like(t, nx - 0.5)])
    ys = np.concatenate([np.full_like(t, -0.5), np.full_like(t, ny - 0.5), ey, ey])
    with np.errstate(invalid="ignore"):
        distances = np.asarray(centre.separation(wcs.pixel_to_world(xs, ys)).deg)
    finite = distances[np.isfinite(distances)]
    # Edge points off the sphere (an all-sky grid): the mosaic may reach anywhere.
    radius = float(finite.max()) if finite.size == distances.size else 180.0
    scale = float(np.sqrt(np.prod(proj_plane_pixel_scales(wcs)))) * 3600.0
    return MosaicInfo(path, label, stamp, (ny, nx), wcs, centre, radius, scale)


@dataclass(frozen=True, eq=False)
class _Candidate:
    mosaic: MosaicInfo
    whole: bool  # the whole cutout lies within the mosaic's pixel grid
    separation_deg: float


class MosaicDirectorySource:
    """Cutouts of one survey from the FITS mosaics in a folder.

    Parameters
    ----------
    directory : str or Path
        Folder of mosaics (searched with ``pattern``).
    survey : str, keyword-only
        Survey the mosaics belong to (a key of ``SURVEYS``).
    pattern : str, keyword-only
        Glob, relative to ``directory``, of the mosaic files; for a LoTSS-DR2
        download use ``"*/low-mosaic-blanked.fits"`` (one folder per mosaic).
    min_valid_fraction : float, keyword-only
        Least fraction of the cutout that must have data (else ``OutsideFootprintError``).
    rescan_interval_s : float, keyword-only
        Least time between two checks of the folder for changed files (0: every fetch).
    max_candidates : int, keyword-only
        Most mosaics tried for one request.

    Raises
    ------
    ValueError
        If ``directory`` is not a folder, or an option is out of range.
    InvalidRequestError
        An unknown survey.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        survey: str = DEFAULT_SURVEY,
        pattern: str = "**/*.fits",
        min_valid_fraction: float = 0.5,
        rescan_interval_s: float = 10.0,
        max_candidates: int = 4,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(f"mosaic folder {self.directory} does not exist")
        if not 0.0 < min_valid_fraction <= 1.0:
            raise ValueError(f"min_valid_fraction must be in (0, 1], got {min_valid_fraction!r}")
        if not (math.isfinite(rescan_interval_s) and rescan_interval_s >= 0):
            raise ValueError(f"rescan_interval_s must be >= 0, got {rescan_interval_s!r}")
        if not (isinstance(max_candidates, int) and max_candidates >= 1):
            raise ValueError(f"max_candidates must be a positive integer, got {max_candidates!r}")
        self._survey = get_survey(survey)
        self.pattern = pattern
        self.min_valid_fraction = float(min_valid_fraction)
        self.rescan_interval_s = float(rescan_interval_s)
        self.max_candidates = max_candidates
        self._lock = threading.Lock()
        self._index: dict[Path, MosaicInfo] = {}
        self._skipped: dict[str, str] = {}
        self._scanned_at = -math.inf

    @property
    def survey(self) -> str:
        return self._survey.name

    def describe(self) -> str:
        """Where cutouts come from, one line (the ``source`` of cutout messages)."""
        return f"mosaics {self.directory / self.pattern}"

    @property
    def mosaics(self) -> tuple[MosaicInfo, ...]:
        """The indexed mosaics (the index is refreshed first if due), sorted by name."""
        self.refresh(force=False)
        with self._lock:
            return tuple(sorted(self._index.values(), key=lambda m: m.name))

    @property
    def skipped(self) -> Mapping[str, str]:
        """Files matching ``pattern`` that are not usable mosaics: name -> reason."""
        self.refresh(force=False)
        with self._lock:
            return MappingProxyType(dict(self._skipped))

    def refresh(self, *, force: bool = True) -> None:
        """Re-read the headers of added or changed files and forget removed ones.

        Raises
        ------
        SourceUnavailableError
            If the folder has gone (an unmounted volume: retry later).
        """
        with self._lock:
            now = time.monotonic()
            if not force and now - self._scanned_at < self.rescan_interval_s:
                return
            if not self.directory.is_dir():
                raise SourceUnavailableError(f"mosaic folder {self.directory} is not available")
            index: dict[Path, MosaicInfo] = {}
            skipped: dict[str, str] = {}
            for path in sorted(self.directory.glob(self.pattern)):
                try:
                    stat = path.stat()
                except OSError:
                    continue  # removed while scanning
                if not path.is_file():
                    continue
                name = path.relative_to(self.directory).as_posix()
                known = self._index.get(path)
                if known is not None and known.stamp == _stamp(stat):
                    index[path] = known
                    continue
                try:
                    index[path] = read_mosaic_info(path, name)
                except (InvalidImageError, OSError) as exc:
                    skipped[name] = " ".join(str(exc).split())
            self._index, self._skipped, self._scanned_at = index, skipped, now

    def candidates(self, request: CutoutRequest) -> list[MosaicInfo]:
        """Mosaics containing the requested position, in the order they are tried."""
        position = SkyCoord(request.ra_deg * u.deg, request.dec_deg * u.deg, frame="icrs")
        half_arcsec = request.size_px * request.pixel_scale_arcsec / 2
        found: list[_Candidate] = []
        for m in self.mosaics:
            separation = float(m.centre.separation(position).deg)
            if separation > m.radius_deg:
                continue  # also keeps far-side positions away from the projection
            with np.errstate(invalid="ignore"):
                x, y = (float(v) for v in m.wcs.world_to_pixel(position))
            ny, nx = m.shape
            if not (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
                continue
            half = half_arcsec / m.pixel_scale_arcsec
            whole = x - half >= -0.5 and x + half <= nx - 0.5
            whole = whole and y - half >= -0.5 and y + half <= ny - 0.5
            found.append(_Candidate(m, whole, separation))
        found.sort(key=lambda c: (not c.whole, c.separation_deg, c.mosaic.name))
        return [c.mosaic for c in found]

    def fetch(self, request: CutoutRequest) -> fits.PrimaryHDU:
        """The cutout for ``request`` from the best mosaic (see the module doc)."""
        survey = self._survey
        check_survey(request, survey)
        candidates = self.candidates(request)[: self.max_candidates]
        if not candidates:
            raise OutsideFootprintError.at(
                survey.name,
                request.ra_deg,
                request.dec_deg,
                f"not inside any of the {len(self.mosaics)} mosaics in {self.directory}",
            )
        best: tuple[float, MosaicInfo, Regridded, fits.Header] | None = None
        problems: list[str] = []
        for m in candidates:
            try:
                data, wcs, header, _ = open_2d(m.path)
                _, per_pixel = image_unit(header, survey, m.name)
            except (InvalidImageError, InvalidCutoutError) as exc:
                problems.append(str(exc).replace(str(m.path), m.name, 1))
                continue
            grid = to_request_grid(
                data, wcs, request, projection=survey.projection, per_pixel=per_pixel
            )
            fraction = valid_fraction(grid.data)
            if best is None or fraction > best[0]:
                best = (fraction, m, grid, header)
            if fraction == 1.0:
                break
        if best is None:
            raise InvalidCutoutError("; ".join(problems))
        _, m, grid, header = best
        valid = check_coverage(
            grid.data, request, min_valid_fraction=self.min_valid_fraction, where=f"mosaic {m.name}"
        )
        bunit, _ = image_unit(header, survey, m.name)
        return cutout_hdu(
            grid,
            request,
            survey=survey,
            bunit=bunit,
            beam=beam_from_header(header) or survey.beam,
            source_kind="mosaic",
            origin=m.name,
            valid=valid,
            source_header=header,
        )
