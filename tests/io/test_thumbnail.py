"""Thumbnail PNGs, pixel by pixel: panels, stretch, contour, circle, orientation, binning."""

from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from radiounet.io.quicklook import _default_range
from radiounet.io.thumbnail import thumbnail_png

N = 40
CENTRE = 20
DISK_RADIUS = 10
WHITE = (255, 255, 255)
CYAN = (0, 255, 255)


def rgb_of(cmap: str, value: float) -> tuple[int, int, int]:
    r, g, b, _ = mpl.colormaps[cmap](value, bytes=True)
    return int(r), int(g), int(b)


def distance(shape: tuple[int, int], x: float, y: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(xx - x, yy - y)


@pytest.fixture
def image() -> np.ndarray:
    """A 40 x 40 map at 1 mJy/beam with a bright blob at (20, 20)."""
    d = distance((N, N), CENTRE, CENTRE)
    return (1e-3 + 0.05 * np.exp(-(d**2) / (2 * 3.0**2))).astype(np.float32)


@pytest.fixture
def probability() -> np.ndarray:
    """1 within 10 px of (20, 20), 0 outside."""
    return (distance((N, N), CENTRE, CENTRE) <= DISK_RADIUS).astype(np.float32)


class Decoded:
    """A thumbnail decoded to RGB, read with FITS pixel coordinates."""

    def __init__(self, png: bytes, panel_shape: tuple[int, int]) -> None:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(png)) as im:
            assert isinstance(im, PngImagePlugin.PngImageFile)
            self.size = im.size
            self.text = dict(im.text)
            self.rgb = np.asarray(im.convert("RGB"))
        self.h, self.w = panel_shape

    def left(self, y: int, x: int) -> tuple[int, ...]:
        """Colour of FITS pixel ``(x, y)`` on the image panel."""
        return tuple(int(v) for v in self.rgb[self.h - 1 - y, x])

    def right(self, y: int, x: int) -> tuple[int, ...]:
        """Colour of FITS pixel ``(x, y)`` on the probability panel."""
        return tuple(int(v) for v in self.rgb[self.h - 1 - y, self.w + 4 + x])


def decode(png: bytes, panel_shape: tuple[int, int] = (N, N)) -> Decoded:
    return Decoded(png, panel_shape)


def test_size_is_two_panels_and_a_gap(image: np.ndarray, probability: np.ndarray) -> None:
    out = decode(thumbnail_png(image, probability))
    assert out.size == (2 * N + 4, N)
    assert np.all(out.rgb[:, N : N + 4] == 255)  # the gap is white


def test_non_square_arrays_keep_their_shape() -> None:
    png = thumbnail_png(np.ones((30, 50)), np.zeros((30, 50)))
    assert decode(png, (30, 50)).size == (2 * 50 + 4, 30)


def test_nan_pixels_are_white(image: np.ndarray, probability: np.ndarray) -> None:
    image[5, 7] = np.nan
    probability[33, 2] = np.nan
    out = decode(thumbnail_png(image, probability))
    assert out.left(5, 7) == WHITE
    assert out.right(33, 2) == WHITE
    assert out.left(5, 8) != WHITE
    assert out.right(33, 3) != WHITE


def test_log_stretch_colours(image: np.ndarray, probability: np.ndarray) -> None:
    vmin, vmax = 1e-4, 1e-2
    image[0, 0] = vmax
    image[0, 1] = 1.0  # above the range: the top colour
    image[0, 2] = np.sqrt(vmin * vmax)  # half-way in the log stretch
    image[0, 3] = -1.0  # below the range: the bottom colour
    out = decode(thumbnail_png(image, probability, vmin_jy=vmin, vmax_jy=vmax))
    assert out.left(0, 0) == out.left(0, 1) == rgb_of("inferno", 1.0)
    assert out.left(0, 2) == rgb_of("inferno", 0.5)
    assert out.left(0, 3) == rgb_of("inferno", 0.0)


def test_probability_colours(image: np.ndarray, probability: np.ndarray) -> None:
    probability[2, 2] = 0.5
    out = decode(thumbnail_png(image, probability))
    assert out.right(CENTRE, CENTRE) == rgb_of("viridis", 1.0)
    assert out.right(0, 0) == rgb_of("viridis", 0.0)
    assert out.right(2, 2) == rgb_of("viridis", 0.5)


def test_contour_is_one_cyan_pixel_wide(image: np.ndarray, probability: np.ndarray) -> None:
    out = decode(thumbnail_png(image, probability))
    edge = CENTRE + DISK_RADIUS
    assert out.left(CENTRE, edge) == CYAN  # inside the disk, next to the outside
    assert out.left(edge, CENTRE) == CYAN
    assert out.left(CENTRE, edge - 1) != CYAN  # inside, all neighbours inside
    assert out.left(CENTRE, edge + 1) != CYAN  # outside
    assert out.left(CENTRE, CENTRE) != CYAN
    assert all(out.right(CENTRE, x) != CYAN for x in range(N))  # the image panel only
    cyan = np.all(out.rgb[:, :N] == CYAN, axis=-1)
    # Every pixel of the disk's 4-connected boundary, and nothing else.
    disk = probability.astype(bool)
    shrunk = disk[1:-1, 1:-1] & disk[:-2, 1:-1] & disk[2:, 1:-1] & disk[1:-1, :-2] & disk[1:-1, 2:]
    boundary = disk.copy()
    boundary[1:-1, 1:-1] &= ~shrunk
    assert np.array_equal(cyan[::-1], boundary)


@pytest.mark.parametrize("level, edge", [(0.3, 11), (0.7, 5)])
def test_contour_level(image: np.ndarray, level: float, edge: int) -> None:
    # 1 - x / 17: at or above the level up to column `edge`, below it from `edge + 1`.
    ramp = np.broadcast_to(np.clip(1 - np.arange(N) / 17, 0, 1), (N, N)).astype(np.float32)
    out = decode(thumbnail_png(image, ramp, contour_level=level))
    row = [out.left(CENTRE, x) == CYAN for x in range(N)]
    assert row.index(True) == edge and sum(row) == 1


@pytest.mark.parametrize("fill", [0.0, 1.0, np.nan])
def test_no_contour_along_borders_or_blank_pixels(image: np.ndarray, fill: float) -> None:
    probability = np.full((N, N), fill, dtype=np.float32)
    probability[:, :10] = np.nan if fill == 1.0 else 1.0
    rgb = decode(thumbnail_png(image, probability)).rgb
    expect_some = fill == 0.0  # only a real 1 -> 0 step is a contour
    assert bool(np.all(rgb == CYAN, axis=-1).any()) is expect_some


def test_circle_is_a_white_ring_on_both_panels(image: np.ndarray, probability: np.ndarray) -> None:
    png = thumbnail_png(image, probability, circle_xy=(20.0, 20.0), circle_radius_pix=15.0)
    out = decode(png)
    for panel in (out.left, out.right):
        assert panel(CENTRE, CENTRE + 15) == WHITE
        assert panel(CENTRE - 15, CENTRE) == WHITE
        assert panel(CENTRE, CENTRE) != WHITE
        assert panel(CENTRE, CENTRE + 13) != WHITE
        assert panel(CENTRE, CENTRE + 17) != WHITE
    white = np.all(out.rgb[::-1, N + 4 :] == WHITE, axis=-1)
    d = distance((N, N), CENTRE, CENTRE)
    assert np.array_equal(white, np.abs(d - 15) <= 0.5)


def test_circle_off_the_image(image: np.ndarray, probability: np.ndarray) -> None:
    near = decode(thumbnail_png(image, probability, circle_xy=(-5, 20), circle_radius_pix=8))
    assert near.left(20, 3) == WHITE
    far = thumbnail_png(image, probability, circle_xy=(500, 500), circle_radius_pix=8)
    assert np.array_equal(decode(far).rgb, decode(thumbnail_png(image, probability)).rgb)


def test_north_is_up(image: np.ndarray, probability: np.ndarray) -> None:
    probability[:] = 0
    probability[-1, :] = 1  # the last FITS row: the top of the sky
    rgb = decode(thumbnail_png(image, probability)).rgb
    assert tuple(rgb[0, N + 4]) == rgb_of("viridis", 1.0)
    assert tuple(rgb[-1, N + 4]) == rgb_of("viridis", 0.0)


def test_large_inputs_are_binned() -> None:
    shape = (960, 960)
    prob = np.zeros(shape, dtype=np.float32)
    prob[:2, :2] = 1  # one binned pixel at 2 x 2
    png = thumbnail_png(np.ones(shape), prob)
    out = decode(png, (480, 480))
    assert out.size == (2 * 480 + 4, 480)
    assert out.right(0, 0) == rgb_of("viridis", 1.0)
    assert out.right(0, 1) == rgb_of("viridis", 0.0)
    assert "binned 2x2" in out.text["Description"]


@pytest.mark.parametrize(
    "shape, max_px, size",
    [
        ((1000, 900), 480, (2 * 300 + 4, 334)),
        ((40, 40), 20, (2 * 20 + 4, 20)),
        ((40, 40), 40, (84, 40)),
    ],
)
def test_max_px_bounds_the_panel(
    shape: tuple[int, int], max_px: int, size: tuple[int, int]
) -> None:
    png = thumbnail_png(np.ones(shape), np.zeros(shape), max_px=max_px)
    assert decode(png, (size[1], (size[0] - 4) // 2)).size == size


def test_circle_lands_on_the_binned_grid() -> None:
    shape = (960, 960)
    png = thumbnail_png(
        np.ones(shape), np.zeros(shape), circle_xy=(480.5, 480.5), circle_radius_pix=200.0
    )
    out = decode(png, (480, 480))
    # Binned pixel 240 covers pixels 480 and 481: centre 480.5; the radius is 100 binned px.
    assert out.right(240, 340) == WHITE
    assert out.right(240, 240) != WHITE


def test_text_chunks(image: np.ndarray, probability: np.ndarray) -> None:
    png = thumbnail_png(
        image,
        probability,
        title="PSZ2 G055.59+31.85",
        contour_level=0.3,
        circle_xy=(20, 20),
        circle_radius_pix=15,
        vmin_jy=1e-4,
        vmax_jy=1e-2,
    )
    text = decode(png).text
    assert text["Title"] == "PSZ2 G055.59+31.85"
    description = text["Description"]
    assert "log stretch [0.0001, 0.01] Jy/beam" in description
    assert "probability 0.3" in description
    assert "circle: aperture" in description
    plain = decode(thumbnail_png(image, probability)).text
    assert plain["Title"]
    assert "aperture" not in plain["Description"]


def test_default_range_is_the_figures(image: np.ndarray, probability: np.ndarray) -> None:
    lo, hi = _default_range(image)
    description = decode(thumbnail_png(image, probability)).text["Description"]
    assert f"[{lo:.3g}, {max(hi, 10 * lo):.3g}] Jy/beam" in description
    only_vmax = decode(thumbnail_png(image, probability, vmax_jy=0.5)).text["Description"]
    assert f"[{lo:.3g}, 0.5] Jy/beam" in only_vmax


def test_all_nan_inputs_are_blank() -> None:
    blank = np.full((N, N), np.nan, dtype=np.float32)
    rgb = decode(thumbnail_png(blank, blank)).rgb
    assert np.all(rgb == 255)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image": np.ones(5)}, r"image must be 2-D, got shape \(5,\)"),
        ({"image": np.ones((0, 4)), "probability": np.ones((0, 4))}, r"not be empty.*\(0, 4\)"),
        ({"probability": np.ones((4, 5))}, r"probability has shape \(4, 5\).*\(4, 4\)"),
        ({"contour_level": 1.0}, "contour_level must be in .* got 1.0"),
        ({"contour_level": 0}, "contour_level must be in .* got 0"),
        ({"circle_xy": (1, 2)}, r"together, got \(1, 2\) and None"),
        ({"circle_radius_pix": 3}, "together, got None and 3"),
        ({"circle_xy": (1, np.nan), "circle_radius_pix": 3}, r"circle_xy must be .*\(1, nan\)"),
        ({"circle_xy": (1,), "circle_radius_pix": 3}, r"circle_xy must be .*\(1,\)"),
        ({"circle_xy": (1, 2), "circle_radius_pix": -3}, "circle_radius_pix .* got -3"),
        ({"max_px": 0}, "max_px must be a positive integer, got 0"),
        ({"max_px": 2.5}, "max_px must be a positive integer, got 2.5"),
        ({"vmin_jy": 0.0}, "vmin_jy must be a positive number, got 0.0"),
        ({"vmax_jy": np.inf}, "vmax_jy must be a positive number, got inf"),
        ({"vmin_jy": 2.0, "vmax_jy": 1.0}, "vmin_jy must be below vmax_jy, got 2.0 and 1.0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"image": np.ones((4, 4)), "probability": np.ones((4, 4))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        thumbnail_png(**args)  # type: ignore[arg-type]


def test_display_range_of_a_large_image_is_measured_on_a_subsample() -> None:
    # 1200 x 1200 exponential pixels of scale 1e-4: lo is half of p84 - p50
    # (0.5 x (1.838 - 0.693) = 0.573 scales), hi the 99.9th percentile (ln 1000 = 6.908
    # scales), both within 2% on the ~250,000-pixel subsample.
    rng = np.random.default_rng(3)
    pixels = rng.exponential(1e-4, (1200, 1200)).astype(np.float32)
    lo, hi = _default_range(pixels)
    assert lo == pytest.approx(0.5 * (np.log(1 / (1 - 0.8413)) - np.log(2)) * 1e-4, rel=0.02)
    assert hi == pytest.approx(np.log(1000) * 1e-4, rel=0.02)
    # The rare-positive fallback still sees every pixel, not only the subsample's.
    sparse = np.zeros((1200, 1200), dtype=np.float32)
    sparse[7, 11] = 3e-3
    assert _default_range(sparse) == (pytest.approx(3e-3), pytest.approx(3e-2))
