"""ReassemblerStage.handle() against a real object store: maps, holds, releases, failures."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image, PngImagePlugin
from prometheus_client import REGISTRY

from radiounet.cli import serve_cmd
from radiounet.cli.main import build_parser
from radiounet.core.tiling import TileGrid, extract_tiles, reassemble, tile_grid
from radiounet.examples import example_field
from radiounet.io.fits_image import read_image
from radiounet.io.probability_map import read_probability_map
from radiounet.io.thumbnail import thumbnail_png
from radiounet.stream.classifier.results import cluster_of
from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.keys import chunk_key, cutout_key, dead_letter_key, map_key, quicklook_key
from radiounet.stream.messages import CORRELATION_ID, header
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.reassembler.service import QUICKLOOK_STYLES, ReassemblerStage
from radiounet.stream.runner import Context, Handled, RecordId
from radiounet.stream.topics import DEAD_LETTERS, MAPS
from radiounet.workflows import aperture_on_map

TOPIC = "radiounet.tile-chunks"
MODEL = pb.ModelRef(name="radio_unet", version=2, signature="serving_default")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Pointing:
    """A pointing whose cutout and probability tiles are in the store."""

    message: pb.Pointing
    cutout: pb.ObjectRef
    cutout_bytes: bytes
    grid: TileGrid
    tiles: np.ndarray
    chunks: list[pb.TileChunk]

    @property
    def id(self) -> str:
        return self.message.id

    def expected_map(self) -> np.ndarray:
        return reassemble(self.tiles, self.grid)


def _probability_tiles(shape: tuple[int, int], grid: TileGrid, seed: int) -> np.ndarray:
    """A blob of high probability at the centre, blank (NaN) in one corner, per-tile offsets.

    The offsets make each tile's overlap differ from its neighbours', so a pixel
    taken from the wrong tile would show.
    """
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    image = 0.9 * np.exp(-(((xx - nx / 2) ** 2 + (yy - ny / 2) ** 2) / 40.0**2))
    image[:20, :30] = np.nan
    tiles = extract_tiles(image.astype(np.float32), grid, range(len(grid)))
    rng = np.random.default_rng(seed)
    tiles += rng.uniform(0, 0.05, size=(len(grid), 1, 1)).astype(np.float32)
    return np.clip(tiles, 0, 1)


def put_pointing(
    store: ObjectStore,
    pointing_id: str,
    *,
    size: int = 300,
    seed: int = 0,
    chunk_tiles: int = 4,
    cluster: bool = True,
) -> Pointing:
    """Store a cutout (the example field) and its probability chunks; return the chunk messages."""
    field = example_field(size=size, seed=seed)
    message = pb.Pointing(
        id=pointing_id,
        survey="lotss-dr2-lowres",
        ra_deg=field.ra_deg,
        dec_deg=field.dec_deg,
        size_px=size,
        pixel_scale_arcsec=4.5,
        submitted_unix_ms=1_700_000_000_000,
    )
    if cluster:
        message.cluster.CopyFrom(pb.Cluster(name=field.name, z=field.z, m500_1e14=field.m500_1e14))
    buffer = io.BytesIO()
    field.to_hdu().writeto(buffer)
    cutout_bytes = buffer.getvalue()
    cutout = store.put_bytes(
        cutout_key("lotss-dr2-lowres", pointing_id), cutout_bytes, content_type="application/fits"
    )
    shape = field.image.shape
    grid = tile_grid(shape)
    tiles = _probability_tiles(shape, grid, seed)
    batches = list(grid.batches(chunk_tiles))
    chunks = []
    for index, indices in enumerate(batches):
        key = chunk_key(
            pointing_id,
            MODEL.name,
            MODEL.version,
            first_tile=indices.start,
            tile_count=len(indices),
        )
        chunks.append(
            pb.TileChunk(
                pointing=message,
                cutout=cutout,
                probabilities=store.put_array(key, tiles[indices.start : indices.stop]),
                chunk_index=index,
                chunk_count=len(batches),
                first_tile=indices.start,
                tile_count=len(indices),
                total_tiles=len(grid),
                tile_size=grid.tile,
                stride=grid.stride,
                image_ny=shape[0],
                image_nx=shape[1],
                model=MODEL,
                profile="lotss-dr2-lowres",
                unit_scale=1.0,
            )
        )
    return Pointing(message, cutout, cutout_bytes, grid, tiles, chunks)


class Feeder:
    """Hands chunks to the stage as the runner would, one offset after the other."""

    def __init__(self, stage: ReassemblerStage) -> None:
        self.stage = stage
        self.offset = 0

    def __call__(
        self, chunk: pb.TileChunk, *, cid: str = "cid", partition: int = 0
    ) -> tuple[Handled, RecordId]:
        record = RecordId(TOPIC, partition, self.offset)
        self.offset += 1
        return self.stage.handle(chunk, Context(record, chunk.pointing.id, cid, "test")), record

    def again(self, chunk: pb.TileChunk, record: RecordId, *, cid: str = "cid") -> Handled:
        """The runner's retry of the same message after a transient error."""
        return self.stage.handle(chunk, Context(record, chunk.pointing.id, cid, "test"))


def pending_gauge() -> float | None:
    return REGISTRY.get_sample_value("radiounet_pending_pointings", {"stage": "reassembler"})


def held(handled: Handled) -> bool:
    return handled.hold and not handled.outputs and not handled.release


def read_map(store: ObjectStore, pointing_id: str) -> tuple[np.ndarray, fits.Header]:
    with fits.open(io.BytesIO(store.get_bytes(map_key(pointing_id))), memmap=False) as hdul:
        return np.array(hdul[0].data), hdul[0].header.copy()


def dead_letter_of(handled: Handled) -> pb.DeadLetter:
    (out,) = [o for o in handled.outputs if o.topic == DEAD_LETTERS]
    assert isinstance(out.message, pb.DeadLetter)
    return out.message


# --- the map -------------------------------------------------------------------------------


def test_interleaved_duplicated_chunks_make_each_pointings_map(store: ObjectStore) -> None:
    a = put_pointing(store, "A", seed=0, chunk_tiles=4)  # 9 tiles: chunks 0-3, 4-7, 8
    b = put_pointing(store, "B", size=250, seed=1, chunk_tiles=3, cluster=False)  # 4 tiles
    feed = Feeder(ReassemblerStage(store))

    h, a0 = feed(a.chunks[0])
    assert held(h)
    h, b0 = feed(b.chunks[0])
    assert held(h)
    assert feed.stage.pending == 2 and pending_gauge() == 2
    h, a2 = feed(a.chunks[2])
    assert held(h)
    h, a0_again = feed(a.chunks[0])  # a tiler replay
    assert held(h)

    h, b1 = feed(b.chunks[1])
    assert not h.hold
    assert h.release == [b0, b1]
    (out,) = h.outputs
    assert (out.topic, out.key) == (MAPS, "B")

    h, a1 = feed(a.chunks[1])
    assert not h.hold
    assert h.release == [a0, a2, a0_again, a1]  # exactly A's messages, duplicate included
    (out,) = h.outputs
    assert (out.topic, out.key) == (MAPS, "A")
    assert dict(out.headers)[CORRELATION_ID] == b"cid"
    assert feed.stage.pending == 0 and pending_gauge() == 0

    msg = out.message
    assert isinstance(msg, pb.ProbabilityMap)
    assert msg.pointing == a.message
    assert msg.cutout == a.cutout
    assert msg.model == MODEL
    assert msg.n_tiles == 9
    assert (msg.map.key, msg.map.content_type) == (map_key("A"), "application/fits")
    assert (msg.quicklook.key, msg.quicklook.content_type) == (quicklook_key("A"), "image/png")
    assert msg.map.etag and msg.map.size_bytes > 0

    for p in (a, b):
        data, _ = read_map(store, p.id)
        assert data.shape == p.expected_map().shape
        np.testing.assert_array_equal(data, p.expected_map())
        assert store.get_bytes(quicklook_key(p.id)).startswith(PNG_SIGNATURE)


def test_the_map_has_the_cutouts_wcs_and_provenance(store: ObjectStore, tmp_path: Path) -> None:
    a = put_pointing(store, "A")
    feed = Feeder(ReassemblerStage(store))
    for chunk in a.chunks:
        feed(chunk)
    _, hdr = read_map(store, "A")

    cutout_path = tmp_path / "cutout.fits"
    cutout_path.write_bytes(a.cutout_bytes)
    cutout = read_image(cutout_path)
    map_wcs = WCS(hdr)
    pixels = np.array([[0.0, 0.0], [150.0, 150.0], [299.0, 17.5], [42.0, 260.0]])
    np.testing.assert_allclose(
        map_wcs.pixel_to_world_values(pixels[:, 0], pixels[:, 1]),
        cutout.wcs.pixel_to_world_values(pixels[:, 0], pixels[:, 1]),
        rtol=0,
        atol=1e-10,
    )
    assert hdr["RUMODEL"] == "radio_unet"
    assert hdr["RUMODVER"] == 2
    assert hdr["RUPROF"] == "lotss-dr2-lowres"
    assert (hdr["RUVMIN"], hdr["RUVMAX"], hdr["RUVUNIT"]) == (1e-7, 1e-2, "Jy/beam")
    assert hdr["RUSCALE"] == 1.0
    assert (hdr["RUTILE"], hdr["RUSTRIDE"]) == (192, 96)
    assert hdr["RUSRC"] == "A.fits"
    assert hdr["BTYPE"] == "probability"
    assert hdr["BMAJ"] == cutout.header["BMAJ"]  # the beam, for the component catalogue
    assert "RUTRAIN" not in hdr and "RUBASEF" not in hdr  # the chunks do not say

    map_path = tmp_path / "map.fits"
    map_path.write_bytes(store.get_bytes(map_key("A")))
    prob = read_probability_map(map_path)  # a valid map for `radiounet classify`
    assert prob.beam == cutout.beam


def test_a_transient_error_while_writing_is_retried_without_loss(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = put_pointing(store, "A")
    feed = Feeder(ReassemblerStage(store))
    first = [feed(chunk)[1] for chunk in a.chunks[:-1]]
    real_put = store.put_bytes
    failures = iter([TransientError("store down", code="object_store")])

    def flaky_put(key: str, data: bytes, **kwargs: str) -> pb.ObjectRef:
        for error in failures:
            raise error
        return real_put(key, data, **kwargs)

    monkeypatch.setattr(store, "put_bytes", flaky_put)
    with pytest.raises(TransientError):
        feed(a.chunks[-1])
    last = RecordId(TOPIC, 0, feed.offset - 1)
    assert feed.stage.pending == 1
    h = feed.again(a.chunks[-1], last)
    assert h.release == [*first, last]
    assert [o.topic for o in h.outputs] == [MAPS]
    np.testing.assert_array_equal(read_map(store, "A")[0], a.expected_map())


def test_a_replayed_pointing_rewrites_the_same_map(store: ObjectStore) -> None:
    a = put_pointing(store, "A")
    feed = Feeder(ReassemblerStage(store))
    for _ in range(2):
        outcomes = [feed(chunk)[0] for chunk in a.chunks]
        assert [bool(h.outputs) for h in outcomes] == [False, False, True]
    assert store.list_keys("maps/") == [map_key("A"), quicklook_key("A")]


# --- failures ------------------------------------------------------------------------------


def test_a_bad_chunk_fails_its_pointing_and_releases_everything(store: ObjectStore) -> None:
    a = put_pointing(store, "A", chunk_tiles=2)  # chunks 0-1, 2-3, 4-5, 6-7, 8
    other = put_pointing(store, "B", size=250, seed=1, chunk_tiles=3)
    feed = Feeder(ReassemblerStage(store))
    _, r0 = feed(a.chunks[0])
    _, r_other = feed(other.chunks[0])
    _, r1 = feed(a.chunks[1])
    bad = pb.TileChunk()
    bad.CopyFrom(a.chunks[2])
    bad.probabilities.CopyFrom(store.put_array("tiles/A/bad.npy", a.tiles[4:5]))  # 1 tile, not 2

    h, r2 = feed(bad)
    assert not h.hold
    assert h.release == [r0, r1, r2]  # all of A's, none of B's
    letter = dead_letter_of(h)
    (out,) = h.outputs
    assert out.key == "A"
    assert header(out.headers, CORRELATION_ID) == "cid"
    assert (letter.stage, letter.reason, letter.pointing_id) == ("reassembler", "bad_chunk", "A")
    assert "array of shape (1, 192, 192), expected (2, 192, 192)" in letter.detail
    assert "3 chunk message(s) released" in letter.detail
    assert (letter.source_topic, letter.partition, letter.offset) == (TOPIC, 0, r2.offset)
    assert letter.key == b"A"
    assert pb.TileChunk.FromString(letter.value) == bad
    assert header([(hd.key, hd.value) for hd in letter.headers], CORRELATION_ID) == "cid"
    copy = store.get_json(dead_letter_key("reassembler", "A"))
    assert (copy["reason"], copy["offset"]) == ("bad_chunk", r2.offset)
    assert feed.stage.pending == 1  # B

    # The rest of the failed run is let go at once, not held.
    for chunk in a.chunks[3:]:
        h, _ = feed(chunk)
        assert h == Handled()
    # A resubmission (new correlation id) is assembled afresh.
    outcomes = [feed(chunk, cid="cid-2")[0] for chunk in a.chunks]
    assert [o.topic for o in outcomes[-1].outputs] == [MAPS]
    np.testing.assert_array_equal(read_map(store, "A")[0], a.expected_map())
    assert feed.stage.pending == 1
    assert r_other not in outcomes[-1].release


def test_a_chunk_from_another_model_version_fails_the_pointing(store: ObjectStore) -> None:
    a = put_pointing(store, "A")
    feed = Feeder(ReassemblerStage(store))
    _, r0 = feed(a.chunks[0])
    other = pb.TileChunk()
    other.CopyFrom(a.chunks[1])
    other.model.version = 3
    h, r1 = feed(other)
    letter = dead_letter_of(h)
    assert letter.reason == "bad_chunk"
    assert "model_version 3 (earlier chunks: 2)" in letter.detail
    assert h.release == [r0, r1]


def test_a_missing_chunk_object_fails_the_pointing(store: ObjectStore) -> None:
    a = put_pointing(store, "A")
    feed = Feeder(ReassemblerStage(store))
    _, r0 = feed(a.chunks[0])
    gone = pb.TileChunk()
    gone.CopyFrom(a.chunks[1])
    gone.probabilities.key = "tiles/A/never-written.npy"
    h, r1 = feed(gone)
    assert dead_letter_of(h).reason == "missing_object"
    assert h.release == [r0, r1]


def test_an_unreadable_cutout_fails_the_pointing_on_completion(store: ObjectStore) -> None:
    a = put_pointing(store, "A")
    store.put_bytes(a.cutout.key, b"not a FITS file")
    feed = Feeder(ReassemblerStage(store))
    records = [feed(chunk)[1] for chunk in a.chunks[:-1]]
    h, last = feed(a.chunks[-1])
    letter = dead_letter_of(h)
    assert letter.reason == "invalid_cutout"
    assert "not a readable FITS file" in letter.detail
    assert h.release == [*records, last]
    assert [o.topic for o in h.outputs] == [DEAD_LETTERS]
    assert not store.exists(map_key("A"))


def test_an_unexpected_error_fails_the_pointing_too(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> tuple[bytes, bytes]:
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr("radiounet.stream.reassembler.service._render", broken)
    a = put_pointing(store, "A")
    feed = Feeder(ReassemblerStage(store))
    records = [feed(chunk)[1] for chunk in a.chunks[:-1]]
    h, last = feed(a.chunks[-1])
    letter = dead_letter_of(h)
    assert (letter.reason, letter.pointing_id) == ("internal_error", "A")
    assert letter.detail.startswith("RuntimeError: matplotlib exploded; ")
    assert h.release == [*records, last]
    assert feed.stage.pending == 0


def test_a_pointing_without_new_chunks_expires(store: ObjectStore) -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    a = put_pointing(store, "A")
    b = put_pointing(store, "B", size=250, seed=1, chunk_tiles=3)
    feed = Feeder(ReassemblerStage(store, stale_after_s=60, clock=clock))
    _, ra = feed(a.chunks[0])
    now[0] = 30.0
    h, rb = feed(b.chunks[0])
    assert held(h)  # A idle for 30 s: not yet
    now[0] = 61.0
    h, ra_dup = feed(a.chunks[0])  # a duplicate does not count as progress
    assert h.hold
    letter = dead_letter_of(h)
    assert (letter.reason, letter.pointing_id) == ("incomplete_pointing", "A")
    assert "4/9 tiles; missing 4-8" in letter.detail
    assert letter.offset == ra_dup.offset  # the last message seen of A
    assert h.release == [ra, ra_dup]
    assert feed.stage.pending == 1
    now[0] = 200.0
    h, rb2 = feed(b.chunks[1])  # B completes: its own map, nothing else
    assert [o.topic for o in h.outputs] == [MAPS]
    assert h.release == [rb, rb2]


def test_revoked_partitions_drop_their_pointings(store: ObjectStore) -> None:
    a = put_pointing(store, "A")
    b = put_pointing(store, "B", size=250, seed=1, chunk_tiles=3)
    stage = ReassemblerStage(store)
    feed = Feeder(stage)
    feed(a.chunks[0], partition=0)
    feed(b.chunks[0], partition=1)
    stage.partitions_revoked({(TOPIC, 0)})
    assert stage.pending == 1 and pending_gauge() == 1
    # If partition 0 comes back, its chunks are replayed from the committed offset.
    outcomes = [feed(chunk, partition=0)[0] for chunk in a.chunks]
    assert [o.topic for o in outcomes[-1].outputs] == [MAPS]
    assert [r.offset for r in outcomes[-1].release] == [2, 3, 4]


def test_an_invalid_pointing_id_is_dead_lettered_alone(store: ObjectStore) -> None:
    chunk = pb.TileChunk(pointing=pb.Pointing(id="../etc"))
    with pytest.raises(PermanentError) as info:
        Feeder(ReassemblerStage(store))(chunk)
    assert (info.value.code, info.value.detail) == ("bad_chunk", "invalid pointing id '../etc'")


def test_stale_after_must_be_positive(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="stale_after_s must be positive"):
        ReassemblerStage(store, stale_after_s=0)


# --- the quicklook -------------------------------------------------------------------------


def quicklook_png(store: ObjectStore, pointing_id: str) -> tuple[tuple[int, int], dict[str, str]]:
    """The stored quicklook's size and text chunks."""
    data = store.get_bytes(quicklook_key(pointing_id))
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as im:
        assert isinstance(im, PngImagePlugin.PngImageFile)
        return im.size, dict(im.text)


def complete(stage: ReassemblerStage, pointing: Pointing) -> pb.ProbabilityMap:
    feed = Feeder(stage)
    for chunk in pointing.chunks:
        handled, _ = feed(chunk)
    (out,) = handled.outputs
    assert isinstance(out.message, pb.ProbabilityMap)
    return out.message


def test_the_default_quicklook_is_the_thumbnail(store: ObjectStore, tmp_path: Path) -> None:
    a = put_pointing(store, "A")  # 300 px, with its cluster
    msg = complete(ReassemblerStage(store), a)
    assert (msg.quicklook.key, msg.quicklook.content_type) == (quicklook_key("A"), "image/png")
    size, text = quicklook_png(store, "A")
    assert size == (2 * 300 + 4, 300)
    assert text["Title"] == a.message.cluster.name
    assert "circle: aperture" in text["Description"]

    # Exactly the thumbnail of the cutout's brightness and the map, with the aperture.
    cutout_path = tmp_path / "cutout.fits"
    cutout_path.write_bytes(a.cutout_bytes)
    cutout = read_image(cutout_path)
    cluster = cluster_of(a.message)
    assert cluster is not None
    circle_xy, radius = aperture_on_map(cutout.wcs, cluster)
    expected = thumbnail_png(
        cutout.data * cutout.scale,
        a.expected_map(),
        title=a.message.cluster.name,
        circle_xy=circle_xy,
        circle_radius_pix=radius,
    )
    assert store.get_bytes(quicklook_key("A")) == expected


def test_a_thumbnail_without_cluster_has_no_circle(store: ObjectStore) -> None:
    b = put_pointing(store, "B", size=250, seed=1, chunk_tiles=3, cluster=False)
    complete(ReassemblerStage(store), b)
    size, text = quicklook_png(store, "B")
    assert size == (2 * 250 + 4, 250)
    assert text["Title"] == "B"
    assert "aperture" not in text["Description"]


def test_the_figure_quicklook_on_request(store: ObjectStore) -> None:
    a = put_pointing(store, "A")
    stage = ReassemblerStage(store, quicklook="figure")
    assert stage.quicklook == "figure"
    msg = complete(stage, a)
    assert (msg.quicklook.key, msg.quicklook.content_type) == (quicklook_key("A"), "image/png")
    size, _ = quicklook_png(store, "A")
    assert size == (1200, 550)  # 12 x 5.5 inches at 100 dpi


def test_quicklook_must_be_a_known_style(store: ObjectStore) -> None:
    assert QUICKLOOK_STYLES == ("thumbnail", "figure")
    with pytest.raises(ValueError, match=r"quicklook must be one of .*, got 'svg'"):
        ReassemblerStage(store, quicklook="svg")


@pytest.mark.parametrize("flags, style", [([], "thumbnail"), (["--quicklook", "figure"], "figure")])
def test_serve_reassembler_quicklook_flag(store: ObjectStore, flags: list[str], style: str) -> None:
    args = build_parser().parse_args(["serve", "reassembler", *flags])
    stage = serve_cmd._stage(args, None, store)
    assert isinstance(stage, ReassemblerStage)
    assert stage.quicklook == style


def test_serve_reassembler_refuses_other_quicklooks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["serve", "reassembler", "--quicklook", "svg"])
    assert info.value.code == 2
    assert "invalid choice: 'svg'" in capsys.readouterr().err
