"""``radiounet demo``: segment and classify the bundled example field end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..core.normalisation import get_profile
from ..examples import example_field
from ..workflows import Cluster, classify_map, segment_fits
from ._common import add_model_option, tile_progress, warn_placeholder
from .classify_cmd import format_report, report_dict
from .segment_cmd import save_quicklook

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="segment and classify the bundled example field (what `make run` does)",
        description="Write the example field (a LoTSS-like 960x960 cutout at 4.5 arcsec of "
        "PSZ2 G055.59+31.85 with a halo, a relic and radio galaxies), segment it, classify "
        "the cluster and print where the outputs are.",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    p.add_argument("--seed", type=int, default=0, help="example field seed")
    add_model_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..model.predictor import SavedModelPredictor
    from ..model.repository import resolve_model
    from ..model.threshold import threshold_of

    # The model first: a version that cannot load must not leave a half-written demo.
    model = resolve_model(args.model)
    predictor = SavedModelPredictor(model)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    field = example_field(seed=args.seed)
    stem = field.name.replace(" ", "_")
    image_path = out / f"{stem}.fits"
    map_path = out / f"{stem}_prob.fits"
    png_path = out / f"{stem}.png"
    json_path = out / f"{stem}.json"
    fits.PrimaryHDU(field.image[np.newaxis, np.newaxis], header=field.header).writeto(
        image_path, overwrite=True
    )
    print(f"example field   {image_path}")

    warn_placeholder(model.metadata.trained)
    bar = tile_progress("segment")
    try:
        segment_fits(
            image_path,
            map_path,
            predictor=predictor,
            model=model,
            profile=get_profile("lotss-dr2-lowres"),
            overwrite=True,
            progress=bar.update,
            on_start=bar.start,
        )
    finally:
        bar.close()
    cluster = Cluster(
        ra_deg=field.ra_deg,
        dec_deg=field.dec_deg,
        z=field.z,
        m500_1e14=field.m500_1e14,
        name=field.name,
    )
    save_quicklook(png_path, image_path, map_path, bunit=None, cluster=cluster)
    threshold = threshold_of(model)
    result = classify_map(map_path, cluster, image_path=image_path, threshold=threshold.value)
    json_path.write_text(json.dumps(report_dict(result, threshold), indent=2) + "\n")
    print(f"probability map {map_path}  (model {model.name} v{model.version})")
    print(f"quicklook       {png_path}")
    print(f"classification  {json_path}\n")
    print(format_report(result, threshold.source))
    return 0
