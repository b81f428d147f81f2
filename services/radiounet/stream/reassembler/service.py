"""The reassembler stage: hold a pointing's tile chunks until its probability map is written.

Each chunk's tiles are placed into the pointing's map as they arrive and the
chunk's message is *held* (its offset is not committed), so a crash replays the
chunks instead of losing them. Once every tile is placed the map FITS (with
the cutout's WCS and provenance keywords) and its quicklook PNG are written,
a ``ProbabilityMap`` is published and every held message of the pointing is
released.

Chunks are assembled per ``(pointing id, correlation id)``: the chunks of one
tiler run, of its replays and of other tiler replicas share the submitter's
correlation id and merge (duplicates are harmless), while a resubmission of the
pointing is assembled on its own.

A pointing that cannot complete must not stay held forever, since nothing
after its first chunk could then be committed on that partition. So the
pointing *fails* as a whole, with one dead letter for it, when

* a chunk is bad (inconsistent with the pointing's other chunks, wrong array
  shape or values, missing object: reason ``bad_chunk`` or the store's reason),
* its cutout is unusable when the map is written (``invalid_cutout``),
* no new chunk arrived for ``stale_after_s`` (``incomplete_pointing``; e.g. the
  tiler dead-lettered the cutout half-way), checked whenever a chunk arrives, or
* anything else unexpected goes wrong with it (``internal_error``).

A failed pointing's held messages are all released with its dead letter (the
stage publishes it itself: the runner's dead-lettering would release only the
current message), and later chunks of the same run (same correlation id) are
released at once without being assembled. Resubmitting the pointing (a new
correlation id) starts afresh. What the stage remembers lives in memory: after
a restart or a rebalance the held messages are replayed and assembled again.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from radiounet.core.normalisation import get_profile
from radiounet.io.fits_image import SkyImage
from radiounet.io.probability_map import Provenance, probability_header, writing_probability_map
from radiounet.io.quicklook import write_quicklook
from radiounet.io.thumbnail import thumbnail_png
from radiounet.stream import telemetry as tm
from radiounet.stream.classifier.results import cluster_of
from radiounet.stream.dead_letters import copy_to_store
from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.fits_objects import read_fits_object
from radiounet.stream.keys import POINTING_ID_PATTERN, map_key, quicklook_key
from radiounet.stream.messages import Outgoing, headers_for, now_ms
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, Handled, RecordId
from radiounet.stream.settings import Settings
from radiounet.stream.topics import DEAD_LETTERS, MAPS, TILE_CHUNKS
from radiounet.workflows import aperture_on_map

from .assembly import ChunkError, PointingAssembly

__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "MAX_FAILED_REMEMBERED",
    "QUICKLOOK_STYLES",
    "ReassemblerStage",
    "map_header",
]

log = logging.getLogger(__name__)

#: Seconds without a new chunk after which a partial pointing is given up.
DEFAULT_STALE_AFTER_S = 1800.0
#: Failed runs remembered (to release their late chunks at once); the oldest are forgotten.
MAX_FAILED_REMEMBERED = 4096
#: What the quicklook PNG is: the cheap two-panel thumbnail (the default) or the
#: matplotlib figure with RA/Dec axes (~0.35 CPU-s each; ``radiounet segment --png``'s).
QUICKLOOK_STYLES = ("thumbnail", "figure")
#: Provenance keywords the chunks cannot fill (the model's width and training state).
_UNKNOWN_CARDS = ("RUBASEF", "RUTRAIN")

_Run = tuple[str, str]  # (pointing id, correlation id)


def map_header(image: SkyImage, chunk: pb.TileChunk) -> fits.Header:
    """The probability map's header: the cutout's WCS and the provenance the chunks carry.

    ``RUBASEF`` and ``RUTRAIN`` are left out: the chunks do not say, and a
    missing ``RUTRAIN`` is not read as "placeholder weights".
    """
    provenance = Provenance(
        model_name=chunk.model.name,
        model_version=int(chunk.model.version),
        base_filters=0,
        trained=True,
        profile=get_profile(chunk.profile),
        scale=float(chunk.unit_scale),
        tile=int(chunk.tile_size),
        stride=int(chunk.stride),
        source=chunk.cutout.key,
    )
    header = probability_header(image, provenance)
    for key in _UNKNOWN_CARDS:
        del header[key]
    return header


@dataclass
class _Pending:
    """A pointing being assembled: the map so far, and when it last grew."""

    assembly: PointingAssembly[RecordId]
    last_chunk: pb.TileChunk
    last_record: RecordId
    touched: float


class ReassemblerStage:
    """Reassemble each pointing's tile chunks into its probability map.

    Parameters
    ----------
    store : ObjectStore
        Where chunks and cutouts are read and maps written.
    settings : Settings, optional
        The service's settings (unused so far; the common stage signature).
    stale_after_s : float, keyword-only
        Seconds without a new chunk after which a partial pointing fails.
    quicklook : {"thumbnail", "figure"}, keyword-only
        The quicklook PNG written with each map: a two-panel thumbnail drawn
        with numpy and Pillow (tens of CPU-ms, for survey scale), or the
        Fig. 4-style matplotlib figure with RA/Dec axes (~0.35 CPU-s).
    clock : callable, keyword-only
        Monotonic seconds (tests pass a fake).
    """

    name = "reassembler"
    input_topic = TILE_CHUNKS
    output_topics = (MAPS,)
    dead_letter_reasons = ("bad_chunk", "invalid_cutout", "incomplete_pointing", "missing_object")

    def __init__(
        self,
        store: ObjectStore,
        settings: Settings | None = None,
        *,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        quicklook: str = "thumbnail",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s must be positive, got {stale_after_s!r}")
        if quicklook not in QUICKLOOK_STYLES:
            raise ValueError(f"quicklook must be one of {QUICKLOOK_STYLES}, got {quicklook!r}")
        self.store = store
        self.settings = settings
        self.stale_after_s = stale_after_s
        self.quicklook = quicklook
        self.clock = clock
        self._pending: dict[_Run, _Pending] = {}
        # Failed runs -> the partitions their chunks came from (dropped on revocation).
        self._failed: OrderedDict[_Run, set[tuple[str, int]]] = OrderedDict()
        tm.TILES.labels(self.name)

    @property
    def pending(self) -> int:
        """Pointings held partially."""
        return len(self._pending)

    # --- the stage -------------------------------------------------------------------------

    def handle(self, message: pb.TileChunk, ctx: Context) -> Handled:
        pointing_id = message.pointing.id
        if not POINTING_ID_PATTERN.fullmatch(pointing_id):
            # Nothing can be assembled (or held) under a bad id: dead-letter just this one.
            raise PermanentError(f"invalid pointing id {pointing_id!r}", code="bad_chunk")
        run = (pointing_id, ctx.correlation_id)
        if run in self._failed:
            log.info("%s: late chunk of a failed run, released", _describe(message))
            self._failed[run].add(_partition(ctx.record))
            handled = Handled()
        else:
            try:
                handled = self._take(message, ctx, run)
            except TransientError:
                raise  # the runner retries this message; the pointing stays pending
            except PermanentError as exc:
                handled = self._fail(run, message, ctx.record, ctx, exc)
            except Exception as exc:
                # Not left to the runner: it would dead-letter this chunk alone and the
                # pointing's other messages would stay held.
                log.exception("%s: unexpected error", _describe(message))
                error = PermanentError(f"{type(exc).__name__}: {exc}", code="internal_error")
                handled = self._fail(run, message, ctx.record, ctx, error)
        # Last, so that a transient error above (retried by the runner) loses nothing.
        handled = _merged(handled, self._expire(ctx))
        tm.PENDING_POINTINGS.labels(self.name).set(len(self._pending))
        return handled

    def partitions_revoked(self, partitions: set[tuple[str, int]]) -> None:
        """Forget pointings of revoked partitions: their chunks are replayed to the new owner."""
        for run, pending in list(self._pending.items()):
            if any(_partition(r) in partitions for r in pending.assembly.records):
                del self._pending[run]
        for run, parts in list(self._failed.items()):
            if parts & partitions:
                del self._failed[run]
        tm.PENDING_POINTINGS.labels(self.name).set(len(self._pending))

    # --- assembling ------------------------------------------------------------------------

    def _take(self, chunk: pb.TileChunk, ctx: Context, run: _Run) -> Handled:
        """Place ``chunk``; on completion write and publish the map."""
        tiles = self.store.get_array(chunk.probabilities)
        tm.BYTES.labels(self.name, "read").inc(chunk.probabilities.size_bytes or tiles.nbytes)
        pending = self._pending.get(run)
        try:
            if pending is None:
                assembly: PointingAssembly[RecordId] = PointingAssembly(chunk)
                added = assembly.add(chunk, tiles, ctx.record)
                pending = _Pending(assembly, chunk, ctx.record, self.clock())
                self._pending[run] = pending
            else:
                added = pending.assembly.add(chunk, tiles, ctx.record)
        except ChunkError as exc:
            raise PermanentError(str(exc), code="bad_chunk") from None
        tm.TILES.labels(self.name).inc(added)
        if added:
            pending.touched = self.clock()
        pending.last_chunk, pending.last_record = chunk, ctx.record
        assembly = pending.assembly
        if not assembly.complete:
            return Handled(hold=True)
        # A transient error while writing leaves the pointing pending; the runner
        # retries this chunk, a duplicate now, which completes it again.
        out = self._publish_map(assembly, ctx)
        del self._pending[run]
        log.info(
            "pointing %s: map of %d tiles written, %d messages released",
            assembly.pointing_id,
            assembly.total_tiles,
            len(assembly.records),
        )
        return Handled(outputs=[out], release=_sorted(assembly.records))

    def _publish_map(self, assembly: PointingAssembly[RecordId], ctx: Context) -> Outgoing:
        chunk = assembly.chunk
        pointing_id = assembly.pointing_id
        image = read_fits_object(self.store, chunk.cutout)
        tm.BYTES.labels(self.name, "read").inc(chunk.cutout.size_bytes)
        probability = assembly.probability()
        if image.shape != probability.shape:
            raise PermanentError(
                f"cutout {chunk.cutout.key}: shape {image.shape} differs from the chunks' "
                f"{probability.shape}",
                code="invalid_cutout",
            )
        map_bytes, png_bytes = _render(image, probability, chunk, self.quicklook)
        map_ref = self.store.put_bytes(
            map_key(pointing_id), map_bytes, content_type="application/fits"
        )
        png_ref = self.store.put_bytes(
            quicklook_key(pointing_id), png_bytes, content_type="image/png"
        )
        tm.BYTES.labels(self.name, "written").inc(len(map_bytes) + len(png_bytes))
        result = pb.ProbabilityMap(
            pointing=chunk.pointing,
            map=map_ref,
            quicklook=png_ref,
            cutout=chunk.cutout,
            model=chunk.model,
            n_tiles=assembly.total_tiles,
        )
        return ctx.emit(MAPS, pointing_id, result)

    # --- failing ---------------------------------------------------------------------------

    def _fail(
        self,
        run: _Run,
        chunk: pb.TileChunk,
        record: RecordId,
        ctx: Context,
        error: PermanentError,
    ) -> Handled:
        """Give the run up: one dead letter for the pointing, every held message released."""
        pending = self._pending.pop(run, None)
        records = set(pending.assembly.records) if pending is not None else set()
        records.add(record)
        self._failed[run] = {_partition(r) for r in records}
        while len(self._failed) > MAX_FAILED_REMEMBERED:
            self._failed.popitem(last=False)
        detail = (
            f"{error.detail}; the pointing's map will not be made: {len(records)} chunk "
            "message(s) released, later chunks of this run are dropped (resubmit the pointing)"
        )
        letter = pb.DeadLetter(
            stage=self.name,
            reason=error.code,
            detail=detail,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=run[0].encode(),
            value=chunk.SerializeToString(),
            producer=ctx.producer,
            failed_unix_ms=now_ms(),
            pointing_id=run[0],
        )
        headers = headers_for(letter, correlation_id=run[1], producer=ctx.producer)
        letter.headers.extend(pb.Header(key=k, value=v) for k, v in headers)
        log.error("pointing %s -> dead letter [%s] %s", run[0], error.code, detail)
        tm.DEAD_LETTERS.labels(self.name, error.code).inc()
        copy_to_store(self.store, letter)
        return Handled(
            outputs=[Outgoing(DEAD_LETTERS, run[0], letter, headers)], release=_sorted(records)
        )

    def _expire(self, ctx: Context) -> Handled:
        """Fail the pointings that got no new chunk for ``stale_after_s``."""
        now = self.clock()
        handled = Handled()
        for run, pending in list(self._pending.items()):
            idle = now - pending.touched
            if idle <= self.stale_after_s:
                continue
            a = pending.assembly
            missing = ", ".join(f"{lo}-{hi}" for lo, hi in a.missing()[:5])
            error = PermanentError(
                f"pointing {a.pointing_id}: incomplete after {idle:.0f} s without a new chunk "
                f"({a.placed_tiles}/{a.total_tiles} tiles; missing {missing}"
                f"{', ...' if len(a.missing()) > 5 else ''})",
                code="incomplete_pointing",
            )
            handled = _merged(
                handled, self._fail(run, pending.last_chunk, pending.last_record, ctx, error)
            )
        return handled


def _render(
    image: SkyImage,
    probability: NDArray[np.float32],
    chunk: pb.TileChunk,
    quicklook: str = "thumbnail",
) -> tuple[bytes, bytes]:
    """The map FITS and the quicklook PNG (``quicklook`` of `QUICKLOOK_STYLES`), as bytes."""
    header = map_header(image, chunk)
    cluster = cluster_of(chunk.pointing)
    circle_xy = radius = None
    if cluster is not None:
        # Beyond the projection's horizon: no circle on the quicklook (the map is still made).
        with contextlib.suppress(ValueError):
            circle_xy, radius = aperture_on_map(image.wcs, cluster)
    title = cluster.name if cluster is not None and cluster.name else chunk.pointing.id
    with tempfile.TemporaryDirectory(prefix="radiounet-map-") as tmp:
        map_path = Path(tmp) / "probability.fits"
        with writing_probability_map(map_path, header) as out:
            out[...] = probability
        del out  # unmap before reading the file back
        brightness = image.data * image.scale
        if quicklook == "thumbnail":
            png = thumbnail_png(
                brightness, probability, title=title, circle_xy=circle_xy, circle_radius_pix=radius
            )
        else:
            png = write_quicklook(
                Path(tmp) / "quicklook.png",
                brightness,
                probability,
                wcs=image.wcs,
                title=title,
                circle_xy=circle_xy,
                circle_radius_pix=radius,
            ).read_bytes()
        return map_path.read_bytes(), png


def _partition(record: RecordId) -> tuple[str, int]:
    return (record.topic, record.partition)


def _sorted(records: Iterable[RecordId]) -> list[RecordId]:
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def _merged(a: Handled, b: Handled) -> Handled:
    if not b.outputs and not b.release:
        return a
    outputs: Sequence[Outgoing] = [*a.outputs, *b.outputs]
    return Handled(outputs=outputs, hold=a.hold, release=[*a.release, *b.release])


def _describe(chunk: pb.TileChunk) -> str:
    return (
        f"pointing {chunk.pointing.id} chunk {chunk.chunk_index}/{chunk.chunk_count} "
        f"(tiles {chunk.first_tile}-{chunk.first_tile + chunk.tile_count - 1})"
    )
