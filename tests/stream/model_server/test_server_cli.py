"""The command line: --help, flags and environment, a served process stopped by SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radiounet.model.repository import default_model_repo
from radiounet.stream.model_server.config import single_model_config
from radiounet.stream.model_server.server import (
    build_parser,
    main,
    options_from_args,
    serve,
)
from radiounet.stream.model_server.versions import list_versions
from radiounet.stream.tiler.model_client import ModelClient


def test_help_names_the_stand_in(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "STAND-IN for TensorFlow Serving" in out
    for flag in ("--port", "--model_config_file", "--model_base_path", "--enable_batching"):
        assert flag in out
    assert "RADIOUNET_MODEL_SERVER_PORT" in out


def test_flags_environment_and_batching_file(tmp_path: Path) -> None:
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 16 } batch_timeout_micros { value: 100 }")
    env = {
        "RADIOUNET_MODEL_SERVER_PORT": "9001",
        "RADIOUNET_MODEL_SERVER_MODEL_BASE_PATH": str(tmp_path),
        "RADIOUNET_MODEL_SERVER_MODEL_NAME": "radio_unet",
        "RADIOUNET_MODEL_SERVER_ENABLE_BATCHING": "false",
    }
    args = build_parser(env).parse_args(
        ["--port=9002", f"--batching_parameters_file={batching}", "--num_batch_threads", "2"]
    )
    config, options = options_from_args(args)
    assert options.port == 9002  # the flag wins over the environment
    assert config.model_config_list.config[0].base_path == str(tmp_path)
    assert not options.batching.enabled
    assert (options.batching.max_batch_size, options.batching.batch_timeout_micros) == (16, 100)
    assert options.batching.num_batch_threads == 2
    assert options.http_port is None
    args = build_parser(env).parse_args(["--enable_batching", "--rest_api_port=8501"])
    assert options_from_args(args)[1].batching.enabled
    assert options_from_args(args)[1].http_port == 8501


@pytest.mark.parametrize(
    "argv",
    [[], ["--model_config_file=/a", "--model_base_path=/b"]],
)
def test_model_flags_must_be_one_of_two(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        options_from_args(build_parser({}).parse_args(argv))


def test_serves_the_shipped_repository() -> None:
    with (
        serve(default_model_repo() / "models.config", host="127.0.0.1", port=0) as server,
        ModelClient(server.target) as client,
    ):
        info = client.metadata()
    latest = max(list_versions(default_model_repo() / "radio_unet"))  # policy: latest 1
    assert latest >= 2 and (info.name, info.version) == ("radio_unet", latest)
    assert info.inputs["image"].shape == (None, 192, 192, 1)
    assert info.outputs["probability"].dtype == "DT_FLOAT"


def test_process_serves_and_stops_on_sigterm(tiny_model_dir: Path, reference) -> None:
    command = [
        sys.executable,
        "-m",
        "radiounet.stream.model_server",
        "--host=127.0.0.1",
        "--port=0",
        "--model_name=radio_unet",
        f"--model_base_path={tiny_model_dir}",
    ]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            found = re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "the server did not start"
        tiles = np.random.default_rng(5).random((3, 192, 192), dtype=np.float32)
        with ModelClient(f"127.0.0.1:{port}") as client:
            assert client.wait_until_available(timeout=30) == 1
            np.testing.assert_allclose(client.predict(tiles), reference(tiles), atol=1e-6)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "model server stopped" in rest


def test_start_errors(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    assert main([f"--model_base_path={tmp_path}", "--port=0"]) == 1
    assert "no version folders" in capsys.readouterr().err
    config = single_model_config("radio_unet", tiny_model_dir)
    with serve(config, host="127.0.0.1", port=0) as first:
        with pytest.raises(ValueError, match="cannot listen"):
            serve(config, host="127.0.0.1", port=first.port)
