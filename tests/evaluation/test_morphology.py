"""Tests for radiounet.evaluation.morphology: the halo/relic/filament rule on catalogued maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from radiounet.core.components import Component, find_components
from radiounet.evaluation.morphology import (
    FILAMENT,
    HALO,
    RELIC,
    UNCLASSIFIED,
    MorphologyFeatures,
    MorphologyRule,
    classify_morphology,
    nearest_cluster_features,
)

N = 300
R500 = 30.0  # pixels
BEAM = 10.0  # pixels


def make_wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [180.0, 50.0]
    wcs.wcs.cdelt = [-2.0 / 3600, 2.0 / 3600]
    wcs.wcs.crpix = [N / 2 + 1, N / 2 + 1]
    return wcs


WCS300 = make_wcs()
YY, XX = np.mgrid[:N, :N].astype(float)


def gaussian(x: float, y: float, s_major: float, s_minor: float, angle_deg: float) -> np.ndarray:
    """A 2-D Gaussian probability bump (peak 0.95) with its major axis at ``angle_deg`` from +x."""
    t = math.radians(angle_deg)
    u = (XX - x) * math.cos(t) + (YY - y) * math.sin(t)
    v = -(XX - x) * math.sin(t) + (YY - y) * math.cos(t)
    return 0.95 * np.exp(-0.5 * ((u / s_major) ** 2 + (v / s_minor) ** 2))


def label_of(prob: np.ndarray, clusters: dict[str, tuple[float, float]]) -> str:
    """Catalogue the single component against every cluster and apply the rule."""
    catalogues: dict[str, Component] = {}
    for cid, xy in clusters.items():
        (comp,) = find_components(prob, wcs=WCS300, beam_area_pix=BEAM, centre_xy=xy, r500_pix=R500)
        catalogues[cid] = comp
    (bare,) = find_components(prob, wcs=WCS300, beam_area_pix=BEAM)
    return classify_morphology(nearest_cluster_features(catalogues, elongation=bare.elongation))


def arc(cx: float, cy: float, radius: float, half_angle_deg: float, width: float) -> np.ndarray:
    """A ring segment of ``radius`` around (cx, cy), centred on the +x direction."""
    r = np.hypot(XX - cx, YY - cy)
    phi = np.degrees(np.arctan2(YY - cy, XX - cx))
    return np.where((np.abs(r - radius) < width / 2) & (np.abs(phi) < half_angle_deg), 0.9, 0.0)


def test_centred_round_blob_is_a_halo() -> None:
    prob = gaussian(150, 150, 12, 10, 30)
    assert label_of(prob, {"c0": (150.0, 150.0)}) == HALO
    # Off-centre by 0.2 R500 and a second, distant cluster: still the nearest cluster's halo.
    prob = gaussian(156, 150, 12, 10, 30)
    assert label_of(prob, {"c0": (150.0, 150.0), "c1": (30.0, 270.0)}) == HALO


def test_tangential_arc_at_one_r500_is_a_relic() -> None:
    prob = arc(120, 150, R500, 50, 6)
    clusters = {"c0": (120.0, 150.0)}
    (comp,) = find_components(
        prob, wcs=WCS300, beam_area_pix=BEAM, centre_xy=(120, 150), r500_pix=R500
    )
    assert comp.elongation > 2 and comp.radial_angle_deg is not None
    assert comp.radial_angle_deg > 80
    assert 0.8 < (comp.distance_r500 or 0) < 1.0
    assert label_of(prob, clusters) == RELIC


def test_radial_elongated_structure_is_not_a_relic() -> None:
    # Elongated along the radius at 1 R500: neither halo, relic nor (inside 1.5 R500) filament.
    prob = gaussian(150 + R500, 150, 12, 3, 0)
    assert label_of(prob, {"c0": (150.0, 150.0)}) == UNCLASSIFIED


def test_elongated_structure_between_two_clusters_is_a_filament() -> None:
    # Clusters 6 R500 apart along x; a bridge along the line joining them, 3 R500 from each.
    clusters = {"c0": (60.0, 150.0), "c1": (240.0, 150.0)}
    prob = gaussian(150, 150, 25, 4, 0)
    assert label_of(prob, clusters) == FILAMENT
    # The same structure across the line (tangential to both) is still far from both.
    prob = gaussian(150, 150, 25, 4, 90)
    assert label_of(prob, clusters) == FILAMENT


def test_without_clusters() -> None:
    prob = gaussian(150, 150, 25, 4, 20)
    (comp,) = find_components(prob, wcs=WCS300, beam_area_pix=BEAM)
    features = nearest_cluster_features({}, elongation=comp.elongation)
    assert features.distance_r500 is None and features.cluster is None
    assert classify_morphology(features) == FILAMENT
    round_blob = MorphologyFeatures(elongation=1.1)
    assert classify_morphology(round_blob) == UNCLASSIFIED


def test_rule_thresholds_by_hand() -> None:
    f = MorphologyFeatures
    assert classify_morphology(f(1.9, distance_r500=0.5)) == HALO
    assert classify_morphology(f(2.0, distance_r500=0.1, radial_angle_deg=90)) == UNCLASSIFIED
    assert classify_morphology(f(2.0, distance_r500=0.4, radial_angle_deg=70)) == RELIC
    assert classify_morphology(f(3.0, distance_r500=2.2, radial_angle_deg=60)) == RELIC
    assert classify_morphology(f(3.0, distance_r500=2.3, radial_angle_deg=60)) == FILAMENT
    assert classify_morphology(f(3.0, distance_r500=1.0, radial_angle_deg=59)) == UNCLASSIFIED
    assert classify_morphology(f(3.0, distance_r500=1.0, radial_angle_deg=None)) == UNCLASSIFIED
    assert classify_morphology(f(1.4, distance_r500=3.0)) == UNCLASSIFIED
    strict = MorphologyRule(halo_max_distance_r500=0.2)
    assert classify_morphology(f(1.2, distance_r500=0.3), rule=strict) == UNCLASSIFIED


def test_nearest_cluster_is_chosen_in_r500_units() -> None:
    def comp(distance: float, angle: float) -> Component:
        return Component(
            1,
            50,
            0.0,
            0.0,
            0.0,
            0.0,
            1.0,
            None,
            None,
            None,
            None,
            0.9,
            0.8,
            distance,
            3.0,
            0.0,
            angle,
        )

    features = nearest_cluster_features({"big": comp(0.9, 80.0), "small": comp(2.5, 10.0)})
    assert (features.cluster, features.distance_r500, features.radial_angle_deg) == (
        "big",
        0.9,
        80.0,
    )
    assert features.elongation == 3.0


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"elongation must be a number >= 1, got 0\.5"):
        classify_morphology(MorphologyFeatures(0.5, distance_r500=1.0))
    with pytest.raises(ValueError, match="distance_r500 must be a non-negative number, got -1"):
        classify_morphology(MorphologyFeatures(1.5, distance_r500=-1.0))
    with pytest.raises(ValueError, match="give the component's elongation"):
        nearest_cluster_features({})
    prob = gaussian(150, 150, 12, 10, 30)
    (bare,) = find_components(prob, wcs=WCS300, beam_area_pix=BEAM)
    with pytest.raises(ValueError, match="cluster 'c0' has no distance_r500"):
        nearest_cluster_features({"c0": bare})
