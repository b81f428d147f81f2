"""``radiounet results``: the results table, one row per classified pointing.

Rows are the classifier's per-pointing objects ``results/<id>.json``, read and
flattened by :mod:`radiounet.stream.classifier.results`; CSV and JSON carry
every column of that table, the terminal table a readable subset. Pointings
whose latest submission failed are counted on stderr (see ``radiounet status``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radiounet.stream.classifier.results import load_results, results_table, to_csv

from ._stack_settings import settings_with_stack
from ._stream_options import add_stream_options, guarded, open_store
from .status_cmd import PointingStatus, failed_statuses

__all__ = ["FORMATS", "TABLE_COLUMNS", "format_results", "notes", "register", "run"]

FORMATS = ("table", "csv", "json")
#: (heading, column of the results table) of the terminal table.
TABLE_COLUMNS = (
    ("pointing", "pointing_id"),
    ("cluster", "cluster"),
    ("ra", "ra_deg"),
    ("dec", "dec_deg"),
    ("R", "ratio"),
    ("threshold", "threshold"),
    ("diffuse", "diffuse"),
    ("aperture", "aperture_in_image"),
    ("comps", "n_components"),
    ("model", "model"),
    ("map", "map_key"),
)
_MODEL_AT = [column for _, column in TABLE_COLUMNS].index("model")


def _cell(value: Any, column: str) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column in ("ra_deg", "dec_deg") and isinstance(value, float):
        return f"{value:.5f}"
    if column == "threshold" and isinstance(value, float):
        return f"{value:.4g}"  # a calibrated threshold may need more than R's 4 decimals
    if column == "aperture_in_image" and isinstance(value, int | float):
        # Share of the aperture inside the image, rounded down: only a whole one shows 100%.
        return f"{math.floor(value * 100 + 1e-9)}%"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    cells = [[heading for heading, _ in TABLE_COLUMNS]]
    for flat in results_table(rows):
        line = [_cell(flat[column], column) for _, column in TABLE_COLUMNS]
        if flat["model"] is not None and flat["model_version"] is not None:
            line[_MODEL_AT] = f"{flat['model']}-{flat['model_version']}"  # as in the tile keys
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in cells
    )


def format_results(rows: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """Result rows as a terminal table, CSV, or a JSON list of the table's rows."""
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "json":
        return json.dumps(results_table(rows), indent=2) + "\n"
    if fmt == "table":
        return _table(rows)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def notes(
    loaded: Sequence[Mapping[str, Any]],
    listed: Sequence[Mapping[str, Any]],
    failed: Sequence[PointingStatus],
) -> list[str]:
    """What the rows do not show: no results, failed pointings, rows a later submission lost.

    ``loaded`` are all result rows, ``listed`` those printed, ``failed`` the
    pointings whose latest event is a dead letter.
    """
    out = []
    if not loaded:
        out.append("no results yet: no pointing has been classified")
    elif not listed:
        out.append(f"no pointing with diffuse emission among {len(loaded)} result(s)")
    shown = {r.get("pointing_id") for r in listed}
    stale = [s.pointing_id for s in failed if s.pointing_id in shown]
    if stale:
        out.append(
            f"{len(stale)} listed pointing(s) failed when submitted again; their rows are "
            f"from an earlier submission: {_some(stale)} (radiounet status ID)"
        )
    missing = [s.pointing_id for s in failed if s.result is None]
    if missing:
        out.append(f"{len(missing)} pointing(s) failed and are not listed: radiounet status --all")
    return out


def _some(ids: Sequence[str], limit: int = 5) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "results",
        help="the results table of the classified pointings, from the object store",
        description="One row per classified pointing (results/*.json): id, survey, position, "
        "cluster, R and the decision, the aperture, number of components, model, and the "
        "keys of the probability map and quicklook. Pointings whose latest submission "
        "failed are counted on stderr.",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument(
        "--output", type=Path, default=None, metavar="FILE", help="write to FILE, not stdout"
    )
    p.add_argument(
        "--diffuse-only", action="store_true", help="only pointings with diffuse emission"
    )
    add_stream_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_with_stack(args)

    def show() -> int:
        store = open_store(settings)
        loaded = load_results(store)
        for key, why in loaded.unreadable:
            # Store errors already name the object.
            print(f"skipped: {why if key in why else f'{key}: {why}'}", file=sys.stderr)
        rows = loaded.rows
        if args.diffuse_only:
            rows = [r for r in rows if r.get("diffuse") is True]
        text = format_results(rows, args.format)
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text, encoding="utf-8")
            print(f"{len(rows)} row(s) written to {args.output}", file=sys.stderr)
        sys.stdout.flush()  # the rows first, then what they leave out
        failed = failed_statuses(store, {r["pointing_id"]: r for r in loaded.rows})
        for line in notes(loaded.rows, rows, failed):
            print(line, file=sys.stderr)
        return 0

    return guarded("results", show)
