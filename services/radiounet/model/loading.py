"""Rebuild a trainable Keras Radio U-Net from an exported SavedModel version.

An exported version stores each weight once, as the ``weights`` list of a bare
``tf.Module`` in ``model.weights`` order (see :mod:`radiounet.model.export`);
there is no Keras model inside it. So the model is rebuilt from the version's
metadata (base width, depth, tile) and those variables are assigned to it in
order, which gives a model that predicts exactly what the serving signature
does and can be trained further (fine-tuning, Sec. 6.3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tf_runtime import keras
from .predictor import load_saved_model
from .repository import ModelVersion, resolve_model
from .unet import build_radio_unet

__all__ = ["load_keras_model"]


def load_keras_model(version: ModelVersion | str | Path, *, dropout: float = 0.5) -> keras.Model:
    """The Keras model of an exported version, with its weights.

    Parameters
    ----------
    version : ModelVersion or path
        A resolved version, or anything :func:`radiounet.model.repository.resolve_model`
        accepts (repository, model folder or version folder; latest version).
    dropout : float, keyword-only
        Dropout rate of the rebuilt model; it only matters for further
        training. The metadata does not record it; 0.5 is the paper's.

    Raises
    ------
    ValueError
        If the SavedModel was not written by :func:`radiounet.model.export.export_saved_model`
        or its weights do not fit the architecture its metadata describes.
    """
    resolved = version if isinstance(version, ModelVersion) else resolve_model(version)
    meta = resolved.metadata
    model = build_radio_unet(
        base_filters=meta.base_filters, depth=meta.depth, dropout=dropout, tile=meta.tile
    )
    loaded = load_saved_model(resolved.path, signature=False)
    saved = getattr(loaded, "weights", None)
    if saved is None:
        raise ValueError(
            f"{resolved.path}: no tracked 'weights' list (not exported by "
            "radiounet.model.export.export_saved_model?)"
        )
    saved = list(saved)
    if len(saved) != len(model.weights):
        raise ValueError(
            f"{resolved.path}: {len(saved)} stored weights, but the architecture in its metadata "
            f"(base_filters={meta.base_filters}, depth={meta.depth}) has {len(model.weights)}"
        )
    for target, source in zip(model.weights, saved, strict=True):
        value = np.asarray(source.numpy())
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"{resolved.path}: stored weight of shape {value.shape} does not fit "
                f"{target.path} of shape {tuple(target.shape)}"
            )
        target.assign(value)
    return model
