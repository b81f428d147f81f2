"""Calibrate a model version's decision threshold on R against simulated clusters.

The paper's threshold (R >= 0.015) belongs to the paper's model: another
version has another probability floor, and its threshold must be chosen anew
(Stuardi et al. 2024, Fig. 7). :func:`calibrate` segments the fields of one
split of simulated datasets with the version, takes each cluster's R within
2.2 R500 (as ``radiounet evaluate`` does) and its truth from the manifest,
and picks the threshold with :func:`~radiounet.evaluation.metrics.calibrated_threshold`.
:func:`write_calibration` stores it in the version's metadata, where
``radiounet classify``, the demo and the local stack find it.

Fields that trained the version would make the threshold fit the training
set, so :func:`check_not_training_data` refuses them (``radiounet evaluate``
applies the same check: scores on such fields are not held-out figures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.segmentation import DEFAULT_BATCH_SIZE, Predictor
from ..model.repository import ModelMetadata, ModelVersion, resolve_model, update_metadata
from .metrics import (
    PAPER_THRESHOLD,
    ClassificationPoint,
    ThresholdChoice,
    calibrated_threshold,
    classification_at,
)
from .run import Dataset, FieldSpec, choose_profile, evaluate_field, load_dataset, require_fields

__all__ = [
    "METHOD",
    "Calibration",
    "TrainingOverlap",
    "calibrate",
    "check_not_training_data",
    "summary_lines",
    "training_overlaps",
    "write_calibration",
]

METHOD = (
    "maximum accuracy of R >= threshold over the geometric midpoints between consecutive "
    "distinct R of the calibration clusters; ties to the widest margin in dex"
)


@dataclass(frozen=True, eq=False)
class Calibration:
    """What :func:`calibrate` measured and chose."""

    model: ModelVersion
    datasets: list[Dataset]
    split: str
    fields: list[str]
    clusters: list[dict[str, Any]]
    profile: str
    choice: ThresholdChoice
    paper: ClassificationPoint

    @property
    def used(self) -> list[dict[str, Any]]:
        """Clusters with an R (the others' aperture missed the image)."""
        return [c for c in self.clusters if c.get("ratio") is not None]

    @property
    def threshold(self) -> float:
        return self.choice.threshold

    def record(self, *, command: str, created: datetime | None = None) -> dict[str, Any]:
        """The ``calibration`` entry of the version's metadata (JSON-ready, no NaN)."""
        used = self.used
        positives = sum(bool(c["positive"]) for c in used)
        when = created or datetime.now(UTC)
        return {
            "method": METHOD,
            "threshold": self.threshold,
            "margin": self.choice.margin,
            "datasets": [_dataset_identity(d) for d in self.datasets],
            "split": self.split,
            "fields": len(self.fields),
            "clusters": len(used),
            "positives": positives,
            "negatives": len(used) - positives,
            "skipped_clusters": len(self.clusters) - len(used),
            "profile": self.profile,
            **_rates(self.choice.point),
            "paper_threshold": {"threshold": PAPER_THRESHOLD, **_rates(self.paper)},
            "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "software": f"radiounet {__version__}",
            "command": command,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _rates(point: ClassificationPoint) -> dict[str, Any]:
    return {
        "accuracy": _finite(point.accuracy),
        "precision": _finite(point.precision),
        "recall": _finite(point.recall),
        "tp": point.tp,
        "fp": point.fp,
        "tn": point.tn,
        "fn": point.fn,
    }


def _dataset_identity(dataset: Dataset) -> dict[str, Any]:
    return {
        "path": str(Path(dataset.path).resolve()),
        "seed": dataset.manifest.get("seed"),
        "setup": dataset.setup.get("name"),
    }


def _trained_on(model: ModelVersion) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(version, dataset entry)`` of every dataset that trained ``model`` or its bases."""
    seen: set[Path] = set()
    current: ModelVersion | None = model
    while current is not None and current.path.resolve() not in seen:
        seen.add(current.path.resolve())
        training = current.metadata.training
        for entry in training.get("datasets") or []:
            if isinstance(entry, dict):
                yield f"{current.name}/{current.version}", entry
        current = _base_model(current, training.get("finetune"))


def _base_model(model: ModelVersion, finetune: Any) -> ModelVersion | None:
    """The version a fine-tuned ``model`` started from, if it can still be found."""
    if not isinstance(finetune, dict):
        return None
    name, version = finetune.get("base_name"), finetune.get("base_version")
    tries: list[Callable[[], ModelVersion]] = []
    if isinstance(name, str) and isinstance(version, int):
        # The same repository first: the recorded absolute path may have moved with it.
        tries.append(lambda: resolve_model(model.path.parent.parent, name=name, version=version))
    if isinstance(finetune.get("base_model"), str):
        tries.append(lambda: resolve_model(finetune["base_model"]))
    for attempt in tries:
        try:
            return attempt()
        except ValueError:
            continue
    return None


@dataclass(frozen=True, eq=False)
class TrainingOverlap:
    """Fields of ``dataset`` about to be used that trained ``version`` (``training_overlaps``)."""

    dataset: Path
    fields: tuple[str, ...]
    version: str
    entry: dict[str, Any]
    why: str
    by_ids: bool

    def sentence(self) -> str:
        e = self.entry
        which = (
            f"field{'s' if len(self.fields) > 1 else ''} {', '.join(self.fields)}"
            if self.by_ids
            else "the 'train' fields"
        )
        ids = "; its metadata lists these field ids" if self.by_ids else ""
        return (
            f"{which} of {self.dataset} trained {self.version} (training dataset {e.get('path')}, "
            f"seed {e.get('seed')}, set-up {e.get('setup')!r}: {self.why}{ids})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": str(self.dataset), "fields": list(self.fields), "why": self.sentence()}


def training_overlaps(model: ModelVersion, fields: Sequence[FieldSpec]) -> list[TrainingOverlap]:
    """The ``fields`` that trained (or validated) ``model`` or the model it was fine-tuned from.

    A dataset matches a training dataset of the metadata by resolved path, or
    by seed and set-up name (a copy moved elsewhere holds the same fields).
    Of a matching dataset, the fields whose ids the metadata lists
    (``field_ids``) trained it, whatever their split is now (a resumed
    simulation may have re-split the dataset); versions exported before the
    ids were recorded name no fields, and then its ``train`` split did.
    """
    found = []
    for dataset in dict.fromkeys(f.dataset for f in fields):  # in order, each once
        mine = _dataset_identity(dataset)
        specs = [f for f in fields if f.dataset is dataset]
        for version, entry in _trained_on(model):
            same_path = entry.get("path") is not None and (
                Path(str(entry["path"])).resolve() == Path(mine["path"])
            )
            same_data = (
                mine["seed"] is not None
                and entry.get("seed") == mine["seed"]
                and entry.get("setup") == mine["setup"]
            )
            if not (same_path or same_data):
                continue
            ids = entry.get("field_ids")
            by_ids = isinstance(ids, list)
            trained = {str(i) for i in ids} if isinstance(ids, list) else set()
            hit = [f.id for f in specs if (f.id in trained if by_ids else f.split == "train")]
            if hit:
                why = "the same folder" if same_path else "the same seed and set-up"
                found.append(TrainingOverlap(dataset.path, tuple(hit), version, entry, why, by_ids))
    return found


def check_not_training_data(
    model: ModelVersion,
    fields: Sequence[FieldSpec],
    *,
    consequence: str = "a threshold calibrated on them would fit the training set: use held-out "
    "fields (--split test) or another dataset",
) -> None:
    """Refuse ``fields`` that trained ``model`` (:func:`training_overlaps`).

    Raises
    ------
    ValueError
        Naming the fields, the dataset and the version they trained, then ``consequence``.
    """
    overlaps = training_overlaps(model, fields)
    if overlaps:
        raise ValueError(f"{overlaps[0].sentence()}; {consequence}")


def calibrate(
    model: ModelVersion,
    data_dirs: Sequence[str | Path],
    *,
    split: str,
    max_fields: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    predictor: Predictor | None = None,
    progress: Callable[[list[FieldSpec]], Iterable[FieldSpec]] | None = None,
) -> Calibration:
    """Segment the ``split`` fields with ``model`` and choose its threshold on R.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing or invalid dataset, no field of ``split``, training fields
        (:func:`check_not_training_data`), or clusters that cannot be
        calibrated on (see :func:`~radiounet.evaluation.metrics.calibrated_threshold`).
    """
    if not data_dirs:
        raise ValueError("give at least one dataset folder")
    datasets = [load_dataset(d) for d in data_dirs]
    specs = require_fields(datasets, split=split, max_fields=max_fields)
    check_not_training_data(model, specs)
    profile, _ = choose_profile(
        model.metadata.profile, [str(d.setup.get("name")) for d in datasets]
    )
    if predictor is None:
        from ..model.predictor import SavedModelPredictor

        predictor = SavedModelPredictor(model)
    clusters: list[dict[str, Any]] = []
    for spec in progress(specs) if progress is not None else specs:
        result, _ = evaluate_field(
            spec, predict=predictor, profile=profile, use_pybdsf=False, batch_size=batch_size
        )
        clusters.extend(result.clusters)
    used = [c for c in clusters if c.get("ratio") is not None]
    ratios = [float(c["ratio"]) for c in used]
    truth = [bool(c["positive"]) for c in used]
    try:
        choice = calibrated_threshold(ratios, truth)
    except ValueError as exc:
        skipped = len(clusters) - len(used)
        raise ValueError(
            f"cannot calibrate on {len(specs)} {split!r} field(s)"
            + (f" ({skipped} cluster(s) skipped: aperture off the image)" if skipped else "")
            + f": {exc}"
        ) from exc
    return Calibration(
        model=model,
        datasets=datasets,
        split=split,
        fields=[s.id for s in specs],
        clusters=clusters,
        profile=profile.name,
        choice=choice,
        paper=classification_at(ratios, truth, PAPER_THRESHOLD),
    )


def _rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"  # NaN: an empty denominator


def summary_lines(calibration: Calibration) -> list[str]:
    """The terminal summary: what was calibrated on, then both thresholds and their rates."""
    c, model = calibration, calibration.model
    used = c.used
    positives = sum(bool(row["positive"]) for row in used)
    skipped = len(c.clusters) - len(used)
    lines = [
        f"model        {model.name}/{model.version}  ({model.path})",
        f"fields       {len(c.fields)} of split {c.split!r}, profile {c.profile}",
        f"clusters     {len(used)}: {positives} with diffuse emission, "
        f"{len(used) - positives} without"
        + (f" ({skipped} skipped: aperture off the image)" if skipped else ""),
        "",
        f"{'':<22}{'threshold':>10}  {'accuracy':>8}  {'precision':>9}  {'recall':>6}",
    ]
    for label, point in (("calibrated", c.choice.point), ("paper (Stuardi 2024)", c.paper)):
        lines.append(
            f"{label:<22}{point.threshold:>10.6g}  {_rate(point.accuracy):>8}  "
            f"{_rate(point.precision):>9}  {_rate(point.recall):>6}"
        )
    tie = f"; {c.choice.n_best} thresholds tie at this accuracy" if c.choice.n_best > 1 else ""
    lines += ["", f"margin       {c.choice.margin:.3g} dex to the nearest cluster's R{tie}"]
    return lines


def write_calibration(calibration: Calibration, *, command: str) -> ModelMetadata:
    """Store the threshold and its record in the version's metadata (atomic; other keys kept)."""
    return update_metadata(
        calibration.model.path,
        {
            "decision_threshold": calibration.threshold,
            "calibration": calibration.record(command=command),
        },
    )
