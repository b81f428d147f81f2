"""Run an exported Radio U-Net SavedModel in-process (the local, serverless path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..tf_runtime import tf
from .repository import SIGNATURE, ModelVersion, resolve_model

__all__ = ["SavedModelPredictor"]


class SavedModelPredictor:
    """Call a SavedModel's serving signature on batches of normalised tiles.

    Calling it maps ``(N, tile, tile)`` float32 tiles in [0, 1] to
    ``(N, tile, tile)`` diffuse-emission probabilities, the same contract as a
    remote TF Serving call, so the segmentation code does not care which runs.
    """

    def __init__(self, model: str | Path | ModelVersion | None = None) -> None:
        self.model = model if isinstance(model, ModelVersion) else resolve_model(model)
        loaded = tf.saved_model.load(str(self.model.path))
        if SIGNATURE.name not in loaded.signatures:
            raise ValueError(
                f"{self.model.path} has no {SIGNATURE.name!r} signature "
                f"(has {sorted(loaded.signatures)})"
            )
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[SIGNATURE.name]
        self.tile = SIGNATURE.tile

    def __call__(self, tiles: NDArray[np.float32]) -> NDArray[np.float32]:
        if tiles.ndim != 3 or tiles.shape[1:] != (self.tile, self.tile):
            raise ValueError(
                f"expected tiles of shape (N, {self.tile}, {self.tile}), got {tiles.shape}"
            )
        batch = tf.constant(tiles[..., np.newaxis], dtype=tf.float32)
        out = self._fn(**{SIGNATURE.input_key: batch})[SIGNATURE.output_key]
        return np.asarray(out.numpy()[..., 0], dtype=np.float32)
