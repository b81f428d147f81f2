"""Child processes of the local stack: start, wait until ready, stop, kill, restart.

Each :class:`ManagedProcess` runs one command in its own session (hence its own
process group), so stopping it also stops whatever it forked. Output goes to a
log file that is appended to across restarts; a pid file sits next to it while
the process runs. Processes still running when the interpreter exits are
stopped by an :mod:`atexit` hook unless started with ``stop_at_exit=False``
(a long-lived stack that outlives the command that started it).

:func:`pid_alive` and :func:`terminate_pid` act on a process known only by its
pid, e.g. one recorded in a stack's state file by another invocation.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "ProcessStartError",
    "ReadyCheck",
    "pid_alive",
    "terminate_pid",
]

#: A readiness check: True once the process serves; exceptions count as "not yet".
ReadyCheck = Callable[[], bool]

_POLL_S = 0.1
_TAIL_LINES = 20

_running: dict[int, ManagedProcess] = {}
_running_lock = threading.Lock()


class ProcessStartError(RuntimeError):
    """A process exited, or was not ready in time, while starting.

    Attributes
    ----------
    log_tail : str
        The last lines of its log, also part of the message.
    """

    def __init__(self, message: str, log_tail: str) -> None:
        if log_tail:
            message = f"{message}\n--- last lines of the log ---\n{log_tail}"
        super().__init__(message)
        self.log_tail = log_tail


class ManagedProcess:
    """One command run as a supervised child process.

    Parameters
    ----------
    name : str
        Short name for messages (``broker``, ``object-store``, ``tiler``).
    command : sequence of str or path
        Program and arguments.
    log_path : path
        File that receives stdout and stderr (appended to).
    pid_path : path, optional
        Pid file, written while running; default ``log_path`` with ``.pid``.
    env : mapping, optional
        The complete environment of the child; default: inherit ours.
    cwd : path, optional
        Working directory of the child.
    ready : callable, optional
        Readiness check polled by :meth:`start`; default: running is ready.
    ready_timeout : float
        Seconds :meth:`start` waits for ``ready``.
    stop_timeout : float
        Seconds :meth:`stop` waits after SIGTERM before SIGKILL.
    stop_at_exit : bool
        Stop the process when this interpreter exits.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str | os.PathLike[str]],
        *,
        log_path: Path,
        pid_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: ReadyCheck | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        stop_at_exit: bool = True,
    ) -> None:
        if not command:
            raise ValueError("command must not be empty")
        self.name = name
        self.command = [os.fspath(part) for part in command]
        self.log_path = Path(log_path)
        self.pid_path = self.log_path.with_suffix(".pid") if pid_path is None else Path(pid_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.stop_at_exit = stop_at_exit
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.alive() else "stopped"
        return f"ManagedProcess({self.name!r}, {state})"

    @property
    def pid(self) -> int | None:
        """Pid of the current (or last) child, None if never started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last child once it ended (negative: killed by that signal)."""
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, wait: bool = True) -> None:
        """Start the command and, with ``wait``, block until it is ready.

        Raises
        ------
        RuntimeError
            If it is already running.
        ProcessStartError
            If it cannot be run, exits before it is ready, or is not ready
            within ``ready_timeout`` (it is killed then).
        """
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- {stamp} start {self.name}: {shlex.join(self.command)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            try:
                # The child gets its own copy of the log descriptor; ours closes here.
                self._proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                message = f"{self.name}: cannot run {self.command[0]}: {exc}"
                raise ProcessStartError(message, "") from exc
        with _running_lock:
            _running[id(self)] = self
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(f"{self._proc.pid}\n")
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the readiness check passes; see :meth:`start` for the errors."""
        proc = self._require_started()
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            if proc.poll() is not None:
                self._forget()
                raise ProcessStartError(
                    f"{self.name} exited with status {proc.returncode} before it was ready "
                    f"(log: {self.log_path})",
                    self.log_tail(),
                )
            try:
                if self.ready is None or self.ready():
                    return
                last_error = ""
            except Exception as exc:  # any failure of a probe means "not ready yet"
                last_error = f"; last check failed with {exc!r}"
            if time.monotonic() >= deadline:
                self.kill()
                raise ProcessStartError(
                    f"{self.name} was not ready within {timeout:g} s and was killed"
                    f"{last_error} (log: {self.log_path})",
                    self.log_tail(),
                )
            time.sleep(_POLL_S)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the process group, wait, then SIGKILL; return the exit status.

        Returns None if the process was never started. Safe to call repeatedly.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            timeout = self.stop_timeout if timeout is None else timeout
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            # The leader was ours until just now, so the group id still names
            # its group: finish off children that ignored SIGTERM.
            _signal_group(proc.pid, signal.SIGKILL)
            _wait_group_gone(proc.pid)
        self._forget()
        return proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; return its exit status.

        Raises
        ------
        subprocess.TimeoutExpired
            If it still runs after ``timeout`` seconds (it is left running).
        """
        status = self._require_started().wait(timeout)
        self._forget()
        return status

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, for tests)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            _wait_group_gone(proc.pid)
        self._forget()

    def restart(self, *, wait: bool = True) -> None:
        """Stop (if running) and start again with the same command, log and environment."""
        self.stop()
        self.start(wait=wait)

    def log_text(self) -> str:
        """Everything logged since the last start."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines logged since the last start."""
        text = self.log_text().rstrip("\n")
        return "\n".join(text.splitlines()[-lines:]) if text else "(empty log)"

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc

    def _forget(self) -> None:
        with _running_lock:
            _running.pop(id(self), None)
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # Field 3, after the parenthesised command name (which may hold spaces).
    return stat.rpartition(")")[2].split()[0] != "Z"


def terminate_pid(pid: int, timeout: float = 15.0) -> bool:
    """Stop a process (and its group, if it leads one) known only by pid.

    SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns True if it
    was running. Meant for processes of another invocation (``stack down``);
    our own children are stopped with :meth:`ManagedProcess.stop`.
    """
    if not pid_alive(pid):
        return False
    leads_group = _pgid(pid) == pid
    _send(pid, signal.SIGTERM, leads_group)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if pid_alive(pid):
        _send(pid, signal.SIGKILL, leads_group)
        while pid_alive(pid):
            time.sleep(_POLL_S)
    return True


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _send(pid: int, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``, from /proc ([] without procfs)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while we looked
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _wait_group_gone(pgid: int, timeout: float = 5.0) -> None:
    # SIGKILL is delivered asynchronously: wait, so "stopped" means gone.
    deadline = time.monotonic() + timeout
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


@atexit.register
def _stop_all_at_exit() -> None:
    with _running_lock:
        procs = [p for p in _running.values() if p.stop_at_exit]
    for proc in procs:
        proc.stop(timeout=5.0)
