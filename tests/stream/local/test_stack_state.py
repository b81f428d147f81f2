"""The stack state file: round trip, liveness against real processes, stopping by record."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from radiounet.stream.local.components import ObjectStore, WeedPorts
from radiounet.stream.local.ports import free_port
from radiounet.stream.local.probes import http_ok
from radiounet.stream.local.processes import ManagedProcess, pid_alive
from radiounet.stream.local.stack_state import (
    ComponentRecord,
    StackState,
    component_alive,
    dead_components,
    load_state,
    remove_state,
    save_state,
    stack_alive,
    state_path,
    terminate_stack,
)


def _web(tmp_path: Path, name: str = "tiler") -> tuple[ManagedProcess, int]:
    """A stand-in project service: an HTTP server that answers on its port."""
    port = free_port()
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        log_path=tmp_path / f"{name}.log",
        cwd=tmp_path,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/"),
    )
    return proc, port


def _record(proc: ManagedProcess, port: int, tmp_path: Path) -> ComponentRecord:
    return ComponentRecord.for_process(
        proc,
        ports={"http": port},
        probe="http",
        endpoint=f"http://127.0.0.1:{port}",
        data_dir=tmp_path,
    )


def test_round_trip_and_private_file(tmp_path: Path) -> None:
    record = ComponentRecord(
        name="broker",
        pid=12345,
        executable="tansu",
        ports={"kafka": 9092},
        probe="kafka",
        endpoint="127.0.0.1:9092",
        data_dir=str(tmp_path / "broker"),
        log_path=str(tmp_path / "broker" / "broker.log"),
    )
    state = StackState(
        data_dir=str(tmp_path),
        components={"broker": record},
        access_key="radiounet",
        secret_key="s3cret",
        extra={"topic_prefix": "radiounet."},
    )
    path = save_state(state)
    assert path == state_path(tmp_path) == tmp_path / "stack.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_state(tmp_path) == state
    assert state.endpoint("broker") == "127.0.0.1:9092"
    assert "s3cret" not in repr(state)
    with pytest.raises(KeyError, match="no component 'tiler'"):
        state.endpoint("tiler")
    remove_state(tmp_path)
    assert load_state(tmp_path) is None
    remove_state(tmp_path)  # again: harmless


def test_no_state_file_means_no_stack(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}', '{"version": 1}'])
def test_bad_state_file_is_reported(tmp_path: Path, content: str) -> None:
    state_path(tmp_path).write_text(content)
    with pytest.raises(ValueError, match=r"stack\.json"):
        load_state(tmp_path)


def test_probe_must_be_one_of_the_ports() -> None:
    with pytest.raises(ValueError, match="probe port 'http' not among"):
        ComponentRecord("x", 1, "x", {"grpc": 1}, "http", "", "", "")


def test_liveness_follows_the_process_and_its_port(tmp_path: Path) -> None:
    proc, port = _web(tmp_path)
    proc.start()
    try:
        state = StackState(
            str(tmp_path), {"tiler": _record(proc, port, tmp_path)}, "radiounet", "secret"
        )
        save_state(state)
        reloaded = load_state(tmp_path)
        assert reloaded is not None
        assert stack_alive(reloaded)
    finally:
        proc.stop()
    assert not stack_alive(reloaded)
    assert dead_components(reloaded) == ["tiler"]


def test_live_pid_without_its_port_is_not_alive(tmp_path: Path) -> None:
    # A recycled pid: the process exists, but nothing listens where the stack did.
    record = ComponentRecord(
        "broker", os.getpid(), "tansu", {"kafka": free_port()}, "kafka", "", "", ""
    )
    assert pid_alive(record.pid)
    assert not component_alive(record)


def test_empty_stack_is_not_alive(tmp_path: Path) -> None:
    assert not stack_alive(StackState(str(tmp_path), {}, "a", "b"))


def test_terminate_stack_stops_recorded_processes_only(tmp_path: Path) -> None:
    proc, port = _web(tmp_path)
    proc.start()
    try:
        assert proc.pid is not None
        # This test process, recorded as if it were a broker: must be left alone.
        impostor = ComponentRecord(
            "broker", os.getpid(), "tansu", {"kafka": free_port()}, "kafka", "", "", ""
        )
        state = StackState(
            str(tmp_path),
            {"broker": impostor, "tiler": _record(proc, port, tmp_path)},
            "radiounet",
            "secret",
        )
        save_state(state)
        assert terminate_stack(state, timeout=10) == ["tiler"]
        assert not pid_alive(proc.pid)
        assert load_state(tmp_path) is None
    finally:
        proc.stop()


def test_running_object_store_is_reused_through_its_record(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    state = StackState(
        str(tmp_path),
        {"object-store": object_store.record()},
        object_store.credentials.access_key,
        object_store.credentials.secret_key,
    )
    save_state(state)
    doc = json.loads(state_path(tmp_path).read_text())
    assert doc["components"][0]["ports"] == object_store.ports.as_dict()

    # What a second `stack up` on the same data dir does: find it alive, reuse it.
    found = load_state(tmp_path)
    assert found is not None
    assert stack_alive(found)
    assert found.endpoint("object-store") == object_store.s3_endpoint
    ports = WeedPorts.from_dict(found.components["object-store"].ports)
    assert ports == object_store.ports
    assert not ports.all_free()
    reused = ObjectStore(tmp_path / "unused", ports=ports)
    assert reused.client().bucket_exists("no-such-bucket") is False
