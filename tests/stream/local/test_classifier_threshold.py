"""The local stack's classifier threshold: the calibrated one of the version the server serves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from radiounet.model.threshold import DecisionThreshold
from radiounet.stream.local.classifier_threshold import (
    classifier_args,
    classifier_threshold,
    served_version,
    threshold_flag,
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


def test_the_latest_calibrated_version_gives_the_flag(repo: Path) -> None:
    served = served_version(repo)
    assert served is not None and served.version == 2
    assert classifier_threshold(repo) == DecisionThreshold(0.0234, "calibrated for radio_unet/2")
    assert classifier_args(repo) == ["--threshold=0.0234"]


def test_an_uncalibrated_latest_version_gives_no_flag(
    repo: Path, fake_version: FakeVersion
) -> None:
    fake_version(repo, 3, {"base_filters": 16})
    assert classifier_threshold(repo) == DecisionThreshold.paper()
    assert classifier_args(repo) == []


def test_the_policy_decides_the_served_version(repo: Path, fake_version: FakeVersion) -> None:
    fake_version(repo, 3, {"base_filters": 16})
    models_config(repo, policy="    model_version_policy { specific { versions: 2 } }\n")
    assert classifier_args(repo) == ["--threshold=0.0234"]
    # Two served versions: the tiler asks for the latest of them.
    models_config(repo, policy="    model_version_policy { latest { num_versions: 2 } }\n")
    assert classifier_args(repo) == []


def test_the_shipped_config_names_the_container_mount(repo: Path) -> None:
    # /models/radio_unet does not exist here: the folder of that name beside models.config.
    models_config(repo, base_path="/models/radio_unet")
    assert classifier_args(repo) == ["--threshold=0.0234"]


@pytest.mark.parametrize("problem", ["no-config", "bad-config", "other-model", "no-versions"])
def test_an_unknown_served_version_gives_no_flag(tmp_path: Path, problem: str) -> None:
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
    assert classifier_args(tmp_path) == []


def test_threshold_flag_round_trips_the_value() -> None:
    value = 0.49009178238838086
    (flag,) = threshold_flag(DecisionThreshold(value, "calibrated for radio_unet/9"))
    assert float(flag.removeprefix("--threshold=")) == value
    assert threshold_flag(DecisionThreshold.paper()) == []
    assert threshold_flag(DecisionThreshold.given(0.02)) == ["--threshold=0.02"]


def test_the_stack_starts_its_classifier_with_the_flag(repo: Path, tmp_path: Path) -> None:
    """Composition only: nothing is started."""
    from radiounet.stream.local.stack import LocalStack, StackConfig

    stack = LocalStack(
        StackConfig(data_dir=tmp_path / "stack", model_repo=repo, stop_at_exit=False)
    )
    command = stack.services["classifier"].command
    assert command[-3:] == ["serve", "classifier", "--threshold=0.0234"]
    assert stack.classifier_threshold.source == "calibrated for radio_unet/2"
    assert not any(a.startswith("--threshold") for a in stack.services["tiler"].command)
