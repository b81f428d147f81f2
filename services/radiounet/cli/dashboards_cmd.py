"""``radiounet dashboards export|show``: the Grafana dashboards, written out or read locally.

``export DIR`` writes the dashboards' JSON files (what ``make dashboards``
writes into the chart) plus Grafana provisioning for a Prometheus data source,
so ``GF_PATHS_PROVISIONING=DIR/provisioning grafana server`` shows them.
``show`` evaluates every panel query now against a Prometheus (by default the
local stack's, from ``--data-dir``) and prints each panel's current values:
what Grafana would draw, without a Grafana.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .stack_cmd import DEFAULT_STACK_DIR

__all__ = ["prometheus_url", "register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "dashboards",
        help="write the Grafana dashboards, or show their panels' values from Prometheus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="write the dashboards' JSON and Grafana provisioning into DIR"
    )
    export.add_argument("directory", type=Path, metavar="DIR", help="output folder")
    export.add_argument(
        "--scrape-interval",
        default="2s",
        metavar="DURATION",
        help="the Prometheus scrape interval, from which Grafana sizes its rate windows "
        "(default %(default)s: the local stack's)",
    )
    show = actions.add_parser("show", help="evaluate every panel query now and print the values")
    show.add_argument(
        "--window",
        default="1m",
        metavar="DURATION",
        help="rate window standing in for Grafana's $__rate_interval: at least 4 scrape "
        "intervals (default %(default)s; 2m for a cluster's 30 s scrapes)",
    )
    for q in (export, show):
        where = q.add_mutually_exclusive_group()
        where.add_argument(
            "--data-dir",
            "--stack",  # the name submit, status and results use for the same folder
            dest="data_dir",
            type=Path,
            default=None,
            help="the local stack whose Prometheus to use [RADIOUNET_STACK_DIR, out/stack]",
        )
        where.add_argument(
            "--prometheus", default=None, metavar="URL", help="use this Prometheus instead"
        )
        q.set_defaults(run=run)


def prometheus_url(args: argparse.Namespace) -> str:
    """``--prometheus``, or the Prometheus recorded by the local stack in ``--data-dir``.

    Raises
    ------
    ValueError
        If no URL is given and the data folder holds no stack (or one without Prometheus).
    """
    if args.prometheus:
        return str(args.prometheus)
    from ..stream.local.stack_state import load_state, state_path

    data_dir = args.data_dir if args.data_dir is not None else DEFAULT_STACK_DIR
    state = load_state(data_dir)
    if state is None:
        raise ValueError(
            f"no local stack in {data_dir} ({state_path(data_dir)} does not exist): start one "
            f"with `radiounet stack up --data-dir {data_dir}`, or give --prometheus URL"
        )
    url = state.extra.get("prometheus")
    if not isinstance(url, str) or not url:
        raise ValueError(f"the stack in {data_dir} records no Prometheus; give --prometheus URL")
    return url


def run(args: argparse.Namespace) -> int:
    from ..dashboards.evaluate import PrometheusError, evaluate, format_table
    from ..dashboards.provisioning import export

    url = prometheus_url(args)
    if args.action == "export":
        for path in export(args.directory, url, scrape_interval=args.scrape_interval):
            print(path)
        return 0
    try:
        results = evaluate(url, window=args.window)
    except PrometheusError as exc:
        print(f"radiounet dashboards: error: {exc}", file=sys.stderr)
        return 2
    print(f"Prometheus {url}, rate window {args.window}")
    sys.stdout.write(format_table(results))
    return 0
