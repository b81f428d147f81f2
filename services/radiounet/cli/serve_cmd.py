"""``radiounet serve STAGE``: run one service of the streaming pipeline in the foreground.

Each service is its own process: ``radiounet serve fetcher|tiler|reassembler|
classifier`` (Kafka stages) and ``radiounet serve model-server`` (the local
stand-in for TensorFlow Serving). Configuration comes from ``RADIOUNET_*``
environment variables, overridden by flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

STAGES = ("fetcher", "tiler", "reassembler", "classifier")


def register(sub: Any) -> None:
    from ..core.detection import DEFAULT_RADIUS_R500
    from ..stream.settings import add_settings_arguments

    p = sub.add_parser(
        "serve",
        help="run one service of the streaming pipeline (fetcher, tiler, model server...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stages = p.add_subparsers(dest="stage", required=True, metavar="SERVICE")

    f = stages.add_parser("fetcher", help="pointings -> FITS cutouts in the object store")
    f.add_argument(
        "--source",
        choices=("simulated", "http", "mosaics"),
        default="http",
        help="where cutouts come from: an HTTP cutout service (default: the survey's), "
        "a directory of survey mosaics, or the simulator (demos)",
    )
    f.add_argument("--url-template", default=None, help="HTTP source: cutout URL template")
    f.add_argument("--mosaic-dir", type=Path, default=None, help="mosaics source: directory")
    f.add_argument(
        "--http-timeout", type=float, default=60.0, help="HTTP source: timeout [s] (default 60)"
    )

    t = stages.add_parser("tiler", help="cutouts -> TF Serving -> probability-tile chunks")
    t.add_argument(
        "--chunk-tiles", type=int, default=16, help="tiles per Predict call and chunk (default 16)"
    )
    t.add_argument(
        "--max-in-flight",
        type=int,
        default=4,
        help="concurrent Predict calls (fill the batches; default 4)",
    )
    t.add_argument("--deadline", type=float, default=60.0, help="Predict deadline [s] (default 60)")

    r = stages.add_parser("reassembler", help="tile chunks -> probability map FITS + quicklook")
    r.add_argument(
        "--quicklook",
        choices=("thumbnail", "figure"),
        default="thumbnail",
        help="quicklook PNG written with each map: thumbnail = fast two-panel PNG (numpy + "
        "Pillow, tens of CPU-ms) for survey scale (default); figure = the Fig. 4-style "
        "matplotlib figure with RA/Dec axes, ~0.3 s CPU each",
    )

    c = stages.add_parser("classifier", help="maps -> R, decision, components, results table")
    c.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="a fixed decision threshold on R for every map (overrides --model-repo)",
    )
    c.add_argument(
        "--model-repo",
        default=None,
        metavar="FOLDER|s3://BUCKET/PREFIX",
        help="model repository to read each map's model version's calibrated threshold from, "
        "for every map (`radiounet model calibrate`; a version without one gets the paper's "
        "0.015); without it and --threshold, the paper's 0.015 applies to every map",
    )
    c.add_argument(
        "--radius",
        type=float,
        default=None,
        help=f"aperture radius [R500] (default {DEFAULT_RADIUS_R500}, the paper's)",
    )

    for parser in (f, t, r, c):
        add_settings_arguments(parser)
        parser.set_defaults(run=run)

    m = stages.add_parser(
        "model-server",
        help="the local stand-in for TensorFlow Serving (gRPC PredictionService, ModelService)",
        add_help=False,
    )
    m.add_argument("server_args", nargs=argparse.REMAINDER, help="tensorflow_model_server flags")
    m.set_defaults(run=run)


def _configure_logging(level: str, stage: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {stage} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _source(args: argparse.Namespace) -> Any:
    if args.source == "simulated":
        from ..stream.fetcher.simulated_source import SimulatedSkySource

        return SimulatedSkySource()
    if args.source == "mosaics":
        from ..stream.fetcher.mosaic_source import MosaicDirectorySource

        if args.mosaic_dir is None:
            raise ValueError("--source mosaics needs --mosaic-dir")
        return MosaicDirectorySource(args.mosaic_dir)
    from ..stream.fetcher.http_source import HttpCutoutSource

    return HttpCutoutSource(args.url_template, timeout_s=args.http_timeout)


def _stage(args: argparse.Namespace, settings: Any, store: Any) -> Any:
    if args.stage == "fetcher":
        from ..stream.fetcher.service import FetcherStage

        return FetcherStage(store, _source(args))
    if args.stage == "tiler":
        from ..stream.tiler.model_client import ModelClient
        from ..stream.tiler.service import TilerStage

        client = ModelClient(
            settings.model_server,
            model_name=settings.model_name,
            signature_name=settings.model_signature,
            version=settings.model_version or None,
            deadline_s=args.deadline,
        )
        return TilerStage(
            store, client, chunk_tiles=args.chunk_tiles, max_in_flight=args.max_in_flight
        )
    if args.stage == "reassembler":
        from ..stream.reassembler.service import ReassemblerStage

        return ReassemblerStage(store, settings, quicklook=args.quicklook)
    from ..stream.classifier.service import ClassifierStage
    from ..stream.classifier.thresholds import parse_repository

    thresholds = None
    if args.threshold is None and args.model_repo is not None:
        thresholds = parse_repository(args.model_repo, store)
    options = {"threshold": args.threshold, "thresholds": thresholds, "radius_r500": args.radius}
    stage = ClassifierStage(store, settings, **{k: v for k, v in options.items() if v is not None})
    logging.getLogger(__name__).info("decision threshold on R: %s", stage.thresholds)
    return stage


def _start_telemetry(health: Any, settings: Any) -> Any:
    """Start the /metrics and /healthz server; a port it cannot bind is a ValueError."""
    from ..stream.telemetry import TelemetryServer

    try:
        server = TelemetryServer(health, host=settings.metrics_host, port=settings.metrics_port)
    except OSError as exc:
        raise ValueError(
            f"cannot serve metrics and health on {settings.metrics_host}:"
            f"{settings.metrics_port}: {exc.strerror or exc}; choose another port with "
            "--metrics-port or RADIOUNET_METRICS_PORT (0 = any free port)"
        ) from None
    return server.start()


def run(args: argparse.Namespace) -> int:
    if args.stage == "model-server":
        from ..stream.model_server.server import main as model_server_main

        return int(model_server_main(args.server_args, prog="radiounet serve model-server") or 0)

    from ..stream.object_store import ObjectStore
    from ..stream.runner import StageRunner
    from ..stream.settings import settings_from
    from ..stream.telemetry import Health

    settings = settings_from(args)
    _configure_logging(settings.log_level, args.stage)
    log = logging.getLogger("radiounet.serve")
    health = Health()
    # Bound first: a port in use is one clear error before any connection is made.
    telemetry = _start_telemetry(health, settings)
    try:
        store = ObjectStore.from_settings(settings)
        stage = _stage(args, settings, store)
    except BaseException:
        telemetry.close()
        raise
    log.info("%s: metrics and health on port %d; %r", args.stage, telemetry.port, settings)
    try:
        StageRunner(stage, settings, store=store, health=health).run()
    finally:
        telemetry.close()
        close = getattr(stage, "close", None)
        if close is not None:
            close()
    return 0
