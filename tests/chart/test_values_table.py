"""charts/README.md's values table is the one generated from values.yaml's ``# --`` comments.

The generator is ``infra/tools/values_table.py`` (helm-docs convention); after editing
values.yaml, ``python infra/tools/values_table.py --write charts/README.md`` refreshes it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "charts" / "radiounet" / "values.yaml"
README = REPO / "charts" / "README.md"
TOOL = REPO / "infra" / "tools" / "values_table.py"
KEY_LINE = re.compile(r"^( *)([^\s#:-][^:]*?):(?:\s|$)")


@pytest.fixture(scope="module")
def values_table() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("values_table", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def map_paths(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every key path of nested maps (not inside lists) with its value."""
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            yield path, value
            yield from map_paths(value, path + ".")


def documented_keys(text: str, valid: set[str]) -> set[str]:
    """Keys with a ``# --`` comment in the lines above, found by indentation alone.

    Independent of the generator: a stack of (indent, key) gives each ``key:`` line its
    path; lines inside lists give paths that are not map keys and are dropped.
    """
    found: set[str] = set()
    stack: list[tuple[int, str]] = []
    comments: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        match = KEY_LINE.match(line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2).strip("\"'")))
            path = ".".join(key for _, key in stack)
            if path in valid and any(c == "# --" or c.startswith("# -- ") for c in comments):
                found.add(path)
        comments = []
    return found


def table_keys(lines: list[str]) -> list[str]:
    return [line.split("`")[1] for line in lines[2:]]


def test_readme_table_is_generated_from_values(values_table: ModuleType) -> None:
    changes = values_table.diff(
        VALUES.read_text(encoding="utf-8"), README.read_text(encoding="utf-8"), "charts/README.md"
    )
    assert not changes, (
        "charts/README.md's values table differs from values.yaml; run "
        "`python infra/tools/values_table.py --write charts/README.md`\n" + changes
    )


def test_table_keys_are_the_documented_keys(values_table: ModuleType) -> None:
    text = VALUES.read_text(encoding="utf-8")
    paths = dict(map_paths(yaml.safe_load(text)))
    documented = documented_keys(text, set(paths))
    keys = table_keys(values_table.readme_table(README.read_text(encoding="utf-8")))

    assert len(keys) == len(set(keys)), "a key appears twice in the table"
    assert sorted(documented - set(keys)) == [], "documented in values.yaml, missing in the table"
    assert sorted(set(keys) - set(paths)) == [], "in the table, not a key of values.yaml"
    leaves = [p for p, v in paths.items() if not (isinstance(v, dict) and v)]
    assert {p for p in leaves if p in documented}, "no documented leaf found: scanner broken?"
    # "values.yaml documents every key": each leaf, itself or through a documented map.
    undocumented = [
        leaf for leaf in leaves if not any(leaf == k or leaf.startswith(k + ".") for k in keys)
    ]
    assert undocumented == []


SAMPLE = """\
# Section prose, not a description.
# -- Name override.
nameOverride: ""
# Plain prose above a section.
image:
  # -- Registry and
  # repository, e.g. <registry>/<name>.
  repository: ghcr.io/x/y
  # -- Tag; null means appVersion.
  tag: null
# Stage prose.
# -- Resources of the pod.
resources:
  requests:
    cpu: 500m
    memory: 2Gi
  limits:
    cpu: "2"
    memory: 4Gi
# -- Extra labels.
labels: {}
# -- Partitions per topic (>= replicas).
partitions:
  # -- Consumed by `a <b>`.
  a-b: 12
  c: 6
undocumented: 1
# -- Small map, on one line.
selector:
  matchLabels:
    app: x
# -- Flags | pipes.
flags: ["--x=1"]
"""

EXPECTED = [
    "| Key | Default | Description |",
    "|---|---|---|",
    '| `nameOverride` | `""` | Name override. |',
    '| `image.repository` | `"ghcr.io/x/y"` | Registry and repository, e.g. '
    "&lt;registry&gt;/&lt;name&gt;. |",
    "| `image.tag` | `null` | Tag; null means appVersion. |",
    "| `resources` | `see values.yaml` | Resources of the pod. |",
    "| `labels` | `{}` | Extra labels. |",
    '| `partitions` | `{"a-b": 12, "c": 6}` | Partitions per topic (&gt;= replicas). |',
    "| `partitions.a-b` | `12` | Consumed by `a <b>`. |",
    '| `selector` | `{"matchLabels": {"app": "x"}}` | Small map, on one line. |',
    '| `flags` | `["--x=1"]` | Flags \\| pipes. |',
]


def test_sample_values_give_exact_rows(values_table: ModuleType, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(SAMPLE, encoding="utf-8")
    assert values_table.table(values.read_text(encoding="utf-8")) == EXPECTED


def test_check_fails_on_an_edited_description_and_write_fixes_it(
    values_table: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    generated = values_table.table(VALUES.read_text(encoding="utf-8"))
    original = values_table.replace_table(README.read_text(encoding="utf-8"), generated)
    edited = original.replace("| Scrape interval. |", "| Scrape every so often. |", 1)
    assert edited != original
    readme.write_text(edited, encoding="utf-8")

    assert values_table.main([str(VALUES), "--check", str(readme)]) == 1
    assert '+| `monitoring.serviceMonitor.interval` | `"30s"` | Scrape interval. |' in (
        capsys.readouterr().out
    )
    assert values_table.main([str(VALUES), "--write", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == original
    assert values_table.main([str(VALUES), "--check", str(readme)]) == 0
