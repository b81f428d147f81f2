"""The batcher merges queued requests into one model call and hands each its own slice."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
import numpy as np
import pytest
from numpy.typing import NDArray

from radiounet.stream.model_server.batching import Batcher, BatchingOptions
from radiounet.stream.model_server.config import single_model_config
from radiounet.stream.model_server.server import serve
from radiounet.stream.model_server.status import ServingError
from radiounet.stream.tiler.model_client import ModelClient


class _Model:
    """Doubles its input; records the batch sizes it ran."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        self.batches.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}


@pytest.fixture
def model() -> Iterator[_Model]:
    yield _Model()


def _rows(start: int, n: int) -> dict[str, NDArray[np.float32]]:
    return {"x": np.arange(start, start + n, dtype=np.float32)[:, None]}


def test_queued_requests_run_as_one_batch(model: _Model) -> None:
    # A long timeout: the batch runs as soon as it is full, not when the timeout ends.
    batcher = Batcher(model, BatchingOptions(max_batch_size=12, batch_timeout_micros=60_000_000))
    try:
        futures = [batcher.submit(_rows(10 * i, 3)) for i in range(4)]
        results = [f.result(timeout=30) for f in futures]
    finally:
        batcher.close()
    assert model.batches == [12]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"][:, 0], 2 * np.arange(10 * i, 10 * i + 3))


def test_batches_never_exceed_max_size(model: _Model) -> None:
    gate = threading.Event()
    model.gate = gate
    batcher = Batcher(model, BatchingOptions(max_batch_size=5, batch_timeout_micros=0))
    try:
        futures = [batcher.submit(_rows(i, 2)) for i in range(6)]
        gate.set()
        for i, future in enumerate(futures):
            np.testing.assert_array_equal(future.result(timeout=30)["y"][:, 0], [2 * i, 2 * i + 2])
    finally:
        batcher.close()
    assert sum(model.batches) == 12
    assert max(model.batches) <= 5


def test_close_runs_what_is_queued(model: _Model) -> None:
    batcher = Batcher(model, BatchingOptions(max_batch_size=64, batch_timeout_micros=60_000_000))
    future = batcher.submit(_rows(0, 2))
    batcher.close()
    assert future.result(timeout=30)["y"].shape == (2, 1)
    with pytest.raises(ServingError) as info:
        batcher.submit(_rows(0, 1))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_refusals(model: _Model) -> None:
    gate = threading.Event()
    model.gate = gate
    options = BatchingOptions(
        max_batch_size=4, batch_timeout_micros=0, max_enqueued_batches=1, num_batch_threads=1
    )
    batcher = Batcher(model, options)
    try:
        with pytest.raises(ServingError, match="Task size 5 is larger than maximum input batch"):
            batcher.submit(_rows(0, 5))
        with pytest.raises(ServingError, match="equal 0th-dimension"):
            batcher.submit({"x": np.zeros((2, 1)), "z": np.zeros((3, 1))})
        running = batcher.submit(_rows(0, 4))
        assert model.entered.wait(30)  # the batch thread took it and is held at the gate
        queued = batcher.submit(_rows(0, 4))
        with pytest.raises(ServingError) as info:
            batcher.submit(_rows(0, 1))
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "queue" in info.value.message
    finally:
        gate.set()
        batcher.close()
    assert running.result(timeout=30)["y"].shape == (4, 1)
    assert queued.result(timeout=30)["y"].shape == (4, 1)


def test_batch_threads_default_to_the_cpus_and_run_batches_at_once() -> None:
    assert BatchingOptions().num_batch_threads == len(os.sched_getaffinity(0))  # as TF Serving
    inside = threading.Semaphore(0)
    gate = threading.Event()

    def held(inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        inside.release()
        gate.wait(30)
        return {"y": inputs["x"] * 2}

    options = BatchingOptions(max_batch_size=2, batch_timeout_micros=0, num_batch_threads=2)
    batcher = Batcher(held, options)
    try:
        futures = [batcher.submit(_rows(10 * i, 2)) for i in range(2)]
        # Both full batches are inside the model together: two threads run them.
        assert inside.acquire(timeout=30) and inside.acquire(timeout=30)
        gate.set()
        for i, future in enumerate(futures):
            np.testing.assert_array_equal(
                future.result(timeout=30)["y"][:, 0], [20 * i, 20 * i + 2]
            )
    finally:
        gate.set()
        batcher.close()


def test_model_errors_reach_every_request() -> None:
    def broken(inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        raise ServingError(grpc.StatusCode.INTERNAL, "boom")

    batcher = Batcher(broken, BatchingOptions(max_batch_size=4, batch_timeout_micros=60_000_000))
    try:
        futures = [batcher.submit(_rows(0, 2)) for _ in range(2)]
        for future in futures:
            with pytest.raises(ServingError, match="boom"):
                future.result(timeout=30)
    finally:
        batcher.close()


def test_concurrent_predicts_are_merged_by_the_server(tiny_model_dir, reference) -> None:
    # 8 requests of 8 tiles fill one batch of 64; the long timeout never ends a batch early.
    batching = BatchingOptions(max_batch_size=64, batch_timeout_micros=30_000_000)
    tiles = np.random.default_rng(3).random((64, 192, 192), dtype=np.float32)
    with (
        serve(
            single_model_config("radio_unet", tiny_model_dir),
            host="127.0.0.1",
            port=0,
            batching=batching,
            file_system_poll_wait_seconds=0,
        ) as server,
        ModelClient(server.target, max_in_flight=8) as client,
    ):
        servable = server.manager.servable("radio_unet")
        before = servable.run_count
        out = client.predict_concurrently(tiles, batch_size=8)
        model_calls = servable.run_count - before
        assert server.metrics.wrapped_run_count.value() == model_calls
    assert model_calls < 8
    np.testing.assert_allclose(out, reference(tiles), atol=1e-6)
