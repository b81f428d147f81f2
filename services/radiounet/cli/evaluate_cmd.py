"""``radiounet evaluate``: measure a model on held-out simulated fields, as the paper does."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from ..core.detection import DEFAULT_THRESHOLD
from ..model.repository import check_writable_folder
from ._common import add_fields_options, model_for_fields

__all__ = ["register", "run"]

#: Files the command writes into --out (besides the figures/ folder).
OUTPUTS = ("report.json", "report.md")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a model on held-out simulated fields (IoU, detection, R sweep)",
        description="Segment the held-out fields of simulated datasets (`radiounet simulate`) "
        "and write report.json, report.md and figures: mean IoU (eq. 5) of the network "
        "against a 3-sigma mask and PyBDSF islands, precision and recall of diffuse sources, "
        "the fraction only the network detects, accuracy/precision/recall of the cluster "
        "classification against the R threshold, and a confusion matrix of halo/relic/"
        "filament labels, beside the numbers of Stuardi et al. (2024).",
    )
    add_fields_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--split", default="test", help="fields evaluated (default: test)")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"R threshold of the cluster classification (default {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--no-pybdsf", action="store_true", help="skip the PyBDSF baseline")
    p.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="normalisation profile (default: the model's, else the dataset set-up's)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.add_argument(
        "--allow-training-fields",
        action="store_true",
        help="evaluate fields that trained the model (refused otherwise, as by `model "
        "calibrate`); the report then says they are training data, a diagnostic",
    )
    p.set_defaults(run=run)


def _command(args: argparse.Namespace, model_path: Path) -> str:
    parts = ["radiounet", "evaluate", "--model", str(model_path)]
    parts += ["--data", *(str(d) for d in args.data), "--out", str(args.out)]
    parts += ["--split", args.split, "--threshold", f"{args.threshold:g}"]
    if args.no_pybdsf:
        parts.append("--no-pybdsf")
    if args.max_fields is not None:
        parts += ["--max-fields", str(args.max_fields)]
    if args.profile is not None:
        parts += ["--profile", args.profile]
    if args.allow_training_fields:
        parts.append("--allow-training-fields")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report import summary_lines, write_report
    from ..evaluation.run import evaluate

    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold!r}")
    existing = [args.out / name for name in OUTPUTS if (args.out / name).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists (use --overwrite to replace it)")
    check_writable_folder(args.out, "--out")  # now, not after segmenting every field
    model, bar = model_for_fields(args, "evaluate")
    evaluation = evaluate(
        model,
        args.data,
        split=args.split,
        threshold=args.threshold,
        use_pybdsf=not args.no_pybdsf,
        max_fields=args.max_fields,
        profile=args.profile,
        batch_size=args.batch_size,
        command=_command(args, model.path),
        progress=bar,
        allow_training_fields=args.allow_training_fields,
    )
    paths = write_report(evaluation, args.out)
    for line in summary_lines(evaluation.report):
        print(line)
    print(f"wrote {paths['json']}, {paths['markdown']} and figures in {paths['iou'].parent}")
    return 0
