"""Throughput and memory of segmentation with the shipped model (a script, not a test).

Run from the repository root::

    .venv/bin/python tests/bench/bench_segment.py [--quick]

It prints (a) the raw model rate on batches of normalised tiles; (b) for the
960x960 example field and a 2000x2000 one, the segmentation time and the
tiling/reassembly overhead (segmentation time minus time inside the model, as a
share of model time; target below 10%); (c) the peak memory of each of those
runs, each in a fresh process; (d) the memory of tiling 3000x3000 and
6000x6000 memory-mapped FITS mosaics into memory-mapped outputs with a stub
model, to show that it does not grow with the image. With ``--quick`` only
the 960x960 case of (b, c) runs.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radiounet.core.normalisation import get_profile
from radiounet.core.segmentation import DEFAULT_BATCH_SIZE, segment
from radiounet.core.tiling import tile_grid
from radiounet.examples import example_field

PROFILE = "lotss-dr2-lowres"
OVERHEAD_TARGET = 0.10
#: Mosaic sides: memory is bounded if the larger (4x the pixels) needs no more heap.
MOSAIC_SIZES = (3000, 6000)
MIB = 1024**2
_STATUS_KEYS = {"rss": "VmRSS", "hwm": "VmHWM", "anon": "RssAnon"}


def _memory_mib() -> dict[str, float]:
    """This process's resident memory now (rss), its peak (hwm) and heap part (anon), MiB.

    From /proc/self/status (VmRSS, VmHWM, RssAnon). ru_maxrss is only the
    fallback: Linux carries it over from the parent through fork and exec, so a
    child started by a parent holding TensorFlow would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return {key: int(fields[name].split()[0]) / 1024 for key, name in _STATUS_KEYS.items()}
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mib = peak / MIB if sys.platform == "darwin" else peak / 1024
        return {"rss": peak_mib, "hwm": peak_mib, "anon": float("nan")}


def _reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class TimedPredictor:
    """Wrap a predictor and add up the wall time spent inside it."""

    def __init__(self, predict: Callable[[NDArray[np.float32]], NDArray[np.float32]]) -> None:
        self.predict = predict
        self.seconds = 0.0

    def __call__(self, tiles: NDArray[np.float32]) -> NDArray[np.float32]:
        start = time.perf_counter()
        try:
            return self.predict(tiles)
        finally:
            self.seconds += time.perf_counter() - start


def _is_memory_mapped(array: Any) -> bool:
    """Whether ``array`` is a view of a memory map (astropy wraps an ``mmap.mmap``)."""
    while array is not None:
        if isinstance(array, np.memmap | mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False


def _random_tiles(n: int, seed: int = 0) -> NDArray[np.float32]:
    return np.random.default_rng(seed).random((n, 192, 192), dtype=np.float32)


# --- children: each runs in a fresh process so its peak RSS is its own ---------------------


def child_segment(image_path: str, model_path: str) -> dict[str, Any]:
    """Segment the image saved at ``image_path`` with the model; time and memory figures.

    The image is made by the parent so that its temporaries do not count here.
    """
    from radiounet.model.predictor import SavedModelPredictor

    predictor = SavedModelPredictor(model_path)
    loaded = _memory_mib()
    predictor(_random_tiles(DEFAULT_BATCH_SIZE))  # warm-up: the model's batch buffers
    warm = _memory_mib()
    image = np.load(image_path)
    before = _memory_mib()
    reset = _reset_peak()
    timed = TimedPredictor(predictor)
    start = time.perf_counter()
    segment(image, timed, get_profile(PROFILE))
    wall = time.perf_counter() - start
    after = _memory_mib()
    return {
        "size": image.shape[0],
        "tiles": len(tile_grid(image.shape)),
        "wall_s": wall,
        "model_s": timed.seconds,
        "loaded_hwm": loaded["hwm"],
        "warm_hwm": warm["hwm"],
        "before_rss": before["rss"],
        "peak": max(warm["hwm"], after["hwm"]),
        "segment_peak": after["hwm"] if reset else float("nan"),
        "image_mib": image.nbytes / MIB,
    }


def child_mosaic(fits_path: str) -> dict[str, Any]:
    """Tile a memory-mapped FITS mosaic into a memory-mapped output with a zero stub model."""
    from astropy.io import fits

    anon_peak = 0.0

    def sample(_: int) -> None:
        nonlocal anon_peak
        anon_peak = max(anon_peak, _memory_mib()["anon"])

    def stub(tiles: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.zeros_like(tiles)

    with fits.open(fits_path, memmap=True) as hdul, tempfile.TemporaryDirectory() as tmp:
        image = hdul[0].data
        out = np.memmap(Path(tmp) / "probability.f32", np.float32, "w+", shape=image.shape)
        before = _memory_mib()
        reset = _reset_peak()
        start = time.perf_counter()
        segment(image, stub, get_profile(PROFILE), out=out, progress=sample)
        out.flush()
        wall = time.perf_counter() - start
        after = _memory_mib()
        result = {
            "size": image.shape[0],
            "tiles": len(tile_grid(image.shape)),
            "wall_s": wall,
            "before_rss": before["rss"],
            "segment_peak": after["hwm"] if reset else float("nan"),
            "anon_before": before["anon"],
            "anon_peak": anon_peak,
            "image_mib": image.size * 4 / MIB,
            "memmap": _is_memory_mapped(image),
        }
        del image, out
    return result


def _run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"child {' '.join(args)} failed with exit status {proc.returncode}")
    return dict(json.loads(lines[-1].removeprefix("RESULT ")))


# --- parent ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _model(tmp: Path) -> tuple[str, str]:
    """The shipped model's version folder, or a freshly exported placeholder; and a label."""
    from radiounet.model.repository import ModelMetadata, resolve_model

    try:
        version = resolve_model()
        meta = version.metadata
        label = (
            f"shipped {version.name}/{version.version} (base_filters={meta.base_filters}, "
            f"trained={meta.trained})"
        )
        return str(version.path), label
    except ValueError as exc:
        from radiounet.model.export import export_saved_model
        from radiounet.model.unet import build_radio_unet

        path = export_saved_model(
            build_radio_unet(base_filters=32),
            tmp,
            ModelMetadata(base_filters=32, description="untrained benchmark placeholder"),
        )
        label = (
            f"PLACEHOLDER: no shipped model ({exc}); untrained base_filters=32 "
            f"exported to {path} (same architecture and cost as the paper's model)"
        )
        return str(path), label


def bench_raw(model_path: str, repeats: int) -> list[float]:
    """Seconds per batch of DEFAULT_BATCH_SIZE tiles, after one warm-up call."""
    from radiounet.model.predictor import SavedModelPredictor

    predictor = SavedModelPredictor(model_path)
    tiles = _random_tiles(DEFAULT_BATCH_SIZE)
    predictor(tiles)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor(tiles)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 2000x2000 and the mosaic")
    parser.add_argument("--repeats", type=int, default=5, help="raw-model repetitions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mosaic-child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child_segment(args.child, args.model)))
        return 0
    if args.mosaic_child is not None:
        print("RESULT " + json.dumps(child_mosaic(args.mosaic_child)))
        return 0

    from radiounet.tf_runtime import tf

    started = time.perf_counter()
    print("radiounet segmentation benchmark")
    print(f"command : {sys.executable} {' '.join(sys.argv)}")
    print(f"machine : {os.cpu_count()} CPUs ({_cpu_model()}), {platform.platform()}")
    print(
        f"software: Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"NumPy {np.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="radiounet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_path, label = _model(tmp)
        print(f"model   : {label}")
        print(f"profile : {PROFILE}; batch {DEFAULT_BATCH_SIZE} tiles of 192x192, stride 96")

        times = bench_raw(model_path, args.repeats)
        raw_rate = DEFAULT_BATCH_SIZE / statistics.median(times)
        print(
            f"\n(a) raw model: {args.repeats} batches of {DEFAULT_BATCH_SIZE} random tiles "
            f"after one warm-up batch"
        )
        print(
            f"    median {statistics.median(times):.2f} s/batch -> {raw_rate:.1f} tiles/s "
            f"(batches {min(times):.2f}..{max(times):.2f} s)"
        )

        sizes = [960] if args.quick else [960, 2000]
        runs = []
        for size in sizes:
            image_path = tmp / f"field-{size}.npy"
            np.save(image_path, example_field(size=size).image)
            runs.append(_run_child("--child", str(image_path), "--model", model_path))
        print("\n(b) segment() of the example field, each in a fresh process after one warm-up")
        print("    batch; overhead = (segmentation - time inside the model) / model time")
        print(
            f"    {'image':>9} {'tiles':>5} {'wall s':>7} {'model s':>7} {'tiles/s':>7} "
            f"{'vs raw':>6} {'overhead':>8}  target <10%"
        )
        verdicts = []
        for r in runs:
            overhead = (r["wall_s"] - r["model_s"]) / r["model_s"]
            ok = overhead < OVERHEAD_TARGET
            verdicts.append(ok)
            rate = r["tiles"] / r["wall_s"]
            print(
                f"    {r['size']:>4}x{r['size']:<4} {r['tiles']:>5} {r['wall_s']:>7.2f} "
                f"{r['model_s']:>7.2f} {rate:>7.1f} {rate / raw_rate:>6.2f} "
                f"{overhead:>7.1%}  {'PASS' if ok else 'FAIL'}"
            )

        print("\n(c) memory of those processes (VmRSS/VmHWM), MiB")
        print(
            f"    {'image':>9} {'loaded':>7} {'warm-up':>7} {'+image':>7} {'peak':>7} "
            f"{'segment +':>9} {'image+map':>9}"
        )
        for r in runs:
            print(
                f"    {r['size']:>4}x{r['size']:<4} {r['loaded_hwm']:>7.0f} {r['warm_hwm']:>7.0f} "
                f"{r['before_rss']:>7.0f} {r['peak']:>7.0f} "
                f"{r['segment_peak'] - r['before_rss']:>9.0f} {2 * r['image_mib']:>9.0f}"
            )
        print("    loaded/warm-up: peak after loading the model / after one batch (the model's")
        print("    own buffers); +image: resident after loading the image; peak: of the whole")
        print("    process; segment +: peak while segmenting minus resident before it;")
        print("    image+map: size of the input and output arrays.")

        if not args.quick:
            verdicts.append(_bench_mosaics(tmp))

    print(
        f"\nresult: {'PASS' if all(verdicts) else 'FAIL'}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    return 0


def _bench_mosaics(tmp: Path) -> bool:
    """Part (d): heap and RSS growth of tiling memory-mapped mosaics with a stub model."""
    print("\n(d) float32 mosaics: memory-mapped FITS in, np.memmap out, STUB model returning")
    print("    zeros: measures tiling/IO memory only, no model time. MiB:")
    print(
        f"    {'image':>11} {'tiles':>5} {'time s':>6} {'image':>6} {'heap +':>7} "
        f"{'peak RSS +':>10}"
    )
    heap = []
    for size in MOSAIC_SIZES:
        mosaic = tmp / f"mosaic-{size}.fits"
        _write_mosaic(mosaic, size)
        m = _run_child("--mosaic-child", str(mosaic))
        mosaic.unlink()
        if not m["memmap"]:
            print("    WARNING: the FITS data was not memory-mapped")
        heap.append(m["anon_peak"] - m["anon_before"])
        print(
            f"    {size:>5}x{size:<5} {m['tiles']:>5} {m['wall_s']:>6.1f} "
            f"{m['image_mib']:>6.0f} {heap[-1]:>7.1f} {m['segment_peak'] - m['before_rss']:>10.1f}"
        )
    growth = heap[-1] / max(heap[0], 1.0)
    ok = heap[-1] <= 1.5 * heap[0] + 8
    pixels = (MOSAIC_SIZES[-1] / MOSAIC_SIZES[0]) ** 2
    verdict = "PASS" if ok else "FAIL"
    print(f"    heap + (RssAnon, sampled after each batch) grows x{growth:.2f} for x{pixels:.0f}")
    print(f"    the pixels: {verdict} (bounded: < x1.5). It is the per-batch working set (tiles,")
    print("    float64 normalisation temporaries, probabilities) that the allocator keeps;")
    print(
        f"    one batch of tiles is {DEFAULT_BATCH_SIZE * 192 * 192 * 4 / MIB:.1f} MiB. Peak RSS + "
        "also counts the file-backed"
    )
    print("    pages of the input and output maps, which the kernel can drop or write back.")
    return ok


def _write_mosaic(path: Path, size: int) -> None:
    """A noise-like (95 uJy/beam rms) ``size``-square float32 FITS image."""
    from astropy.io import fits

    rng = np.random.default_rng(0)
    data = rng.standard_normal((size, size), dtype=np.float32)
    data *= np.float32(95e-6)
    fits.PrimaryHDU(data).writeto(path)


if __name__ == "__main__":
    raise SystemExit(main())
