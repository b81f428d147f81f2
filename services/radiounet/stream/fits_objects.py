"""FITS images stored as objects: read into memory, with errors that say which object."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from astropy.io import fits

from radiounet.io.fits_image import InvalidImageError, SkyImage, read_image
from radiounet.stream.errors import PermanentError
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb

__all__ = ["fits_bytes", "read_fits_object"]


def read_fits_object(store: ObjectStore, ref: pb.ObjectRef) -> SkyImage:
    """The 2-D image in the FITS object ``ref``, fully in memory.

    Raises
    ------
    PermanentError
        ``invalid_cutout`` for a corrupt, blank or WCS-less image (the reason
        from :func:`radiounet.io.fits_image.read_image`).
    TransientError
        If the store cannot be reached.
    """
    data = store.get_bytes(ref)
    name = f"s3://{ref.bucket}/{ref.key}"
    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            image = read_image(hdul)
            pixels = np.array(image.data, dtype=np.float32)
    except InvalidImageError as exc:
        raise PermanentError(f"{name}: {exc}", code="invalid_cutout") from None
    except (OSError, ValueError, TypeError, IndexError) as exc:
        detail = f"{name}: not a readable FITS file ({exc})"
        raise PermanentError(detail, code="invalid_cutout") from None
    return dataclasses.replace(image, data=pixels, source=name)


def fits_bytes(hdu: fits.PrimaryHDU | fits.HDUList) -> bytes:
    """Serialise an HDU (or list) to FITS bytes."""
    buf = io.BytesIO()
    hdu.writeto(buf, output_verify="silentfix")
    return buf.getvalue()
