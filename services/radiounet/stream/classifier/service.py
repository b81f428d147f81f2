"""The classifier stage: probability map -> R and decision, component catalogue, result row.

For each map, the same computation as ``radiounet classify``
(:func:`radiounet.workflows.classify_map`) when the pointing names a cluster:
R within ``radius_r500`` R500 and ``R >= threshold``, with the threshold of the
map's model version or a fixed one (:mod:`.thresholds`); the component catalogue
(:func:`radiounet.workflows.map_components`) either way, with flux densities
from the cutout. The result row is written to ``results/<pointing id>.json``
(a replay overwrites it) and a ``Detection`` is published.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from radiounet.core.components import Component
from radiounet.core.detection import DEFAULT_RADIUS_R500
from radiounet.io.fits_image import InvalidImageError
from radiounet.model.threshold import DecisionThreshold
from radiounet.stream import telemetry as tm
from radiounet.stream.errors import PermanentError
from radiounet.stream.keys import POINTING_ID_PATTERN, result_key
from radiounet.stream.messages import now_ms
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, Handled
from radiounet.stream.settings import Settings
from radiounet.stream.topics import DETECTIONS, MAPS
from radiounet.workflows import Classification, Cluster, classify_map, map_components

from .results import cluster_of, result_row
from .thresholds import FixedThreshold, ThresholdSource

__all__ = ["ClassifierStage"]


class ClassifierStage:
    """Classify each pointing's probability map and store its result row.

    Parameters
    ----------
    store : ObjectStore
        Where maps and cutouts are read and results written.
    settings : Settings, optional
        The service's settings (unused so far; the common stage signature).
    threshold : float, keyword-only
        A fixed decision threshold on R for every map.
    thresholds : ThresholdSource, keyword-only
        The threshold for each map's model version (e.g. a
        :class:`~.thresholds.RepositoryThresholds`). Neither: the paper's 0.015.
    radius_r500 : float, keyword-only
        Aperture radius in R500 (2.2).
    clock : callable, keyword-only
        Unix milliseconds for ``classified_unix_ms`` (tests pass a fake).
    """

    name = "classifier"
    input_topic = MAPS
    output_topics = (DETECTIONS,)
    dead_letter_reasons = (
        "bad_map",
        "invalid_pointing",
        "invalid_map",
        "unclassifiable",
        "bad_model_metadata",
    )

    def __init__(
        self,
        store: ObjectStore,
        settings: Settings | None = None,
        *,
        threshold: float | None = None,
        thresholds: ThresholdSource | None = None,
        radius_r500: float = DEFAULT_RADIUS_R500,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if threshold is not None and thresholds is not None:
            raise ValueError("give a fixed threshold or a threshold source, not both")
        if threshold is not None and not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if not (math.isfinite(radius_r500) and radius_r500 > 0):
            raise ValueError(f"aperture radius must be positive (in R500), got {radius_r500!r}")
        self.store = store
        self.settings = settings
        if thresholds is None:
            thresholds = FixedThreshold(
                DecisionThreshold.paper()
                if threshold is None
                else DecisionThreshold.given(threshold)
            )
        self.thresholds = thresholds
        self.radius_r500 = radius_r500
        self.clock = clock
        for outcome in ("diffuse", "none", "no_cluster"):
            tm.DETECTIONS.labels(outcome)

    def handle(self, message: pb.ProbabilityMap, ctx: Context) -> Handled:
        pointing = message.pointing
        if not POINTING_ID_PATTERN.fullmatch(pointing.id):
            raise PermanentError(f"invalid pointing id {pointing.id!r}", code="bad_map")
        if not message.map.key:
            raise PermanentError(
                f"pointing {pointing.id}: the message names no map", code="bad_map"
            )
        try:
            cluster = cluster_of(pointing)
        except ValueError as exc:
            raise PermanentError(
                f"pointing {pointing.id}: {exc}", code="invalid_pointing"
            ) from None

        # Before the map is read: an unreachable repository is retried like the store.
        decision = self.thresholds.for_model(message.model) if cluster is not None else None
        map_bytes = self.store.get_bytes(message.map)
        cutout_bytes = self.store.get_bytes(message.cutout) if message.cutout.key else None
        tm.BYTES.labels(self.name, "read").inc(len(map_bytes) + len(cutout_bytes or b""))
        classification, components = self._classify(
            message, map_bytes, cutout_bytes, cluster, decision
        )

        row = result_row(
            pointing,
            message.model,
            classification=classification,
            threshold_source=None if decision is None else decision.source,
            components=components,
            map_key=message.map.key,
            quicklook_key=message.quicklook.key,
            cutout_key=message.cutout.key,
            correlation_id=ctx.correlation_id,
            classified_unix_ms=self.clock(),
        )
        ref = self.store.put_json(result_key(pointing.id), row)
        tm.BYTES.labels(self.name, "written").inc(ref.size_bytes)

        detection = pb.Detection(
            pointing=pointing,
            result=ref,
            map=message.map,
            model=message.model,
            has_cluster=classification is not None,
            n_components=len(row["components"]),
        )
        if classification is None:
            outcome = "no_cluster"
        else:
            d = classification.detection
            detection.ratio, detection.threshold, detection.diffuse = (
                d.ratio,
                d.threshold,
                d.detected,
            )
            outcome = "diffuse" if d.detected else "none"
        tm.DETECTIONS.labels(outcome).inc()
        return Handled([ctx.emit(DETECTIONS, pointing.id, detection)])

    def _classify(
        self,
        message: pb.ProbabilityMap,
        map_bytes: bytes,
        cutout_bytes: bytes | None,
        cluster: Cluster | None,
        decision: DecisionThreshold | None,
    ) -> tuple[Classification | None, Sequence[Component]]:
        """Classification (None without a cluster) and components, from files in a temp dir."""
        with tempfile.TemporaryDirectory(prefix="radiounet-classify-") as tmp:
            map_path = Path(tmp) / "probability.fits"
            map_path.write_bytes(map_bytes)
            image_path = None
            if cutout_bytes is not None:
                image_path = Path(tmp) / "cutout.fits"
                image_path.write_bytes(cutout_bytes)
            try:
                if cluster is None or decision is None:
                    return None, map_components(map_path, image_path=image_path)
                result = classify_map(
                    map_path,
                    cluster,
                    image_path=image_path,
                    threshold=decision.value,
                    radius_r500=self.radius_r500,
                )
                if result.components_skipped is not None:  # a row always has its catalogue
                    raise InvalidImageError(
                        f"{result.components_skipped}; the component catalogue needs it"
                    )
                return result, ()
            except ValueError as exc:  # InvalidImageError included
                # Name the objects, not the temporary files.
                detail = str(exc).replace(str(map_path), _name(message.map))
                if image_path is not None:
                    detail = detail.replace(str(image_path), _name(message.cutout))
                code = "invalid_map" if isinstance(exc, InvalidImageError) else "unclassifiable"
                raise PermanentError(
                    f"pointing {message.pointing.id}: {detail}", code=code
                ) from None


def _name(ref: pb.ObjectRef) -> str:
    return f"s3://{ref.bucket}/{ref.key}"
