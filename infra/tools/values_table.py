"""The chart's values table in charts/README.md, generated from values.yaml's comments.

The README table is what users read, so it must say what ``values.yaml`` says. This
follows the helm-docs convention (helm-docs itself is a Go binary we do not install): a
``# -- description`` comment directly above a key documents it, plain ``#`` lines right
below the ``# --`` line continue the description, and any other comment is section prose.
Rows keep the file's order; a documented map whose children are documented gets a row
and so do its children (``kafka.topics.partitions``).

    python infra/tools/values_table.py [VALUES]                    # print the table
    python infra/tools/values_table.py [VALUES] --check README.md  # exit 1 with a diff
    python infra/tools/values_table.py [VALUES] --write README.md  # replace the table

VALUES defaults to charts/radiounet/values.yaml. Only the table starting with
``| Key | Default | Description |`` under ``## Values`` is read or replaced.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VALUES = REPO / "charts" / "radiounet" / "values.yaml"
SECTION = "## Values"
HEADER = ("| Key | Default | Description |", "|---|---|---|")
#: Defaults whose inline JSON is longer than this read ``see values.yaml``.
MAX_INLINE = 70
SEE_VALUES = "see values.yaml"
DOC_MARK = "# --"


@dataclass(frozen=True)
class Row:
    """One documented key: dotted path, default as shown, description as written."""

    key: str
    default: str
    description: str

    def markdown(self) -> str:
        """The table row: key and default as code, the description escaped."""
        default = self.default.replace("|", "\\|")
        return f"| `{self.key}` | `{default}` | {escape(self.description)} |"


def escape(text: str) -> str:
    """``<``, ``>`` as HTML entities outside code spans, ``|`` escaped for the table."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "".join(parts).replace("|", "\\|")


def render_default(value: Any) -> str:
    """The default as inline JSON, or ``see values.yaml`` when that would be too long."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_INLINE or "`" in text:
        return SEE_VALUES
    return text


def description(lines: list[str], key_line: int) -> str | None:
    """The ``# --`` description of the key on ``key_line`` (0-based), None if undocumented.

    Only the comment lines directly above the key count; the description starts at the
    last ``# --`` among them and runs to the key.
    """
    start = key_line
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    block = [line.strip() for line in lines[start:key_line]]
    marks = [
        i for i, line in enumerate(block) if line == DOC_MARK or line.startswith(DOC_MARK + " ")
    ]
    if not marks:
        return None
    first, *rest = block[marks[-1] :]
    words = [first[len(DOC_MARK) :].strip()] + [line.lstrip("#").strip() for line in rest]
    return " ".join(word for word in words if word)


def rows(values_text: str) -> list[Row]:
    """Every documented key of a values.yaml text, in file order."""
    loader = yaml.SafeLoader(values_text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        lines = values_text.splitlines()
        return list(_walk(loader, root, "", lines))
    finally:
        loader.dispose()


def _walk(loader: yaml.SafeLoader, node: yaml.Node, prefix: str, lines: list[str]) -> Iterator[Row]:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        text = description(lines, key_node.start_mark.line)
        if text is not None:
            value = loader.construct_object(value_node, deep=True)
            yield Row(key, render_default(value), text)
        yield from _walk(loader, value_node, key + ".", lines)


def table(values_text: str) -> list[str]:
    """The markdown table (header and rows) of a values.yaml text."""
    return [*HEADER, *(row.markdown() for row in rows(values_text))]


def find_table(readme_lines: list[str]) -> tuple[int, int]:
    """Start and end (exclusive) line of the keys table under ``## Values``."""
    try:
        section = readme_lines.index(SECTION)
    except ValueError:
        raise ValueError(f"no {SECTION!r} section") from None
    for start in range(section + 1, len(readme_lines)):
        line = readme_lines[start]
        if line.startswith("## "):
            break
        if line == HEADER[0]:
            end = start
            while end < len(readme_lines) and readme_lines[end].startswith("|"):
                end += 1
            return start, end
    raise ValueError(f"no table starting with {HEADER[0]!r} under {SECTION!r}")


def readme_table(readme_text: str) -> list[str]:
    """The keys table as it stands in the README."""
    lines = readme_text.splitlines()
    start, end = find_table(lines)
    return lines[start:end]


def replace_table(readme_text: str, new_table: list[str]) -> str:
    """The README text with its keys table replaced by ``new_table``."""
    lines = readme_text.splitlines()
    start, end = find_table(lines)
    trailing = "\n" if readme_text.endswith("\n") else ""
    return "\n".join([*lines[:start], *new_table, *lines[end:]]) + trailing


def diff(values_text: str, readme_text: str, readme_name: str = "README.md") -> str:
    """Unified diff from the README's table to the generated one ("" when equal)."""
    return "".join(
        difflib.unified_diff(
            [line + "\n" for line in readme_table(readme_text)],
            [line + "\n" for line in table(values_text)],
            fromfile=readme_name,
            tofile=f"{readme_name} (generated from values.yaml)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("values", nargs="?", type=Path, default=DEFAULT_VALUES)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", type=Path, metavar="README", help="exit 1 if its table differs")
    mode.add_argument("--write", type=Path, metavar="README", help="replace its table")
    args = parser.parse_args(argv)
    values_text = args.values.read_text(encoding="utf-8")
    readme = args.check or args.write
    if readme is None:
        print("\n".join(table(values_text)))
        return 0
    readme_text = readme.read_text(encoding="utf-8")
    try:
        changes = diff(values_text, readme_text, str(readme))
    except ValueError as error:
        print(f"{readme}: {error}", file=sys.stderr)
        return 2
    if args.write:
        if changes:
            readme.write_text(replace_table(readme_text, table(values_text)), encoding="utf-8")
            print(f"{readme}: values table regenerated", file=sys.stderr)
        return 0
    if changes:
        sys.stdout.write(changes)
        print(
            f"{readme}: the values table differs from {args.values}; run "
            f"python infra/tools/values_table.py --write {readme}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
