"""Model metadata: the calibrated decision threshold, its checks, the atomic update, its lookup."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from radiounet.model.repository import (
    METADATA_FILE,
    ModelMetadata,
    resolve_model,
    update_metadata,
)
from radiounet.model.threshold import PAPER, DecisionThreshold, threshold_for_map, threshold_of

#: Metadata as written before the threshold existed (shipped versions 1-4 look like this).
OLD = {
    "base_filters": 16,
    "depth": 4,
    "description": "an older version",
    "profile": "lotss-dr2-lowres",
    "tile": 192,
    "trained": True,
    "training": {"epochs": 3, "datasets": [{"path": "/data/sim", "seed": 1, "setup": "x"}]},
}
FakeVersion = Callable[[Path, int, dict[str, Any] | str], Path]
CALIBRATION = {"split": "test", "clusters": 40, "accuracy": 0.85, "command": "radiounet ..."}


def test_old_metadata_loads_uncalibrated(tmp_path: Path, fake_version: FakeVersion) -> None:
    fake_version(tmp_path, 4, OLD)
    meta = resolve_model(tmp_path).metadata
    assert meta.decision_threshold is None
    assert meta.calibration == {}
    assert meta.training == OLD["training"]
    assert threshold_of(resolve_model(tmp_path)) == DecisionThreshold(0.015, PAPER)


def test_calibrated_metadata_round_trip(tmp_path: Path, fake_version: FakeVersion) -> None:
    meta = ModelMetadata(base_filters=16, decision_threshold=0.0234, calibration=CALIBRATION)
    assert ModelMetadata(**json.loads(meta.to_json())) == meta
    fake_version(tmp_path, 5, meta.to_json())
    model = resolve_model(tmp_path)
    assert model.metadata == meta
    assert model.metadata.decision_threshold == 0.0234
    assert model.metadata.calibration["accuracy"] == 0.85
    assert threshold_of(model) == DecisionThreshold(0.0234, "calibrated for radio_unet/5")


@pytest.mark.parametrize(
    "value", [0, 1, 0.0, 1.0, -0.01, 1.5, math.nan, math.inf, "0.02", True, [0.02]]
)
def test_bad_threshold_is_refused_when_read(
    tmp_path: Path, value: Any, fake_version: FakeVersion
) -> None:
    fake_version(tmp_path, 1, json.dumps({**OLD, "decision_threshold": value}))
    message = r"invalid model metadata file .*radiounet\.json: decision_threshold must be a"
    with pytest.raises(ValueError, match=message + r" number in \(0, 1\) or null"):
        resolve_model(tmp_path)
    with pytest.raises(ValueError, match="decision_threshold must be"):
        ModelMetadata(base_filters=2, decision_threshold=value)


def test_bad_calibration_is_refused(tmp_path: Path, fake_version: FakeVersion) -> None:
    fake_version(tmp_path, 1, {**OLD, "calibration": ["not", "an", "object"]})
    with pytest.raises(ValueError, match="calibration must be a JSON object, got list"):
        resolve_model(tmp_path)


def test_update_metadata_sets_keys_and_keeps_the_rest(
    tmp_path: Path, fake_version: FakeVersion
) -> None:
    folder = fake_version(tmp_path, 3, OLD)
    path = folder / METADATA_FILE
    path.chmod(0o644)
    updated = update_metadata(folder, {"decision_threshold": 0.03, "calibration": CALIBRATION})
    stored = json.loads(path.read_text())
    assert stored == {**OLD, "decision_threshold": 0.03, "calibration": CALIBRATION}
    assert updated == resolve_model(tmp_path).metadata
    assert asdict(updated) == stored
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["radiounet.json"]  # no temp file


def test_update_metadata_refuses_a_bad_value_and_changes_nothing(
    tmp_path: Path, fake_version: FakeVersion
) -> None:
    folder = fake_version(tmp_path, 3, OLD)
    before = (folder / METADATA_FILE).read_bytes()
    with pytest.raises(ValueError, match=r"cannot update .*decision_threshold must be"):
        update_metadata(folder, {"decision_threshold": 1.2})
    with pytest.raises(ValueError, match=r"cannot update .*unexpected keyword argument 'colour'"):
        update_metadata(folder, {"colour": "red"})
    assert (folder / METADATA_FILE).read_bytes() == before
    assert sorted(p.name for p in (folder / METADATA_FILE).parent.iterdir()) == ["radiounet.json"]


# --- the threshold of a map's version -------------------------------------------------------


def map_header(name: str | None = "radio_unet", version: int | None = 5, width: int = 16) -> dict:
    header: dict[str, Any] = {"RUBASEF": width}
    if name is not None:
        header["RUMODEL"] = name
    if version is not None:
        header["RUMODVER"] = version
    return header


@pytest.fixture
def repo(tmp_path: Path, fake_version: FakeVersion) -> Path:
    fake_version(tmp_path, 4, OLD)
    fake_version(tmp_path, 5, {**OLD, "decision_threshold": 0.0234, "calibration": CALIBRATION})
    return tmp_path


def test_threshold_for_map_of_a_calibrated_version(repo: Path) -> None:
    assert threshold_for_map(map_header(), repo) == (
        DecisionThreshold(0.0234, "calibrated for radio_unet/5"),
        None,
    )
    # The model folder and the version folder find it too.
    assert threshold_for_map(map_header(), repo / "radio_unet")[0].value == 0.0234
    assert threshold_for_map(map_header(), repo / "radio_unet" / "5")[0].value == 0.0234


def test_threshold_for_map_of_an_uncalibrated_version(repo: Path) -> None:
    assert threshold_for_map(map_header(version=4), repo) == (DecisionThreshold.paper(), None)


@pytest.mark.parametrize(
    ("header", "note"),
    [
        (map_header(name=None), "the map names no model version"),
        (map_header(version=None), "the map names no model version"),
        (map_header(version=9), "model radio_unet/9 not found: model version 9 not in"),
        (map_header(name="other"), "model other/5 not found: no version folders"),
        (map_header(width=32), "has base width 16, the map's model 32"),
    ],
    ids=["no-name", "no-version", "missing-version", "other-model", "other-width"],
)
def test_threshold_for_map_falls_back_to_the_paper(repo: Path, header: dict, note: str) -> None:
    threshold, why = threshold_for_map(header, repo)
    assert threshold == DecisionThreshold(0.015, "paper (Stuardi et al. 2024)")
    assert why is not None and note in why


def test_threshold_for_map_checks_the_model_name_in_a_model_folder(repo: Path) -> None:
    threshold, why = threshold_for_map(map_header(name="other"), repo / "radio_unet")
    assert threshold == DecisionThreshold.paper()
    assert why is not None and "is model 'radio_unet', not 'other'" in why
