"""``radiounet submit``: push pointings (a catalogue, or one position) to the pointings topic.

Each pointing is keyed by its id and gets a new ``correlation-id`` header,
which every stage carries on. Every pointing is validated first; by default one
invalid row stops the whole submission (nothing is sent), so a fixed catalogue
can be resubmitted as a whole.
"""

from __future__ import annotations

import argparse
import csv
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.keys import pointing_id_from_name, validate_pointing_id
from radiounet.stream.messages import (
    DEFAULT_PIXEL_SCALE_ARCSEC,
    DEFAULT_SIZE_PX,
    DEFAULT_SURVEY,
    headers_for,
    new_correlation_id,
    now_ms,
    validate_pointing,
)
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings
from radiounet.stream.topics import POINTINGS

from ._stack_settings import settings_with_stack
from ._stream_options import add_stream_options, guarded

__all__ = [
    "Candidate",
    "Columns",
    "PointingDefaults",
    "Sent",
    "check_candidates",
    "describe_pointing",
    "make_pointing",
    "position_id",
    "read_catalogue",
    "register",
    "run",
    "send_pointings",
]

# Cells that mean "no value" in an optional column (pandas writes NaN as empty or "nan").
_EMPTY = {"", "nan", "null", "none", "-", "--"}

#: Column flag (``--FIELD-column``) -> help.
_COLUMN_HELP = {
    "id": "pointing id column (default: ids from the name column)",
    "name": "cluster name column",
    "ra": "RA [deg] column",
    "dec": "Dec [deg] column",
    "z": "redshift column, optional",
    "m500": "M500 [1e14 Msun] column, optional",
    "theta500": "theta500 [arcmin] column, optional",
}
#: Flags that describe a single position (no catalogue).
_POSITION_FLAGS = ("ra", "dec", "name", "id", "z", "m500", "theta500")


@dataclass(frozen=True)
class Columns:
    """Catalogue column names (defaults: a PSZ2-like catalogue).

    ``id`` None derives each id from the name. Columns in ``explicit`` were named
    on the command line and must exist; the optional defaults (name when an id
    column is given, z, M500, theta500) are used only where the header has them.
    """

    id: str | None = None
    name: str = "Name"
    ra: str = "RAdeg"
    dec: str = "DEdeg"
    z: str = "z"
    m500: str = "MSZ_1e14"
    theta500: str = "theta500_arcmin"
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PointingDefaults:
    """What every submitted pointing shares."""

    survey: str = DEFAULT_SURVEY
    size_px: int = DEFAULT_SIZE_PX
    pixel_scale_arcsec: float = DEFAULT_PIXEL_SCALE_ARCSEC


@dataclass(frozen=True)
class Candidate:
    """A pointing read from the input (``where``: "line 7", "--ra/--dec"), or why not."""

    where: str
    pointing: pb.Pointing | None
    error: str | None = None


@dataclass(frozen=True)
class Sent:
    """A pointing the broker acknowledged."""

    pointing_id: str
    correlation_id: str
    partition: int
    offset: int


def make_pointing(
    pointing_id: str,
    ra_deg: float,
    dec_deg: float,
    *,
    defaults: PointingDefaults,
    name: str = "",
    z: float | None = None,
    m500_1e14: float | None = None,
    theta500_arcmin: float | None = None,
) -> pb.Pointing:
    """A (not yet validated) pointing; it names a cluster when any size is given."""
    pointing = pb.Pointing(
        id=pointing_id,
        survey=defaults.survey,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        size_px=defaults.size_px,
        pixel_scale_arcsec=defaults.pixel_scale_arcsec,
    )
    if z is not None or m500_1e14 is not None or theta500_arcmin is not None:
        # Without a size there is no 2.2 R500 aperture: a plain pointing, segmented only.
        pointing.cluster.name = name
        if z is not None:
            pointing.cluster.z = z
        if m500_1e14 is not None:
            pointing.cluster.m500_1e14 = m500_1e14
        if theta500_arcmin is not None:
            pointing.cluster.theta500_arcmin = theta500_arcmin
    return pointing


def position_id(ra_deg: float, dec_deg: float) -> str:
    """An id for a position without a name, e.g. ``J229.19051-1.01722``."""
    return f"J{ra_deg:.5f}{dec_deg:+.5f}"


def _resolve_columns(columns: Columns, header: Sequence[str], source: str) -> dict[str, str]:
    """Field -> column present in ``header``; ValueError naming each required one missing."""
    wanted = {
        "id": columns.id,
        "name": columns.name,
        "ra": columns.ra,
        "dec": columns.dec,
        "z": columns.z,
        "m500": columns.m500,
        "theta500": columns.theta500,
    }
    required = {"ra", "dec", "name" if columns.id is None else "id"} | columns.explicit
    present = set(header)
    missing = [
        f"{column!r} (--{field}-column)"
        for field, column in wanted.items()
        if field in required and column not in present
    ]
    if missing:
        raise ValueError(
            f"{source}: no column {', '.join(missing)}; its columns are {', '.join(header)}"
        )
    return {f: c for f, c in wanted.items() if c is not None and c in present}


def _cell(row: dict[str, Any], used: dict[str, str], field: str) -> str:
    column = used.get(field)
    value = row.get(column) if column is not None else None
    return value.strip() if isinstance(value, str) else ""


def _number(
    row: dict[str, Any], used: dict[str, str], field: str, label: str, *, required: bool = False
) -> float | None:
    text = _cell(row, used, field)
    if text.lower() in _EMPTY:
        if required:
            raise ValueError(f"no {label} (column {used[field]!r} is empty)")
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{label} {text!r} (column {used[field]!r}) is not a number") from None


def _row_pointing(
    row: dict[str, Any], used: dict[str, str], defaults: PointingDefaults
) -> pb.Pointing:
    name = _cell(row, used, "name")
    if "id" in used:
        pointing_id = validate_pointing_id(_cell(row, used, "id"))
    elif name:
        try:
            pointing_id = pointing_id_from_name(name)
        except ValueError:
            raise ValueError(
                f"name {name!r} makes no valid pointing id; give --id-column"
            ) from None
    else:
        raise ValueError(f"no name to make the id from (column {used['name']!r} is empty)")
    try:
        ra = _number(row, used, "ra", "RA", required=True)
        dec = _number(row, used, "dec", "Dec", required=True)
        assert ra is not None and dec is not None  # required
        return make_pointing(
            pointing_id,
            ra,
            dec,
            defaults=defaults,
            name=name,
            z=_number(row, used, "z", "z"),
            m500_1e14=_number(row, used, "m500", "M500"),
            theta500_arcmin=_number(row, used, "theta500", "theta500"),
        )
    except ValueError as exc:
        raise ValueError(f"pointing {pointing_id}: {exc}") from None


def read_catalogue(
    lines: Iterable[str],
    columns: Columns = Columns(),
    defaults: PointingDefaults = PointingDefaults(),
    *,
    source: str = "catalogue",
    limit: int | None = None,
) -> list[Candidate]:
    """Pointings from the rows of a CSV catalogue (header first), at most ``limit`` rows.

    Raises
    ------
    ValueError
        If the header lacks a required column (RA, Dec, and the id or name).
    """
    reader = csv.DictReader(lines, skipinitialspace=True)
    header = [h.strip() for h in reader.fieldnames or ()]
    if not header:
        raise ValueError(f"{source}: empty, expected a CSV header line")
    reader.fieldnames = header
    used = _resolve_columns(columns, header, source)
    out: list[Candidate] = []
    for row in reader:
        if limit is not None and len(out) >= limit:
            break
        where = f"line {reader.line_num}"
        try:
            out.append(Candidate(where, _row_pointing(row, used, defaults)))
        except ValueError as exc:
            out.append(Candidate(where, None, str(exc)))
    return out


def check_candidates(candidates: Iterable[Candidate]) -> tuple[list[pb.Pointing], list[str]]:
    """The valid pointings (defaults filled in) and one message per invalid one.

    A repeated id is invalid: its pointing would overwrite the first one's objects.
    """
    valid: list[pb.Pointing] = []
    problems: list[str] = []
    first: dict[str, str] = {}
    for candidate in candidates:
        if candidate.pointing is None:
            problems.append(f"{candidate.where}: {candidate.error}")
            continue
        try:
            pointing = validate_pointing(candidate.pointing)
        except PermanentError as exc:
            problems.append(f"{candidate.where}: {exc}")
            continue
        if pointing.id in first:
            problems.append(
                f"{candidate.where}: pointing {pointing.id}: duplicate id "
                f"(first on {first[pointing.id]})"
            )
            continue
        first[pointing.id] = candidate.where
        valid.append(pointing)
    return valid, problems


def describe_pointing(pointing: pb.Pointing) -> str:
    """One line: id, position, cluster and cutout."""
    text = f"{pointing.id}  RA {pointing.ra_deg:.5f}  Dec {pointing.dec_deg:+.5f}"
    if pointing.HasField("cluster"):
        c = pointing.cluster
        if c.name:
            text += f"  {c.name!r}"
        if c.HasField("z"):
            text += f"  z {c.z:g}"
        if c.HasField("m500_1e14"):
            text += f"  M500 {c.m500_1e14:g}e14"
        if c.HasField("theta500_arcmin"):
            text += f"  theta500 {c.theta500_arcmin:g}'"
    else:
        text += "  (no cluster: segmented, not classified)"
    return f'{text}  [{pointing.survey} {pointing.size_px} px x {pointing.pixel_scale_arcsec:g}"]'


def _any_reachable(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Whether any ``host:port`` of ``bootstrap`` accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def send_pointings(
    settings: Settings, pointings: Sequence[pb.Pointing], *, timeout_s: float = 30.0
) -> list[Sent]:
    """Publish ``pointings`` (stamped with the time) and wait for the broker's acks.

    Raises
    ------
    TransientError
        ``broker`` if the broker cannot be reached or does not acknowledge in time.
    """
    # Imported here: kafka-python is slow to import and only this command needs it.
    from kafka.errors import KafkaError

    from radiounet.stream.kafka_io import ensure_topics, make_producer

    if not _any_reachable(settings.kafka_bootstrap):
        # kafka-python would take ~30 s to say so; a refused connection is known at once.
        raise TransientError(
            f"no Kafka broker reachable at {settings.kafka_bootstrap}", code="broker"
        )
    ensure_topics(settings, (POINTINGS,))
    producer = make_producer(settings)
    topic = settings.topic(POINTINGS)
    producer_name = f"submit/{settings.instance}"
    try:
        pending = []
        for pointing in pointings:
            pointing.submitted_unix_ms = now_ms()
            correlation_id = new_correlation_id()
            headers = headers_for(pointing, correlation_id=correlation_id, producer=producer_name)
            future = producer.send(
                topic,
                key=pointing.id.encode(),
                value=pointing.SerializeToString(),
                headers=list(headers),
            )
            pending.append((pointing.id, correlation_id, future))
        producer.flush(timeout=timeout_s)
        sent = []
        for pointing_id, correlation_id, future in pending:
            meta = future.get(timeout=timeout_s)
            if meta.offset < 0:
                raise TransientError(
                    f"{pointing_id}: {topic} acknowledged without an offset (not stored); "
                    "submit again",
                    code="broker",
                )
            sent.append(Sent(pointing_id, correlation_id, meta.partition, meta.offset))
        return sent
    except KafkaError as exc:
        raise TransientError(
            f"publishing to {topic} at {settings.kafka_bootstrap}: {exc}", code="broker"
        ) from None
    finally:
        producer.close(timeout=5)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "submit",
        help="push pointings (a catalogue or one position) to the pipeline's pointings topic",
        description="Validate pointings and publish them to the pointings topic, keyed by "
        "pointing id (from the name unless an id is given), each with a new correlation id. "
        "Any invalid pointing stops the submission (nothing is sent, exit status 2) unless "
        "--skip-invalid. Waits for the broker to acknowledge every message.",
    )
    source = p.add_argument_group("pointings: a catalogue, or one position")
    source.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        metavar="CSV",
        help="CSV catalogue with a header line (PSZ2-like columns by default)",
    )
    source.add_argument("--limit", type=int, default=None, metavar="N", help="first N rows only")
    source.add_argument("--ra", type=float, default=None, help="RA [deg]")
    source.add_argument("--dec", type=float, default=None, help="Dec [deg]")
    source.add_argument("--name", default=None, help="cluster name (also makes the id)")
    source.add_argument("--id", default=None, help="pointing id (default: from the name)")
    source.add_argument("--z", type=float, default=None, help="redshift")
    source.add_argument("--m500", type=float, default=None, help="M500 [1e14 Msun]")
    source.add_argument("--theta500", type=float, default=None, help="R500 on the sky [arcmin]")
    cols = p.add_argument_group("catalogue columns")
    defaults = Columns()
    for field, helptext in _COLUMN_HELP.items():
        default = getattr(defaults, field)
        cols.add_argument(
            f"--{field}-column",
            default=None,
            metavar="COL",
            help=helptext + (f" (default {default})" if default else ""),
        )
    cutout = p.add_argument_group("cutout")
    cutout.add_argument("--survey", default=DEFAULT_SURVEY, help="survey (default %(default)s)")
    cutout.add_argument(
        "--size", type=int, default=DEFAULT_SIZE_PX, help="cutout side [px] (default %(default)s)"
    )
    cutout.add_argument(
        "--pixel-scale",
        type=float,
        default=DEFAULT_PIXEL_SCALE_ARCSEC,
        help="pixel scale [arcsec] (default %(default)s)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid pointings and skip (and report) the invalid ones",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and print, send nothing")
    add_stream_options(p)
    p.set_defaults(run=run)


def _columns_from(args: argparse.Namespace) -> Columns:
    given = {f: getattr(args, f"{f}_column") for f in _COLUMN_HELP}
    given = {f: c for f, c in given.items() if c is not None}
    return Columns(**given, explicit=frozenset(given))


def _candidates(args: argparse.Namespace, defaults: PointingDefaults) -> list[Candidate]:
    positional = [f"--{f}" for f in _POSITION_FLAGS if getattr(args, f) is not None]
    if args.catalogue is not None:
        if positional:
            raise ValueError(f"give --catalogue or a position, not both ({', '.join(positional)})")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        with args.catalogue.open(encoding="utf-8-sig", newline="") as lines:
            return read_catalogue(
                lines,
                _columns_from(args),
                defaults,
                source=str(args.catalogue),
                limit=args.limit,
            )
    columns = [f"--{f}-column" for f in _COLUMN_HELP if getattr(args, f"{f}_column") is not None]
    if columns or args.limit is not None:
        raise ValueError(f"{', '.join(columns) or '--limit'} need(s) --catalogue")
    if args.ra is None or args.dec is None:
        raise ValueError("give --catalogue, or --ra and --dec")
    if args.id is not None:
        pointing_id = args.id
    elif args.name:
        pointing_id = pointing_id_from_name(args.name)
    else:
        pointing_id = position_id(args.ra, args.dec)
    pointing = make_pointing(
        pointing_id,
        args.ra,
        args.dec,
        defaults=defaults,
        name=args.name or "",
        z=args.z,
        m500_1e14=args.m500,
        theta500_arcmin=args.theta500,
    )
    return [Candidate("--ra/--dec", pointing)]


def run(args: argparse.Namespace) -> int:
    defaults = PointingDefaults(args.survey, args.size, args.pixel_scale)
    candidates = _candidates(args, defaults)
    if not candidates:
        raise ValueError(f"{args.catalogue}: no rows")
    pointings, problems = check_candidates(candidates)
    label = "skipped" if args.skip_invalid else "invalid"
    for problem in problems:
        print(f"{label}: {problem}", file=sys.stderr)
    if problems and not args.skip_invalid:
        raise ValueError(
            f"{len(problems)} of {len(candidates)} pointings invalid; nothing sent "
            "(fix them, or --skip-invalid to send the rest)"
        )
    if not pointings:
        raise ValueError("no valid pointing to send")
    settings = settings_with_stack(args)
    topic = settings.topic(POINTINGS)
    if args.dry_run:
        print(f"dry run: {len(pointings)} pointing(s) would be sent to {topic}")
        for pointing in pointings:
            print(f"  {describe_pointing(pointing)}")
        return 0

    def send() -> int:
        sent = send_pointings(settings, pointings)
        print(
            f"sent {len(sent)} pointing(s) to {topic} at {settings.kafka_bootstrap}"
            + (f" ({len(problems)} skipped)" if problems else "")
        )
        for s in sent:
            print(
                f"  {s.pointing_id}  partition {s.partition} offset {s.offset}  "
                f"correlation-id {s.correlation_id}"
            )
        return 0

    return guarded("submit", send)
