"""Tests for radiounet.evaluation.metrics: eq. 5, the detection rule, the R sweep, the matrix."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from radiounet.evaluation.metrics import (
    MIN_CALIBRATION_CLUSTERS,
    PAPER_THRESHOLD,
    DetectionMatch,
    best_accuracy,
    calibrated_threshold,
    classification_at,
    classification_sweep,
    confusion_matrix,
    default_thresholds,
    exclusive_detections,
    iou_terms,
    match_detections,
    mean_iou,
    region_snr,
    summarise,
    wilson_interval,
)

# --- mean IoU (eq. 5) -----------------------------------------------------------------------


def test_perfect_segmentation_is_one() -> None:
    truth = np.zeros((10, 10), bool)
    truth[2:5, 3:8] = True
    assert mean_iou(truth, truth) == 1.0


def test_disjoint_masks_by_hand() -> None:
    truth = np.zeros((10, 10), bool)
    truth[0:2] = True  # 20 pixels
    pred = np.zeros((10, 10), bool)
    pred[5:8] = True  # 30 pixels, no overlap
    terms = iou_terms(truth, pred)
    assert (terms.t0, terms.t1, terms.f0, terms.f1) == (50, 0, 20, 30)
    # 0.5 * (50 / (50 + 20 + 30) + 0 / (0 + 30 + 20))
    assert mean_iou(truth, pred) == pytest.approx(0.25)


def test_partial_overlap_by_hand() -> None:
    truth = np.zeros((10, 10), bool)
    truth[0:4] = True  # 40
    pred = np.zeros((10, 10), bool)
    pred[2:6] = True  # 40, 20 shared
    # T1 = 20, F1 = 20, F0 = 20, T0 = 40
    assert mean_iou(truth, pred) == pytest.approx(0.5 * (40 / 80 + 20 / 60))


def test_single_class_simplification() -> None:
    empty = np.zeros((10, 10), bool)
    full = np.ones((10, 10), bool)
    # Only class 0 anywhere: its IoU, 1 (the 0/0 class-1 term is left out).
    assert mean_iou(empty, empty) == 1.0
    # Only class 1 anywhere.
    assert mean_iou(full, full) == 1.0
    # A false detection on an empty reference: class 1 is present in the prediction, IoU 0.
    pred = empty.copy()
    pred[0] = True
    assert mean_iou(empty, pred) == pytest.approx(0.5 * (90 / 100 + 0.0))
    assert mean_iou(full, empty) == 0.0


def test_valid_pixels_only_and_numeric_masks() -> None:
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = 1
    pred = truth.astype(np.float32)
    pred[3, 3] = 1.0  # a false 1 ...
    valid = np.ones((4, 4), bool)
    valid[3, 3] = False  # ... on an invalid pixel
    assert mean_iou(truth, pred, valid=valid) == 1.0
    assert mean_iou(truth, pred) < 1.0
    assert math.isnan(mean_iou(truth, pred, valid=np.zeros((4, 4), bool)))


def test_iou_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"predicted has shape \(3, 3\)"):
        mean_iou(np.zeros((4, 4)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="truth must be a 2-D array, got shape"):
        mean_iou(np.zeros(4), np.zeros(4))


def test_summarise_mean_and_standard_error() -> None:
    s = summarise([0.5, 0.7, math.nan])
    assert s.n == 2
    assert s.mean == pytest.approx(0.6)
    assert s.sem == pytest.approx(np.std([0.5, 0.7], ddof=1) / math.sqrt(2))
    one = summarise([0.3])
    assert (one.mean, one.n) == (0.3, 1) and math.isnan(one.sem)
    assert summarise([]).n == 0


# --- detection ------------------------------------------------------------------------------


def detection_scene() -> tuple[np.ndarray, np.ndarray]:
    """Labels of three sources and a map detecting: 1 fully, 2 on 9 px, a 12-px blob on nothing.

    Source 3 has a 5-px footprint, under the 10.2-px beam: it cannot be counted.
    """
    labels = np.zeros((60, 60), np.int16)
    labels[5:15, 5:15] = 1  # 100 px
    labels[30:40, 30:40] = 2  # 100 px
    labels[50, 5:10] = 3  # 5 px
    detected = np.zeros((60, 60), bool)
    detected[4:16, 4:16] = True  # covers source 1 (and a rim outside it)
    detected[30:33, 30:33] = True  # 9 px of source 2: fewer than a beam
    detected[45:48, 40:44] = True  # 12 px without counterpart: a FP
    detected[55, 55] = True  # 1 px: too small to be a region
    return labels, detected


def test_detection_counts_on_a_constructed_map() -> None:
    labels, detected = detection_scene()
    m = match_detections(detected, labels, min_pixels=10.2)
    by_label = {s.label: s for s in m.sources}
    assert by_label[1].detected and by_label[1].n_detected == 100
    assert by_label[2].counted and not by_label[2].detected and by_label[2].n_detected == 9
    assert not by_label[3].counted and by_label[3].n_footprint == 5
    assert (m.n_tp, m.n_fn, m.n_skipped, m.n_counted) == (1, 1, 1, 2)
    # Regions of at least 10.2 px: the 144-px one on source 1 and the 12-px FP.
    # The 9-px detection of source 2 is below a beam, as is the single pixel.
    assert m.n_regions == 2
    assert m.n_fp == 1 and m.n_true_regions == 1
    assert m.recall == 0.5
    assert m.precision == 0.5
    assert m.precision_sources == 0.5
    fp = next(r for r in m.regions if r.false_positive)
    assert fp.n_pixels == 12 and fp.best_label == 0
    true = next(r for r in m.regions if not r.false_positive)
    assert true.best_label == 1 and true.n_truth == 100 and true.n_pixels == 144
    assert m.region_map is not None
    assert set(np.unique(m.region_map)) == {0, true.region, fp.region}


def test_one_more_pixel_makes_the_true_positive() -> None:
    labels, detected = detection_scene()
    detected[33, 30:32] = True  # 11 px of source 2 now
    m = match_detections(detected, labels, min_pixels=10.2)
    assert m.n_tp == 2 and m.n_fn == 0 and m.recall == 1.0


def test_reference_mask_as_detection_is_perfect() -> None:
    labels, _ = detection_scene()
    truth = labels > 0
    m = match_detections(truth, labels, min_pixels=10.2)
    assert (m.precision, m.recall, m.n_fp) == (1.0, 1.0, 0)
    assert mean_iou(truth, truth) == 1.0


def test_region_is_matched_to_the_source_it_overlaps_most() -> None:
    labels = np.zeros((30, 30), np.int16)
    labels[5:10, 5:10] = 4  # 25 px
    labels[5:10, 10:20] = 7  # 50 px
    detected = labels > 0
    m = match_detections(detected, labels, min_pixels=4)
    (region,) = m.regions
    assert region.best_label == 7 and region.n_truth == 75
    assert m.n_tp == 2


def test_listed_sources_absent_from_the_map_are_skipped_and_valid_mask_applies() -> None:
    labels, detected = detection_scene()
    m = match_detections(detected, labels, min_pixels=10.2, source_labels=[1, 2, 9])
    assert {s.label for s in m.sources} == {1, 2, 9}
    assert next(s for s in m.sources if s.label == 9).n_footprint == 0
    assert m.n_skipped == 1 and m.n_counted == 2
    # Blanking the left half removes source 1 (and its region) and source 3.
    valid = np.ones(labels.shape, bool)
    valid[:, :20] = False
    m = match_detections(detected, labels, min_pixels=10.2, valid=valid)
    assert (m.n_counted, m.n_tp, m.n_fp, m.n_regions) == (1, 0, 1, 1)


def test_truth_mask_decides_false_positives() -> None:
    labels, detected = detection_scene()
    truth = labels > 0
    truth[46, 41] = True  # the FP blob now touches the reference mask
    m = match_detections(detected, labels, min_pixels=10.2, truth_mask=truth)
    assert m.n_fp == 0 and m.precision == 1.0


def test_exclusive_detections_and_combine() -> None:
    labels, detected = detection_scene()
    net = match_detections(detected, labels, min_pixels=10.2)
    other = match_detections(np.zeros_like(detected), labels, min_pixels=10.2)
    assert exclusive_detections(net, other) == (1, 1)
    assert exclusive_detections(net, net) == (1, 0)
    pooled = DetectionMatch.combine([net, other])
    assert (pooled.n_tp, pooled.n_counted, pooled.n_fp) == (1, 4, 1)
    assert pooled.to_dict()["recall"] == 0.25
    with pytest.raises(ValueError, match="different sources"):
        exclusive_detections(
            net, match_detections(detected, labels, min_pixels=10.2, source_labels=[1])
        )


def test_detection_rejects_bad_input() -> None:
    labels, detected = detection_scene()
    with pytest.raises(ValueError, match="min_pixels must be a positive number, got 0"):
        match_detections(detected, labels, min_pixels=0)
    with pytest.raises(ValueError, match="labels must be a 2-D integer array"):
        match_detections(detected, labels.astype(float), min_pixels=4)
    with pytest.raises(ValueError, match=r"source_labels must be positive integers, got \[0"):
        match_detections(detected, labels, min_pixels=4, source_labels=[0, 1])


def test_region_snr_of_noise_regions_has_unit_spread() -> None:
    # Smoothed white noise (beam of sigma s*sqrt(2), area 4 pi s^2), rms 1 per beam.
    rng = np.random.default_rng(5)
    s = 1.5
    noise = ndimage.gaussian_filter(rng.normal(size=(600, 600)), s)
    image = noise / noise.std()
    regions = np.zeros(image.shape, dtype=np.int32)
    for k, (y, x) in enumerate(itertools.product(range(0, 600, 30), range(0, 600, 30)), 1):
        regions[y : y + 25, x : x + 25] = k
    snr = region_snr(regions, image, rms=1.0, beam_area_pix=4 * math.pi * s**2)
    assert snr.shape == (401,) and math.isnan(snr[0])
    assert abs(np.mean(snr[1:])) < 0.15
    assert np.std(snr[1:]) == pytest.approx(1.0, abs=0.12)


def test_region_snr_values_and_refusals() -> None:
    regions = np.array([[1, 1, 0, 3], [1, 1, 0, 3]])
    image = np.array([[1.0, 1.0, 50.0, np.nan], [1.0, 1.0, 50.0, 2.0]])
    snr = region_snr(regions, image, rms=0.5, beam_area_pix=4.0)
    # 4 px = 1 beam: flux 4/4 = 1, error 0.5 * sqrt(1): S/N 2; region 2 absent, 3 blanked.
    assert snr[1] == pytest.approx(2.0) and np.isnan(snr[[0, 2, 3]]).all()
    with pytest.raises(ValueError, match="non-negative integers"):
        region_snr(regions.astype(float), image, rms=1.0, beam_area_pix=1.0)
    with pytest.raises(ValueError, match=r"image has shape \(1, 4\), expected \(2, 4\)"):
        region_snr(regions, image[:1], rms=1.0, beam_area_pix=1.0)
    with pytest.raises(ValueError, match="rms_jy_beam must be a positive number"):
        region_snr(regions, image, rms=0.0, beam_area_pix=1.0)


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(6, 7)
    assert lo == pytest.approx(0.4869, abs=1e-3) and hi == pytest.approx(0.9743, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="got 3 of 2"):
        wilson_interval(3, 2)


# --- classification -------------------------------------------------------------------------

RATIOS = [0.0, 0.005, 0.01, 0.02, 0.05, 0.2]
POSITIVE = [False, False, True, False, True, True]


def test_classification_at_the_paper_threshold() -> None:
    p = classification_at(RATIOS, POSITIVE, PAPER_THRESHOLD)
    assert (p.tp, p.fp, p.tn, p.fn) == (2, 1, 2, 1)
    assert p.accuracy == pytest.approx(4 / 6)
    assert p.precision == pytest.approx(2 / 3)
    assert p.recall == pytest.approx(2 / 3)
    assert p.false_positive_rate == pytest.approx(1 / 3)
    # R exactly at the threshold is a detection, as in core.detection.
    assert classification_at([0.015], [True], 0.015).tp == 1


def test_classification_sweep_by_hand() -> None:
    points = classification_sweep(RATIOS, POSITIVE, [0.5, 0.001, 0.008, 0.015, 0.03])
    assert [p.threshold for p in points] == [0.001, 0.008, 0.015, 0.03, 0.5]
    assert [(p.tp, p.fp, p.tn, p.fn) for p in points] == [
        (3, 2, 1, 0),
        (3, 1, 2, 0),
        (2, 1, 2, 1),
        (2, 0, 3, 1),
        (0, 0, 3, 3),
    ]
    assert [round(p.accuracy, 4) for p in points] == [0.6667, 0.8333, 0.6667, 0.8333, 0.5]
    assert math.isnan(points[-1].precision) and points[-1].recall == 0.0
    best = best_accuracy(points)  # a tie between 0.008 and 0.03: the lower wins
    assert best.threshold == 0.008 and best.accuracy == pytest.approx(5 / 6)
    d = best.to_dict()
    assert d["tp"] == 3 and d["accuracy"] == pytest.approx(5 / 6)


def test_default_thresholds() -> None:
    t = default_thresholds()
    assert t[0] == pytest.approx(0.001) and t[-1] == pytest.approx(0.5)
    assert PAPER_THRESHOLD in t
    assert np.all(np.diff(t) > 0)
    assert len(classification_sweep(RATIOS, POSITIVE)) == len(t)


def test_classification_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length: 2 and 1"):
        classification_at([0.1, 0.2], [True], 0.015)
    with pytest.raises(ValueError, match=r"ratios must be finite, got \[nan\]"):
        classification_at([0.1, math.nan], [True, False], 0.015)
    with pytest.raises(ValueError, match="no classification point"):
        best_accuracy([])


# --- calibrated threshold -------------------------------------------------------------------


def test_calibrated_threshold_by_hand() -> None:
    # Geometric midpoints 0.0025 (above 0: hi/2), 0.00707, 0.01414, 0.03162, 0.1: 0.00707 and
    # 0.03162 both reach 5/6; 0.03162 is 0.199 dex from its nearest R, 0.00707 only 0.151.
    c = calibrated_threshold(RATIOS, POSITIVE)
    assert c.threshold == pytest.approx(math.sqrt(0.02 * 0.05))
    assert (c.point.tp, c.point.fp, c.point.tn, c.point.fn) == (2, 0, 3, 1)
    assert c.point.accuracy == pytest.approx(5 / 6)
    assert c.margin == pytest.approx(0.5 * math.log10(2.5))
    assert (c.n_candidates, c.n_best) == (5, 2)


def test_calibrated_threshold_is_halfway_in_dex() -> None:
    # 0.001 and 0.1: the arithmetic midpoint 0.0505 would sit 1.7 dex above the negative and
    # 0.3 dex below the positive; the geometric one, 0.01, is 1 dex from both.
    c = calibrated_threshold([0.0005, 0.001, 0.001, 0.1, 0.1, 0.2], [False] * 3 + [True] * 3)
    assert c.threshold == pytest.approx(0.01)
    assert c.margin == pytest.approx(1.0)
    assert c.point.accuracy == 1.0


def test_calibrated_threshold_equal_margins_go_to_the_lowest() -> None:
    # Powers of two: every gap is a factor 2, and the candidates' margins are equal floats.
    ratios = [2.0**-k for k in (7, 6, 5, 4, 3, 2)]
    c = calibrated_threshold(ratios, [True, False, False, True, False, True])
    # sqrt(2^-5 * 2^-4) and sqrt(2^-3 * 2^-2) both classify 4 of 6 right, both half a factor
    # 2 (0.151 dex) from their nearest R.
    assert c.threshold == pytest.approx(2.0**-4.5)
    assert c.point.accuracy == pytest.approx(4 / 6)
    assert c.margin == pytest.approx(0.5 * math.log10(2))
    assert c.n_best == 2


def test_calibrated_threshold_ignores_order_and_duplicates() -> None:
    ratios = [0.2, 0.01, 0.01, 0.05, 0.001, 0.001, 0.3]
    truth = [True, False, False, True, False, False, True]
    c = calibrated_threshold(ratios, truth)
    assert c.threshold == pytest.approx(math.sqrt(0.01 * 0.05))  # negatives 0.01, then 0.05
    assert c.point.accuracy == 1.0 and c.margin == pytest.approx(0.5 * math.log10(5))
    assert c.n_candidates == 4  # 5 distinct values


@pytest.mark.parametrize(
    ("ratios", "truth", "message"),
    [
        ([0.1] * 5, [True, False] * 2 + [True], f"at least {MIN_CALIBRATION_CLUSTERS} calibration"),
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [False] * 6, "no calibration cluster with diffuse"),
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [True] * 6, "no calibration cluster without diffuse"),
        ([0.02] * 6, [True, False] * 3, "1 distinct R value"),
        ([0.1, 0.2, 0.3, 0.4, 0.5, 1.5], [True, False] * 3, "ratios must lie in [0, 1]"),
        ([0.1, 0.2, 0.3, 0.4, 0.5, math.nan], [True, False] * 3, "ratios must be finite"),
        ([0.1, 0.2], [True, False, True], "differ in length"),
    ],
    ids=["few", "no-positive", "no-negative", "one-value", "above-one", "nan", "lengths"],
)  # fmt: skip
def test_calibrated_threshold_refusals(
    ratios: list[float], truth: list[bool], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        calibrated_threshold(ratios, truth)


# R on a grid of 1e-6 (as a mean probability is, to well within that), so that two distinct
# values always have a float strictly between them.
CALIBRATION_SETS = st.integers(MIN_CALIBRATION_CLUSTERS, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 10**6).map(lambda k: k / 1e6), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


def _splits_both_classes(ratios: list[float], truth: list[bool]) -> bool:
    return any(truth) and not all(truth) and len(set(ratios)) > 1


@settings(max_examples=300, deadline=None, database=None)
@given(CALIBRATION_SETS)
def test_calibrated_threshold_is_the_most_accurate_split(
    data: tuple[list[float], list[bool]],
) -> None:
    ratios, truth = data
    if not _splits_both_classes(ratios, truth):
        with pytest.raises(ValueError):
            calibrated_threshold(ratios, truth)
        return
    c = calibrated_threshold(ratios, truth)
    levels = sorted(set(ratios))
    # Strictly between two consecutive R values: no cluster sits on it.
    below = max(r for r in levels if r < c.threshold)
    above = min(r for r in levels if r > c.threshold)
    assert levels.index(above) == levels.index(below) + 1
    assert c.margin == pytest.approx(_dex_margin(below, c.threshold, above))
    # Every threshold that puts clusters on both sides acts as one of the R values above the
    # lowest (R >= t picks the same clusters as R >= the smallest R not below t).
    best = max(classification_at(ratios, truth, t).accuracy for t in levels[1:])
    assert c.point.accuracy == best
    assert c.point == classification_at(ratios, truth, c.threshold)
    # No other candidate of the same accuracy lies farther from its nearest R.
    for lo, hi in itertools.pairwise(levels):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if classification_at(ratios, truth, mid).accuracy == best:
            assert _dex_margin(lo, mid, hi) <= c.margin + 1e-12


def _dex_margin(below: float, t: float, above: float) -> float:
    """Distance from ``t`` to the nearer of its neighbours, in dex (infinite below 0)."""
    return min(math.log10(t / below) if below > 0 else math.inf, math.log10(above / t))


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=3, max_size=20, unique=True),
    st.lists(st.integers(0, 10**6), min_size=3, max_size=20, unique=True),
)
def test_separable_clusters_are_separated_perfectly(neg: list[int], pos: list[int]) -> None:
    # Shift the positives above every negative: a gap exists, so accuracy 1 is reachable.
    top = max(neg)
    negatives = [k / 4e6 for k in neg]
    positives = [(top + 1 + k) / 4e6 for k in pos]
    c = calibrated_threshold(negatives + positives, [False] * len(neg) + [True] * len(pos))
    assert c.point.accuracy == 1.0
    assert max(negatives) < c.threshold < min(positives)
    lo, hi = max(negatives), min(positives)
    assert c.threshold == pytest.approx(math.sqrt(lo * hi) if lo > 0 else hi / 2)


# --- confusion matrix -----------------------------------------------------------------------


def test_confusion_matrix() -> None:
    m = confusion_matrix(
        ["halo", "halo", "relic", "filament", "relic"],
        ["halo", "unclassified", "relic", "relic", "relic"],
        true_classes=["halo", "relic", "filament"],
        predicted_classes=["halo", "relic", "filament", "unclassified"],
    )
    assert m.tolist() == [[1, 0, 0, 1], [0, 2, 0, 0], [0, 1, 0, 0]]
    with pytest.raises(ValueError, match="true class 'bridge' not in"):
        confusion_matrix(["bridge"], ["halo"], true_classes=["halo"], predicted_classes=["halo"])
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(["halo"], [], true_classes=["halo"], predicted_classes=["halo"])
