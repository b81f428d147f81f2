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

__all__ = [
    "DEFAULT_STACK_DIR",
    "check_up_options",
    "demo_hints",
    "register",
    "run",
    "start_or_reuse",
    "status_table",
]

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
            "--stack",  # the name submit, status and results use for the same folder
            dest="data_dir",
            type=Path,
            default=DEFAULT_STACK_DIR,
            help="data, logs and stack.json of the stack [RADIOUNET_STACK_DIR, out/stack]",
        )
        q.set_defaults(run=run)
    for q in (up, demo):
        _add_up_options(q)


def _add_up_options(up: argparse.ArgumentParser) -> None:
    # No argparse defaults: an option not given means "as the running stack has it"
    # (or the default below when a new stack starts), so only given options are compared.
    up.add_argument(
        "--source",
        choices=("simulated", "http", "mosaics"),
        default=None,
        help="fetcher's cutout source (default: simulated LoTSS-like sky)",
    )
    up.add_argument("--mosaic-dir", type=Path, default=None, help="mosaics source: directory")
    up.add_argument("--url-template", default=None, help="HTTP source: URL template")
    up.add_argument("--tilers", type=int, default=None, help="tiler replicas (default: 1)")
    up.add_argument(
        "--model-repo",
        type=Path,
        default=None,
        help="model repository to serve (default: the shipped model_repo)",
    )


def check_up_options(args: argparse.Namespace) -> None:
    """Refuse option values no stack can start with, before anything is started."""
    if args.tilers is not None and args.tilers < 1:
        raise ValueError(f"--tilers must be at least 1, got {args.tilers}")
    if args.source == "mosaics" and args.mosaic_dir is None:
        raise ValueError("--source mosaics needs --mosaic-dir")
    if args.mosaic_dir is not None and not args.mosaic_dir.is_dir():
        raise ValueError(f"--mosaic-dir {args.mosaic_dir}: no such directory")
    if args.model_repo is not None and not (args.model_repo / "models.config").is_file():
        raise ValueError(f"--model-repo {args.model_repo}: no models.config in it")


def _source_args(args: argparse.Namespace) -> list[str]:
    source_args: list[str] = []
    if args.mosaic_dir is not None:
        source_args += ["--mosaic-dir", str(args.mosaic_dir.resolve())]
    if args.url_template is not None:
        source_args += ["--url-template", args.url_template]
    return source_args


def _requested(args: argparse.Namespace) -> dict[str, Any]:
    """The stack options given on the command line (recorded-options form)."""
    given: dict[str, Any] = {}
    if args.source is not None:
        given["source"] = args.source
    if args.mosaic_dir is not None or args.url_template is not None:
        given["source_args"] = _source_args(args)
    if args.tilers is not None:
        given["tilers"] = args.tilers
    if args.model_repo is not None:
        given["model_repo"] = str(args.model_repo.resolve())
    return given


_FLAGS = {
    "source": "--source",
    "source_args": "--mosaic-dir/--url-template",
    "tilers": "--tilers",
    "model_repo": "--model-repo",
}


def _show(key: str, value: Any) -> str:
    if key == "source_args":
        return " ".join(value) if value else "(none)"
    return str(value)


def _describe_options(options: dict[str, Any]) -> str:
    return ", ".join(f"{_FLAGS[k]} {_show(k, options[k])}" for k in _FLAGS)


def _differences(recorded: dict[str, Any], given: dict[str, Any]) -> list[str]:
    return [
        f"{_FLAGS[key]} {_show(key, recorded[key])} (not {_show(key, value)})"
        for key, value in given.items()
        if recorded.get(key) != value
    ]


def _start_error(exc: Exception) -> ValueError:
    """One line from a ProcessStartError: component, status, log file, last log line."""
    headline = str(exc).split("\n", 1)[0]
    tail = [line.strip() for line in getattr(exc, "log_tail", "").splitlines() if line.strip()]
    reason = f"; last log line: {tail[-1]}" if tail else ""
    return ValueError(f"{headline}{reason}")


def _start_new(args: argparse.Namespace, options: dict[str, Any] | None) -> Any:
    """Start a stack in ``args.data_dir`` with recorded ``options`` or the command line's."""
    from ..stream.local.processes import ProcessStartError
    from ..stream.local.stack import LocalStack, StackConfig

    data_dir = args.data_dir.resolve()
    if options is not None:
        # Restart as it was; not stopped at exit: the stack outlives this command.
        config = StackConfig.from_options(data_dir, options, stop_at_exit=False)
    else:
        settings: dict[str, Any] = {
            "data_dir": data_dir,
            "source": args.source or "simulated",
            "source_args": tuple(_source_args(args)),
            "tilers": args.tilers or 1,
            "stop_at_exit": False,  # the stack outlives this command; `stack down` stops it
        }
        if args.model_repo is not None:
            settings["model_repo"] = args.model_repo.resolve()
        config = StackConfig(**settings)
    stack = LocalStack(config)
    try:
        return stack.start(progress=lambda name: print(f"  starting {name} ...", flush=True))
    except ProcessStartError as exc:
        stack.stop()
        raise _start_error(exc) from None
    except BaseException:
        stack.stop()
        raise


def start_or_reuse(args: argparse.Namespace) -> tuple[Any, str]:
    """The running stack's state (reused, its down services restarted) or a new one's.

    Also returns what was done, one line for the user. Options given on the
    command line must match those of a stack already in ``--data-dir``.
    """
    from ..stream.local.processes import ProcessStartError
    from ..stream.local.stack import is_service, recorded_options, restart_services, stop_stack
    from ..stream.local.stack_state import dead_components, load_state

    check_up_options(args)
    state = load_state(args.data_dir)
    if state is None:
        return _start_new(args, None), "stack started"
    recorded = recorded_options(state)
    if recorded is not None:
        differ = _differences(recorded, _requested(args))
        if differ:
            raise ValueError(
                f"the stack in {args.data_dir} was started with other options: "
                f"{'; '.join(differ)}; stop it first with `radiounet stack down --data-dir "
                f"{args.data_dir}` or use another --data-dir"
            )
    dead = dead_components(state)
    if not dead:
        return state, "reusing the running stack"
    if len(dead) == len(state.components):
        what = "is down"
    else:
        what = f"is partly down (down: {', '.join(dead)})"
    if recorded is not None and all(is_service(name) for name in dead):
        print(
            f"the stack in {args.data_dir} {what}: restarting {', '.join(dead)} "
            "on the same ports; the rest keeps running",
            flush=True,
        )
        try:
            state = restart_services(
                state, dead, progress=lambda n: print(f"  starting {n} ...", flush=True)
            )
        except ProcessStartError as exc:
            raise _start_error(exc) from None
        return state, f"restarted {', '.join(dead)}"
    if recorded is not None:
        plan = f"with the options it was started with ({_describe_options(recorded)})"
    else:
        plan = "with this command's options (the old ones are not recorded)"
    print(
        f"the stack in {args.data_dir} {what}: stopping the rest and starting every "
        f"component again {plan}; the ports change",
        flush=True,
    )
    stop_stack(args.data_dir)
    return _start_new(args, recorded), "stack restarted"


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

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    pointings = _demo_pointings(args)
    state, done = start_or_reuse(args)
    print(done)
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
    print(demo_hints(state.data_dir))
    if pending:
        print(f"timed out waiting for {len(pending)} pointings: {', '.join(sorted(pending))}")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from ..stream.local.stack import stop_stack
    from ..stream.local.stack_state import dead_components, load_state

    if args.action == "up":
        state, done = start_or_reuse(args)
        print(done)
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
    recorded = load_state(args.data_dir)
    if recorded is None:
        print(f"no stack in {args.data_dir}")
        return 1
    dead = dead_components(recorded)
    if not dead:
        _describe(recorded)
        return 0
    print(status_table(recorded, dead))
    return 1


def status_table(state: Any, dead: list[str]) -> str:
    """What runs and what is down in a stack that is not healthy, and what to do."""
    from ..stream.local.stack import is_service, recorded_options

    lines = [
        f"stack in {state.data_dir} is not healthy: "
        f"{len(dead)} of {len(state.components)} components down"
    ]
    for name, rec in state.components.items():
        if name in dead:
            lines.append(f"  {name:<15} DOWN     (was pid {rec.pid}; log {rec.log_path})")
        else:
            lines.append(f"  {name:<15} running  pid {rec.pid:<8} {rec.endpoint}")
    data_dir = state.data_dir
    if recorded_options(state) is not None and all(is_service(n) for n in dead):
        lines.append(
            f"restart the down ones with `radiounet stack up --data-dir {data_dir}` "
            "(the others keep running, with their ports)"
        )
    else:
        lines.append(
            f"restart it with `radiounet stack up --data-dir {data_dir}` (every component "
            "restarts, on new ports)"
        )
    lines.append(f"or stop it all with `radiounet stack down --data-dir {data_dir}`")
    return "\n".join(lines)


def demo_hints(data_dir: Path | str) -> str:
    """Commands that look further at the stack in ``data_dir`` (not the default one)."""
    return (
        f"more: radiounet status --all --stack {data_dir} | "
        f"radiounet results --stack {data_dir} --format csv | "
        f"radiounet dashboards show --data-dir {data_dir} | "
        f"radiounet stack down --data-dir {data_dir}"
    )
