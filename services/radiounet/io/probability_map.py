"""Probability maps as FITS: the input's celestial WCS plus provenance keywords.

Maps are written straight into a memory-mapped FITS file (header first, then
the data area), so a mosaic of any size is segmented without holding the map
in memory; the file appears under its final name only once complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray

from .. import __version__
from ..core.normalisation import NormalisationProfile
from .fits_image import Beam, InvalidImageError, SkyImage, beam_from_header, open_2d

__all__ = [
    "ProbabilityMap",
    "Provenance",
    "probability_header",
    "read_probability_map",
    "writing_probability_map",
]

#: Descriptive keywords carried over from the input image when present.
_COPIED_KEYS = ("OBJECT", "TELESCOP", "INSTRUME", "DATE-OBS", "MJD-OBS")
_FITS_BLOCK = 2880
_SCAN_ROWS = 1024


@dataclass(frozen=True)
class Provenance:
    """How a probability map was made (written as ``RU*`` header keywords)."""

    model_name: str
    model_version: int
    base_filters: int
    trained: bool
    profile: NormalisationProfile
    scale: float
    tile: int
    stride: int
    source: str

    def cards(self) -> list[tuple[str, object, str]]:
        p = self.profile
        return [
            ("RUSOFT", f"radiounet {__version__}", "software that made this map"),
            ("RUMODEL", self.model_name, "model name"),
            ("RUMODVER", self.model_version, "model version (TF Serving folder)"),
            ("RUBASEF", self.base_filters, "U-Net base width (filters)"),
            ("RUTRAIN", self.trained, "F: placeholder weights, not trained"),
            ("RUPROF", _fits_text(p.name), "normalisation profile"),
            ("RUVMIN", p.vmin, f"normalisation lower bound [{p.unit}]"),
            ("RUVMAX", p.vmax, f"normalisation upper bound [{p.unit}]"),
            ("RUVUNIT", p.unit, "unit the image was converted to"),
            ("RUSCALE", self.scale, "factor from stored values to RUVUNIT"),
            ("RUTILE", self.tile, "tile side [pixel]"),
            ("RUSTRIDE", self.stride, "tile stride [pixel]"),
            ("RUSRC", _fits_text(Path(self.source).name), "input image"),
        ]


def _fits_text(text: str) -> str:
    """Printable ASCII, as FITS header values must be (other characters become '?')."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:68]


def probability_header(image: SkyImage, provenance: Provenance) -> fits.Header:
    """Header of a float32 probability map for ``image``."""
    ny, nx = image.shape
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = nx
    header["NAXIS2"] = ny
    header.extend(image.wcs.to_header(relax=False), update=True)
    for key in _COPIED_KEYS:
        if key in image.header:
            header[key] = (image.header[key], image.header.comments[key])
    if image.beam is not None:
        # The beam segment used, wherever it came from (keywords, AIPS HISTORY, a BEAMS
        # table, --beam): classify needs it from the map alone.
        header["BMAJ"] = (image.beam.bmaj_deg, "[deg] restoring beam major axis FWHM")
        header["BMIN"] = (image.beam.bmin_deg, "[deg] restoring beam minor axis FWHM")
        header["BPA"] = (image.beam.bpa_deg, "[deg] restoring beam position angle")
    header["BTYPE"] = ("probability", "p(diffuse radio emission), Radio U-Net")
    header["BUNIT"] = ("", "dimensionless probability")
    header["DATE"] = (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "map written (UTC)")
    for key, value, comment in provenance.cards():
        header[key] = (value, comment)
    header.add_history("Radio U-Net probability map (Stuardi et al. 2024, MNRAS 534, 2024).")
    header.add_history(
        f"Tiles {provenance.tile}x{provenance.tile}, stride {provenance.stride}; only tile "
        "centres kept on reassembly. NaN where the input is blank."
    )
    return header


@contextlib.contextmanager
def writing_probability_map(
    path: str | Path, header: fits.Header, *, overwrite: bool = False
) -> Iterator[NDArray[np.float32]]:
    """Yield a writable memory map of the map's pixels; publish the file on success.

    The file is built under a temporary name next to ``path`` and renamed when
    the block ends without error; on error it is removed.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (use --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        header.tofile(tmp, overwrite=True)
        offset = tmp.stat().st_size
        nbytes = shape[0] * shape[1] * 4
        with tmp.open("r+b") as f:
            f.truncate(offset + math.ceil(nbytes / _FITS_BLOCK) * _FITS_BLOCK)
        data = np.memmap(tmp, dtype=">f4", mode="r+", offset=offset, shape=shape)
        yield data
        data.flush()
        del data
        # mkstemp makes the file owner-only; a published map is as readable as any new file.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ProbabilityMap:
    """A probability map read back from FITS."""

    data: NDArray[np.floating]
    wcs: WCS
    header: fits.Header
    beam: Beam | None
    source: str


def read_probability_map(source: str | Path) -> ProbabilityMap:
    """Read a probability map (values in [0, 1], NaN where blank).

    Raises
    ------
    InvalidImageError
        For unreadable files (see :func:`radiounet.io.fits_image.open_2d`) or
        values outside [0, 1].
    """
    data, wcs, header, name = open_2d(source)
    for start in range(0, data.shape[0], _SCAN_ROWS):
        block = data[start : start + _SCAN_ROWS]
        finite = block[np.isfinite(block)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise InvalidImageError(
                f"{name}: not a probability map (values from {finite.min():.3g} to "
                f"{finite.max():.3g}, expected 0..1); run `radiounet segment` on the image first"
            )
    return ProbabilityMap(
        data=data, wcs=wcs, header=header, beam=beam_from_header(header), source=name
    )
