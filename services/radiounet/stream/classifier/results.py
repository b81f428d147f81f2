"""Per-pointing result rows of the classifier, and the results table built from them.

The classifier stores one JSON object per pointing under
``results/<pointing id>.json`` (overwritten on replay), so the results table is
the set of objects under ``results/``: :func:`load_results` reads them,
:func:`results_table` flattens them into one line per pointing and
:func:`to_csv` writes that as CSV. Everything here is pure except
:func:`load_results`, which reads the store it is given.

A row (``schema_version`` 1; fields are only ever added)::

    pointing_id, survey, ra_deg, dec_deg, size_px, pixel_scale_arcsec
    cluster            {name, ra_deg, dec_deg, z, m500_1e14, theta500_arcmin, r500_kpc} or null
                       (a named pointing without a size: the name, the rest null)
    model              {name, version, signature}
    has_cluster        false: no ratio, no decision (null below)
    ratio, threshold, diffuse
    threshold_source   where the threshold came from (given, calibrated for a version, the paper's)
    aperture           {radius_r500, radius_pix, centre_xy, n_pixels, fraction_in_image,
                        fraction_valid} or null (fraction_valid: the share of the aperture on
                        valid pixels, in the image and not blanked; absent from older rows)
    placeholder_model  true if the map says it was made with untrained weights
    n_components, components   (see radiounet.core.components.Component)
    map_key, quicklook_key, cutout_key, correlation_id
    submitted_unix_ms, classified_unix_ms

Non-finite numbers (e.g. the flux of a component over blanked pixels) are
stored as null: JSON has no NaN.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from radiounet.core.components import Component
from radiounet.stream.errors import PermanentError
from radiounet.stream.keys import RESULTS_PREFIX, result_key
from radiounet.stream.messages import cluster_has_size
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.workflows import Classification, Cluster

__all__ = [
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "LoadedResults",
    "cluster_of",
    "load_results",
    "result_row",
    "results_table",
    "to_csv",
    "utc_text",
]

SCHEMA_VERSION = 1

#: Columns of :func:`results_table` and :func:`to_csv`, in order.
RESULT_COLUMNS = (
    "pointing_id",
    "survey",
    "ra_deg",
    "dec_deg",
    "cluster",
    "z",
    "m500_1e14",
    "theta500_arcmin",
    "has_cluster",
    "ratio",
    "threshold",
    "threshold_source",
    "diffuse",
    "aperture_r500",
    "aperture_pixels",
    "aperture_in_image",
    "aperture_valid",
    "n_components",
    "model",
    "model_version",
    "placeholder_model",
    "map_key",
    "quicklook_key",
    "correlation_id",
    "submitted_utc",
    "classified_utc",
)


def cluster_of(pointing: pb.Pointing) -> Cluster | None:
    """The cluster a pointing targets (at the pointing's position), or None if it names none.

    A cluster with a name but no size at all (no z, M500 or theta500) is None
    too: there is no aperture to classify in, only a name to keep in the row.

    Raises
    ------
    ValueError
        If the cluster is incomplete or out of range (no theta500 nor z and M500).
    """
    if not cluster_has_size(pointing):
        return None
    c = pointing.cluster
    return Cluster(
        ra_deg=pointing.ra_deg,
        dec_deg=pointing.dec_deg,
        z=c.z if c.HasField("z") else None,
        m500_1e14=c.m500_1e14 if c.HasField("m500_1e14") else None,
        theta500_arcmin=c.theta500_arcmin if c.HasField("theta500_arcmin") else None,
        name=c.name,
    )


def result_row(
    pointing: pb.Pointing,
    model: pb.ModelRef,
    *,
    classification: Classification | None,
    threshold_source: str | None = None,
    components: Sequence[Component] = (),
    map_key: str,
    quicklook_key: str = "",
    cutout_key: str = "",
    correlation_id: str = "",
    classified_unix_ms: int,
) -> dict[str, Any]:
    """The result row of one pointing (a JSON-ready dict; see the module docstring).

    Parameters
    ----------
    pointing : Pointing
        The pointing classified.
    model : ModelRef
        The model that made its map.
    classification : Classification or None
        R, decision and components when the pointing names a cluster; None otherwise.
    threshold_source : str or None
        Where the classification's threshold came from.
    components : sequence of Component
        The component catalogue when there is no classification (which has its own).

    Raises
    ------
    ValueError
        If a classification is given for a pointing without a cluster or the
        other way round, or components are given besides a classification.
    """
    has_cluster = cluster_has_size(pointing)
    if has_cluster != (classification is not None):
        raise ValueError(
            f"pointing {pointing.id}: "
            + ("names a cluster but has no classification" if has_cluster else "names no cluster")
        )
    if classification is not None and components:
        raise ValueError("components come from the classification when there is one")
    row: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "pointing_id": pointing.id,
        "survey": pointing.survey,
        "ra_deg": pointing.ra_deg,
        "dec_deg": pointing.dec_deg,
        "size_px": pointing.size_px,
        "pixel_scale_arcsec": pointing.pixel_scale_arcsec,
        "model": {"name": model.name, "version": model.version, "signature": model.signature},
        "has_cluster": has_cluster,
        "cluster": None,
        "ratio": None,
        "threshold": None,
        "threshold_source": None,
        "diffuse": None,
        "aperture": None,
        "placeholder_model": None,
        "map_key": map_key,
        "quicklook_key": quicklook_key,
        "cutout_key": cutout_key,
        "correlation_id": correlation_id,
        "submitted_unix_ms": pointing.submitted_unix_ms or None,
        "classified_unix_ms": classified_unix_ms,
    }
    if classification is not None:
        c = classification.to_dict()
        components = classification.components
        row.update(
            cluster=c["cluster"],
            ratio=c["ratio"],
            threshold=c["threshold"],
            threshold_source=threshold_source,
            diffuse=c["detected"],
            aperture={
                "radius_r500": c["aperture_r500"],
                "radius_pix": c["radius_pix"],
                "centre_xy": c["centre_xy"],
                "n_pixels": c["n_pixels"],
                "fraction_in_image": c["fraction_in_image"],
                "fraction_valid": c["fraction_valid"],
            },
            placeholder_model=c["placeholder_model"],
        )
    elif pointing.cluster.name:
        # Named but without a size: segmented only, yet the results table keeps the name.
        row["cluster"] = {
            "name": pointing.cluster.name,
            "ra_deg": pointing.ra_deg,
            "dec_deg": pointing.dec_deg,
            "z": None,
            "m500_1e14": None,
            "theta500_arcmin": None,
            "r500_kpc": None,
        }
    row["n_components"] = len(components)
    row["components"] = [k.to_dict() for k in components]
    return _json_safe(row)


def _json_safe(value: Any) -> Any:
    """``value`` with NumPy scalars made Python ones and non-finite floats made None."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def utc_text(ms: Any) -> str | None:
    """Unix milliseconds as ISO 8601 UTC (``2023-11-14T22:13:20.123Z``); None if not a time."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def results_table(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat dict per row, with the keys :data:`RESULT_COLUMNS` (missing values None)."""
    table = []
    for row in rows:
        cluster = row.get("cluster") or {}
        model = row.get("model") or {}
        aperture = row.get("aperture") or {}
        flat = {
            "pointing_id": row.get("pointing_id"),
            "survey": row.get("survey"),
            "ra_deg": row.get("ra_deg"),
            "dec_deg": row.get("dec_deg"),
            "cluster": cluster.get("name"),
            "z": cluster.get("z"),
            "m500_1e14": cluster.get("m500_1e14"),
            "theta500_arcmin": cluster.get("theta500_arcmin"),
            "has_cluster": row.get("has_cluster"),
            "ratio": row.get("ratio"),
            "threshold": row.get("threshold"),
            "threshold_source": row.get("threshold_source"),
            "diffuse": row.get("diffuse"),
            "aperture_r500": aperture.get("radius_r500"),
            "aperture_pixels": aperture.get("n_pixels"),
            "aperture_in_image": aperture.get("fraction_in_image"),
            "aperture_valid": aperture.get("fraction_valid"),
            "n_components": row.get("n_components"),
            "model": model.get("name"),
            "model_version": model.get("version"),
            "placeholder_model": row.get("placeholder_model"),
            "map_key": row.get("map_key"),
            "quicklook_key": row.get("quicklook_key"),
            "correlation_id": row.get("correlation_id"),
            "submitted_utc": utc_text(row.get("submitted_unix_ms")),
            "classified_utc": utc_text(row.get("classified_unix_ms")),
        }
        table.append(flat)
    return table


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The results table of ``rows`` as CSV text (header line first; empty cells for None).

    Examples
    --------
    >>> print(to_csv([{"pointing_id": "p1", "has_cluster": False}]).splitlines()[1][:20])
    p1,,,,,,,,false,,,,,
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for flat in results_table(rows):
        writer.writerow([_csv_text(flat[c]) for c in RESULT_COLUMNS])
    return buf.getvalue()


@dataclass(frozen=True)
class LoadedResults:
    """The result rows in the store, and the objects under ``results/`` that are not rows.

    Attributes
    ----------
    rows : list of dict
        One per pointing, sorted by pointing id.
    unreadable : list of (str, str)
        ``(key, why)`` for each object that could not be read as a result row.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def load_results(store: ObjectStore) -> LoadedResults:
    """Read every result row under ``results/`` in ``store``.

    Objects that are not JSON, not a row, or whose pointing id does not match
    their key are reported in ``unreadable`` rather than raised.

    Raises
    ------
    TransientError
        If the store cannot be reached.
    """
    rows: list[dict[str, Any]] = []
    unreadable: list[tuple[str, str]] = []
    for key in store.list_keys(RESULTS_PREFIX):
        if not key.endswith(".json"):
            unreadable.append((key, "not a .json object"))
            continue
        try:
            row = store.get_json(key)
        except PermanentError as exc:  # gone since listed, or not JSON
            unreadable.append((key, exc.detail))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("pointing_id"), str):
            unreadable.append((key, "not a result row (no pointing_id)"))
            continue
        if result_key(row["pointing_id"]) != key:
            unreadable.append((key, f"holds the result of pointing {row['pointing_id']!r}"))
            continue
        rows.append(row)
    rows.sort(key=lambda r: str(r["pointing_id"]))
    return LoadedResults(rows, unreadable)
