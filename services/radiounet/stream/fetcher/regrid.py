"""Putting an image onto the requested grid, and the FITS HDU every source returns.

An image already on the requested pixel scale (north up, square pixels) is cut
with :class:`astropy.nddata.Cutout2D`, without resampling: the pixel nearest the
requested position becomes the central pixel ``size_px // 2`` and values are
the source's. Any other grid is resampled with bilinear interpolation
onto a grid of the survey's projection centred exactly on the position.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from numpy.typing import NDArray

from radiounet import __version__
from radiounet.core.units import parse_bunit
from radiounet.io.fits_image import Beam

from .errors import InvalidCutoutError, InvalidRequestError, OutsideFootprintError
from .request import CutoutRequest
from .surveys import Survey

__all__ = [
    "Regridded",
    "check_coverage",
    "check_survey",
    "cutout_hdu",
    "fits_text",
    "image_unit",
    "request_wcs",
    "same_grid",
    "to_request_grid",
    "valid_fraction",
]

#: Tolerance on the pixel-scale matrix, relative to the pixel scale, for cutting
#: without resampling: 1e-3 is a 1-pixel drift across 1000 pixels.
_GRID_RTOL = 1e-3
#: Keywords copied from the source image's header when present.
_COPIED_KEYS = ("TELESCOP", "INSTRUME", "OBSERVER", "OBJECT", "DATE-OBS", "RESTFRQ")
#: Margin, in source pixels, around the region a reprojection reads (bilinear needs 1).
_READ_MARGIN = 3
#: Spacing, in target pixels, of the border points that bound the region to read.
_BORDER_STEP = 8


@dataclass(frozen=True, eq=False)
class Regridded:
    """An image on the requested grid: float32 data (NaN where the source has none)."""

    data: NDArray[np.float32]
    wcs: WCS
    method: str  # "cutout" (no resampling) or "reproject"


def fits_text(text: str) -> str:
    """Printable ASCII, as FITS header values must be (other characters become '?').

    >>> fits_text("Abell 2256 – core")
    'Abell 2256 ? core'
    """
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def check_survey(request: CutoutRequest, survey: Survey) -> None:
    """Raise :class:`InvalidRequestError` if ``request`` is for another survey than ``survey``."""
    if request.survey != survey.name:
        raise InvalidRequestError(
            f"pointing {request.pointing_id}: survey {request.survey!r} is not served by this "
            f"source (it serves {survey.name!r})"
        )


def request_wcs(
    request: CutoutRequest, *, projection: str = "SIN", radesys: str = "ICRS", equinox: float = 0.0
) -> WCS:
    """The requested grid: north up, centred on the position at pixel ``size_px // 2``.

    Examples
    --------
    >>> w = request_wcs(CutoutRequest("p", "s", 10.0, 20.0, size_px=64))
    >>> [round(float(v), 9) for v in w.pixel_to_world_values(32, 32)]
    [10.0, 20.0]
    """
    wcs = WCS(naxis=2)
    centre = request.centre_pixel + 1.0  # FITS pixels are 1-based
    wcs.wcs.ctype = [f"RA---{projection}", f"DEC--{projection}"]
    wcs.wcs.crval = [request.ra_deg, request.dec_deg]
    wcs.wcs.crpix = [centre, centre]
    wcs.wcs.cdelt = [-request.pixel_scale_deg, request.pixel_scale_deg]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = radesys
    if equinox:
        wcs.wcs.equinox = equinox
    wcs.pixel_shape = (request.size_px, request.size_px)
    wcs.wcs.set()
    return wcs


def _equatorial(wcs: WCS) -> bool:
    return bool(wcs.wcs.lngtyp == "RA" and wcs.wcs.lattyp == "DEC")


def same_grid(wcs: WCS, request: CutoutRequest) -> bool:
    """Whether ``wcs`` has the requested pixels: equatorial, north up, same square scale."""
    scale = request.pixel_scale_deg
    target = np.array([[-scale, 0.0], [0.0, scale]])
    return _equatorial(wcs) and bool(
        np.allclose(wcs.pixel_scale_matrix, target, rtol=0.0, atol=_GRID_RTOL * scale)
    )


def _position(request: CutoutRequest) -> SkyCoord:
    return SkyCoord(request.ra_deg * u.deg, request.dec_deg * u.deg, frame="icrs")


def _blank(request: CutoutRequest, projection: str) -> Regridded:
    data = np.full((request.size_px, request.size_px), np.nan, dtype=np.float32)
    return Regridded(data, request_wcs(request, projection=projection), "none")


def _cut(data: NDArray[Any], wcs: WCS, request: CutoutRequest, projection: str) -> Regridded:
    x, y = (float(v) for v in wcs.world_to_pixel(_position(request)))
    if not (math.isfinite(x) and math.isfinite(y)):
        return _blank(request, projection)
    # Cutout2D puts an integer position at index size // 2 (odd and even sizes alike).
    position = (round(x), round(y))
    n = request.size_px
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32)  # NaN fill needs floats; integer images are small
    try:
        cut = Cutout2D(
            data, position, (n, n), wcs=wcs, mode="partial", fill_value=np.nan, copy=True
        )
    except NoOverlapError:
        return _blank(request, projection)
    return Regridded(np.asarray(cut.data, dtype=np.float32), cut.wcs, "cutout")


def _border(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pixel coordinates along the edge of an ``n`` x ``n`` grid (corners included)."""
    side = np.unique(np.append(np.arange(0, n, _BORDER_STEP), n - 1)).astype(np.float64)
    lo, hi = np.full_like(side, -0.5), np.full_like(side, n - 0.5)
    xs = np.concatenate([side, side, lo, hi])
    ys = np.concatenate([lo, hi, side, side])
    return xs, ys


def _reproject(
    data: NDArray[Any], wcs: WCS, request: CutoutRequest, projection: str, per_pixel: bool
) -> Regridded:
    equatorial = _equatorial(wcs)
    # Same frame as the source where it is equatorial (FK5 J2000 and ICRS differ by
    # ~20 mas): reproject then skips a frame conversion of every output pixel.
    target = request_wcs(
        request,
        projection=projection,
        radesys=(wcs.wcs.radesys or "ICRS") if equatorial else "ICRS",
        equinox=float(wcs.wcs.equinox) if equatorial and math.isfinite(wcs.wcs.equinox) else 0.0,
    )
    n = request.size_px
    # Read only the part of the source under the target: the border of the target grid,
    # mapped into the source, bounds it (both grids map the sphere continuously).
    border = target.pixel_to_world(*_border(n))
    sx, sy = (np.asarray(v, dtype=np.float64) for v in wcs.world_to_pixel(border))
    ok = np.isfinite(sx) & np.isfinite(sy)
    if not ok.any():
        return Regridded(_blank(request, projection).data, target, "reproject")
    ny, nx = data.shape
    x0 = max(math.floor(sx[ok].min()) - _READ_MARGIN, 0)
    x1 = min(math.ceil(sx[ok].max()) + _READ_MARGIN + 1, nx)
    y0 = max(math.floor(sy[ok].min()) - _READ_MARGIN, 0)
    y1 = min(math.ceil(sy[ok].max()) + _READ_MARGIN + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return Regridded(_blank(request, projection).data, target, "reproject")
    sub = np.asarray(data[y0:y1, x0:x1], dtype=np.float32)
    sub_wcs = wcs.slice((slice(y0, y1), slice(x0, x1)))
    # World values carry over only in the same frame *and* axis order (RA first).
    out = _bilinear(sub, sub_wcs, target, n, same_frame=equatorial and wcs.wcs.lng == 0)
    if per_pixel:
        # Jy/pixel is a flux per pixel: rescale by the pixel areas. Jy/beam is a surface
        # brightness and keeps its values.
        out *= np.float32(proj_plane_pixel_area(target) / proj_plane_pixel_area(wcs))
    return Regridded(out, target, "reproject")


def _bilinear(
    data: NDArray[np.float32], wcs: WCS, target: WCS, n: int, *, same_frame: bool
) -> NDArray[np.float32]:
    """Bilinear resampling of ``data`` onto the ``n`` x ``n`` grid of ``target`` (NaN outside).

    ``scipy.ndimage.map_coordinates`` on the source pixel position of every target
    pixel: what ``reproject_interp(order="bilinear")`` does, without its dask stack.
    """
    from scipy.ndimage import map_coordinates

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    if same_frame:
        # Same celestial frame: world coordinates carry over without a frame transform.
        sx, sy = wcs.world_to_pixel_values(*target.pixel_to_world_values(xx, yy))
    else:
        sx, sy = wcs.world_to_pixel(target.pixel_to_world(xx, yy))
    out = map_coordinates(
        data,
        [np.asarray(sy), np.asarray(sx)],
        order=1,
        mode="constant",
        cval=np.nan,
        prefilter=False,
    )
    return np.asarray(out, dtype=np.float32)


def to_request_grid(
    data: NDArray[Any],
    wcs: WCS,
    request: CutoutRequest,
    *,
    projection: str = "SIN",
    per_pixel: bool = False,
) -> Regridded:
    """Put a 2-D image (``data`` with celestial ``wcs``) onto the requested grid.

    Parameters
    ----------
    data : ndarray
        2-D image, possibly a large read-only memory map: only the part under the
        cutout is read.
    wcs : astropy.wcs.WCS
        Its 2-D celestial WCS.
    request : CutoutRequest
    projection : str, keyword-only
        Projection of the grid when resampling.
    per_pixel : bool, keyword-only
        Values are Jy/pixel (rescaled by the pixel areas when resampling).

    Returns
    -------
    Regridded
        ``size_px`` x ``size_px`` float32, NaN where the source has no data.
    """
    if same_grid(wcs, request):
        return _cut(data, wcs, request, projection)
    return _reproject(data, wcs, request, projection, per_pixel)


def valid_fraction(data: NDArray[np.floating]) -> float:
    """Fraction of finite pixels.

    >>> valid_fraction(np.array([[1.0, np.nan], [2.0, 3.0]]))
    0.75
    """
    return float(np.isfinite(data).mean()) if data.size else 0.0


def check_coverage(
    data: NDArray[np.floating],
    request: CutoutRequest,
    *,
    min_valid_fraction: float,
    where: str,
) -> float:
    """The valid fraction of a cutout; raise :class:`OutsideFootprintError` if it is too low.

    ``where`` names what was searched (``"the server's cutout"``, ``"mosaic P1.fits"``).
    """
    fraction = valid_fraction(data)
    if fraction == 0.0:
        reason = f"{where} has no data there"
    elif fraction < min_valid_fraction:
        reason = (
            f"only {fraction:.0%} of the cutout has data in {where}, "
            f"{min_valid_fraction:.0%} needed"
        )
    else:
        return fraction
    raise OutsideFootprintError.at(request.survey, request.ra_deg, request.dec_deg, reason)


def image_unit(header: fits.Header, survey: Survey, name: str) -> tuple[str, bool]:
    """``(BUNIT text, whether it is per pixel)`` of an image; the survey's unit if it has none.

    Raises
    ------
    InvalidCutoutError
        For a BUNIT that is not a brightness unit.
    """
    text = header.get("BUNIT")
    if text is None or not str(text).strip():
        text = survey.bunit
    try:
        unit, _ = parse_bunit(str(text))
    except ValueError as exc:
        raise InvalidCutoutError(f"{name}: {exc}") from None
    return str(text).strip(), unit == "Jy/pixel"


def cutout_hdu(
    grid: Regridded,
    request: CutoutRequest,
    *,
    survey: Survey,
    bunit: str,
    beam: Beam | None,
    source_kind: str,
    origin: str,
    valid: float,
    source_header: fits.Header | None = None,
    extra_cards: Iterable[tuple[str, Any, str]] = (),
) -> fits.PrimaryHDU:
    """The HDU a source returns: 2-D float32 data, WCS, unit, beam and provenance.

    Provenance keywords: ``RUSOFT`` (software), ``RUSURVEY``, ``RUPROF`` (the survey's
    normalisation profile), ``RUPOINT`` (pointing id), ``RUSOURCE`` (``http``,
    ``mosaic`` or ``simulated``), ``RUORIGIN`` (URL, mosaic file or generator; long
    values use FITS CONTINUE cards), ``RUREGRID`` (``cutout`` or ``reproject``),
    ``RUVALID`` (fraction of pixels with data), ``RUREQRA``/``RUREQDEC`` (the requested
    position), then ``extra_cards``.
    """
    hdu = fits.PrimaryHDU(data=np.ascontiguousarray(grid.data, dtype=np.float32))
    header = hdu.header
    with warnings.catch_warnings():
        # Fixed or left-out non-standard keywords: the header is what astropy can write.
        warnings.simplefilter("ignore", AstropyWarning)
        header.update(grid.wcs.to_header())
    if source_header is not None:
        for key in _COPIED_KEYS:
            if key in source_header and key not in header:
                header[key] = (source_header[key], source_header.comments[key])
    if request.cluster is not None and request.cluster.name:
        header["OBJECT"] = (fits_text(request.cluster.name), "cluster at the centre")
    header.setdefault("RESTFRQ", survey.freq_hz)
    header["BTYPE"] = "Intensity"
    header["BUNIT"] = (bunit, "brightness unit")
    if beam is not None:
        header["BMAJ"] = (beam.bmaj_deg, "[deg] restoring beam major axis (FWHM)")
        header["BMIN"] = (beam.bmin_deg, "[deg] restoring beam minor axis (FWHM)")
        header["BPA"] = (beam.bpa_deg, "[deg] restoring beam position angle")
    cards: list[tuple[str, Any, str]] = [
        ("RUSOFT", f"radiounet {__version__}", "software that made this cutout"),
        ("RUSURVEY", request.survey, "survey"),
        ("RUPROF", survey.profile, "normalisation profile of the survey"),
        ("RUPOINT", request.pointing_id, "pointing id"),
        ("RUSOURCE", source_kind, "cutout source: http, mosaic or simulated"),
        ("RUORIGIN", fits_text(origin), "URL, mosaic file or generator"),
        ("RUREGRID", grid.method, "grid matched by: cutout, reproject or none"),
        ("RUVALID", round(valid, 6), "fraction of pixels with data"),
        ("RUREQRA", request.ra_deg, "[deg] requested RA (ICRS), at the central pixel"),
        ("RUREQDEC", request.dec_deg, "[deg] requested Dec (ICRS)"),
        *extra_cards,
    ]
    for key, value, comment in cards:
        header[key] = (value, _comment_that_fits(key, value, comment))
    return hdu


def _comment_that_fits(key: str, value: Any, comment: str) -> str:
    """``comment``, or "" when it would not fit on the card of a long string value."""
    with warnings.catch_warnings():
        # astropy would truncate the comment with a warning; a value never is.
        warnings.simplefilter("error", VerifyWarning)
        try:
            _ = fits.Card(key, value, comment).image
        except VerifyWarning:
            return ""
    return comment
