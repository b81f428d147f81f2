"""Label detected components halo, relic or filament from the component catalogue.

This is a fixed, hand-written rule, a *baseline*: nothing here is learned,
and the network itself does not classify (Stuardi et al. 2024 treat all
diffuse emission as one class). It uses three entries of the catalogue of
:func:`radiounet.core.components.find_components`, measured against the
*nearest* cluster (smallest distance in units of that cluster's R500):

* ``d``, the distance of the component's centroid from the cluster centre, in R500;
* ``e``, the elongation (major/minor axis ratio of the probability-weighted moments);
* ``a``, the radial angle: 0 deg when the major axis points at the cluster
  centre, 90 deg when it is tangential.

Rules, first match wins (defaults of :class:`MorphologyRule`):

1. **halo**: ``d <= 0.5`` and ``e < 2`` — central and roundish;
2. **relic**: ``0.3 <= d <= 2.2``, ``e >= 2`` and ``a >= 60`` — peripheral,
   elongated and tangential (relics are found out to 2.2 R500, the R aperture);
3. **filament**: ``d > 1.5`` (or no cluster at all) and ``e >= 1.5`` —
   elongated and away from every cluster, e.g. between two clusters more than
   about 3 R500 apart (a bridge between closer clusters falls to rules 1-2 or
   stays unclassified);
4. otherwise **unclassified** (e.g. a round blob far from any cluster, a
   radial elongated structure inside 1.5 R500, an elongated central one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..core.components import Component

__all__ = [
    "FILAMENT",
    "HALO",
    "MORPHOLOGY_CLASSES",
    "PREDICTED_CLASSES",
    "RELIC",
    "UNCLASSIFIED",
    "MorphologyFeatures",
    "MorphologyRule",
    "classify_morphology",
    "nearest_cluster_features",
]

HALO = "halo"
RELIC = "relic"
FILAMENT = "filament"
UNCLASSIFIED = "unclassified"
#: The simulator's diffuse classes, the rows of the confusion matrix.
MORPHOLOGY_CLASSES = (HALO, RELIC, FILAMENT)
#: What the rule can answer, the columns of the confusion matrix.
PREDICTED_CLASSES = (*MORPHOLOGY_CLASSES, UNCLASSIFIED)


@dataclass(frozen=True)
class MorphologyRule:
    """Thresholds of the rule (distances in R500, angles in degrees)."""

    halo_max_distance_r500: float = 0.5
    halo_max_elongation: float = 2.0
    relic_min_distance_r500: float = 0.3
    relic_max_distance_r500: float = 2.2
    relic_min_elongation: float = 2.0
    relic_min_radial_angle_deg: float = 60.0
    filament_min_distance_r500: float = 1.5
    filament_min_elongation: float = 1.5

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_RULE = MorphologyRule()


@dataclass(frozen=True)
class MorphologyFeatures:
    """What the rule looks at, relative to the nearest cluster.

    Attributes
    ----------
    elongation : float
        Major-to-minor axis ratio (>= 1).
    distance_r500 : float or None
        Distance from the nearest cluster centre in its R500; None when the
        field has no cluster (then every cluster is "far").
    radial_angle_deg : float or None
        Angle between the major axis and the radial direction, in [0, 90];
        None when undefined (no cluster, or the centroid on the centre).
    cluster : str or None
        Identifier of the nearest cluster.
    """

    elongation: float
    distance_r500: float | None = None
    radial_angle_deg: float | None = None
    cluster: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nearest_cluster_features(
    catalogues: Mapping[str, Component], *, elongation: float | None = None
) -> MorphologyFeatures:
    """Features of one component from its catalogue entries against each cluster.

    Parameters
    ----------
    catalogues : mapping of str to Component
        For each cluster id, the component as catalogued with that cluster's
        centre and R500 (``distance_r500`` set). Empty for a field without clusters.
    elongation : float, keyword-only
        The component's elongation; required when ``catalogues`` is empty.
    """
    if not catalogues:
        if elongation is None:
            raise ValueError("without cluster catalogues, give the component's elongation")
        return MorphologyFeatures(elongation=float(elongation))
    for cid, comp in catalogues.items():
        if comp.distance_r500 is None:
            raise ValueError(
                f"component catalogued for cluster {cid!r} has no distance_r500 "
                "(catalogue it with centre_xy and r500_pix)"
            )
    cid, comp = min(catalogues.items(), key=lambda item: (item[1].distance_r500, item[0]))
    return MorphologyFeatures(
        elongation=comp.elongation if elongation is None else float(elongation),
        distance_r500=comp.distance_r500,
        radial_angle_deg=comp.radial_angle_deg,
        cluster=cid,
    )


def classify_morphology(
    features: MorphologyFeatures, *, rule: MorphologyRule = DEFAULT_RULE
) -> str:
    """Label a component ``halo``, ``relic``, ``filament`` or ``unclassified`` (module docstring).

    Examples
    --------
    >>> classify_morphology(MorphologyFeatures(elongation=1.2, distance_r500=0.1))
    'halo'
    >>> classify_morphology(MorphologyFeatures(3.0, distance_r500=1.0, radial_angle_deg=85.0))
    'relic'
    >>> classify_morphology(MorphologyFeatures(4.0, distance_r500=2.5, radial_angle_deg=10.0))
    'filament'
    >>> classify_morphology(MorphologyFeatures(1.1, distance_r500=3.0))
    'unclassified'
    """
    e = features.elongation
    if not (math.isfinite(e) and e >= 1.0 - 1e-9):
        raise ValueError(f"elongation must be a number >= 1, got {e!r}")
    d = math.inf if features.distance_r500 is None else features.distance_r500
    if math.isnan(d) or d < 0:
        raise ValueError(f"distance_r500 must be a non-negative number, got {d!r}")
    a = features.radial_angle_deg
    if d <= rule.halo_max_distance_r500 and e < rule.halo_max_elongation:
        return HALO
    if (
        rule.relic_min_distance_r500 <= d <= rule.relic_max_distance_r500
        and e >= rule.relic_min_elongation
        and a is not None
        and a >= rule.relic_min_radial_angle_deg
    ):
        return RELIC
    if d > rule.filament_min_distance_r500 and e >= rule.filament_min_elongation:
        return FILAMENT
    return UNCLASSIFIED
