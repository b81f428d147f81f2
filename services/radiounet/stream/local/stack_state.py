"""The state file of a local stack: what runs where, so later commands can reuse or stop it.

``<data_dir>/stack.json`` records, for each component, its pid, ports, endpoint,
data directory and log, plus the stack's S3 credentials. A stack counts as
alive only if every recorded process exists *and* its probe port answers, so
a stale file (processes gone, or pids reused by something else) is detected.
One stack per data directory; stacks in other directories pick other free
ports, so they never clash.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .probes import LOOPBACK, tcp_open
from .processes import ManagedProcess, pid_alive, terminate_pid

__all__ = [
    "STATE_FILE",
    "ComponentRecord",
    "StackState",
    "component_alive",
    "dead_components",
    "load_state",
    "remove_state",
    "save_state",
    "stack_alive",
    "state_path",
    "terminate_component",
    "terminate_stack",
]

STATE_FILE = "stack.json"
_VERSION = 1


@dataclass(frozen=True)
class ComponentRecord:
    """One running component of a stack.

    Attributes
    ----------
    name : str
        Role in the stack (``object-store``, ``broker``, ``prometheus``, ``tiler``...).
    pid : int
        Pid of the process (leader of its own process group).
    executable : str
        Base name of the program, checked before signalling a recorded pid.
    ports : dict of str to int
        Every port it listens on, by role (``s3``, ``kafka``, ``http``...).
    probe : str
        Key of ``ports`` that must accept connections while it is alive.
    endpoint : str
        How clients reach it (``127.0.0.1:9092``, ``http://127.0.0.1:9090``).
    data_dir : str
        Its data directory.
    log_path : str
        Its log file.
    host : str
        Address it listens on.
    """

    name: str
    pid: int
    executable: str
    ports: dict[str, int]
    probe: str
    endpoint: str
    data_dir: str
    log_path: str
    host: str = LOOPBACK

    def __post_init__(self) -> None:
        if self.probe not in self.ports:
            known = sorted(self.ports)
            raise ValueError(f"{self.name}: probe port {self.probe!r} not among {known}")

    @classmethod
    def for_process(
        cls,
        process: ManagedProcess,
        *,
        ports: Mapping[str, int],
        probe: str,
        endpoint: str,
        data_dir: Path | str,
    ) -> ComponentRecord:
        """Record of a started :class:`ManagedProcess`."""
        if process.pid is None:
            raise RuntimeError(f"{process.name} was never started")
        return cls(
            name=process.name,
            pid=process.pid,
            executable=Path(process.command[0]).name,
            ports=dict(ports),
            probe=probe,
            endpoint=endpoint,
            data_dir=str(data_dir),
            log_path=str(process.log_path),
        )


@dataclass(frozen=True)
class StackState:
    """Everything a later command needs to use or stop a running local stack.

    Attributes
    ----------
    data_dir : str
        The stack's data directory (the state file lives there).
    components : dict of str to ComponentRecord
        By name, in start order.
    access_key, secret_key : str
        S3 credentials of the stack's object stores.
    created : str
        ISO time the state was first written.
    extra : dict
        Free-form JSON-able settings of the orchestration (topic prefix, bucket...).
    """

    data_dir: str
    components: dict[str, ComponentRecord]
    access_key: str
    secret_key: str
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"StackState(data_dir={self.data_dir!r}, components={list(self.components)}, "
            f"access_key={self.access_key!r}, secret_key='***')"
        )

    def endpoint(self, name: str) -> str:
        """Endpoint of component ``name``."""
        try:
            return self.components[name].endpoint
        except KeyError:
            raise KeyError(f"no component {name!r} in the stack at {self.data_dir}") from None


def state_path(data_dir: Path | str) -> Path:
    """Where the state file of the stack in ``data_dir`` lives."""
    return Path(data_dir) / STATE_FILE


def save_state(state: StackState) -> Path:
    """Write the state file atomically (readable by the owner only); return its path."""
    path = state_path(state.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": _VERSION, **asdict(state)}
    doc["components"] = [asdict(c) for c in state.components.values()]
    fd, tmp = tempfile.mkstemp(prefix=".stack-", suffix=".json", dir=path.parent)
    try:
        # The file holds the S3 secret: keep it private.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent=2)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def load_state(data_dir: Path | str) -> StackState | None:
    """The recorded state of the stack in ``data_dir``, None if there is no state file.

    Raises
    ------
    ValueError
        If the file is not a state file of this version.
    """
    path = state_path(data_dir)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a stack state file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != _VERSION:
        raise ValueError(f"{path}: unknown stack state version {doc.get('version')!r}")
    try:
        components = [ComponentRecord(**c) for c in doc["components"]]
        return StackState(
            data_dir=doc["data_dir"],
            components={c.name: c for c in components},
            access_key=doc["access_key"],
            secret_key=doc["secret_key"],
            created=doc["created"],
            extra=dict(doc.get("extra", {})),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed stack state: {exc!r}") from None


def remove_state(data_dir: Path | str) -> None:
    """Delete the state file, if any."""
    with contextlib.suppress(FileNotFoundError):
        state_path(data_dir).unlink()


def component_alive(record: ComponentRecord) -> bool:
    """True if the recorded process runs and its probe port answers."""
    return pid_alive(record.pid) and tcp_open(record.host, record.ports[record.probe])


def dead_components(state: StackState) -> list[str]:
    """Names of the recorded components that are not alive."""
    return [name for name, rec in state.components.items() if not component_alive(rec)]


def stack_alive(state: StackState) -> bool:
    """True if every recorded component is alive (and there is at least one)."""
    return bool(state.components) and not dead_components(state)


def terminate_stack(state: StackState, timeout: float = 15.0) -> list[str]:
    """Stop every recorded process, last started first; remove the state file.

    A pid is signalled only if it still runs the recorded executable, so a pid
    reused since by an unrelated process is left alone. Returns the names of
    the components that were stopped.
    """
    stopped = []
    for name, rec in reversed(state.components.items()):
        if terminate_component(rec, timeout):
            stopped.append(name)
    remove_state(state.data_dir)
    return stopped


def terminate_component(record: ComponentRecord, timeout: float = 15.0) -> bool:
    """Stop one recorded process if it still runs its executable; True if it was stopped."""
    return _runs(record.pid, record.executable) and terminate_pid(record.pid, timeout)


def _runs(pid: int, executable: str) -> bool:
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return True  # no procfs: pid_alive is all we can check
    return Path(argv0).name == executable
