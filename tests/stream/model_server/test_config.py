"""models.config parsing, base-path resolution and batching parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiounet.model.repository import default_model_repo
from radiounet.stream.model_server.batching import BatchingOptions, parse_batching_parameters
from radiounet.stream.model_server.config import (
    load_model_config,
    parse_model_config,
    single_model_config,
)
from radiounet.stream.model_server.versions import aspired_versions, policy_description


def test_shipped_config_resolves_next_to_itself() -> None:
    # models.config names the container mount /models/radio_unet; from a checkout
    # the folder beside the config file is used.
    config = load_model_config(default_model_repo() / "models.config")
    (model,) = config.model_config_list.config
    assert model.name == "radio_unet"
    assert Path(model.base_path) == default_model_repo() / "radio_unet"
    assert policy_description(model.model_version_policy) == "latest 1"
    assert aspired_versions(model.model_version_policy, [1, 2]) == [2]


def test_relative_and_missing_base_paths(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "models" / "m").mkdir(parents=True)
    path = tmp_path / "models" / "models.config"
    path.write_text('model_config_list { config { name: "m" base_path: "models/m" } }')
    monkeypatch.chdir(tmp_path)
    (model,) = load_model_config(path).model_config_list.config
    assert Path(model.base_path) == Path("models/m")
    path.write_text('model_config_list { config { name: "m" base_path: "/nowhere/x" } }')
    with pytest.raises(ValueError, match="is not a folder"):
        load_model_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list {}", "lists no models"),
        ("model_config_list { config { base_path: '/a' } }", "needs a name"),
        ("model_config_list { config { name: 'a' } }", "no base_path"),
        (
            "model_config_list { config { name: 'a' base_path: '/a' } "
            "config { name: 'a' base_path: '/b' } }",
            "configured twice",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'onnx' } }",
            "not supported",
        ),
        ("model_config_list { config { name: 'a' base_path: '/a' bogus: 1 } }", "invalid"),
    ],
)
def test_invalid_configs(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model_config(text)


def test_single_model_config() -> None:
    (model,) = single_model_config("radio_unet", "/models/radio_unet").model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "radio_unet",
        "/models/radio_unet",
        "tensorflow",
    )
    assert aspired_versions(model.model_version_policy, [4, 2, 9]) == [9]


def test_batching_parameters_file() -> None:
    text = """
    max_batch_size { value: 32 }
    batch_timeout_micros { value: 1000 }
    num_batch_threads { value: 2 }
    max_enqueued_batches { value: 8 }
    allowed_batch_sizes: 8
    pad_variable_length_inputs: true
    """
    assert parse_batching_parameters(text, BatchingOptions(enabled=False)) == BatchingOptions(
        enabled=True,
        max_batch_size=32,
        batch_timeout_micros=1000,
        num_batch_threads=2,
        max_enqueued_batches=8,
    )
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        parse_batching_parameters("max_batch_size { value: 0 }")
