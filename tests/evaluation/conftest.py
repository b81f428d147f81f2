"""A tiny simulated dataset (``radiounet-sim/1``) and a tiny model, for the evaluation tests."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from radiounet.core.normalisation import PROFILES, normalise
from radiounet.model.repository import ModelVersion, resolve_model

SIZE = 384
PIXEL_ARCSEC = 2.0
BEAM_ARCSEC = 6.0
BEAM_AREA_PIX = math.pi * BEAM_ARCSEC**2 / (4 * math.log(2)) / PIXEL_ARCSEC**2  # 10.2
BEAM_SIGMA_PIX = BEAM_ARCSEC / PIXEL_ARCSEC / math.sqrt(8 * math.log(2))
TRUTH_JY_ARCSEC2 = 2.5e-9
TRUTH_JY_PIX = TRUTH_JY_ARCSEC2 * PIXEL_ARCSEC**2  # 1e-8, the paper's
THETA500_ARCMIN = 1.0  # 30 pixels

YY, XX = np.mgrid[:SIZE, :SIZE].astype(float)

# Each source: (id, class, cluster, x, y, sigma_x, sigma_y, peak Jy/pixel, label).
Source = tuple[int, str, str | None, float, float, float, float, float, int]

FIELDS: dict[str, dict[str, Any]] = {
    "f0000": {
        "split": "test",
        "clusters": [
            ("c0", 130.0, 190.0, True, ["halo", "relic"]),
            ("c1", 300.0, 300.0, False, []),  # hosts only a radio galaxy
            ("c2", 300.0, 80.0, False, []),  # hosts nothing
        ],
        "sources": [
            (1, "halo", "c0", 130.0, 190.0, 8.0, 8.0, 1e-6, 1),
            (2, "relic", "c0", 175.0, 190.0, 2.5, 10.0, 2e-6, 2),  # 1.5 R500 out, tangential
            (3, "filament", None, 90.0, 330.0, 25.0, 3.0, 5e-7, 3),
            (4, "relic", None, 200.0, 40.0, 1.0, 1.0, 2e-8, 4),  # footprint under a beam
            (5, "fri", "c1", 300.0, 300.0, 6.0, 2.0, 1e-4, 0),
            (6, "compact", None, 60.0, 60.0, 0.0, 0.0, 5e-4, 0),
        ],
    },
    "f0001": {
        "split": "test",
        "clusters": [
            ("c0", 192.0, 192.0, True, ["halo"]),
            ("c1", 60.0, 320.0, False, []),
        ],
        "sources": [
            (1, "halo", "c0", 192.0, 192.0, 10.0, 10.0, 8e-7, 1),
            (2, "tailed", "c1", 60.0, 320.0, 2.0, 7.0, 1e-4, 0),
        ],
    },
    "f0002": {
        "split": "train",
        "clusters": [("c0", 192.0, 192.0, True, ["halo"])],
        "sources": [(1, "halo", "c0", 192.0, 192.0, 10.0, 10.0, 8e-7, 1)],
    },
}


def header(kind: str, seed: int) -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [180.0, 50.0]
    wcs.wcs.cdelt = [-PIXEL_ARCSEC / 3600, PIXEL_ARCSEC / 3600]
    wcs.wcs.crpix = [SIZE / 2 + 1, SIZE / 2 + 1]
    h = wcs.to_header()
    h["BMAJ"] = h["BMIN"] = BEAM_ARCSEC / 3600
    h["BPA"] = 0.0
    h["BUNIT"] = {"image": "JY/BEAM", "sky": "JY/PIXEL"}.get(kind, "")
    h["SIMSETUP"] = "paper-6arcsec"
    h["SIMSEED"] = seed
    return h


def source_map(s: Source) -> np.ndarray:
    _, _, _, x, y, sx, sy, peak, _ = s
    if sx == 0:
        out = np.zeros((SIZE, SIZE))
        out[int(y), int(x)] = peak
        return out
    return peak * np.exp(-0.5 * (((XX - x) / sx) ** 2 + ((YY - y) / sy) ** 2))


def write_dataset(folder: Path, *, oracle: bool = False, rms_jy_beam: float = 2e-6) -> Path:
    """A tiny ``radiounet-sim/1`` dataset (2 test fields, 1 training field).

    ``oracle``: the image is the sky itself (no beam, noise 1e-12 Jy/beam), so that
    thresholding the image at the truth threshold reproduces the reference mask
    plus the radio galaxies.
    """
    (folder / "fields").mkdir(parents=True)
    entries = []
    for k, (fid, spec) in enumerate(FIELDS.items()):
        diffuse = [s for s in spec["sources"] if s[8] > 0]
        contaminants = [s for s in spec["sources"] if s[8] == 0]
        maps = np.array([source_map(s) for s in diffuse])
        sky = maps.sum(axis=0) + sum(source_map(s) for s in contaminants)
        mask = maps.sum(axis=0) > TRUTH_JY_PIX
        labels = np.where(mask, np.array([s[8] for s in diffuse])[maps.argmax(axis=0)], 0)
        rng = np.random.default_rng(k)
        if oracle:
            image = sky * BEAM_AREA_PIX + rng.normal(0.0, 1e-12, sky.shape)
        else:
            noise = gaussian_filter(rng.normal(size=sky.shape), BEAM_SIGMA_PIX)
            image = gaussian_filter(sky, BEAM_SIGMA_PIX) * 2 * math.pi * BEAM_SIGMA_PIX**2
            image = image + noise * (rms_jy_beam / noise.std())
        files = {kind: f"fields/{fid}_{kind}.fits" for kind in ("image", "sky", "mask", "labels")}
        for kind, data in (
            ("image", image.astype(np.float32)),
            ("sky", sky.astype(np.float32)),
            ("mask", mask.astype(np.uint8)),
            ("labels", labels.astype(np.int16)),
        ):
            fits.writeto(folder / files[kind], data, header(kind, k))
        entries.append(
            {
                "id": fid,
                "seed": k,
                "split": spec["split"],
                **files,
                "ra_deg": 180.0,
                "dec_deg": 50.0,
                "rms_jy_beam": rms_jy_beam,
                "beam_arcsec": [BEAM_ARCSEC, BEAM_ARCSEC, 0.0],
                "seconds": 0.1,
                "clusters": [
                    {
                        "id": cid,
                        "ra_deg": 180.0,
                        "dec_deg": 50.0,
                        "x": x,
                        "y": y,
                        "z": 0.2,
                        "m500_1e14": 3.0,
                        "theta500_arcmin": THETA500_ARCMIN,
                        "has_diffuse": pos,
                        "hosts": hosts,
                    }
                    for cid, x, y, pos, hosts in spec["clusters"]
                ],
                "sources": [
                    {
                        "id": sid,
                        "class": cls,
                        "diffuse": label > 0,
                        "cluster": cl,
                        "x": x,
                        "y": y,
                        "flux_jy": float(source_map(s).sum()),
                        "label": label,
                    }
                    for s in spec["sources"]
                    for sid, cls, cl, x, y, _, _, _, label in [s]
                ],
            }
        )
    manifest = {
        "format": "radiounet-sim/1",
        "setup": {
            "name": "paper-6arcsec",
            "image_size": SIZE,
            "pixel_arcsec": PIXEL_ARCSEC,
            "rms_jy_beam": rms_jy_beam,
            "freq_hz": 1.44e8,
        },
        "seed": 12345,
        "created": "2026-01-01T00:00:00Z",
        "software": "test fixture",
        "truth_threshold_jy_arcsec2": TRUTH_JY_ARCSEC2,
        "fields": entries,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("sim") / "data")


@pytest.fixture(scope="module")
def oracle_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("oracle") / "data", oracle=True)


@pytest.fixture(scope="module")
def tiny_model(tiny_model_repo: Path) -> ModelVersion:
    """The suite's 2-filter Radio U-Net with seeded random weights (metadata.trained false).

    Read only: a test that changes a version's files copies ``tiny_model_repo`` first.
    """
    return resolve_model(tiny_model_repo)


@pytest.fixture
def oracle_predictor() -> Callable[[np.ndarray], np.ndarray]:
    """p = 1 where the normalised tile is above the truth threshold (synthetic profile)."""
    level = float(normalise(np.array([TRUTH_JY_PIX]), PROFILES["synthetic"])[0])

    def predict(tiles: np.ndarray) -> np.ndarray:
        return (tiles > level).astype(np.float32)

    return predict
