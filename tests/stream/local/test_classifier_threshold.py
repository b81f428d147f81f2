"""The local stack's classifier: started with the served model's repository (its thresholds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from radiounet.model.threshold import DecisionThreshold
from radiounet.stream.local.classifier_threshold import (
    classifier_args,
    classifier_threshold,
    served_model_folder,
    served_version,
)

FakeVersion = Callable[..., Path]


def models_config(repo: Path, *, base_path: str | None = None, policy: str = "") -> None:
    base = base_path if base_path is not None else str((repo / "radio_unet").resolve())
    (repo / "models.config").write_text(
        "model_config_list {\n  config {\n"
        f'    name: "radio_unet"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
        f"{policy}  }}\n}}\n"
    )


@pytest.fixture
def repo(tmp_path: Path, fake_version: FakeVersion) -> Path:
    """Version 1 uncalibrated, version 2 calibrated at 0.0234; default policy (latest 1)."""
    fake_version(tmp_path, 1, {"base_filters": 16})
    fake_version(tmp_path, 2, {"base_filters": 16, "decision_threshold": 0.0234})
    models_config(tmp_path)
    return tmp_path


def test_the_latest_calibrated_version_is_the_served_threshold(repo: Path) -> None:
    served = served_version(repo)
    assert served is not None and served.version == 2
    assert classifier_threshold(repo) == DecisionThreshold(0.0234, "calibrated for radio_unet/2")
    assert classifier_args(repo) == [f"--model-repo={repo.resolve()}"]


def test_an_uncalibrated_latest_version_has_the_papers(
    repo: Path, fake_version: FakeVersion
) -> None:
    fake_version(repo, 3, {"base_filters": 16})
    assert classifier_threshold(repo) == DecisionThreshold.paper()


def test_the_policy_decides_the_served_version(repo: Path, fake_version: FakeVersion) -> None:
    fake_version(repo, 3, {"base_filters": 16})
    models_config(repo, policy="    model_version_policy { specific { versions: 2 } }\n")
    assert classifier_threshold(repo).value == 0.0234
    # Two served versions: the tiler asks for the latest of them.
    models_config(repo, policy="    model_version_policy { latest { num_versions: 2 } }\n")
    assert classifier_threshold(repo) == DecisionThreshold.paper()


def test_the_shipped_config_names_the_container_mount(repo: Path) -> None:
    # /models/radio_unet does not exist here: the folder of that name beside models.config.
    models_config(repo, base_path="/models/radio_unet")
    assert served_model_folder(repo) == repo / "radio_unet"
    assert classifier_threshold(repo).value == 0.0234
    assert classifier_args(repo) == [f"--model-repo={repo.resolve()}"]


def test_a_base_path_elsewhere_gives_its_parent(repo: Path, tmp_path_factory: Any) -> None:
    elsewhere = tmp_path_factory.mktemp("models")
    (repo / "radio_unet").rename(elsewhere / "radio_unet")
    models_config(repo, base_path=str(elsewhere / "radio_unet"))
    assert classifier_args(repo) == [f"--model-repo={elsewhere.resolve()}"]
    assert classifier_threshold(repo).value == 0.0234


@pytest.mark.parametrize("problem", ["no-config", "bad-config", "other-model", "no-versions"])
def test_an_unknown_served_version_falls_back(tmp_path: Path, problem: str) -> None:
    (tmp_path / "radio_unet").mkdir()
    if problem == "bad-config":
        (tmp_path / "models.config").write_text("model_config_list { oops")
    elif problem == "other-model":
        (tmp_path / "models.config").write_text(
            'model_config_list { config { name: "other" base_path: "/x" } }'
        )
    elif problem == "no-versions":
        models_config(tmp_path)
    assert served_version(tmp_path) is None
    assert classifier_threshold(tmp_path) == DecisionThreshold.paper()
    assert classifier_args(tmp_path) == [f"--model-repo={tmp_path.resolve()}"]


def test_the_stack_starts_its_classifier_with_the_repository(repo: Path, tmp_path: Path) -> None:
    """Composition only: nothing is started."""
    from radiounet.stream.local.stack import LocalStack, StackConfig

    stack = LocalStack(
        StackConfig(data_dir=tmp_path / "stack", model_repo=repo, stop_at_exit=False)
    )
    command = stack.services["classifier"].command
    assert command[-3:] == ["serve", "classifier", f"--model-repo={repo.resolve()}"]
    assert not any(a.startswith("--threshold") for a in command)
    assert stack.classifier_threshold.source == "calibrated for radio_unet/2"
    assert not any(a.startswith("--model-repo") for a in stack.services["tiler"].command)
