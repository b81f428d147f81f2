"""Export a Keras Radio U-Net as a TensorFlow Serving SavedModel version."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..tf_runtime import keras, tf
from .repository import (
    DEFAULT_MODEL_NAME,
    METADATA_FILE,
    SIGNATURE,
    ModelMetadata,
    next_version,
)

__all__ = ["export_saved_model"]


def export_saved_model(
    model: keras.Model,
    repo: str | Path,
    metadata: ModelMetadata,
    *,
    name: str = DEFAULT_MODEL_NAME,
    version: int | None = None,
) -> Path:
    """Write ``model`` to ``repo/name/<version>/`` with the serving signature.

    The signature ``serving_default`` takes ``image`` (float32
    ``[N, tile, tile, 1]``, normalised to [0, 1]) and returns ``probability``
    (float32 ``[N, tile, tile, 1]``, the softmax's diffuse-emission channel),
    which halves what a model server sends back. The folder is written under a
    temporary name and renamed, so TF Serving never sees a half-written version.

    Returns
    -------
    Path
        The version folder.
    """
    model_dir = Path(repo) / name
    version = next_version(model_dir) if version is None else version
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    target = model_dir / str(version)
    if target.exists():
        raise ValueError(f"model version already exists: {target}")
    model_dir.mkdir(parents=True, exist_ok=True)

    t = SIGNATURE.tile

    @tf.function(
        input_signature=[tf.TensorSpec([None, t, t, 1], tf.float32, name=SIGNATURE.input_key)]
    )
    def serve(image):
        probabilities = model(image, training=False)
        return {SIGNATURE.output_key: probabilities[..., 1:2]}

    # A bare tf.Module tracking each backing tf.Variable once: Keras'
    # ExportArchive would store every weight twice.
    module = tf.Module()
    module.weights = [w.value for w in model.weights]
    signature = serve.get_concrete_function()
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=model_dir))
    try:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE.name: signature})
        (staging / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
        (staging / METADATA_FILE).write_text(metadata.to_json() + "\n")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
