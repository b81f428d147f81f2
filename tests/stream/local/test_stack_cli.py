"""``radiounet stack up|status|demo`` and ``serve``: what they say and do around a recorded stack.

Stand-in processes (``python -m http.server``) play the stack's components, and
the real start of a stack is replaced by a fake, so these run in seconds.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from radiounet.cli.main import main
from radiounet.cli.stack_cmd import demo_hints
from radiounet.stream.local import stack as stack_module
from radiounet.stream.local.ports import free_port
from radiounet.stream.local.probes import http_ok
from radiounet.stream.local.processes import ManagedProcess, ProcessStartError, pid_alive
from radiounet.stream.local.stack import StackConfig
from radiounet.stream.local.stack_state import (
    ComponentRecord,
    StackState,
    load_state,
    save_state,
    terminate_stack,
)


def _stand_in(tmp_path: Path, name: str, port: int | None = None) -> tuple[ManagedProcess, int]:
    port = free_port() if port is None else port
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        log_path=tmp_path / name / f"{name}.log",
        cwd=tmp_path,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/"),
        stop_at_exit=True,
    )
    return proc, port


OPTIONS = {"source": "simulated", "source_args": [], "tilers": 2, "model_repo": "/models/repo"}


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, dict[str, ManagedProcess]]]:
    """A recorded stack of two running stand-ins, ``object-store`` and ``fetcher``."""
    data_dir = tmp_path / "stack"
    procs: dict[str, ManagedProcess] = {}
    records: dict[str, ComponentRecord] = {}
    for name in ("object-store", "fetcher"):
        proc, port = _stand_in(data_dir, name)
        proc.start()
        procs[name] = proc
        records[name] = stack_module._service_record(proc, port)  # as the stack records them
    settings = {"kafka_bootstrap": "127.0.0.1:1", "s3_endpoint": "127.0.0.1:2"}
    save_state(
        StackState(
            str(data_dir), records, "a", "s", extra={"settings": settings, "options": OPTIONS}
        )
    )
    try:
        yield data_dir, procs
    finally:
        state = load_state(data_dir)
        if state is not None:
            terminate_stack(state, timeout=5)
        for proc in procs.values():
            proc.stop()


class _NoStart:
    """Stands in for LocalStack where nothing may start."""

    def __init__(self, config: StackConfig) -> None:
        raise AssertionError(f"a stack was started: {config}")


def test_options_are_recorded_and_read_back(tmp_path: Path) -> None:
    config = StackConfig(
        tmp_path, model_repo=tmp_path / "repo", source="mosaics",
        source_args=("--mosaic-dir", "/m"), tilers=3,
    )  # fmt: skip
    options = config.options()
    back = StackConfig.from_options(tmp_path, options, stop_at_exit=False)
    assert back.options() == options
    assert (back.tilers, back.source, back.source_args) == (3, "mosaics", ("--mosaic-dir", "/m"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stack", "up", "--tilers", "0"], "--tilers must be at least 1, got 0"),
        (["stack", "up", "--source", "mosaics"], "--source mosaics needs --mosaic-dir"),
        (["stack", "up", "--model-repo", "nowhere"], "--model-repo nowhere: no models.config"),
        (["stack", "demo", "--limit", "0"], "--limit must be at least 1, got 0"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stack_module, "LocalStack", _NoStart)
    assert main([*argv, "--data-dir", str(tmp_path / "stack")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("radiounet stack: error: ")
    assert message in lines[0]


def test_up_refuses_other_options_than_the_running_stacks(
    recorded: tuple[Path, dict[str, ManagedProcess]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir, _ = recorded
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "models.config").write_text("")
    argv = ["stack", "up", "--data-dir", str(data_dir), "--tilers", "1", "--source", "mosaics"]
    argv += ["--mosaic-dir", str(tmp_path), "--model-repo", str(tmp_path / "other")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--tilers 2 (not 1)" in err
    assert "--source simulated (not mosaics)" in err
    assert f"--model-repo /models/repo (not {(tmp_path / 'other').resolve()})" in err
    assert f"radiounet stack down --data-dir {data_dir}" in err
    assert "another --data-dir" in err

    # Same options (or none): reused as before.
    assert main(["stack", "up", "--data-dir", str(data_dir), "--tilers", "2"]) == 0
    assert capsys.readouterr().out.startswith("reusing the running stack\n")


def test_status_of_a_partly_down_stack_is_a_table_with_a_hint(
    recorded: tuple[Path, dict[str, ManagedProcess]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, procs = recorded
    procs["fetcher"].kill()
    alive = procs["object-store"].pid
    assert main(["stack", "status", "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert f"stack in {data_dir} is not healthy: 1 of 2 components down" in out
    assert f"object-store    running  pid {alive}" in out
    assert "fetcher         DOWN" in out
    assert f"`radiounet stack up --data-dir {data_dir}`" in out
    assert "[" not in out


def test_up_restarts_only_the_down_services_on_their_ports(
    recorded: tuple[Path, dict[str, ManagedProcess]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir, procs = recorded
    before = load_state(data_dir)
    assert before is not None
    procs["fetcher"].kill()
    configs: list[StackConfig] = []

    def service(config: StackConfig, settings: dict[str, Any], name: str, port: int) -> Any:
        configs.append(config)
        return _stand_in(data_dir, name, port)[0]

    monkeypatch.setattr(stack_module, "_service_process", service)
    monkeypatch.setattr(stack_module, "LocalStack", _NoStart)
    assert main(["stack", "up", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "partly down (down: fetcher): restarting fetcher on the same ports" in out
    assert "restarted fetcher\n" in out
    after = load_state(data_dir)
    assert after is not None
    assert after.components["object-store"] == before.components["object-store"]
    assert after.components["fetcher"].ports == before.components["fetcher"].ports
    assert after.components["fetcher"].pid != before.components["fetcher"].pid
    assert pid_alive(after.components["fetcher"].pid)
    assert [c.options() for c in configs] == [OPTIONS]


class _FakeStack:
    configs: ClassVar[list[StackConfig]] = []
    fail: ClassVar[ProcessStartError | None] = None
    stopped: ClassVar[int] = 0

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        _FakeStack.configs.append(config)

    def start(self, progress: Any = None) -> StackState:
        if _FakeStack.fail is not None:
            raise _FakeStack.fail
        return StackState(str(self.config.data_dir), {}, "a", "s")

    def stop(self) -> None:
        _FakeStack.stopped += 1


def test_up_with_infrastructure_down_restarts_all_with_the_recorded_options(
    recorded: tuple[Path, dict[str, ManagedProcess]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir, procs = recorded
    procs["object-store"].kill()
    monkeypatch.setattr(_FakeStack, "configs", [])
    monkeypatch.setattr(stack_module, "LocalStack", _FakeStack)
    assert main(["stack", "up", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "partly down (down: object-store): stopping the rest" in out
    assert "--tilers 2" in out and "--model-repo /models/repo" in out
    assert "stack restarted\n" in out
    assert [c.options() for c in _FakeStack.configs] == [OPTIONS]
    assert not pid_alive(procs["fetcher"].pid or 0)


def test_a_component_that_fails_to_start_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "fetcher.log"
    fail = ProcessStartError(
        f"fetcher exited with status 2 before it was ready (log: {log})",
        "usage: ...\nradiounet serve: error: cannot read the cutouts\n",
    )
    monkeypatch.setattr(_FakeStack, "fail", fail)
    monkeypatch.setattr(_FakeStack, "stopped", 0)
    monkeypatch.setattr(stack_module, "LocalStack", _FakeStack)
    assert main(["stack", "up", "--data-dir", str(tmp_path / "stack")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"radiounet stack: error: fetcher exited with status 2 before it was ready (log: {log}); "
        "last log line: radiounet serve: error: cannot read the cutouts"
    )
    assert _FakeStack.stopped == 1


def test_demo_hints_address_the_stacks_folder(tmp_path: Path) -> None:
    hints = demo_hints(tmp_path)
    assert f"radiounet status --all --stack {tmp_path}" in hints
    assert f"radiounet results --stack {tmp_path}" in hints
    assert f"radiounet stack down --data-dir {tmp_path}" in hints
    assert "make stop" not in hints


def test_serve_with_its_metrics_port_taken_names_the_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "fetcher", "--source", "simulated"]
        argv += ["--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"127.0.0.1:{port}" in err
    assert "--metrics-port or RADIOUNET_METRICS_PORT" in err
