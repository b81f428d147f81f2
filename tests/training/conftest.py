"""Tiny ``radiounet-sim/1`` datasets written by the tests themselves (no simulator needed).

Each field is a noisy Jy/beam image with bright disks (the "diffuse" emission,
whose footprints are the mask) and point sources (never in the mask), with a
SIN WCS and a 6-arcsec beam on 2-arcsec pixels, as the paper-6arcsec set-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

PIXEL_ARCSEC = 2.0
BEAM_ARCSEC = 6.0
NOISE_JY_BEAM = 2e-6
DISK_JY_BEAM = 1e-4
POINT_JY_BEAM = 1e-3

#: A disk every dataset's first field has: centre (row, column) and radius.
KNOWN_DISK = (250, 100, 10)


@dataclass(frozen=True)
class ToyDataset:
    path: Path
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]
    size: int
    #: (row, column, radius) of a disk in the first field.
    known_disk: tuple[int, int, int] = KNOWN_DISK


def _header(size: int, setup: str, unit: str = "JY/BEAM") -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [180.0, 50.0]
    wcs.wcs.crpix = [size / 2 + 1, size / 2 + 1]
    wcs.wcs.cdelt = [-PIXEL_ARCSEC / 3600.0, PIXEL_ARCSEC / 3600.0]
    header = wcs.to_header()
    header["BUNIT"] = unit
    header["BMAJ"] = BEAM_ARCSEC / 3600.0
    header["BMIN"] = BEAM_ARCSEC / 3600.0
    header["BPA"] = 0.0
    header["SIMSETUP"] = setup
    return header


def toy_field(
    size: int, rng: np.random.Generator, *, known_disk: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(image in Jy/beam, uint8 mask) of one field."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), dtype=bool)
    disks = [KNOWN_DISK] if known_disk else []
    for _ in range(int(rng.integers(3, 6))):
        disks.append((int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20)), 0))
    image = rng.normal(0.0, NOISE_JY_BEAM, (size, size))
    for y, x, r in disks:
        r = r or int(rng.integers(8, 20))
        disk = (yy - y) ** 2 + (xx - x) ** 2 <= r**2
        mask |= disk
        image[disk] += DISK_JY_BEAM
    for _ in range(4):
        y, x = rng.integers(0, size, 2)
        image += POINT_JY_BEAM * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.3**2))
    return image.astype(np.float32), mask.astype(np.uint8)


def write_dataset(
    root: Path,
    *,
    n_train: int = 3,
    n_test: int = 1,
    size: int = 384,
    setup: str = "paper-6arcsec",
    seed: int = 0,
    blank_corner: bool = False,
) -> ToyDataset:
    """Write a dataset folder in the ``radiounet-sim/1`` format; test fields come last."""
    rng = np.random.default_rng(seed)
    (root / "fields").mkdir(parents=True)
    entries = []
    for k in range(n_train + n_test):
        fid = f"f{k:04d}"
        image, mask = toy_field(size, rng, known_disk=k == 0)
        if blank_corner and k == 0:
            image[:30, :40] = np.nan
        header = _header(size, setup)
        names = {kind: f"fields/{fid}_{kind}.fits" for kind in ("image", "sky", "mask", "labels")}
        fits.PrimaryHDU(image, header).writeto(root / names["image"])
        sky_header = _header(size, setup, unit="JY/PIXEL")
        fits.PrimaryHDU(np.where(mask, 1e-6, 0).astype(np.float32), sky_header).writeto(
            root / names["sky"]
        )
        fits.PrimaryHDU(mask, _header(size, setup, unit="")).writeto(root / names["mask"])
        fits.PrimaryHDU(mask.astype(np.int16), _header(size, setup, unit="")).writeto(
            root / names["labels"]
        )
        entries.append(
            {
                "id": fid,
                "seed": seed * 100 + k,
                "split": "train" if k < n_train else "test",
                **names,
                "ra_deg": 180.0,
                "dec_deg": 50.0,
                "rms_jy_beam": NOISE_JY_BEAM,
                "beam_arcsec": [BEAM_ARCSEC, BEAM_ARCSEC, 0.0],
                "seconds": 0.1,
                "clusters": [],
                "sources": [],
            }
        )
    manifest = {
        "format": "radiounet-sim/1",
        "setup": {
            "name": setup,
            "image_size": size,
            "pixel_arcsec": PIXEL_ARCSEC,
            "rms_jy_beam": NOISE_JY_BEAM,
            "freq_hz": 1.44e8,
        },
        "seed": seed,
        "created": "2026-01-01T00:00:00Z",
        "software": "tests",
        "truth_threshold_jy_arcsec2": 2.5e-09,
        "fields": entries,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    ids = [e["id"] for e in entries]
    return ToyDataset(root, tuple(ids[:n_train]), tuple(ids[n_train:]), size)


@pytest.fixture(scope="session")
def make_dataset() -> Callable[..., ToyDataset]:
    """:func:`write_dataset`, for tests that need a dataset of their own."""
    return write_dataset


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> ToyDataset:
    """Three 384x384 training fields (12 tiles) and one test field."""
    return write_dataset(tmp_path_factory.mktemp("toy_dataset"), seed=0)
