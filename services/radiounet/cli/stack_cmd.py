"""``radiounet stack up|down|status``: the whole streaming pipeline on this machine.

``up`` starts, on free loopback ports, the Kafka-compatible broker (Tansu), the
S3 object store (SeaweedFS), the TensorFlow Serving stand-in, the fetcher,
tiler, reassembler and classifier, and Prometheus scraping them all; it
returns once everything is ready and leaves it running in the background. A
second ``up`` on the same ``--data-dir`` reuses the running stack; another
directory gets an independent stack. ``down`` stops it. ``demo`` (what
``make run`` does) brings the stack up, submits a survey of PSZ2 clusters over
a simulated LoTSS-like sky, shows progress and prints the results table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STACK_DIR", "register", "run", "start_or_reuse"]

DEFAULT_STACK_DIR = Path(os.environ.get("RADIOUNET_STACK_DIR", "out/stack"))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "stack",
        help="start/stop the whole streaming pipeline locally (broker, store, services)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the stack (or reuse the one running in --data-dir)")
    down = actions.add_parser("down", help="stop the stack running in --data-dir")
    status = actions.add_parser("status", help="what runs where")
    demo = actions.add_parser(
        "demo", help="up + submit a demo survey + wait + results table (make run)"
    )
    demo.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="cluster catalogue CSV (default: 12 PSZ2 clusters in the LoTSS-DR2 area)",
    )
    demo.add_argument("--limit", type=int, default=None, help="submit at most this many")
    demo.add_argument(
        "--timeout", type=float, default=900.0, help="give up waiting after this many seconds"
    )
    for q in (up, down, status, demo):
        q.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_STACK_DIR,
            help="data, logs and stack.json of the stack [RADIOUNET_STACK_DIR, out/stack]",
        )
        q.set_defaults(run=run)
    for q in (up, demo):
        _add_up_options(q)


def _add_up_options(up: argparse.ArgumentParser) -> None:
    up.add_argument(
        "--source",
        choices=("simulated", "http", "mosaics"),
        default="simulated",
        help="fetcher's cutout source (default: simulated LoTSS-like sky)",
    )
    up.add_argument("--mosaic-dir", type=Path, default=None, help="mosaics source: directory")
    up.add_argument("--url-template", default=None, help="HTTP source: URL template")
    up.add_argument("--tilers", type=int, default=1, help="tiler replicas")
    up.add_argument("--model-repo", type=Path, default=None, help="model repository to serve")


def start_or_reuse(args: argparse.Namespace) -> tuple[Any, bool]:
    """The running stack's state (reused) or a freshly started one; and whether it was reused."""
    from ..stream.local.stack import LocalStack, StackConfig, existing_alive, stop_stack

    state = existing_alive(args.data_dir)
    if state is not None:
        return state, True
    stop_stack(args.data_dir)  # leftovers of a stack that half died
    source_args: list[str] = []
    if args.mosaic_dir is not None:
        source_args += ["--mosaic-dir", str(args.mosaic_dir.resolve())]
    if args.url_template is not None:
        source_args += ["--url-template", args.url_template]
    config: dict[str, Any] = {
        "data_dir": args.data_dir.resolve(),
        "source": args.source,
        "source_args": tuple(source_args),
        "tilers": args.tilers,
        "stop_at_exit": False,  # the stack outlives this command; `stack down` stops it
    }
    if args.model_repo is not None:
        config["model_repo"] = args.model_repo.resolve()
    stack = LocalStack(StackConfig(**config))
    try:
        state = stack.start(progress=lambda name: print(f"  starting {name} ...", flush=True))
    except BaseException:
        stack.stop()
        raise
    return state, False


def _describe(state: Any) -> None:
    settings = state.extra.get("settings", {})
    print(f"stack in {state.data_dir}:")
    for name, rec in state.components.items():
        print(f"  {name:<15} pid {rec.pid:<8} {rec.endpoint}")
    print(f"  Kafka bootstrap  {settings.get('kafka_bootstrap')}")
    print(f"  S3 endpoint      {settings.get('s3_endpoint')} (bucket {settings.get('bucket')})")
    print(f"  Prometheus       {state.extra.get('prometheus')}")
    threshold = state.extra.get("classifier_threshold")
    if isinstance(threshold, dict) and isinstance(threshold.get("value"), float):
        print(
            f"  R threshold      each map's model version's; the served one's is "
            f"{threshold['value']:g} ({threshold.get('source')})"
        )
    if state.extra.get("grafana"):
        print(f"  Grafana files    {state.extra['grafana']} (dashboards + datasource provisioning)")


def _demo_pointings(args: argparse.Namespace) -> list[Any]:
    from importlib.resources import files

    from .submit_cmd import check_candidates, read_catalogue

    if args.catalogue is not None:
        text = args.catalogue.read_text()
        source = str(args.catalogue)
    else:
        text = files("radiounet").joinpath("data/psz2_demo.csv").read_text()
        source = "psz2_demo.csv"
    pointings, problems = check_candidates(
        read_catalogue(text.splitlines(), source=source, limit=args.limit)
    )
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return pointings


def _settings_of(state: Any) -> Any:
    from ..stream.settings import settings_from

    values = dict(state.extra["settings"])
    return settings_from(env={}, **values, instance="demo")


def _finished(store: Any, pointing_id: str, correlation_id: str, since_ms: int) -> str | None:
    """``"done"``/``"failed (...)"`` once this submission of the pointing has ended, else None."""
    from ..stream.errors import PermanentError
    from ..stream.keys import result_key

    try:
        row = store.get_json(result_key(pointing_id))
        if row.get("correlation_id") == correlation_id:
            return "done"
    except PermanentError:
        pass
    for key in store.list_keys(f"dead-letters/{pointing_id}/"):
        try:
            letter = store.get_json(key)
        except PermanentError:
            continue
        if int(letter.get("failed_unix_ms", 0)) >= since_ms:
            return f"failed ({letter.get('stage')}: {letter.get('reason')})"
    return None


def _demo(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from ..stream.classifier.results import load_results
    from ..stream.messages import now_ms
    from ..stream.object_store import ObjectStore
    from .results_cmd import format_results
    from .submit_cmd import send_pointings

    pointings = _demo_pointings(args)
    state, reused = start_or_reuse(args)
    print("reusing the running stack" if reused else "stack started")
    _describe(state)
    settings = _settings_of(state)
    since = now_ms()
    sent = send_pointings(settings, pointings)
    print(f"submitted {len(sent)} pointings to {settings.topic('pointings')}")
    store = ObjectStore.from_settings(settings)
    pending = {s.pointing_id: s.correlation_id for s in sent}
    outcome: dict[str, str] = {}
    deadline = time.monotonic() + args.timeout
    with tqdm(total=len(pending), unit="pointing", desc="pipeline") as bar:
        while pending and time.monotonic() < deadline:
            for pid, cid in list(pending.items()):
                end = _finished(store, pid, cid, since)
                if end is not None:
                    outcome[pid] = end
                    del pending[pid]
                    bar.update(1)
            time.sleep(1.0)
    rows = [r for r in load_results(store).rows if r.get("pointing_id") in outcome]
    print()
    print(format_results(rows, "table"), end="")
    failed = {pid: o for pid, o in outcome.items() if o != "done"}
    for pid, why in sorted(failed.items()):
        print(f"{pid}: {why}")
    endpoint = settings.s3_endpoint
    print(
        f"\nmaps and quicklooks: s3://{settings.bucket}/maps/<pointing>/"
        f"{{probability.fits,quicklook.png}} at http://{endpoint} "
        f"(results: s3://{settings.bucket}/results/)"
    )
    print(f"logs and data: {state.data_dir}; Prometheus: {state.extra.get('prometheus')}")
    print(
        "more: radiounet status --all | radiounet results --format csv | "
        f"radiounet dashboards show --data-dir {state.data_dir} | make stop"
    )
    if pending:
        print(f"timed out waiting for {len(pending)} pointings: {', '.join(sorted(pending))}")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from ..stream.local.stack import existing_alive, stop_stack
    from ..stream.local.stack_state import dead_components, load_state

    if args.action == "up":
        state, reused = start_or_reuse(args)
        print("reusing the running stack" if reused else "stack started")
        _describe(state)
        return 0
    if args.action == "demo":
        return _demo(args)
    if args.action == "down":
        stopped = stop_stack(args.data_dir)
        print(
            f"stopped {', '.join(stopped)}" if stopped else f"no stack running in {args.data_dir}"
        )
        return 0
    state = existing_alive(args.data_dir)
    if state is None:
        recorded = load_state(args.data_dir)
        if recorded is None:
            print(f"no stack in {args.data_dir}")
        else:
            print(f"stack in {args.data_dir} is not healthy: down: {dead_components(recorded)}")
        return 1
    _describe(state)
    return 0
