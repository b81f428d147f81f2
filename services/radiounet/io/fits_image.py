"""Read radio images from FITS: 2-D or LOFAR-style 4-D cubes, with WCS, unit and beam.

Every problem with a file becomes an :class:`InvalidImageError` whose one-line
message names the file and the problem, so a command line or a service can
report it as it is.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_area
from numpy.typing import NDArray

from ..core.units import beam_area_pixels, parse_bunit

__all__ = [
    "Beam",
    "ImageWarning",
    "InvalidImageError",
    "SkyImage",
    "beam_from_header",
    "image_hdu",
    "image_plane",
    "open_2d",
    "read_header",
    "read_image",
]

#: Rows per block when scanning large (memory-mapped) images.
_SCAN_ROWS = 1024


class InvalidImageError(ValueError):
    """A FITS file that cannot be used as a radio image (the message says why)."""


class ImageWarning(UserWarning):
    """A FITS file that is used, but with a guess the user should know about (one line)."""


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
                "but the header has none (no BMAJ/BMIN, AIPS CLEAN HISTORY or CASA BEAMS "
                "table); segment takes it as --beam"
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


def _is_compressed(path: Path) -> bool:
    # astropy opens gzip/bzip2/lzma/zip files transparently, but their bytes cannot
    # be memory-mapped (nor checked against the header's size): a FITS file as
    # stored starts with its first card, SIMPLE.
    with path.open("rb") as f:
        return f.read(6) != b"SIMPLE"


def _map_data(h: fits.hdu.base.ExtensionHDU, path: Path | None) -> NDArray[Any]:
    """The HDU's data, memory-mapped read-only where possible.

    A plain ``np.memmap`` at the data offset holds no open file, so nothing
    leaks however long the array lives; scaled, blanked (integer BLANK),
    compressed or in-memory HDUs are read with astropy instead, which applies
    BSCALE/BZERO and turns BLANK values into NaN.
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
        and not (header["BITPIX"] > 0 and "BLANK" in header)
        and not _is_compressed(path)
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


def _one_line(exc: BaseException) -> str:
    # wcslib's messages span several lines; errors here must stay one line.
    return " ".join(str(exc).split())


def _full_wcs(header: fits.Header, name: str) -> WCS:
    try:
        with warnings.catch_warnings():
            # Non-standard but harmless keywords (e.g. old EQUINOX spellings) are common.
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
    except Exception as exc:  # astropy raises a zoo of types for broken WCS
        raise InvalidImageError(f"{name}: invalid WCS ({_one_line(exc)})") from exc
    if not wcs.has_celestial:
        raise InvalidImageError(f"{name}: no celestial WCS (no RA/DEC CTYPE1/CTYPE2 axes)")
    return wcs


def image_plane(header: fits.Header, name: str) -> tuple[tuple[int, int], WCS]:
    """Shape ``(ny, nx)`` and celestial WCS of the image plane of ``header``.

    The celestial axes may be any two FITS axes; every other axis must have
    length 1 (degenerate FREQ/STOKES axes, wherever they are).

    Raises
    ------
    InvalidImageError
        If the WCS does not parse, has no celestial axes, or another axis has
        several planes (``name`` labels the file).
    """
    wcs = _full_wcs(header, name)
    naxis = int(header.get("NAXIS", 0))
    lengths = [int(header.get(f"NAXIS{i}", 1)) for i in range(1, naxis + 1)]
    celestial = sorted((wcs.wcs.lng, wcs.wcs.lat))
    if celestial[1] >= naxis:
        raise InvalidImageError(
            f"{name}: the celestial WCS axes ({wcs.wcs.lng + 1}, {wcs.wcs.lat + 1}) are not "
            f"among the image's {naxis} axes"
        )
    for axis, n in enumerate(lengths):  # FITS order, so the first offending axis is named
        if axis not in celestial and n != 1:
            ctype = header.get(f"CTYPE{axis + 1}", f"axis {axis + 1}")
            raise InvalidImageError(
                f"{name}: {n} planes along {ctype}; only 2-D images or cubes with "
                "degenerate (length-1) extra axes are supported"
            )
    # numpy axes are FITS axes reversed, and wcs.celestial keeps the FITS order.
    return (lengths[celestial[1]], lengths[celestial[0]]), _celestial(wcs, name)


def _celestial(wcs: WCS, name: str) -> WCS:
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


def _beams_table(hdul: fits.HDUList, name: str) -> Beam | None:
    """The beam of a CASA ``BEAMS`` table (per-plane beams), for the single plane read.

    A single-plane image has one row; a table of several (kept from the cube the
    plane was cut from) cannot say which is this plane, so their median is taken,
    with an :class:`ImageWarning` when they differ.
    """
    table = next((h for h in hdul if isinstance(h, fits.BinTableHDU) and h.name == "BEAMS"), None)
    if table is None or table.data is None or len(table.data) == 0:
        return None
    try:
        values = [
            (
                np.asarray(table.data[key], np.float64) * u.Unit(table.columns[key].unit or unit)
            ).to_value(u.deg)
            for key, unit in (("BMAJ", "arcsec"), ("BMIN", "arcsec"), ("BPA", "deg"))
        ]
    except (KeyError, ValueError, u.UnitsError):
        return None  # not a beams table we understand: as if there were none
    beam = Beam(*(float(np.median(v)) for v in values))
    if any(np.ptp(v) > 0 for v in values):
        warnings.warn(
            f"{name}: the BEAMS table has {len(values[0])} different beams for a single-plane "
            f'image; using their median, BMAJ {beam.bmaj_deg * 3600:.2f}" BMIN '
            f'{beam.bmin_deg * 3600:.2f}" BPA {beam.bpa_deg:.1f} deg',
            ImageWarning,
            stacklevel=3,
        )
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

    Degenerate (length-1) axes such as FREQ/STOKES are dropped wherever they
    are; data stay memory-mapped where astropy can (unscaled, unblanked,
    uncompressed). At least one finite pixel is required. The header is the
    HDU's as stored, except that a beam from a CASA ``BEAMS`` table is added as
    BMAJ/BMIN/BPA when the header has none, so :func:`beam_from_header` finds it.

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
        if not ("BMAJ" in header and "BMIN" in header) and (beam := _beams_table(hdul, name)):
            for key, value in zip(("BMAJ", "BMIN", "BPA"), astuple(beam), strict=True):
                header[key] = (value, "[deg] from the CASA BEAMS table")
    finally:
        if path is not None:
            hdul.close()
    if not np.issubdtype(raw.dtype, np.number):
        raise InvalidImageError(f"{name}: image data are not numeric ({raw.dtype})")
    shape, wcs = image_plane(header, name)
    data = raw.reshape(shape)  # only length-1 axes are dropped
    if not _has_finite(data):
        raise InvalidImageError(f"{name}: every pixel is NaN or infinite (blank image)")
    return data, wcs, header, name


def _blank_infinities(data: NDArray[np.floating]) -> NDArray[np.floating]:
    """``data`` with +-inf as NaN: blanked like NaN, never counted or summed.

    Only an image that has any is copied into memory (a memory map is read-only).
    """
    if not np.issubdtype(data.dtype, np.floating):
        return data
    rows = range(0, data.shape[0], _SCAN_ROWS)
    if not any(np.isinf(data[start : start + _SCAN_ROWS]).any() for start in rows):
        return data
    copy = np.array(data)
    copy[np.isinf(copy)] = np.nan
    return copy


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

    Blanked pixels (NaN, +-inf, or an integer BLANK value) are NaN in ``data``.

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
    data = _blank_infinities(data)
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
