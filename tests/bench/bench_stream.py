"""End-to-end throughput and latency of the local streaming pipeline (a script, not a test).

Run from the repository root::

    .venv/bin/python tests/bench/bench_stream.py [--pointings 24] [--tilers 1,2]

What it measures, and how:

(a) Raw model: the served SavedModel version loaded in this process, timed on
    batches of random [0, 1] tiles (16, the tiler's chunk; and 64, the model
    server's largest merged batch) after one warm-up batch, one call at a time
    and two calls at once (two streams: one call's serial parts leave cores
    idle that the other fills, as the model server's two batch threads do).
    The raw figure of each stack is the model at its best here (the faster of
    one and two streams of 16-tile calls), measured just before the stack
    starts and again just after it stops; the ratio below uses the faster of
    the two. Other load can only slow a raw figure, and this machine's speed
    drifts within minutes: with their mean, one disturbed figure (63 tiles/s
    against 92 after the stack, in a run of session 7) lifted a ratio to 0.85
    that was 0.72 against the undisturbed one.
(b) For each tiler count, a fresh ``LocalStack`` (broker, object store,
    Prometheus, model server, fetcher -> tiler(s) -> reassembler -> classifier;
    real processes on loopback) under ``out/bench-stream/tilers-N/``:

    - gRPC: the model through the stack's model server (``ModelClient``), one
      request of 16 tiles in flight, and four (the tiler's pattern);
    - cutouts: by default (``--source http``) the fetcher downloads them from a
      local HTTP cutout service (in this script, like the LoTSS-DR2 cutout
      service), which serves simulated fields rendered before the stack starts
      (992 px around each pointing: the fetcher's 16-px margin), so the burst
      times the pipeline, not the sky simulator; ``--source simulated`` has the
      fetcher simulate each sky itself (the ``make run`` demo's source);
    - warm-up: 2 pointings, waited for;
    - burst: N simulated LoTSS pointings (960x960 at 4.5", 81 tiles; dec 20-70,
      each with a cluster z, M500) published at once; every ``results/<id>.json``
      is waited for and its correlation id checked. Throughput = N (x 81 tiles) /
      (last ``classified_unix_ms`` - first ``submitted_unix_ms``); the ratio of its
      tiles/s to the raw model's (see (a)) has a target of >= 0.8. Latency
      per pointing = ``classified_unix_ms - submitted_unix_ms`` of its result (in a
      burst it is mostly queueing). Per stage, the services'
      ``radiounet_stage_duration_seconds`` (per message) and
      ``radiounet_pointing_latency_seconds`` (submission -> end of the stage)
      histograms, scraped from every ``/metrics`` before and after the burst
      (quantiles interpolated in the buckets, as ``histogram_quantile`` does; the
      stack's Prometheus is queried as a cross-check); the model server's
      request, queueing and model-run figures (TF Serving metrics); and the CPU
      seconds of each process (``/proc/<pid>/stat``) beside what the rest of the
      machine used meanwhile (other work there makes every figure noisy);
    - solo: a few pointings submitted one at a time (latency without queueing);
    - peak and current resident memory of each process (VmHWM, VmRSS).

    The stack is then stopped and its directory removed (kept after a failure, for
    the logs); ``--keep`` leaves it running.

Prints figures and PASS/FAIL against the target; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shutil
import statistics
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out" / "bench-stream"
TARGET_RATIO = 0.8
CHUNK = 16  # the tiler's DEFAULT_CHUNK_TILES (tiles per Predict request)
STAGES = ("fetcher", "tiler", "reassembler", "classifier")
TICK = os.sysconf("SC_CLK_TCK")
INF = float("inf")
NAN = float("nan")
#: TF Serving's metric names (the stand-in exports the same).
TFS = ":tensorflow:serving:"

#: (target, metric sample name, labels) -> value
Samples = dict[tuple[str, str, frozenset[tuple[str, str]]], float]


# --- small measuring tools -------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """``tiles`` tiles in ``seconds`` (sum of the timed calls); ``per_call`` the call times.

    ``cpu_s``: CPU seconds this process used meanwhile (in-process model only);
    ``streams``: calls made at once (``per_call`` then times each round of them).
    """

    tiles: int
    seconds: float
    per_call: list[float]
    cpu_s: float = NAN
    streams: int = 1

    @property
    def cpu_s_per_tile(self) -> float:
        return self.cpu_s / self.tiles

    @property
    def tiles_s(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else NAN

    def text(self) -> str:
        calls = self.per_call
        cores = f", {self.cpu_s / self.seconds:.2f} cores busy" if math.isfinite(self.cpu_s) else ""
        rounds = "calls" if self.streams == 1 else f"rounds of {self.streams} calls"
        return (
            f"{self.tiles_s:6.1f} tiles/s  ({len(calls)} {rounds}, median "
            f"{statistics.median(calls) * 1000:.0f} ms, {min(calls) * 1000:.0f}.."
            f"{max(calls) * 1000:.0f} ms{cores})"
        )


def _random_tiles(n: int, seed: int = 0) -> NDArray[np.float32]:
    return np.random.default_rng(seed).random((n, 192, 192), dtype=np.float32)


def bench_inprocess(
    predictor: Callable[[Any], Any], batch: int, repeats: int, streams: int = 1
) -> Rate:
    """A ``SavedModelPredictor`` on ``repeats`` batches of ``batch`` random tiles.

    With ``streams`` > 1, that many calls run at once, ``repeats`` rounds of them.
    """
    tiles = _random_tiles(batch)
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(predictor, [tiles] * streams))  # warm-up
        times = []
        cpu_start = time.process_time()
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(predictor, [tiles] * streams))
            times.append(time.perf_counter() - start)
    cpu_s = time.process_time() - cpu_start
    return Rate(batch * streams * repeats, sum(times), times, cpu_s, streams)


def bench_raw(predictor: Callable[[Any], Any], repeats: int) -> tuple[Rate, Rate]:
    """The raw model at its best here (the faster of one and two streams of 16-tile calls),
    and one stream alone."""
    one, two = (bench_inprocess(predictor, CHUNK, repeats, streams) for streams in (1, 2))
    return max((one, two), key=lambda r: r.tiles_s), one


def best_rate(rates: Sequence[Rate]) -> float:
    """Highest tiles/s of ``rates``: the model undisturbed (other load only slows it)."""
    return max(r.tiles_s for r in rates) if rates else NAN


def bench_grpc(target: str, batch: int, repeats: int, in_flight: int) -> Rate:
    """The served model over gRPC: ``repeats`` requests of ``batch`` tiles, ``in_flight`` at once.

    With several in flight the call times overlap; ``seconds`` is then the wall
    time of all of them and ``per_call`` the wall time per round of ``in_flight``.
    """
    from radiounet.stream.tiler.model_client import ModelClient

    client = ModelClient(target, max_in_flight=in_flight)
    try:
        client.wait_until_available(timeout=120)
        tiles = _random_tiles(batch)
        client.predict_many([tiles] * in_flight)  # warm-up
        times = []
        for _ in range(max(2, repeats // in_flight)):
            start = time.perf_counter()
            client.predict_many([tiles] * in_flight)
            times.append(time.perf_counter() - start)
        return Rate(batch * in_flight * len(times), sum(times), times)
    finally:
        client.close()


_LINE = re.compile(r"^([^\s{]+)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(target: str, text: str) -> Samples:
    """Samples of a Prometheus text page (prometheus_client's and TF Serving's format)."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        out[(target, match.group(1), frozenset(_LABEL.findall(match.group(2) or "")))] = value
    return out


def scrape(targets: Mapping[str, str]) -> Samples:
    """Every target's ``/metrics`` (``name -> host:port``); a target that fails is left out."""
    samples: Samples = {}
    for name, address in targets.items():
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
                samples.update(parse_metrics(name, reply.read().decode()))
        except OSError as exc:
            print(f"    (scraping {name} at {address} failed: {exc})")
    return samples


def delta(before: Samples, after: Samples) -> Samples:
    """What every counter and histogram gained between two scrapes."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


@dataclass
class Hist:
    """A histogram summed over targets: cumulative count per upper bound, sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)
    total: float = 0.0
    count: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else NAN

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bucket, as PromQL ``histogram_quantile``."""
        if self.count <= 0 or not self.buckets:
            return NAN
        bounds = sorted(self.buckets)
        rank = q * self.buckets[bounds[-1]]
        low, below = 0.0, 0.0
        for bound in bounds:
            cumulative = self.buckets[bound]
            if cumulative >= rank:
                if bound == INF:
                    return low  # the highest finite bound, as Prometheus
                if cumulative == below:
                    return bound
                return low + (bound - low) * (rank - below) / (cumulative - below)
            low, below = bound, cumulative
        return low

    def quantile_text(self, q: float, digits: int = 0) -> str:
        """The quantile, with ``>=`` when it lies beyond the highest finite bound."""
        value = self.quantile(q)
        finite = [b for b in self.buckets if b != INF]
        beyond = bool(finite) and q * self.count > self.buckets[max(finite)]
        return f"{'>=' if beyond else ''}{value:.{digits}f}"


def histogram(samples: Samples, name: str, scale: float = 1.0, **match: str) -> Hist:
    """Histogram ``name`` over every target and series whose labels include ``match``."""
    want = set(match.items())
    hist = Hist()
    for (_, metric, labels), value in samples.items():
        if not want <= labels:
            continue
        if metric == f"{name}_bucket":
            le = dict(labels)["le"]
            bound = INF if le == "+Inf" else float(le) * scale
            hist.buckets[bound] = hist.buckets.get(bound, 0.0) + value
        elif metric == f"{name}_sum":
            hist.total += value * scale
        elif metric == f"{name}_count":
            hist.count += value
    return hist


def counter(samples: Samples, name: str, **match: str) -> float:
    want = set(match.items())
    return sum(v for (_, m, labels), v in samples.items() if m == name and want <= labels)


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    if pid is None:
        return NAN
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return NAN


def proc_memory_mib(pid: int | None) -> tuple[float, float]:
    """(VmHWM, VmRSS) of process ``pid`` in MiB."""
    if pid is None:
        return NAN, NAN
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return NAN, NAN


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
        return (sum(values[:8]) - values[3] - values[4]) / TICK
    except (OSError, ValueError, IndexError):
        return NAN


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else NAN


def _fmt(value: float, digits: int = 2, width: int = 7) -> str:
    return f"{'-':>{width}}" if not math.isfinite(value) else f"{value:>{width}.{digits}f}"


# --- the cutout service --------------------------------------------------------------------


class CutoutService:
    """A local HTTP cutout service answering ``/cutout?pos=RA,DEC&size=ARCMIN`` with FITS.

    Serves simulated fields rendered up front (:meth:`add`), keyed by position as
    the fetcher formats it, so that downloading costs the pipeline what a real
    survey cutout service would: no sky simulation inside the timed burst.
    """

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.fields: dict[str, bytes] = {}
        fields = self.fields

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                body = fields.get(query.get("pos", [""])[0])
                status, ctype = (200, "application/fits") if body else (404, "text/plain")
                body = body or b"no field rendered at this position"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url_template(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/cutout?pos={{ra}},{{dec}}&size={{size_arcmin}}"

    def add(self, pointings: Sequence[Any]) -> None:
        """Render the simulated field around each pointing (the fetcher's margin included)."""
        import dataclasses

        from radiounet.stream.fetcher.http_source import HttpCutoutSource, format_url
        from radiounet.stream.fetcher.service import request_for
        from radiounet.stream.fetcher.simulated_source import SimulatedSkySource
        from radiounet.stream.fits_objects import fits_bytes

        margin = HttpCutoutSource(self.url_template).margin_px
        sky = SimulatedSkySource()
        for p in pointings:
            request = request_for(p)
            wide = dataclasses.replace(request, size_px=request.size_px + 2 * margin)
            url = format_url("{ra},{dec}", request, margin_px=margin)
            self.fields[url] = fits_bytes(sky.fetch(wide))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- pointings -------------------------------------------------------------------------------


def make_pointings(prefix: str, n: int, seed: int) -> list[Any]:
    """``n`` validated 960x960 4.5" LoTSS-DR2 pointings with a cluster each (dec 20-70)."""
    from radiounet.cli.submit_cmd import PointingDefaults, make_pointing
    from radiounet.stream.messages import validate_pointing

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pointing_id = f"{prefix}-{i:03d}"
        out.append(
            validate_pointing(
                make_pointing(
                    pointing_id,
                    float(rng.uniform(120.0, 250.0)),  # the 13h region of DR2
                    float(rng.uniform(20.0, 70.0)),
                    defaults=PointingDefaults(),
                    name=pointing_id,
                    z=float(rng.uniform(0.05, 0.4)),
                    m500_1e14=float(10 ** rng.uniform(math.log10(3.0), 1.0)),
                )
            )
        )
    return out


@dataclass
class Submitted:
    """Result rows of one submission, and what went wrong."""

    rows: dict[str, dict[str, Any]]
    failed: dict[str, str]
    missing: list[str]
    polled_wall_s: float

    def latencies_s(self) -> list[float]:
        return [
            (row["classified_unix_ms"] - row["submitted_unix_ms"]) / 1000
            for row in self.rows.values()
            if row.get("submitted_unix_ms") and row.get("classified_unix_ms")
        ]

    def steady_s(self) -> tuple[int, float]:
        """Results after the first, and the seconds from the first result to the last.

        The pipeline's rate once it is full: the first result's latency (the stages
        filling, one after the other) is left out.
        """
        done = sorted(
            r["classified_unix_ms"] for r in self.rows.values() if r.get("classified_unix_ms")
        )
        if len(done) < 2:
            return 0, NAN
        return len(done) - 1, (done[-1] - done[0]) / 1000

    def span_s(self) -> float:
        """First submission to last result written, from the rows' own timestamps."""
        rows = [r for r in self.rows.values() if r.get("submitted_unix_ms")]
        if not rows:
            return NAN
        first = min(r["submitted_unix_ms"] for r in rows)
        last = max(r["classified_unix_ms"] for r in rows)
        return (last - first) / 1000


def submit_and_wait(
    settings: Any, store: Any, pointings: Sequence[Any], timeout_s: float
) -> Submitted:
    """Publish ``pointings`` at once; wait for each result (or a dead letter) of this run."""
    from radiounet.cli.submit_cmd import send_pointings
    from radiounet.stream.errors import StageError
    from radiounet.stream.keys import RESULTS_PREFIX, result_key

    started = time.perf_counter()
    sent = send_pointings(settings, pointings)
    wanted = {s.pointing_id: s.correlation_id for s in sent}
    rows: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(rows) + len(failed) < len(wanted) and time.monotonic() < deadline:
        try:
            keys = set(store.list_keys(RESULTS_PREFIX))
            for pointing_id, correlation_id in wanted.items():
                if pointing_id in rows or result_key(pointing_id) not in keys:
                    continue
                row = store.get_json(result_key(pointing_id))
                if row.get("correlation_id") == correlation_id:
                    rows[pointing_id] = row
            for key in store.list_keys("dead-letters/"):
                pointing_id = key.split("/")[1]
                if pointing_id in wanted and pointing_id not in rows:
                    failed[pointing_id] = key
        except StageError as exc:
            print(f"    (object store: {exc}; retrying)")
        time.sleep(0.25)
    missing = sorted(set(wanted) - set(rows) - set(failed))
    return Submitted(rows, failed, missing, time.perf_counter() - started)


# --- one stack -------------------------------------------------------------------------------


@dataclass
class StackRun:
    tilers: int
    raw: list[Rate] = field(default_factory=list)  # bench_raw just before and after the stack
    raw_one_stream: list[Rate] = field(default_factory=list)  # the same, one stream alone
    startup_s: float = NAN
    stack_cpu_s: float = NAN  # CPU seconds of all the stack's processes during the burst
    grpc: dict[int, Rate] = field(default_factory=dict)
    burst: Submitted | None = None
    solo: list[float] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _served_repo(model_version: int | None) -> Path:
    """The model repository to serve: the shipped one, or a config pinning one version."""
    from radiounet.model.repository import default_model_repo

    if model_version is None:
        return default_model_repo()
    repo = OUT / f"model-repo-v{model_version}"
    repo.mkdir(parents=True, exist_ok=True)
    base = default_model_repo() / "radio_unet"
    (repo / "models.config").write_text(
        'model_config_list {\n  config {\n    name: "radio_unet"\n'
        f'    base_path: "{base}"\n    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ versions: {model_version} }} }}\n  }}\n}}\n"
    )
    return repo


def _stage_table(samples: Samples, wall_s: float, n_pointings: int) -> list[str]:
    lines = [
        "    per stage, from the services' histograms (quantiles interpolated in the buckets:",
        "    coarse; the mean is exact). 'at end': submission -> end of the stage's work",
        "    (the fetcher records no 'at end': its input is the pointing itself)",
        f"    {'stage':<12} {'msgs':>5} {'mean s':>7} {'p50 s':>7} {'p95 s':>7}  "
        f"{'at end p50':>10} {'p95 s':>7}",
    ]
    for stage in STAGES:
        per_msg = histogram(samples, "radiounet_stage_duration_seconds", stage=stage)
        at_end = histogram(samples, "radiounet_pointing_latency_seconds", stage=stage)
        lines.append(
            f"    {stage:<12} {per_msg.count:>5.0f} {_fmt(per_msg.mean)} "
            f"{_fmt(per_msg.quantile(0.5))} {_fmt(per_msg.quantile(0.95))}  "
            f"{_fmt(at_end.quantile(0.5), width=10)} {_fmt(at_end.quantile(0.95))}"
        )
    # The model server: TF Serving's latencies are in microseconds.
    request = histogram(samples, f"{TFS}request_latency", 1e-3, API="Predict")
    runtime = histogram(samples, f"{TFS}runtime_latency", 1e-3, API="Predict")
    queued = histogram(samples, f"{TFS}batching_session:queuing_latency", 1e-3)
    runs = counter(samples, ":tensorflow:core:graph_runs")
    busy_s = counter(samples, ":tensorflow:core:graph_run_time_usecs") / 1e6
    tiles = counter(samples, "radiounet_tiles_total", stage="tiler")
    lines += [
        f"    model server: {request.count:.0f} Predict requests; ms p50/p95: request "
        f"{request.quantile_text(0.5)}/{request.quantile_text(0.95)}, in runtime (queue "
        f"included) {runtime.quantile_text(0.5)}/{runtime.quantile_text(0.95)}, batch queue "
        f"{queued.quantile_text(0.5)}/{queued.quantile_text(0.95)}",
        f"      {runs:.0f} model runs of {tiles / runs if runs else NAN:.1f} tiles on average; "
        f"model runs took {busy_s:.1f} s in all = {busy_s / wall_s:.2f} running at once on "
        f"average (batch threads may overlap); {tiles / busy_s if busy_s else NAN:.1f} tiles "
        "per second of a run",
        f"      tiles counted by the tiler(s): {tiles:.0f} (expected "
        f"{n_pointings * 81 if n_pointings else '-'})",
    ]
    return lines


def _cpu_table(
    cpu: Mapping[str, float], wall_s: float, machine_s: float, self_s: float, n: int
) -> list[str]:
    cores = os.cpu_count() or 1
    stack_s = sum(v for v in cpu.values() if math.isfinite(v))
    other_s = machine_s - stack_s - self_s
    lines = [
        f"    CPU during the burst ({cores} cores x {wall_s:.1f} s = {cores * wall_s:.0f} core-s):",
        f"    {'process':<15} {'cpu s':>7} {'cores':>6} {'s/pointing':>10}",
    ]
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        lines.append(
            f"    {name:<15} {seconds:>7.1f} {seconds / wall_s:>6.2f} {seconds / max(n, 1):>10.2f}"
        )
    lines += [
        f"    {'all of stack':<15} {stack_s:>7.1f} {stack_s / wall_s:>6.2f}",
        f"    {'this script':<15} {self_s:>7.1f} {self_s / wall_s:>6.2f}",
        f"    {'rest of machine':<15} {other_s:>7.1f} {other_s / wall_s:>6.2f}   "
        "(other work, e.g. concurrent tests: noise)",
    ]
    model_s = cpu.get("model-server", NAN)
    others_s = stack_s - model_s
    lines.append(
        f"    the stack's other processes used {others_s / model_s:.2f} core-s per core-s of the "
        f"model server: CPU-bound, the model gets at most {model_s / stack_s:.0%} of the cores"
    )
    return lines


def _prometheus_check(stack: Any, window_s: float) -> list[str]:
    """Per-stage p50/p95 (submission -> end of stage) as the stack's Prometheus sees them."""
    time.sleep(2 * stack.prometheus.scrape_interval + 0.5)  # let it scrape the end
    window = math.ceil(window_s + 3 * stack.prometheus.scrape_interval)
    found: dict[str, list[float]] = {}
    try:
        for q in (0.5, 0.95):
            expr = (
                f"histogram_quantile({q}, sum by (le, stage) "
                f"(increase(radiounet_pointing_latency_seconds_bucket[{window}s])))"
            )
            for sample in stack.prometheus.query(expr):
                found.setdefault(sample.labels.get("stage", "?"), []).append(sample.value)
    except Exception as exc:  # a cross-check only
        return [f"    Prometheus cross-check failed: {exc}"]
    parts = [
        f"{stage} {'/'.join(f'{v:.1f}' for v in found[stage])}"
        for stage in STAGES
        if stage in found
    ]
    return [
        f"    Prometheus (increase over {window} s), submission -> end of stage p50/p95 s",
        "    (same buckets, ..., 25, 60, 120, 300 s: interpolated, coarse):",
        "      " + ", ".join(parts),
    ]


def _measure_raw(run: StackRun, predictor: Callable[[Any], Any], repeats: int, when: str) -> None:
    best, one = bench_raw(predictor, repeats)
    run.raw.append(best)
    run.raw_one_stream.append(one)
    run.lines.append(f"    raw model in-process just {when}, {CHUNK}/batch: {best.text()}")
    if best is not one:
        run.lines.append(f"      (one stream alone: {one.text()})")


def run_stack(
    run: StackRun,
    args: argparse.Namespace,
    repo: Path,
    predictor: Callable[[Any], Any],
    cutouts: CutoutService | None,
) -> None:
    """Start a stack with ``run.tilers`` tilers, measure it (filling ``run``) and stop it."""
    from radiounet.stream.local.stack import LocalStack, StackConfig, stop_stack
    from radiounet.stream.object_store import ObjectStore
    from radiounet.stream.settings import settings_from

    tilers = run.tilers
    say = run.lines.append
    data_dir = OUT / f"tilers-{tilers}"
    stop_stack(data_dir)  # one kept by an earlier --keep run
    shutil.rmtree(data_dir, ignore_errors=True)
    source = ("http", ("--url-template", cutouts.url_template)) if cutouts else ("simulated", ())
    stack = LocalStack(
        StackConfig(
            data_dir=data_dir,
            model_repo=repo,
            tilers=tilers,
            source=source[0],
            source_args=source[1],
            model_server_args=tuple(args.model_server_args.split()),
            tiler_args=tuple(args.tiler_args.split()),
            stop_at_exit=not args.keep,
        )
    )
    print(f"\n== stack with {tilers} tiler(s): {data_dir}", flush=True)
    _measure_raw(run, predictor, args.repeats, "before")
    try:
        start = time.perf_counter()
        stack.start(progress=lambda name: print(f"   starting {name}", flush=True))
        run.startup_s = time.perf_counter() - start
        settings = settings_from(env={}, **stack.settings())
        store = ObjectStore.from_settings(settings)
        targets = {name: f"127.0.0.1:{port}" for name, port in stack.metrics_ports.items()}
        targets["model-server"] = f"127.0.0.1:{stack.model_metrics_port}"
        pids = {name: component.pid for name, component in stack.components()}
        say(f"    started in {run.startup_s:.0f} s; load average {_loadavg()}")

        for in_flight in (1, 4):
            run.grpc[in_flight] = bench_grpc(settings.model_server, CHUNK, args.repeats, in_flight)
            say(f"    gRPC, {in_flight} x {CHUNK} tiles in flight: {run.grpc[in_flight].text()}")

        print("   warm-up", flush=True)
        warm = submit_and_wait(settings, store, make_pointings("warmup", 2, seed=99), args.timeout)
        say(
            f"    warm-up: {len(warm.rows)}/2 results in {warm.polled_wall_s:.1f} s "
            f"(latency {', '.join(f'{v:.1f}' for v in warm.latencies_s())} s)"
        )

        n = args.pointings
        print(f"   burst of {n} pointings", flush=True)
        pointings = make_pointings("bench", n, seed=args.seed)
        before = scrape(targets)
        cpu_before = {name: proc_cpu_s(pid) for name, pid in pids.items()}
        machine_before, self_before = machine_busy_s(), time.process_time()
        burst = run.burst = submit_and_wait(settings, store, pointings, args.timeout)
        machine_s = machine_busy_s() - machine_before
        self_s = time.process_time() - self_before
        cpu = {name: proc_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
        after = scrape(targets)
        wall = burst.span_s()
        done = len(burst.rows)
        tiles = done * 81
        lat = burst.latencies_s()
        say(
            f"    burst: {done}/{n} results"
            + (f", {len(burst.failed)} dead-lettered" if burst.failed else "")
            + (
                f", {len(burst.missing)} missing after {args.timeout:.0f} s"
                if burst.missing
                else ""
            )
            + f"; load average {_loadavg()}"
        )
        say(
            f"    wall (first submission -> last result written) {wall:.1f} s "
            f"(polled: {burst.polled_wall_s:.1f} s)"
        )
        models = sorted(
            {f"{r['model']['name']}/{r['model']['version']}" for r in burst.rows.values()}
        )
        say(f"    maps made by model {', '.join(models) or '-'}")
        say(f"    throughput {done / wall:.3f} pointings/s, {tiles / wall:.1f} tiles/s")
        say(
            f"    latency per pointing (submission -> result): p50 {percentile(lat, 0.5):.1f} s, "
            f"p95 {percentile(lat, 0.95):.1f} s, max {max(lat, default=NAN):.1f} s"
        )
        run.lines += _stage_table(delta(before, after), wall, done)
        run.lines += _cpu_table(cpu, wall, machine_s, self_s, done)
        run.stack_cpu_s = sum(v for v in cpu.values() if math.isfinite(v))
        run.lines += _prometheus_check(stack, burst.polled_wall_s)

        print(f"   {args.solo} solo pointing(s)", flush=True)
        before = scrape(targets)
        for i, pointing in enumerate(make_pointings("solo", args.solo, seed=args.seed + 1)):
            one = submit_and_wait(settings, store, [pointing], args.timeout)
            run.solo += one.latencies_s()
            if not one.rows:
                say(f"    solo pointing {i}: no result ({one.failed or 'timed out'})")
        if args.solo:
            say(
                f"    solo (one at a time, no queueing): latency "
                f"{', '.join(f'{v:.1f}' for v in run.solo)} s; per stage, mean s per message:"
            )
            solo = delta(before, scrape(targets))
            say(
                "      "
                + ", ".join(
                    f"{stage} "
                    f"{histogram(solo, 'radiounet_stage_duration_seconds', stage=stage).mean:.2f}"
                    for stage in STAGES
                )
            )

        say("    memory of each process at the end, MiB:")
        say(f"    {'process':<15} {'peak (VmHWM)':>12} {'now (VmRSS)':>11}")
        for name, pid in pids.items():
            hwm, rss = proc_memory_mib(pid)
            say(f"    {name:<15} {hwm:>12.0f} {rss:>11.0f}")
    finally:
        if args.keep:
            print(f"   kept running; stop it: .venv/bin/radiounet stack down --data-dir {data_dir}")
        else:
            stack.stop()
            _measure_raw(run, predictor, args.repeats, "after")
        print("\n".join(run.lines), flush=True)
    if not args.keep:  # ~0.5 GB of store volumes; kept (with the logs) when the run failed
        shutil.rmtree(data_dir, ignore_errors=True)


# --- main ------------------------------------------------------------------------------------


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


#: Summary rows: label and decimals.
_SUMMARY = (
    ("stack start-up s", 0),
    ("results of the burst", 0),
    ("wall s", 1),
    ("pointings/s", 3),
    ("tiles/s", 1),
    ("raw in-process tiles/s (best of before/after)", 1),
    ("ratio to raw in-process", 2),
    ("tiles/s, first to last result (***)", 1),
    ("ratio of that to raw", 2),
    ("ratio, CPU-bound estimate (*)", 2),
    ("ratio to one stream of raw calls (**)", 2),
    ("gRPC tiles/s, 1 x 16 in flight", 1),
    ("gRPC tiles/s, 4 x 16 in flight", 1),
    ("ratio to gRPC, 4 x 16 in flight", 2),
    ("latency p50 s (burst)", 1),
    ("latency p95 s (burst)", 1),
    ("latency median s (solo)", 1),
)


def _figures(r: StackRun, raw16: Rate) -> dict[str, float]:
    raw_tiles_s = best_rate(r.raw) if r.raw else raw16.tiles_s
    raw_cpu_per_tile = (
        statistics.fmean(x.cpu_s_per_tile for x in r.raw) if r.raw else raw16.cpu_s_per_tile
    )
    burst = r.burst
    done = len(burst.rows) if burst is not None else 0
    wall = burst.span_s() if burst is not None and done else NAN
    tiles_s = done * 81 / wall
    latencies = burst.latencies_s() if burst is not None else []
    after_first, steady_s = burst.steady_s() if burst is not None else (0, NAN)
    steady_tiles_s = after_first * 81 / steady_s if after_first else NAN
    grpc = {k: v.tiles_s for k, v in r.grpc.items()}
    stack_cpu_per_tile = r.stack_cpu_s / (done * 81) if done else NAN
    return {
        "stack start-up s": r.startup_s,
        "results of the burst": done,
        "wall s": wall,
        "pointings/s": done / wall,
        "tiles/s": tiles_s,
        "raw in-process tiles/s (best of before/after)": raw_tiles_s,
        "ratio to raw in-process": tiles_s / raw_tiles_s,
        "tiles/s, first to last result (***)": steady_tiles_s,
        "ratio of that to raw": steady_tiles_s / raw_tiles_s,
        "ratio, CPU-bound estimate (*)": raw_cpu_per_tile / stack_cpu_per_tile,
        "ratio to one stream of raw calls (**)": tiles_s / best_rate(r.raw_one_stream),
        "gRPC tiles/s, 1 x 16 in flight": grpc.get(1, NAN),
        "gRPC tiles/s, 4 x 16 in flight": grpc.get(4, NAN),
        "ratio to gRPC, 4 x 16 in flight": tiles_s / grpc.get(4, NAN),
        "latency p50 s (burst)": percentile(latencies, 0.5),
        "latency p95 s (burst)": percentile(latencies, 0.95),
        "latency median s (solo)": statistics.median(r.solo) if r.solo else NAN,
    }


def _summary(runs: Sequence[StackRun], raw16: Rate) -> list[str]:
    figures = [_figures(r, raw16) for r in runs]
    width = max(len(label) for label, _ in _SUMMARY)
    lines = [f"    {'':<{width}}" + "".join(f"{f'tilers={r.tilers}':>11}" for r in runs)]
    for label, digits in _SUMMARY:
        cells = "".join(_fmt(f[label], digits, 11) for f in figures)
        lines.append(f"    {label:<{width}}{cells}")
    lines += [
        "    (*) CPU seconds per tile of the raw model / of the whole stack in the burst: the",
        "        ratio if both were CPU-bound on the same cores. Less sensitive to other load;",
        "        it overstates the loss when the raw model alone leaves cores idle (see the",
        "        'cores busy' of its figures).",
        "    (**) against the raw model called one batch at a time (the raw figure before the",
        "        model server ran two batch threads): not the target's measure, for comparison.",
        "    (***) the rate once the pipeline is full: results after the first over the time",
        "        from the first result to the last, leaving out the stages' filling (the first",
        "        result's latency). A survey-scale run approaches it; the target is judged on",
        "        the burst's own rate above (first submission to last result).",
        "    The ratio to raw uses the faster of the raw figures taken just before that stack",
        "    started and just after it stopped (each the faster of one and two streams of",
        f"    16-tile calls; {raw16.tiles_s:.1f} tiles/s at the start, (a)).",
    ]
    for r, f in zip(runs, figures, strict=True):
        ratio = f["ratio to raw in-process"]
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        lines.append(
            f"    tilers={r.tilers}: end-to-end / raw = {ratio:.2f}, target >= {TARGET_RATIO}: "
            f"{verdict}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pointings", type=int, default=24, help="pointings in the burst")
    parser.add_argument("--tilers", type=_int_list, default=[1, 2], help="e.g. 1,2 (default)")
    parser.add_argument("--model-version", type=int, default=None, help="default: the latest")
    parser.add_argument("--repeats", type=int, default=12, help="batches per raw-model figure")
    parser.add_argument("--solo", type=int, default=3, help="pointings sent one at a time")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for results")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pointings")
    parser.add_argument("--keep", action="store_true", help="leave the stacks running")
    parser.add_argument(
        "--tiler-args", default="", help="extra tiler flags, e.g. '--chunk-tiles=32'"
    )
    parser.add_argument(
        "--model-server-args",
        default="",
        help="extra model-server flags, e.g. '--num_batch_threads=2 "
        "--tensorflow_intra_op_parallelism=1'",
    )
    parser.add_argument(
        "--source",
        choices=("http", "simulated"),
        default="http",
        help="where the fetcher gets cutouts: a local HTTP cutout service of pre-rendered "
        "simulated fields (default), or the simulator inside the fetcher",
    )
    args = parser.parse_args(argv)

    from radiounet.core.tiling import tile_grid
    from radiounet.model.repository import resolve_model
    from radiounet.stream.messages import DEFAULT_PIXEL_SCALE_ARCSEC, DEFAULT_SIZE_PX
    from radiounet.stream.tiler.service import DEFAULT_CHUNK_TILES
    from radiounet.tf_runtime import tf

    assert len(tile_grid((DEFAULT_SIZE_PX, DEFAULT_SIZE_PX))) == 81, "81 tiles per pointing"
    assert DEFAULT_CHUNK_TILES == CHUNK, "the tiler's chunk size changed"
    started = time.perf_counter()
    model = resolve_model(version=args.model_version)
    repo = _served_repo(args.model_version)
    print("radiounet end-to-end streaming benchmark")
    print(f"command : {sys.executable} {' '.join(sys.argv)}")
    print(
        f"machine : {os.cpu_count()} CPUs ({_cpu_model()}), {platform.platform()}; "
        f"load average {_loadavg()}"
    )
    print(f"software: Python {platform.python_version()}, TensorFlow {tf.__version__}")
    print(
        f"model   : {model.name}/{model.version} (base_filters={model.metadata.base_filters}, "
        f"trained={model.metadata.trained}), served from {repo}"
    )
    print(
        f"pointings: {args.pointings} x {DEFAULT_SIZE_PX}x{DEFAULT_SIZE_PX} px at "
        f'{DEFAULT_PIXEL_SCALE_ARCSEC:g}" = 81 tiles of 192x192 (stride 96), chunks of '
        + (f"--tiler-args {args.tiler_args!r}" if "chunk-tiles" in args.tiler_args else f"{CHUNK}")
    )
    print("note    : every service shares the machine with anything else running on it; the")
    print("          'rest of machine' CPU line of each run says how much that was.")

    print("\n(a) raw model in this process, random tiles, after one warm-up batch", flush=True)
    from radiounet.model.predictor import SavedModelPredictor

    predictor = SavedModelPredictor(model)
    raw = {
        (batch, streams): bench_inprocess(predictor, batch, args.repeats, streams)
        for batch in (CHUNK, 64)
        for streams in (1, 2)
    }
    for (batch, streams), rate in raw.items():
        print(f"    batches of {batch:>2}, {streams} stream(s): {rate.text()}")
    best16 = max((raw[CHUNK, 1], raw[CHUNK, 2]), key=lambda r: r.tiles_s)

    cutouts = None
    if args.source == "http":
        cutouts = CutoutService()
        t0 = time.perf_counter()
        cutouts.add(make_pointings("warmup", 2, seed=99))
        cutouts.add(make_pointings("bench", args.pointings, seed=args.seed))
        cutouts.add(make_pointings("solo", args.solo, seed=args.seed + 1))
        print(
            f"\ncutouts: {len(cutouts.fields)} simulated fields rendered in "
            f"{time.perf_counter() - t0:.0f} s, served at {cutouts.url_template}"
        )
    else:
        print("\ncutouts: simulated by the fetcher itself (inside the timed burst)")

    print(f"\n(b) the local stack, for {', '.join(map(str, args.tilers))} tiler(s)")
    runs = []
    try:
        for tilers in args.tilers:
            run = StackRun(tilers)
            runs.append(run)
            try:
                run_stack(run, args, repo, predictor, cutouts)
            except Exception:  # report it, go on with the next stack
                traceback.print_exc()
                print(f"   the run with {tilers} tiler(s) failed; its figures are partial")
    finally:
        if cutouts is not None:
            cutouts.close()

    print("\nsummary")
    print("\n".join(_summary(runs, best16)))
    print(f"\n{time.perf_counter() - started:.0f} s in all; load average now {_loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
