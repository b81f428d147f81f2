"""Fixtures of the chart's tests: the chart tools, one render per values file, its objects.

Every test that takes ``values_name`` runs once per values file of the chart: the
defaults (``default``) and each ``charts/radiounet/ci/*-values.yaml`` (found by glob,
so a new file is covered without touching the tests). ``renders[values_name]``
renders the chart with that file once per session (``helm template`` with the
API versions of the chart's custom resources, so templates guarded by
``.Capabilities.APIVersions.Has`` render too) and gives its objects.

The tools come from ``make tools`` (``.tools/``); a missing one fails the test with
"run make tools": ``make test`` installs them, so skipping would hide a broken setup.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "radiounet"
HERE = Path(__file__).resolve().parent
CRD_SCHEMAS = HERE / "crd_schemas"
TOOLS = REPO / ".tools"
HELM = TOOLS / "bin" / "helm"
TOOLS_PYTHON = TOOLS / "venv" / "bin" / "python"
CHECKOV = TOOLS / "venv" / "bin" / "checkov"
KUBERNETES_VALIDATE = TOOLS / "venv" / "bin" / "kubernetes-validate"

RELEASE = "radiounet"
#: Rendered into a namespace of its own, as a real install would be.
NAMESPACE = "radiounet"
#: The API versions of the chart's custom resources (Strimzi, KEDA, prometheus-operator).
CRD_API_VERSIONS = ("kafka.strimzi.io/v1beta2", "keda.sh/v1alpha1", "monitoring.coreos.com/v1")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
#: Labels a selector may use: the release's identity and the stage.
SELECTOR_LABELS = frozenset(
    {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
)
COMPONENT = "app.kubernetes.io/component"
#: The services (component label, main container name and ``radiounet serve`` stage).
STAGES = ("fetcher", "tiler", "reassembler", "classifier")
HELM_TIMEOUT_S = 120


def require_tool(path: Path) -> Path:
    """``path`` if it is an executable, else fail the test saying how to get it."""
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path.relative_to(REPO)} is missing: run make tools", pytrace=False)
    return path


def require_chart() -> Path:
    """The chart folder, or fail the test if it has no Chart.yaml."""
    if not (CHART / "Chart.yaml").is_file():
        pytest.fail(f"{CHART.relative_to(REPO)}/Chart.yaml is missing", pytrace=False)
    return CHART


def values_files() -> dict[str, Path | None]:
    """Values-file name (``default``, ``cpu-values``...) -> file (None: the chart's defaults)."""
    files: dict[str, Path | None] = {"default": None}
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        files[path.name.removesuffix(".yaml")] = path
    return files


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "values_name" in metafunc.fixturenames:
        metafunc.parametrize("values_name", list(values_files()))


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    """``.tools/bin/helm ARGS`` (text output, never raises on a non-zero status)."""
    helm = require_tool(HELM)
    return subprocess.run(
        [str(helm), *args],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        cwd=REPO,
        env={**os.environ, "HELM_NAMESPACE": NAMESPACE},
        check=False,
    )


def template_args(
    values: Path | None = None,
    *,
    api_versions: Iterable[str] = CRD_API_VERSIONS,
    extra: Iterable[str] = (),
) -> list[str]:
    """Arguments of ``helm template`` for this release, values file and API versions."""
    args = ["template", RELEASE, str(require_chart()), "--namespace", NAMESPACE]
    if values is not None:
        args += ["-f", str(values)]
    for api in api_versions:
        args += ["--api-versions", api]
    return [*args, *extra]


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """``metadata.labels`` of an object (empty if none)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


def name_of(obj: Mapping[str, Any]) -> str:
    """``metadata.name``."""
    return str(obj["metadata"]["name"])


def pod_template(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template (metadata and spec) of a Deployment, StatefulSet, Job, CronJob..."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"])


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec of a workload."""
    return dict(pod_template(workload)["spec"])


def containers(workload: Mapping[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    """The workload's containers, init containers first (unless ``init=False``)."""
    spec = pod_spec(workload)
    found = list(spec.get("initContainers") or []) if init else []
    return found + list(spec.get("containers") or [])


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True if every ``key: value`` of a matchLabels selector is among ``labels``."""
    return all(labels.get(k) == v for k, v in selector.items())


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """True if a LabelSelector (``matchLabels`` and ``matchExpressions``) selects ``labels``."""
    if not matches(selector.get("matchLabels") or {}, labels):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(operator)
        if ok is None:
            pytest.fail(f"unknown label selector operator {operator!r}")
        if not ok:
            return False
    return True


@dataclass
class Render:
    """The chart rendered with one values file: its text and objects.

    Attributes
    ----------
    name : str
        Values-file name (``default``, ``cpu-values``...).
    values : Path or None
        The values file (None: the chart's defaults).
    path : Path
        The rendered YAML on disk (one file with every document).
    docs : list of dict
        The rendered objects.
    """

    name: str
    values: Path | None
    path: Path
    docs: list[dict[str, Any]] = field(repr=False)

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        """Objects of these kinds, in render order."""
        return [d for d in self.docs if d.get("kind") in kinds]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """The object of this kind and name (fails the test if absent)."""
        for doc in self.of_kind(kind):
            if name_of(doc) == name:
                return doc
        have = sorted(name_of(d) for d in self.of_kind(kind))
        pytest.fail(f"{self.name}: no {kind} named {name!r} (have {have})")

    def workloads(self) -> list[dict[str, Any]]:
        """Deployments, StatefulSets, DaemonSets, Jobs and CronJobs."""
        return self.of_kind(*WORKLOAD_KINDS)

    def component(self, component: str, kind: str = "Deployment") -> dict[str, Any]:
        """The one object of ``kind`` labelled with this component (fails if not exactly one)."""
        found = [d for d in self.of_kind(kind) if labels_of(d).get(COMPONENT) == component]
        if len(found) != 1:
            names = [name_of(d) for d in found]
            pytest.fail(
                f"{self.name}: expected one {kind} with {COMPONENT}={component}, got {names}"
            )
        return found[0]

    def container(self, component: str, container: str, kind: str = "Deployment") -> dict[str, Any]:
        """Container ``container`` (main or init) of the workload of ``component``."""
        workload = self.component(component, kind)
        for c in containers(workload):
            if c["name"] == container:
                return c
        have = [c["name"] for c in containers(workload)]
        pytest.fail(
            f"{self.name}: {kind} {name_of(workload)} has no container {container!r} (has {have})"
        )

    def secret_value(self, name: str, key: str) -> str:
        """Decoded value of ``key`` of the rendered Secret ``name``."""
        secret = self.get("Secret", name)
        if key in (secret.get("stringData") or {}):
            return str(secret["stringData"][key])
        data = secret.get("data") or {}
        if key not in data:
            pytest.fail(f"{self.name}: Secret {name} has no key {key!r} (has {sorted(data)})")
        return base64.b64decode(data[key]).decode()

    def config_value(self, name: str, key: str) -> str:
        """Value of ``key`` of the rendered ConfigMap ``name``."""
        data = self.get("ConfigMap", name).get("data") or {}
        if key not in data:
            pytest.fail(f"{self.name}: ConfigMap {name} has no key {key!r} (has {sorted(data)})")
        return str(data[key])


class Renders:
    """``renders[name]``: the chart rendered with values file ``name``, once per session."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, Render] = {}

    def __getitem__(self, name: str) -> Render:
        if name not in self._cache:
            files = values_files()
            if name not in files:
                pytest.fail(f"no values file {name!r} in {CHART / 'ci'} (have {sorted(files)})")
            self._cache[name] = self._render(name, files[name])
        return self._cache[name]

    def all(self) -> list[Render]:
        """Every values file's render."""
        return [self[name] for name in values_files()]

    def _render(self, name: str, values: Path | None) -> Render:
        done = run_helm(*template_args(values))
        if done.returncode != 0:
            pytest.fail(f"helm template with {name} failed:\n{done.stderr}", pytrace=False)
        path = self.directory / f"{name}.yaml"
        path.write_text(done.stdout)
        return Render(name, values, path, parse_manifests(done.stdout))


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Renders:
    """The chart's renders, by values-file name (each made on first use)."""
    require_chart()
    return Renders(tmp_path_factory.mktemp("renders"))


@pytest.fixture
def render(renders: Renders, values_name: str) -> Render:
    """The render of this test's values file."""
    return renders[values_name]


@dataclass(frozen=True)
class CodeFacts:
    """What the services' code says about topics and consumer groups.

    Attributes
    ----------
    inputs : dict of str to str
        Stage -> the topic it consumes (without prefix).
    topics : tuple of str
        Every topic of the pipeline (without prefix).
    """

    inputs: dict[str, str]
    topics: tuple[str, ...]

    @staticmethod
    def group(stage: str) -> str:
        """Consumer group of a stage (``radiounet.stream.runner.StageRunner``)."""
        return f"radiounet-{stage}"


_CODE_FACTS = """
import json
from radiounet.stream.classifier.service import ClassifierStage
from radiounet.stream.fetcher.service import FetcherStage
from radiounet.stream.reassembler.service import ReassemblerStage
from radiounet.stream.tiler.service import TilerStage
from radiounet.stream.topics import TOPICS
stages = (FetcherStage, TilerStage, ReassemblerStage, ClassifierStage)
print(json.dumps({"inputs": {s.name: s.input_topic for s in stages}, "topics": list(TOPICS)}))
"""


@pytest.fixture(scope="session")
def code_facts() -> CodeFacts:
    """The stages' input topics and the topic list, read from the code in a child process.

    A child process: importing the stages imports kafka-python, whose import-time
    deprecation warnings would be errors here.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CODE_FACTS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    return CodeFacts(dict(facts["inputs"]), tuple(facts["topics"]))


def env_value(
    render: Render, container: Mapping[str, Any], name: str, *, pod_name: str = "pod-0"
) -> str | None:
    """Value of env var ``name`` of a container, resolving Secret/ConfigMap refs and fieldRefs.

    ``metadata.name`` fieldRefs resolve to ``pod_name``; None if the variable is not set.
    """
    for var in container.get("env") or []:
        if var["name"] == name:
            return resolve_env(render, var, pod_name=pod_name)
    return None


def resolve_env(render: Render, var: Mapping[str, Any], *, pod_name: str) -> str:
    """The value an ``env`` entry gives its variable in a pod called ``pod_name``."""
    if "value" in var:
        return str(var["value"])
    source = var.get("valueFrom") or {}
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return render.secret_value(ref["name"], ref["key"])
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return render.config_value(ref["name"], ref["key"])
    if source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
        return pod_name
    if source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
        return NAMESPACE
    pytest.fail(f"{render.name}: cannot resolve env {var['name']} from {source}")


def container_env(render: Render, container: Mapping[str, Any], *, pod_name: str) -> dict[str, str]:
    """The whole environment a container gets from ``envFrom`` and ``env``, resolved."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = render.get("ConfigMap", source["configMapRef"]["name"]).get("data") or {}
            env.update({prefix + k: str(v) for k, v in data.items()})
        elif "secretRef" in source:
            secret_name = source["secretRef"]["name"]
            secret = render.get("Secret", secret_name)
            keys = [*(secret.get("data") or {}), *(secret.get("stringData") or {})]
            env.update({prefix + k: render.secret_value(secret_name, k) for k in keys})
    for var in container.get("env") or []:
        env[var["name"]] = resolve_env(render, var, pod_name=pod_name)
    return env


@pytest.fixture(scope="session")
def env_of() -> Callable[..., dict[str, str]]:
    """``env_of(render, container, pod_name=...)``: a container's resolved environment."""
    return container_env


@pytest.fixture(scope="session")
def helm() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``helm(*args)``: run ``.tools/bin/helm`` (fails the test if it is missing)."""
    return run_helm


@pytest.fixture(scope="session")
def k8s() -> Iterator[Any]:
    """Helpers on rendered objects, as one namespace (test modules cannot import conftest)."""

    class K8s:
        CHART = CHART
        REPO = REPO
        RELEASE = RELEASE
        NAMESPACE = NAMESPACE
        CRD_API_VERSIONS = CRD_API_VERSIONS
        CRD_SCHEMAS = CRD_SCHEMAS
        SELECTOR_LABELS = SELECTOR_LABELS
        COMPONENT = COMPONENT
        STAGES = STAGES
        HELM = HELM
        TOOLS_PYTHON = TOOLS_PYTHON
        CHECKOV = CHECKOV
        labels_of = staticmethod(labels_of)
        name_of = staticmethod(name_of)
        pod_template = staticmethod(pod_template)
        pod_spec = staticmethod(pod_spec)
        containers = staticmethod(containers)
        matches = staticmethod(matches)
        selects = staticmethod(selects)
        env_value = staticmethod(env_value)
        template_args = staticmethod(template_args)
        parse_manifests = staticmethod(parse_manifests)
        require_tool = staticmethod(require_tool)
        values_files = staticmethod(values_files)

    yield K8s
