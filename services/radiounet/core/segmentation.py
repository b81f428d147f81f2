"""Segment a whole image with any tile predictor: normalise, tile, predict, reassemble.

The predictor is a callable from ``(N, tile, tile)`` float32 tiles in [0, 1] to
``(N, tile, tile)`` probabilities: an in-process SavedModel or a TF Serving
client alike. Tiles are cut, normalised and predicted a batch at a time and
written straight into the output, so memory beyond the input and output maps
is a fixed per-batch working set (about 50 MiB at 50 tiles, whatever the image
size; see ``make bench``), and both maps may be memory maps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .normalisation import NormalisationProfile, normalise
from .tiling import DEFAULT_STRIDE, DEFAULT_TILE, extract_tiles, place_tiles, tile_grid

__all__ = ["DEFAULT_BATCH_SIZE", "Predictor", "normalised_tiles", "segment"]

Predictor = Callable[[NDArray[np.float32]], NDArray[np.float32]]

#: Tiles per model call: large enough to amortise the call, small in memory (7 MiB).
DEFAULT_BATCH_SIZE = 50


def normalised_tiles(
    raw_tiles: NDArray[np.floating], profile: NormalisationProfile, *, scale: float = 1.0
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Network input for raw tiles, and the mask of blanked (NaN) pixels.

    Blanked pixels enter the network as 0 (no emission) and are reported back
    so the caller can blank them in the probability map.
    """
    tiles = normalise(raw_tiles * scale if scale != 1.0 else raw_tiles, profile)
    blank = np.isnan(tiles)
    tiles[blank] = 0.0
    return tiles, blank


def segment(
    image: NDArray[np.floating],
    predict: Predictor,
    profile: NormalisationProfile,
    *,
    scale: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tile: int = DEFAULT_TILE,
    stride: int = DEFAULT_STRIDE,
    out: NDArray[np.float32] | None = None,
    progress: Callable[[int], object] | None = None,
) -> NDArray[np.float32]:
    """Probability map of diffuse emission for a 2-D image.

    Parameters
    ----------
    image : ndarray
        2-D brightness image (may be a memory map); NaN marks blanked pixels.
    predict : callable
        Tile predictor (see module docstring).
    profile : NormalisationProfile
        Normalisation bounds; ``image * scale`` must be in ``profile.unit``.
    scale : float, keyword-only
        Factor bringing ``image`` into the profile's unit (e.g. 1e-3 for mJy/beam).
    batch_size : int, keyword-only
        Tiles per predictor call.
    out : ndarray, keyword-only
        Optional preallocated float32 output of the image's shape (e.g. a memory map).
    progress : callable, keyword-only
        Called with the number of tiles done after each batch.

    Returns
    -------
    ndarray
        float32 map of the image's shape; NaN where the image is blanked.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    grid = tile_grid(image.shape, tile=tile, stride=stride)
    if out is None:
        out = np.empty(grid.shape, dtype=np.float32)
    elif out.shape != grid.shape:
        raise ValueError(f"out has shape {out.shape}, expected {grid.shape}")
    for indices in grid.batches(batch_size):
        tiles, blank = normalised_tiles(extract_tiles(image, grid, indices), profile, scale=scale)
        probability = np.array(predict(tiles), dtype=np.float32)
        if probability.shape != tiles.shape:
            raise ValueError(
                f"predictor returned shape {probability.shape} for tiles of shape {tiles.shape}"
            )
        probability[blank] = np.nan
        place_tiles(out, grid, indices, probability)
        if progress is not None:
            progress(len(indices))
    return out
