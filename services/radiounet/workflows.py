"""The two local jobs: segment a FITS image, and classify a cluster on its map.

These join the pure core to FITS I/O and the in-process model. The command
line is a thin layer over them, and they serve as the Python API for a
scientist with one image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.wcs import WCS

from .core.components import Component, find_components
from .core.cosmology import r500_kpc, theta500_arcmin
from .core.detection import DEFAULT_RADIUS_R500, DEFAULT_THRESHOLD, DetectionResult, detection_ratio
from .core.normalisation import NormalisationProfile
from .core.segmentation import DEFAULT_BATCH_SIZE, Predictor, segment
from .core.tiling import DEFAULT_STRIDE, DEFAULT_TILE, tile_grid
from .io.fits_image import InvalidImageError, SkyImage, read_image
from .io.probability_map import (
    ProbabilityMap,
    Provenance,
    probability_header,
    read_probability_map,
    writing_probability_map,
)
from .model.repository import ModelVersion

__all__ = [
    "Classification",
    "Cluster",
    "SegmentationResult",
    "aperture_on_map",
    "classify_map",
    "cluster_on_map",
    "map_components",
    "segment_fits",
]


@dataclass(frozen=True)
class SegmentationResult:
    """Where a segmentation went and what it took."""

    output: Path
    shape: tuple[int, int]
    n_tiles: int
    model: ModelVersion
    profile: NormalisationProfile


def segment_fits(
    image: str | Path | SkyImage,
    output: str | Path,
    *,
    predictor: Predictor,
    model: ModelVersion,
    profile: NormalisationProfile,
    bunit: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    overwrite: bool = False,
    progress: Callable[[int], object] | None = None,
    on_start: Callable[[int], object] | None = None,
) -> SegmentationResult:
    """Segment ``image`` (a FITS path, or an image already read) into a map FITS at ``output``.

    ``on_start`` is called with the number of tiles before the first batch
    (to size a progress bar); ``progress`` after each batch.
    """
    if not isinstance(image, SkyImage):
        image = read_image(image, bunit=bunit)
    scale = image.scale_to(profile.unit)
    provenance = Provenance(
        model_name=model.name,
        model_version=model.version,
        base_filters=model.metadata.base_filters,
        trained=model.metadata.trained,
        profile=profile,
        scale=scale,
        tile=DEFAULT_TILE,
        stride=DEFAULT_STRIDE,
        source=image.source,
    )
    n_tiles = len(tile_grid(image.shape))
    if on_start is not None:
        on_start(n_tiles)
    with writing_probability_map(
        output, probability_header(image, provenance), overwrite=overwrite
    ) as out:
        segment(
            image.data,
            predictor,
            profile,
            scale=scale,
            batch_size=batch_size,
            out=out,
            progress=progress,
        )
    return SegmentationResult(Path(output), image.shape, n_tiles, model, profile)


@dataclass(frozen=True)
class Cluster:
    """A galaxy cluster to classify: position and size (theta500, or M500 and z)."""

    ra_deg: float
    dec_deg: float
    z: float | None = None
    m500_1e14: float | None = None
    theta500_arcmin: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ra_deg) and 0 <= self.ra_deg < 360):
            raise ValueError(f"ra must be in [0, 360) degrees, got {self.ra_deg!r}")
        if not (math.isfinite(self.dec_deg) and -90 <= self.dec_deg <= 90):
            raise ValueError(f"dec must be in [-90, 90] degrees, got {self.dec_deg!r}")
        if self.theta500_arcmin is None and (self.z is None or self.m500_1e14 is None):
            raise ValueError("give theta500, or both z and M500, for the cluster")
        if self.theta500_arcmin is not None and not (
            math.isfinite(self.theta500_arcmin) and self.theta500_arcmin > 0
        ):
            raise ValueError(f"theta500 must be a positive number, got {self.theta500_arcmin!r}")

    @property
    def theta500(self) -> float:
        """Angular R500 in arcmin (given, or from M500 and z)."""
        if self.theta500_arcmin is not None:
            return self.theta500_arcmin
        assert self.m500_1e14 is not None and self.z is not None
        return theta500_arcmin(self.m500_1e14, self.z)

    @property
    def r500_kpc(self) -> float | None:
        if self.m500_1e14 is None or self.z is None:
            return None
        return r500_kpc(self.m500_1e14, self.z)


@dataclass(frozen=True)
class Classification:
    """R, its decision and the components of one cluster's map."""

    cluster: Cluster
    detection: DetectionResult
    centre_xy: tuple[float, float]
    theta500_arcmin: float
    radius_r500: float
    components: list[Component] = field(default_factory=list)
    placeholder_model: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = self.detection
        return {
            "cluster": {
                "name": self.cluster.name,
                "ra_deg": self.cluster.ra_deg,
                "dec_deg": self.cluster.dec_deg,
                "z": self.cluster.z,
                "m500_1e14": self.cluster.m500_1e14,
                "theta500_arcmin": self.theta500_arcmin,
                "r500_kpc": self.cluster.r500_kpc,
            },
            "aperture_r500": self.radius_r500,
            "centre_xy": list(self.centre_xy),
            "ratio": d.ratio,
            "threshold": d.threshold,
            "detected": d.detected,
            "n_pixels": d.n_pixels,
            "radius_pix": d.radius_pix,
            "fraction_in_image": d.fraction_in_image,
            "placeholder_model": self.placeholder_model,
            "components": [c.to_dict() for c in self.components],
        }


def cluster_on_map(wcs: WCS, cluster: Cluster) -> tuple[float, float, float]:
    """The cluster's centre ``(x, y)`` in 0-based pixels of ``wcs``, and R500 in pixels."""
    x, y = (float(v) for v in wcs.world_to_pixel_values(cluster.ra_deg, cluster.dec_deg))
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(
            f"RA/Dec ({cluster.ra_deg}, {cluster.dec_deg}) cannot be projected on the map "
            "(beyond the projection's horizon)"
        )
    pixel_arcmin = math.sqrt(wcs.proj_plane_pixel_area().to_value("arcmin2"))
    return x, y, cluster.theta500 / pixel_arcmin


def aperture_on_map(
    wcs: WCS, cluster: Cluster, *, radius_r500: float = DEFAULT_RADIUS_R500
) -> tuple[tuple[float, float], float]:
    """The cluster's aperture on ``wcs``: 0-based centre ``(x, y)`` and radius in pixels.

    Raises
    ------
    ValueError
        If the centre is beyond the projection's horizon.
    """
    x, y, r500_pix = cluster_on_map(wcs, cluster)
    return (x, y), radius_r500 * r500_pix


def _matching_image(image: SkyImage, prob: ProbabilityMap) -> SkyImage:
    if image.shape != prob.data.shape:
        raise InvalidImageError(
            f"{image.source}: shape {image.shape} differs from the map's {prob.data.shape}"
        )
    centre = (image.shape[1] / 2, image.shape[0] / 2)
    sky = image.wcs.pixel_to_world_values(*centre)
    back = prob.wcs.world_to_pixel_values(*sky)
    if math.hypot(back[0] - centre[0], back[1] - centre[1]) > 0.01:
        raise InvalidImageError(f"{image.source}: WCS differs from the probability map's")
    return image


def _components(
    prob: ProbabilityMap,
    image: SkyImage | None,
    *,
    centre_xy: tuple[float, float] | None = None,
    r500_pix: float | None = None,
    z: float | None = None,
) -> list[Component]:
    beam = prob.beam or (image.beam if image is not None else None)
    if beam is None:
        raise InvalidImageError(
            f"{prob.source}: no restoring beam (BMAJ/BMIN) in the map or image header; "
            "the component catalogue needs it"
        )
    pixel_area_deg2 = float(prob.wcs.proj_plane_pixel_area().to_value("deg2"))
    flux_image = None
    if image is not None:
        flux_image = np.asarray(image.data, dtype=np.float64) * image.scale_to("Jy/pixel")
    return find_components(
        np.asarray(prob.data, dtype=np.float32),
        wcs=prob.wcs,
        beam_area_pix=beam.area_pixels(pixel_area_deg2),
        image_jy_per_pixel=flux_image,
        centre_xy=centre_xy,
        r500_pix=r500_pix,
        z=z,
    )


def map_components(
    map_path: str | Path, *, image_path: str | Path | None = None, bunit: str | None = None
) -> list[Component]:
    """The component catalogue of a map that targets no cluster (no distances, no kpc areas).

    With ``image_path`` (the segmented image) components carry integrated flux
    densities, as in :func:`classify_map`.
    """
    prob = read_probability_map(map_path)
    image = None
    if image_path is not None:
        image = _matching_image(read_image(image_path, bunit=bunit), prob)
    return _components(prob, image)


def classify_map(
    map_path: str | Path,
    cluster: Cluster,
    *,
    image_path: str | Path | None = None,
    bunit: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    radius_r500: float = DEFAULT_RADIUS_R500,
) -> Classification:
    """R within ``radius_r500`` R500 of ``cluster``, the decision, and the component catalogue.

    With ``image_path`` (the segmented image) components carry integrated flux
    densities.
    """
    if not (math.isfinite(radius_r500) and radius_r500 > 0):
        raise ValueError(f"aperture radius must be positive (in R500), got {radius_r500!r}")
    prob = read_probability_map(map_path)
    x, y, r500_pix = cluster_on_map(prob.wcs, cluster)
    theta500 = cluster.theta500
    detection = detection_ratio(prob.data, (x, y), radius_r500 * r500_pix, threshold=threshold)

    image = None
    if image_path is not None:
        image = _matching_image(read_image(image_path, bunit=bunit), prob)
    components = _components(prob, image, centre_xy=(x, y), r500_pix=r500_pix, z=cluster.z)
    return Classification(
        cluster=cluster,
        detection=detection,
        centre_xy=(x, y),
        theta500_arcmin=theta500,
        radius_r500=radius_r500,
        components=components,
        placeholder_model=prob.header.get("RUTRAIN") is False,
    )
