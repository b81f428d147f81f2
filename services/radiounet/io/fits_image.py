"""Read radio images from FITS: 2-D or LOFAR-style 4-D cubes, with WCS, unit and beam.

Every problem with a file becomes an :class:`InvalidImageError` whose one-line
message names the file and the problem, so a command line or a service can
report it as it is.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_area
from numpy.typing import NDArray

from ..core.units import beam_area_pixels, parse_bunit

__all__ = [
    "Beam",
    "InvalidImageError",
    "SkyImage",
    "beam_from_header",
    "celestial_wcs",
    "image_hdu",
    "open_2d",
    "read_header",
    "read_image",
]

#: Rows per block when scanning large (memory-mapped) images.
_SCAN_ROWS = 1024


class InvalidImageError(ValueError):
    """A FITS file that cannot be used as a radio image (the message says why)."""


@dataclass(frozen=True)
class Beam:
    """Gaussian restoring beam (FWHM axes and position angle, degrees)."""

    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float = 0.0

    def area_pixels(self, pixel_area_deg2: float) -> float:
        return beam_area_pixels(self.bmaj_deg, self.bmin_deg, pixel_area_deg2)


@dataclass(frozen=True)
class SkyImage:
    """A 2-D radio image as stored, with what is needed to interpret it.

    Attributes
    ----------
    data : ndarray
        2-D pixel values as stored (possibly a read-only memory map); multiply
        by ``scale`` to get ``unit``.
    wcs : astropy.wcs.WCS
        2-D celestial WCS.
    header : astropy.io.fits.Header
        Header of the HDU the image came from.
    unit : str
        ``"Jy/beam"`` or ``"Jy/pixel"``.
    scale : float
        Factor from stored values to ``unit`` (1e-3 for mJy/beam).
    beam : Beam or None
        Restoring beam, when the header gives one.
    source : str
        Where the image came from (for messages and provenance).
    """

    data: NDArray[np.floating]
    wcs: WCS
    header: fits.Header
    unit: str
    scale: float
    beam: Beam | None
    source: str

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    @property
    def pixel_area_deg2(self) -> float:
        return float(proj_plane_pixel_area(self.wcs))

    @property
    def pixel_scale_arcsec(self) -> float:
        """Side of a square pixel of the same area, in arcsec."""
        return math.sqrt(self.pixel_area_deg2) * 3600.0

    @property
    def beam_area_pix(self) -> float | None:
        return None if self.beam is None else self.beam.area_pixels(self.pixel_area_deg2)

    def scale_to(self, unit: str) -> float:
        """Factor that turns stored values into ``unit`` (Jy/beam or Jy/pixel)."""
        if unit == self.unit:
            return self.scale
        area = self.beam_area_pix
        if area is None:
            raise InvalidImageError(
                f"{self.source}: converting {self.unit} to {unit} needs the restoring beam, "
                "but the header has no BMAJ/BMIN"
            )
        return self.scale / area if unit == "Jy/pixel" else self.scale * area


def _open(source: str | Path) -> fits.HDUList:
    path = Path(source)
    if not path.is_file():
        raise InvalidImageError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            # Truncation is only a warning here; raising it from inside fits.open
            # would leak the file handle. The data read checks the size instead.
            warnings.simplefilter("ignore", AstropyUserWarning)
            return fits.open(path, memmap=False, mode="readonly", lazy_load_hdus=False)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidImageError(f"{path}: not a readable FITS file ({exc})") from exc


_BITPIX_DTYPE = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _map_data(h: fits.hdu.base.ExtensionHDU, path: Path | None) -> NDArray[Any]:
    """The HDU's data, memory-mapped read-only where possible.

    A plain ``np.memmap`` at the data offset holds no open file, so nothing
    leaks however long the array lives; scaled, compressed or in-memory HDUs
    are read with astropy instead.
    """
    header = h.header
    shape = tuple(int(header[f"NAXIS{i}"]) for i in range(header["NAXIS"], 0, -1))
    dtype = _BITPIX_DTYPE.get(header["BITPIX"])
    plain = (
        path is not None
        and dtype is not None
        and not isinstance(h, fits.CompImageHDU)
        and header.get("BSCALE", 1) == 1
        and header.get("BZERO", 0) == 0
    )
    if plain:
        assert path is not None and dtype is not None
        offset = int(h.fileinfo()["datLoc"])
        needed = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
        if path.stat().st_size < needed:
            raise InvalidImageError(
                f"{path}: corrupt image data (file truncated: {path.stat().st_size} bytes, "
                f"header needs {needed})"
            )
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        data = h.data
    if data is None:
        raise InvalidImageError(f"{path or '<HDUList>'}: no image data")
    return np.array(data)


def image_hdu(hdul: fits.HDUList, name: str, hdu: int | str | None) -> fits.hdu.base.ExtensionHDU:
    """The HDU ``hdu`` of ``hdul``, or the first with an image of two or more axes.

    Raises
    ------
    InvalidImageError
        If there is no such HDU (``name`` labels the file in the message).
    """
    if hdu is not None:
        try:
            chosen = hdul[hdu]
        except (KeyError, IndexError) as exc:
            raise InvalidImageError(f"{name}: no HDU {hdu!r} (file has {len(hdul)})") from exc
        candidates = [chosen]
    else:
        candidates = list(hdul)
    for h in candidates:
        if (
            isinstance(h, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU)
            and h.header.get("NAXIS", 0) >= 2
        ):
            return h
    raise InvalidImageError(f"{name}: no image data (no HDU with at least two axes)")


def _squeeze_to_2d(
    data: NDArray[np.floating], header: fits.Header, name: str
) -> NDArray[np.floating]:
    # numpy axes are FITS axes reversed: (..., STOKES, FREQ, DEC, RA).
    extra = data.shape[:-2]
    for i, n in enumerate(extra):
        if n != 1:
            axis = data.ndim - i
            ctype = header.get(f"CTYPE{axis}", f"axis {axis}")
            raise InvalidImageError(
                f"{name}: {n} planes along {ctype}; only 2-D images or cubes with "
                "degenerate (length-1) extra axes are supported"
            )
    return data.reshape(data.shape[-2:])


def _one_line(exc: BaseException) -> str:
    # wcslib's messages span several lines; errors here must stay one line.
    return " ".join(str(exc).split())


def celestial_wcs(header: fits.Header, name: str) -> WCS:
    """The celestial WCS of ``header``.

    Raises
    ------
    InvalidImageError
        If the WCS does not parse or has no celestial axes (``name`` labels the file).
    """
    try:
        with warnings.catch_warnings():
            # Non-standard but harmless keywords (e.g. old EQUINOX spellings) are common.
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
    except Exception as exc:  # astropy raises a zoo of types for broken WCS
        raise InvalidImageError(f"{name}: invalid WCS ({_one_line(exc)})") from exc
    if not wcs.has_celestial:
        raise InvalidImageError(f"{name}: no celestial WCS (no RA/DEC CTYPE1/CTYPE2 axes)")
    if sorted((wcs.wcs.lng, wcs.wcs.lat)) != [0, 1]:
        raise InvalidImageError(f"{name}: the celestial axes must be the first two image axes")
    celestial = wcs.celestial
    try:
        area = proj_plane_pixel_area(celestial)
    except Exception as exc:
        raise InvalidImageError(f"{name}: invalid WCS pixel scale ({_one_line(exc)})") from exc
    if not (math.isfinite(area) and area > 0):
        raise InvalidImageError(f"{name}: invalid WCS pixel scale (pixel area {area!r} deg^2)")
    return celestial


_AIPS_BEAM = re.compile(
    r"BMAJ\s*=\s*([-+.\dEe]+)\s+BMIN\s*=\s*([-+.\dEe]+)\s+BPA\s*=\s*([-+.\dEe]+)"
)


def beam_from_header(header: fits.Header) -> Beam | None:
    """The restoring beam from BMAJ/BMIN/BPA, or from AIPS CLEAN HISTORY cards; None if absent."""
    values: tuple[Any, ...]
    if "BMAJ" in header and "BMIN" in header:
        values = (header["BMAJ"], header["BMIN"], header.get("BPA", 0.0))
    else:
        # AIPS writes the beam only into HISTORY; the last CLEAN wins.
        found = [m.groups() for h in header.get("HISTORY", []) if (m := _AIPS_BEAM.search(str(h)))]
        if not found:
            return None
        values = found[-1]
    try:
        beam = Beam(float(values[0]), float(values[1]), float(values[2]))
    except (TypeError, ValueError):
        return None
    if not (beam.bmaj_deg > 0 and beam.bmin_deg > 0):
        return None
    return beam


def _has_finite(data: NDArray[np.floating]) -> bool:
    for start in range(0, data.shape[0], _SCAN_ROWS):
        if np.isfinite(data[start : start + _SCAN_ROWS]).any():
            return True
    return False


def open_2d(
    source: str | Path | fits.HDUList, *, hdu: int | str | None = None
) -> tuple[NDArray[np.floating], WCS, fits.Header, str]:
    """Open the 2-D image of a FITS file: ``(data, celestial WCS, header, name)``.

    Degenerate FREQ/STOKES axes are dropped; data stay memory-mapped where
    astropy can (unscaled floating point). At least one finite pixel is required.

    Raises
    ------
    InvalidImageError
        Not a FITS file, no image HDU, non-degenerate extra axes, no celestial
        WCS, or every pixel NaN.
    """
    path = None if isinstance(source, fits.HDUList) else Path(source)
    name = "<HDUList>" if path is None else str(path)
    hdul = source if isinstance(source, fits.HDUList) else _open(source)
    try:
        h = image_hdu(hdul, name, hdu)
        header = h.header.copy()
        try:
            raw = _map_data(h, path)
        except (OSError, ValueError, TypeError, AstropyUserWarning) as exc:
            if isinstance(exc, InvalidImageError):
                raise
            raise InvalidImageError(f"{name}: corrupt image data ({exc})") from exc
    finally:
        if path is not None:
            hdul.close()
    if not np.issubdtype(raw.dtype, np.number):
        raise InvalidImageError(f"{name}: image data are not numeric ({raw.dtype})")
    data = _squeeze_to_2d(raw, header, name)
    wcs = celestial_wcs(header, name)
    if not _has_finite(data):
        raise InvalidImageError(f"{name}: every pixel is NaN or infinite (blank image)")
    return data, wcs, header, name


def read_header(source: str | Path, *, hdu: int | str | None = None) -> fits.Header:
    """The header of the image HDU :func:`open_2d` would read, without reading the pixels.

    Raises
    ------
    InvalidImageError
        Not a FITS file, or no image HDU.
    """
    hdul = _open(source)
    try:
        return image_hdu(hdul, str(source), hdu).header.copy()
    finally:
        hdul.close()


def read_image(
    source: str | Path | fits.HDUList,
    *,
    hdu: int | str | None = None,
    bunit: str | None = None,
) -> SkyImage:
    """Read a radio image for segmentation.

    Parameters
    ----------
    source : path or HDUList
        FITS file (2-D, or 3-/4-D with degenerate FREQ/STOKES axes).
    hdu : int or str, keyword-only
        HDU to read; default the first with image data.
    bunit : str, keyword-only
        Brightness unit overriding the header's BUNIT (e.g. ``"mJy/beam"``).

    Raises
    ------
    InvalidImageError
        For any unusable file, with a one-line reason (see :func:`open_2d`),
        a missing or unknown BUNIT.
    """
    data, wcs, header, name = open_2d(source, hdu=hdu)
    unit_text = bunit if bunit is not None else header.get("BUNIT")
    if unit_text is None or not str(unit_text).strip():
        raise InvalidImageError(f"{name}: no BUNIT in the header; give the unit with --bunit")
    try:
        unit, scale = parse_bunit(str(unit_text))
    except ValueError as exc:
        raise InvalidImageError(f"{name}: {exc}") from exc
    return SkyImage(
        data=data,
        wcs=wcs,
        header=header,
        unit=unit,
        scale=scale,
        beam=beam_from_header(header),
        source=name,
    )
