"""The services' environment, built offline as the image builds it: no TF runtime, a Predict.

The model server is the stand-in from this (full) environment, serving the
shipped repository; the client runs in the services' environment, whose
``tensorflow`` package holds only generated protobuf modules.
"""

from __future__ import annotations

import importlib.metadata
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from radiounet.stream.model_server.versions import list_versions

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_S = 240

CLIENT = """
import json, sys
import numpy as np
from radiounet.stream.tiler.model_client import ModelClient, RetryPolicy

with ModelClient(sys.argv[1], retry=RetryPolicy(max_attempts=3)) as client:
    version = client.wait_until_available(timeout=float(sys.argv[2]))
    info = client.metadata()
    tiles = np.random.default_rng(5).random((3, 192, 192), dtype=np.float32)
    probability = client.predict(tiles)
import tensorflow
print(json.dumps({
    "version": version,
    "input": [info.inputs["image"].dtype, list(info.inputs["image"].shape)],
    "shape": list(probability.shape),
    "dtype": str(probability.dtype),
    "finite": bool(np.isfinite(probability).all()),
    "min": float(probability.min()),
    "max": float(probability.max()),
    "std": float(probability.std()),
    "tensorflow": tensorflow.__file__,
    "runtime": sorted(m for m in sys.modules if m.startswith(("tensorflow.python", "keras"))),
}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``radiounet serve model-server`` of this environment on the shipped model_repo."""
    port = _free_port()
    log = tmp_path_factory.mktemp("model-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "radiounet"),
                "serve",
                "model-server",
                f"--port={port}",
                f"--model_config_file={ROOT / 'model_repo' / 'models.config'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_predict_round_trip_without_the_tf_runtime(model_server: str, services_venv: Path) -> None:
    # model_server first: it loads TensorFlow while the environment is built.
    done = subprocess.run(
        [str(services_venv / "bin" / "python"), "-c", CLIENT, model_server, str(SERVER_START_S)],
        capture_output=True,
        text=True,
        timeout=SERVER_START_S + 120,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["runtime"] == []
    assert reply["tensorflow"].startswith(str(services_venv))
    # models.config serves the latest shipped version.
    assert reply["version"] == max(list_versions(ROOT / "model_repo" / "radio_unet"))
    assert reply["input"] == ["DT_FLOAT", [None, 192, 192, 1]]
    assert reply["shape"] == [3, 192, 192] and reply["dtype"] == "float32"
    assert reply["finite"] and 0.0 <= reply["min"] <= reply["max"] <= 1.0
    assert reply["std"] > 0  # a map, not a constant


def test_serve_tiler_help_imports_no_tf_runtime(services_venv: Path) -> None:
    # The console script the image's ENTRYPOINT runs, under -X importtime (imports on stderr).
    done = subprocess.run(
        [
            str(services_venv / "bin" / "python"),
            "-X",
            "importtime",
            str(services_venv / "bin" / "radiounet"),
            "serve",
            "tiler",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--chunk-tiles" in done.stdout and "--model-server" in done.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "radiounet.cli.main" in imported
    assert not {m for m in imported if m.startswith(("tensorflow", "keras"))}


def test_the_environment_holds_the_lock_and_nothing_else(
    services_venv: Path, lock_reader: Callable[[Path], dict[str, str]]
) -> None:
    probe = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    done = subprocess.run(
        [str(services_venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    installed = {
        name.lower().replace("_", "-"): version for name, version in json.loads(done.stdout).items()
    }
    expected = dict(lock_reader(ROOT / "infra" / "docker" / "requirements-services.lock"))
    expected["radiounet"] = importlib.metadata.version("radiounet")
    assert installed == expected  # no pip, setuptools, wheel, tensorflow
    site = services_venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert not list((site / "site-packages" / "numpy").rglob("tests"))
