"""Classic masks the network is compared with: a 3-sigma threshold and PyBDSF islands.

3-sigma mask (Stuardi et al. 2024, Sec. 5)
    Pixels brighter than 3 sigma, with sigma the noise rms of the image. The
    paper measures the rms "in an empty region"; here it is made automatic and
    robust: the standard deviation of all finite pixels after iterative
    3-sigma clipping about the median (:func:`radiounet.core.noise.robust_rms`),
    which rejects sources. The threshold is ``3 sigma``
    above zero (interferometric images have zero mean), not above the median.

PyBDSF islands
    ``bdsf.process_image`` with its standard island parameters
    (``thresh_isl=3``, ``thresh_pix=5``, its own adaptive rms map), stopped
    after island finding (``stop_at='isl'``: Gaussian fitting does not change
    the islands), and its ``island_mask`` export. PyBDSF prints, writes log
    files next to its input and reads the observing frequency from the
    header, so it runs on a copy in a temporary folder with its output
    silenced, and numpy's error handling is restored after it (importing PyBDSF
    sets ``divide="raise"`` process-wide). The frequency is taken from
    ``frequency_hz``, else from the header (PyBDSF's RESTFREQ, FREQ or FREQ
    axis, or the WCS keyword RESTFRQ).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import ArrayLike, NDArray

from ..core.noise import robust_rms

__all__ = [
    "PyBDSFError",
    "pybdsf_available",
    "pybdsf_island_mask",
    "sigma_mask",
]


class PyBDSFError(RuntimeError):
    """PyBDSF is missing or failed on an image (the message says why)."""


def sigma_mask(
    image: ArrayLike, *, n_sigma: float = 3.0, rms: float | None = None
) -> tuple[NDArray[np.bool_], float]:
    """The classic ``n_sigma`` mask of an image and the rms used: ``(image > n_sigma * rms, rms)``.

    Parameters
    ----------
    image : array_like
        2-D brightness (any unit; NaN pixels are never in the mask).
    n_sigma : float, keyword-only
        Threshold in units of the rms.
    rms : float, keyword-only
        Noise rms in the image's unit; measured with :func:`robust_rms` if not given.
    """
    data = np.asarray(image)
    if data.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {data.shape}")
    if not (math.isfinite(n_sigma) and n_sigma > 0):
        raise ValueError(f"n_sigma must be a positive number, got {n_sigma!r}")
    level = robust_rms(data) if rms is None else float(rms)
    if not (math.isfinite(level) and level >= 0):
        raise ValueError(f"rms must be a non-negative number, got {rms!r}")
    with np.errstate(invalid="ignore"):
        mask = np.asarray(data > n_sigma * level, dtype=bool)
    return mask, level


def _import_bdsf() -> tuple[ModuleType, Any]:
    """Import ``bdsf`` without letting it change numpy's floating-point error handling.

    Importing PyBDSF calls ``numpy.seterr(divide="raise")`` for the whole process;
    that state is returned (PyBDSF runs under it) and the caller's is restored.
    """
    saved = np.geterr()
    try:
        import bdsf

        return bdsf, np.geterr()
    finally:
        np.seterr(**saved)


def pybdsf_available() -> bool:
    """Whether the ``bdsf`` package can be imported."""
    try:
        _import_bdsf()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Point the process's stdout and stderr at /dev/null (PyBDSF prints from C and Python)."""
    streams = []
    for stream in (sys.stdout, sys.stderr):
        try:
            streams.append((stream, stream.fileno()))
        except (AttributeError, OSError, ValueError):  # replaced (e.g. captured by pytest)
            continue
    saved: list[tuple[int, int]] = []
    with open(os.devnull, "w") as null:
        try:
            for stream, fd in streams:
                stream.flush()
                saved.append((fd, os.dup(fd)))
                os.dup2(null.fileno(), fd)
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def pybdsf_island_mask(
    image_path: str | Path,
    *,
    frequency_hz: float | None = None,
    thresh_isl: float = 3.0,
    thresh_pix: float = 5.0,
) -> NDArray[np.bool_]:
    """PyBDSF's island mask of a FITS image, as a 2-D boolean array in numpy ``(y, x)`` order.

    Parameters
    ----------
    image_path : str or Path
        FITS image in Jy/beam with BMAJ/BMIN (not modified; PyBDSF runs on a copy).
    frequency_hz : float, keyword-only
        Observing frequency; by default from the header (RESTFREQ, FREQ, a FREQ
        axis or RESTFRQ).
    thresh_isl, thresh_pix : float, keyword-only
        Island and peak thresholds in units of the rms (PyBDSF's defaults).

    Raises
    ------
    PyBDSFError
        If ``bdsf`` cannot be imported, fails on the image, or returns a mask
        of another shape than the image.
    """
    path = Path(image_path)
    if not path.is_file():
        raise PyBDSFError(f"{path}: file not found")
    if frequency_hz is not None and not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise ValueError(f"frequency_hz must be a positive number, got {frequency_hz!r}")
    try:
        bdsf, bdsf_errstate = _import_bdsf()
    except Exception as exc:
        raise PyBDSFError(f"PyBDSF (package bdsf) is not available: {exc}") from exc
    with fits.open(path) as hdul:
        shape = hdul[0].data.shape[-2:]
        header = hdul[0].header
        if frequency_hz is None and "RESTFREQ" not in header and "FREQ" not in header:
            # PyBDSF reads RESTFREQ, FREQ or a FREQ axis, not the WCS standard's RESTFRQ.
            restfrq = header.get("RESTFRQ")
            if isinstance(restfrq, int | float) and restfrq > 0:
                frequency_hz = float(restfrq)
    options: dict[str, object] = {
        "thresh_isl": thresh_isl,
        "thresh_pix": thresh_pix,
        "quiet": True,
        "stop_at": "isl",
    }
    if frequency_hz is not None:
        options["frequency"] = float(frequency_hz)
    with tempfile.TemporaryDirectory(prefix="radiounet-pybdsf-") as tmp:
        copy = Path(tmp) / "image.fits"
        out = Path(tmp) / "island_mask.fits"
        shutil.copyfile(path, copy)
        cwd = os.getcwd()
        try:
            with warnings.catch_warnings(), _silenced(), np.errstate(**bdsf_errstate):
                # PyBDSF uses deprecated logging calls and leaves files open:
                # neither is ours to report, and warnings must not become errors here.
                warnings.simplefilter("ignore")
                os.chdir(tmp)
                try:
                    img = bdsf.process_image(str(copy), **options)
                    img.export_image(img_type="island_mask", outfile=str(out), clobber=True)
                    del img
                finally:
                    gc.collect()
                    os.chdir(cwd)
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise PyBDSFError(f"PyBDSF failed on {path}: {message}") from exc
        if not out.is_file():
            raise PyBDSFError(f"PyBDSF wrote no island mask for {path}")
        with fits.open(out) as hdul:
            data = np.asarray(hdul[0].data)
    mask = data.reshape(data.shape[-2:]) > 0
    if mask.shape != tuple(shape):
        raise PyBDSFError(
            f"PyBDSF island mask for {path} has shape {mask.shape}, expected {tuple(shape)}"
        )
    return mask
