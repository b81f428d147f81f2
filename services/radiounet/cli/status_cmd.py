"""``radiounet status``: how far each pointing got, read from the object store alone.

Every stage writes deterministic keys (:mod:`radiounet.stream.keys`), so the
keys stored for a pointing tell its progress without Kafka::

    cutouts/<survey>/<id>.fits          fetched
    tiles/<id>/<model>-<v>/<a>-<b>.npy  tiling k/N (tiles a..b done)
    maps/<id>/probability.fits          reassembled (+ quicklook.png)
    results/<id>.json                   classified
    dead-letters/<id>/<stage>.json      failed (stage: reason)

A pointing with none of them is ``not-seen``: still queued in the pointings
topic, or never submitted. When a pointing has both a result and a dead letter
(it was submitted again), the later of the two decides its state.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from radiounet.core.tiling import DEFAULT_STRIDE, DEFAULT_TILE, tile_grid
from radiounet.stream.classifier.results import utc_text
from radiounet.stream.errors import StageError, TransientError
from radiounet.stream.keys import (
    RESULTS_PREFIX,
    map_key,
    pointing_id_from_name,
    quicklook_key,
    result_key,
    validate_pointing_id,
)
from radiounet.stream.object_store import ObjectStore

from ._stack_settings import settings_with_stack
from ._stream_options import add_stream_options, guarded, open_store

__all__ = [
    "STAGES",
    "STATES",
    "DeadLetterInfo",
    "PointingStatus",
    "ResultInfo",
    "TileProgress",
    "collect_status",
    "derive_status",
    "failed_statuses",
    "format_table",
    "group_keys",
    "image_shape_from_header",
    "pointing_of_key",
    "read_dead_letters",
    "register",
    "run",
    "stored_keys",
]

#: Stages in data-flow order (the ``stage`` of a dead letter).
STAGES = ("fetcher", "tiler", "reassembler", "classifier")
#: States in the order a pointing passes them; ``failed`` can follow any.
STATES = ("not-seen", "fetched", "tiling", "reassembled", "classified", "failed")

_PREFIXES = ("cutouts/", "tiles/", "maps/", RESULTS_PREFIX, "dead-letters/")
_CHUNK = re.compile(r"(?P<first>\d+)-(?P<last>\d+)\.npy")
_CARD = 80
_BLOCK = 2880
# A FITS header beyond this many blocks is not one our fetcher writes.
_HEADER_BLOCKS = 12


@dataclass(frozen=True)
class DeadLetterInfo:
    """Why a stage gave up on the pointing (from ``dead-letters/<id>/<stage>.json``)."""

    stage: str
    reason: str
    detail: str
    key: str
    failed_unix_ms: int | None = None
    #: Older than the pointing's result: a later submission got through.
    superseded: bool = False


@dataclass(frozen=True)
class ResultInfo:
    """The stored result of a pointing whose latest submission failed after it."""

    classified_unix_ms: int | None
    ratio: float | None
    correlation_id: str


@dataclass(frozen=True)
class TileProgress:
    """Probability tiles stored by one model; ``total`` None when the grid is unknown."""

    model: str
    chunks: int
    tiles: int
    total: int | None = None


@dataclass(frozen=True)
class PointingStatus:
    """What is stored for a pointing, and the state that follows from it."""

    pointing_id: str
    state: str
    cutout: str | None = None
    tiles: TileProgress | None = None
    map: str | None = None
    quicklook: str | None = None
    result: str | None = None
    dead_letters: tuple[DeadLetterInfo, ...] = field(default=())
    #: Set when ``failed`` although ``result`` is stored: what that earlier result says.
    earlier_result: ResultInfo | None = None

    @property
    def current_letters(self) -> tuple[DeadLetterInfo, ...]:
        """The dead letters not superseded by the result, oldest first."""
        return tuple(d for d in self.dead_letters if not d.superseded)

    @property
    def summary(self) -> str:
        """The state in words: ``tiling 40/81``, ``failed (tiler: invalid_cutout)``..."""
        if self.state == "tiling" and self.tiles is not None:
            total = "?" if self.tiles.total is None else str(self.tiles.total)
            return f"tiling {self.tiles.tiles}/{total}"
        if self.state == "failed" and self.current_letters:
            last = self.current_letters[-1]
            return f"failed ({last.stage}: {last.reason})"
        return self.state

    def to_dict(self) -> dict[str, Any]:
        tiles = None
        if self.tiles is not None:
            t = self.tiles
            tiles = {"model": t.model, "chunks": t.chunks, "tiles": t.tiles, "total": t.total}
        earlier = None
        if self.earlier_result is not None:
            e = self.earlier_result
            earlier = {
                "classified_utc": utc_text(e.classified_unix_ms),
                "ratio": e.ratio,
                "correlation_id": e.correlation_id,
            }
        return {
            "pointing_id": self.pointing_id,
            "state": self.state,
            "summary": self.summary,
            "cutout": self.cutout,
            "tiles": tiles,
            "map": self.map,
            "quicklook": self.quicklook,
            "result": self.result,
            "dead_letters": [
                {
                    "stage": d.stage,
                    "reason": d.reason,
                    "detail": d.detail,
                    "key": d.key,
                    "failed_unix_ms": d.failed_unix_ms,
                    "superseded": d.superseded,
                }
                for d in self.dead_letters
            ],
            "earlier_result": earlier,
        }


def pointing_of_key(key: str) -> str | None:
    """The pointing a pipeline key belongs to, or None for any other key.

    >>> pointing_of_key("cutouts/lotss-dr2-lowres/PSZ2_G055.59+31.85.fits")
    'PSZ2_G055.59+31.85'
    >>> pointing_of_key("tiles/p1/radio_unet-2/00000-00015.npy")
    'p1'
    """
    parts = key.split("/")
    if parts[0] == "cutouts" and len(parts) == 3 and parts[2].endswith(".fits"):
        return parts[2].removesuffix(".fits")
    if parts[0] in ("tiles", "maps", "dead-letters") and len(parts) >= 3 and parts[1]:
        return parts[1]
    if key.startswith(RESULTS_PREFIX) and len(parts) == 2 and parts[1].endswith(".json"):
        return parts[1].removesuffix(".json")
    return None


def group_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """Pipeline keys by pointing id (other keys are dropped), each list sorted."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        pointing_id = pointing_of_key(key)
        if pointing_id is not None:
            groups.setdefault(pointing_id, []).append(key)
    return {p: sorted(k) for p, k in sorted(groups.items())}


def _tile_progress(pointing_id: str, keys: Iterable[str]) -> TileProgress | None:
    """Tiles of the model that stored the most of them (a newer model restarts at 0)."""
    prefix = f"tiles/{pointing_id}/"
    ranges: dict[str, set[tuple[int, int]]] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        model, _, name = key[len(prefix) :].partition("/")
        match = _CHUNK.fullmatch(name)
        if match and int(match["last"]) >= int(match["first"]):
            ranges.setdefault(model, set()).add((int(match["first"]), int(match["last"])))
    if not ranges:
        return None

    def tiles(model: str) -> int:
        # Distinct tile indices: overlapping chunks (a replay with another chunk size) count once.
        return len({i for first, last in ranges[model] for i in range(first, last + 1)})

    best = max(sorted(ranges), key=tiles)
    return TileProgress(best, len(ranges[best]), tiles(best))


def _dead_letter(key: str, payload: Mapping[str, Any] | None) -> DeadLetterInfo:
    stage = key.rsplit("/", 1)[-1].removesuffix(".json")
    payload = payload or {}
    failed = payload.get("failed_unix_ms")
    return DeadLetterInfo(
        stage=str(payload.get("stage") or stage),
        reason=str(payload.get("reason") or "unknown"),
        detail=str(payload.get("detail") or ""),
        key=key,
        failed_unix_ms=_int_or_none(failed),
    )


def _stage_rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def derive_status(
    pointing_id: str,
    keys: Iterable[str],
    *,
    dead_letters: Mapping[str, Mapping[str, Any]] | None = None,
    result: Mapping[str, Any] | None = None,
    modified: Mapping[str, datetime | None] | None = None,
    total_tiles: int | None = None,
) -> PointingStatus:
    """The status of ``pointing_id`` from its stored ``keys``.

    Parameters
    ----------
    pointing_id : str
        The pointing.
    keys : iterable of str
        Keys stored for it (others are ignored).
    dead_letters : mapping, optional
        Dead-letter key -> its JSON payload (stage, reason, detail, failed_unix_ms).
    result : mapping, optional
        The pointing's result row (``classified_unix_ms``, ``ratio``, ``correlation_id``).
    modified : mapping, optional
        Key -> last-modified time, as the store's listing gives it.
    total_tiles : int, optional
        Tiles in the pointing's grid, when known.

    The later of a result and a dead letter decides: a dead letter that failed
    after the result was classified means ``failed`` (the result is an earlier
    submission's); one from before is ``superseded`` by the result. Without both
    times the result wins. Tile chunks older than the cutout are an earlier
    fetch's grid (e.g. another ``--size``) and do not count.

    >>> derive_status("p1", ["cutouts/s/p1.fits", "tiles/p1/m-1/00000-00015.npy"],
    ...               total_tiles=81).summary
    'tiling 16/81'
    """
    keys = sorted(set(keys))
    times = modified or {}
    cutouts = [k for k in keys if k.startswith("cutouts/") and pointing_of_key(k) == pointing_id]
    cutout = cutouts[0] if cutouts else None
    # Chunks written before the (newest) cutout belong to an earlier fetch's grid.
    fetched = max((t for k in cutouts if (t := times.get(k)) is not None), default=None)
    tiles = _tile_progress(
        pointing_id, [k for k in keys if fetched is None or not _before(times, k, fetched)]
    )
    if tiles is not None and total_tiles is not None:
        tiles = TileProgress(tiles.model, tiles.chunks, tiles.tiles, total_tiles)
    present = set(keys)
    probability = map_key(pointing_id) if map_key(pointing_id) in present else None
    quicklook = quicklook_key(pointing_id) if quicklook_key(pointing_id) in present else None
    result_at = result_key(pointing_id) if result_key(pointing_id) in present else None
    classified_ms = _int_or_none((result or {}).get("classified_unix_ms"))
    payloads = dead_letters or {}
    letters = sorted(
        (
            _dead_letter(k, payloads.get(k))
            for k in keys
            if k.startswith(f"dead-letters/{pointing_id}/") and k.endswith(".json")
        ),
        key=lambda d: (d.failed_unix_ms or 0, _stage_rank(d.stage)),
    )
    if result_at is not None:
        letters = [
            replace(
                d,
                superseded=d.failed_unix_ms is None
                or classified_ms is None
                or d.failed_unix_ms <= classified_ms,
            )
            for d in letters
        ]
    earlier = None
    if any(not d.superseded for d in letters):
        state = "failed"
        if result_at is not None and result is not None:
            ratio = result.get("ratio")
            earlier = ResultInfo(
                classified_ms,
                float(ratio) if isinstance(ratio, int | float) else None,
                str(result.get("correlation_id") or ""),
            )
    elif result_at is not None:
        state = "classified"
    elif probability is not None:
        state = "reassembled"
    elif tiles is not None:
        state = "tiling"
    elif cutout is not None:
        state = "fetched"
    else:
        state = "not-seen"
    return PointingStatus(
        pointing_id,
        state,
        cutout,
        tiles,
        probability,
        quicklook,
        result_at,
        tuple(letters),
        earlier,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _before(times: Mapping[str, datetime | None], key: str, moment: datetime) -> bool:
    stamp = times.get(key)
    return stamp is not None and stamp < moment


def image_shape_from_header(data: bytes) -> tuple[int, int] | None:
    """``(ny, nx)`` of the primary image from the first bytes of a FITS file, if there.

    Degenerate axes (NAXIS3/4 = 1 of radio mosaics) do not count.

    >>> cards = ["SIMPLE  =                    T", "BITPIX  =                  -32",
    ...          "NAXIS   =                    2", "NAXIS1  =                  960",
    ...          "NAXIS2  =                  480", "END"]
    >>> image_shape_from_header("".join(c.ljust(80) for c in cards).encode())
    (480, 960)
    """
    values: dict[str, int] = {}
    for start in range(0, len(data) - _CARD + 1, _CARD):
        card = data[start : start + _CARD].decode("ascii", errors="replace")
        keyword = card[:8].strip()
        if keyword == "END":
            break
        if keyword.startswith("NAXIS") and card[8:10] == "= ":
            try:
                values[keyword] = int(card[10:].split("/", 1)[0])
            except ValueError:
                return None
    else:
        return None  # no END: not a FITS header, or a longer one than we read
    naxis = values.get("NAXIS", 0)
    axes = [values.get(f"NAXIS{i}", 0) for i in range(1, naxis + 1)]
    if len(axes) < 2 or min(axes[:2]) < 1 or any(n != 1 for n in axes[2:]):
        return None
    return axes[1], axes[0]


def _total_tiles(store: ObjectStore, cutout: str) -> int | None:
    """Tiles of the cutout's grid (the tiler's 192/96), from its header alone."""
    try:
        response = store.client.get_object(
            store.bucket, cutout, offset=0, length=_HEADER_BLOCKS * _BLOCK
        )
        try:
            head = response.read()
        finally:
            response.close()
            response.release_conn()
    except Exception:  # minio, urllib3 or OS errors: the total is only a nicety
        return None
    shape = image_shape_from_header(bytes(head))
    if shape is None:
        return None
    return len(tile_grid(shape, tile=DEFAULT_TILE, stride=DEFAULT_STRIDE))


def _listing(store: ObjectStore, prefix: str, *, recursive: bool = True) -> dict[str, Any]:
    """Names under ``prefix`` with their last-modified times (None for folders)."""
    try:
        listing = store.client.list_objects(store.bucket, prefix=prefix, recursive=recursive)
        return {o.object_name: o.last_modified for o in listing if o.object_name is not None}
    except Exception as exc:  # minio, urllib3 or OS errors
        raise TransientError(
            f"listing s3://{store.bucket}/{prefix}: {type(exc).__name__}: {exc}",
            code="object_store",
        ) from None


def _survey_prefixes(store: ObjectStore) -> list[str]:
    """``cutouts/<survey>/`` folders: a cutout's key holds its survey, the id alone does not."""
    return sorted(k for k in _listing(store, "cutouts/", recursive=False) if k.endswith("/"))


def stored_keys(
    store: ObjectStore, pointing_ids: Iterable[str] | None
) -> dict[str, dict[str, datetime | None]]:
    """Pipeline keys by pointing, each with its last-modified time: of ``pointing_ids``,
    or of every pointing when None. The times come with the listings, at no extra cost."""
    if pointing_ids is None:
        times = {k: t for prefix in _PREFIXES for k, t in _listing(store, prefix).items()}
        return {p: {k: times[k] for k in keys} for p, keys in group_keys(times).items()}
    ids = list(dict.fromkeys(pointing_ids))
    surveys = _survey_prefixes(store)
    groups: dict[str, dict[str, datetime | None]] = {}
    for pointing_id in ids:
        times = {
            k: t
            for prefix in (
                *(f"{s}{pointing_id}.fits" for s in surveys),
                f"tiles/{pointing_id}/",
                f"maps/{pointing_id}/",
                result_key(pointing_id),
                f"dead-letters/{pointing_id}/",
            )
            for k, t in _listing(store, prefix).items()
        }
        # Prefixes match longer names too (p1.fits.bak); keep only this pointing's keys.
        groups[pointing_id] = {
            k: times[k] for k in sorted(times) if pointing_of_key(k) == pointing_id
        }
    return groups


def read_dead_letters(store: ObjectStore, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The JSON payload of each dead-letter key among ``keys`` that can still be read."""
    payloads: dict[str, dict[str, Any]] = {}
    for key in keys:
        if key.startswith("dead-letters/"):
            try:
                payload = store.get_json(key)
            except StageError:
                continue  # deleted meanwhile, or not JSON: the key still says failed
            if isinstance(payload, dict):
                payloads[key] = payload
    return payloads


def _result_row(store: ObjectStore, pointing_id: str) -> dict[str, Any] | None:
    try:
        row = store.get_json(result_key(pointing_id))
    except StageError:
        return None
    return row if isinstance(row, dict) else None


def collect_status(store: ObjectStore, pointing_ids: Iterable[str] | None) -> list[PointingStatus]:
    """Statuses of ``pointing_ids`` (every pointing seen when None), reading the store."""
    out = []
    for pointing_id, times in stored_keys(store, pointing_ids).items():
        payloads = read_dead_letters(store, times)
        # Only a result next to a dead letter is read: its time decides which is latest.
        row = None
        if payloads and result_key(pointing_id) in times:
            row = _result_row(store, pointing_id)
        status = derive_status(
            pointing_id, times, dead_letters=payloads, result=row, modified=times
        )
        if status.state == "tiling" and status.tiles is not None and status.cutout is not None:
            # Only a pointing still tiling needs the total: one small ranged read.
            total = _total_tiles(store, status.cutout)
            status = replace(status, tiles=replace(status.tiles, total=total))
        out.append(status)
    return out


def failed_statuses(
    store: ObjectStore, results: Mapping[str, Mapping[str, Any]]
) -> list[PointingStatus]:
    """The pointings whose latest event is a dead letter.

    ``results`` holds every result row in the store by pointing id (as
    ``radiounet results`` has read them). A dead letter is read only when its
    pointing also has a result (its time decides); alone, its key says failed.
    """
    out = []
    for pointing_id, keys in group_keys(_listing(store, "dead-letters/")).items():
        row = results.get(pointing_id)
        payloads = {}
        if row is not None:
            keys.append(result_key(pointing_id))
            payloads = read_dead_letters(store, keys)
        status = derive_status(pointing_id, keys, dead_letters=payloads, result=row)
        if status.state == "failed":
            out.append(status)
    return out


def _stored(s: PointingStatus) -> str:
    stored = []
    if s.cutout:
        stored.append("cutout")
    if s.tiles:
        stored.append(f"{s.tiles.tiles} tiles in {s.tiles.chunks} chunks ({s.tiles.model})")
    if s.map:
        stored.append("map")
    if s.quicklook:
        stored.append("quicklook")
    if s.result:
        stored.append("result")
    old = [d.stage for d in s.dead_letters if d.superseded]
    if old:
        # Listed, not detailed: the result after them is what counts, and a detail line
        # for each would bury the pointings that really failed.
        stored.append(f"superseded dead letter ({', '.join(old)})")
    return ", ".join(stored) or "-"


def format_table(statuses: Iterable[PointingStatus]) -> str:
    """One line per pointing (state, stored objects), then each failure's detail."""
    statuses = list(statuses)
    if not statuses:
        return "no pointings in the object store"
    width = max(len("pointing"), *(len(s.pointing_id) for s in statuses))
    state_width = max(len("state"), *(len(s.summary) for s in statuses))
    lines = [f"{'pointing':<{width}}  {'state':<{state_width}}  stored"]
    for s in statuses:
        lines.append(f"{s.pointing_id:<{width}}  {s.summary:<{state_width}}  {_stored(s)}")
        for d in s.current_letters:
            lines.append(f"{'':<{width}}  dead letter {d.stage}: {d.reason}: {d.detail}")
        if s.earlier_result is not None:
            lines.append(f"{'':<{width}}  {_earlier_text(s.earlier_result)}")
    return "\n".join(lines)


def _earlier_text(e: ResultInfo) -> str:
    stamp = utc_text(e.classified_unix_ms)
    when = f"at {stamp}" if stamp else "at an unknown time"
    r = "no R: no cluster" if e.ratio is None else f"R {e.ratio:.4f}"
    cid = f", correlation-id {e.correlation_id}" if e.correlation_id else ""
    return (
        f"an earlier submission was classified {when} ({r}{cid}); "
        "its row is still in radiounet results"
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="progress of pointings through the pipeline, from the object store",
        description="Show how far each pointing got: not-seen (queued or never submitted), "
        "fetched, tiling k/N, reassembled, classified, or failed (stage: reason), from "
        "the objects the stages stored. Needs no Kafka.",
    )
    p.add_argument(
        "pointings",
        nargs="*",
        metavar="ID",
        help="pointing ids (or cluster names, turned into ids as submit does)",
    )
    p.add_argument("--all", action="store_true", help="every pointing found in the store")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_stream_options(p)
    p.set_defaults(run=run)


def _pointing_id(text: str) -> str:
    try:
        return validate_pointing_id(text)
    except ValueError:
        return pointing_id_from_name(text)


def run(args: argparse.Namespace) -> int:
    if args.all and args.pointings:
        raise ValueError("give pointing ids or --all, not both")
    if not args.all and not args.pointings:
        raise ValueError("give pointing ids or --all")
    ids = None if args.all else [_pointing_id(p) for p in args.pointings]
    settings = settings_with_stack(args)

    def show() -> int:
        statuses = collect_status(open_store(settings), ids)
        if args.json:
            print(json.dumps([s.to_dict() for s in statuses], indent=2))
        else:
            print(format_table(statuses))
        return 0

    return guarded("status", show)
