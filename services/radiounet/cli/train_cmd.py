"""``radiounet train`` and ``radiounet finetune``: train Radio U-Net on simulated datasets."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..model.repository import DEFAULT_MODEL_NAME, check_writable_folder, default_model_repo
from ..training.config import FINETUNE_TRAINABLE_TOP, OPTIMIZERS, TrainingConfig
from ._common import add_model_option

__all__ = ["register"]

#: Command-line option (argparse dest) -> TrainingConfig field. Options left
#: out take the configuration's default, or the stored run's when resuming.
_CONFIG_OPTIONS = {
    "base_filters": "base_filters",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "optimizer": "optimizer",
    "val_fraction": "val_fraction",
    "stride": "stride",
    "profile": "profile",
    "seed": "seed",
    "max_fields": "max_fields",
    "augment": "augment",
    "positive_fraction": "positive_fraction",
    "mixed_precision": "mixed_precision",
}


def _add_common(p: argparse.ArgumentParser, defaults: TrainingConfig) -> None:
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        metavar="DIR",
        default=None,
        help="simulated dataset folder(s) (radiounet-sim/1 manifest.json); only their "
        "'train' fields are read (default when resuming: the run's)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="run folder for config, history, TensorBoard logs and checkpoints "
        "(e.g. out/runs/NAME)",
    )
    p.add_argument("--epochs", type=int, help=f"total epochs (default {defaults.epochs})")
    p.add_argument("--batch-size", type=int, help=f"tiles per step (default {defaults.batch_size})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {defaults.learning_rate:g})")
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, help=f"optimizer (default {defaults.optimizer})"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        help=f"fraction of the tiles held out for validation (default {defaults.val_fraction:g})",
    )
    p.add_argument(
        "--stride",
        type=int,
        help=f"step between training tiles: {defaults.tile} non-overlapping (default), "
        f"{defaults.tile // 2} half-overlapping",
    )
    p.add_argument(
        "--profile",
        metavar="NAME",
        help="normalisation profile (name or VMIN:VMAX:UNIT); default from the dataset's "
        "set-up (paper-6arcsec -> synthetic, lotss-dr2-lowres -> lotss-dr2-lowres)",
    )
    p.add_argument("--seed", type=int, help=f"random seed (default {defaults.seed})")
    p.add_argument("--max-fields", type=int, metavar="N", help="use at most N training fields")
    p.add_argument(
        "--positive-fraction",
        type=float,
        metavar="F",
        help="keep all tiles with diffuse emission and draw empty ones so that this share "
        "of the training tiles holds emission (default: all tiles, as the paper)",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_const",
        const=True,
        default=None,
        help="float16 compute with float32 weights (for GPUs; off by default)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last checkpoint (up to --epochs in all)",
    )
    p.add_argument(
        "--export",
        action="store_true",
        help="export the best weights as the next version of --repo when done",
    )
    p.add_argument(
        "--recalibrate-bn",
        type=int,
        default=0,
        metavar="N",
        help="on export, re-estimate the batch-norm statistics over N training batches "
        "(for short runs, whose moving averages have not converged; default 0: off)",
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=default_model_repo(),
        metavar="DIR",
        help="model repository for --export (default: the checkout's model_repo)",
    )
    p.add_argument("--description", default="", help="description stored with the export")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")


def register(sub: Any) -> None:
    paper = TrainingConfig()
    t = sub.add_parser(
        "train",
        help="train Radio U-Net on simulated datasets",
        description="Train Radio U-Net from scratch on the training fields of simulated "
        "datasets (`radiounet simulate`), with the paper's set-up by default: 192-pixel "
        "tiles, RMSprop at lr 1e-4, batch 50, categorical cross-entropy, 200 epochs, 5% of "
        "the tiles for validation. Test fields are never read.",
    )
    _add_common(t, paper)
    t.add_argument(
        "--base-filters", type=int, help=f"U-Net base width (default {paper.base_filters})"
    )
    t.add_argument(
        "--augment",
        action="store_const",
        const=True,
        default=None,
        help="random 90-degree rotations and flips of the tiles",
    )
    t.set_defaults(run=_run_train)

    ft_defaults = TrainingConfig.finetuning()
    f = sub.add_parser(
        "finetune",
        help="fine-tune an exported model with its top layers trainable",
        description="Fine-tune an exported Radio U-Net on the training fields of other "
        "datasets, all but the top layers frozen (Sec. 6.3 of the paper: top 10 layers, "
        "100 epochs, lr 1e-4, 10% validation, rotations and flips).",
    )
    add_model_option(f)
    f.add_argument("--model-version", type=int, default=None, help="model version (default latest)")
    _add_common(f, ft_defaults)
    f.add_argument(
        "--trainable-top",
        type=int,
        default=None,
        metavar="N",
        help="layers left trainable, counted from the output over all of the model's 76 "
        f"layers (default {FINETUNE_TRAINABLE_TOP})",
    )
    f.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const=False,
        default=None,
        help="no rotation/flip augmentation",
    )
    f.set_defaults(run=_run_finetune)


def _config(args: argparse.Namespace, base: TrainingConfig) -> TrainingConfig:
    overrides = {
        field: getattr(args, dest)
        for dest, field in _CONFIG_OPTIONS.items()
        if getattr(args, dest, None) is not None
    }
    return replace(base, **overrides)


def _report(result: Any, args: argparse.Namespace) -> None:
    best = (
        f"; best {result.monitor} {result.best_value:.4g} at epoch {result.best_epoch}"
        if result.best_epoch
        else ""
    )
    print(
        f"{result.epochs} epochs done in {result.run_dir} ({result.n_train_tiles} training and "
        f"{result.n_val_tiles} validation tiles from {result.n_fields} fields, "
        f"{result.seconds:.0f} s this session){best}"
    )
    if args.export:
        from ..training.train import export_trained, model_card_section

        path = export_trained(
            result.run_dir,
            repo=args.repo,
            description=args.description,
            recalibrate_batches=args.recalibrate_bn,
        )
        print(f"exported {path}")
        print(f"model card section (for {path.parent / 'README.md'}):\n")
        print(model_card_section(path))


class _Terminated(BaseException):
    """SIGTERM, raised where the run is (a BaseException as KeyboardInterrupt: none catches it)."""


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM raises :class:`_Terminated` inside the block instead of ending the process silently.

    Checkpoints are written under temporary names and renamed, so stopping
    anywhere leaves the last finished epoch to resume from, as SIGINT does.
    """

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (the command runs there)
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _guarded(command: str, args: argparse.Namespace, body: Callable[[], int]) -> int:
    """Check the output folders, run ``body``; on SIGINT (exit 130) or SIGTERM (143) say
    how many epochs are saved and how to go on (the same line for both)."""
    from ..training.train import read_run

    check_writable_folder(args.run_dir, "--run-dir")
    if args.export:  # checked now, not after the training
        check_writable_folder(args.repo / DEFAULT_MODEL_NAME, "--repo")
    try:
        with _stop_signals():
            return body()
    except (KeyboardInterrupt, _Terminated) as exc:
        name, code = ("SIGINT", 130) if isinstance(exc, KeyboardInterrupt) else ("SIGTERM", 143)
        try:
            saved = int(read_run(args.run_dir).state.get("epoch") or 0)
        except ValueError:  # stopped before the run folder was written
            saved = 0
        if saved:
            what = (
                f"{saved} epoch{'s' if saved > 1 else ''} saved in {args.run_dir}: continue with "
                f"`radiounet {command} --run-dir {shlex.quote(str(args.run_dir))} --resume`"
            )
        else:
            what = f"no epoch finished, nothing saved in {args.run_dir} to resume"
        print(f"radiounet {command}: interrupted ({name}); {what}", file=sys.stderr)
        return code


def _run_train(args: argparse.Namespace) -> int:
    from ..training.train import read_run, train

    if args.resume:
        stored = read_run(args.run_dir)
        if stored.mode != "train":
            raise ValueError(f"{args.run_dir} is a {stored.mode} run; resume it with that command")
        config = _config(args, stored.config)
        data = args.data or [Path(d) for d in stored.dataset_dirs]
    else:
        if not args.data:
            raise ValueError("--data is required (unless resuming with --resume)")
        config = _config(args, TrainingConfig())
        data = args.data

    def body() -> int:
        result = train(
            config,
            dataset_dirs=data,
            run_dir=args.run_dir,
            resume=args.resume,
            progress=not args.no_progress,
        )
        _report(result, args)
        return 0

    return _guarded("train", args, body)


def _run_finetune(args: argparse.Namespace) -> int:
    from ..model.repository import resolve_model
    from ..training.train import finetune, read_run

    model: Any = args.model
    trainable_top = args.trainable_top
    if args.resume:
        stored = read_run(args.run_dir)
        if stored.mode != "finetune" or not stored.finetune:
            raise ValueError(f"{args.run_dir} is a {stored.mode} run; resume it with that command")
        config = _config(args, stored.config)
        data = args.data or [Path(d) for d in stored.dataset_dirs]
        if model is None:
            model = Path(stored.finetune["base_model"])
        if trainable_top is None:
            trainable_top = stored.finetune["trainable_top"]
    else:
        if not args.data:
            raise ValueError("--data is required (unless resuming with --resume)")
        config = _config(args, TrainingConfig.finetuning())
        data = args.data
    # None: the shipped repository's latest version.
    model = resolve_model(model, version=args.model_version)

    def body() -> int:
        result = finetune(
            config,
            model_version=model,
            dataset_dirs=data,
            run_dir=args.run_dir,
            trainable_top=FINETUNE_TRAINABLE_TOP if trainable_top is None else trainable_top,
            augment=config.augment,
            resume=args.resume,
            progress=not args.no_progress,
        )
        _report(result, args)
        return 0

    return _guarded("finetune", args, body)
