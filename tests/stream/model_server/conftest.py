"""Fixtures of the model-server tests: a served tiny model, gRPC stubs, reference predictions."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from numpy.typing import NDArray

from radiounet.model.predictor import SavedModelPredictor
from radiounet.stream.model_server._protos import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from radiounet.stream.model_server.config import single_model_config
from radiounet.stream.model_server.server import ModelServer, serve


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_repo: Path) -> Path:
    """``radio_unet/`` of the tiny repository (version folder ``1``)."""
    return tiny_model_repo / "radio_unet"


@pytest.fixture(scope="session")
def reference(tiny_model_repo: Path) -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    """The in-process predictor of the tiny model: what every server answer must equal."""
    return SavedModelPredictor(tiny_model_repo)


@pytest.fixture(scope="session")
def server(tiny_model_dir: Path) -> Iterator[ModelServer]:
    """A server of the tiny model with default batching and HTTP on a free port."""
    with serve(
        single_model_config("radio_unet", tiny_model_dir),
        host="127.0.0.1",
        port=0,
        http_port=0,
        file_system_poll_wait_seconds=0,
    ) as running:
        yield running


@pytest.fixture
def channel(server: ModelServer) -> Iterator[grpc.Channel]:
    opts = [("grpc.max_send_message_length", 2**26), ("grpc.max_receive_message_length", 2**26)]
    with grpc.insecure_channel(server.target, options=opts) as chan:
        yield chan


@pytest.fixture
def predict_stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture
def model_stub(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture
def tiles() -> NDArray[np.float32]:
    """Six seeded tiles in [0, 1]."""
    return np.random.default_rng(7).random((6, 192, 192), dtype=np.float32)


@pytest.fixture
def make_versions(tiny_model_dir: Path) -> Callable[[Path, list[int]], Path]:
    """``make_versions(folder, [1, 2])``: copy the tiny model in as those versions."""

    def make(target: Path, versions: list[int]) -> Path:
        for version in versions:
            shutil.copytree(tiny_model_dir / "1", target / str(version))
        return target

    return make
