"""Metrics of Stuardi et al. (2024, Secs. 5 and 6.2), pure functions on arrays (no I/O).

Definitions (the paper leaves some details open; these are the choices made here):

Segmentation, mean IoU (eq. 5)
    With T1/T0 the pixels correctly predicted 1/0 and F1/F0 those wrongly
    predicted 1/0, ``IoU = 0.5 (T0 / (T0 + F0 + F1) + T1 / (T1 + F1 + F0))``,
    per image, over the valid (finite) pixels only. A class present in neither
    the reference nor the prediction has an empty union (0/0); it is left out
    and the metric is the other class's IoU (the paper's single-class
    simplification). Images are averaged with equal weight; the uncertainty is
    the standard error of the mean (sample standard deviation / sqrt(n)).

Detection (Sec. 5)
    A *source* is a diffuse source of the sky model: its footprint is the set
    of pixels of the labels map equal to its label. Only sources whose
    footprint has at least ``min_pixels`` (one beam, the resolution element)
    valid pixels are *counted*; the others (cut by the border, or too faint to
    reach the truth threshold over a beam) can never be detected and are
    reported as skipped. A counted source is a true positive (TP) when at
    least ``min_pixels`` of its footprint pixels are detected (probability >
    0.5 for the network), otherwise a false negative (FN). A *region* is an
    8-connected component of detected pixels with at least ``min_pixels``
    pixels (smaller ones are ignored, as in the component catalogue). A region
    overlapping no pixel of the reference mask is a false positive (FP); one
    overlapping it is a true region.

    ``recall = TP sources / counted sources`` and
    ``precision = true regions / all regions`` (each reported detection is
    judged once: precision measures the purity of what a user would be shown).
    ``precision_sources = TP sources / (TP sources + FP regions)`` mixes the
    two counts as eq. 6 literally does with the paper's TP; both are reported,
    the first is the headline.

    A region's significance (:func:`region_snr`) is its integrated flux density
    over the noise term ``rms * sqrt(n_beams)``, as in the component catalogue.

Classification (Sec. 6.2)
    A cluster is predicted positive when ``R >= threshold`` (as
    :func:`radiounet.core.detection.detection_ratio`). Accuracy, precision and
    recall follow eqs. 6-7; a ratio with an empty denominator is NaN. A model
    version's own threshold is calibrated by :func:`calibrated_threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ..core.noise import flux_uncertainty_jy

__all__ = [
    "MIN_CALIBRATION_CLUSTERS",
    "PAPER_THRESHOLD",
    "ClassificationPoint",
    "DetectionMatch",
    "IoUTerms",
    "RegionMatch",
    "SourceDetection",
    "Summary",
    "ThresholdChoice",
    "best_accuracy",
    "calibrated_threshold",
    "classification_at",
    "classification_sweep",
    "confusion_matrix",
    "default_thresholds",
    "exclusive_detections",
    "iou_terms",
    "match_detections",
    "mean_iou",
    "region_snr",
    "summarise",
    "wilson_interval",
]

#: R threshold of maximum accuracy on LoTSS-DR2/PSZ2 (Sec. 6.2), always in the sweep.
PAPER_THRESHOLD = 0.015
#: Fewest clusters :func:`calibrated_threshold` accepts.
MIN_CALIBRATION_CLUSTERS = 6

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else math.nan


def _bool_map(name: str, value: ArrayLike) -> NDArray[np.bool_]:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be boolean or numeric, got dtype {arr.dtype}")
        arr = arr != 0
    return arr


def _same_shape(reference: NDArray[Any], **others: NDArray[Any] | None) -> None:
    for name, arr in others.items():
        if arr is not None and arr.shape != reference.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {reference.shape}")


# --- segmentation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IoUTerms:
    """Pixel counts of eq. 5: true 0/1 and false 0/1 (``f1``: predicted 1, truth 0)."""

    t0: int
    t1: int
    f0: int
    f1: int

    @property
    def iou0(self) -> float:
        """IoU of class 0 (NaN when class 0 is in neither map)."""
        return _ratio(self.t0, self.t0 + self.f0 + self.f1)

    @property
    def iou1(self) -> float:
        """IoU of class 1 (NaN when class 1 is in neither map)."""
        return _ratio(self.t1, self.t1 + self.f1 + self.f0)

    @property
    def mean_iou(self) -> float:
        """Eq. 5, over the classes present in the reference or the prediction."""
        present = [v for v in (self.iou0, self.iou1) if not math.isnan(v)]
        return sum(present) / len(present) if present else math.nan


def iou_terms(
    truth: ArrayLike, predicted: ArrayLike, *, valid: ArrayLike | None = None
) -> IoUTerms:
    """Count T0, T1, F0 and F1 of a binary prediction against a binary reference.

    Parameters
    ----------
    truth, predicted : array_like
        2-D masks of one shape (bool, or numeric with non-zero meaning 1).
    valid : array_like, keyword-only
        Pixels to count (e.g. where the probability map is finite); all by default.
    """
    t = _bool_map("truth", truth)
    p = _bool_map("predicted", predicted)
    v = None if valid is None else _bool_map("valid", valid)
    _same_shape(t, predicted=p, valid=v)
    if v is not None:
        t, p = t[v], p[v]
    t1 = int(np.count_nonzero(t & p))
    f1 = int(np.count_nonzero(~t & p))
    f0 = int(np.count_nonzero(t & ~p))
    t0 = int(t.size) - t1 - f1 - f0
    return IoUTerms(t0=t0, t1=t1, f0=f0, f1=f1)


def mean_iou(truth: ArrayLike, predicted: ArrayLike, *, valid: ArrayLike | None = None) -> float:
    """Mean IoU of eq. 5 for one image (NaN only when no pixel is valid).

    Examples
    --------
    >>> t = np.zeros((4, 4), bool); t[:2] = True
    >>> mean_iou(t, t)
    1.0
    >>> p = np.zeros((4, 4), bool); p[:1] = True  # half of the 1s found, no false 1
    >>> mean_iou(t, p)  # 0.5 * (8/12 + 4/8)
    0.5833333333333333
    >>> mean_iou(np.zeros((4, 4)), np.zeros((4, 4)))  # only class 0: its IoU
    1.0
    """
    return iou_terms(truth, predicted, valid=valid).mean_iou


@dataclass(frozen=True)
class Summary:
    """Mean and standard error of per-image values (NaNs dropped)."""

    mean: float
    sem: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sem": self.sem, "n": self.n}


def summarise(values: Iterable[float]) -> Summary:
    """Mean ± standard error (sample std / sqrt(n)); ``sem`` is NaN for fewer than two values.

    Examples
    --------
    >>> s = summarise([0.6, 0.7, float("nan"), 0.8])
    >>> round(s.mean, 6), round(s.sem, 6), s.n
    (0.7, 0.057735, 3)
    """
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return Summary(math.nan, math.nan, 0)
    sem = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return Summary(float(arr.mean()), sem, int(arr.size))


# --- detection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDetection:
    """How one sky-model source fared.

    Attributes
    ----------
    label : int
        The source's value in the labels map.
    n_footprint : int
        Valid pixels of its footprint.
    n_detected : int
        Footprint pixels that are detected.
    counted : bool
        ``n_footprint >= min_pixels``: the source enters recall.
    detected : bool
        Counted and ``n_detected >= min_pixels`` (a TP); counted and not detected is a FN.
    """

    label: int
    n_footprint: int
    n_detected: int
    counted: bool
    detected: bool


@dataclass(frozen=True)
class RegionMatch:
    """One detected region (8-connected, at least ``min_pixels`` pixels).

    Attributes
    ----------
    region : int
        Its value in :attr:`DetectionMatch.region_map`.
    n_pixels : int
        Its size.
    n_truth : int
        Its pixels inside the reference mask; 0 makes it a false positive.
    best_label : int
        Source label it overlaps most (0 when it overlaps no labelled pixel);
        ties go to the smaller label.
    """

    region: int
    n_pixels: int
    n_truth: int
    best_label: int

    @property
    def false_positive(self) -> bool:
        return self.n_truth == 0


@dataclass(frozen=True, eq=False)
class DetectionMatch:
    """Sources and regions of one map (or several, via :meth:`combine`), with the counts."""

    sources: tuple[SourceDetection, ...]
    regions: tuple[RegionMatch, ...]
    min_pixels: float
    region_map: NDArray[np.int32] | None = None

    @property
    def n_counted(self) -> int:
        return sum(s.counted for s in self.sources)

    @property
    def n_skipped(self) -> int:
        return sum(not s.counted for s in self.sources)

    @property
    def n_tp(self) -> int:
        """Detected sources."""
        return sum(s.detected for s in self.sources)

    @property
    def n_fn(self) -> int:
        return self.n_counted - self.n_tp

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    @property
    def n_fp(self) -> int:
        """Regions without counterpart in the reference mask."""
        return sum(r.false_positive for r in self.regions)

    @property
    def n_true_regions(self) -> int:
        return self.n_regions - self.n_fp

    @property
    def recall(self) -> float:
        return _ratio(self.n_tp, self.n_counted)

    @property
    def precision(self) -> float:
        """True regions over all regions (the headline precision)."""
        return _ratio(self.n_true_regions, self.n_regions)

    @property
    def precision_sources(self) -> float:
        """TP sources / (TP sources + FP regions), eq. 6 with the paper's TP."""
        return _ratio(self.n_tp, self.n_tp + self.n_fp)

    def detected_labels(self) -> frozenset[int]:
        return frozenset(s.label for s in self.sources if s.detected)

    @staticmethod
    def combine(matches: Sequence[DetectionMatch]) -> DetectionMatch:
        """Pool the sources and regions of several maps (totals, as over a test set)."""
        if not matches:
            return DetectionMatch((), (), math.nan)
        sizes = {m.min_pixels for m in matches}
        return DetectionMatch(
            tuple(s for m in matches for s in m.sources),
            tuple(r for m in matches for r in m.regions),
            sizes.pop() if len(sizes) == 1 else math.nan,
        )

    def to_dict(self) -> dict[str, Any]:
        """Counts and rates (JSON-friendly; the maps are left out)."""
        lo_p, hi_p = wilson_interval(self.n_true_regions, self.n_regions)
        lo_r, hi_r = wilson_interval(self.n_tp, self.n_counted)
        return {
            "n_sources_counted": self.n_counted,
            "n_sources_skipped": self.n_skipped,
            "tp_sources": self.n_tp,
            "fn_sources": self.n_fn,
            "n_regions": self.n_regions,
            "true_regions": self.n_true_regions,
            "fp_regions": self.n_fp,
            "precision": self.precision,
            "precision_interval95": [lo_p, hi_p],
            "precision_sources": self.precision_sources,
            "recall": self.recall,
            "recall_interval95": [lo_r, hi_r],
        }


def match_detections(
    detected: ArrayLike,
    labels: ArrayLike,
    *,
    min_pixels: float,
    source_labels: Iterable[int] | None = None,
    truth_mask: ArrayLike | None = None,
    valid: ArrayLike | None = None,
) -> DetectionMatch:
    """Match a binary detection map to the sky model's sources (see the module docstring).

    Parameters
    ----------
    detected : array_like
        2-D detection mask (e.g. ``probability > 0.5``).
    labels : array_like
        2-D integer map of the sources' footprints (0 = no diffuse source).
    min_pixels : float, keyword-only
        The resolution element in pixels (the beam area), > 0.
    source_labels : iterable of int, keyword-only
        The sky model's diffuse sources; by default the non-zero values of
        ``labels``. A listed source absent from the map is skipped.
    truth_mask : array_like, keyword-only
        Reference mask judging the regions; ``labels > 0`` by default.
    valid : array_like, keyword-only
        Pixels that count (finite map); all by default. Invalid pixels are
        never detected and not part of any footprint.

    Returns
    -------
    DetectionMatch
        With ``region_map`` holding the kept regions (other pixels 0).

    Examples
    --------
    >>> labels = np.zeros((20, 20), int); labels[2:6, 2:6] = 1; labels[10:12, 10:12] = 2
    >>> det = np.zeros((20, 20), bool); det[2:6, 2:5] = True; det[15:19, 15:19] = True
    >>> m = match_detections(det, labels, min_pixels=4.0)
    >>> m.n_tp, m.n_fn, m.n_fp, m.n_skipped, m.precision, m.recall
    (1, 1, 1, 0, 0.5, 0.5)
    """
    if not (isinstance(min_pixels, int | float) and math.isfinite(min_pixels) and min_pixels > 0):
        raise ValueError(f"min_pixels must be a positive number, got {min_pixels!r}")
    det = _bool_map("detected", detected)
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            f"labels must be a 2-D integer array, got {lab.dtype} of shape {lab.shape}"
        )
    truth = (lab > 0) if truth_mask is None else _bool_map("truth_mask", truth_mask)
    v = None if valid is None else _bool_map("valid", valid)
    _same_shape(det, labels=lab, truth_mask=truth, valid=v)
    if v is not None:
        det = det & v
        lab = np.where(v, lab, 0)
        truth = truth & v

    ids = (
        sorted({int(k) for k in np.unique(lab) if k > 0})
        if source_labels is None
        else sorted({int(k) for k in source_labels})
    )
    if any(k <= 0 for k in ids):
        raise ValueError(f"source_labels must be positive integers, got {ids!r}")
    top = max([int(lab.max(initial=0)), *ids]) + 1
    footprint = np.bincount(lab[lab > 0].ravel(), minlength=top)
    hits = np.bincount(lab[(lab > 0) & det].ravel(), minlength=top)
    sources = tuple(
        SourceDetection(
            label=k,
            n_footprint=int(footprint[k]),
            n_detected=int(hits[k]),
            counted=bool(footprint[k] >= min_pixels),
            detected=bool(footprint[k] >= min_pixels and hits[k] >= min_pixels),
        )
        for k in ids
    )

    region_map, n = ndimage.label(det, structure=_EIGHT_CONNECTED)
    region_map = region_map.astype(np.int32, copy=False)
    regions: list[RegionMatch] = []
    if n:
        sizes = np.bincount(region_map.ravel(), minlength=n + 1)
        in_truth = np.bincount(region_map[truth].ravel(), minlength=n + 1)
        small = sizes < min_pixels
        small[0] = False
        region_map[small[region_map]] = 0
        # Overlap of each region with each source label, from the pixels both cover.
        both = (region_map > 0) & (lab > 0)
        pairs = np.stack([region_map[both], lab[both]], axis=1)
        best: dict[int, int] = {}
        if pairs.size:
            uniq, counts = np.unique(pairs, axis=0, return_counts=True)
            # Sort by region, then count descending, then label ascending.
            order = np.lexsort((uniq[:, 1], -counts, uniq[:, 0]))
            for r, k in uniq[order]:
                best.setdefault(int(r), int(k))
        for r in range(1, n + 1):
            if not small[r]:
                regions.append(
                    RegionMatch(
                        region=r,
                        n_pixels=int(sizes[r]),
                        n_truth=int(in_truth[r]),
                        best_label=best.get(r, 0),
                    )
                )
    return DetectionMatch(sources, tuple(regions), float(min_pixels), region_map)


def region_snr(
    region_map: ArrayLike, image: ArrayLike, *, rms: float, beam_area_pix: float
) -> NDArray[np.float64]:
    """Significance of each region's integrated emission, indexed by region value.

    ``image`` is in units per beam (e.g. Jy/beam) and ``rms`` in the same unit;
    entry 0 and values absent from the map are NaN, as are regions over
    non-finite image pixels.

    Examples
    --------
    >>> regions = np.array([[1, 1, 0, 2]]); image = np.array([[2.0, 2.0, 9.0, -1.0]])
    >>> np.round(region_snr(regions, image, rms=1.0, beam_area_pix=2.0), 3).tolist()
    [nan, 2.0, -0.707]
    """
    reg = np.asarray(region_map)
    img = np.asarray(image, dtype=np.float64)
    if reg.ndim != 2 or not np.issubdtype(reg.dtype, np.integer) or (reg < 0).any():
        raise ValueError("region_map must be a 2-D map of non-negative integers")
    _same_shape(reg, image=img)
    top = int(reg.max(initial=0)) + 1
    inside = reg > 0
    n = np.bincount(reg[inside], minlength=top).astype(np.float64)
    total = np.bincount(reg[inside], weights=img[inside], minlength=top)
    err = flux_uncertainty_jy(n, rms_jy_beam=rms, beam_area_pix=beam_area_pix)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(n > 0, total / beam_area_pix / err, np.nan)
    snr[0] = np.nan
    return snr


def exclusive_detections(primary: DetectionMatch, other: DetectionMatch) -> tuple[int, int]:
    """Sources detected by ``primary`` but not by ``other``: ``(n primary TP, n exclusive)``.

    Both matches must cover the same sources (e.g. the network's map and the
    3-sigma mask of one image). With ``other`` the 3-sigma mask this is the
    paper's "TP only visible to the network" (35%).
    """
    theirs = {s.label: s.detected for s in other.sources}
    if set(theirs) != {s.label for s in primary.sources}:
        raise ValueError(
            f"the matches cover different sources: {sorted(s.label for s in primary.sources)!r} "
            f"and {sorted(theirs)!r}"
        )
    tp = [s.label for s in primary.sources if s.detected]
    return len(tp), sum(not theirs[k] for k in tp)


def wilson_interval(successes: int, trials: int, *, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); NaNs for no trials.

    Examples
    --------
    >>> [round(v, 3) for v in wilson_interval(6, 7)]
    [0.487, 0.974]
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes!r} of {trials!r}")
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    den = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


# --- cluster classification -----------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationPoint:
    """Binary classification of clusters at one R threshold."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.n)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def false_positive_rate(self) -> float:
        """Negatives classified positive, over all negatives."""
        return _ratio(self.fp, self.fp + self.tn)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
        }


def _ratios_and_truth(
    ratios: ArrayLike, positives: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    r = np.asarray(ratios, dtype=np.float64).ravel()
    t = np.asarray(positives, dtype=bool).ravel()
    if r.shape != t.shape:
        raise ValueError(f"ratios and positives differ in length: {r.size} and {t.size}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"ratios must be finite, got {r[~np.isfinite(r)].tolist()!r}")
    return r, t


def classification_at(
    ratios: ArrayLike, positives: ArrayLike, threshold: float
) -> ClassificationPoint:
    """Confusion counts of ``R >= threshold`` against the truth.

    Examples
    --------
    >>> p = classification_at([0.001, 0.02, 0.3, 0.01], [False, True, True, True], 0.015)
    >>> p.tp, p.fp, p.tn, p.fn, p.accuracy
    (2, 0, 1, 1, 0.75)
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    r, t = _ratios_and_truth(ratios, positives)
    pred = r >= threshold
    return ClassificationPoint(
        threshold=float(threshold),
        tp=int(np.count_nonzero(pred & t)),
        fp=int(np.count_nonzero(pred & ~t)),
        tn=int(np.count_nonzero(~pred & ~t)),
        fn=int(np.count_nonzero(~pred & t)),
    )


def default_thresholds(n: int = 40) -> NDArray[np.float64]:
    """``n`` log-spaced R thresholds from 0.001 to 0.5, plus the paper's 0.015, sorted."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n!r}")
    return np.unique(np.append(np.logspace(-3, math.log10(0.5), n), PAPER_THRESHOLD))


def classification_sweep(
    ratios: ArrayLike, positives: ArrayLike, thresholds: ArrayLike | None = None
) -> list[ClassificationPoint]:
    """Accuracy, precision and recall against the R threshold (Fig. 6, bottom)."""
    ts = default_thresholds() if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    return [classification_at(ratios, positives, float(t)) for t in np.sort(ts.ravel())]


def best_accuracy(points: Sequence[ClassificationPoint]) -> ClassificationPoint:
    """The point of maximum accuracy; ties go to the lowest threshold.

    Note that a threshold picked on the test set itself flatters the accuracy.
    """
    valid = [p for p in points if not math.isnan(p.accuracy)]
    if not valid:
        raise ValueError(f"no classification point with a defined accuracy among {len(points)}")
    return max(sorted(valid, key=lambda p: p.threshold), key=lambda p: p.accuracy)


@dataclass(frozen=True)
class ThresholdChoice:
    """A calibrated R threshold: the classification it gives and its distance to the data.

    Attributes
    ----------
    point : ClassificationPoint
        Counts and rates at the threshold (``point.threshold``).
    margin : float
        Distance from the threshold to the nearest calibration R, in dex
        (``log10`` of the ratio; a geometric midpoint is as far from both).
    n_candidates : int
        Thresholds considered (geometric midpoints between consecutive distinct R).
    n_best : int
        Candidates that reach the maximum accuracy (1: no tie).
    """

    point: ClassificationPoint
    margin: float
    n_candidates: int
    n_best: int

    @property
    def threshold(self) -> float:
        return self.point.threshold


def calibrated_threshold(ratios: ArrayLike, positives: ArrayLike) -> ThresholdChoice:
    """The R threshold of maximum accuracy on calibration clusters with known truth.

    Candidates are the geometric midpoints ``sqrt(lo * hi)`` between consecutive
    distinct R values (R spans decades, so "halfway" is a ratio, not a
    difference; above an R of 0 the candidate is ``hi / 2``). So the threshold
    never sits on a calibration cluster and every candidate splits the clusters
    into two non-empty groups (a threshold that calls every cluster diffuse, or
    none, is not a classifier). Among candidates of equal accuracy the one
    farthest from its nearest R in dex wins, then the lowest.

    Raises
    ------
    ValueError
        With fewer than :data:`MIN_CALIBRATION_CLUSTERS` clusters, no cluster
        with or without emission, fewer than two distinct R values, or R
        outside [0, 1] or not finite.

    Examples
    --------
    >>> c = calibrated_threshold([0.001, 0.002, 0.004, 0.02, 0.03, 0.05],
    ...                          [False, False, False, True, True, True])
    >>> round(c.threshold, 6), c.point.accuracy, round(c.margin, 3)
    (0.008944, 1.0, 0.349)
    """
    r, t = _ratios_and_truth(ratios, positives)
    if r.size < MIN_CALIBRATION_CLUSTERS:
        raise ValueError(
            f"need at least {MIN_CALIBRATION_CLUSTERS} calibration clusters, got {r.size}"
        )
    n_pos = int(np.count_nonzero(t))
    if n_pos == 0 or n_pos == r.size:
        which = "with" if n_pos == 0 else "without"
        raise ValueError(
            f"no calibration cluster {which} diffuse emission among {r.size}: "
            "the threshold between the two classes cannot be placed"
        )
    if r.min() < 0.0 or r.max() > 1.0:
        raise ValueError(f"ratios must lie in [0, 1], got {r.min()!r} to {r.max()!r}")
    levels = np.unique(r)
    lo, hi = levels[:-1], levels[1:]
    mids = np.where(lo > 0, np.sqrt(lo * hi), hi / 2)
    # Neighbouring floats have no float strictly between them: such a gap holds no candidate.
    keep = (mids > lo) & (mids < hi)
    with np.errstate(divide="ignore"):
        margins = np.minimum(np.log10(mids / lo), np.log10(hi / mids))
    mids, margins = mids[keep], margins[keep]
    if mids.size == 0:
        raise ValueError(
            f"the {r.size} calibration clusters have {levels.size} distinct R value(s): "
            "no threshold can separate them"
        )
    # Positives at each candidate from the sorted R (one pass, not one per candidate).
    order = np.argsort(r, kind="stable")
    r_sorted, t_sorted = r[order], t[order]
    pos_at_or_above = np.concatenate([np.cumsum(t_sorted[::-1])[::-1], [0]])
    first_above = np.searchsorted(r_sorted, mids, side="left")
    tp = pos_at_or_above[first_above]
    fp = (r.size - first_above) - tp
    correct = tp + (r.size - n_pos - fp)
    best = correct == correct.max()
    # Widest margin among the best, then the lowest threshold (argmax takes the first).
    k = int(np.argmax(np.where(best, margins, -np.inf)))
    return ThresholdChoice(
        point=classification_at(r, t, float(mids[k])),
        margin=float(margins[k]),
        n_candidates=int(mids.size),
        n_best=int(np.count_nonzero(best)),
    )


# --- confusion matrix -----------------------------------------------------------------------


def confusion_matrix(
    true: Sequence[str],
    predicted: Sequence[str],
    *,
    true_classes: Sequence[str],
    predicted_classes: Sequence[str],
) -> NDArray[np.int64]:
    """Counts ``[i, j]`` of items of class ``true_classes[i]`` labelled ``predicted_classes[j]``.

    Examples
    --------
    >>> confusion_matrix(["halo", "relic", "relic"], ["halo", "halo", "relic"],
    ...                  true_classes=["halo", "relic"], predicted_classes=["halo", "relic"])
    array([[1, 0],
           [1, 1]])
    """
    if len(true) != len(predicted):
        raise ValueError(f"true and predicted differ in length: {len(true)} and {len(predicted)}")
    rows = {c: i for i, c in enumerate(true_classes)}
    cols = {c: j for j, c in enumerate(predicted_classes)}
    out = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for t, p in zip(true, predicted, strict=True):
        if t not in rows:
            raise ValueError(f"true class {t!r} not in true_classes {list(true_classes)!r}")
        if p not in cols:
            raise ValueError(
                f"predicted class {p!r} not in predicted_classes {list(predicted_classes)!r}"
            )
        out[rows[t], cols[p]] += 1
    return out
