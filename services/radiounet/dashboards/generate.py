"""Write the dashboards as Grafana JSON files, or check that written files are current.

``python -m radiounet.dashboards.generate charts/radiounet/dashboards`` (what
``make dashboards`` runs) writes one ``<uid>.json`` per dashboard: keys
sorted, two-space indent, a trailing newline, so the files change only when
the dashboards do. ``--check`` writes nothing and exits 1 if a file is
missing, differs, or is not one the code generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .build import dashboards
from .panels import Dashboard

__all__ = ["check", "main", "render", "write"]


def render(dashboard: Dashboard) -> str:
    """The dashboard's file content: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path | str) -> list[Path]:
    """Write every dashboard into ``directory`` (created if needed); return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for dashboard in dashboards():
        path = out / dashboard.file_name
        text = render(dashboard)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def check(directory: Path | str) -> list[str]:
    """What differs between ``directory`` and the generated files (empty: up to date)."""
    folder = Path(directory)
    problems = []
    expected = {d.file_name: render(d) for d in dashboards()}
    for name, text in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the generated dashboard")
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            if path.name not in expected:
                problems.append(f"{path}: no dashboard of the code writes this file")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write (or ``--check``) the dashboards in a directory."""
    parser = argparse.ArgumentParser(
        prog="python -m radiounet.dashboards.generate",
        description="Write the Grafana dashboards of radiounet as JSON files.",
    )
    parser.add_argument("directory", type=Path, help="where the <uid>.json files go")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files there are not what the code generates",
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make dashboards` to regenerate them", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
