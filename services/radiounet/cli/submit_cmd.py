"""``radiounet submit``: push pointings (a catalogue, or one position) to the pointings topic.

Each pointing is keyed by its id and gets a new ``correlation-id`` header,
which every stage carries on. Every pointing is validated first; by default one
invalid row stops the whole submission (nothing is sent), so a fixed catalogue
can be resubmitted as a whole. Invalid includes what the fetcher would certainly
dead-letter: an unknown survey, or a position outside the survey's coarse footprint.
Reading the catalogue file (delimiter, comments, column names, sexagesimal
angles) is in :mod:`radiounet.cli._catalogue`.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.fetcher.errors import OutsideFootprintError
from radiounet.stream.fetcher.surveys import SURVEYS, get_survey
from radiounet.stream.keys import pointing_id_from_name, validate_pointing_id
from radiounet.stream.messages import (
    DEFAULT_PIXEL_SCALE_ARCSEC,
    DEFAULT_SIZE_PX,
    DEFAULT_SURVEY,
    cluster_has_size,
    headers_for,
    new_correlation_id,
    now_ms,
    validate_pointing,
)
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings
from radiounet.stream.topics import POINTINGS

from ._catalogue import find_column, parse_angle, parse_number, read_table, read_text
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
    "ra": "RA column: degrees, or sexagesimal hours (15:21:15.8, 15h21m15.8s)",
    "dec": "Dec column: degrees, or sexagesimal (+30:37:40, 30d37m40s)",
    "z": "redshift column, optional",
    "m500": "M500 [1e14 Msun] column, optional",
    "theta500": "theta500 [arcmin] column, optional",
}
#: Other names a column not named on the command line may have (matched in any case).
#: MSZ is Planck PSZ2's mass, already in 1e14 Msun.
_ALIASES = {
    "z": ("redshift",),
    "m500": ("m500_1e14", "m500", "MSZ"),
    "theta500": ("theta500",),
}
#: A field's name in messages.
_LABELS = {
    "id": "id",
    "name": "name",
    "ra": "RA",
    "dec": "Dec",
    "z": "z",
    "m500": "M500",
    "theta500": "theta500",
}
#: Flags that describe a single position (no catalogue).
_POSITION_FLAGS = ("ra", "dec", "name", "id", "z", "m500", "theta500")
#: What a pointing id may hold (``keys.POINTING_ID_PATTERN``), for messages.
_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ + -, starting with a letter or digit"
#: Line numbers shown for a group of rows with the same problem.
_LINES_SHOWN = 5


@dataclass(frozen=True)
class Columns:
    """Catalogue column names (defaults: a PSZ2-like catalogue), matched in any case.

    ``id`` None derives each id from the name. Columns in ``explicit`` were named
    on the command line and must exist. The others may also have a name of
    ``_ALIASES``; the optional ones (name when an id column is given, z, M500,
    theta500) are used only where the header has them.
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
    """A (not yet validated) pointing; it names a cluster when a name or any size is given."""
    pointing = pb.Pointing(
        id=pointing_id,
        survey=defaults.survey,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        size_px=defaults.size_px,
        pixel_scale_arcsec=defaults.pixel_scale_arcsec,
    )
    if name or z is not None or m500_1e14 is not None or theta500_arcmin is not None:
        # Without a size there is no 2.2 R500 aperture (segmented only), but the name is kept.
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
    """Field -> column of ``header``; ValueError naming each required one missing."""
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
    used: dict[str, str] = {}
    missing = []
    for field, column in wanted.items():
        if column is None:
            continue
        explicit = field in columns.explicit
        names = (column,) if explicit else (column, *_ALIASES.get(field, ()))
        try:
            found = find_column(
                header, names, label=_LABELS[field], flag=f"--{field}-column", explicit=explicit
            )
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        if found is not None:
            used[field] = found
        elif field in required:
            missing.append(f"{column!r} (--{field}-column)")
    if missing:
        raise ValueError(
            f"{source}: no column {', '.join(missing)}; its columns are {', '.join(header)}"
        )
    return used


@dataclass(frozen=True)
class _Row:
    """A catalogue row's cells, read by field (``used``: field -> column)."""

    cells: Mapping[str, str]
    used: Mapping[str, str]
    decimal_comma: bool

    def text(self, field: str) -> str:
        column = self.used.get(field)
        value = self.cells.get(column) if column is not None else None
        return value.strip() if isinstance(value, str) else ""

    def column(self, field: str) -> str:
        """Where the field is read from, as messages name it."""
        return f"column {self.used[field]!r}" if field in self.used else f"--{field}-column"

    def absent(self, field: str) -> str:
        """Why the field has no value."""
        if field in self.used:
            return f"column {self.used[field]!r} is empty"
        return f"no {_LABELS[field]} column (--{field}-column)"

    def number(self, field: str, *, required: bool = False) -> float | None:
        text = self.text(field)
        label = _LABELS[field]
        if text.lower() in _EMPTY:
            if required:
                raise ValueError(f"no {label} ({self.absent(field)})")
            return None
        if field in ("ra", "dec"):
            try:
                return parse_angle(text, hours=field == "ra", decimal_comma=self.decimal_comma)
            except ValueError as exc:
                raise ValueError(f"{label} (column {self.used[field]!r}): {exc}") from None
        try:
            return parse_number(text, decimal_comma=self.decimal_comma)
        except ValueError:
            raise ValueError(
                f"{label} {text!r} (column {self.used[field]!r}) is not a number"
            ) from None


def _row_pointing(row: _Row, defaults: PointingDefaults) -> pb.Pointing:
    name = row.text("name")
    if "id" in row.used:
        pointing_id = validate_pointing_id(row.text("id"))
    elif name:
        try:
            pointing_id = pointing_id_from_name(name)
        except ValueError:
            raise ValueError(
                f"name {name!r} makes no valid pointing id; give --id-column (ids: {_ID_RULE})"
            ) from None
    else:
        raise ValueError(f"no name to make the id from ({row.absent('name')})")
    try:
        ra = row.number("ra", required=True)
        dec = row.number("dec", required=True)
        assert ra is not None and dec is not None  # required
        z, m500, theta500 = row.number("z"), row.number("m500"), row.number("theta500")
        if theta500 is None and (z is None) != (m500 is None):
            # Said here, where the columns are known, not by validate_pointing's field names.
            raise ValueError(
                f"{row.absent('z' if z is None else 'm500')}; give z ({row.column('z')}) and "
                f"M500 ({row.column('m500')}), or theta500 ({row.column('theta500')})"
            )
        return make_pointing(
            pointing_id,
            ra,
            dec,
            defaults=defaults,
            name=name,
            z=z,
            m500_1e14=m500,
            theta500_arcmin=theta500,
        )
    except ValueError as exc:
        raise ValueError(f"pointing {pointing_id}: {exc}") from None


def _read_catalogue(
    lines: Iterable[str],
    columns: Columns,
    defaults: PointingDefaults,
    *,
    source: str,
    limit: int | None,
) -> tuple[list[Candidate], dict[str, str]]:
    """:func:`read_catalogue`, and the columns used (field -> column)."""
    table = read_table(lines, source)
    used = _resolve_columns(columns, table.header, source)
    out: list[Candidate] = []
    for number, cells in table.rows:
        if limit is not None and len(out) >= limit:
            break
        where = f"line {number}"
        try:
            pointing = _row_pointing(_Row(cells, used, table.decimal_comma), defaults)
            out.append(Candidate(where, pointing))
        except ValueError as exc:
            out.append(Candidate(where, None, str(exc)))
    return out, used


def read_catalogue(
    lines: Iterable[str],
    columns: Columns = Columns(),
    defaults: PointingDefaults = PointingDefaults(),
    *,
    source: str = "catalogue",
    limit: int | None = None,
) -> list[Candidate]:
    """Pointings from the rows of a catalogue (header first), at most ``limit`` rows.

    Cells are separated by commas, tabs or semicolons (told by the header; with
    semicolons, numbers may have a decimal comma); lines starting with '#' are
    skipped. RA and Dec are degrees or sexagesimal (RA in hours).

    Raises
    ------
    ValueError
        If the header lacks a required column (RA, Dec, and the id or name), or
        two columns match one field.
    """
    return _read_catalogue(lines, columns, defaults, source=source, limit=limit)[0]


@dataclass(frozen=True)
class _Problem:
    """Why a candidate is not sent; ``outside``: the footprint it is outside of, if that is why."""

    where: str
    detail: str
    outside: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


def _check(candidates: Iterable[Candidate]) -> tuple[list[pb.Pointing], list[_Problem]]:
    valid: list[pb.Pointing] = []
    problems: list[_Problem] = []
    first: dict[str, str] = {}
    for candidate in candidates:
        where = candidate.where
        if candidate.pointing is None:
            problems.append(_Problem(where, str(candidate.error)))
            continue
        try:
            pointing = validate_pointing(candidate.pointing)
        except PermanentError as exc:
            problems.append(_Problem(where, str(exc)))
            continue
        try:
            survey = get_survey(pointing.survey)
        except PermanentError as exc:
            problems.append(_Problem(where, f"pointing {pointing.id}: {exc}"))
            continue
        # The fetcher's own test: a position it would certainly dead-letter is not sent.
        outside = survey.footprint_problem(pointing.ra_deg, pointing.dec_deg)
        if outside is not None:
            error = OutsideFootprintError.at(
                survey.name, pointing.ra_deg, pointing.dec_deg, outside
            )
            problems.append(
                _Problem(where, f"pointing {pointing.id}: {error}", f"{survey.name} ({outside})")
            )
            continue
        if pointing.id in first:
            problems.append(
                _Problem(
                    where, f"pointing {pointing.id}: duplicate id (first on {first[pointing.id]})"
                )
            )
            continue
        first[pointing.id] = where
        valid.append(pointing)
    return valid, problems


def check_candidates(candidates: Iterable[Candidate]) -> tuple[list[pb.Pointing], list[str]]:
    """The valid pointings (defaults filled in) and one message per invalid one.

    A repeated id is invalid: its pointing would overwrite the first one's objects.
    So are an unknown survey and a position outside the survey's coarse footprint:
    the fetcher would dead-letter them.
    """
    valid, problems = _check(candidates)
    return valid, [str(p) for p in problems]


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
    if not cluster_has_size(pointing):
        text += "  (no cluster size: segmented, not classified)"
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
        help="catalogue with a header line, UTF-8, cells separated by commas, tabs or "
        "semicolons, '#' lines skipped (PSZ2-like columns by default)",
    )
    source.add_argument("--limit", type=int, default=None, metavar="N", help="first N rows only")
    # Strings: sexagesimal angles are parsed like the catalogue's.
    source.add_argument(
        "--ra", default=None, help="RA: degrees, or sexagesimal hours (15:21:15.8, 15h21m15.8s)"
    )
    source.add_argument(
        "--dec",
        default=None,
        help="Dec: degrees, or sexagesimal (+30:37:40, 30d37m40s; a negative one as "
        "--dec=-30:37:40)",
    )
    source.add_argument("--name", default=None, help="cluster name (also makes the id)")
    source.add_argument("--id", default=None, help="pointing id (default: from the name)")
    source.add_argument("--z", type=float, default=None, help="redshift")
    source.add_argument("--m500", type=float, default=None, help="M500 [1e14 Msun]")
    source.add_argument("--theta500", type=float, default=None, help="R500 on the sky [arcmin]")
    cols = p.add_argument_group("catalogue columns")
    defaults = Columns()
    for field, helptext in _COLUMN_HELP.items():
        default = getattr(defaults, field)
        names = " or ".join((default, *_ALIASES.get(field, ()))) if default else ""
        cols.add_argument(
            f"--{field}-column",
            default=None,
            metavar="COL",
            help=helptext + (f" (default {names}, in any case)" if names else ""),
        )
    cutout = p.add_argument_group("cutout")
    cutout.add_argument(
        "--survey",
        default=DEFAULT_SURVEY,
        help=f"survey, one of {', '.join(sorted(SURVEYS))} (default %(default)s)",
    )
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


def _angle_flag(text: str, flag: str, *, hours: bool) -> float:
    try:
        return parse_angle(text, hours=hours)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _position(args: argparse.Namespace, defaults: PointingDefaults) -> pb.Pointing:
    """The pointing of ``--ra``/``--dec`` and the other position flags."""
    ra = _angle_flag(args.ra, "--ra", hours=True)
    dec = _angle_flag(args.dec, "--dec", hours=False)
    if args.theta500 is None and (args.z is None) != (args.m500 is None):
        given, absent = ("--z", "--m500") if args.m500 is None else ("--m500", "--z")
        raise ValueError(f"{given} without {absent}: give --z and --m500, or --theta500")
    if args.id is not None:
        pointing_id = args.id
    elif args.name:
        try:
            pointing_id = pointing_id_from_name(args.name)
        except ValueError:
            raise ValueError(
                f"cannot make a pointing id from --name {args.name!r}; give --id ({_ID_RULE})"
            ) from None
    else:
        pointing_id = position_id(ra, dec)
    return make_pointing(
        pointing_id,
        ra,
        dec,
        defaults=defaults,
        name=args.name or "",
        z=args.z,
        m500_1e14=args.m500,
        theta500_arcmin=args.theta500,
    )


def _candidates(
    args: argparse.Namespace, defaults: PointingDefaults
) -> tuple[list[Candidate], str]:
    """The candidates, and where their cluster sizes come from (for the note on plain ones)."""
    positional = [f"--{f}" for f in _POSITION_FLAGS if getattr(args, f) is not None]
    if args.catalogue is not None:
        if positional:
            raise ValueError(f"give --catalogue or a position, not both ({', '.join(positional)})")
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        candidates, used = _read_catalogue(
            io.StringIO(read_text(args.catalogue), newline=""),
            _columns_from(args),
            defaults,
            source=str(args.catalogue),
            limit=args.limit,
        )
        found = [f"{_LABELS[f]} {used[f]!r}" for f in ("z", "m500", "theta500") if f in used]
        return candidates, "columns found: " + (
            ", ".join(found) or "none; name them with --z-column, --m500-column, --theta500-column"
        )
    columns = [f"--{f}-column" for f in _COLUMN_HELP if getattr(args, f"{f}_column") is not None]
    if columns or args.limit is not None:
        raise ValueError(f"{', '.join(columns) or '--limit'} need(s) --catalogue")
    if args.ra is None or args.dec is None:
        raise ValueError("give --catalogue, or --ra and --dec")
    return [
        Candidate("--ra/--dec", _position(args, defaults))
    ], "none of --z, --m500, --theta500 given"


def _known_survey(name: str) -> str:
    try:
        return get_survey(name).name
    except ValueError as exc:  # the fetcher's InvalidRequestError, listing the known surveys
        raise ValueError(f"--survey: {exc}") from None


def _lines(wheres: Sequence[str]) -> str:
    """``lines 2, 4, 5, 9, 10 and 959 more`` for ``["line 2", "line 4", ...]``."""
    shown = ", ".join(w.removeprefix("line ") for w in wheres[:_LINES_SHOWN])
    more = len(wheres) - _LINES_SHOWN
    return f"line{'s' if len(wheres) > 1 else ''} {shown}" + (
        f" and {more} more" if more > 0 else ""
    )


def _report(problems: Sequence[_Problem], total: int, sendable: int, *, skip: bool) -> None:
    """Print the invalid candidates on stderr; without ``skip``, raise a ValueError if any.

    The rows outside a survey's footprint are one group per survey: a catalogue such
    as PSZ2 has hundreds, none can be fixed, and --skip-invalid is the answer for all.
    """
    label = "skipped" if skip else "invalid"
    outside: dict[str, list[str]] = {}
    for problem in problems:
        if problem.outside is None:
            print(f"{label}: {problem}", file=sys.stderr)
        else:
            outside.setdefault(problem.outside, []).append(problem.where)
    groups = [
        f"{len(wheres)} pointing(s) outside the footprint of {survey}, on {_lines(wheres)}"
        for survey, wheres in outside.items()
    ]
    if skip:
        for group in groups:
            print(f"skipped: {group}", file=sys.stderr)
        return
    if not problems:
        return
    message = f"{len(problems)} of {total} pointings invalid; nothing sent"
    if not groups:
        raise ValueError(f"{message} (fix them, or --skip-invalid to send the rest)")
    message += ": " + "; ".join(groups)
    if sendable:
        fix = (
            "fix the others listed above, or "
            if len(problems) > sum(map(len, outside.values()))
            else ""
        )
        message += f"; {fix}--skip-invalid sends the {sendable} valid one(s) and skips these"
    raise ValueError(message)


def run(args: argparse.Namespace) -> int:
    defaults = PointingDefaults(_known_survey(args.survey), args.size, args.pixel_scale)
    candidates, sizes = _candidates(args, defaults)
    if not candidates:
        raise ValueError(f"{args.catalogue}: no rows")
    pointings, problems = _check(candidates)
    if problems and args.catalogue is None:
        raise ValueError(str(problems[0]))  # one position: one line, no --skip-invalid advice
    _report(problems, len(candidates), len(pointings), skip=args.skip_invalid)
    if not pointings:
        raise ValueError("no valid pointing to send")
    plain = sum(not cluster_has_size(p) for p in pointings)
    if plain:
        # Not an error (segmentation alone is a use), but easily a column the reader missed.
        print(
            f"note: {plain} of {len(pointings)} pointing(s) have no z/M500 or theta500 "
            f"({sizes}): they will be segmented, not classified",
            file=sys.stderr,
        )
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
