"""Quicklook PNGs: written headless, any NaNs, and argument checks."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from radiounet.examples import ExampleField, example_field
from radiounet.io.quicklook import write_quicklook

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def field() -> ExampleField:
    return example_field(size=192)


@pytest.fixture(scope="module")
def probability(field: ExampleField) -> np.ndarray:
    return gaussian_filter(field.truth.astype(np.float32), 2)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_writes_png(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    out = write_quicklook(
        tmp_path / "ql.png",
        field.image,
        probability,
        wcs=WCS(field.header),
        title=f"{field.name}  R = 0.42",
        circle_xy=field.centre_xy,
        circle_radius_pix=2.2 * field.r500_pix,
    )
    assert out == tmp_path / "ql.png"
    assert _png_size(out) == (1200, 550)
    assert out.stat().st_size > 20_000


def test_dpi_sets_size(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    out = write_quicklook(
        str(tmp_path / "ql.png"), field.image, probability, wcs=WCS(field.header), dpi=50
    )
    assert _png_size(out) == (600, 275)


def test_nans_and_no_circle(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    image, prob = field.image.copy(), probability.copy()
    image[:40, :60] = np.nan
    prob[:40, :60] = np.nan
    out = write_quicklook(tmp_path / "nan.png", image, prob, wcs=WCS(field.header).celestial)
    assert _png_size(out) == (1200, 550)


@pytest.mark.parametrize("fill", [0.0, 1.0, np.nan])
def test_no_contour_crossing(field: ExampleField, fill: float, tmp_path: Path) -> None:
    # A map that never crosses the level (or is all blank) has no contour, and no warning.
    prob = np.full(field.image.shape, fill, dtype=np.float32)
    write_quicklook(tmp_path / "flat.png", field.image, prob, wcs=WCS(field.header))


def test_all_nan_image(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    image = np.full(field.image.shape, np.nan, dtype=np.float32)
    out = write_quicklook(tmp_path / "blank.png", image, probability, wcs=WCS(field.header))
    assert _png_size(out) == (1200, 550)


def test_explicit_limits(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    write_quicklook(
        tmp_path / "lim.png",
        field.image,
        probability,
        wcs=WCS(field.header),
        vmin_jy=1e-5,
        vmax_jy=1e-2,
        cmap="gray",
    )


def test_threads(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    wcs = WCS(field.header)
    with ThreadPoolExecutor(4) as pool:
        paths = list(
            pool.map(
                lambda i: write_quicklook(tmp_path / f"{i}.png", field.image, probability, wcs=wcs),
                range(4),
            )
        )
    sizes = {p.read_bytes() for p in paths}
    assert len(sizes) == 1  # identical output from each thread


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image": np.zeros((2, 192, 192))}, "image must be 2-D"),
        ({"probability": np.zeros((191, 192))}, "probability has shape"),
        ({"wcs": WCS(naxis=2)}, "celestial"),
        ({"contour_level": 1.5}, "contour_level"),
        ({"circle_xy": (96.0, 96.0)}, "circle_xy and circle_radius_pix"),
        ({"circle_xy": (96.0, 96.0), "circle_radius_pix": -1.0}, "circle_radius_pix"),
        ({"vmin_jy": 0.0}, "vmin_jy"),
        ({"vmin_jy": 1e-2, "vmax_jy": 1e-3}, "below vmax_jy"),
        ({"dpi": 0}, "dpi"),
    ],
)
def test_invalid_arguments(
    field: ExampleField, probability: np.ndarray, tmp_path: Path, change: dict, match: str
) -> None:
    kwargs = {"image": field.image, "probability": probability, "wcs": WCS(field.header)} | change
    image, prob = kwargs.pop("image"), kwargs.pop("probability")
    with pytest.raises(ValueError, match=match):
        write_quicklook(tmp_path / "bad.png", image, prob, **kwargs)
    assert not (tmp_path / "bad.png").exists()
