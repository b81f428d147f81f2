"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ..core.normalisation import PROFILES
from ..core.segmentation import DEFAULT_BATCH_SIZE
from ..io.fits_image import ImageWarning
from ..workflows import Cluster

if TYPE_CHECKING:
    from ..model.repository import ModelVersion

__all__ = [
    "add_cluster_options",
    "add_fields_options",
    "add_model_option",
    "add_profile_option",
    "cluster_from_args",
    "image_warnings_as_lines",
    "tile_progress",
    "warn_placeholder",
]


def add_model_option(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="DIR",
        help=help_text
        or "model repository, model folder or version folder (default: the shipped "
        "model_repo, latest version)",
    )


def add_fields_options(parser: argparse.ArgumentParser) -> None:
    """The options :func:`model_for_fields` reads: the model, the datasets, their limits."""
    add_model_option(parser)
    parser.add_argument(
        "--model-version",
        type=int,
        default=None,
        metavar="N",
        help="model version (default latest)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        metavar="DIR",
        help="dataset folder(s) holding manifest.json",
    )
    parser.add_argument(
        "--max-fields", type=int, default=None, metavar="N", help="at most N fields"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="B",
        help=f"tiles per model call (default {DEFAULT_BATCH_SIZE})",
    )


def add_profile_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--profile",
        default=default,
        metavar="NAME",
        help=f"normalisation profile: one of {', '.join(sorted(PROFILES))}, or "
        f"VMIN:VMAX:UNIT (UNIT Jy/beam or Jy/pixel); default {default}",
    )


class tile_progress:
    """A tqdm bar over tiles (on stderr, only on a terminal)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: tqdm | None = None

    def start(self, total: int) -> None:
        self.bar = tqdm(total=total, desc=self.desc, unit="tile", disable=None, file=sys.stderr)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def image_warnings_as_lines() -> Iterator[None]:
    """Print each :class:`ImageWarning` raised inside as one ``warning: ...`` line on stderr.

    Other warnings go on as usual.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImageWarning)
        try:
            yield
        finally:  # an error after a warning: the warning still shows, before the error
            for w in caught:
                if issubclass(w.category, ImageWarning):
                    print(f"warning: {w.message}", file=sys.stderr)
    for w in caught:
        if not issubclass(w.category, ImageWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def warn_placeholder(trained: bool) -> None:
    if not trained:
        print(
            "note: the model's weights are a placeholder (untrained); probabilities and R "
            "are not meaningful until a trained model is installed (see model_repo/radio_unet/"
            "README.md)",
            file=sys.stderr,
        )


def model_for_fields(
    args: argparse.Namespace, desc: str
) -> tuple[ModelVersion, Callable[[list[Any]], Any]]:
    """The model for a run over simulated fields, and its progress bar over the fields.

    ``--max-fields``, ``--batch-size`` and the ``--data`` datasets are checked
    before the (slow) model load, so a typo fails at once.
    """
    from ..evaluation.run import load_dataset
    from ..model.repository import resolve_model

    if args.max_fields is not None and args.max_fields < 1:
        raise ValueError(f"--max-fields must be a positive integer, got {args.max_fields!r}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size!r}")
    for d in args.data:
        load_dataset(d)
    model = resolve_model(args.model, version=args.model_version)
    warn_placeholder(model.metadata.trained)

    def bar(fields: list[Any]) -> Any:
        return tqdm(fields, desc=desc, unit="field", disable=None, file=sys.stderr)

    return model, bar


def add_cluster_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--ra/--dec and the cluster size (--theta500, or --z with --m500)."""
    group = parser.add_argument_group(
        "cluster" + ("" if required else " (optional: draws the 2.2 R500 circle)")
    )
    group.add_argument("--ra", type=float, required=required, help="cluster RA, ICRS (J2000) [deg]")
    group.add_argument(
        "--dec", type=float, required=required, help="cluster Dec, ICRS (J2000) [deg]"
    )
    group.add_argument("--z", type=float, default=None, help="redshift")
    group.add_argument("--m500", type=float, default=None, help="M500 [1e14 Msun]")
    group.add_argument("--theta500", type=float, default=None, help="R500 on the sky [arcmin]")
    group.add_argument("--name", default="", help="cluster name (for reports)")


def cluster_from_args(args: argparse.Namespace) -> Cluster | None:
    """The cluster the options describe, or None when no position was given."""
    if args.ra is None and args.dec is None:
        return None
    if args.ra is None or args.dec is None:
        raise ValueError("give both --ra and --dec")
    if args.theta500 is None and (args.z is None or args.m500 is None):
        raise ValueError("give --theta500, or both --z and --m500, for the cluster size")
    return Cluster(
        ra_deg=args.ra,
        dec_deg=args.dec,
        z=args.z,
        m500_1e14=args.m500,
        theta500_arcmin=args.theta500,
        name=args.name,
    )
