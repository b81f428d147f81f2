"""Tests for radiounet.model export, repository and predictor (the SavedModel path)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from radiounet.core.normalisation import PROFILES
from radiounet.core.segmentation import normalised_tiles, segment
from radiounet.core.tiling import extract_tiles, reassemble, tile_grid
from radiounet.model.export import export_saved_model
from radiounet.model.predictor import SavedModelPredictor
from radiounet.model.repository import (
    DEFAULT_MODEL_NAME,
    METADATA_FILE,
    SIGNATURE,
    ModelMetadata,
    default_model_repo,
    next_version,
    resolve_model,
)
from radiounet.model.unet import build_radio_unet
from radiounet.tf_runtime import keras, tf

META = ModelMetadata(
    base_filters=2,
    profile="synthetic",
    description="tiny test model",
    training={"epochs": 0, "note": "random weights"},
)


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, perturbed_model: Callable[[int], keras.Model]
) -> tuple[keras.Model, Path, Path]:
    """One small model exported once: (model, repository, version folder)."""
    model = perturbed_model(0)
    repo = tmp_path_factory.mktemp("repo")
    path = export_saved_model(model, repo, META)
    return model, repo, path


@pytest.fixture(scope="module")
def predictor(exported: tuple[keras.Model, Path, Path]) -> SavedModelPredictor:
    return SavedModelPredictor(exported[2])


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    """The cheapest exportable model, for repository bookkeeping tests."""
    return build_radio_unet(base_filters=2, depth=1)


def tiles(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 192, 192), dtype=np.float32)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def test_export_writes_a_tf_serving_version_folder(exported) -> None:
    _, repo, path = exported
    assert path == repo / "radio_unet" / "1"
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables").is_dir()
    assert (path / "variables" / "variables.index").is_file()
    assert (path / "assets.extra" / "radiounet.json").is_file()
    assert METADATA_FILE == Path("assets.extra/radiounet.json")
    # Nothing else is left behind (the staging folder was renamed).
    assert sorted(p.name for p in (repo / "radio_unet").iterdir()) == ["1"]
    stored = json.loads((path / METADATA_FILE).read_text())
    assert stored == asdict(META)
    assert ModelMetadata(**stored) == META


def test_checkpoint_stores_each_weight_exactly_once(exported) -> None:
    model, _, path = exported
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    keys = [k for k in shapes if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert sum(int(np.prod(shapes[k])) for k in keys) == model.count_params()
    assert len(keys) == len(model.weights)
    stored = [reader.get_tensor(k) for k in keys]
    for w in model.weights:
        value = np.asarray(w.numpy())
        matches = [s for s in stored if s.shape == value.shape and np.array_equal(s, value)]
        assert len(matches) == 1, w.path


def test_serving_signature(exported) -> None:
    model, _, path = exported
    loaded = tf.saved_model.load(str(path))
    assert list(loaded.signatures) == ["serving_default"]
    signature = loaded.signatures[SIGNATURE.name]
    args, kwargs = signature.structured_input_signature
    assert args == ()
    assert list(kwargs) == ["image"]
    assert kwargs["image"].dtype == tf.float32
    assert kwargs["image"].shape.as_list() == [None, 192, 192, 1]
    outputs = signature.structured_outputs
    assert list(outputs) == ["probability"]
    assert outputs["probability"].dtype == tf.float32
    assert outputs["probability"].shape.as_list() == [None, 192, 192, 1]
    x = tiles(2)[..., None]
    got = signature(image=tf.constant(x))["probability"].numpy()
    want = np.asarray(model(x, training=False))[..., 1:2]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_second_export_gets_the_next_version(tmp_path: Path, tiny_model) -> None:
    first = export_saved_model(tiny_model, tmp_path, META)
    second = export_saved_model(tiny_model, tmp_path, META)
    assert (first.name, second.name) == ("1", "2")
    latest = resolve_model(tmp_path)
    assert (latest.name, latest.version, latest.path) == ("radio_unet", 2, second)
    assert latest.metadata == META
    assert resolve_model(tmp_path, version=1).path == first
    assert resolve_model(tmp_path / "radio_unet").version == 2
    assert resolve_model(tmp_path / "radio_unet", version=1).version == 1
    assert resolve_model(first).version == 1
    assert next_version(tmp_path / "radio_unet") == 3


def test_explicit_version_and_name(tmp_path: Path, tiny_model) -> None:
    path = export_saved_model(tiny_model, tmp_path, META, name="other", version=5)
    assert path == tmp_path / "other" / "5"
    assert export_saved_model(tiny_model, tmp_path, META, name="other").name == "6"
    found = resolve_model(tmp_path, name="other", version=5)
    assert (found.name, found.version) == ("other", 5)
    # The default name is not there.
    assert DEFAULT_MODEL_NAME == "radio_unet"
    with pytest.raises(ValueError, match="no version folders"):
        resolve_model(tmp_path)


def test_exporting_onto_an_existing_version_is_refused(exported, tiny_model) -> None:
    _, repo, path = exported
    before = (path / "saved_model.pb").read_bytes()
    with pytest.raises(ValueError, match="model version already exists"):
        export_saved_model(tiny_model, repo, META, version=1)
    assert (path / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in (repo / "radio_unet").iterdir()) == ["1"]


@pytest.mark.parametrize("version", [0, -2])
def test_export_version_must_be_positive(tmp_path: Path, tiny_model, version: int) -> None:
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export_saved_model(tiny_model, tmp_path, META, version=version)


# ---------------------------------------------------------------------------
# Repository
# ---------------------------------------------------------------------------


def test_next_version_ignores_non_versions(tmp_path: Path) -> None:
    model_dir = tmp_path / "radio_unet"
    assert next_version(model_dir) == 1
    model_dir.mkdir()
    assert next_version(model_dir) == 1
    for name in ("0", "3", "abc", ".7-staging"):
        (model_dir / name).mkdir()
    (model_dir / "9").write_text("a file, not a version")
    assert next_version(model_dir) == 4


def test_default_model_repo_is_the_checkouts_model_repo() -> None:
    assert default_model_repo() == Path(__file__).resolve().parents[2] / "model_repo"


def test_metadata_json_round_trip() -> None:
    assert ModelMetadata(**json.loads(META.to_json())) == META
    assert json.loads(META.to_json())["training"] == {"epochs": 0, "note": "random weights"}


def test_resolve_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model folder not found"):
        resolve_model(tmp_path / "nowhere")


def test_resolve_folder_without_versions(tmp_path: Path) -> None:
    (tmp_path / "radio_unet" / "latest").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no version folders \(1, 2, \.\.\.\)"):
        resolve_model(tmp_path)


def test_resolve_version_not_present(exported) -> None:
    _, repo, _ = exported
    with pytest.raises(ValueError, match=r"model version 3 not in .* \(have \[1\]\)"):
        resolve_model(repo, version=3)


def test_resolve_version_folder_that_is_not_a_saved_model(tmp_path: Path) -> None:
    (tmp_path / "radio_unet" / "1" / "variables").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"is not a SavedModel \(no saved_model\.pb\)"):
        resolve_model(tmp_path)


def test_resolve_saved_model_folder_not_named_by_version(exported, tmp_path: Path) -> None:
    copy = tmp_path / "latest"
    shutil.copytree(exported[2], copy)
    with pytest.raises(ValueError, match="must be named by its version number"):
        resolve_model(copy)


def copy_version(exported, tmp_path: Path) -> Path:
    target = tmp_path / "radio_unet" / "1"
    shutil.copytree(exported[2], target)
    return target


@pytest.mark.parametrize("text", ["{not json", '{"base_filters": 2, "colour": "red"}', "{}", "[2]"])
def test_resolve_bad_metadata(exported, tmp_path: Path, text: str) -> None:
    version_dir = copy_version(exported, tmp_path)
    (version_dir / METADATA_FILE).write_text(text)
    with pytest.raises(ValueError, match="invalid model metadata file"):
        resolve_model(tmp_path)


def test_resolve_missing_metadata(exported, tmp_path: Path) -> None:
    version_dir = copy_version(exported, tmp_path)
    (version_dir / METADATA_FILE).unlink()
    with pytest.raises(ValueError, match=r"has no assets.extra/radiounet\.json"):
        resolve_model(tmp_path)


# ---------------------------------------------------------------------------
# Predictor
# ---------------------------------------------------------------------------


def test_predictor_matches_the_keras_model(exported, predictor) -> None:
    model, _, _ = exported
    x = tiles(3)
    got = predictor(x)
    assert got.shape == (3, 192, 192)
    assert got.dtype == np.float32
    want = np.asarray(model(x[..., None], training=False))[..., 1]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got.std() > 1e-4  # not a constant map
    assert 0.0 <= got.min() and got.max() <= 1.0


def test_predictor_weights_are_the_exported_ones(exported, predictor, perturbed_model) -> None:
    # Another model of the same architecture answers differently.
    other = perturbed_model(1)
    x = tiles(1)
    assert (
        np.abs(predictor(x) - np.asarray(other(x[..., None], training=False))[..., 1]).max() > 1e-3
    )


def test_predictor_from_a_resolved_version_and_from_a_repository(exported, predictor) -> None:
    _, repo, path = exported
    version = resolve_model(repo)
    assert (version.version, version.path, version.metadata) == (1, path, META)
    assert predictor.model == version
    assert predictor.tile == 192
    from_version = SavedModelPredictor(version)
    assert from_version.model is version
    x = tiles(1, seed=3)
    np.testing.assert_array_equal(from_version(x), predictor(x))
    np.testing.assert_array_equal(SavedModelPredictor(repo)(x), predictor(x))


@pytest.mark.parametrize(
    "shape", [(2, 192, 192, 1), (192, 192), (2, 96, 96), (1, 192, 191), (0, 192)]
)
def test_predictor_rejects_wrong_tile_shapes(predictor, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected tiles of shape \(N, 192, 192\)"):
        predictor(np.zeros(shape, np.float32))


def test_predictor_needs_the_serving_signature(tmp_path: Path) -> None:
    version_dir = tmp_path / "radio_unet" / "1"
    tf.saved_model.save(tf.Module(), str(version_dir))
    (version_dir / METADATA_FILE).parent.mkdir()
    (version_dir / METADATA_FILE).write_text(META.to_json())
    with pytest.raises(
        ValueError,
        match=r"saved_model.pb has no 'serving_default' signature from 'image' to 'probability' "
        r"\(has \{\}\)$",
    ):
        SavedModelPredictor(tmp_path)


def test_segment_with_the_saved_model(exported, predictor) -> None:
    model, _, _ = exported
    profile = PROFILES["synthetic"]
    rng = np.random.default_rng(5)
    image = (10.0 ** rng.uniform(-11, -4, size=(200, 300))).astype(np.float32)
    image[:20, :30] = np.nan
    out = segment(image, predictor, profile, batch_size=4)
    # Reference: the Keras model on every normalised tile, reassembled.
    grid = tile_grid(image.shape)
    norm, blank = normalised_tiles(extract_tiles(image, grid, range(len(grid))), profile)
    probability = np.array(model(norm[..., None], training=False))[..., 1]
    probability[blank] = np.nan
    want = reassemble(probability, grid)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(image))
