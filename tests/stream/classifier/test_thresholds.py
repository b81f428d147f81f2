"""Each map's threshold from its model version's metadata, in a folder or the object store."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from radiounet.model.repository import update_metadata
from radiounet.model.threshold import DecisionThreshold
from radiounet.stream.classifier.service import ClassifierStage
from radiounet.stream.classifier.thresholds import (
    FixedThreshold,
    RepositoryThresholds,
    parse_repository,
)
from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.keys import result_key
from radiounet.stream.model_sync import push
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb

from .test_service import MODEL, classify, put_map

FakeVersion = Callable[..., Path]
PAPER = DecisionThreshold.paper().value


def ref(version: int, name: str = "radio_unet") -> pb.ModelRef:
    return pb.ModelRef(name=name, version=version, signature="serving_default")


@pytest.fixture
def repo(tmp_path: Path, fake_version: FakeVersion) -> Path:
    """Version 1 uncalibrated, version 2 (the maps' MODEL) calibrated at 0.99."""
    fake_version(tmp_path, 1, {"base_filters": 16})
    fake_version(tmp_path, 2, {"base_filters": 16, "decision_threshold": 0.99})
    (tmp_path / "models.config").write_text(
        'model_config_list { config { name: "radio_unet" base_path: "/models/radio_unet" } }'
    )
    return tmp_path


@pytest.fixture(params=["folder", "store"])
def thresholds(request: pytest.FixtureRequest, repo: Path) -> RepositoryThresholds:
    """The same repository read from its folder, or from the store after `model push`."""
    if request.param == "folder":
        return RepositoryThresholds(folder=repo)
    store: ObjectStore = request.getfixturevalue("store")
    push(store, repo, prefix="models/")
    return RepositoryThresholds(store=store, bucket=store.bucket, prefix="models")


def test_each_version_gets_its_own_threshold(thresholds: RepositoryThresholds) -> None:
    assert thresholds.for_model(ref(2)) == DecisionThreshold(0.99, "calibrated for radio_unet/2")
    v1 = thresholds.for_model(ref(1))
    assert v1.value == PAPER and v1.source.endswith("radio_unet/1 has no calibrated threshold")
    v7 = thresholds.for_model(ref(7))
    assert v7.value == PAPER and v7.source.endswith("radio_unet/7 is not in the model repository")
    other = thresholds.for_model(ref(2, name="other_unet"))
    assert other.value == PAPER and "other_unet/2 is not in" in other.source
    none = thresholds.for_model(pb.ModelRef())
    assert none.value == PAPER and none.source.endswith("the map names no model version")


def test_bad_metadata_and_names_are_refused(repo: Path, fake_version: FakeVersion) -> None:
    fake_version(repo, 3, "{ not json")
    fake_version(repo, 4, {"base_filters": 16, "decision_threshold": 1.5})
    thresholds = RepositoryThresholds(folder=repo)
    for version, match in ((3, "invalid model metadata file"), (4, "decision_threshold must")):
        with pytest.raises(PermanentError, match=match) as info:
            thresholds.for_model(ref(version))
        assert info.value.code == "bad_model_metadata"
    with pytest.raises(PermanentError, match=re.escape("invalid model name '../radio_unet'")):
        thresholds.for_model(ref(2, name="../radio_unet"))


def test_an_unreachable_store_is_retried_not_guessed() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = ObjectStore(f"127.0.0.1:{port}", access_key="a", secret_key="b", bucket="radiounet")
    with pytest.raises(TransientError) as info:
        RepositoryThresholds(store=dead, bucket="radiounet", prefix="m/").for_model(ref(2))
    assert info.value.code == "object_store"


def test_the_classifier_follows_a_recalibration_without_a_restart(
    store: ObjectStore, repo: Path, tmp_path: Path
) -> None:
    push(store, repo, prefix="model_repo/")
    stage = ClassifierStage(
        store, thresholds=parse_repository(f"s3://{store.bucket}/model_repo/", store)
    )
    message = put_map(store, "A", tmp_path)
    assert message.model == MODEL  # version 2
    (first,) = classify(stage, message).outputs
    row = store.get_json(result_key("A"))
    assert (row["threshold"], row["threshold_source"]) == (0.99, "calibrated for radio_unet/2")
    assert row["diffuse"] is False and first.message.threshold == pytest.approx(0.99)
    ratio = row["ratio"]
    assert 0.0 < ratio < 0.99

    # Recalibrate version 2 below its R and push it: the next map of version 2 is diffuse.
    update_metadata(repo / "radio_unet" / "2", {"decision_threshold": ratio / 2})
    push(store, repo, prefix="model_repo/")
    (second,) = classify(stage, message, offset=1).outputs
    row = store.get_json(result_key("A"))
    assert row["threshold"] == pytest.approx(ratio / 2) and row["diffuse"] is True
    assert second.message.diffuse is True

    # A pointing without a cluster needs no threshold: no source in its row.
    classify(stage, put_map(store, "field-1", tmp_path, cluster=False), offset=2)
    assert store.get_json(result_key("field-1"))["threshold_source"] is None


def test_a_fixed_threshold_says_so(store: ObjectStore, tmp_path: Path) -> None:
    message = put_map(store, "A", tmp_path)
    classify(ClassifierStage(store, threshold=0.5), message)
    assert store.get_json(result_key("A"))["threshold_source"] == "given"
    classify(ClassifierStage(store), message, offset=1)
    row = store.get_json(result_key("A"))
    assert (row["threshold"], row["threshold_source"]) == (PAPER, DecisionThreshold.paper().source)
    with pytest.raises(ValueError, match="not both"):
        ClassifierStage(store, threshold=0.5, thresholds=FixedThreshold(DecisionThreshold.paper()))


@pytest.mark.parametrize(
    ("location", "has_store", "expected"),
    [
        ("s3://bucket/model_repo", True, ("bucket", "model_repo/")),
        ("s3://bucket", True, ("bucket", "")),
        ("s3:///model_repo/", True, "no bucket"),
        ("s3://ab/model_repo/", True, "invalid bucket name ab"),
        ("s3://bucket/model_repo/", False, "no object store"),
        ("/no/such/folder", True, "no such folder"),
    ],
)
def test_parse_repository(location: str, has_store: bool, expected: Any, tmp_path: Path) -> None:
    store = ObjectStore("127.0.0.1:1", access_key="a", secret_key="b", bucket="radiounet")
    if isinstance(expected, tuple):
        parsed = parse_repository(location, store if has_store else None)
        assert (parsed.bucket, parsed.prefix, parsed.folder) == (*expected, None)
        return
    with pytest.raises(ValueError, match=expected):
        parse_repository(location, store if has_store else None)


def test_a_folder_location_is_read_as_a_folder(repo: Path) -> None:
    parsed = parse_repository(str(repo), None)
    assert parsed.folder == repo and parsed.store is None
    assert (
        json.loads((repo / "radio_unet/2/assets.extra/radiounet.json").read_text())[
            "decision_threshold"
        ]
        == parsed.for_model(ref(2)).value
    )
