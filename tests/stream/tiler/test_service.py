"""The tiler stage against the real object store and the model-server stand-in: prefetching."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from radiounet.core.tiling import kept_size, tile_grid
from radiounet.stream.errors import PermanentError
from radiounet.stream.fetcher.request import CutoutRequest
from radiounet.stream.fetcher.simulated_source import SimulatedSkySource
from radiounet.stream.fits_objects import fits_bytes
from radiounet.stream.model_server.server import ModelServer
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, RecordId
from radiounet.stream.tiler.model_client import ModelClient
from radiounet.stream.tiler.service import TilerStage
from radiounet.stream.topics import TILE_CHUNKS


@pytest.fixture
def stage(store: Any, server: ModelServer) -> Iterator[TilerStage]:
    with ModelClient(server.target) as client:
        tiler = TilerStage(store, client, chunk_tiles=4)
        try:
            yield tiler
        finally:
            tiler.close()


def _cutout(store: Any, pointing_id: str, size: int = 384) -> pb.Cutout:
    """A simulated cutout in the store (384 px: a 3 x 3 grid of 192-px tiles)."""
    request = CutoutRequest(pointing_id, "lotss-dr2-lowres", 200.0, 45.0, size_px=size)
    hdu = SimulatedSkySource().fetch(request)
    ref = store.put_bytes(f"cutouts/{pointing_id}.fits", fits_bytes(hdu))
    pointing = pb.Pointing(id=pointing_id, survey="lotss-dr2-lowres", ra_deg=200, dec_deg=45)
    return pb.Cutout(pointing=pointing, fits=ref, ny=size, nx=size)


def _ctx(offset: int) -> Context:
    return Context(RecordId("t.cutouts", 0, offset), "p", f"cid-{offset}", "test")


def _chunks(handled: Any) -> list[pb.TileChunk]:
    assert all(out.topic == TILE_CHUNKS for out in handled.outputs)
    return [out.message for out in handled.outputs]


def _counting(stage: TilerStage) -> list[str]:
    calls: list[str] = []
    work = stage._work

    def counted(message: pb.Cutout) -> Any:
        calls.append(message.pointing.id)
        return work(message)

    stage._work = counted  # type: ignore[method-assign]
    return calls


def test_prefetched_work_is_used_and_equals_work_done_on_the_spot(stage, store) -> None:
    a, b = _cutout(store, "pre-a"), _cutout(store, "pre-b")
    on_the_spot = _chunks(stage.handle(a, _ctx(0)))
    tiles_a = [store.get_array(c.probabilities) for c in on_the_spot]

    calls = _counting(stage)
    stage.prefetch(b)
    stage.prefetch(b)  # the same message again: no second piece of work
    chunks_b = _chunks(stage.handle(b, _ctx(1)))
    assert calls == ["pre-b"]  # handle took the prefetched result
    assert [c.tile_count for c in chunks_b] == [4, 4, 1]  # 9 tiles in chunks of 4
    assert [c.first_tile for c in chunks_b] == [0, 4, 8]
    assert {c.total_tiles for c in chunks_b} == {9}
    assert all(c.probabilities.dtype == "<f2" for c in chunks_b)  # float16 on the wire

    # Prefetched or not, the same cutout gives the same chunks: handle `a` again after a
    # prefetch of it and compare with the first, on-the-spot run.
    stage.prefetch(a)
    again = _chunks(stage.handle(a, _ctx(2)))
    assert calls == ["pre-b", "pre-a"]
    assert [c.probabilities.key for c in again] == [c.probabilities.key for c in on_the_spot]
    grid = tile_grid((a.ny, a.nx))
    # Only the pixels the reassembly keeps are stored: together, each map pixel once.
    assert sum(t.size for t in tiles_a) == 384 * 384
    for chunk, before in zip(again, tiles_a, strict=True):
        after = store.get_array(chunk.probabilities)
        assert chunk.layout == pb.TILE_LAYOUT_KEPT
        tiles = range(chunk.first_tile, chunk.first_tile + chunk.tile_count)
        assert after.shape == (kept_size(grid, tiles),)
        np.testing.assert_array_equal(after, before)
        assert np.nanmin(after) >= 0 and np.nanmax(after) <= 1


def test_in_the_runners_order_each_cutout_is_worked_on_once(stage, store) -> None:
    a, b, c = (_cutout(store, f"seq-{x}") for x in "abc")
    calls = _counting(stage)
    # The runner offers message i+1, then handles message i.
    stage.prefetch(b)
    chunks_a = _chunks(stage.handle(a, _ctx(0)))
    stage.prefetch(c)
    chunks_b = _chunks(stage.handle(b, _ctx(1)))
    chunks_c = _chunks(stage.handle(c, _ctx(2)))
    assert sorted(calls) == ["seq-a", "seq-b", "seq-c"]
    assert [len(x) for x in (chunks_a, chunks_b, chunks_c)] == [3, 3, 3]
    assert not stage._ahead


def test_unused_prefetches_are_dropped(stage, store) -> None:
    a, b, c = (_cutout(store, f"drop-{x}") for x in "abc")
    stage.prefetch(a)
    stage.prefetch(b)
    stage.prefetch(c)  # a was never handled (e.g. skipped after a rebalance): evicted
    assert list(stage._ahead) == [b.SerializeToString(), c.SerializeToString()]
    stage.partitions_revoked({("t.cutouts", 0)})
    assert not stage._ahead


def test_a_failed_prefetch_is_redone_and_raises_in_handle(stage, store) -> None:
    missing = _cutout(store, "gone")
    store.client.remove_object(store.bucket, missing.fits.key)
    stage.prefetch(missing)
    with pytest.raises(PermanentError, match=r"gone\.fits") as info:
        stage.handle(missing, _ctx(0))
    assert info.value.code == "missing_object"
