"""Free loopback TCP ports, alone or in blocks, optionally with a free companion port each.

Ports are drawn at random *below* the kernel's ephemeral range (from
``/proc/sys/net/ipv4/ip_local_port_range``): the kernel gives ephemeral ports
to outgoing connections, and one of those taking a picked port before our
server binds it would fail that server's start. A port counts as free when it
can be bound now. Ports handed out by this process are remembered and never
handed out again, so components picked back to back never share a port
before either has bound it.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

from .probes import LOOPBACK

__all__ = ["MAX_PORT", "free_port", "free_ports", "port_is_free"]

MAX_PORT = 65535

#: Lowest port handed out: above the fixed defaults of the servers we run
#: (Kafka 9092, Prometheus 9090, SeaweedFS 8333/9333...).
_LOWEST = 15000
#: Below this many candidates, fall back to ports the kernel picks.
_MIN_RANGE = 2000

_handed_out: set[int] = set()
_lock = threading.Lock()
# Private generator: tests seeding `random` must not make two runs pick alike.
_rng = random.Random()


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if ``host:port`` can be bound right now."""
    try:
        _bound(host, port).close()
    except OSError:
        return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """One free TCP port on ``host``."""
    return free_ports(1, host)[0]


def free_ports(
    count: int, host: str = LOOPBACK, *, companion_offset: int = 0, attempts: int = 1000
) -> list[int]:
    """``count`` distinct free TCP ports on ``host``.

    Parameters
    ----------
    count : int
        How many ports.
    host : str
        Address to bind.
    companion_offset : int
        If not 0, port ``p + companion_offset`` must be free too for every
        ``p`` returned (SeaweedFS puts each gRPC port 10000 above its HTTP
        port). Companions are reserved like the ports themselves.
    attempts : int
        Ports tried before giving up.

    Raises
    ------
    RuntimeError
        If not enough ports were found.
    """
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    low, high = _candidate_range(companion_offset)
    held: list[socket.socket] = []
    chosen: list[int] = []
    reserved: set[int] = set()
    with _lock:
        try:
            for _ in range(attempts):
                if len(chosen) == count:
                    break
                wanted = [_rng.randint(low, high) if low else 0]
                try:
                    # Holding the sockets open keeps a kernel-picked port (0)
                    # from coming up twice within this call.
                    sock = _bound(host, wanted[0])
                except OSError:
                    continue
                held.append(sock)
                port = sock.getsockname()[1]
                group = [port, port + companion_offset] if companion_offset else [port]
                if group[-1] > MAX_PORT or any(p in _handed_out or p in reserved for p in group):
                    continue
                try:
                    held.extend(_bound(host, p) for p in group[1:])
                except OSError:
                    continue
                chosen.append(port)
                reserved.update(group)
        finally:
            for sock in held:
                sock.close()
        if len(chosen) < count:
            raise RuntimeError(
                f"found only {len(chosen)} of {count} free ports on {host} in {attempts} tries"
            )
        _handed_out.update(reserved)
    return chosen


def _candidate_range(companion_offset: int) -> tuple[int, int]:
    """Range to draw ports from; ``(0, 0)``: let the kernel pick."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    # Keep companions below the ephemeral range too.
    high = ephemeral_low - 1 - companion_offset
    if high - _LOWEST < _MIN_RANGE:
        return 0, 0
    return _LOWEST, high


def _bound(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
