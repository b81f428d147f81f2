"""``radiounet model``: inspect the model repository, create a placeholder version, calibrate a
version's decision threshold, or copy the repository to and from the object store
(``push``/``pull``, for TF Serving in the cluster)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..model.repository import (
    CONFIG_FILE,
    DEFAULT_MODEL_NAME,
    METADATA_FILE,
    SIGNATURE,
    ModelMetadata,
    ModelVersion,
    check_writable_folder,
    default_model_repo,
    ensure_model_config,
    resolve_model,
    saved_model_problem,
)
from ..model.threshold import threshold_of
from ..stream.settings import OBJECT_STORE_SETTINGS
from ._common import add_fields_options, add_model_option, model_for_fields
from ._stack_settings import settings_with_stack
from ._stream_options import add_stream_options, guarded

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("model", help="show or create model versions (TF Serving layout)")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    info = msub.add_parser("info", help="print a version's metadata and serving signature")
    add_model_option(info)
    info.add_argument(
        "--model-version",
        type=int,
        default=None,
        metavar="N",
        help="model version (default latest)",
    )
    info.set_defaults(run=_info)

    _register_calibrate(msub)

    init = msub.add_parser(
        "init",
        help="export an untrained (placeholder) Radio U-Net as the next version",
        description="Build Radio U-Net with random weights (seeded) and export it in TF "
        "Serving's layout into --repo, with a models.config naming it. Its metadata says "
        "trained=false.",
    )
    # Required: a default of the shipped model_repo made an untrained placeholder its latest
    # version, which demo, classify and the model server then use.
    init.add_argument(
        "--repo",
        type=Path,
        required=True,
        metavar="DIR",
        help=f"model repository to write into (the shipped one is {default_model_repo()})",
    )
    init.add_argument(
        "--base-filters",
        type=int,
        default=32,
        metavar="N",
        help="U-Net base width (default %(default)s, the paper's)",
    )
    init.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="weight initialisation seed (default %(default)s)",
    )
    init.add_argument(
        "--version",
        type=int,
        default=None,
        metavar="N",
        help="version number (default: the next one)",
    )
    init.set_defaults(run=_init)

    push = msub.add_parser(
        "push",
        help="upload a model repository to the object store (creates the bucket)",
        description="Upload models.config and every version folder (<name>/<integer>/) of "
        "a model repository to the bucket under --prefix. Files already stored with the same "
        "size and MD5 are skipped; each version's files go up before its .complete marker, "
        "and models.config last, so a reader never sees half a version.",
    )
    push.add_argument(
        "--repo",
        type=Path,
        required=True,
        metavar="DIR",
        help="model repository (in the image: /opt/radiounet/model_repo)",
    )
    _add_prefix(push)
    add_stream_options(push, only=OBJECT_STORE_SETTINGS)  # no broker or model server
    push.set_defaults(run=_push)

    pull = msub.add_parser(
        "pull",
        help="download the model repository from the object store (TF Serving's init step)",
        description="Wait (--wait) until the bucket holds models.config and a complete "
        "version of every model it names, then download each complete version not already "
        "in --dest into a temporary folder and rename it into place, and models.config "
        "last. Exit status 1 with one error line when the wait is over, the bucket is "
        "missing, the store refuses the credentials or cannot be reached.",
    )
    pull.add_argument(
        "--dest", type=Path, required=True, metavar="DIR", help="local model repository"
    )
    pull.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long to wait for the repository to be complete (default 0: look once)",
    )
    _add_prefix(pull)
    add_stream_options(pull, only=OBJECT_STORE_SETTINGS)
    pull.set_defaults(run=_pull)


def _register_calibrate(msub: Any) -> None:
    cal = msub.add_parser(
        "calibrate",
        help="choose a version's decision threshold on R from simulated clusters",
        description="Segment the --split fields of simulated datasets (`radiounet simulate`) "
        "with the model version, take each cluster's R (mean probability within 2.2 R500) "
        "and its truth from the manifest, and choose the threshold of maximum accuracy: the "
        "geometric midpoint between two consecutive R values, ties to the widest gap in dex. "
        "Print it beside the paper's 0.015 and, unless --dry-run, write it as "
        "decision_threshold (with how it was chosen, calibration) into the version's "
        f"{METADATA_FILE}, which `radiounet classify`, `radiounet demo` and the stream "
        "classifier (`radiounet serve classifier --model-repo`, after `radiounet model push` "
        "in a cluster) then use. TF Serving ignores "
        "assets.extra: the weights and the serving signature are untouched. The 'train' "
        "fields of a dataset that trained the version are refused; calibrating on the fields "
        "an evaluation then uses flatters that evaluation.",
    )
    add_fields_options(cal)
    cal.add_argument(
        "--split", required=True, help="fields calibrated on (e.g. test: held out from training)"
    )
    cal.add_argument("--dry-run", action="store_true", help="print the calibration, write nothing")
    cal.set_defaults(run=_calibrate)


def _add_prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix",
        default="model_repo/",
        help="key prefix of the repository in the bucket (default %(default)s)",
    )


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _info(args: argparse.Namespace) -> int:
    model = resolve_model(args.model, version=args.model_version)
    # The signature printed is the one every export has: show it only if the file has it.
    problem = saved_model_problem(model.path, metadata=False)
    if problem is not None:
        raise ValueError(f"{model.path}: {problem}")
    threshold = threshold_of(model)
    print(
        json.dumps(
            {
                "name": model.name,
                "version": model.version,
                "path": str(model.path),
                "signature": asdict(SIGNATURE),
                "decision_threshold": {
                    "value": threshold.value,
                    "source": threshold.source,
                    "calibrated_on": _calibration_summary(model.metadata.calibration),
                },
                "metadata": asdict(model.metadata),
            },
            indent=2,
        )
    )
    return 0


def _calibration_summary(calibration: dict[str, Any]) -> str | None:
    """One line of ``metadata.calibration`` (the whole record is under ``metadata``)."""
    if not calibration:
        return None
    paths = ", ".join(str(d.get("path")) for d in calibration.get("datasets") or [])
    paper = calibration.get("paper_threshold") or {}
    return (
        f"{calibration.get('clusters')} clusters of split {calibration.get('split')!r} of "
        f"{paths}: accuracy {calibration.get('accuracy')} (paper's {paper.get('threshold')}: "
        f"{paper.get('accuracy')}), {calibration.get('created')}"
    )


def _calibrate_command(args: argparse.Namespace, model: ModelVersion) -> str:
    parts = ["radiounet", "model", "calibrate", "--model", str(model.path)]
    parts += ["--data", *(str(d) for d in args.data), "--split", args.split]
    if args.max_fields is not None:
        parts += ["--max-fields", str(args.max_fields)]
    return shlex.join(parts)


def _calibrate(args: argparse.Namespace) -> int:
    from ..evaluation.calibration import calibrate, summary_lines, write_calibration

    model, bar = model_for_fields(args, "calibrate")
    if not args.dry_run:  # checked before segmenting, not when writing the result
        check_writable_folder(model.path / METADATA_FILE.parent, "--model")
    result = calibrate(
        model,
        args.data,
        split=args.split,
        max_fields=args.max_fields,
        batch_size=args.batch_size,
        progress=bar,
    )
    for line in summary_lines(result):
        print(line)
    target = model.path / METADATA_FILE
    if args.dry_run:
        print(f"dry run: {target} not changed")
        return 0
    write_calibration(result, command=_calibrate_command(args, model))
    print(
        f"wrote decision_threshold {result.threshold:.6g} and its calibration to {target} "
        "(weights and serving signature untouched)"
    )
    return 0


def _init(args: argparse.Namespace) -> int:
    check_writable_folder(args.repo / DEFAULT_MODEL_NAME, "--repo")
    from ..model.export import export_saved_model
    from ..model.unet import build_radio_unet
    from ..tf_runtime import keras

    keras.utils.set_random_seed(args.seed)
    model = build_radio_unet(base_filters=args.base_filters, tile=SIGNATURE.tile)
    metadata = ModelMetadata(
        base_filters=args.base_filters,
        trained=False,
        description=f"placeholder: untrained Radio U-Net, Glorot-uniform weights, seed {args.seed}",
    )
    path = export_saved_model(model, args.repo, metadata, version=args.version)
    print(f"exported placeholder model ({model.count_params():,} parameters) to {path}")
    # TF Serving and `model push` read the repository through its models.config.
    config = ensure_model_config(args.repo, DEFAULT_MODEL_NAME)
    if config is not None:
        print(f"{config} {args.repo / CONFIG_FILE} (serves {DEFAULT_MODEL_NAME}, latest version)")
    return 0


def _bad_versions(repo: Path) -> list[str]:
    """One line for each version of ``repo`` that TF Serving or the classifier cannot use."""
    from radiounet.stream.model_sync import local_versions

    lines = []
    for _, _, folder in local_versions(repo):
        problem = saved_model_problem(folder)
        if problem is not None:
            lines.append(f"{folder}: {problem}")
    return lines


def _push(args: argparse.Namespace) -> int:
    from radiounet.stream.model_sync import normalise_prefix, push
    from radiounet.stream.object_store import ObjectStore

    prefix = normalise_prefix(args.prefix)
    # Checked before anything goes up: a pushed corrupt latest version stops TF Serving, and
    # one without its metadata silently loses its calibrated threshold in the classifier.
    bad = _bad_versions(args.repo)
    for line in bad:
        print(f"radiounet model push: error: {line}; nothing pushed", file=sys.stderr)
    if bad:
        return 2
    settings = settings_with_stack(args)

    def body() -> int:
        report = push(
            ObjectStore.from_settings(settings), args.repo, prefix=prefix, say=_say("model push")
        )
        where = f"s3://{report.bucket}/{prefix}"
        if report.created_bucket:
            print(f"created bucket {report.bucket!r} at {settings.s3_endpoint}")
        if report.uploaded:
            changed = ", ".join(report.changed_versions) or "none"
            print(
                f"pushed {args.repo} to {where}: {len(report.uploaded)} objects uploaded "
                f"({_megabytes(report.uploaded_bytes)}), {report.unchanged} unchanged; "
                f"versions changed: {changed}"
            )
        else:
            print(f"{where} already up to date ({', '.join(report.versions)})")
        return 0

    return guarded("model push", body)


def _pull(args: argparse.Namespace) -> int:
    from radiounet.stream.model_sync import normalise_prefix, pull
    from radiounet.stream.object_store import ObjectStore

    prefix = normalise_prefix(args.prefix)
    settings = settings_with_stack(args)

    def body() -> int:
        report = pull(
            ObjectStore.from_settings(settings),
            args.dest,
            prefix=prefix,
            wait_s=args.wait,
            say=_say("model pull"),
        )
        where = f"s3://{settings.bucket}/{prefix}"
        got = ", ".join(report.downloaded) or "none"
        kept = ", ".join(report.present) or "none"
        print(
            f"pulled {where} into {args.dest}: downloaded {got} "
            f"({_megabytes(report.downloaded_bytes)}); already present {kept}"
            + ("; models.config written" if report.config_written else "")
        )
        return 0

    return guarded("model pull", body)


def _say(command: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"radiounet {command}: {message}", file=sys.stderr, flush=True)

    return say
