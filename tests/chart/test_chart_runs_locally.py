"""The chart and the code cannot drift: what the chart deploys runs here, as local processes.

The chart is rendered with ``ci/simulated-values.yaml``; every container it deploys
(the setup Job, TF Serving with its model-pull init container, the four services with
their init containers) is run from its rendered command, args and environment. Only
what cannot exist outside a cluster is rewritten:

* addresses: a ``host:port`` that names a Service of the render (or Strimzi's
  ``<cluster>-kafka-bootstrap``) becomes the loopback address of the local process
  behind it (SeaweedFS for the object store, Tansu for Kafka, the local TF Serving
  stand-in), every declared ``containerPort`` a free local port, ``0.0.0.0`` loopback;
* file paths under a volume mount become a folder of the pod (ConfigMaps written out,
  one folder per emptyDir, shared by the pod's containers), and the image's
  ``/opt/radiounet/model_repo`` this repository's ``model_repo/``;
* programs: ``radiounet`` is this interpreter's ``-m radiounet.cli.main``, ``python``
  this interpreter, ``tensorflow_model_server`` the stand-in ``radiounet serve
  model-server`` (which takes TF Serving's flags);
* a ``metadata.name`` fieldRef is a pod name; Secrets and ConfigMaps resolve from the
  render; Strimzi's topic operator is played by creating each KafkaTopic's topic.

Everything else (flags, settings, probe paths, the models.config, batching and
monitoring files) is the chart's own, so a flag or variable the code does not know, a
probe on the wrong path or port, or a config the server cannot read fails here. Then
three pointings are submitted with ``radiounet submit`` and the results read back
with ``radiounet results``. Cheap static checks of every values file come first.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest

from radiounet.model.repository import resolve_model
from radiounet.model.threshold import threshold_of
from radiounet.stream.local.components import Broker, Credentials, ObjectStore
from radiounet.stream.local.ports import free_port
from radiounet.stream.local.probes import LOOPBACK, http_ok, http_request, tcp_open
from radiounet.stream.local.processes import ManagedProcess
from radiounet.stream.settings import ENV_PREFIX, Settings, settings_from

REPO = Path(__file__).resolve().parents[2]
#: Files the radiounet image holds (infra/docker/Dockerfile) -> where they are here.
IMAGE_PATHS = {"/opt/radiounet/model_repo": REPO / "model_repo"}
#: Settings variables that hold addresses (rewritten to the local processes).
ADDRESS_ENV = ("RADIOUNET_KAFKA_BOOTSTRAP", "RADIOUNET_S3_ENDPOINT", "RADIOUNET_MODEL_SERVER")
SETTINGS_ENV = frozenset(ENV_PREFIX + f.name.upper() for f in fields(Settings))
PYTHON = (sys.executable,)
RADIOUNET = (sys.executable, "-m", "radiounet.cli.main")
#: Three clusters in the LoTSS-DR2 footprint; 384 px cutouts (3 x 3 tiles of 192 px).
CATALOGUE = """\
Name,RAdeg,DEdeg,z,MSZ_1e14
Chart Cluster A,150.0,40.0,0.15,5.0
Chart Cluster B,150.7,40.1,0.12,6.0
Chart Cluster C,151.4,40.2,0.18,4.0
"""
SIZE_PX = 384
#: How long anything may take on a loaded 2-core machine (a bound, never asserted on).
TIMEOUT_S = 300.0


# --- static checks of every values file ------------------------------------------------------


def program(container: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``(program, arguments)`` a container runs; the image's entrypoint if no command."""
    command = list(container.get("command") or [])
    args = [str(a) for a in container.get("args") or []]
    if not command:
        image = str(container.get("image", ""))
        command = ["tensorflow_model_server"] if "tensorflow/serving" in image else ["radiounet"]
    return command[0], [*command[1:], *args]


def subcommand(arguments: Sequence[str]) -> tuple[str, ...]:
    """The leading words of a ``radiounet`` command line (``serve tiler``, ``model pull``)."""
    words = []
    for arg in arguments:
        if arg.startswith("-"):
            break
        words.append(arg)
    return tuple(words)


def flags_of(help_text: str) -> set[str]:
    """Every ``--flag`` a ``--help`` text offers."""
    return set(re.findall(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)", help_text))


#: Reads a JSON list of ``radiounet`` argument lists on stdin; prints the flags of every
#: parser of the command line (what each ``--help`` lists) and, for each argument list, the
#: error the command line gives it (None: it parses).
_PARSE_COMMAND_LINES = """
import argparse, contextlib, io, json, sys
from radiounet.cli.main import build_parser
def walk(parser, path, out):
    out[" ".join(path)] = sorted(s for a in parser._actions for s in a.option_strings)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                walk(sub, [*path, name], out)
def error(argv):
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    return None
flags = {}
walk(build_parser(), [], flags)
print(json.dumps({"flags": flags, "errors": [error(argv) for argv in json.load(sys.stdin)]}))
"""


@dataclass(frozen=True)
class CommandLines:
    """What the code's command line says about the chart's commands.

    Attributes
    ----------
    flags : dict
        Command words (``("serve", "tiler")``) -> the flags it accepts.
    errors : dict
        ``(values name, container)`` -> the error ``radiounet`` gives its arguments.
    """

    flags: dict[tuple[str, ...], set[str]]
    errors: dict[tuple[str, str], str]


@pytest.fixture(scope="session")
def command_lines(renders: Any, k8s: Any) -> CommandLines:
    """Every ``radiounet`` command of every render, checked by the code's parsers.

    Two child processes at once: one builds the command line's parsers, lists their
    flags and parses each command; ``radiounet serve model-server --help`` lists the
    stand-in's TF Serving flags (a parser of its own, behind a TensorFlow import).
    """
    argvs: list[list[str]] = []
    where: list[tuple[str, str]] = []
    for render in renders.all():
        for name, container in containers_of(render, k8s):
            command, arguments = program(container)
            if command == "radiounet" and subcommand(arguments)[:2] != ("serve", "model-server"):
                argvs.append(arguments)
                where.append((render.name, name))
    parse, server = (
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in (
            [sys.executable, "-c", _PARSE_COMMAND_LINES],
            [*RADIOUNET, "serve", "model-server", "--help"],
        )
    )
    parsed, parse_err = parse.communicate(json.dumps(argvs), timeout=120)
    server_help, server_err = server.communicate("", timeout=120)
    assert parse.returncode == 0, parse_err
    assert server.returncode == 0, server_err
    report = json.loads(parsed)
    flags = {tuple(k.split()): set(v) for k, v in report["flags"].items()}
    flags[("serve", "model-server")] = flags_of(server_help)
    errors = {w: e for w, e in zip(where, report["errors"], strict=True) if e is not None}
    return CommandLines(flags, errors)


def containers_of(render: Any, k8s: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, container)`` for every container and init container of the render."""
    for workload in render.workloads():
        for container in k8s.containers(workload):
            yield f"{render.name}: {k8s.name_of(workload)}/{container['name']}", container


def test_radiounet_variables_are_settings_that_parse(render: Any, k8s: Any) -> None:
    problems = []
    for where, container in containers_of(render, k8s):
        name, _ = program(container)
        if name not in ("radiounet", "python", "python3"):
            continue
        plain = {}
        for var in container.get("env") or []:
            if var["name"].startswith(ENV_PREFIX) and var["name"] not in SETTINGS_ENV:
                problems.append(
                    f"{where}: env {var['name']} is not a field of "
                    "radiounet.stream.settings.Settings"
                )
            elif "value" in var:
                plain[var["name"]] = str(var["value"])
        try:
            settings_from(env=plain)
        except ValueError as exc:  # names the variable
            problems.append(f"{where}: {exc}")
    assert not problems, "\n".join(problems)


def test_every_command_and_flag_is_accepted_by_the_code(
    render: Any, k8s: Any, command_lines: CommandLines
) -> None:
    problems = []
    for where, container in containers_of(render, k8s):
        name, arguments = program(container)
        if name == "radiounet":
            words = subcommand(arguments)
            given = arguments[len(words) :]
        elif name == "tensorflow_model_server":
            words, given = ("serve", "model-server"), arguments
        else:
            continue
        if words not in command_lines.flags:
            problems.append(f"{where}: the code has no command `radiounet {' '.join(words)}`")
            continue
        for arg in given:
            flag = arg.split("=", 1)[0]
            if arg.startswith("--") and flag not in command_lines.flags[words]:
                problems.append(
                    f"{where}: `radiounet {' '.join(words)}` has no flag {flag} "
                    f"(the chart passes {arg!r})"
                )
        error = command_lines.errors.get((render.name, where))
        if error is not None:
            problems.append(f"{where}: `radiounet {' '.join(arguments)}`: {error}")
    assert not problems, "\n".join(problems)


# --- the local "cluster" ---------------------------------------------------------------------


@dataclass
class LocalPod:
    """One pod of the render, run here: its volumes as folders, its ports as free ports.

    Parameters
    ----------
    render : Render
        The chart's render (Secrets, ConfigMaps).
    workload : dict
        The Deployment or Job.
    root : Path
        Folder of the pod's volumes and logs.
    k8s : namespace
        The ``k8s`` fixture's helpers.

    Attributes
    ----------
    name : str
        The pod's name (``<workload>-local-0``), also its ``metadata.name`` fieldRef.
    ports : dict of int to int
        Each declared ``containerPort`` -> the free local port it becomes.
    volumes : dict of str to Path
        Each volume -> its folder (ConfigMaps and Secrets written out).
    processes : list of ManagedProcess
        Its running containers.
    """

    render: Any
    workload: dict[str, Any]
    root: Path
    k8s: Any
    name: str = field(init=False)
    spec: dict[str, Any] = field(init=False)
    labels: dict[str, str] = field(init=False)
    volumes: dict[str, Path] = field(init=False)
    ports: dict[int, int] = field(default_factory=dict, init=False)
    processes: list[ManagedProcess] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.name = f"{self.k8s.name_of(self.workload)}-local-0"
        self.spec = self.k8s.pod_spec(self.workload)
        self.labels = self.k8s.labels_of(self.k8s.pod_template(self.workload))
        self.volumes = {v["name"]: self._volume(v) for v in self.spec.get("volumes") or []}
        for container in self.k8s.containers(self.workload):
            for port in container.get("ports") or []:
                self.ports.setdefault(int(port["containerPort"]), free_port())

    def _volume(self, volume: Mapping[str, Any]) -> Path:
        folder = self.root / "volumes" / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            return folder
        if "configMap" in volume:
            data = self.render.get("ConfigMap", volume["configMap"]["name"]).get("data") or {}
            files = {k: str(v).encode() for k, v in data.items()}
            items = volume["configMap"].get("items")
        elif "secret" in volume:
            secret = self.render.get("Secret", volume["secret"]["secretName"])
            files = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            items = volume["secret"].get("items")
        else:
            pytest.fail(
                f"{self.name}: volume {volume['name']} of a kind that cannot run here: "
                f"{sorted(volume)}"
            )
        for item in items or [{"key": k, "path": k} for k in files]:
            (folder / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            (folder / item["path"]).write_bytes(files[item["key"]])
        return folder

    def mounts(self, container: Mapping[str, Any]) -> list[tuple[str, Path]]:
        """``(mountPath, local path)``, longest mount path first."""
        found = []
        for mount in container.get("volumeMounts") or []:
            local = self.volumes[mount["name"]]
            if mount.get("subPath"):
                local = local / mount["subPath"]
            found.append((mount["mountPath"].rstrip("/") or "/", local))
        return sorted(found, key=lambda m: len(m[0]), reverse=True)

    def local_path(self, container: Mapping[str, Any], path: str) -> str | None:
        """Where the container's absolute ``path`` is here; None if it is in no mount."""
        places = [*self.mounts(container), *((k, v) for k, v in IMAGE_PATHS.items())]
        for mount, local in places:
            if path == mount or path.startswith(mount + "/"):
                return str(local) + path[len(mount) :]
        return None


class LocalCluster:
    """The render's pods as local processes, with the chart's addresses mapped to them."""

    def __init__(
        self, render: Any, k8s: Any, root: Path, env_of: Callable[..., dict[str, str]]
    ) -> None:
        self.render = render
        self.k8s = k8s
        self.root = root
        self.env_of = env_of
        self.addresses: dict[str, str] = {}
        self.pods: dict[str, LocalPod] = {}
        self.running: list[ManagedProcess] = []

    def pod(self, workload: Mapping[str, Any]) -> LocalPod:
        """The local pod of a workload (made, and its Services mapped, on first use)."""
        name = self.k8s.name_of(workload)
        if name not in self.pods:
            pod = LocalPod(self.render, dict(workload), self.root / name, self.k8s)
            self.pods[name] = pod
            self.map_services(pod)
        return self.pods[name]

    def map_services(self, pod: LocalPod) -> None:
        """Map ``<service>:<port>`` of every Service selecting ``pod`` to its local port."""
        for service in self.render.of_kind("Service"):
            selector = service["spec"].get("selector")
            if not selector or not self.k8s.matches(selector, pod.labels):
                continue
            for entry in service["spec"]["ports"]:
                target = entry.get("targetPort", entry["port"])
                port = self.container_port(pod, target)
                self.alias(self.k8s.name_of(service), int(entry["port"]), f"{LOOPBACK}:{port}")

    def container_port(self, pod: LocalPod, port: int | str) -> int:
        """Local port of a container port of ``pod``, given by number or name."""
        for container in self.k8s.containers(pod.workload):
            for declared in container.get("ports") or []:
                if port in (declared.get("name"), declared["containerPort"]):
                    return pod.ports[int(declared["containerPort"])]
        pytest.fail(f"{pod.name}: no container port {port!r}")

    def alias(self, service: str, port: int, local: str) -> None:
        """``service:port`` (short and namespaced forms) is ``local`` here."""
        ns = self.k8s.NAMESPACE
        for host in (
            service,
            f"{service}.{ns}",
            f"{service}.{ns}.svc",
            f"{service}.{ns}.svc.cluster.local",
        ):
            self.addresses[f"{host}:{port}"] = local

    def address(self, where: str, value: str) -> str:
        """The local form of a chart address (``h:p[,h:p]``); fails if it names nothing."""
        out = []
        for part in value.split(","):
            if part.strip() not in self.addresses:
                known = ", ".join(sorted(a for a in self.addresses if "." not in a.split(":")[0]))
                pytest.fail(
                    f"{where}={value!r} names no Service of the chart nor the Kafka "
                    f"bootstrap (known: {known})"
                )
            out.append(self.addresses[part.strip()])
        return ",".join(out)

    def command(self, pod: LocalPod, container: Mapping[str, Any]) -> list[str]:
        """The container's command line, with programs, paths and ports made local."""
        name, arguments = program(container)
        programs = {
            "radiounet": list(RADIOUNET),
            "python": list(PYTHON),
            "python3": list(PYTHON),
            "tensorflow_model_server": [*RADIOUNET, "serve", "model-server"],
        }
        if name not in programs:
            pytest.fail(f"{pod.name}/{container['name']}: cannot run {name!r} here")
        declared = {int(p["containerPort"]) for p in container.get("ports") or []}
        out = list(programs[name])
        for arg in arguments:
            flag, eq, value = arg.partition("=")
            if not eq:
                flag, value = "", arg
            if value.startswith("/"):
                value = self.path(pod, container, value, f"argument {arg!r}")
            elif flag.startswith("--") and value.isdigit() and int(value) in declared:
                value = str(pod.ports[int(value)])
            out.append(f"{flag}={value}" if eq else value)
        return out

    @staticmethod
    def path(pod: LocalPod, container: Mapping[str, Any], path: str, what: str) -> str:
        """The local form of an absolute path the chart gives a container.

        Fails for a path in no volume and not in the image: with a read-only root
        filesystem nothing else can be written, and here it would land outside the test.
        """
        local = pod.local_path(container, path)
        if local is None:
            pytest.fail(
                f"{pod.name}/{container['name']}: {what}: {path} is in no volume "
                f"of the pod nor among the image's files {sorted(IMAGE_PATHS)}"
            )
        return local

    def environment(self, pod: LocalPod, container: Mapping[str, Any]) -> dict[str, str]:
        """The container's environment, resolved, with addresses, ports and paths made local."""
        where = f"{pod.name}/{container['name']}"
        chart_env = self.env_of(self.render, container, pod_name=pod.name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        declared = {int(p["containerPort"]) for p in container.get("ports") or []}
        for key, value in chart_env.items():
            if key in ADDRESS_ENV:
                value = self.address(f"{where} {key}", value)
            elif key == "RADIOUNET_METRICS_PORT":
                assert int(value) in declared, f"{where}: {key}={value} is no containerPort"
                value = str(pod.ports[int(value)])
            elif key == "RADIOUNET_METRICS_HOST" and value == "0.0.0.0":
                value = LOOPBACK
            elif value.startswith("/"):
                value = self.path(pod, container, value, f"{key}={value}")
            env[key] = value
        return env

    def run_to_completion(self, pod: LocalPod, container: Mapping[str, Any]) -> None:
        """Run a Job's or init container's command; fail with its output if it fails."""
        command = self.command(pod, container)
        log = pod.root / f"{container['name']}.log"
        with log.open("w") as out:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment(pod, container),
                timeout=TIMEOUT_S,
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-30:])
            pytest.fail(
                f"{pod.name}/{container['name']} exited {done.returncode}: "
                f"{' '.join(command)}\n{tail}"
            )

    def start_pod(self, pod: LocalPod) -> None:
        """Run the pod's init containers in order, then start its containers (not waiting)."""
        for container in self.k8s.pod_spec(pod.workload).get("initContainers") or []:
            self.run_to_completion(pod, container)
        for container in self.k8s.containers(pod.workload, init=False):
            if program(container)[0] == "tensorflow_model_server":
                localise_model_config(pod, container)
            self.start(pod, container)

    def start(self, pod: LocalPod, container: Mapping[str, Any]) -> ManagedProcess:
        """Start a long-running container; ready when its readiness probe answers."""
        probe = container.get("readinessProbe") or {}
        get = probe.get("httpGet")
        assert get is not None, f"{pod.name}/{container['name']}: no HTTP readiness probe"
        url = f"http://{LOOPBACK}:{self.container_port(pod, get['port'])}{get['path']}"
        process = ManagedProcess(
            f"{pod.name}/{container['name']}",
            self.command(pod, container),
            log_path=pod.root / f"{container['name']}.log",
            env=self.environment(pod, container),
            ready=lambda: http_ok(url),
            ready_timeout=TIMEOUT_S,
        )
        process.start(wait=False)
        self.running.append(process)
        pod.processes.append(process)
        return process

    def probes_answer(self) -> list[str]:
        """Every HTTP or TCP probe of the running pods that does not answer (none: fine)."""
        bad = []
        for pod in self.pods.values():
            if not pod.processes:
                continue
            for container in self.k8s.containers(pod.workload, init=False):
                for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                    probe = container.get(kind) or {}
                    where = f"{pod.name}/{container['name']} {kind}"
                    if "httpGet" in probe:
                        port = self.container_port(pod, probe["httpGet"]["port"])
                        url = f"http://{LOOPBACK}:{port}{probe['httpGet']['path']}"
                        if not http_ok(url, timeout=5.0):
                            bad.append(f"{where}: {url}")
                    elif "tcpSocket" in probe:
                        port = self.container_port(pod, probe["tcpSocket"]["port"])
                        if not tcp_open(LOOPBACK, port, timeout=5.0):
                            bad.append(f"{where}: tcp {LOOPBACK}:{port}")
        return bad

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ({'running' if p.alive() else 'stopped'})\n{p.log_tail(15)}"
            for p in self.running
        )

    def stop(self) -> None:
        for process in reversed(self.running):
            process.stop()


def create_topics(bootstrap: str, topics: Sequence[Mapping[str, Any]]) -> None:
    """Create each KafkaTopic's topic with its partitions, as Strimzi's topic operator would.

    One replica: the local broker is a single node.
    """
    with warnings.catch_warnings():
        # kafka-python 3.0's import-time deprecation warnings (see tests/stream/conftest.py).
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="topic-operator")
    try:
        admin.create_topics(
            [
                NewTopic(
                    t["spec"].get("topicName", t["metadata"]["name"]),
                    num_partitions=int(t["spec"]["partitions"]),
                    replication_factor=1,
                )
                for t in topics
            ]
        )
    finally:
        admin.close()


def wait_until(condition: Callable[[], Any], what: str, cluster: LocalCluster) -> Any:
    """Poll ``condition`` until truthy; fail naming ``what``, with the processes' logs."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        value = condition()
        if value:
            return value
        dead = [p.name for p in cluster.running if not p.alive()]
        if dead or time.monotonic() > deadline:
            reason = f"{dead} exited" if dead else f"timed out after {TIMEOUT_S:g} s"
            pytest.fail(f"waiting for {what}: {reason}\n{cluster.logs()}")
        time.sleep(1.0)


# --- the run ---------------------------------------------------------------------------------


@pytest.fixture
def simulated(renders: Any, k8s: Any) -> Any:
    if "simulated-values" not in k8s.values_files():
        pytest.fail("charts/radiounet/ci/simulated-values.yaml is missing")
    render = renders["simulated-values"]
    fetcher = render.container("fetcher", "fetcher")
    assert "--source=simulated" in program(fetcher)[1], program(fetcher)
    return render


def test_chart_runs_locally(
    simulated: Any, k8s: Any, env_of: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    render = simulated
    cluster = LocalCluster(render, k8s, tmp_path / "pods", env_of)
    setup = render.component("setup", kind="Job")
    model_server = render.component("model-server")
    stages = {stage: render.component(stage) for stage in k8s.STAGES}

    # The object store's keys are the ones the chart gives the services (its Secret).
    tiler_env = env_of(render, render.container("tiler", "tiler"), pod_name="x")
    credentials = Credentials(
        tiler_env["RADIOUNET_S3_ACCESS_KEY"], tiler_env["RADIOUNET_S3_SECRET_KEY"]
    )
    store = ObjectStore(tmp_path / "object-store", credentials=credentials)
    broker_storage = ObjectStore(tmp_path / "broker-storage", role="broker-storage")
    broker = Broker(tmp_path / "broker", broker_storage)
    servers: list[Any] = []
    try:
        for server in (store, broker_storage, broker):
            server.start()
            servers.append(server)
        for workload in render.workloads():
            if k8s.labels_of(workload).get(k8s.COMPONENT) == "object-store":
                for service in render.of_kind("Service"):
                    selector = service["spec"].get("selector") or {"-": "-"}
                    if k8s.matches(selector, k8s.labels_of(k8s.pod_template(workload))):
                        for entry in service["spec"]["ports"]:
                            cluster.alias(k8s.name_of(service), entry["port"], store.s3_endpoint)
        for kafka in render.of_kind("Kafka"):
            for listener in kafka["spec"]["kafka"]["listeners"]:
                bootstrap = f"{k8s.name_of(kafka)}-kafka-bootstrap"
                cluster.alias(bootstrap, listener["port"], broker.bootstrap)
        if render.of_kind("KafkaTopic"):
            create_topics(broker.bootstrap, render.of_kind("KafkaTopic"))
        run_pipeline(render, k8s, cluster, setup, model_server, stages, store, tmp_path)
    finally:
        cluster.stop()
        for server in reversed(servers):
            server.stop()


def run_pipeline(
    render: Any,
    k8s: Any,
    cluster: LocalCluster,
    setup: Mapping[str, Any],
    model_server: Mapping[str, Any],
    stages: Mapping[str, Mapping[str, Any]],
    store: ObjectStore,
    tmp_path: Path,
) -> None:
    # The setup Job: creates the bucket, pushes this repository's model_repo/.
    job = cluster.pod(setup)
    for container in k8s.containers(setup):
        cluster.run_to_completion(job, container)

    # TF Serving's pod (model-pull, then the stand-in with the chart's flags and files) and
    # the four services (each after its init containers), side by side as in a cluster.
    workloads = [model_server, *stages.values()]
    pods = [cluster.pod(w) for w in workloads]  # maps every address before anything runs
    with ThreadPoolExecutor(len(pods)) as pool:
        for started in [pool.submit(cluster.start_pod, pod) for pod in pods]:
            started.result()
    for process in cluster.running:
        process.wait_ready()

    # Submit three pointings the way NOTES.txt says, with the fetcher's settings.
    fetcher_pod = cluster.pod(stages["fetcher"])
    fetcher = render.container("fetcher", "fetcher")
    env = cluster.environment(fetcher_pod, fetcher)
    catalogue = tmp_path / "clusters.csv"
    catalogue.write_text(CATALOGUE)
    # In tmp_path: no out/stack/stack.json there to fill in settings (the chart gives them all).

    def radiounet(*arguments: str) -> str:
        """Run the CLI as a user would, with the fetcher's settings; its stdout."""
        done = subprocess.run(
            [*RADIOUNET, *arguments],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    submitted = radiounet("submit", "--catalogue", str(catalogue), "--size", str(SIZE_PX))
    ids = [line.split()[0] for line in submitted.splitlines()[1:]]
    assert len(ids) == 3, submitted

    bucket = env["RADIOUNET_BUCKET"]
    client = store.client()

    def results_written() -> bool:
        keys = {o.object_name for o in client.list_objects(bucket, prefix="results/")}
        return all(f"results/{i}.json" in keys for i in ids)

    try:
        wait_until(results_written, f"results/<id>.json of {ids} in bucket {bucket}", cluster)
    finally:
        client._http.clear()  # no unclosed-socket warning later

    rows = [
        r for r in json.loads(radiounet("results", "--format", "json")) if r["pointing_id"] in ids
    ]
    assert sorted(r["pointing_id"] for r in rows) == sorted(ids), rows
    classifier = program(render.container("classifier", "classifier"))[1]
    threshold = [a.split("=", 1)[1] for a in classifier if a.startswith("--threshold=")]
    repository = [a.split("=", 1)[1] for a in classifier if a.startswith("--model-repo=")]
    assert len(threshold) + len(repository) == 1, classifier
    for row in rows:
        assert isinstance(row["ratio"], float) and math.isfinite(row["ratio"]), row
        assert isinstance(row["diffuse"], bool), row
        assert row["diffuse"] == (row["ratio"] >= row["threshold"]), row
        if threshold:  # the chart's flag reached the classifier
            assert row["threshold"] == pytest.approx(float(threshold[0])), row
        else:  # the map's version's threshold, from the repository the setup Job pushed
            made_by = resolve_model(
                IMAGE_PATHS["/opt/radiounet/model_repo"],
                name=row["model"],
                version=row["model_version"],
            )
            expected = threshold_of(made_by)
            assert row["threshold"] == pytest.approx(expected.value), row
            assert row["threshold_source"] == expected.source, row

    # Every probe of the chart answers, and every ServiceMonitor endpoint serves metrics.
    assert not cluster.probes_answer(), cluster.probes_answer()
    for problem in scrape_servicemonitors(render, k8s, cluster):
        pytest.fail(problem)


def localise_model_config(pod: LocalPod, container: Mapping[str, Any]) -> None:
    """Point the absolute paths inside the model config TF Serving reads at the pod's folders."""
    _, arguments = program(container)
    (path,) = [a.split("=", 1)[1] for a in arguments if a.startswith("--model_config_file=")]
    local = pod.local_path(container, path)
    assert local is not None, f"--model_config_file={path} is in no volume of the pod"
    config = Path(local)
    assert config.is_file(), f"{path} ({config}) does not exist after the init containers"

    def replace(match: re.Match[str]) -> str:
        mapped = pod.local_path(container, match.group(2))
        assert mapped is not None, f"{path}: {match.group(2)} is in no volume of the pod"
        assert Path(mapped).is_dir(), f"{path}: {match.group(2)} ({mapped}) is not a folder"
        return f'{match.group(1)}"{mapped}"'

    text = re.sub(r'(base_path\s*:\s*)"(/[^"]*)"', replace, config.read_text())
    config.write_text(text)


def scrape_servicemonitors(render: Any, k8s: Any, cluster: LocalCluster) -> Iterator[str]:
    """Problems with scraping each ServiceMonitor endpoint of the running pods (none: fine)."""
    for monitor in render.of_kind("ServiceMonitor"):
        selector = monitor["spec"]["selector"]
        services = [s for s in render.of_kind("Service") if k8s.selects(selector, k8s.labels_of(s))]
        if not services:
            yield f"ServiceMonitor {k8s.name_of(monitor)} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            path = endpoint.get("path", "/metrics")
            for service in services:
                ports = [p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]]
                if not ports:
                    yield (
                        f"{k8s.name_of(monitor)}: Service {k8s.name_of(service)} has no port "
                        f"{endpoint['port']!r}"
                    )
                    continue
                local = cluster.addresses.get(f"{k8s.name_of(service)}:{ports[0]['port']}")
                if local is None:
                    continue  # a pod this test does not run (the object store is SeaweedFS)
                answer = http_request(f"http://{local}{path}", timeout=10.0)
                if not answer.ok or b"# TYPE" not in answer.body:
                    yield f"{k8s.name_of(monitor)}: http://{local}{path} answered {answer.status}"
