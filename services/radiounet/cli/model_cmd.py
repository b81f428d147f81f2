"""``radiounet model``: inspect the model repository, or create a placeholder version."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..model.repository import SIGNATURE, ModelMetadata, default_model_repo, resolve_model
from ._common import add_model_option

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("model", help="show or create model versions (TF Serving layout)")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    info = msub.add_parser("info", help="print a version's metadata and serving signature")
    add_model_option(info)
    info.add_argument("--model-version", type=int, default=None)
    info.set_defaults(run=_info)

    init = msub.add_parser(
        "init",
        help="export an untrained (placeholder) Radio U-Net as the next version",
        description="Build Radio U-Net with random weights (seeded) and export it in TF "
        "Serving's layout. Its metadata says trained=false.",
    )
    init.add_argument("--repo", type=Path, default=default_model_repo(), help="model repository")
    init.add_argument("--base-filters", type=int, default=32, help="U-Net base width (paper: 32)")
    init.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    init.add_argument("--version", type=int, default=None, help="version number (default next)")
    init.set_defaults(run=_init)


def _info(args: argparse.Namespace) -> int:
    model = resolve_model(args.model, version=args.model_version)
    print(
        json.dumps(
            {
                "name": model.name,
                "version": model.version,
                "path": str(model.path),
                "signature": asdict(SIGNATURE),
                "metadata": asdict(model.metadata),
            },
            indent=2,
        )
    )
    return 0


def _init(args: argparse.Namespace) -> int:
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
    return 0
