"""Run an exported Radio U-Net SavedModel in-process (the local, serverless path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..tf_runtime import tf
from .repository import SIGNATURE, ModelVersion, resolve_model, saved_model_problem

__all__ = ["SavedModelPredictor", "load_saved_model"]


def load_saved_model(version_dir: Path, *, signature: bool = True) -> Any:
    """``tf.saved_model.load`` of a version folder, its failures as one-line ``ValueError``.

    The one place the commands (segment, classify, demo, calibrate, evaluate, train)
    load a version: TensorFlow's ``OSError`` for a corrupt file would otherwise end
    them in a traceback. The cheap check first gives the same words as
    ``radiounet model info|push``; ``signature``: also require the serving signature
    (a model rebuilt for training only needs the weights).

    Raises
    ------
    ValueError
        Naming the version folder and why it cannot be loaded.
    """
    problem = saved_model_problem(version_dir, signature=signature, metadata=False)
    if problem is not None:
        raise ValueError(f"cannot load model version {version_dir}: {problem}")
    try:
        return tf.saved_model.load(str(version_dir))
    except (OSError, ValueError, tf.errors.OpError) as exc:  # e.g. broken variables/
        reason = " ".join(str(exc).split())
        raise ValueError(f"cannot load model version {version_dir}: {reason}") from exc


class SavedModelPredictor:
    """Call a SavedModel's serving signature on batches of normalised tiles.

    Calling it maps ``(N, tile, tile)`` float32 tiles in [0, 1] to
    ``(N, tile, tile)`` diffuse-emission probabilities, the same contract as a
    remote TF Serving call, so the segmentation code does not care which runs.
    """

    def __init__(self, model: str | Path | ModelVersion | None = None) -> None:
        self.model = model if isinstance(model, ModelVersion) else resolve_model(model)
        loaded = load_saved_model(self.model.path)  # checks the serving signature
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
