"""Cheap checks of a version folder (no TensorFlow), the one SavedModel load, models.config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from radiounet.model.predictor import SavedModelPredictor
from radiounet.model.repository import (
    METADATA_FILE,
    config_model_folders,
    ensure_model_config,
    saved_model_problem,
)


@pytest.fixture
def version(tiny_model_repo: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model's version folder, free to break."""
    folder = tmp_path / "repo" / "radio_unet" / "1"
    shutil.copytree(tiny_model_repo / "radio_unet" / "1", folder)
    return folder


def test_a_good_version_has_no_problem(version: Path) -> None:
    assert saved_model_problem(version) is None


@pytest.mark.parametrize("cut", ["garbage", "truncated"])
def test_a_corrupt_saved_model_is_named(version: Path, cut: str) -> None:
    pb = version / "saved_model.pb"
    pb.write_bytes(b"hello not protobuf\n" if cut == "garbage" else pb.read_bytes()[:1000])
    assert saved_model_problem(version) == "corrupt saved_model.pb (Wire format was corrupt)"


def test_a_saved_model_without_the_signature_is_named(version: Path) -> None:
    (version / "saved_model.pb").write_bytes(b"")  # a valid, empty SavedModel message
    assert saved_model_problem(version) == (
        "saved_model.pb has no 'serving_default' signature from 'image' to 'probability' (has {})"
    )


def test_missing_metadata_is_named(version: Path) -> None:
    (version / METADATA_FILE).unlink()
    assert saved_model_problem(version) == "no assets.extra/radiounet.json"
    assert saved_model_problem(version, metadata=False) is None


def test_the_predictor_names_a_corrupt_version_in_one_line(version: Path) -> None:
    (version / "saved_model.pb").write_bytes(b"hello not protobuf\n")
    with pytest.raises(ValueError) as caught:
        SavedModelPredictor(version)
    assert str(caught.value) == (
        f"cannot load model version {version}: corrupt saved_model.pb (Wire format was corrupt)"
    )


def test_the_predictor_names_broken_variables(version: Path) -> None:
    (version / "variables" / "variables.index").write_bytes(b"not an index")
    with pytest.raises(ValueError, match=rf"^cannot load model version {version}: \S") as caught:
        SavedModelPredictor(version)
    assert "\n" not in str(caught.value)


def test_model_config_is_written_then_extended(tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    assert ensure_model_config(tmp_path) == "written"
    text = (tmp_path / "models.config").read_text()
    assert config_model_folders(text) == ["radio_unet"]
    assert ensure_model_config(tmp_path) is None
    assert (tmp_path / "models.config").read_text() == text
    (tmp_path / "models.config").write_text(
        'model_config_list {\n  config { name: "m" base_path: "/models/m" }\n}\n'
    )
    assert ensure_model_config(tmp_path) == "updated"
    text = (tmp_path / "models.config").read_text()
    assert config_model_folders(text) == ["m", "radio_unet"]
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == ["m", "radio_unet"]
    assert config.model_config_list.config[1].model_version_policy.latest.num_versions == 1


def test_model_config_without_a_list_is_refused(tmp_path: Path) -> None:
    (tmp_path / "models.config").write_text("# nothing\n")
    with pytest.raises(ValueError) as caught:
        ensure_model_config(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'models.config'} has no model_config_list {{ ... }} to add 'radio_unet' to"
    )
