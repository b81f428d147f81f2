"""The two local jobs: segment a FITS image, and classify a cluster on its map.

These join the pure core to FITS I/O and the in-process model. The command
line is a thin layer over them, and they serve as the Python API for a
scientist with one image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import angular_separation
from astropy.wcs import WCS

from .core.components import Component, find_components
from .core.cosmology import r500_kpc, theta500_arcmin
from .core.detection import (
    DEFAULT_RADIUS_R500,
    DEFAULT_THRESHOLD,
    DetectionResult,
    circle_pixel_count,
    detection_ratio,
)
from .core.normalisation import NormalisationProfile
from .core.segmentation import DEFAULT_BATCH_SIZE, Predictor, segment
from .core.sky import icrs_to_pixel, pixel_to_icrs
from .core.tiling import DEFAULT_STRIDE, DEFAULT_TILE, tile_grid
from .io.fits_image import Beam, InvalidImageError, SkyImage, read_image
from .io.probability_map import (
    ProbabilityMap,
    Provenance,
    probability_header,
    read_probability_map,
    writing_probability_map,
)
from .model.repository import ModelVersion

__all__ = [
    "MIN_APERTURE_PIXELS",
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


#: Smallest aperture (pixels) R is measured in when the map has no beam to compare with.
MIN_APERTURE_PIXELS = 10
#: Share of the aperture on valid map pixels below which classify warns.
MIN_VALID_FRACTION = 0.5
#: Largest offset (pixels) on the sky between an ``--image`` and its map's pixel grids.
GRID_TOLERANCE_PIX = 0.01


@dataclass(frozen=True)
class Cluster:
    """A galaxy cluster to classify: ICRS (J2000) position and size (theta500, or M500 and z)."""

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
        if self.z is not None and not (math.isfinite(self.z) and 0 < self.z <= 10):
            raise ValueError(f"z must be in (0, 10], got {self.z!r}")
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
    """R, its decision and the components of one cluster's map.

    ``centre_xy`` is the cluster's 0-based pixel on the map; the components'
    ``ra_deg``/``dec_deg`` are ICRS, as the cluster's, whatever the map's frame.
    ``components_skipped`` is why there is no component catalogue (no beam),
    None when there is one.
    """

    cluster: Cluster
    detection: DetectionResult
    centre_xy: tuple[float, float]
    theta500_arcmin: float
    radius_r500: float
    components: list[Component] = field(default_factory=list)
    placeholder_model: bool = False
    components_skipped: str | None = None

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
            "fraction_valid": self.fraction_valid,
            "placeholder_model": self.placeholder_model,
            "components": [c.to_dict() for c in self.components],
            "components_skipped": self.components_skipped,
        }

    @property
    def fraction_valid(self) -> float:
        """Share of the whole aperture's pixels that lie in the image and are not blanked."""
        return self.detection.fraction_valid

    @property
    def coverage_warning(self) -> str | None:
        """A warning when less than half the aperture holds valid map pixels, else None."""
        if self.fraction_valid >= MIN_VALID_FRACTION:
            return None
        percent = math.floor(100 * self.fraction_valid)  # down: 49.6% must not read "50%"
        share = f"only {percent}%" if percent else "less than 1%"
        return (
            f"{share} of the {self.radius_r500:g} R500 aperture lies on valid map "
            "pixels (inside the image, not blanked); R rests on that part"
        )


def cluster_on_map(wcs: WCS, cluster: Cluster) -> tuple[float, float, float]:
    """The cluster's centre ``(x, y)`` in 0-based pixels of ``wcs``, and R500 in pixels.

    The cluster's RA/Dec are ICRS; the map may be in any frame astropy knows.
    """
    x, y = icrs_to_pixel(wcs, cluster.ra_deg, cluster.dec_deg)
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
    # The corners as well as the centre: another pixel size, a flip or a rotation
    # about the centre leaves the centre where it was.
    ny, nx = image.shape
    x = np.array([(nx - 1) / 2, 0, nx - 1, 0, nx - 1], dtype=np.float64)
    y = np.array([(ny - 1) / 2, 0, 0, ny - 1, ny - 1], dtype=np.float64)
    ra_i, dec_i = np.radians(pixel_to_icrs(image.wcs, x, y))
    ra_m, dec_m = np.radians(pixel_to_icrs(prob.wcs, x, y))
    pixel_rad = math.radians(math.sqrt(prob.wcs.proj_plane_pixel_area().to_value("deg2")))
    offset = np.asarray(angular_separation(ra_i, dec_i, ra_m, dec_m), np.float64) / pixel_rad
    # Pixels beyond the projection's horizon in both agree; in only one, they differ.
    undefined = np.isnan(ra_i) & np.isnan(ra_m)
    offset = np.where(undefined, 0.0, np.nan_to_num(offset, nan=np.inf))
    worst = int(np.argmax(offset))
    if offset[worst] > GRID_TOLERANCE_PIX:
        raise InvalidImageError(
            f"{image.source}: WCS differs from the probability map {prob.source}'s: its pixel "
            f"(x, y) = ({x[worst]:g}, {y[worst]:g}) is {offset[worst]:.3g} px away on the sky"
        )
    if image.beam is None and prob.beam is not None:
        # The same pixel grid: the map's beam (e.g. from segment --beam) is the image's.
        image = dataclasses.replace(image, beam=prob.beam)
    return image


def _beam(prob: ProbabilityMap, image: SkyImage | None) -> Beam | None:
    """The map's restoring beam, else the image's (they share the pixel grid)."""
    return prob.beam or (image.beam if image is not None else None)


def _no_beam(prob: ProbabilityMap) -> str:
    return f"{prob.source}: no restoring beam (BMAJ/BMIN) in the map or image header"


def _components(
    prob: ProbabilityMap,
    image: SkyImage | None,
    *,
    centre_xy: tuple[float, float] | None = None,
    r500_pix: float | None = None,
    z: float | None = None,
) -> list[Component]:
    beam = _beam(prob, image)
    if beam is None:
        raise InvalidImageError(f"{_no_beam(prob)}; the component catalogue needs it")
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

    Raises
    ------
    InvalidImageError
        If neither the map nor the image has a beam, or for a bad map or image.
    """
    prob = read_probability_map(map_path)
    image = None
    if image_path is not None:
        image = _matching_image(read_image(image_path, bunit=bunit), prob)
    return _components(prob, image)


def classify_map(
    prob_map: str | Path | ProbabilityMap,
    cluster: Cluster,
    *,
    image_path: str | Path | None = None,
    bunit: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    radius_r500: float = DEFAULT_RADIUS_R500,
) -> Classification:
    """R within ``radius_r500`` R500 of ``cluster``, the decision, and the component catalogue.

    ``prob_map`` is a map FITS path or a map already read. With ``image_path``
    (the segmented image) components carry integrated flux densities (an image
    without a beam takes the map's). Without a beam in the map or the image,
    there is no component catalogue: ``components`` is empty and
    ``components_skipped`` says why.

    Raises
    ------
    ValueError
        If the cluster's centre is off the map (or beyond the projection's
        horizon), or its aperture holds less than one beam (without a beam,
        fewer than :data:`MIN_APERTURE_PIXELS` pixels); InvalidImageError for a
        bad map or image.
    """
    if not (math.isfinite(radius_r500) and radius_r500 > 0):
        raise ValueError(f"aperture radius must be positive (in R500), got {radius_r500!r}")
    prob = prob_map if isinstance(prob_map, ProbabilityMap) else read_probability_map(prob_map)
    image = None
    if image_path is not None:
        image = _matching_image(read_image(image_path, bunit=bunit), prob)
    x, y, r500_pix = cluster_on_map(prob.wcs, cluster)
    ny, nx = prob.data.shape
    # A centre off the map leaves R to a fragment of the aperture's edge.
    if not (-0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5):
        raise ValueError(
            f"{prob.source}: the cluster is outside the image: its centre is at pixel "
            f"(x, y) = ({x:.1f}, {y:.1f}) of a {nx} x {ny} px image"
        )
    radius = radius_r500 * r500_pix
    _check_aperture(prob, image, (x, y), radius, radius_r500=radius_r500, theta500=cluster.theta500)
    detection = detection_ratio(prob.data, (x, y), radius, threshold=threshold)
    components: list[Component] = []
    skipped = None
    if _beam(prob, image) is None:
        skipped = _no_beam(prob)  # R and the decision need no beam; the catalogue does
    else:
        components = _components(prob, image, centre_xy=(x, y), r500_pix=r500_pix, z=cluster.z)
    return Classification(
        cluster=cluster,
        detection=detection,
        centre_xy=(x, y),
        theta500_arcmin=cluster.theta500,
        radius_r500=radius_r500,
        components=components,
        placeholder_model=prob.header.get("RUTRAIN") is False,
        components_skipped=skipped,
    )


def _check_aperture(
    prob: ProbabilityMap,
    image: SkyImage | None,
    centre_xy: tuple[float, float],
    radius_pix: float,
    *,
    radius_r500: float,
    theta500: float,
) -> None:
    """Refuse an aperture smaller than one beam: its R is one resolution element's noise."""
    n = circle_pixel_count(centre_xy, radius_pix)
    beam = _beam(prob, image)
    if beam is not None:
        least = beam.area_pixels(float(prob.wcs.proj_plane_pixel_area().to_value("deg2")))
        short = f"less than one beam ({least:.1f} px)"
    else:
        least = MIN_APERTURE_PIXELS
        short = f"fewer than {least} (the map has no beam to compare with)"
    if n < least:
        raise ValueError(
            f"the {radius_r500:g} R500 aperture ({radius_pix:.2f} px radius) holds {n} px, "
            f"{short}: theta500 = {theta500:.3g} arcmin is too small for this map"
        )
