"""Fixtures of the cutout-source tests: LoTSS-like FITS images built from the example field."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray

from radiounet.examples import example_field


class Images:
    """Builds and converts the test images (one instance per session, fields cached)."""

    #: Default centre: PSZ2 G055.59+31.85, inside LoTSS-DR2.
    ra0, dec0 = 260.6149937, 32.1354073

    def __init__(self) -> None:
        self._cache: dict[tuple[object, ...], fits.PrimaryHDU] = {}

    def field(
        self,
        *,
        size: int = 320,
        pixel_arcsec: float = 4.5,
        ra_deg: float | None = None,
        dec_deg: float | None = None,
        seed: int = 0,
    ) -> fits.PrimaryHDU:
        """A fresh 4-D LoTSS-like HDU of the example field (BUNIT, beam, RA---SIN)."""
        ra = self.ra0 if ra_deg is None else ra_deg
        dec = self.dec0 if dec_deg is None else dec_deg
        key = (size, pixel_arcsec, ra, dec, seed)
        if key not in self._cache:
            self._cache[key] = example_field(
                seed=seed, size=size, pixel_arcsec=pixel_arcsec, ra_deg=ra, dec_deg=dec
            ).to_hdu()
        hdu = self._cache[key]
        return fits.PrimaryHDU(hdu.data.copy(), header=hdu.header.copy())

    @staticmethod
    def to_bytes(hdu: fits.PrimaryHDU) -> bytes:
        buffer = io.BytesIO()
        hdu.writeto(buffer)
        return buffer.getvalue()

    @staticmethod
    def plane(hdu: fits.PrimaryHDU) -> NDArray[np.floating]:
        """The 2-D image of a (possibly 4-D) HDU."""
        return hdu.data.reshape(hdu.data.shape[-2:])

    @staticmethod
    def world(image: fits.PrimaryHDU | fits.Header, x: float, y: float) -> tuple[float, float]:
        """RA, Dec of 0-based pixel ``(x, y)`` of an HDU or a header."""
        header = image if isinstance(image, fits.Header) else image.header
        ra, dec = WCS(header).celestial.pixel_to_world_values(x, y)
        return float(ra), float(dec)


@pytest.fixture(scope="session")
def images() -> Images:
    return Images()
