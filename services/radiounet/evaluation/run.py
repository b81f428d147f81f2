"""Evaluate a model on the held-out fields of simulated datasets (format ``radiounet-sim/1``).

For each selected field (split ``test`` by default): segment the image with
the model, build the two baseline masks (3 sigma, PyBDSF islands), and compute
the metrics of :mod:`radiounet.evaluation.metrics` against the field's
reference mask and labels; then the detection ratio R of every cluster of the
manifest and the morphology label of every detected component. The results
are pooled over fields into one JSON-ready dict, which
:mod:`radiounet.evaluation.report` writes out.

Conventions beyond the metric definitions:

* The normalisation profile is the model's (``metadata.profile``) when it
  names a built-in profile or is a ``VMIN:VMAX:UNIT`` specification, else
  the one of the dataset's set-up (``lotss-dr2-lowres`` ->
  ``lotss-dr2-lowres``, ``paper-6arcsec`` -> ``synthetic``), unless one is
  given explicitly.
* Valid pixels are those where both the image and the probability map are finite.
* The resolution element is the restoring beam's area in pixels, from the
  image header.
* A cluster's aperture is ``2.2 theta500`` around its manifest ``(x, y)``;
  clusters whose aperture misses the image are skipped (and listed).
* False-positive regions are split into those touching *contaminant
  emission* and the others (noise, imaging artefacts): pixels where the true
  sky (``*_sky.fits``) outside the reference mask, convolved with the beam,
  exceeds 5 times the image rms — radio galaxies and compact sources bright
  enough to matter. The share of the sky outside the mask that such emission
  covers is reported too, since in a crowded field a region may touch a
  source by chance.
* Detection is also measured for the network at the pixel thresholds of
  ``DETECTION_SWEEP``, and keeping only its 0.5-regions whose integrated
  emission reaches each S/N of ``DETECTION_MIN_SNR`` (the component
  catalogue's ``snr``, with the image's robust rms): diagnostics, the headline
  and the targets use the paper's rule.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from scipy import ndimage

from .. import __version__
from ..core.components import Component, find_components
from ..core.detection import DEFAULT_RADIUS_R500, detection_ratio
from ..core.normalisation import PROFILES, SETUP_PROFILES, NormalisationProfile, get_profile
from ..core.segmentation import DEFAULT_BATCH_SIZE, Predictor, segment
from ..core.sky import icrs_to_pixel
from ..io.fits_image import InvalidImageError, SkyImage, read_image
from ..model.repository import ModelVersion
from .baselines import PyBDSFError, pybdsf_available, pybdsf_island_mask, sigma_mask
from .metrics import (
    PAPER_THRESHOLD,
    DetectionMatch,
    IoUTerms,
    best_accuracy,
    classification_at,
    classification_sweep,
    confusion_matrix,
    default_thresholds,
    exclusive_detections,
    iou_terms,
    match_detections,
    region_snr,
    summarise,
)
from .morphology import (
    DEFAULT_RULE,
    MORPHOLOGY_CLASSES,
    PREDICTED_CLASSES,
    classify_morphology,
    nearest_cluster_features,
)

__all__ = [
    "CONTAMINANT_CLASSES",
    "DATASET_FORMAT",
    "DETECTION_MIN_SNR",
    "DETECTION_SWEEP",
    "EXTENDED_RADIO_GALAXIES",
    "METHODS",
    "PROBABILITY_THRESHOLD",
    "REPORT_FORMAT",
    "SETUP_PROFILES",
    "Dataset",
    "Evaluation",
    "FieldArrays",
    "FieldEvaluation",
    "FieldSpec",
    "choose_profile",
    "evaluate",
    "evaluate_field",
    "load_dataset",
    "require_fields",
    "select_fields",
]

DATASET_FORMAT = "radiounet-sim/1"
REPORT_FORMAT = "radiounet-eval/1"
MANIFEST = "manifest.json"
#: Sources that are not diffuse emission (never in the reference mask).
CONTAMINANT_CLASSES = ("compact", "fri", "frii", "tailed")
#: The extended ones among them.
EXTENDED_RADIO_GALAXIES = ("fri", "frii", "tailed")
#: Normalisation profile of each simulator set-up.
#: Segmentation methods compared, in report order.
METHODS = ("network", "sigma3", "pybdsf")
#: Pixel probability above which the network detects (Sec. 5).
PROBABILITY_THRESHOLD = 0.5
#: Pixel-probability thresholds of the network's detection sweep (diagnostic, not the paper's).
DETECTION_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Smallest S/N of the regions kept in the network's significance cut (diagnostic).
DETECTION_MIN_SNR = (3.0, 5.0, 10.0)


# --- datasets -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """A simulated dataset folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def setup(self) -> dict[str, Any]:
        return dict(self.manifest.get("setup") or {})

    @property
    def fields(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("fields") or [])

    def summary(self) -> dict[str, Any]:
        splits: dict[str, int] = {}
        for f in self.fields:
            splits[str(f.get("split"))] = splits.get(str(f.get("split")), 0) + 1
        return {
            "path": str(self.path),
            "format": self.manifest.get("format"),
            "setup": self.setup,
            "seed": self.manifest.get("seed"),
            "created": self.manifest.get("created"),
            "software": self.manifest.get("software"),
            "truth_threshold_jy_arcsec2": self.manifest.get("truth_threshold_jy_arcsec2"),
            "n_fields": len(self.fields),
            "n_fields_by_split": splits,
        }


def load_dataset(path: str | Path) -> Dataset:
    """Read ``path/manifest.json`` and check it is a ``radiounet-sim/1`` dataset.

    Raises
    ------
    FileNotFoundError
        If the folder or its manifest does not exist.
    ValueError
        If the manifest is not valid JSON of the expected format.
    """
    folder = Path(path)
    manifest = folder / MANIFEST
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} not found: {folder} is not a simulated dataset (make one with "
            "`radiounet simulate`)"
        )
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{manifest}: not a readable JSON manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{manifest}: manifest must be a JSON object, got {type(data).__name__}")
    if data.get("format") != DATASET_FORMAT:
        raise ValueError(
            f"{manifest}: format must be {DATASET_FORMAT!r}, got {data.get('format')!r}"
        )
    if not isinstance(data.get("fields"), list):
        raise ValueError(f"{manifest}: 'fields' must be a list, got {data.get('fields')!r}")
    return Dataset(folder, data)


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """One field of a dataset, as the manifest describes it."""

    dataset: Dataset
    entry: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.entry.get("id"))

    @property
    def split(self) -> str:
        return str(self.entry.get("split"))

    def path(self, key: str) -> Path:
        """The file of ``key`` (``image``, ``mask``, ``labels``, ``sky``), inside the dataset."""
        rel = self.entry.get(key)
        if not isinstance(rel, str) or not rel:
            raise ValueError(
                f"{self.dataset.path / MANIFEST}: field {self.id!r} has no {key!r} file, "
                f"got {rel!r}"
            )
        return self.dataset.path / rel

    @property
    def clusters(self) -> list[dict[str, Any]]:
        return list(self.entry.get("clusters") or [])

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self.entry.get("sources") or [])


def select_fields(
    datasets: Sequence[Dataset], *, split: str = "test", max_fields: int | None = None
) -> list[FieldSpec]:
    """Fields of ``split`` from all datasets, in manifest order, at most ``max_fields``."""
    if max_fields is not None and max_fields < 1:
        raise ValueError(f"max_fields must be a positive integer, got {max_fields!r}")
    chosen = [FieldSpec(d, f) for d in datasets for f in d.fields if f.get("split") == split]
    return chosen if max_fields is None else chosen[:max_fields]


def require_fields(
    datasets: Sequence[Dataset], *, split: str, max_fields: int | None = None
) -> list[FieldSpec]:
    """:func:`select_fields`, refusing an empty selection with the splits that are there."""
    specs = select_fields(datasets, split=split, max_fields=max_fields)
    if not specs:
        present = sorted({str(f.get("split")) for d in datasets for f in d.fields})
        raise ValueError(
            f"no field with split {split!r} in {[str(d.path) for d in datasets]} "
            f"(splits present: {present})"
        )
    return specs


def choose_profile(
    model_profile: str | None, setup_names: Iterable[str], override: str | None = None
) -> tuple[NormalisationProfile, str]:
    """The normalisation profile and why: an explicit one, the model's, or the set-up's."""
    if override is not None:
        return get_profile(override), "given explicitly"
    if model_profile:
        try:  # a built-in name, or the VMIN:VMAX:UNIT the model was trained with
            return get_profile(model_profile), "the model's metadata.profile"
        except ValueError:
            pass
    names = sorted(set(setup_names))
    profiles = {SETUP_PROFILES.get(n) for n in names}
    if len(profiles) == 1 and None not in profiles:
        (name,) = profiles
        assert name is not None
        return PROFILES[name], f"the dataset set-up {names[0]!r}"
    raise ValueError(
        f"cannot choose a normalisation profile: the model's is {model_profile!r} and the "
        f"dataset set-ups are {names!r} (known set-ups: {sorted(SETUP_PROFILES)}); "
        "give one explicitly"
    )


# --- one field ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FieldArrays:
    """A field's maps, kept for the example figures."""

    id: str
    image_jy_beam: NDArray[np.float32]
    mask: NDArray[np.bool_]
    probability: NDArray[np.float32]
    sigma3: NDArray[np.bool_]
    rms_jy_beam: float
    clusters: list[dict[str, Any]]


@dataclass(eq=False)
class FieldEvaluation:
    """Everything measured on one field."""

    id: str
    dataset: str
    shape: tuple[int, int]
    beam_area_pix: float
    rms_jy_beam: float
    rms_manifest: float | None
    n_valid: int
    has_emission: bool = False
    iou_empty: IoUTerms | None = None
    iou: dict[str, IoUTerms] = field(default_factory=dict)
    detection: dict[str, DetectionMatch] = field(default_factory=dict)
    #: The network's detection at each pixel threshold of ``DETECTION_SWEEP`` (no region maps).
    detection_sweep: dict[float, DetectionMatch] = field(default_factory=dict)
    #: The network's 0.5-regions of S/N >= each ``DETECTION_MIN_SNR`` (no region maps).
    detection_significance: dict[float, DetectionMatch] = field(default_factory=dict)
    only_network: tuple[int, int] = (0, 0)
    fp_on_contaminant: int | None = None
    contaminant_area_fraction: float | None = None
    clusters: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "shape": list(self.shape),
            "beam_area_pix": self.beam_area_pix,
            "rms_jy_beam_measured": self.rms_jy_beam,
            "rms_jy_beam_manifest": self.rms_manifest,
            "n_valid_pixels": self.n_valid,
            "has_reference_emission": self.has_emission,
            "iou": {m: t.mean_iou for m, t in self.iou.items()},
            "iou_empty_mask": None if self.iou_empty is None else self.iou_empty.mean_iou,
            "iou_terms": {m: asdict(t) for m, t in self.iou.items()},
            "detection": {m: d.to_dict() for m, d in self.detection.items()},
            # Counts only: the pooled section has the rates and intervals.
            "detection_sweep": [
                {"pixel_threshold": t, **_counts(d)} for t, d in self.detection_sweep.items()
            ],
            "detection_significance": [
                {"min_snr": t, **_counts(d)} for t, d in self.detection_significance.items()
            ],
            "only_network": {"tp": self.only_network[0], "not_above_3sigma": self.only_network[1]},
            "fp_regions_on_contaminant_emission": self.fp_on_contaminant,
            "contaminant_area_fraction": self.contaminant_area_fraction,
            "seconds": self.seconds,
            "notes": self.notes,
        }


def _counts(match: DetectionMatch) -> dict[str, int]:
    """A field's detection counts (its rates and intervals are only worth pooling)."""
    return {
        "tp_sources": match.n_tp,
        "fn_sources": match.n_fn,
        "true_regions": match.n_true_regions,
        "fp_regions": match.n_fp,
    }


def _contaminant_emission(
    sky_jy_pixel: NDArray[np.floating],
    mask: NDArray[np.bool_],
    *,
    beam_sigma_pix: float,
    level_jy_beam: float,
) -> NDArray[np.bool_]:
    """Where the true sky outside the diffuse mask, seen through the beam, exceeds a level.

    Outside the reference mask the diffuse sky is below the truth threshold (far
    below the noise), so what remains is radio galaxies and compact sources.
    The sky (Jy/pixel) is convolved with a circular Gaussian beam normalised to
    unit peak, which gives Jy/beam.
    """
    other = np.where(mask, 0.0, np.nan_to_num(np.asarray(sky_jy_pixel, dtype=np.float64)))
    restored = ndimage.gaussian_filter(other, beam_sigma_pix) * (2 * math.pi * beam_sigma_pix**2)
    return np.asarray(restored > level_jy_beam, dtype=bool)


def _read_plane(path: Path, what: str, shape: tuple[int, int]) -> NDArray[Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with fits.open(path, memmap=False) as hdul:
            data = next((h.data for h in hdul if h.data is not None and h.data.ndim >= 2), None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidImageError(f"{path}: not a readable FITS {what} ({exc})") from exc
    if data is None:
        raise InvalidImageError(f"{path}: no image data in the {what} file")
    arr = np.asarray(data)
    arr = arr.reshape(arr.shape[-2:]) if all(n == 1 for n in arr.shape[:-2]) else arr
    if arr.shape != shape:
        raise InvalidImageError(f"{path}: {what} has shape {arr.shape}, the image {shape}")
    return arr


def _diffuse_labels(spec: FieldSpec) -> dict[int, str]:
    """Label -> class of the field's diffuse sources."""
    out: dict[int, str] = {}
    for s in spec.sources:
        label = int(s.get("label") or 0)
        if label > 0 and s.get("diffuse", True):
            out[label] = str(s.get("class"))
    return out


def _cluster_xy(cluster: dict[str, Any], image: SkyImage) -> tuple[float, float]:
    if cluster.get("x") is not None and cluster.get("y") is not None:
        return float(cluster["x"]), float(cluster["y"])
    return icrs_to_pixel(image.wcs, float(cluster["ra_deg"]), float(cluster["dec_deg"]))


def _radio_galaxy_hosts(spec: FieldSpec, classes: Sequence[str]) -> set[str]:
    return {
        str(s.get("cluster"))
        for s in spec.sources
        if s.get("cluster") is not None and s.get("class") in classes
    }


def _region_centroids(
    probability: NDArray[np.floating], region_map: NDArray[np.int32], regions: Sequence[int]
) -> dict[int, tuple[float, float]]:
    if not regions:
        return {}
    weights = np.nan_to_num(np.asarray(probability, dtype=np.float64), nan=0.0)
    centres = ndimage.center_of_mass(weights, region_map, list(regions))
    return {r: (float(c[1]), float(c[0])) for r, c in zip(regions, centres, strict=True)}


def _match_components(
    components: Sequence[Component],
    sizes: dict[int, int],
    centroids: dict[int, tuple[float, float]],
) -> dict[int, Component]:
    """Region id of each catalogue component (same pixel count, centroid within 0.01 px)."""
    by_size: dict[int, list[int]] = {}
    for r in centroids:
        by_size.setdefault(sizes[r], []).append(r)
    out: dict[int, Component] = {}
    for comp in components:
        for r in by_size.get(comp.n_pixels, []):
            x, y = centroids[r]
            if math.hypot(x - comp.x, y - comp.y) < 1e-2:
                out[r] = comp
                break
    return out


def evaluate_field(
    spec: FieldSpec,
    *,
    predict: Predictor,
    profile: NormalisationProfile,
    threshold: float = PAPER_THRESHOLD,
    use_pybdsf: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[FieldEvaluation, FieldArrays]:
    """Segment one field and measure it (see the module docstring)."""
    image = read_image(spec.path("image"))
    if image.beam_area_pix is None:
        raise InvalidImageError(f"{image.source}: no restoring beam (BMAJ/BMIN) in the header")
    beam_area = float(image.beam_area_pix)
    shape = image.shape
    mask = _read_plane(spec.path("mask"), "mask", shape) != 0
    labels = _read_plane(spec.path("labels"), "labels", shape).astype(np.int32)
    data = np.asarray(image.data, dtype=np.float32)
    image_jy_beam = data * np.float32(image.scale_to("Jy/beam"))

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    probability = segment(
        data, predict, profile, scale=image.scale_to(profile.unit), batch_size=batch_size
    )
    seconds["segment"] = time.perf_counter() - t0
    valid = np.isfinite(probability) & np.isfinite(image_jy_beam)
    if not valid.any():
        raise InvalidImageError(f"{image.source}: no valid pixel in the image and its map")
    with np.errstate(invalid="ignore"):
        network = probability > PROBABILITY_THRESHOLD
    sigma3, rms = sigma_mask(image_jy_beam)

    result = FieldEvaluation(
        id=spec.id,
        dataset=str(spec.dataset.path),
        shape=shape,
        beam_area_pix=beam_area,
        rms_jy_beam=rms,
        rms_manifest=spec.entry.get("rms_jy_beam"),
        n_valid=int(valid.sum()),
        has_emission=bool((mask & valid).any()),
        iou_empty=iou_terms(mask, np.zeros(shape, dtype=bool), valid=valid),
        seconds=seconds,
    )
    masks: dict[str, NDArray[np.bool_]] = {"network": network, "sigma3": sigma3}
    if use_pybdsf:
        t0 = time.perf_counter()
        try:
            masks["pybdsf"] = pybdsf_island_mask(
                spec.path("image"), frequency_hz=spec.dataset.setup.get("freq_hz")
            )
        except PyBDSFError as exc:
            result.notes.append(f"pybdsf: {exc}")
        seconds["pybdsf"] = time.perf_counter() - t0

    diffuse = _diffuse_labels(spec)
    source_labels = sorted(diffuse) if diffuse else None

    def matched(detected: NDArray[np.bool_]) -> DetectionMatch:
        return match_detections(
            detected,
            labels,
            min_pixels=beam_area,
            source_labels=source_labels,
            truth_mask=mask,
            valid=valid,
        )

    for method, detected in masks.items():
        result.iou[method] = iou_terms(mask, detected, valid=valid)
        result.detection[method] = matched(detected)
    net = result.detection["network"]
    result.only_network = exclusive_detections(net, result.detection["sigma3"])
    # The sweep keeps counts only: a region map per threshold and field would add up.
    for t in DETECTION_SWEEP:
        if t == PROBABILITY_THRESHOLD:
            swept = net
        else:
            with np.errstate(invalid="ignore"):
                swept = matched(probability > t)
        result.detection_sweep[t] = replace(swept, region_map=None)
    assert net.region_map is not None
    snr = region_snr(net.region_map, image_jy_beam, rms=rms, beam_area_pix=beam_area)
    for t in DETECTION_MIN_SNR:
        with np.errstate(invalid="ignore"):
            significant = np.flatnonzero(snr >= t)
        kept = matched(np.isin(net.region_map, significant))
        result.detection_significance[t] = replace(kept, region_map=None)

    # False positives on the emission of radio galaxies and compact sources, from the sky model.
    region_map = net.region_map
    assert region_map is not None
    if spec.entry.get("sky"):
        sky = _read_plane(spec.path("sky"), "sky", shape)
        beam = image.beam
        assert beam is not None
        sigma_pix = math.sqrt(beam.bmaj_deg * beam.bmin_deg) * 3600.0 / image.pixel_scale_arcsec
        emission = _contaminant_emission(
            sky, mask, beam_sigma_pix=sigma_pix / math.sqrt(8 * math.log(2)), level_jy_beam=5 * rms
        )
        hit = set(np.unique(region_map[emission]).tolist())
        result.fp_on_contaminant = sum(r.region in hit for r in net.regions if r.false_positive)
        outside = valid & ~mask
        result.contaminant_area_fraction = float(
            int(np.count_nonzero(emission & outside)) / max(1, int(np.count_nonzero(outside)))
        )

    # Clusters: R in 2.2 R500 for the network and for the 3-sigma mask.
    hosts_rg = _radio_galaxy_hosts(spec, CONTAMINANT_CLASSES)
    hosts_extended = _radio_galaxy_hosts(spec, EXTENDED_RADIO_GALAXIES)
    r500_pix: dict[str, float] = {}
    centres: dict[str, tuple[float, float]] = {}
    sigma3_float = np.where(valid, sigma3, np.nan).astype(np.float32)
    for c in spec.clusters:
        cid = str(c.get("id"))
        row: dict[str, Any] = {
            "field": spec.id,
            "cluster": cid,
            "positive": bool(c.get("has_diffuse")),
            "hosts": list(c.get("hosts") or []),
            "radio_galaxy": cid in hosts_rg,
            "extended_radio_galaxy": cid in hosts_extended,
            "z": c.get("z"),
            "theta500_arcmin": c.get("theta500_arcmin"),
        }
        try:
            xy = _cluster_xy(c, image)
            rpix = float(c["theta500_arcmin"]) * 60.0 / image.pixel_scale_arcsec
            radius = DEFAULT_RADIUS_R500 * rpix
            det = detection_ratio(probability, xy, radius, threshold=threshold)
            row.update(
                ratio=det.ratio,
                ratio_sigma3=detection_ratio(sigma3_float, xy, radius).ratio,
                n_pixels=det.n_pixels,
                fraction_in_image=det.fraction_in_image,
                skipped=None,
            )
            r500_pix[cid], centres[cid] = rpix, xy
        except (KeyError, TypeError, ValueError) as exc:
            row.update(ratio=None, ratio_sigma3=None, skipped=" ".join(str(exc).split()))
        result.clusters.append(row)

    # Morphology of the network's true regions, from the component catalogue.
    true_regions = [r for r in net.regions if not r.false_positive and r.best_label > 0]
    if true_regions:
        sizes = {r.region: r.n_pixels for r in net.regions}
        centroids = _region_centroids(probability, region_map, [r.region for r in true_regions])
        per_cluster: dict[str, dict[int, Component]] = {}
        z_of = {str(c.get("id")): c.get("z") for c in spec.clusters}
        for cid, xy in centres.items():
            z = z_of.get(cid)
            comps = find_components(
                probability,
                wcs=image.wcs,
                beam_area_pix=beam_area,
                centre_xy=xy,
                r500_pix=r500_pix[cid],
                z=float(z) if isinstance(z, int | float) and z > 0 else None,
            )
            per_cluster[cid] = _match_components(comps, sizes, centroids)
        bare = _match_components(
            find_components(probability, wcs=image.wcs, beam_area_pix=beam_area), sizes, centroids
        )
        for r in true_regions:
            catalogues = {cid: m[r.region] for cid, m in per_cluster.items() if r.region in m}
            comp = bare.get(r.region)
            if comp is None:  # cannot happen with the same map and beam; be explicit if it does
                result.notes.append(f"region {r.region} not found in the component catalogue")
                continue
            features = nearest_cluster_features(catalogues, elongation=comp.elongation)
            result.components.append(
                {
                    "field": spec.id,
                    "region": r.region,
                    "n_pixels": r.n_pixels,
                    "x": comp.x,
                    "y": comp.y,
                    "label": r.best_label,
                    "true_class": diffuse.get(r.best_label, "unknown"),
                    "predicted_class": classify_morphology(features),
                    **features.to_dict(),
                }
            )

    arrays = FieldArrays(
        id=spec.id,
        image_jy_beam=image_jy_beam,
        mask=mask,
        probability=probability,
        sigma3=sigma3,
        rms_jy_beam=rms,
        clusters=[
            {"id": cid, "xy": centres[cid], "radius_pix": DEFAULT_RADIUS_R500 * r500_pix[cid]}
            for cid in centres
        ],
    )
    return result, arrays


# --- the whole test set ---------------------------------------------------------------------


@dataclass(eq=False)
class Evaluation:
    """The report (JSON-ready) and the maps of the example fields."""

    report: dict[str, Any]
    examples: list[FieldArrays]
    fields: list[FieldEvaluation]


def _segmentation_section(
    fields: Sequence[FieldEvaluation], methods: Sequence[str]
) -> dict[str, Any]:
    def block(pairs: list[tuple[FieldEvaluation, float]]) -> dict[str, Any]:
        values = [v for _, v in pairs]
        emitting = [v for f, v in pairs if f.has_emission]
        return {
            **summarise(values).to_dict(),
            "per_field": values,
            "fields_with_emission": summarise(emitting).to_dict(),
        }

    out: dict[str, Any] = {}
    for m in methods:
        out[m] = block([(f, f.iou[m].mean_iou) for f in fields if m in f.iou])
    # Paired per-field differences: the network minus each baseline, on the fields both have.
    for m in methods:
        if m == "network":
            continue
        common = [f for f in fields if m in f.iou]
        diffs = [f.iou["network"].mean_iou - f.iou[m].mean_iou for f in common]
        out[f"network_minus_{m}"] = {
            **summarise(diffs).to_dict(),
            "network_mean": summarise(f.iou["network"].mean_iou for f in common).mean,
            "baseline_mean": summarise(f.iou[m].mean_iou for f in common).mean,
        }
    # The floor: predicting nothing scores 1 on a field without emission (single-class
    # case) and about 0.5 on one with little.
    out["empty_mask"] = block(
        [(f, f.iou_empty.mean_iou) for f in fields if f.iou_empty is not None]
    )
    out["n_fields_with_emission"] = sum(f.has_emission for f in fields)
    return out


def _detection_section(fields: Sequence[FieldEvaluation], methods: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in methods:
        pooled = DetectionMatch.combine([f.detection[m] for f in fields if m in f.detection])
        out[m] = {**pooled.to_dict(), "n_fields": sum(m in f.detection for f in fields)}
    n_tp = sum(f.only_network[0] for f in fields)
    n_only = sum(f.only_network[1] for f in fields)
    out["only_network"] = {
        "tp_sources": n_tp,
        "not_detected_above_3sigma": n_only,
        "fraction": n_only / n_tp if n_tp else math.nan,
    }
    fp_cont = [f.fp_on_contaminant for f in fields]
    areas = [f.contaminant_area_fraction for f in fields]
    out["network"]["fp_regions_on_contaminant_emission"] = (
        None if any(v is None for v in fp_cont) else sum(v or 0 for v in fp_cont)
    )
    # For judging chance coincidences: the share of the sky outside the mask it covers.
    out["network"]["contaminant_area_fraction"] = (
        None if any(a is None for a in areas) else float(np.mean([a or 0.0 for a in areas]))
    )
    # Diagnostic only (not the paper's rule): is the headline precision a matter of threshold?
    out["network_sweep"] = _pooled_settings(
        "pixel_threshold", DETECTION_SWEEP, [f.detection_sweep for f in fields]
    )
    out["network_significance"] = _pooled_settings(
        "min_snr", DETECTION_MIN_SNR, [f.detection_significance for f in fields]
    )
    return out


def _pooled_settings(
    key: str, settings: Sequence[float], per_field: Sequence[dict[float, DetectionMatch]]
) -> list[dict[str, Any]]:
    """Detection pooled over the fields at each setting (a threshold, a minimum S/N)."""
    return [
        {key: t, **DetectionMatch.combine([m[t] for m in per_field if t in m]).to_dict()}
        for t in settings
    ]


def _classification_section(rows: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    used = [r for r in rows if r.get("ratio") is not None]
    ratios = [float(r["ratio"]) for r in used]
    truth = [bool(r["positive"]) for r in used]
    thresholds = sorted({*default_thresholds().tolist(), float(threshold)})
    out: dict[str, Any] = {
        "threshold": threshold,
        "n_clusters": len(used),
        "n_positive": sum(truth),
        "n_negative": len(truth) - sum(truth),
        "n_skipped": len(rows) - len(used),
        "at_threshold": None,
        "best": None,
        "sweep": [],
        "sigma3": None,
        "false_positive_rate": {},
        "clusters": list(rows),
    }
    if not used:
        return out
    sweep = classification_sweep(ratios, truth, thresholds)
    out["sweep"] = [p.to_dict() for p in sweep]
    out["at_threshold"] = classification_at(ratios, truth, threshold).to_dict()
    out["best"] = best_accuracy(sweep).to_dict()
    s3 = [float(r["ratio_sigma3"]) for r in used]
    s3_sweep = classification_sweep(s3, truth, thresholds)
    out["sigma3"] = {
        "at_threshold": classification_at(s3, truth, threshold).to_dict(),
        "best": best_accuracy(s3_sweep).to_dict(),
        "sweep": [p.to_dict() for p in s3_sweep],
    }
    negatives = [r for r in used if not r["positive"]]
    out["false_positive_rate"] = {
        "negative_with_radio_galaxy": _rate([r for r in negatives if r["radio_galaxy"]], threshold),
        "negative_with_extended_radio_galaxy": _rate(
            [r for r in negatives if r["extended_radio_galaxy"]], threshold
        ),
        "negative_no_radio_galaxy": _rate(
            [r for r in negatives if not r["radio_galaxy"]], threshold
        ),
    }
    out["positive_detection_rate"] = _rate([r for r in used if r["positive"]], threshold)
    return out


def _rate(rows: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    n_det = sum(float(r["ratio"]) >= threshold for r in rows)
    return {"n": len(rows), "n_detected": n_det, "rate": n_det / len(rows) if rows else math.nan}


def _morphology_section(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    scored = [r for r in rows if r["true_class"] in MORPHOLOGY_CLASSES]
    matrix = confusion_matrix(
        [r["true_class"] for r in scored],
        [r["predicted_class"] for r in scored],
        true_classes=MORPHOLOGY_CLASSES,
        predicted_classes=PREDICTED_CLASSES,
    )
    correct = int(sum(matrix[i, i] for i in range(len(MORPHOLOGY_CLASSES))))
    return {
        "rule": DEFAULT_RULE.to_dict(),
        "true_classes": list(MORPHOLOGY_CLASSES),
        "predicted_classes": list(PREDICTED_CLASSES),
        "matrix": matrix.tolist(),
        "n_components": len(scored),
        "n_other_class": len(rows) - len(scored),
        "accuracy": correct / len(scored) if scored else math.nan,
        "components": list(rows),
    }


def evaluate(
    model: ModelVersion,
    data_dirs: Sequence[str | Path],
    *,
    predictor: Predictor | None = None,
    split: str = "test",
    threshold: float = PAPER_THRESHOLD,
    use_pybdsf: bool = True,
    max_fields: int | None = None,
    profile: str | None = None,
    n_examples: int = 3,
    batch_size: int = DEFAULT_BATCH_SIZE,
    command: str | None = None,
    progress: Callable[[list[FieldSpec]], Iterable[FieldSpec]] | None = None,
    allow_training_fields: bool = False,
) -> Evaluation:
    """Evaluate ``model`` on the ``split`` fields of the datasets in ``data_dirs``.

    Parameters
    ----------
    model : ModelVersion
        The model version evaluated (its metadata goes into the report).
    data_dirs : sequence of path
        Dataset folders holding ``manifest.json``.
    predictor : callable, keyword-only
        Tile predictor; by default the model's SavedModel in-process.
    split : str, keyword-only
        Fields evaluated (``"test"``: held out from training by the dataset contract).
    threshold : float, keyword-only
        R threshold of the cluster classification (the sweep covers 0.001-0.5).
    use_pybdsf : bool, keyword-only
        Also compute the PyBDSF baseline (about a second per field and megapixel).
    max_fields : int, keyword-only
        Evaluate at most this many fields.
    profile : str, keyword-only
        Normalisation profile, overriding the automatic choice (:func:`choose_profile`).
    n_examples : int, keyword-only
        Fields whose maps are kept for the example figure.
    command : str, keyword-only
        The command line that reproduces the run, recorded in the report.
    progress : callable, keyword-only
        Wraps the list of fields into the iterable looped over (e.g. a tqdm bar).
    allow_training_fields : bool, keyword-only
        Evaluate fields that trained the model too (a diagnostic; the report
        says so) instead of refusing them.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing or invalid dataset, no field of ``split``, or fields that
        trained the model (:func:`~radiounet.evaluation.calibration.check_not_training_data`)
        unless ``allow_training_fields``.
    """
    from .calibration import check_not_training_data, training_overlaps
    from .report import (
        TRAINING_DATA,
        TRAINING_DATA_NOTE,
        assess_targets,
        paper_reference,
        sanity_checks,
    )

    if not data_dirs:
        raise ValueError(f"give at least one dataset folder, got {list(data_dirs)!r}")
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    if n_examples < 0:
        raise ValueError(f"n_examples must be non-negative, got {n_examples!r}")
    datasets = [load_dataset(d) for d in data_dirs]
    specs = require_fields(datasets, split=split, max_fields=max_fields)
    if not allow_training_fields:
        check_not_training_data(
            model,
            specs,
            consequence="scores on them are not held-out figures: use held-out fields "
            "(--split test) or another dataset, or --allow-training-fields for a diagnostic",
        )
    overlaps = training_overlaps(model, specs)
    chosen, reason = choose_profile(
        model.metadata.profile, [str(d.setup.get("name")) for d in datasets], profile
    )
    warnings = [f"{TRAINING_DATA}: {o.sentence()}" for o in overlaps]
    if use_pybdsf and not pybdsf_available():
        warnings.append("PyBDSF (package bdsf) is not installed: the PyBDSF baseline is skipped")
        use_pybdsf = False
    if predictor is None:
        from ..model.predictor import SavedModelPredictor

        predictor = SavedModelPredictor(model)

    started = datetime.now(UTC)
    results: list[FieldEvaluation] = []
    examples: list[FieldArrays] = []
    for spec in progress(specs) if progress is not None else specs:
        res, arrays = evaluate_field(
            spec,
            predict=predictor,
            profile=chosen,
            threshold=threshold,
            use_pybdsf=use_pybdsf,
            batch_size=batch_size,
        )
        results.append(res)
        if len(examples) < n_examples:
            examples.append(arrays)
        warnings.extend(f"{spec.id}: {n}" for n in res.notes)

    methods = [m for m in METHODS if any(m in f.iou for f in results)]
    meta = model.metadata
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "created": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": f"radiounet {__version__}",
        "command": command,
        # Near the top: fields that trained the model (allow_training_fields) make
        # every number below a diagnostic on training data, not a held-out figure.
        "training_data": (
            {"note": TRAINING_DATA_NOTE, "fields": [o.to_dict() for o in overlaps]}
            if overlaps
            else None
        ),
        "model": {
            "name": model.name,
            "version": model.version,
            "path": str(model.path),
            "trained": meta.trained,
            "placeholder": not meta.trained,
            "metadata": asdict(meta),
        },
        "profile": {
            "name": chosen.name,
            "vmin": chosen.vmin,
            "vmax": chosen.vmax,
            "unit": chosen.unit,
            "chosen_from": reason,
        },
        "datasets": [d.summary() for d in datasets],
        "split": split,
        "n_fields": len(results),
        "fields_evaluated": [f.id for f in results],
        "methods": methods,
        "pybdsf": {
            "requested": use_pybdsf,
            "n_fields": sum("pybdsf" in f.iou for f in results),
            "parameters": {"thresh_isl": 3.0, "thresh_pix": 5.0, "stop_at": "isl"},
        },
        "probability_threshold": PROBABILITY_THRESHOLD,
        "segmentation": _segmentation_section(results, methods),
        "detection": _detection_section(results, methods),
        "classification": _classification_section(
            [row for f in results for row in f.clusters], threshold
        ),
        "morphology": _morphology_section([row for f in results for row in f.components]),
        "fields": [f.to_dict() for f in results],
        "seconds": {
            "segment": sum(f.seconds.get("segment", 0.0) for f in results),
            "pybdsf": sum(f.seconds.get("pybdsf", 0.0) for f in results),
        },
        "warnings": warnings,
    }
    report["reference"] = paper_reference()
    report["targets"] = assess_targets(report)
    report["sanity"] = sanity_checks(report)
    return Evaluation(report=report, examples=examples, fields=results)
