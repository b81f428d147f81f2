"""``radiounet segment``: a FITS image in, a probability-map FITS (and quicklook) out."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from ..core.detection import DEFAULT_RADIUS_R500
from ..core.normalisation import get_profile
from ..core.segmentation import DEFAULT_BATCH_SIZE
from ..io.fits_image import Beam, ImageWarning, read_image
from ..io.probability_map import read_probability_map
from ..io.quicklook import write_quicklook
from ..workflows import Cluster, aperture_on_map, segment_fits
from ._common import (
    add_cluster_options,
    add_model_option,
    add_profile_option,
    cluster_from_args,
    image_warnings_as_lines,
    tile_progress,
    warn_placeholder,
)

__all__ = ["parse_beam", "register", "run", "save_quicklook"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "segment",
        help="segment a FITS image into a diffuse-emission probability map",
        description="Segment a radio image (2-D, or a 4-D LOFAR cube with degenerate FREQ/"
        "STOKES axes; Jy/beam, mJy/beam or Jy/pixel) into a FITS map of the probability "
        "of diffuse emission, with the input's WCS and provenance keywords.",
    )
    p.add_argument("image", type=Path, help="input FITS image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output probability FITS")
    add_profile_option(p, "lotss-dr2-lowres")
    add_model_option(p)
    p.add_argument("--model-version", type=int, default=None, help="model version (default latest)")
    p.add_argument("--png", type=Path, default=None, help="also write a quicklook PNG")
    p.add_argument("--bunit", default=None, help="brightness unit, overriding BUNIT")
    p.add_argument(
        "--beam",
        type=parse_beam,
        default=None,
        metavar="BMAJ[,BMIN[,BPA]]",
        help="restoring beam: FWHM axes in arcsec (BMIN defaults to BMAJ) and position "
        "angle in degrees (default 0), overriding the header's; written to the map",
    )
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="tiles per model call"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_cluster_options(p, required=False)
    p.set_defaults(run=run)


def parse_beam(text: str) -> Beam:
    """``BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]]`` as a :class:`Beam` (degrees)."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if not 1 <= len(values) <= 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]], got {text!r}"
        )
    bmaj = values[0]
    bmin = values[1] if len(values) > 1 else bmaj
    if not 0 < bmin <= bmaj:
        raise argparse.ArgumentTypeError(f"need 0 < BMIN <= BMAJ (arcsec), got {text!r}")
    return Beam(bmaj / 3600, bmin / 3600, values[2] if len(values) > 2 else 0.0)


def _misses(xy: tuple[float, float], radius: float, shape: tuple[int, ...]) -> bool:
    """Whether the circle lies entirely outside an image of ``shape`` (pixel edges at -0.5).

    >>> _misses((-10.0, 5.0), 9.0, (10, 10)), _misses((-10.0, 5.0), 10.0, (10, 10))
    (True, False)
    """
    ny, nx = shape
    dx = max(-0.5 - xy[0], 0.0, xy[0] - (nx - 0.5))
    dy = max(-0.5 - xy[1], 0.0, xy[1] - (ny - 0.5))
    return math.hypot(dx, dy) > radius


def save_quicklook(
    png: Path, image_path: Path, map_path: Path, *, bunit: str | None, cluster: Cluster | None
) -> None:
    """Fig. 4-style quicklook of an image and its probability map."""
    image = read_image(image_path, bunit=bunit)
    prob = read_probability_map(map_path)
    circle_xy, radius = aperture_on_map(prob.wcs, cluster) if cluster else (None, None)
    if circle_xy is not None and radius is not None and _misses(circle_xy, radius, prob.data.shape):
        print(
            f"warning: {png}: the {DEFAULT_RADIUS_R500:g} R500 circle (centre at pixel (x, y) = "
            f"({circle_xy[0]:.1f}, {circle_xy[1]:.1f}), radius {radius:.1f} px) lies entirely "
            f"outside the {prob.data.shape[1]} x {prob.data.shape[0]} px image, so it is not "
            "drawn (--ra/--dec are ICRS degrees)",
            file=sys.stderr,
        )
        circle_xy, radius = None, None
    write_quicklook(
        png,
        image.data * image.scale,
        prob.data,
        wcs=prob.wcs,
        title=cluster.name if cluster and cluster.name else image_path.name,
        circle_xy=circle_xy,
        circle_radius_pix=radius,
    )


def run(args: argparse.Namespace) -> int:
    from ..model.predictor import SavedModelPredictor  # TensorFlow: import only when needed
    from ..model.repository import resolve_model

    profile = get_profile(args.profile)
    cluster = cluster_from_args(args)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size!r}")
    if args.png is not None and args.png.exists() and not args.overwrite:
        raise FileExistsError(f"{args.png} exists (use --overwrite to replace it)")
    # Read and check the input before the (slow) model load.
    with image_warnings_as_lines():
        image = read_image(args.image, bunit=args.bunit)
    if args.beam is not None:
        image = dataclasses.replace(image, beam=args.beam)
    image.scale_to(profile.unit)
    if image.beam is None:
        print(
            f"warning: {args.image}: no restoring beam (no BMAJ/BMIN, AIPS CLEAN HISTORY or "
            "CASA BEAMS table), so the map has none and classify's component catalogue (areas, "
            "fluxes) needs one: give it with --beam BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]]",
            file=sys.stderr,
        )
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists (use --overwrite to replace it)")
    model = resolve_model(args.model, version=args.model_version)
    warn_placeholder(model.metadata.trained)
    predictor = SavedModelPredictor(model)
    bar = tile_progress("segment")
    try:
        result = segment_fits(
            image,
            args.output,
            predictor=predictor,
            model=model,
            profile=profile,
            bunit=args.bunit,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            progress=bar.update,
            on_start=bar.start,
        )
    finally:
        bar.close()
    print(
        f"wrote {result.output} ({result.shape[1]}x{result.shape[0]} px, {result.n_tiles} tiles, "
        f"model {model.name} v{model.version}, profile {profile.name})"
    )
    if args.png is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageWarning)  # reported above already
            save_quicklook(args.png, args.image, args.output, bunit=args.bunit, cluster=cluster)
        print(f"wrote {args.png}")
    return 0
