"""``radiounet classify``: R within 2.2 R500, the decision and the component catalogue."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..core.detection import DEFAULT_RADIUS_R500, DEFAULT_THRESHOLD
from ..io.probability_map import read_probability_map
from ..model.threshold import DecisionThreshold, threshold_for_map
from ..workflows import Classification, classify_map
from ._common import (
    add_cluster_options,
    add_model_option,
    cluster_from_args,
    image_warnings_as_lines,
)

__all__ = ["format_report", "register", "report_dict", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "classify",
        help="decide whether a cluster hosts diffuse emission from its probability map",
        description="Compute R, the mean probability within 2.2 R500 of the cluster "
        "(Stuardi et al. 2024, eq. 8), decide R >= threshold, and list the connected "
        "regions with p > 0.5 of at least one beam. --ra/--dec and the components' RA/Dec "
        "are ICRS (J2000), whatever the map's frame (FK4 B1950, galactic, ...).",
    )
    p.add_argument("map", type=Path, help="probability map FITS (from radiounet segment)")
    add_cluster_options(p, required=True)
    p.add_argument("--image", type=Path, default=None, help="the segmented image (for fluxes)")
    p.add_argument("--bunit", default=None, help="brightness unit of --image, overriding BUNIT")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold on R (default: the one calibrated for the model version that "
        "made the map, from the map header and --model, else the paper's "
        f"{DEFAULT_THRESHOLD})",
    )
    add_model_option(
        p,
        "model repository where the map's model version is looked up for its calibrated "
        "threshold (default: the shipped model_repo)",
    )
    p.add_argument(
        "--radius", type=float, default=DEFAULT_RADIUS_R500, help="aperture radius [R500]"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(result: Classification, threshold_source: str | None = None) -> str:
    """A human-readable report: the decision, then one line per component."""
    d = result.detection
    c = result.cluster
    lines = [
        f"cluster      {c.name or '-'}  RA {c.ra_deg:.5f}  Dec {c.dec_deg:.5f}"
        + (f"  z {c.z:g}" if c.z is not None else ""),
        f"theta500     {result.theta500_arcmin:.3f} arcmin"
        + (f"  (R500 {c.r500_kpc:.0f} kpc)" if c.r500_kpc is not None else ""),
        f"aperture     {result.radius_r500:g} R500 = {d.radius_pix:.1f} px, {d.n_pixels} px in "
        f"the map ({100 * d.fraction_in_image:.0f}% of the circle)",
        f"R            {d.ratio:.4f}  (threshold {d.threshold:g}"
        + (f", {threshold_source})" if threshold_source else ")"),
        f"decision     {'DIFFUSE EMISSION DETECTED' if d.detected else 'no diffuse emission'}",
    ]
    if result.placeholder_model:
        lines.append("warning      map made with placeholder (untrained) weights")
    if result.components_skipped is not None:
        lines.append("components   - (not catalogued: no restoring beam)")
        return "\n".join(lines)
    lines.append(f"components   {len(result.components)} (p > 0.5, >= 1 beam)")
    if result.components:
        lines.append(
            "  #   RA(ICRS) Dec(ICRS)  area[arcmin2]  area[kpc2]  flux[mJy]    S/N  p_peak"
            "  p_mean  d[R500]  elong  radial[deg]"
        )
        for k in result.components:
            lines.append(
                f"{k.label:3d} {k.ra_deg:10.5f} {k.dec_deg:+9.5f} {k.area_arcmin2:14.3f} "
                f"{_fmt(k.area_kpc2, '11.0f'):>11} "
                f"{_fmt(None if k.flux_jy is None else 1e3 * k.flux_jy, '10.2f'):>10} "
                f"{_fmt(k.snr, '6.1f'):>6} "
                f"{k.peak_probability:7.3f} {k.mean_probability:7.3f} "
                f"{_fmt(k.distance_r500, '8.2f'):>8} {k.elongation:6.2f} "
                f"{_fmt(k.radial_angle_deg, '11.0f'):>11}"
            )
    return "\n".join(lines)


def report_dict(result: Classification, threshold: DecisionThreshold) -> dict[str, Any]:
    """The ``--json`` report: the classification and where its threshold came from."""
    return {**result.to_dict(), "threshold_source": threshold.source}


def run(args: argparse.Namespace) -> int:
    cluster = cluster_from_args(args)
    assert cluster is not None  # --ra/--dec are required here
    # Read (and check) the map first: a note about its threshold is noise before "not a map".
    prob = read_probability_map(args.map)
    if args.threshold is not None:
        threshold = DecisionThreshold.given(args.threshold)
    else:
        threshold, note = threshold_for_map(prob.header, args.model)
        if note is not None:
            print(f"note: {note}; using the {threshold.source} threshold", file=sys.stderr)
    with image_warnings_as_lines():
        result = classify_map(
            prob,
            cluster,
            image_path=args.image,
            bunit=args.bunit,
            threshold=threshold.value,
            radius_r500=args.radius,
        )
    if result.coverage_warning is not None:
        print(f"warning: {result.coverage_warning}", file=sys.stderr)
    if result.components_skipped is not None:
        print(
            f"warning: no component catalogue: {result.components_skipped}; segment the image "
            "again with --beam BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]] to write one into the map, "
            "or give an --image whose header has one",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(report_dict(result, threshold), indent=2))
    else:
        print(format_report(result, threshold.source))
    return 0
