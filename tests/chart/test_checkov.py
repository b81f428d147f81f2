"""checkov passes on every render of the chart and on the Dockerfile, and every skip says why.

checkov is slow to start, so it runs once per session over one folder holding the
render of every values file (its ``kubernetes`` framework) and a copy of
``infra/docker/Dockerfile`` when there is one (its ``dockerfile`` framework).
A skip lives in the chart (``checkov.io/skip<N>: CKV_K8S_<id>=<reason>`` annotations)
or the Dockerfile (``# checkov:skip=CKV_DOCKER_<id>:<reason>``, checkov's own syntax
there) and must give a reason of a few words.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "docker" / "Dockerfile"
CHECKOV_TIMEOUT_S = 600
#: The fewest words a skip's reason may have.
MIN_REASON_WORDS = 4
ANNOTATION = re.compile(r"^(CKV2?_[A-Z0-9_]+)=([^=]+)$")
DOCKER_SKIP = re.compile(r"#\s*checkov:skip=(\S*)")
DOCKER_SKIP_FORM = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+):(.+)$")


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z]{2,}", text))


@pytest.fixture(scope="session")
def checkov_reports(
    renders: Any, k8s: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Framework -> checkov's JSON report, from one run over every render (and the Dockerfile)."""
    checkov = k8s.require_tool(k8s.CHECKOV)
    folder = tmp_path_factory.mktemp("checkov")
    for render in renders.all():
        shutil.copy(render.path, folder / f"{render.name}.yaml")
    frameworks = ["kubernetes"]
    if DOCKERFILE.is_file():
        shutil.copy(DOCKERFILE, folder / "Dockerfile")
        frameworks.append("dockerfile")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}  # no download of the check-id mapping
    done = subprocess.run(
        [
            str(checkov),
            "-d",
            str(folder),
            "--framework",
            *frameworks,
            "-o",
            "json",
            "--compact",
            "--skip-download",
            "--skip-results-upload",
        ],
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_S,
        env=env,
        check=False,
    )
    try:
        parsed = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov did not report (status {done.returncode}):\n{done.stderr[-3000:]}")
    reports = parsed if isinstance(parsed, list) else [parsed]
    by_framework = {r["check_type"]: r for r in reports if "check_type" in r}
    for framework in frameworks:
        if framework not in by_framework:
            pytest.fail(f"checkov reported nothing for {framework}: {done.stdout[:2000]}")
    return by_framework


def _failures(report: Mapping[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['check_name']}: {c['resource']} in {Path(c['file_path']).name}"
        for c in report["results"].get("failed_checks", [])
    ]


def test_checkov_passes_on_every_render(checkov_reports: dict[str, dict[str, Any]]) -> None:
    report = checkov_reports["kubernetes"]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["passed"] > 0, report["summary"]
    failures = _failures(report)
    assert not failures, "\n".join(failures)


def test_checkov_passes_on_the_dockerfile(checkov_reports: dict[str, dict[str, Any]]) -> None:
    if not DOCKERFILE.is_file():
        pytest.skip("infra/docker/Dockerfile does not exist yet")
    report = checkov_reports["dockerfile"]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["passed"] > 0, report["summary"]
    failures = _failures(report)
    assert not failures, "\n".join(failures)


def test_every_checkov_skip_gives_a_reason(checkov_reports: dict[str, dict[str, Any]]) -> None:
    """As checkov read them: each skipped check carries a reason of a few words."""
    problems = []
    for framework, report in checkov_reports.items():
        for check in report["results"].get("skipped_checks", []):
            comment = str(check.get("check_result", {}).get("suppress_comment", ""))
            if words(comment) < MIN_REASON_WORDS or comment == "No comment provided":
                problems.append(
                    f"{framework}: {check['check_id']} on {check['resource']}: reason {comment!r}"
                )
    assert not problems, "\n".join(problems)


def _annotations(obj: Any) -> Iterator[tuple[str, str]]:
    """Every (key, value) of every ``annotations`` map anywhere in an object."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "annotations" and isinstance(value, dict):
                yield from ((str(k), str(v)) for k, v in value.items())
            else:
                yield from _annotations(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _annotations(item)


def test_chart_skip_annotations_are_justified(render: Any, k8s: Any) -> None:
    problems = []
    for doc in render.docs:
        for key, value in _annotations(doc):
            if not key.startswith(("checkov.io/skip", "bridgecrew.io/skip")):
                continue
            where = f"{render.name}: {doc['kind']} {k8s.name_of(doc)} {key}"
            match = ANNOTATION.match(value)
            if match is None:
                problems.append(f"{where}: {value!r} is not CKV_<id>=<reason> (one '=')")
            elif words(match.group(2)) < MIN_REASON_WORDS:
                problems.append(f"{where}: reason {match.group(2)!r} is too short")
    assert not problems, "\n".join(problems)


def test_dockerfile_skip_comments_are_justified() -> None:
    if not DOCKERFILE.is_file():
        pytest.skip("infra/docker/Dockerfile does not exist yet")
    problems = []
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        if DOCKER_SKIP.search(line) is None:
            continue
        match = DOCKER_SKIP_FORM.search(line)
        if match is None:
            problems.append(
                f"Dockerfile:{number}: {line.strip()!r} is not '# checkov:skip=CKV_<id>:<reason>'"
            )
        elif words(match.group(2)) < MIN_REASON_WORDS:
            problems.append(f"Dockerfile:{number}: reason {match.group(2)!r} is too short")
    assert not problems, "\n".join(problems)
