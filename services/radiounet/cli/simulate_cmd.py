"""``radiounet simulate``: write a dataset of synthetic LOFAR fields with their ground truth."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

# The set-up names, spelled out so that building the parser does not import the simulator
# (ducc0 and friends); run() checks them against radiounet.simulate.setups.SETUPS.
_SETUP_NAMES = ("lotss-dr2-lowres", "paper-6arcsec")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a training/test dataset of LOFAR fields with ground truth",
        description="Draw random cluster fields (halos, relics, bridges, radio galaxies and "
        "compact sources), observe them with LOFAR HBA (predict, noise, image, CLEAN, restore) "
        "and write images, true skies, reference masks, labels and a manifest.json "
        "(format radiounet-sim/1) under --out.",
    )
    p.add_argument("--setup", required=True, choices=_SETUP_NAMES, help="observation set-up")
    p.add_argument("--fields", type=int, required=True, metavar="N", help="number of fields")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="fraction of fields held out as the test split (default 0.1)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="W",
        help="worker processes, one field each (default: all cores)",
    )
    p.add_argument(
        "--resume", action="store_true", help="keep the complete fields already in --out"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..simulate.dataset import FieldTask, simulate_dataset  # import only when needed
    from ..simulate.setups import get_setup

    if args.fields < 1:
        raise ValueError(f"--fields must be at least 1, got {args.fields!r}")
    if args.seed < 0:
        raise ValueError(f"--seed must be non-negative, got {args.seed!r}")
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers!r}")
    setup = get_setup(args.setup)
    computed: list[FieldTask] = []

    def on_start(plan: list[FieldTask], todo: list[FieldTask]) -> None:
        computed.extend(todo)
        if not any(task.split == "test" for task in plan):
            # Said now, not when evaluate finds no test field after the whole run.
            print(
                f"warning: {args.out} gets no test field (--test-fraction "
                f"{args.test_fraction:g} of {len(plan)} field{'s' * (len(plan) > 1)} rounds "
                "to 0); evaluate needs held-out fields from another dataset",
                file=sys.stderr,
            )

    start = time.perf_counter()
    manifest_path = simulate_dataset(
        args.out,
        setup=setup,
        n_fields=args.fields,
        seed=args.seed,
        test_fraction=args.test_fraction,
        workers=workers,
        progress=True,
        resume=args.resume,
        on_start=on_start,
    )
    wall = time.perf_counter() - start
    fields = json.loads(manifest_path.read_text(encoding="utf-8"))["fields"]
    n_test = sum(f["split"] == "test" for f in fields)
    print(
        f"wrote {manifest_path} ({len(fields)} fields of {setup.image_size}x{setup.image_size} "
        f"px, {n_test} test, set-up {setup.name})"
    )
    if not computed:  # a resume of a complete dataset: no timing to report
        print("nothing left to simulate: all fields were already complete")
        return 0
    ids = {task.field_id for task in computed}
    per_field = sum(f["seconds"] for f in fields if f["id"] in ids) / len(ids)
    print(
        f"{per_field:.1f} s per field (sky + observation, one worker); "
        f"{wall:.1f} s wall with {min(workers, len(ids))} worker(s) for {len(ids)} field(s)"
    )
    return 0
