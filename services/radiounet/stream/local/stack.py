"""The whole pipeline on one machine: broker, object store, Prometheus, model server, services.

``LocalStack(config).start()`` brings everything up on free loopback ports
under ``config.data_dir`` and records it in ``stack.json``; a later
``radiounet stack up`` on the same directory reuses a running stack, one on
another directory starts a second, independent one. Services are the real
``radiounet serve ...`` processes, so killing one (``kill -9``) and restarting
it exercises exactly what runs in the cluster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from radiounet.dashboards.provisioning import export
from radiounet.model.repository import default_model_repo

from .classifier_threshold import classifier_args, classifier_threshold
from .components import DEFAULT_CREDENTIALS, Broker, Credentials, ObjectStore, Prometheus
from .ports import free_port
from .probes import LOOPBACK, http_ok
from .processes import ManagedProcess
from .stack_state import (
    ComponentRecord,
    StackState,
    load_state,
    save_state,
    stack_alive,
    state_path,
    terminate_component,
    terminate_stack,
)

__all__ = [
    "SERVICES",
    "LocalStack",
    "StackConfig",
    "existing_alive",
    "is_service",
    "recorded_options",
    "restart_services",
    "stop_stack",
]

#: The pipeline's own services, in data-flow order.
SERVICES = ("fetcher", "tiler", "reassembler", "classifier")


@dataclass(frozen=True)
class StackConfig:
    """What to run and where.

    Attributes
    ----------
    data_dir : Path
        Data, logs, pid files and ``stack.json`` of this stack.
    model_repo : Path
        TF Serving model repository served by the stand-in.
    source : str
        Cutout source of the fetcher (``simulated``, ``http``, ``mosaics``).
    source_args : tuple of str
        Extra fetcher flags (``--mosaic-dir DIR``, ``--url-template T``).
    tilers : int
        Tiler replicas (consumer group members).
    topic_prefix, bucket : str
        Namespace of the topics and the bucket of the pipeline's objects.
    partitions : int
        Partitions of each topic (upper bound on useful replicas).
    tiler_args : tuple of str
        Extra tiler flags (``--chunk-tiles``, ``--max-in-flight``).
    model_server_args : tuple of str
        Extra model-server flags (``--num_batch_threads=2``...).
    """

    data_dir: Path
    model_repo: Path = field(default_factory=default_model_repo)
    source: str = "simulated"
    source_args: tuple[str, ...] = ()
    tilers: int = 1
    topic_prefix: str = "radiounet."
    bucket: str = "radiounet"
    partitions: int = 6
    tiler_args: tuple[str, ...] = ()
    model_server_args: tuple[str, ...] = ()
    credentials: Credentials = DEFAULT_CREDENTIALS
    log_level: str = "INFO"
    stop_at_exit: bool = True

    def options(self) -> dict[str, Any]:
        """What ``radiounet stack up`` chose: recorded in ``stack.json`` to restart alike."""
        return {
            "source": self.source,
            "source_args": list(self.source_args),
            "tilers": self.tilers,
            "model_repo": str(Path(self.model_repo).resolve()),
        }

    @classmethod
    def from_options(
        cls, data_dir: Path | str, options: dict[str, Any], **kwargs: Any
    ) -> StackConfig:
        """The configuration :meth:`options` recorded (other fields: defaults or ``kwargs``)."""
        return cls(
            data_dir=Path(data_dir),
            model_repo=Path(options["model_repo"]),
            source=str(options["source"]),
            source_args=tuple(str(a) for a in options["source_args"]),
            tilers=int(options["tilers"]),
            **kwargs,
        )


def _python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", "radiounet.cli.main", *args]


def _stack_env(settings: dict[str, Any], log_level: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADIOUNET_")}
    env.update({f"RADIOUNET_{k.upper()}": str(v) for k, v in settings.items()})
    env["RADIOUNET_LOG_LEVEL"] = log_level
    env.update(extra)
    return env


def _service_process(
    config: StackConfig, settings: dict[str, Any], name: str, port: int
) -> ManagedProcess:
    """The ``radiounet serve`` process of service ``name`` with its metrics on ``port``."""
    stage = name.split("-")[0]
    args: list[str] = []
    if stage == "fetcher":
        args = ["--source", config.source, *config.source_args]
    elif stage == "tiler":
        args = list(config.tiler_args)
    elif stage == "classifier":
        args = classifier_args(config.model_repo)
    env = _stack_env(
        settings,
        config.log_level,
        RADIOUNET_METRICS_PORT=str(port),
        RADIOUNET_METRICS_HOST=LOOPBACK,
        RADIOUNET_INSTANCE=name,
        # Fast group re-joins after a crash in a local run.
        RADIOUNET_SESSION_TIMEOUT_MS="6000",
        RADIOUNET_MAX_POLL_INTERVAL_MS="120000",
        # The model server owns the cores; a service needs no TF thread pool of its own.
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
    )
    return ManagedProcess(
        name,
        _python_module("serve", stage, *args),
        log_path=Path(config.data_dir) / name / f"{name}.log",
        env=env,
        ready=lambda: http_ok(f"http://{LOOPBACK}:{port}/readyz"),
        ready_timeout=180.0,
        stop_at_exit=config.stop_at_exit,
    )


def _service_record(process: ManagedProcess, port: int) -> ComponentRecord:
    return ComponentRecord.for_process(
        process,
        ports={"metrics": port},
        probe="metrics",
        endpoint=f"http://{LOOPBACK}:{port}",
        data_dir=process.log_path.parent,
    )


class LocalStack:
    """Start, inspect, crash and restart the local pipeline (see module docstring)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        d = Path(config.data_dir)
        keep = config.stop_at_exit
        self.object_store = ObjectStore(
            d / "object-store",
            credentials=config.credentials,
            buckets=(config.bucket,),
            stop_at_exit=keep,
        )
        self.broker_storage = ObjectStore(
            d / "broker-storage",
            role="broker-storage",
            credentials=config.credentials,
            stop_at_exit=keep,
        )
        self.broker = Broker(d / "broker", self.broker_storage, stop_at_exit=keep)
        self.model_port = free_port()
        self.model_metrics_port = free_port()
        self.metrics_ports: dict[str, int] = {}
        self.services: dict[str, ManagedProcess] = {}
        self.classifier_threshold = classifier_threshold(config.model_repo)
        self.model_server = ManagedProcess(
            "model-server",
            _python_module(
                "serve",
                "model-server",
                f"--port={self.model_port}",
                f"--model_config_file={Path(config.model_repo) / 'models.config'}",
                f"--monitoring_port={self.model_metrics_port}",
                *config.model_server_args,
            ),
            log_path=d / "model-server" / "model-server.log",
            env=self._env(),
            ready=lambda: http_ok(f"http://{LOOPBACK}:{self.model_metrics_port}/metrics"),
            ready_timeout=180.0,
            stop_at_exit=keep,
        )
        for name in self._service_names():
            self.services[name] = self._service(name)
        self.prometheus = Prometheus(d / "prometheus", targets=self.targets(), stop_at_exit=keep)

    # --- composition -----------------------------------------------------------------------

    def _service_names(self) -> Iterator[str]:
        for stage in SERVICES:
            if stage == "tiler" and self.config.tilers > 1:
                yield from (f"tiler-{i + 1}" for i in range(self.config.tilers))
            else:
                yield stage

    def settings(self) -> dict[str, Any]:
        """The ``RADIOUNET_*`` settings every service (and the CLI) uses for this stack."""
        return {
            "kafka_bootstrap": self.broker.bootstrap,
            "s3_endpoint": self.object_store.s3_endpoint,
            "s3_access_key": self.config.credentials.access_key,
            "s3_secret_key": self.config.credentials.secret_key,
            "bucket": self.config.bucket,
            "topic_prefix": self.config.topic_prefix,
            "topic_partitions": self.config.partitions,
            "model_server": f"{LOOPBACK}:{self.model_port}",
        }

    def _env(self, **extra: str) -> dict[str, str]:
        return _stack_env(self.settings(), self.config.log_level, **extra)

    def _service(self, name: str) -> ManagedProcess:
        port = free_port()
        self.metrics_ports[name] = port
        return _service_process(self.config, self.settings(), name, port)

    def targets(self) -> list[tuple[str, str]]:
        """Prometheus scrape targets: every service, the model server, the object store."""
        out = [(name, f"{LOOPBACK}:{port}") for name, port in self.metrics_ports.items()]
        out.append(("model-server", f"{LOOPBACK}:{self.model_metrics_port}"))
        out.append(("object-store", self.object_store.metrics_target))
        return out

    # --- life cycle ------------------------------------------------------------------------

    def components(self) -> list[tuple[str, Any]]:
        """Every process, in start order."""
        return [
            ("object-store", self.object_store),
            ("broker-storage", self.broker_storage),
            ("broker", self.broker),
            ("model-server", self.model_server),
            *self.services.items(),
            ("prometheus", self.prometheus),
        ]

    def start(self, progress: Any = None) -> StackState:
        """Start everything (waiting for each to be ready) and write ``stack.json``."""
        for name, component in self.components():
            if progress is not None:
                progress(name)
            component.start()
        self.export_dashboards()
        return self.save()

    @property
    def grafana_dir(self) -> Path:
        """Grafana provisioning of this stack: the chart's dashboards over its Prometheus."""
        return Path(self.config.data_dir) / "grafana"

    def export_dashboards(self) -> list[Path]:
        """Write the dashboards and a datasource of this stack's Prometheus for Grafana."""
        interval = f"{round(self.prometheus.scrape_interval * 1000)}ms"
        return export(self.grafana_dir, self.prometheus.url, scrape_interval=interval)

    def save(self) -> StackState:
        records = {
            "object-store": self.object_store.record(),
            "broker-storage": self.broker_storage.record(),
            "broker": self.broker.record(),
            "model-server": ComponentRecord.for_process(
                self.model_server,
                ports={"grpc": self.model_port, "metrics": self.model_metrics_port},
                probe="grpc",
                endpoint=f"{LOOPBACK}:{self.model_port}",
                data_dir=self.model_server.log_path.parent,
            ),
        }
        for name, process in self.services.items():
            port = self.metrics_ports[name]
            records[name] = _service_record(process, port)
        records["prometheus"] = self.prometheus.record()
        state = StackState(
            data_dir=str(self.config.data_dir),
            components=records,
            access_key=self.config.credentials.access_key,
            secret_key=self.config.credentials.secret_key,
            extra={
                "settings": self.settings(),
                "prometheus": self.prometheus.url,
                "grafana": str(self.grafana_dir),
                "classifier_threshold": asdict(self.classifier_threshold),
                "options": self.config.options(),
            },
        )
        save_state(state)
        return state

    def stop(self) -> None:
        """Stop everything, last started first."""
        for _, component in reversed(self.components()):
            component.stop()

    def process(self, name: str) -> Any:
        """The component or service called ``name`` (to kill or restart it in tests)."""
        for key, component in self.components():
            if key == name:
                return component
        raise KeyError(f"no component {name!r}; have {[k for k, _ in self.components()]}")


def stop_stack(data_dir: Path | str, timeout: float = 20.0) -> Sequence[str]:
    """Stop the stack recorded in ``data_dir``; the names of what was stopped."""
    state = load_state(data_dir)
    if state is None:
        return []
    return terminate_stack(state, timeout)


def existing_alive(data_dir: Path | str) -> StackState | None:
    """The state of the stack running in ``data_dir``, or None if none runs there."""
    state = load_state(data_dir)
    return state if state is not None and stack_alive(state) else None


def recorded_options(state: StackState) -> dict[str, Any] | None:
    """The options the stack in ``state`` was started with (None: not recorded, older file)."""
    options = state.extra.get("options")
    keys = {"source", "source_args", "tilers", "model_repo"}
    return options if isinstance(options, dict) and keys <= options.keys() else None


def is_service(name: str) -> bool:
    """True for the pipeline's own services (``fetcher``, ``tiler-2``...), not infrastructure."""
    return name.split("-")[0] in SERVICES


def restart_services(state: StackState, names: Sequence[str], progress: Any = None) -> StackState:
    """Restart the services ``names`` of a running stack on their recorded ports.

    The rest of the stack is left alone; a hung process still holding a
    recorded pid is stopped first. The state file is updated with the new pids.

    Raises
    ------
    ValueError
        If a name is not a service of the stack, or its options are not recorded.
    """
    options = recorded_options(state)
    if options is None:
        raise ValueError(f"{state_path(state.data_dir)} does not record the stack's options")
    config = StackConfig.from_options(state.data_dir, options, stop_at_exit=False)
    settings = dict(state.extra["settings"])
    records = dict(state.components)
    for name in names:
        if not is_service(name) or name not in records:
            raise ValueError(f"{name!r} is not a service of the stack in {state.data_dir}")
        old = records[name]
        terminate_component(old)
        port = old.ports["metrics"]
        if progress is not None:
            progress(name)
        process = _service_process(config, settings, name, port)
        process.start()
        records[name] = _service_record(process, port)
    new_state = replace(state, components=records)
    save_state(new_state)
    return new_state
