"""The model-server stand-in over the tiny model, shared by the tiler's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from radiounet.stream.model_server.config import single_model_config
from radiounet.stream.model_server.server import ModelServer, serve


@pytest.fixture(scope="module")
def server(tiny_model_repo: Path) -> Iterator[ModelServer]:
    with serve(
        single_model_config("radio_unet", tiny_model_repo / "radio_unet"),
        host="127.0.0.1",
        port=0,
        file_system_poll_wait_seconds=0,
    ) as running:
        yield running
