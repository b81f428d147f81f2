"""Write an evaluation: ``report.json``, ``report.md`` and PNG figures, beside the paper's numbers.

The JSON holds every number (NaN written as ``null``); the markdown report
puts ours beside Stuardi et al. (2024)'s, with one PASS/FAIL line per target
of the issue (beat both baselines on IoU; precision and recall at least the
paper's), and the network's detection at other pixel thresholds as a
diagnostic. Figures are drawn on explicit Agg canvases, without pyplot.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from .run import Evaluation, FieldArrays

__all__ = [
    "FIGURES",
    "METHOD_NAMES",
    "PAPER",
    "TRAINING_DATA",
    "TRAINING_DATA_NOTE",
    "assess_targets",
    "jsonable",
    "paper_reference",
    "plot_confusion",
    "plot_detection",
    "plot_examples",
    "plot_iou",
    "plot_sweep",
    "render_markdown",
    "sanity_checks",
    "summary_lines",
    "write_report",
]

#: Stuardi et al. (2024): Sec. 5 (synthetic test images) and Tab. 2 (LoTSS-DR2/PSZ2).
PAPER: dict[str, Any] = {
    "iou_network": {"mean": 0.64, "sem": 0.02, "n": 10},
    "iou_sigma3": {"mean": 0.58, "sem": 0.02, "n": 10},
    "precision": 0.86,
    "recall": 0.65,
    "only_network_fraction": 0.35,
    "classification_lotss": {
        "threshold": 0.015,
        "accuracy": 0.73,
        "precision": 0.72,
        "recall": 0.83,
    },
}

#: Figure files, relative to the output folder.
FIGURES = {
    "iou": "figures/iou.png",
    "detection": "figures/detection.png",
    "sweep": "figures/classification_sweep.png",
    "confusion": "figures/confusion_matrix.png",
    "examples": "figures/examples.png",
}

METHOD_NAMES = {"network": "Radio U-Net", "sigma3": "3-sigma mask", "pybdsf": "PyBDSF islands"}
PLACEHOLDER = "placeholder weights: figures meaningless"
#: Said wherever a report's fields trained the model (``evaluate --allow-training-fields``).
TRAINING_DATA = "TRAINING DATA"
TRAINING_DATA_NOTE = (
    f"{TRAINING_DATA}: fields that trained the model were evaluated; every figure is a "
    "diagnostic on training data, not a held-out figure"
)


def paper_reference() -> dict[str, Any]:
    """The paper's figures, with where they come from."""
    return {
        **json.loads(json.dumps(PAPER)),
        "source": "Stuardi et al. 2024, MNRAS: Sec. 5 (10 synthetic test images) and Tab. 2 "
        "(initial LoTSS-DR2/PSZ2 test set, real data; not directly comparable with "
        "classification on simulated clusters)",
    }


# --- numbers --------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as None, numpy scalars as Python numbers, paths as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return value


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _fmt(value: Any, digits: int = 2) -> str:
    v = _num(value)
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def _pm(summary: dict[str, Any] | None, digits: int = 2) -> str:
    if not summary or not summary.get("n"):
        return "n/a"
    sem = _num(summary.get("sem"))
    tail = "" if math.isnan(sem) else f" ± {sem:.{digits}f}"
    return f"{_fmt(summary.get('mean'), digits)}{tail}"


def _sweep_reaching(sweep: Sequence[dict[str, Any]], key: str = "pixel_threshold") -> list[float]:
    """Settings whose precision and recall both reach the paper's (NaN never does)."""
    return [
        p[key]
        for p in sweep
        if _num(p.get("precision")) >= PAPER["precision"]
        and _num(p.get("recall")) >= PAPER["recall"]
    ]


def _sweep_sentence(
    sweep: Sequence[dict[str, Any]], key: str = "pixel_threshold", what: str = "pixel threshold"
) -> str:
    reach = _sweep_reaching(sweep, key)
    both = f"the paper's precision ({PAPER['precision']}) and recall ({PAPER['recall']})"
    caveat = "a setting picked on the test set would flatter it"
    if not reach:
        return f"No {what} reaches both {both} on this test set."
    return (
        f"{what[:1].upper()}{what[1:]}s reaching both {both} on this test set: "
        f"{', '.join(f'{t:g}' for t in reach)}; {caveat} (choose one on other fields)."
    )


def _detection_table(rows: Sequence[dict[str, Any]], key: str, title: str) -> list[str]:
    """Markdown table of pooled detection counts and rates, one row per setting ``key``."""
    return _table(
        [
            title,
            "TP src",
            "FN src",
            "true regions",
            "FP regions",
            "precision (95%)",
            "precision (TP src)",
            "recall (95%)",
        ],
        [
            [
                f"{p[key]:g}",
                p["tp_sources"],
                p["fn_sources"],
                p["true_regions"],
                p["fp_regions"],
                f"{_fmt(p['precision'])} ({_fmt(p['precision_interval95'][0])}–"
                f"{_fmt(p['precision_interval95'][1])})",
                _fmt(p.get("precision_sources")),
                f"{_fmt(p['recall'])} ({_fmt(p['recall_interval95'][0])}–"
                f"{_fmt(p['recall_interval95'][1])})",
            ]
            for p in rows
        ],
    )


def assess_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS/FAIL (or N/A) against the issue's targets.

    Beat both baselines on mean IoU over the fields both were measured on (a
    PASS needs a positive mean paired difference; its standard error is given
    so a reader can judge significance), and reach the paper's precision (0.86)
    and recall (0.65); an undefined precision or recall does not reach it.
    """
    seg = report.get("segmentation", {})
    det = report.get("detection", {}).get("network", {})
    out: list[dict[str, Any]] = []
    for base in ("sigma3", "pybdsf"):
        name = f"IoU network > {METHOD_NAMES[base]}"
        diff = seg.get(f"network_minus_{base}") or {}
        if base not in seg or not diff.get("n"):
            out.append(
                {
                    "name": name,
                    "status": "N/A",
                    "value": _num(seg.get("network", {}).get("mean")),
                    "target": None,
                    "detail": f"{METHOD_NAMES[base]} not evaluated",
                }
            )
            continue
        # Compared on the fields both have (PyBDSF may have failed on some).
        net, other = _num(diff.get("network_mean")), _num(diff.get("baseline_mean"))
        d, s = _num(diff.get("mean")), _num(diff.get("sem"))
        if math.isnan(s) or math.isnan(d):
            verdict = "no error estimate"
        elif abs(d) > 2 * s:
            verdict = f"network {'better' if d > 0 else 'worse'} by more than 2 s.e."
        else:
            verdict = "within 2 s.e."
        out.append(
            {
                "name": name,
                "status": "N/A" if math.isnan(d) else ("PASS" if d > 0 else "FAIL"),
                "value": net,
                "target": other,
                "detail": f"paired difference {_fmt(d, 3)} ± {_fmt(s, 3)} over "
                f"{diff.get('n', 0)} fields ({verdict})",
            }
        )
    for key, target in (("precision", PAPER["precision"]), ("recall", PAPER["recall"])):
        value = _num(det.get(key))
        ci = det.get(f"{key}_interval95") or [None, None]
        out.append(
            {
                "name": f"{key} >= paper's {target}",
                # Undefined (nothing detected, or no source to find) does not reach a target.
                "status": "PASS" if value >= target else "FAIL",
                "value": value,
                "target": target,
                "detail": f"95% interval {_fmt(ci[0])}-{_fmt(ci[1])}"
                if not math.isnan(value)
                else f"undefined: {'no detected region' if key == 'precision' else 'no source'}",
            }
        )
    return out


def sanity_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks that are not targets but guard against reading too much into them.

    Eq. 5's single-class case gives a prediction of nothing an IoU of 1 on
    every field without reference emission, so the network must beat the
    empty mask, over all fields and over the fields with emission.
    """
    seg = report.get("segmentation", {})
    out = []
    for scope, key in (("all fields", None), ("fields with emission", "fields_with_emission")):
        net = seg.get("network", {})
        empty = seg.get("empty_mask", {})
        a = _num((net.get(key) or {}).get("mean") if key else net.get("mean"))
        b = _num((empty.get(key) or {}).get("mean") if key else empty.get("mean"))
        status = "N/A" if math.isnan(a) or math.isnan(b) else ("PASS" if a > b else "FAIL")
        out.append(
            {
                "name": f"IoU network > empty mask ({scope})",
                "status": status,
                "value": a,
                "target": b,
                "detail": "a prediction of nothing scores 1 on fields without emission",
            }
        )
    return out


def _target_line(t: dict[str, Any]) -> str:
    target = "" if t.get("target") is None else f" (target {_fmt(t['target'], 3)})"
    return f"{t['status']:<4}  {t['name']}: {_fmt(t.get('value'), 3)}{target}; {t['detail']}"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short plain-text summary for the terminal."""
    model = report["model"]
    lines = [f"model {model['name']} v{model['version']} ({model['path']})"]
    if model.get("placeholder"):
        lines.append(f"WARNING: {PLACEHOLDER} (metadata.trained is false)")
    if report.get("training_data"):
        lines.append(f"WARNING: {report['training_data']['note']}:")
        lines.extend(f"  {o['why']}" for o in report["training_data"]["fields"])
    lines.append(
        f"{report['n_fields']} '{report['split']}' fields, profile {report['profile']['name']}"
    )
    seg = report["segmentation"]
    for m in report["methods"]:
        lines.append(f"mean IoU {METHOD_NAMES[m]:<15} {_pm(seg[m])} (n={seg[m]['n']})")
    lines.append(f"mean IoU {'empty mask':<15} {_pm(seg['empty_mask'])} (the trivial floor)")
    det = report["detection"]
    net = det["network"]
    lines.append(
        f"detection: precision {_fmt(net['precision'])} (paper {PAPER['precision']}), "
        f"recall {_fmt(net['recall'])} (paper {PAPER['recall']}); TP {net['tp_sources']}, "
        f"FN {net['fn_sources']}, FP regions {net['fp_regions']}"
    )
    lines.append(
        f"TP only the network finds above 3 sigma: {_fmt(det['only_network']['fraction'])} "
        f"(paper {PAPER['only_network_fraction']})"
    )
    sweep = det.get("network_sweep") or []
    if sweep:
        lines.append(
            f"detection sweep (diagnostic): precision/recall at pixel threshold "
            f"{sweep[0]['pixel_threshold']:g} .. {sweep[-1]['pixel_threshold']:g}: "
            + ", ".join(f"{_fmt(p['precision'])}/{_fmt(p['recall'])}" for p in sweep)
        )
    cut = det.get("network_significance") or []
    if cut:
        lines.append(
            "significance cut (diagnostic): precision/recall of the 0.5-regions of S/N >= "
            + ", ".join(
                f"{p['min_snr']:g}: {_fmt(p['precision'])}/{_fmt(p['recall'])}" for p in cut
            )
        )
    cls = report["classification"]
    if cls.get("at_threshold"):
        a, b = cls["at_threshold"], cls["best"]
        lines.append(
            f"clusters at R >= {cls['threshold']:g}: accuracy {_fmt(a['accuracy'])}, precision "
            f"{_fmt(a['precision'])}, recall {_fmt(a['recall'])}; best accuracy "
            f"{_fmt(b['accuracy'])} at R = {b['threshold']:.3g}"
        )
    morph = report["morphology"]
    lines.append(
        f"morphology rule on {morph['n_components']} components: accuracy {_fmt(morph['accuracy'])}"
    )
    lines.extend(_target_line(t) for t in report["targets"])
    lines.extend(f"sanity: {_target_line(t)}" for t in report.get("sanity", []))
    return lines


# --- markdown -------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return out


def render_markdown(report: dict[str, Any], figures: dict[str, str]) -> str:
    """The markdown report (figures given relative to the report's folder)."""
    model, meta = report["model"], report["model"]["metadata"]
    seconds = report["seconds"]
    md: list[str] = [f"# Radio U-Net evaluation: {model['name']} version {model['version']}", ""]
    if model.get("placeholder"):
        md += [
            f"> **{PLACEHOLDER.upper()}**: `metadata.trained` is false; every number below "
            "measures random weights, not Radio U-Net.",
            "",
        ]
    training = report.get("training_data")
    if training:
        md += [f"> **{training['note']}**:", ">"]
        md += [f"> - {o['why']}" for o in training["fields"]]
        md.append("")
        held = "**training data**: see the note above"
    elif report["split"] == "test":
        held = "held out from training by the dataset contract"
    else:
        held = "none of them trained the model, by its metadata"
    md += [
        f"- Model: `{model['path']}` — base filters {meta.get('base_filters')}, depth "
        f"{meta.get('depth')}, profile `{meta.get('profile')}`, trained: {meta.get('trained')}; "
        f"{meta.get('description') or 'no description'}",
        f"- Training set-up (model metadata): `{json.dumps(meta.get('training') or {})}`",
        f"- Normalisation: `{report['profile']['name']}` ({report['profile']['vmin']:g}–"
        f"{report['profile']['vmax']:g} {report['profile']['unit']}), from "
        f"{report['profile']['chosen_from']}",
    ]
    for d in report["datasets"]:
        setup = d.get("setup") or {}
        md.append(
            f"- Data: `{d['path']}` ({d.get('format')}), set-up `{setup.get('name')}`, seed "
            f"{d.get('seed')}, created {d.get('created')} by {d.get('software')}; fields by "
            f"split {d.get('n_fields_by_split')}"
        )
    md += [
        f"- Evaluated: {report['n_fields']} fields of split `{report['split']}` ({held}): "
        + ", ".join(report["fields_evaluated"]),
        f"- Reproduce: `{report.get('command') or 'n/a'}`",
        f"- Created {report['created']} with {report['software']}; segmentation "
        f"{_fmt(seconds['segment'], 1)} s, PyBDSF {_fmt(seconds['pybdsf'], 1)} s",
        "",
        "## Targets",
        "",
        "```",
        *(_target_line(t) for t in report["targets"]),
        "```",
        "",
        "Sanity checks (not targets):",
        "",
        "```",
        *(_target_line(t) for t in report.get("sanity", [])),
        "```",
        "",
    ]

    seg = report["segmentation"]
    paper_iou = {"network": PAPER["iou_network"], "sigma3": PAPER["iou_sigma3"]}
    md += ["## Segmentation: mean IoU (eq. 5) of the binary mask against the reference mask", ""]
    rows = [
        [
            METHOD_NAMES[m],
            _pm(seg[m]),
            seg[m]["n"],
            _pm(seg[m]["fields_with_emission"]),
            _pm(paper_iou.get(m)) if m in paper_iou else "—",
        ]
        for m in report["methods"]
    ]
    empty = seg["empty_mask"]
    rows.append(
        [
            "empty mask (trivial floor)",
            _pm(empty),
            empty["n"],
            _pm(empty["fields_with_emission"]),
            "—",
        ]
    )
    md += _table(
        [
            "method",
            "ours (mean ± s.e.)",
            "fields",
            f"fields with emission ({seg['n_fields_with_emission']})",
            "paper",
        ],
        rows,
    )
    diffs = [
        "the paper's 10 test images all held diffuse emission: compare with the 'fields with "
        "emission' column",
        *(
            f"network − {METHOD_NAMES[m]}: {_pm(seg[f'network_minus_{m}'], 3)} (paired, per field)"
            for m in report["methods"]
            if m != "network"
        ),
    ]
    md += ["", *(f"- {d}" for d in diffs), "", f"![mean IoU]({figures['iou']})", ""]

    det = report["detection"]
    md += ["## Detection of diffuse sources", ""]
    rows = []
    for m in report["methods"]:
        d = det[m]
        pi, ri = d["precision_interval95"], d["recall_interval95"]
        rows.append(
            [
                METHOD_NAMES[m],
                d["tp_sources"],
                d["fn_sources"],
                d["n_sources_skipped"],
                d["true_regions"],
                d["fp_regions"],
                f"{_fmt(d['precision'])} ({_fmt(pi[0])}–{_fmt(pi[1])})",
                _fmt(d["precision_sources"]),
                f"{_fmt(d['recall'])} ({_fmt(ri[0])}–{_fmt(ri[1])})",
            ]
        )
    md += _table(
        [
            "method",
            "TP src",
            "FN src",
            "skipped src",
            "true regions",
            "FP regions",
            "precision (95%)",
            "precision (TP src)",
            "recall (95%)",
        ],
        rows,
    )
    only = det["only_network"]
    fp_cont = det["network"].get("fp_regions_on_contaminant_emission")
    md += [
        "",
        f"- Paper (Sec. 5, synthetic): precision {PAPER['precision']}, recall {PAPER['recall']}.",
        f"- TP sources the 3-sigma mask does not detect (only the network): "
        f"{only['not_detected_above_3sigma']} of {only['tp_sources']} = {_fmt(only['fraction'])} "
        f"(paper: {PAPER['only_network_fraction']}).",
        f"- Network FP regions on radio-galaxy / compact-source emission: "
        f"{'n/a' if fp_cont is None else fp_cont} of {det['network']['fp_regions']} (the "
        "paper's simulations had no radio galaxies; ours do). Such emission (true sky outside "
        "the mask, through the beam, above 5 sigma) covers "
        f"{_fmt(_num(det['network'].get('contaminant_area_fraction')) * 100, 1)}% of the sky "
        "outside the mask, a guide to chance coincidences.",
        "",
        f"![detection]({figures['detection']})",
        "",
    ]
    sweep = det.get("network_sweep") or []
    if sweep:
        md += [
            "### Network detection at other pixel thresholds (diagnostic; the paper's rule and "
            "the targets use 0.5)",
            "",
            *_detection_table(sweep, "pixel_threshold", "pixel threshold"),
            "",
            _sweep_sentence(sweep),
            "",
            "A source breaks into more regions as the threshold rises (true regions can "
            "outnumber TP sources), which lifts the region precision; 'precision (TP src)' "
            "counts each detected source once.",
            "",
        ]
    cut = det.get("network_significance") or []
    if cut:
        md += [
            "### Network detection keeping significant regions only (diagnostic)",
            "",
            "The 0.5-regions whose integrated emission reaches an S/N (flux density over "
            "rms x sqrt(beams), the component catalogue's `snr`):",
            "",
            *_detection_table(cut, "min_snr", "S/N >="),
            "",
            _sweep_sentence(cut, "min_snr", "S/N cut"),
            "",
        ]

    cls = report["classification"]
    md += ["## Cluster classification on R (2.2 R500 aperture)", ""]
    md.append(
        f"{cls['n_clusters']} clusters ({cls['n_positive']} with diffuse emission, "
        f"{cls['n_negative']} without; {cls['n_skipped']} skipped, aperture off the image)."
    )
    if cls.get("at_threshold"):
        a, b = cls["at_threshold"], cls["best"]
        lot = PAPER["classification_lotss"]
        s3 = cls.get("sigma3") or {}
        rows = [
            [
                f"network, R >= {a['threshold']:g}",
                _fmt(a["accuracy"]),
                _fmt(a["precision"]),
                _fmt(a["recall"]),
                f"{a['tp']}/{a['fp']}/{a['tn']}/{a['fn']}",
            ],
            [
                f"network, best R = {b['threshold']:.3g} (chosen on this test set)",
                _fmt(b["accuracy"]),
                _fmt(b["precision"]),
                _fmt(b["recall"]),
                f"{b['tp']}/{b['fp']}/{b['tn']}/{b['fn']}",
            ],
        ]
        if s3:
            c = s3["at_threshold"]
            rows.append(
                [
                    f"3-sigma mask, R >= {c['threshold']:g}",
                    _fmt(c["accuracy"]),
                    _fmt(c["precision"]),
                    _fmt(c["recall"]),
                    f"{c['tp']}/{c['fp']}/{c['tn']}/{c['fn']}",
                ]
            )
        rows.append(
            [
                f"paper, LoTSS-DR2/PSZ2, R >= {lot['threshold']} (real data)",
                lot["accuracy"],
                lot["precision"],
                lot["recall"],
                "—",
            ]
        )
        md += ["", *_table(["", "accuracy", "precision", "recall", "TP/FP/TN/FN"], rows), ""]
        fpr = cls["false_positive_rate"]
        ext = fpr["negative_with_extended_radio_galaxy"]
        md += _table(
            ["negative clusters", "n", f"detected (R >= {cls['threshold']:g})", "FP rate"],
            [
                [
                    "hosting an FR I / FR II / tailed galaxy",
                    ext["n"],
                    ext["n_detected"],
                    _fmt(ext["rate"]),
                ],
                [
                    "hosting any radio galaxy (incl. compact)",
                    fpr["negative_with_radio_galaxy"]["n"],
                    fpr["negative_with_radio_galaxy"]["n_detected"],
                    _fmt(fpr["negative_with_radio_galaxy"]["rate"]),
                ],
                [
                    "no radio galaxy",
                    fpr["negative_no_radio_galaxy"]["n"],
                    fpr["negative_no_radio_galaxy"]["n_detected"],
                    _fmt(fpr["negative_no_radio_galaxy"]["rate"]),
                ],
            ],
        )
        md += ["", f"![R sweep]({figures['sweep']})", ""]
    else:
        md += ["", "No cluster could be classified.", ""]

    morph = report["morphology"]
    md += ["## Halo / relic / filament labels of detected components (rule baseline)", ""]
    md += _table(
        ["true \\ predicted", *morph["predicted_classes"]],
        [[t, *row] for t, row in zip(morph["true_classes"], morph["matrix"], strict=True)],
    )
    rule = morph["rule"]
    md += [
        "",
        f"{morph['n_components']} true regions of the network matched to a source by largest "
        f"overlap; accuracy {_fmt(morph['accuracy'])}. Rule (not learned): halo if d <= "
        f"{rule['halo_max_distance_r500']} R500 and elongation < {rule['halo_max_elongation']}; "
        f"relic if {rule['relic_min_distance_r500']} <= d <= {rule['relic_max_distance_r500']} "
        f"R500, elongation >= {rule['relic_min_elongation']} and radial angle >= "
        f"{rule['relic_min_radial_angle_deg']} deg; filament if d > "
        f"{rule['filament_min_distance_r500']} R500 from every cluster and elongation >= "
        f"{rule['filament_min_elongation']}; else unclassified (d to the nearest cluster).",
        "",
        f"![confusion matrix]({figures['confusion']})",
        "",
        "## Examples",
        "",
        "Image with the 3-sigma contour, reference mask, and probability with the 0.5 contour "
        "(white) and the reference mask (red); circles: 2.2 R500.",
        "",
        f"![examples]({figures['examples']})",
        "",
        "## Definitions",
        "",
        "- Mean IoU per image (eq. 5) over valid pixels, the class absent from both reference "
        "and prediction left out (single-class case); mean ± standard error over images. "
        "Network mask: probability > 0.5. 3-sigma: image > 3 x sigma-clipped rms. PyBDSF: "
        "island mask, thresh_isl 3, thresh_pix 5, its own rms map.",
        "- A sky-model diffuse source is counted if its footprint (its label in the labels map) "
        "has at least one beam area of pixels; it is a TP if at least one beam area of its "
        "footprint is detected, else FN. Regions: 8-connected detected components of at "
        "least one beam area; FP if they overlap no reference-mask pixel. Precision = true "
        "regions / regions (headline); 'precision (TP src)' = TP sources / (TP sources + FP "
        "regions). Recall = TP sources / counted sources. Totals are pooled over fields; "
        "intervals are Wilson 95%.",
        "- Only-network fraction: TP sources of the network that the 3-sigma mask does not "
        "detect by the same rule.",
        "- Clusters: R = mean probability within 2.2 R500 (eq. 8); positive = has_diffuse; "
        "predicted positive when R >= threshold.",
        "",
    ]
    if report.get("warnings"):
        md += ["## Warnings", "", *(f"- {w}" for w in report["warnings"]), ""]
    return "\n".join(md)


# --- figures --------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def plot_iou(report: dict[str, Any], path: Path) -> None:
    seg, methods = report["segmentation"], report["methods"]
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(methods))
    means = [_num(seg[m]["mean"]) for m in methods]
    sems = [0.0 if math.isnan(_num(seg[m]["sem"])) else _num(seg[m]["sem"]) for m in methods]
    ax.bar(x, means, yerr=sems, capsize=4, color=["C0", "C1", "C2"][: len(methods)], alpha=0.7)
    rng = np.random.default_rng(0)
    for i, m in enumerate(methods):
        vals = [v for v in seg[m]["per_field"] if v is not None]
        ax.plot(i + rng.uniform(-0.15, 0.15, len(vals)), vals, "k.", ms=4, alpha=0.6)
    for i, m in enumerate(methods):
        ref = {"network": PAPER["iou_network"], "sigma3": PAPER["iou_sigma3"]}.get(m)
        if ref:
            ax.errorbar(
                i + 0.3,
                ref["mean"],
                yerr=ref["sem"],
                fmt="r*",
                ms=10,
                capsize=3,
                label="paper" if m == "network" else None,
            )
    floor = _num(seg["empty_mask"]["mean"])
    if not math.isnan(floor):
        ax.axhline(floor, color="grey", ls=":", lw=1, label="empty mask (trivial floor)")
    ax.set_xticks(x, [METHOD_NAMES[m] for m in methods])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean IoU (eq. 5)")
    ax.set_title(_title("segmentation", report), fontsize=10)
    _legend(ax, loc="lower right", fontsize=8)
    _save(fig, path)


def _legend(ax: Any, **kwargs: Any) -> None:
    """A legend when the axes have labelled artists (an empty one makes matplotlib warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _title(what: str, report: dict[str, Any]) -> str:
    model = report["model"]
    tag = f" [{PLACEHOLDER}]" if model.get("placeholder") else ""
    tag += f" [{TRAINING_DATA}]" if report.get("training_data") else ""
    return f"{what}: {model['name']} v{model['version']}, {report['n_fields']} fields{tag}"


def plot_detection(report: dict[str, Any], path: Path) -> None:
    """Precision and recall of each method; with a sweep, the network's curve beside them."""
    det, methods = report["detection"], report["methods"]
    sweep = det.get("network_sweep") or []
    fig = _figure(11.0 if sweep else 6.5, 4.0)
    ax = fig.add_subplot(1, 2 if sweep else 1, 1)
    x = np.arange(len(methods))
    for k, (key, colour) in enumerate((("precision", "C0"), ("recall", "C3"))):
        vals = np.array([_num(det[m][key]) for m in methods])
        ci = np.array([[_num(v) for v in det[m][f"{key}_interval95"]] for m in methods])
        err = np.nan_to_num(np.abs(np.stack([vals - ci[:, 0], ci[:, 1] - vals])), nan=0.0)
        ax.bar(
            x + (k - 0.5) * 0.35,
            np.nan_to_num(vals),
            width=0.35,
            yerr=err,
            capsize=3,
            color=colour,
            alpha=0.7,
            label=key,
        )
        ax.axhline(PAPER[key], color=colour, ls="--", lw=1, label=f"paper {key} {PAPER[key]}")
        for i in np.flatnonzero(np.isnan(vals)):
            ax.text(x[i] + (k - 0.5) * 0.35, 0.02, "n/a", ha="center", fontsize=8, color=colour)
    ax.set_xticks(x, [METHOD_NAMES[m] for m in methods])
    ax.set_ylim(0, 1.35)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("fraction (95% Wilson intervals)")
    ax.set_title(_title("detection", report), fontsize=10)
    _legend(ax, fontsize=7, loc="upper center", ncol=2)
    if sweep:
        _plot_detection_sweep(fig.add_subplot(1, 2, 2), sweep)
    _save(fig, path)


def _plot_detection_sweep(ax: Axes, sweep: Sequence[dict[str, Any]]) -> None:
    recall = [_num(p["recall"]) for p in sweep]
    precision = [_num(p["precision"]) for p in sweep]
    ax.plot(recall, precision, "o-", color="C0", label="Radio U-Net")
    # One label per point: thresholds with the same counts share it.
    labels: dict[tuple[float, float], list[str]] = {}
    for p, x, y in zip(sweep, recall, precision, strict=True):
        if not (math.isnan(x) or math.isnan(y)):
            labels.setdefault((x, y), []).append(f"{p['pixel_threshold']:g}")
    for xy, names in labels.items():
        ax.annotate(", ".join(names), xy, xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.plot([PAPER["recall"]], [PAPER["precision"]], "r*", ms=10, label="paper (at 0.5)")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("network at other pixel thresholds (diagnostic)", fontsize=10)
    _legend(ax, fontsize=7, loc="upper right")


def plot_sweep(report: dict[str, Any], path: Path) -> None:
    """Fig. 6: the distribution of R (top) and accuracy/precision/recall vs threshold (bottom)."""
    cls = report["classification"]
    fig = _figure(6.5, 6.5)
    top = fig.add_subplot(2, 1, 1)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
    rows = [r for r in cls["clusters"] if r.get("ratio") is not None]
    floor = 1e-4
    bins = np.logspace(-4, 0, 33).tolist()
    groups = (
        ("with diffuse emission", [r for r in rows if r["positive"]], "C0"),
        ("none, radio galaxy", [r for r in rows if not r["positive"] and r["radio_galaxy"]], "C1"),
        (
            "none, no radio galaxy",
            [r for r in rows if not r["positive"] and not r["radio_galaxy"]],
            "C2",
        ),
    )
    for label, members, colour in groups:
        if members:
            vals = np.clip([r["ratio"] for r in members], floor, 1.0)
            top.hist(
                vals,
                bins=bins,
                histtype="step",
                lw=1.5,
                color=colour,
                label=f"{label} ({len(members)})",
            )
    top.set_xscale("log")
    top.set_ylabel("clusters")
    top.set_xlabel(f"R in 2.2 R500 (values below {floor:g} drawn at {floor:g})", fontsize=8)
    _legend(top, fontsize=8)
    top.set_title(_title("cluster classification", report), fontsize=10)
    sweep = cls.get("sweep") or []
    if sweep:
        t = [p["threshold"] for p in sweep]
        for key, colour, lw in (
            ("precision", "C0", 1.2),
            ("recall", "C3", 1.2),
            ("accuracy", "k", 2),
        ):
            bottom.plot(t, [_num(p[key]) for p in sweep], color=colour, lw=lw, label=key)
        s3 = (cls.get("sigma3") or {}).get("sweep") or []
        if s3:
            bottom.plot(
                [p["threshold"] for p in s3],
                [_num(p["accuracy"]) for p in s3],
                color="k",
                ls=":",
                label="accuracy, 3-sigma mask",
            )
        bottom.axvline(cls["threshold"], color="grey", ls="--", lw=1)
        best = cls["best"]
        bottom.plot([best["threshold"]], [best["accuracy"]], "ko", mfc="none", ms=8)
    bottom.set_xscale("log")
    bottom.set_xlim(floor, 1.0)
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("R threshold")
    bottom.set_ylabel("fraction")
    _legend(bottom, fontsize=8, loc="lower left")
    _save(fig, path)


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    morph = report["morphology"]
    matrix = np.asarray(morph["matrix"], dtype=float)
    fig = _figure(5.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1.0, float(matrix.max())))
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            dark = matrix[i, j] > 0.6 * max(1.0, float(matrix.max()))
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                color="white" if dark else "black",
            )
    ax.set_xticks(range(matrix.shape[1]), morph["predicted_classes"])
    ax.set_yticks(range(matrix.shape[0]), morph["true_classes"])
    ax.set_xlabel("rule's label")
    ax.set_ylabel("simulator's class")
    ax.set_title(_title(f"morphology rule, {morph['n_components']} components", report), fontsize=9)
    _save(fig, path)


def plot_examples(examples: Sequence[FieldArrays], path: Path, *, title: str = "") -> None:
    n = max(1, len(examples))
    fig = _figure(12.0, 3.8 * n)
    if not examples:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no field evaluated", ha="center", va="center")
        ax.set_axis_off()
        _save(fig, path)
        return
    for i, ex in enumerate(examples):
        rms = ex.rms_jy_beam if ex.rms_jy_beam > 0 else 1e-6
        img = np.ma.masked_invalid(np.clip(ex.image_jy_beam, 0.5 * rms, None))
        finite = ex.image_jy_beam[np.isfinite(ex.image_jy_beam)]
        vmax = max(float(np.percentile(finite, 99.9)) if finite.size else 1.0, 10 * rms)
        axes = [fig.add_subplot(n, 3, 3 * i + k + 1) for k in range(3)]
        axes[0].imshow(
            img, origin="lower", cmap=mpl.colormaps["inferno"], norm=LogNorm(0.5 * rms, vmax)
        )
        if ex.sigma3.any() and not ex.sigma3.all():
            axes[0].contour(ex.sigma3.astype(float), levels=[0.5], colors="orange", linewidths=0.6)
        axes[0].set_title(f"{ex.id}: image, 3-sigma contour", fontsize=9)
        axes[1].imshow(ex.mask, origin="lower", cmap="gray", norm=Normalize(0, 1))
        axes[1].set_title("reference mask", fontsize=9)
        prob = np.ma.masked_invalid(ex.probability)
        axes[2].imshow(prob, origin="lower", cmap="viridis", norm=Normalize(0, 1))
        if np.nanmin(ex.probability) < 0.5 < np.nanmax(ex.probability):
            axes[2].contour(ex.probability, levels=[0.5], colors="white", linewidths=0.6)
        if ex.mask.any() and not ex.mask.all():
            axes[2].contour(ex.mask.astype(float), levels=[0.5], colors="red", linewidths=0.6)
        axes[2].set_title("probability, 0.5 (white), reference (red)", fontsize=9)
        for ax in axes:
            for c in ex.clusters:
                ax.add_patch(Circle(c["xy"], c["radius_pix"], fill=False, color="cyan", lw=0.8))
            ax.set_xlim(-0.5, ex.mask.shape[1] - 0.5)  # circles may reach beyond the image
            ax.set_ylim(-0.5, ex.mask.shape[0] - 0.5)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def write_report(evaluation: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the figures into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = jsonable(evaluation.report)
    paths = {key: out / rel for key, rel in FIGURES.items()}
    plot_iou(report, paths["iou"])
    plot_detection(report, paths["detection"])
    plot_sweep(report, paths["sweep"])
    plot_confusion(report, paths["confusion"])
    plot_examples(evaluation.examples, paths["examples"], title=_title("examples", report))
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(render_markdown(report, FIGURES) + "\n")
    return paths
