"""The third-party servers of the local stack, on loopback ports, each in its own data directory.

- :class:`ObjectStore`: SeaweedFS (``weed mini``) with its S3 gateway. The
  stack runs two: the project's object store and the broker's storage, so
  stopping one does not take the broker down.
- :class:`Broker`: Tansu, a Kafka-compatible broker, keeping topics, messages
  and committed offsets in an :class:`ObjectStore` (they survive restarts).
- :class:`Prometheus`: scrapes ``(job, host:port)`` targets that can be changed
  while it runs; :meth:`Prometheus.query` evaluates PromQL.

Ports are chosen free when a component is created (or passed in, e.g. from a
stack's state file) and kept across :meth:`stop`/:meth:`start`, so clients
reconnect to the same address after a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import urllib3
from minio import Minio
from minio.error import S3Error

from .binaries import prometheus_binary, tansu_binary, weed_binary
from .ports import free_port, free_ports, port_is_free
from .probes import LOOPBACK, http_ok, http_request, tcp_open
from .processes import ManagedProcess
from .stack_state import ComponentRecord

__all__ = [
    "DEFAULT_CREDENTIALS",
    "Broker",
    "Credentials",
    "DiskSpaceError",
    "ObjectStore",
    "Prometheus",
    "PrometheusError",
    "Sample",
    "WeedPorts",
    "weed_disk_problem",
]

# Longest unix-socket path the kernel takes (sun_path is 108 bytes with the NUL).
_MAX_SOCKET_PATH = 100

# Variables that would silently reconfigure a child: weed reads S3_* fallbacks,
# Tansu reads every flag from the environment, both read AWS_*.
_CHILD_ENV_DROP_PREFIXES = ("AWS_", "S3_", "OTEL_")
_CHILD_ENV_DROP = frozenset(
    {"ADVERTISED_LISTENER_URL", "CLUSTER_ID", "LISTENER_URL", "SCHEMA_REGISTRY", "STORAGE_ENGINE"}
)


@dataclass(frozen=True)
class Credentials:
    """S3 access key and secret (the secret stays out of ``repr``)."""

    access_key: str = "radiounet"
    secret_key: str = field(default="radiounet-secret", repr=False)


DEFAULT_CREDENTIALS = Credentials()


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _CHILD_ENV_DROP and not k.startswith(_CHILD_ENV_DROP_PREFIXES)
    }
    env.update(extra)
    return env


class _Component:
    """Start/stop/kill of one :class:`ManagedProcess`; subclasses set ``process``."""

    process: ManagedProcess
    data_dir: Path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data_dir}, {self.process!r})"

    @property
    def pid(self) -> int | None:
        """Pid of the server process (None before the first start)."""
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.process.log_path

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process.alive()

    def start(self) -> None:
        """Start the server and wait until it serves; see :meth:`ManagedProcess.start`."""
        self.process.start()

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after a timeout)."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        self.process.kill()

    def restart(self) -> None:
        """Stop, then start again on the same ports and data."""
        self.stop()
        self.start()


# weed mini sizes its volumes from the disk (up to 1 GiB each) and counts its volume
# slots from the free space at start, keeping about 1 GiB free; every bucket written
# takes a volume. Measured here (252 GB disk): 1.0 GiB free gave no writable volume at
# all (every PUT failed with InternalError), 3 GiB gave 2, 6 GiB 5, 48.6 GiB 48.
WEED_VOLUME_BYTES = 2**30
WEED_RESERVED_BYTES = 2**30


class DiskSpaceError(ValueError):
    """The disk under a store's data directory is too full for SeaweedFS to write."""


def weed_disk_problem(free_bytes: int, n_buckets: int) -> str | None:
    """Why ``weed mini`` may not write ``n_buckets`` buckets with ``free_bytes`` free, or None.

    Examples
    --------
    >>> weed_disk_problem(50 * 2**30, 2) is None
    True
    >>> problem = weed_disk_problem(2**30, 1)
    >>> problem.split(":")[0], problem.split(", ")[-1]
    ('1.0 GiB free', 'so it needs 2.0 GiB for 1 bucket(s)')
    """
    n = max(1, n_buckets)
    need = n * WEED_VOLUME_BYTES + WEED_RESERVED_BYTES
    if free_bytes >= need:
        return None
    return (
        f"{free_bytes / 2**30:.1f} GiB free: weed mini keeps about "
        f"{WEED_RESERVED_BYTES / 2**30:.0f} GiB free and gives each bucket written a volume "
        f"of up to {WEED_VOLUME_BYTES / 2**30:.0f} GiB, so it needs {need / 2**30:.1f} GiB "
        f"for {n} bucket(s)"
    )


@dataclass(frozen=True)
class WeedPorts:
    """HTTP ports of a SeaweedFS ``mini``; each gRPC port is ``GRPC_OFFSET`` above."""

    GRPC_OFFSET: ClassVar[int] = 10000

    master: int
    volume: int
    filer: int
    s3: int
    admin: int
    metrics: int

    @classmethod
    def pick(cls) -> WeedPorts:
        """Free ports whose gRPC companions are free too."""
        return cls(*free_ports(6, companion_offset=cls.GRPC_OFFSET))

    @classmethod
    def from_dict(cls, ports: Mapping[str, int]) -> WeedPorts:
        """Inverse of :meth:`as_dict`."""
        return cls(**{f.name: int(ports[f.name]) for f in fields(cls)})

    def as_dict(self) -> dict[str, int]:
        """Ports by role."""
        return asdict(self)

    def all_free(self) -> bool:
        """True if every port and gRPC companion can be bound now."""
        return all(
            port_is_free(p) and port_is_free(p + self.GRPC_OFFSET) for p in self.as_dict().values()
        )


class ObjectStore(_Component):
    """A SeaweedFS S3 store on loopback.

    Parameters
    ----------
    data_dir : path
        Its own directory: data under ``weed/``, log and pid file beside.
    role : str
        Name in logs and records (``object-store``, ``broker-storage``).
    credentials : Credentials
        The only S3 identity it accepts.
    ports : WeedPorts, optional
        Default: free ports picked now.
    buckets : sequence of str
        Created (if missing) every time it starts.
    ready_timeout : float
        Seconds to wait for S3 to answer.
    stop_at_exit : bool
        Stop it when this interpreter exits.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        role: str = "object-store",
        credentials: Credentials = DEFAULT_CREDENTIALS,
        ports: WeedPorts | None = None,
        buckets: Sequence[str] = (),
        ready_timeout: float = 90.0,
        stop_at_exit: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.role = role
        self.credentials = credentials
        self.ports = ports if ports is not None else WeedPorts.pick()
        self.buckets = tuple(buckets)
        self._http: urllib3.PoolManager | None = None
        self.process = ManagedProcess(
            role,
            self._command(),
            log_path=self.data_dir / f"{role}.log",
            env=_child_env(
                {
                    # weed mini turns these into its single S3 identity.
                    "AWS_ACCESS_KEY_ID": credentials.access_key,
                    "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                }
            ),
            ready=self._s3_ready,
            ready_timeout=ready_timeout,
            # weed waits ~1 s per component before exiting (preStopSeconds).
            stop_timeout=20.0,
            stop_at_exit=stop_at_exit,
        )

    def _command(self) -> list[str]:
        p = self.ports
        g = WeedPorts.GRPC_OFFSET
        command = [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir / 'weed'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={p.master}",
            f"-master.port.grpc={p.master + g}",
            f"-volume.port={p.volume}",
            f"-volume.port.grpc={p.volume + g}",
            f"-filer.port={p.filer}",
            f"-filer.port.grpc={p.filer + g}",
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.s3 + g}",
            # The admin's own worker dials admin.port + 10000 whatever the flag
            # says, so the gRPC port must sit exactly there.
            f"-admin.port={p.admin}",
            f"-admin.port.grpc={p.admin + g}",
            "-admin.ui=false",
            f"-metricsPort={p.metrics}",
            # Off by default would be 8181/9101/7333: fixed ports clash between stacks.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
        ]
        # Unix sockets default to /tmp/seaweedfs-*-<port>.sock and outlive a
        # killed store; keep them in the data dir when the path fits.
        for flag, name in (("-s3.localSocket", "s3.sock"), ("-filer.localSocket", "filer.sock")):
            path = self.data_dir / name
            if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
                command.append(f"{flag}={path}")
        return command

    @property
    def s3_endpoint(self) -> str:
        """``127.0.0.1:PORT`` of the S3 gateway (the form Minio takes)."""
        return f"{LOOPBACK}:{self.ports.s3}"

    @property
    def s3_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the S3 gateway."""
        return f"http://{self.s3_endpoint}"

    @property
    def metrics_target(self) -> str:
        """``127.0.0.1:PORT`` of its Prometheus ``/metrics``."""
        return f"{LOOPBACK}:{self.ports.metrics}"

    def client(self) -> Minio:
        """A new Minio client for this store."""
        return Minio(
            self.s3_endpoint,
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
            secure=False,
        )

    def start(self) -> None:
        """Start, wait until S3 lists buckets, then create the configured buckets.

        Raises
        ------
        DiskSpaceError
            If the disk is too full for the store to write its buckets (checked
            first: SeaweedFS would start and then fail every write).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        problem = weed_disk_problem(shutil.disk_usage(self.data_dir).free, len(self.buckets))
        if problem is not None:
            raise DiskSpaceError(
                f"{self.role}: {problem} on the disk of {self.data_dir}; free some space or "
                "put the stack's data on another disk (make run STACK_DIR=..., "
                "radiounet stack up --data-dir ...)"
            )
        super().start()
        for bucket in self.buckets:
            self.ensure_bucket(bucket)

    def stop(self) -> None:
        """Stop gracefully and drop pooled connections."""
        self._close_http()
        super().stop()
        self._remove_grpc_sockets()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._close_http()
        super().kill()
        self._remove_grpc_sockets()

    def ensure_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists."""
        client = self._admin_client()
        if client.bucket_exists(name):
            return
        try:
            client.make_bucket(name)
        except S3Error as exc:
            # Another client may have created it since we looked.
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def remove_bucket(self, name: str) -> None:
        """Delete bucket ``name`` and everything in it (nothing if it does not exist).

        SeaweedFS gives each bucket volumes of its own, and a store has a limited
        number (free disk over the volume size), so short-lived buckets must go.
        """
        from minio.deleteobjects import DeleteObject

        client = self._admin_client()
        if not client.bucket_exists(name):
            return
        keys = [DeleteObject(o.object_name) for o in client.list_objects(name, recursive=True)]
        for error in client.remove_objects(name, keys):
            raise RuntimeError(f"cannot empty bucket {name}: {error}")
        client.remove_bucket(name)

    def record(self) -> ComponentRecord:
        """This store as a stack-state record (probe: the S3 port)."""
        return ComponentRecord.for_process(
            self.process,
            ports=self.ports.as_dict(),
            probe="s3",
            endpoint=self.s3_endpoint,
            data_dir=self.data_dir,
        )

    def _admin_client(self) -> Minio:
        if self._http is None:
            # No retries: a readiness poll must fail fast, not back off for seconds.
            self._http = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=2.0, read=30.0),
                retries=urllib3.Retry(total=0),
            )
        return Minio(
            self.s3_endpoint,
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
            secure=False,
            http_client=self._http,
        )

    def _s3_ready(self) -> bool:
        if not tcp_open(LOOPBACK, self.ports.s3):
            return False
        self._admin_client().list_buckets()
        return True

    def _remove_grpc_sockets(self) -> None:
        # weed names these after our gRPC ports, hard-wired under /tmp, and
        # leaves some behind (all of them when killed).
        for service in ("master", "volume", "filer", "s3", "admin"):
            port = getattr(self.ports, service) + WeedPorts.GRPC_OFFSET
            path = Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock")
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()

    def _close_http(self) -> None:
        if self._http is not None:
            self._http.clear()
            self._http = None


class Broker(_Component):
    """A Tansu broker on loopback, storing everything in an :class:`ObjectStore`.

    Parameters
    ----------
    data_dir : path
        Its directory (log and pid file; the data live in ``storage``).
    storage : ObjectStore
        Holds topics, messages and offsets in bucket ``bucket``; must be
        running when the broker starts. Use a store of its own, so the
        project's object store can be stopped without stopping the broker.
    port : int, optional
        Kafka port; default: a free one picked now.
    bucket : str
        Bucket in ``storage``, created before the broker starts.
    ready_timeout : float
        Seconds to wait for the broker to listen.
    stop_at_exit : bool
        Stop it when this interpreter exits.
    """

    def __init__(
        self,
        data_dir: Path | str,
        storage: ObjectStore,
        *,
        port: int | None = None,
        bucket: str = "tansu",
        ready_timeout: float = 60.0,
        stop_at_exit: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.storage = storage
        self.port = port if port is not None else free_port()
        self.bucket = bucket
        listener = f"tcp://{LOOPBACK}:{self.port}"
        creds = storage.credentials
        self.process = ManagedProcess(
            "broker",
            [
                str(tansu_binary()),
                "broker",
                f"--listener-url={listener}",
                f"--advertised-listener-url={listener}",
                f"--storage-engine=s3://{bucket}/",
            ],
            log_path=self.data_dir / "broker.log",
            env=_child_env(
                {
                    "AWS_ACCESS_KEY_ID": creds.access_key,
                    "AWS_SECRET_ACCESS_KEY": creds.secret_key,
                    "AWS_ENDPOINT": storage.s3_url,
                    "AWS_ALLOW_HTTP": "true",
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
            ),
            ready=self._ready,
            ready_timeout=ready_timeout,
            stop_at_exit=stop_at_exit,
        )

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, the Kafka bootstrap servers."""
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Create the storage bucket, start Tansu and wait until it listens.

        Raises
        ------
        RuntimeError
            If the storage does not answer.
        """
        if not tcp_open(LOOPBACK, self.storage.ports.s3):
            raise RuntimeError(
                f"broker storage {self.storage.role} at {self.storage.s3_endpoint} is not "
                "running; start it before the broker"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage.ensure_bucket(self.bucket)
        super().start()

    def record(self) -> ComponentRecord:
        """This broker as a stack-state record (probe: the Kafka port)."""
        return ComponentRecord.for_process(
            self.process,
            ports={"kafka": self.port},
            probe="kafka",
            endpoint=self.bootstrap,
            data_dir=self.data_dir,
        )

    def _ready(self) -> bool:
        # Tansu listens before it has opened its storage; "ready in" comes after.
        return "ready in" in self.process.log_text() and tcp_open(LOOPBACK, self.port)


class PrometheusError(RuntimeError):
    """Prometheus answered a query or reload with an error."""


@dataclass(frozen=True)
class Sample:
    """One value of a PromQL result.

    Attributes
    ----------
    labels : dict of str to str
        The series' labels (``__name__`` included when present).
    value : float
        The sample value.
    timestamp : float
        Unix time of the sample.
    """

    labels: dict[str, str]
    value: float
    timestamp: float


class Prometheus(_Component):
    """A Prometheus on loopback scraping ``(job, host:port)`` targets.

    Parameters
    ----------
    data_dir : path
        Its directory: config, TSDB under ``tsdb/``, log and pid file.
    port : int, optional
        HTTP port; default: a free one picked now.
    targets : iterable of (str, str)
        Initial ``(job, host:port)`` pairs, scraped at ``/metrics``.
    scrape_interval : float
        Seconds between scrapes (also the evaluation interval).
    ready_timeout : float
        Seconds to wait for ``/-/ready``.
    stop_at_exit : bool
        Stop it when this interpreter exits.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        targets: Iterable[tuple[str, str]] = (),
        scrape_interval: float = 2.0,
        ready_timeout: float = 60.0,
        stop_at_exit: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port if port is not None else free_port()
        self.scrape_interval = scrape_interval
        self.targets: tuple[tuple[str, str], ...] = tuple(targets)
        self.config_path = self.data_dir / "prometheus.yml"
        self.process = ManagedProcess(
            "prometheus",
            [
                str(prometheus_binary()),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                # Lets set_targets apply a new config with POST /-/reload.
                "--web.enable-lifecycle",
            ],
            log_path=self.data_dir / "prometheus.log",
            ready=lambda: http_ok(f"{self.url}/-/ready"),
            ready_timeout=ready_timeout,
            stop_at_exit=stop_at_exit,
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Write the config, start and wait for ``/-/ready``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.config_path, self._config_text(self.targets))
        super().start()

    def set_targets(self, targets: Iterable[tuple[str, str]]) -> None:
        """Scrape exactly these ``(job, host:port)`` targets from now on.

        Rewrites the config and, if running, reloads it.

        Raises
        ------
        PrometheusError
            If Prometheus rejects the new config (the old one stays in force
            and on disk).
        """
        new = tuple(targets)
        if not self.alive():
            self.targets = new  # written by start()
            return
        _write_atomically(self.config_path, self._config_text(new))
        answer = http_request(f"{self.url}/-/reload", method="POST", timeout=30.0)
        if not answer.ok:
            _write_atomically(self.config_path, self._config_text(self.targets))
            raise PrometheusError(
                f"prometheus rejected targets {list(new)}: "
                f"{answer.status} {answer.body.decode(errors='replace').strip()}"
            )
        self.targets = new

    def query(self, expr: str, timeout: float = 10.0) -> list[Sample]:
        """Evaluate PromQL ``expr`` now (``/api/v1/query``).

        Returns one :class:`Sample` per series of a vector, one unlabelled
        sample for a scalar, one per point of a range vector.

        Raises
        ------
        PrometheusError
            If the expression is invalid or the query fails.
        """
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        answer = http_request(url, timeout=timeout)
        try:
            doc = json.loads(answer.body)
        except json.JSONDecodeError:
            doc = {}
        if not answer.ok or doc.get("status") != "success":
            reason = doc.get("error") or answer.body.decode(errors="replace").strip()
            raise PrometheusError(f"query {expr!r} failed ({answer.status}): {reason}")
        return _samples(doc["data"])

    def record(self) -> ComponentRecord:
        """This Prometheus as a stack-state record (probe: the HTTP port)."""
        return ComponentRecord.for_process(
            self.process,
            ports={"http": self.port},
            probe="http",
            endpoint=self.url,
            data_dir=self.data_dir,
        )

    def _config_text(self, targets: Sequence[tuple[str, str]]) -> str:
        jobs: dict[str, list[str]] = {}
        for job, address in targets:
            jobs.setdefault(job, []).append(address)
        interval = f"{round(self.scrape_interval * 1000)}ms"
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]}
                for job, addresses in jobs.items()
            ],
        }
        # JSON is YAML: no YAML writer needed.
        return json.dumps(config, indent=2) + "\n"


def _samples(data: Mapping[str, Any]) -> list[Sample]:
    kind = data.get("resultType")
    result: Any = data.get("result")
    if kind == "scalar":
        ts, value = result
        return [Sample({}, float(value), float(ts))]
    if kind == "vector":
        return [
            Sample(dict(s["metric"]), float(s["value"][1]), float(s["value"][0]))
            for s in result or []
        ]
    if kind == "matrix":
        return [
            Sample(dict(s["metric"]), float(v), float(ts))
            for s in result or []
            for ts, v in s["values"]
        ]
    raise PrometheusError(f"unsupported result type {kind!r}")


def _write_atomically(path: Path, text: str) -> None:
    # Prometheus may read the file at any moment (reload): never show it half written.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
