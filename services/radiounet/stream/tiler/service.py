"""The tiler stage: cutout -> normalised tiles -> TF Serving Predict -> probability-tile chunks.

Several Predict calls are kept in flight (``max_in_flight``) so the model
server's batcher gets full batches; each chunk's probabilities are written to
the object store by the worker that computed them, so uploads overlap the
model calls. While one cutout is handled, the next one the runner has polled
is already read, normalised and sent (:meth:`TilerStage.prefetch`), so the model
server does not idle between pointings; that work is pure and its chunk keys
deterministic, so using it, redoing it or dropping it changes no output.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radiounet.core.normalisation import get_profile
from radiounet.core.segmentation import normalised_tiles
from radiounet.core.tiling import (
    DEFAULT_STRIDE,
    DEFAULT_TILE,
    TileGrid,
    extract_tiles,
    pack_kept,
    tile_grid,
)
from radiounet.stream import telemetry as tm
from radiounet.stream.errors import PermanentError
from radiounet.stream.fetcher.surveys import get_survey
from radiounet.stream.fits_objects import read_fits_object
from radiounet.stream.keys import chunk_key
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, Handled
from radiounet.stream.topics import CUTOUTS, TILE_CHUNKS

__all__ = ["DEFAULT_CHUNK_TILES", "DEFAULT_MAX_IN_FLIGHT", "TilerStage"]

log = logging.getLogger(__name__)

#: Tiles per Predict call and per chunk message (2.4 MB of float32 each way).
DEFAULT_CHUNK_TILES = 16
DEFAULT_MAX_IN_FLIGHT = 4
#: Prefetched messages kept: the one about to be handled and the one after it.
_LOOK_AHEAD_KEPT = 2


@dataclass(frozen=True)
class _Work:
    """A cutout's predictions, stored: what its chunk messages are made of."""

    grid: TileGrid
    batches: list[range]
    refs: list[pb.ObjectRef]
    model: pb.ModelRef
    profile: str
    scale: float


class TilerStage:
    """Tile each cutout and have the model server predict every tile."""

    name = "tiler"
    input_topic = CUTOUTS
    output_topics = (TILE_CHUNKS,)
    dead_letter_reasons = ("invalid_pointing", "invalid_cutout", "missing_object")
    retry_reasons = ("model_unavailable",)

    def __init__(
        self,
        store: ObjectStore,
        client: Any,
        *,
        chunk_tiles: int = DEFAULT_CHUNK_TILES,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if chunk_tiles < 1 or max_in_flight < 1:
            raise ValueError(
                f"chunk_tiles and max_in_flight must be >= 1, got {chunk_tiles}, {max_in_flight}"
            )
        self.store = store
        self.client = client
        self.chunk_tiles = chunk_tiles
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="predict")
        self._model: pb.ModelRef | None = None
        self._lock = threading.Lock()
        # One message of look-ahead: its work runs while the current one finishes.
        self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch")
        self._ahead: OrderedDict[bytes, Future[_Work]] = OrderedDict()
        tm.TILES.labels(self.name)
        if isinstance(getattr(client, "model_name", None), str):
            tm.MODEL_REQUEST_SECONDS.labels(client.model_name)

    def close(self) -> None:
        self._drop_prefetched()
        self._ahead_pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def model_ref(self) -> pb.ModelRef:
        """The model the server serves (asked once, then cached)."""
        with self._lock:
            if self._model is None:
                meta = self.client.metadata()
                self._model = pb.ModelRef(
                    name=meta.name, version=int(meta.version), signature=meta.signature_name
                )
            return self._model

    def prefetch(self, message: pb.Cutout) -> None:
        """Start the work of ``message``, the next one to be handled, in the background.

        Best effort: :meth:`handle` uses the result if it is for the same message
        and succeeded, and otherwise does the work itself (raising its errors).
        """
        key = message.SerializeToString()
        stale = []
        with self._lock:
            if key in self._ahead:
                return
            self._ahead[key] = self._ahead_pool.submit(self._work, message)
            # The runner offers message i+1 before handling message i, whose own
            # prefetch (offered one step earlier) must survive until then: keep two.
            while len(self._ahead) > _LOOK_AHEAD_KEPT:
                stale.append(self._ahead.popitem(last=False)[1])
        for future in stale:
            future.cancel()

    def handle(self, message: pb.Cutout, ctx: Context) -> Handled:
        with self._lock:
            ahead = self._ahead.pop(message.SerializeToString(), None)
        work = None
        if ahead is not None:
            try:
                work = ahead.result()
            except Exception:
                log.info("pointing %s: prefetched work failed; redoing it", message.pointing.id)
        if work is None:
            work = self._work(message)
        outputs = [
            ctx.emit(
                TILE_CHUNKS,
                message.pointing.id,
                _chunk(message, ref, work, indices, i, len(work.batches)),
            )
            for i, (indices, ref) in enumerate(zip(work.batches, work.refs, strict=True))
        ]
        return Handled(outputs)

    def _work(self, message: pb.Cutout) -> _Work:
        """Read, normalise and tile the cutout; predict and store every chunk."""
        pointing = message.pointing
        image = read_fits_object(self.store, message.fits)
        tm.BYTES.labels(self.name, "read").inc(message.fits.size_bytes)
        profile = get_profile(get_survey(pointing.survey).profile)
        try:
            scale = image.scale_to(profile.unit)
        except ValueError as exc:
            raise PermanentError(str(exc), code="invalid_cutout") from None
        grid = tile_grid(image.shape, tile=DEFAULT_TILE, stride=DEFAULT_STRIDE)
        model = self.model_ref()
        data = image.data
        batches = list(grid.batches(self.chunk_tiles))

        def predict_and_store(indices: range) -> pb.ObjectRef:
            raw = extract_tiles(data, grid, indices)
            tiles, blank = normalised_tiles(raw, profile, scale=scale)
            started = time.perf_counter()
            probability: NDArray[np.float32] = self.client.predict(tiles)
            tm.MODEL_REQUEST_SECONDS.labels(model.name).observe(time.perf_counter() - started)
            probability[blank] = np.nan  # blanked input pixels stay blank in the map
            key = chunk_key(
                pointing.id,
                model.name,
                model.version,
                first_tile=indices.start,
                tile_count=len(indices),
            )
            # Only the pixels the reassembly keeps (31% of a 960 px cutout's tiles), in
            # float16: the object store's cost is per byte and the pipeline is CPU-bound
            # on small machines. Probabilities in [0, 1] keep 3 significant digits, far
            # below what the 0.5 contour or R (a mean over thousands of pixels,
            # threshold 0.015) can notice. The reassembler stitches in float32.
            kept = pack_kept(probability, grid, indices).astype(np.float16)
            ref = self.store.put_array(key, kept)
            tm.TILES.labels(self.name).inc(len(indices))
            tm.BYTES.labels(self.name, "written").inc(ref.size_bytes)
            return ref

        refs = list(self._pool.map(predict_and_store, batches))
        return _Work(grid, batches, refs, model, profile.name, scale)

    def _drop_prefetched(self) -> None:
        with self._lock:
            stale, self._ahead = list(self._ahead.values()), OrderedDict()
        for future in stale:
            future.cancel()

    def partitions_revoked(self, partitions: set[tuple[str, int]]) -> None:
        self._drop_prefetched()  # nothing else is held between messages


def _chunk(
    cutout: pb.Cutout, ref: pb.ObjectRef, work: _Work, indices: range, index: int, count: int
) -> pb.TileChunk:
    grid = work.grid
    return pb.TileChunk(
        pointing=cutout.pointing,
        cutout=cutout.fits,
        probabilities=ref,
        chunk_index=index,
        chunk_count=count,
        first_tile=indices.start,
        tile_count=len(indices),
        total_tiles=len(grid),
        tile_size=grid.tile,
        stride=grid.stride,
        image_ny=grid.shape[0],
        image_nx=grid.shape[1],
        model=work.model,
        profile=work.profile,
        unit_scale=work.scale,
        layout=pb.TILE_LAYOUT_KEPT,
    )
