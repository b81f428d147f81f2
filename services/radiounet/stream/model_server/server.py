"""Start the model server: gRPC services, health, HTTP metrics, and the command line.

:func:`serve` starts a :class:`ModelServer` from a ``ModelServerConfig``;
:func:`main` is ``tensorflow_model_server``-like: the same flag names
(``--port``, ``--model_config_file``, ``--model_name``/``--model_base_path``,
``--enable_batching``, ``--batching_parameters_file``, ``--rest_api_port``,
``--monitoring_config_file``, ``--file_system_poll_wait_seconds``,
``--tensorflow_intra_op_parallelism``...), so the deployment can swap this
stand-in for the real image without changing the tiler or its arguments.
Every flag can also come from ``RADIOUNET_MODEL_SERVER_<FLAG>`` (upper case),
e.g. ``RADIOUNET_MODEL_SERVER_PORT=8500``; an explicit flag wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ...tf_runtime import tf
from ._protos import model_service_pb2_grpc, prediction_service_pb2_grpc
from .batching import BatchingOptions, parse_batching_parameters
from .config import load_model_config, single_model_config
from .manager import ModelManager
from .metrics import ServingMetrics
from .rest import DEFAULT_METRICS_PATHS, HttpServer
from .servicer import ModelServicer, PredictionServicer

__all__ = [
    "ENV_PREFIX",
    "ModelServer",
    "ServerOptions",
    "build_parser",
    "main",
    "options_from_args",
    "serve",
]

ENV_PREFIX = "RADIOUNET_MODEL_SERVER_"
_SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """How the server listens and runs (the model list is the ``ModelServerConfig``).

    Attributes
    ----------
    port, host : int, str
        gRPC address (port 0: any free port, see :attr:`ModelServer.port`).
    http_port : int or None
        HTTP metrics and model status (``--rest_api_port``/``--monitoring_port``);
        ``None``: no HTTP server.
    metrics_paths : tuple of str
        Paths of the metrics page.
    grpc_max_threads : int
        Threads handling RPCs (concurrent requests waiting on a batch each hold one).
    max_message_bytes : int
        gRPC send/receive limit (the gRPC default, 4 MiB, is 27 tiles of 192²).
    batching : BatchingOptions
        Server-side batching (on by default here, unlike TF Serving).
    file_system_poll_wait_seconds : float
        Seconds between scans for new version folders (0: only at start).
    model_config_file : Path or None
        Re-read when it changes, every ``model_config_file_poll_wait_seconds`` (0: never).
    intra_op_parallelism, inter_op_parallelism : int
        TensorFlow thread pools (0: TensorFlow's choice).
    """

    port: int = 8500
    host: str = "0.0.0.0"
    http_port: int | None = None
    metrics_paths: tuple[str, ...] = DEFAULT_METRICS_PATHS
    grpc_max_threads: int = 64
    max_message_bytes: int = 256 * 2**20
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    file_system_poll_wait_seconds: float = 1.0
    model_config_file: Path | None = None
    model_config_file_poll_wait_seconds: float = 0.0
    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0


class ModelServer:
    """A running model server; use :func:`serve` to make one.

    ``with serve(config) as server:`` stops it on exit.
    """

    def __init__(self, config: Any, options: ServerOptions | None = None) -> None:
        self.options = options or ServerOptions()
        self.metrics = ServingMetrics()
        self.manager = ModelManager(config, batching=self.options.batching, metrics=self.metrics)
        self._health = health.HealthServicer(experimental_non_blocking=True)
        self._grpc: Any = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._http: HttpServer | None = None
        self._stopped = threading.Event()
        self._config_stop = threading.Event()
        self._config_poller: threading.Thread | None = None
        self.port = 0

    @property
    def http_port(self) -> int | None:
        """The HTTP port, or ``None`` without HTTP."""
        return self._http.port if self._http is not None else None

    @property
    def target(self) -> str:
        """``host:port`` a local client can dial."""
        host = self.options.host
        return f"{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{self.port}"

    def start(self) -> ModelServer:
        """Load the models (failing if one has no version), then listen.

        Raises
        ------
        ValueError
            If a model cannot be served or the port cannot be bound.
        """
        opts = self.options
        _set_tf_threads(opts.intra_op_parallelism, opts.inter_op_parallelism)
        self.manager.load_initial()  # TF Serving also listens only once models are loaded
        try:
            self._start_grpc()
            if opts.http_port is not None:
                self._http = HttpServer(
                    self.metrics.render,
                    self.manager.statuses,
                    host=opts.host,
                    port=opts.http_port,
                    metrics_paths=opts.metrics_paths,
                ).start()
        except BaseException:
            self.stop(grace=0)
            raise
        self.manager.start_polling(opts.file_system_poll_wait_seconds)
        self._start_config_poller()
        for service in ("", *_SERVICES):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self

    def _start_grpc(self) -> None:
        opts = self.options
        self._executor = futures.ThreadPoolExecutor(
            max_workers=opts.grpc_max_threads, thread_name_prefix="grpc"
        )
        server = grpc.server(
            self._executor,
            options=[
                ("grpc.max_send_message_length", opts.max_message_bytes),
                ("grpc.max_receive_message_length", opts.max_message_bytes),
                # Fail loudly if another process holds the port, instead of sharing it.
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.manager, self.metrics), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.manager), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self._grpc = server
        address = f"{opts.host}:{opts.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ValueError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise ValueError(f"cannot listen on {address}")
        self.port = int(port)
        server.start()
        _log.info("Running gRPC ModelServer at %s:%d ...", opts.host, self.port)

    def _start_config_poller(self) -> None:
        path, every = (
            self.options.model_config_file,
            self.options.model_config_file_poll_wait_seconds,
        )
        if path is None or every <= 0:
            return

        def poll() -> None:
            last = path.stat().st_mtime_ns
            while not self._config_stop.wait(every):
                try:
                    mtime = path.stat().st_mtime_ns
                    if mtime != last:
                        last = mtime
                        _log.info("model config %s changed; reloading", path)
                        self.manager.reload(load_model_config(path))
                except (OSError, ValueError) as exc:
                    _log.error("model config reload failed: %s", exc)

        self._config_poller = threading.Thread(target=poll, name="model-config-poller", daemon=True)
        self._config_poller.start()

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop taking requests, let running ones finish for ``grace`` seconds, unload.

        Safe to call more than once.
        """
        if self._stopped.is_set():
            return
        self._health.enter_graceful_shutdown()
        self._config_stop.set()
        if self._config_poller is not None:
            self._config_poller.join()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        self.manager.close()
        if self._http is not None:
            self._http.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._stopped.set()
        _log.info("model server stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has finished; ``False`` on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(config: Any, options: ServerOptions | None = None, **overrides: Any) -> ModelServer:
    """Start a model server and return it, listening.

    Parameters
    ----------
    config : ModelServerConfig, str or Path
        The model list, or the path of a ``models.config`` text file.
    options : ServerOptions or None
        Server settings; ``overrides`` replace single fields (``port=0``...).
    """
    options = replace(options or ServerOptions(), **overrides)
    if isinstance(config, str | Path):
        options = replace(options, model_config_file=Path(config))
        config = load_model_config(config)
    return ModelServer(config, options).start()


def _set_tf_threads(intra: int, inter: int) -> None:
    # Only possible before TensorFlow's runtime starts (the first op or load).
    try:
        if intra > 0:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter > 0:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as exc:
        _log.warning("TensorFlow thread settings ignored: %s", exc)


# -- command line --------------------------------------------------------------

_DESCRIPTION = """\
STAND-IN for TensorFlow Serving (tensorflow_model_server), for where its binary
cannot be installed. It serves TF Serving's gRPC API (PredictionService.Predict
and GetModelMetadata, ModelService.GetModelStatus and HandleReloadConfigRequest,
grpc.health.v1) over the same model repository layout, models.config and flag
names, with server-side batching and TF Serving's Prometheus metric names.
Production runs the tensorflow/serving image; clients work against either.
Not implemented: the REST inference API (--rest_api_port serves metrics and
/v1/models/<name> status only), Classify/Regress/MultiInference, TFRT, GPUs.
Every flag may also be set as RADIOUNET_MODEL_SERVER_<FLAG> in the environment.
"""


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def build_parser(
    environ: dict[str, str] | None = None, prog: str = "radiounet-model-server"
) -> argparse.ArgumentParser:
    """The ``tensorflow_model_server``-style parser; defaults come from ``environ``."""
    env = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def flag(name: str, kind: Callable[[str], Any], default: Any, text: str, **kw: Any) -> None:
        variable = ENV_PREFIX + name.upper()
        if variable in env:
            try:
                default = kind(env[variable])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"{variable}: {exc}")
        parser.add_argument(
            f"--{name}", type=kind, default=default, help=f"{text} (env {variable})", **kw
        )

    flag("port", int, 8500, "gRPC port")
    flag("grpc_max_threads", int, 64, "threads handling gRPC requests")
    flag("rest_api_port", int, 0, "HTTP port: metrics and model status only here (0: off)")
    flag("model_config_file", Path, None, "ModelServerConfig text file (models.config)")
    flag(
        "model_config_file_poll_wait_seconds",
        float,
        0.0,
        "seconds between checks of --model_config_file for changes (0: never)",
    )
    flag("model_name", str, "default", "model name, with --model_base_path")
    flag("model_base_path", str, None, "folder of the version folders of one model")
    flag(
        "file_system_poll_wait_seconds",
        float,
        1.0,
        "seconds between scans for new model versions (0: only at start)",
    )
    flag(
        "enable_batching",
        _bool,
        True,
        "merge concurrent requests into one model call (TF Serving's default: false)",
        nargs="?",
        const=True,
    )
    flag("batching_parameters_file", Path, None, "BatchingParameters text file")
    flag("monitoring_config_file", Path, None, "MonitoringConfig text file (prometheus_config)")
    flag("tensorflow_intra_op_parallelism", int, 0, "TensorFlow intra-op threads (0: auto)")
    flag("tensorflow_inter_op_parallelism", int, 0, "TensorFlow inter-op threads (0: auto)")
    # Stand-in only.
    flag("host", str, "0.0.0.0", "[stand-in] address to listen on")
    flag("monitoring_port", int, 0, "[stand-in] HTTP port of the metrics (0: --rest_api_port)")
    flag("max_batch_size", int, None, "[stand-in] overrides the batching file (default 64)")
    flag("batch_timeout_micros", int, None, "[stand-in] overrides the batching file (5000)")
    flag(
        "num_batch_threads",
        int,
        None,
        "[stand-in] overrides the batching file (default: the CPUs, as TF Serving)",
    )
    flag("max_enqueued_batches", int, None, "[stand-in] overrides the batching file (100)")
    flag("max_message_bytes", int, 256 * 2**20, "[stand-in] gRPC message size limit")
    flag("shutdown_grace_seconds", float, 10.0, "[stand-in] time in-flight requests get on stop")
    return parser


_PROMETHEUS = re.compile(r"prometheus_config\s*\{([^}]*)\}", re.S)


def _monitoring_paths(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return DEFAULT_METRICS_PATHS
    block = _PROMETHEUS.search(path.read_text())
    found = re.search(r'path\s*:\s*"([^"]+)"', block.group(1)) if block else None
    extra = (found.group(1),) if found else ()
    return tuple(dict.fromkeys((*DEFAULT_METRICS_PATHS, *extra)))


def options_from_args(args: argparse.Namespace) -> tuple[Any, ServerOptions]:
    """The model config and server options a parsed command line asks for.

    Raises
    ------
    ValueError
        For contradictory or missing model flags and unreadable files.
    """
    if (args.model_config_file is None) == (args.model_base_path is None):
        raise ValueError("give exactly one of --model_config_file and --model_base_path")
    if args.model_config_file is not None:
        config = load_model_config(args.model_config_file)
    else:
        config = single_model_config(args.model_name, args.model_base_path)
    batching = BatchingOptions(enabled=args.enable_batching)
    if args.batching_parameters_file is not None:
        batching = parse_batching_parameters(args.batching_parameters_file.read_text(), batching)
        batching = replace(batching, enabled=args.enable_batching)
    tuned = ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")
    overrides = {k: getattr(args, k) for k in tuned if getattr(args, k) is not None}
    batching = replace(batching, **overrides)
    if args.monitoring_port and args.rest_api_port and args.monitoring_port != args.rest_api_port:
        raise ValueError("--monitoring_port and --rest_api_port differ; give one")
    http_port = args.monitoring_port or args.rest_api_port or None
    options = ServerOptions(
        port=args.port,
        host=args.host,
        http_port=http_port,
        metrics_paths=_monitoring_paths(args.monitoring_config_file),
        grpc_max_threads=args.grpc_max_threads,
        max_message_bytes=args.max_message_bytes,
        batching=batching,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        model_config_file=args.model_config_file,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        intra_op_parallelism=args.tensorflow_intra_op_parallelism,
        inter_op_parallelism=args.tensorflow_inter_op_parallelism,
    )
    return config, options


def main(argv: Sequence[str] | None = None, *, prog: str = "radiounet-model-server") -> int:
    """Run the server until SIGTERM or SIGINT; return the exit status (1: cannot start).

    ``prog`` names the command in ``--help`` (e.g. ``radiounet serve model-server``).
    """
    args = build_parser(prog=prog).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _log.info("signal %d: shutting down", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        try:
            config, options = options_from_args(args)
            server = ModelServer(config, options).start()
        except (ValueError, OSError) as exc:
            print(f"model server: error: {exc}", file=sys.stderr)
            return 1
        if server.http_port is not None:
            _log.info("HTTP metrics at :%d%s", server.http_port, options.metrics_paths[0])
        while not stop.wait(1.0):  # a timed wait lets the signal handler run promptly
            pass
        server.stop(grace=args.shutdown_grace_seconds)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
