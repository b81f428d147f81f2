"""Version policies, version labels and version changes on disk, seen through GetModelStatus."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from radiounet.model.repository import version_folders
from radiounet.stream.model_server._protos import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from radiounet.stream.model_server.config import parse_model_config
from radiounet.stream.model_server.server import ModelServer, serve
from radiounet.stream.model_server.tensors import from_ndarray
from radiounet.stream.model_server.versions import list_versions

_State = get_model_status_pb2.ModelVersionStatus
_POLICIES = {
    "default": "",
    "latest2": "model_version_policy { latest { num_versions: 2 } }",
    "every": "model_version_policy { all {} }",
    "pinned": "model_version_policy { specific { versions: 1 versions: 3 } }"
    ' version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 }',
}


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("versions") / "radio_unet"
    for version in (1, 2, 3):
        shutil.copytree(tiny_model_dir / "1", folder / str(version))
    (folder / ".4-staging").mkdir()  # an export in progress is not a version
    return folder


@pytest.fixture(scope="module")
def policy_server(three_versions: Path) -> Iterator[ModelServer]:
    text = (
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{name}" base_path: "{three_versions}" '
            f'model_platform: "tensorflow" {policy} }}\n'
            for name, policy in _POLICIES.items()
        )
        + "}\n"
    )
    with serve(
        parse_model_config(text), host="127.0.0.1", port=0, file_system_poll_wait_seconds=0
    ) as running:
        yield running


def _status(server: ModelServer, name: str, **spec: object) -> dict[int, str]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if "version" in spec:
        request.model_spec.version.value = int(spec["version"])  # type: ignore[call-overload]
    if "label" in spec:
        request.model_spec.version_label = str(spec["label"])
    with grpc.insecure_channel(server.target) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request)
    for entry in response.model_version_status:
        assert entry.status.error_code == 0
        assert entry.status.error_message == ""
    return {e.version: _State.State.Name(e.state) for e in response.model_version_status}


def _served_version(server: ModelServer, name: str, **spec: object) -> int:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if "version" in spec:
        request.model_spec.version.value = int(spec["version"])  # type: ignore[call-overload]
    if "label" in spec:
        request.model_spec.version_label = str(spec["label"])
    request.inputs["image"].CopyFrom(from_ndarray(np.zeros((1, 192, 192, 1), np.float32)))
    with grpc.insecure_channel(server.target) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request)
    return int(reply.model_spec.version.value)


def test_list_versions_ignores_non_numeric_folders(three_versions: Path) -> None:
    assert list_versions(three_versions) == [1, 2, 3]
    assert list_versions(three_versions / "missing") == []


def test_list_versions_follows_the_version_folder_rule(
    tmp_path: Path, odd_version_folders: Callable[[Path], Path]
) -> None:
    # The repository's rule (radiounet.model.repository.version_folders), with version 0
    # as TF Serving has it; never 007 (version 7 is loaded from <base_path>/7).
    model_dir = odd_version_folders(tmp_path / "radio_unet")
    assert list_versions(model_dir) == list(version_folders(model_dir, allow_zero=True))
    assert list_versions(model_dir) == [0, 1, 10, 12]
    assert list_versions(str(model_dir)) == [0, 1, 10, 12]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default", {3: "AVAILABLE"}),
        ("latest2", {2: "AVAILABLE", 3: "AVAILABLE"}),
        ("every", {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}),
        ("pinned", {1: "AVAILABLE", 3: "AVAILABLE"}),
    ],
)
def test_policy_selects_versions(policy_server: ModelServer, name: str, expected) -> None:
    assert _status(policy_server, name) == expected
    assert _served_version(policy_server, name) == max(expected)  # no version: the latest


def test_specific_version_and_labels(policy_server: ModelServer) -> None:
    assert _status(policy_server, "every", version=2) == {2: "AVAILABLE"}
    assert _served_version(policy_server, "every", version=1) == 1
    assert _status(policy_server, "pinned", label="stable") == {1: "AVAILABLE"}
    assert _served_version(policy_server, "pinned", label="stable") == 1
    assert _served_version(policy_server, "pinned", label="canary") == 3


@pytest.mark.parametrize(
    ("name", "spec", "code", "message"),
    [
        ("nope", {}, grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope"),
        ("default", {"version": 1}, grpc.StatusCode.NOT_FOUND, "Could not find version 1"),
        ("pinned", {"label": "beta"}, grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized"),
        ("", {}, grpc.StatusCode.INVALID_ARGUMENT, "Missing model name"),
    ],
)
def test_status_errors(policy_server: ModelServer, name, spec, code, message) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _status(policy_server, name, **spec)
    assert info.value.code() == code
    assert message in info.value.details()


def test_predict_on_a_version_the_policy_does_not_serve(policy_server: ModelServer) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _served_version(policy_server, "pinned", version=2)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Servable not found for request: Specific(pinned, 2)"


def test_new_version_replaces_the_old_one(tmp_path: Path, make_versions) -> None:
    folder = make_versions(tmp_path / "radio_unet", [1])
    text = f'model_config_list {{ config {{ name: "m" base_path: "{folder}" }} }}'
    with serve(
        parse_model_config(text), host="127.0.0.1", port=0, file_system_poll_wait_seconds=0
    ) as server:
        assert _status(server, "m") == {1: "AVAILABLE"}
        make_versions(folder, [2])
        server.manager.reconcile()  # what the file-system poll does every second
        assert _status(server, "m") == {2: "AVAILABLE", 1: "END"}
        assert _served_version(server, "m") == 2
        # A broken new version is reported, and the old one keeps serving.
        (folder / "3").mkdir()
        server.manager.reconcile()
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "m"
        request.model_spec.version.value = 3
        with grpc.insecure_channel(server.target) as channel:
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request)
        (entry,) = reply.model_version_status
        assert _State.State.Name(entry.state) == "END"
        assert entry.status.error_code == grpc.StatusCode.UNKNOWN.value[0]
        assert "Loading servable: {name: m version: 3} failed" in entry.status.error_message
        assert _served_version(server, "m") == 2
        # Versions going away: the retired version 1 is the latest again and is reloaded.
        shutil.rmtree(folder / "3")
        shutil.rmtree(folder / "2")
        server.manager.reconcile()
        assert _status(server, "m") == {2: "END", 1: "AVAILABLE"}
        assert _served_version(server, "m") == 1


def test_server_refuses_to_start_without_versions(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    text = f'model_config_list {{ config {{ name: "m" base_path: "{tmp_path / "empty"}" }} }}'
    with pytest.raises(ValueError, match="no version folders"):
        serve(parse_model_config(text), host="127.0.0.1", port=0)
