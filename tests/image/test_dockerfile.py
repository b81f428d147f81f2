"""The Dockerfile and its build context, read and exercised without a container engine.

checkov's checks of the Dockerfile run with the chart's (tests/chart/test_checkov.py).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from radiounet.stream.telemetry import Health, TelemetryServer

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
            pending = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, args))
    return found


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex on a relative path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching rule wins)."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, rule in rules:
        # A rule on a folder applies to everything in it.
        if any(rule.fullmatch(p) for p in prefixes):
            result = not negate
    return result


# --- the Dockerfile --------------------------------------------------------------------------


def test_two_stages_on_one_base_pinned_by_tag_and_digest() -> None:
    froms = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(froms) == 2
    images = {f.split()[0] for f in froms}
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    # The interpreter of the tests' environment: the lock is tested on it.
    assert image.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}.")
    assert [f.split()[-1] for f in froms] == ["builder", "runtime"]


def test_runtime_stage_is_non_root_and_runs_radiounet() -> None:
    runtime = dict(stages()[1])  # the last of each instruction
    users = [args for keyword, args in stages()[1] if keyword == "USER"]
    assert users == ["10001:10001"]
    assert json.loads(runtime["ENTRYPOINT"]) == ["radiounet"]
    assert runtime["EXPOSE"] == "9400"
    assert "/opt/venv/bin" in runtime["ENV"].split("PATH=", 1)[1].split()[0]
    run = " ".join(args for keyword, args in stages()[1] if keyword == "RUN")
    assert "--uid 10001" in run and "--gid 10001" in run
    # Nothing is built or installed in the final stage: it only copies from the builder.
    for word in ("apt-get", "pip", "gcc", "build-essential", "curl", "wget"):
        assert word not in run
    copies = [args for keyword, args in stages()[1] if keyword == "COPY"]
    assert copies and all(c.startswith("--from=builder ") for c in copies)
    assert any(c.endswith("/opt/radiounet/model_repo") for c in copies)


def test_labels_name_version_source_and_license() -> None:
    labels = " ".join(args for keyword, args in stages()[1] if keyword == "LABEL")
    values = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', labels))
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert values.get(f"org.opencontainers.image.{key}"), key
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert values["org.opencontainers.image.licenses"] == project["license"]["text"]
    assert values["org.opencontainers.image.version"] == "${VERSION}"
    image = stages()[1][0][1].split()[0]
    assert values["org.opencontainers.image.base.digest"] == image.split("@", 1)[1]


@pytest.fixture
def telemetry() -> Iterator[tuple[TelemetryServer, Health]]:
    health = Health()
    server = TelemetryServer(health, host="127.0.0.1", port=0).start()
    try:
        yield server, health
    finally:
        server.close()


def _healthcheck(port: int) -> int:
    args = dict(instructions())["HEALTHCHECK"]
    command = json.loads(args.split(" CMD ", 1)[1])
    assert command[0] == "python"
    env = {"RADIOUNET_METRICS_PORT": str(port), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=60
    ).returncode


def test_healthcheck_follows_the_service_health(
    telemetry: tuple[TelemetryServer, Health],
) -> None:
    server, health = telemetry
    assert _healthcheck(server.port) == 0
    health.stale_after_s = 0.0  # the service loop stopped beating
    assert _healthcheck(server.port) != 0
    server.close()
    assert _healthcheck(server.port) != 0  # nothing listening


# --- the build context -----------------------------------------------------------------------


def test_the_context_holds_what_the_builder_copies() -> None:
    sources = []
    for keyword, args in stages()[0]:
        if keyword == "COPY":
            sources += shlex.split(args)[:-1]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        kept = [f for f in files if "__pycache__" not in f.parts]
        assert kept, source
        for file in kept:
            assert not ignored(file.relative_to(ROOT).as_posix()), file


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".tools/bin/helm",
        "out/stack/stack.json",
        "tests/conftest.py",
        "charts/radiounet/values.yaml",
        "requirements-dev.lock",
        "services/radiounet/__pycache__/workflows.cpython-311.pyc",
        "services/radiounet.egg-info/PKG-INFO",
    ],
)
def test_the_context_leaves_out_the_rest(path: str) -> None:
    assert ignored(path)


def test_the_ignore_matcher_reads_rules_in_order() -> None:
    assert _regex("**/*.py[cod]").fullmatch("a/b/c.pyc")
    assert not _regex("*").fullmatch("a/b")
    assert not ignored("services/radiounet/workflows.py")  # "*" then "!services/"
