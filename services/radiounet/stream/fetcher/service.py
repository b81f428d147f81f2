"""The fetcher stage: pointing -> FITS cutout in the object store -> cutouts topic."""

from __future__ import annotations

from typing import Any, Protocol

from astropy.io import fits

from radiounet.stream import telemetry as tm
from radiounet.stream.fits_objects import fits_bytes
from radiounet.stream.keys import cutout_key
from radiounet.stream.messages import now_ms, validate_pointing
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, Handled
from radiounet.stream.topics import CUTOUTS, POINTINGS

from .request import ClusterInfo, CutoutRequest

__all__ = ["CutoutSource", "FetcherStage", "request_for"]


class CutoutSource(Protocol):
    """Anything that turns a request into a 2-D FITS image (HTTP service, mosaics, simulator)."""

    def fetch(self, request: CutoutRequest) -> fits.PrimaryHDU: ...

    def describe(self) -> str: ...


def request_for(pointing: pb.Pointing) -> CutoutRequest:
    """The cutout request of a validated pointing."""
    cluster = None
    if pointing.HasField("cluster"):
        c = pointing.cluster
        cluster = ClusterInfo(
            name=c.name,
            z=c.z if c.HasField("z") else None,
            m500_1e14=c.m500_1e14 if c.HasField("m500_1e14") else None,
            theta500_arcmin=c.theta500_arcmin if c.HasField("theta500_arcmin") else None,
        )
    return CutoutRequest(
        pointing.id,
        pointing.survey,
        pointing.ra_deg,
        pointing.dec_deg,
        size_px=int(pointing.size_px),
        pixel_scale_arcsec=float(pointing.pixel_scale_arcsec),
        cluster=cluster,
    )


class FetcherStage:
    """Fetch each pointing's cutout from ``source`` and store it under a deterministic key."""

    name = "fetcher"
    input_topic = POINTINGS
    output_topics = (CUTOUTS,)
    dead_letter_reasons = (
        "invalid_pointing",
        "outside_footprint",
        "invalid_request",
        "invalid_cutout",
        "fetch_error",
    )
    retry_reasons = ("source_unavailable",)

    def __init__(self, store: ObjectStore, source: Any) -> None:
        self.store = store
        self.source = source

    def handle(self, message: pb.Pointing, ctx: Context) -> Handled:
        pointing = validate_pointing(message)
        # Source errors are already transient (retry) or permanent (dead letter).
        hdu = self.source.fetch(request_for(pointing))
        data = fits_bytes(hdu)
        ref = self.store.put_bytes(
            cutout_key(pointing.survey, pointing.id), data, content_type="application/fits"
        )
        tm.BYTES.labels(self.name, "written").inc(len(data))
        ny, nx = hdu.data.shape
        cutout = pb.Cutout(
            pointing=pointing,
            fits=ref,
            ny=ny,
            nx=nx,
            source=self.source.describe() if hasattr(self.source, "describe") else "",
            fetched_unix_ms=now_ms(),
        )
        return Handled([ctx.emit(CUTOUTS, pointing.id, cutout)])

    def partitions_revoked(self, partitions: set[tuple[str, int]]) -> None:
        pass  # nothing held between messages
