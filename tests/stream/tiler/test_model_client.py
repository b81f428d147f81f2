"""ModelClient against a real gRPC model server: values, errors, retries, waiting, batching."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from numpy.typing import NDArray

from radiounet.model.predictor import SavedModelPredictor
from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.model_server.config import single_model_config
from radiounet.stream.model_server.server import ModelServer, serve
from radiounet.stream.tiler.model_client import (
    ModelClient,
    ModelRequestError,
    ModelUnavailableError,
    RetryPolicy,
)

_FAST = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


@pytest.fixture(scope="module")
def reference(tiny_model_repo: Path) -> SavedModelPredictor:
    return SavedModelPredictor(tiny_model_repo)


@pytest.fixture
def client(server: ModelServer) -> Iterator[ModelClient]:
    with ModelClient(server.target, retry=_FAST) as c:
        yield c


@pytest.fixture
def tiles() -> NDArray[np.float32]:
    return np.random.default_rng(11).random((23, 192, 192), dtype=np.float32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_predict_equals_in_process_model(client, tiles, reference) -> None:
    expected = reference(tiles[:5])
    out = client.predict(tiles[:5])
    assert out.dtype == np.float32 and out.shape == (5, 192, 192)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(client.predict(tiles[:5, ..., None]), expected, atol=1e-6)
    out[0, 0, 0] = np.nan  # callers blank pixels in place
    assert client.predict(tiles[:0]).shape == (0, 192, 192)


def test_predict_concurrently_keeps_order(client, tiles, reference) -> None:
    out = client.predict_concurrently(tiles, batch_size=5)
    np.testing.assert_allclose(out, reference(tiles), atol=1e-6)
    parts = client.predict_many([tiles[:2], tiles[2:9], tiles[9:]])
    assert [len(p) for p in parts] == [2, 7, 14]
    np.testing.assert_allclose(np.concatenate(parts), out, atol=1e-6)


def test_large_messages(server, reference) -> None:
    tiles = np.random.default_rng(2).random((64, 192, 192), dtype=np.float32)  # 9.4 MB
    with ModelClient(server.target, retry=_FAST) as client:
        np.testing.assert_allclose(client.predict(tiles), reference(tiles), atol=1e-6)
    with ModelClient(server.target, retry=_FAST, max_message_bytes=4 * 2**20) as small:
        with pytest.raises(ModelRequestError) as info:  # no retry can make it fit
            small.predict(tiles)
    assert info.value.status == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_metadata_and_status(client) -> None:
    info = client.metadata()
    assert (info.name, info.version, info.signature_name) == ("radio_unet", 1, "serving_default")
    assert info.method_name == "tensorflow/serving/predict"
    assert info.inputs["image"].shape == (None, 192, 192, 1)
    assert info.outputs["probability"].shape == (None, 192, 192, 1)
    assert client.wait_until_available(timeout=10) == 1


@pytest.mark.parametrize(
    ("options", "tile", "status", "message"),
    [
        ({"input_key": "img"}, 192, grpc.StatusCode.INVALID_ARGUMENT, "Send extra: {img}"),
        ({}, 100, grpc.StatusCode.INVALID_ARGUMENT, "shape [2,100,100,1]"),
        ({"model_name": "nope"}, 192, grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
        ({"version": 4}, 192, grpc.StatusCode.NOT_FOUND, "Specific(radio_unet, 4)"),
        ({"version_label": "x"}, 192, grpc.StatusCode.INVALID_ARGUMENT, "label: x"),
        ({"signature_name": "s"}, 192, grpc.StatusCode.FAILED_PRECONDITION, '"s" not found'),
    ],
)
def test_refused_requests_raise_request_errors(server, options, tile, status, message) -> None:
    retries: list[int] = []
    with ModelClient(
        server.target, retry=_FAST, on_retry=lambda n, e: retries.append(n), **options
    ) as client:
        with pytest.raises(ModelRequestError) as info:
            client.predict(np.zeros((2, tile, tile), np.float32))
    assert info.value.status == status
    assert message in info.value.details and message in str(info.value)
    assert isinstance(info.value, PermanentError)
    assert info.value.code == "model_" + status.name.lower()
    assert retries == []  # permanent: never retried


def test_bad_tile_rank_is_a_value_error(client) -> None:
    with pytest.raises(ValueError, match="tiles must be"):
        client.predict(np.zeros((2, 192, 192, 3), np.float32))


def test_server_down_retries_then_gives_up() -> None:
    calls: list[tuple[int, ModelUnavailableError]] = []
    with ModelClient(
        f"127.0.0.1:{_free_port()}", retry=_FAST, on_retry=lambda n, e: calls.append((n, e))
    ) as client:
        with pytest.raises(ModelUnavailableError) as info:
            client.predict(np.zeros((1, 192, 192), np.float32))
        with pytest.raises(ModelUnavailableError, match="not available after"):
            client.wait_until_available(timeout=0.2)
    assert [n for n, _ in calls] == [1, 2]
    assert all(e.status == grpc.StatusCode.UNAVAILABLE for _, e in calls)
    assert info.value.status == grpc.StatusCode.UNAVAILABLE
    assert "gave up after 3 attempts" in str(info.value)
    assert isinstance(info.value, TransientError)


def test_stop_event_ends_endless_retries() -> None:
    stop = threading.Event()
    forever = RetryPolicy(max_attempts=None, initial_backoff_s=0.01, max_backoff_s=0.05)
    with ModelClient(
        f"127.0.0.1:{_free_port()}",
        retry=forever,
        stop=stop,
        on_retry=lambda n, e: stop.set() if n == 3 else None,
    ) as client:
        with pytest.raises(ModelUnavailableError, match="stopped"):
            client.predict(np.zeros((1, 192, 192), np.float32))


def test_client_waits_for_a_server_that_starts_later(tiny_model_repo, tiles, reference) -> None:
    port = _free_port()
    retrying = threading.Event()
    results: dict[str, object] = {}
    forever = RetryPolicy(max_attempts=None, initial_backoff_s=0.02, max_backoff_s=0.2)

    with ModelClient(
        f"127.0.0.1:{port}", retry=forever, on_retry=lambda n, e: retrying.set()
    ) as client:

        def call() -> None:
            try:
                results["out"] = client.predict(tiles[:4])
            except Exception as exc:  # reported below
                results["error"] = exc

        worker = threading.Thread(target=call)
        worker.start()
        assert retrying.wait(30), "the client never retried"
        with serve(
            single_model_config("radio_unet", tiny_model_repo / "radio_unet"),
            host="127.0.0.1",
            port=port,
            file_system_poll_wait_seconds=0,
        ):
            worker.join(60)
    assert not worker.is_alive()
    assert "error" not in results, results.get("error")
    np.testing.assert_allclose(results["out"], reference(tiles[:4]), atol=1e-6)


def test_closed_client_refuses_work(server) -> None:
    client = ModelClient(server.target, retry=_FAST)
    client.close()
    client.close()  # idempotent
    with pytest.raises(ModelUnavailableError, match="closed"):
        client.submit(np.zeros((1, 192, 192), np.float32))
    with pytest.raises(ModelUnavailableError, match="closed"):
        client.predict(np.zeros((1, 192, 192), np.float32))


def test_version_and_label_are_exclusive(server) -> None:
    with pytest.raises(ValueError, match="not both"):
        ModelClient(server.target, version=1, version_label="stable")
