"""Tests for radiounet.model.loading: an exported version back to a Keras model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from radiounet.model.export import export_saved_model
from radiounet.model.loading import load_keras_model
from radiounet.model.repository import (
    METADATA_FILE,
    SIGNATURE,
    ModelMetadata,
    resolve_model,
)
from radiounet.tf_runtime import keras, tf

META = ModelMetadata(base_filters=2, description="loading test model")


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, perturbed_model: Callable[[int], keras.Model]
) -> tuple[keras.Model, Path]:
    model = perturbed_model(3)
    repo = tmp_path_factory.mktemp("loading_repo")
    export_saved_model(model, repo, META)
    return model, repo


def test_round_trip_restores_every_weight(exported) -> None:
    model, repo = exported
    loaded = load_keras_model(resolve_model(repo))
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(loaded.weights, model.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))
    assert loaded.input_shape == (None, 192, 192, 1)
    assert loaded.count_params() == model.count_params()


def test_predictions_equal_the_serving_signature(exported) -> None:
    _, repo = exported
    version = resolve_model(repo)
    loaded = load_keras_model(version)
    x = np.random.default_rng(0).random((3, 192, 192, 1), dtype=np.float32)
    signature = tf.saved_model.load(str(version.path)).signatures[SIGNATURE.name]
    served = signature(image=tf.constant(x))[SIGNATURE.output_key].numpy()
    keras_out = np.asarray(loaded(x, training=False))[..., 1:2]
    np.testing.assert_array_equal(keras_out, served)
    assert served.std() > 1e-4  # not a constant map


def test_accepts_paths(exported) -> None:
    model, repo = exported
    for where in (repo, repo / "radio_unet", repo / "radio_unet" / "1"):
        loaded = load_keras_model(where)
        np.testing.assert_array_equal(loaded.weights[0].numpy(), model.weights[0].numpy())


def write_metadata(version_dir: Path, meta: ModelMetadata) -> None:
    (version_dir / METADATA_FILE).write_text(json.dumps(asdict(meta)))


def test_metadata_that_does_not_fit_the_weights(exported, tmp_path: Path) -> None:
    model, _ = exported
    path = export_saved_model(model, tmp_path, META)
    write_metadata(path, replace(META, base_filters=4))
    with pytest.raises(ValueError, match=r"stored weight of shape \(3, 3, 1, 2\) does not fit"):
        load_keras_model(path)
    write_metadata(path, replace(META, depth=3))
    with pytest.raises(ValueError, match="stored weights, but the architecture in its metadata"):
        load_keras_model(path)


def test_saved_model_without_weights(tmp_path: Path) -> None:
    version_dir = tmp_path / "radio_unet" / "1"
    tf.saved_model.save(tf.Module(), str(version_dir))
    (version_dir / METADATA_FILE).parent.mkdir()
    write_metadata(version_dir, META)
    with pytest.raises(ValueError, match="no tracked 'weights' list"):
        load_keras_model(tmp_path)
