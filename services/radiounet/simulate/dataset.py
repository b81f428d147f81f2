"""Write a simulated training/test dataset: random skies, observed and imaged, with their truth.

The folder layout and manifest are the ``radiounet-sim/1`` format of
``DATASET_FORMAT.md`` (next to this module), which training and evaluation
read. Per field: ``fields/<id>_image.fits`` (restored image, Jy/beam),
``_sky.fits`` (true sky, Jy/pixel), ``_mask.fits`` (uint8 reference mask),
``_labels.fits`` (int16 diffuse-source labels) and ``fields/<id>.json`` (the
field's manifest entry, for ``resume``); ``manifest.json`` is written last.

Determinism: field ``i`` is made from its own seed, derived from the dataset
seed with :class:`numpy.random.SeedSequence` spawning, and that seed alone
(recorded in the manifest) reproduces the field with :func:`simulate_field`;
pointings and the test split come from a separate stream of the same seed. The
files therefore do not depend on the number of worker processes, and the FITS
files carry no time stamps, so two runs give byte-identical files. Only
``created`` and the per-field ``seconds`` of the manifest differ.

Robustness: every file is written to a temporary name and renamed, the
per-field sidecar after the four images, and the manifest only when all
fields exist, so an interrupted run never leaves a manifest pointing at
missing files; ``resume=True`` keeps the fields already complete and only
completes the same dataset: it never changes a field's split (held-out test
fields stay held out).

Manifest size: a field holds ~8,600 compact sources (0.1 mJy-1 Jy over
1.2 deg^2). The manifest lists every diffuse source and extended radio galaxy,
but compact sources only from ``COMPACT_LISTED_MIN_JY`` (10 mJy), or from
``COMPACT_LISTED_NEAR_MIN_JY`` (1 mJy) within ``COMPACT_LISTED_NEAR_R500``
(2.2) R500 of a cluster, the region of the paper's detection ratio. The limits
are recorded in the manifest as ``compact_sources_listed``; ``*_sky.fits`` has
them all.

Cost, per field, one worker with one gridder thread, on this project's 2-core
AMD EPYC machine (shared, load 3-4; mean of 5 fields, see
:data:`MEASURED_SECONDS_PER_FIELD`): ``paper-6arcsec`` (2000 x 2000 px of 2")
13 s (11.7-14.4), ``lotss-dr2-lowres`` (960 x 960 px of 4.5") 6.7 s. The sky
model is 0.15 s of it at 2000 x 2000 (0.55 s at most over 20 seeds; 0.08 s at
960 x 960); the rest is the observation (uv coverage,
prediction, gridding, CLEAN major cycles) and ~0.1 s of FITS writing. Fields
run in parallel, one per worker process.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from tqdm import tqdm

from .. import __version__
from .observe import Observation, observe
from .setups import ObservationSetup, get_setup
from .sky import TRUTH_THRESHOLD_JY_ARCSEC2, SkyModel, random_sky

__all__ = [
    "COMPACT_LISTED_MIN_JY",
    "COMPACT_LISTED_NEAR_MIN_JY",
    "COMPACT_LISTED_NEAR_R500",
    "DATASET_FORMAT",
    "DEC_RANGE_DEG",
    "MEASURED_SECONDS_PER_FIELD",
    "FieldResult",
    "FieldTask",
    "ObserveFn",
    "field_files",
    "field_plan",
    "simulate_dataset",
    "simulate_field",
    "simulate_task",
    "write_field",
]

#: Value of the manifest's ``format`` key.
DATASET_FORMAT = "radiounet-sim/1"
#: Pointing declinations: uniform on the sphere over the LoTSS-DR2 range (Shimwell et al. 2022
#: cover ~+15 to +70 deg in two regions); they set the uv coverage.
DEC_RANGE_DEG = (15.0, 70.0)
#: Compact sources listed in the manifest anywhere in the field from this flux (Jy).
COMPACT_LISTED_MIN_JY = 1e-2
#: ... and from this flux (Jy) within ``COMPACT_LISTED_NEAR_R500`` R500 of a cluster centre.
COMPACT_LISTED_NEAR_MIN_JY = 1e-3
#: Radius (in R500) of the cluster regions where fainter compact sources are listed.
COMPACT_LISTED_NEAR_R500 = 2.2
#: Mean seconds per field (sky model + observation, one worker, nthreads=1) measured with
#: ``radiounet simulate`` on this project's 2-core machine.
MEASURED_SECONDS_PER_FIELD: dict[str, float] = {"paper-6arcsec": 13.3, "lotss-dr2-lowres": 6.7}

#: The observation callable: ``observe_fn(sky_jy_per_pixel, setup, *, dec_deg, rng, nthreads)``.
ObserveFn = Callable[..., Observation]

_FILE_KINDS = ("image", "sky", "mask", "labels")


@dataclass(frozen=True, eq=False)
class FieldResult:
    """One simulated field, in memory: its sky model, observation and manifest entry.

    Attributes
    ----------
    field_id : str
    seed : int
        The field's own seed (reproduces it with :func:`simulate_field`).
    split : str
        ``"train"`` or ``"test"``.
    setup : ObservationSetup
    ra_deg, dec_deg : float
        Pointing (phase centre, pixel ``(N // 2, N // 2)``).
    sky : SkyModel
    observation : Observation
    seconds : float
        Wall-clock time of the sky model and observation.
    """

    field_id: str
    seed: int
    split: str
    setup: ObservationSetup
    ra_deg: float
    dec_deg: float
    sky: SkyModel
    observation: Observation
    seconds: float

    @property
    def wcs(self) -> WCS:
        """The celestial WCS of all four images."""
        return WCS(_header(self, kind="sky"))

    def entry(self) -> dict[str, Any]:
        """The field's manifest entry (paths relative to the dataset folder)."""
        obs = self.observation
        bmaj, bmin, bpa = (float(v) for v in obs.beam_deg)
        ra, dec = self.wcs.pixel_to_world_values(
            np.array([c.x for c in self.sky.clusters], dtype=np.float64),
            np.array([c.y for c in self.sky.clusters], dtype=np.float64),
        )
        clusters = []
        near: list[tuple[float, float, float]] = []
        for c, c_ra, c_dec in zip(
            self.sky.clusters, np.atleast_1d(ra), np.atleast_1d(dec), strict=True
        ):
            clusters.append(
                {
                    "id": c.id,
                    "ra_deg": float(c_ra),
                    "dec_deg": float(c_dec),
                    "x": c.x,
                    "y": c.y,
                    "z": c.z,
                    "m500_1e14": c.m500_1e14,
                    "theta500_arcmin": c.theta500_arcmin,
                    "has_diffuse": c.has_diffuse,
                    "hosts": list(c.hosts),
                }
            )
            near.append((c.x, c.y, COMPACT_LISTED_NEAR_R500 * c.r500_pix))
        sources = [
            s.to_dict() for s in self.sky.sources if _listed(s.cls, s.flux_jy, s.x, s.y, near)
        ]
        return {
            "id": self.field_id,
            "seed": self.seed,
            "split": self.split,
            **{kind: f"fields/{name}" for kind, name in field_files(self.field_id).items()},
            "ra_deg": self.ra_deg,
            "dec_deg": self.dec_deg,
            "rms_jy_beam": float(obs.rms_jy_beam),
            "beam_arcsec": [bmaj * 3600.0, bmin * 3600.0, bpa],
            "seconds": round(self.seconds, 3),
            "clusters": clusters,
            "sources": sources,
        }


def _listed(
    cls: str, flux: float, x: float, y: float, near: list[tuple[float, float, float]]
) -> bool:
    if cls != "compact" or flux >= COMPACT_LISTED_MIN_JY:
        return True
    return flux >= COMPACT_LISTED_NEAR_MIN_JY and any(
        math.hypot(x - cx, y - cy) <= r for cx, cy, r in near
    )


def field_files(field_id: str) -> dict[str, str]:
    """File names (inside ``fields/``) of a field's four images, by kind.

    Examples
    --------
    >>> field_files("f0007")["mask"]
    'f0007_mask.fits'
    """
    return {kind: f"{field_id}_{kind}.fits" for kind in _FILE_KINDS}


def _resolve_setup(setup: ObservationSetup | str) -> ObservationSetup:
    if isinstance(setup, str):
        return get_setup(setup)
    if not isinstance(setup, ObservationSetup):
        raise ValueError(f"setup must be an ObservationSetup or a set-up name, got {setup!r}")
    return setup


def simulate_field(
    field_id: str,
    seed: int,
    setup: ObservationSetup,
    *,
    split: str,
    ra_deg: float,
    dec_deg: float,
    nthreads: int = 1,
    observe_fn: ObserveFn | None = None,
) -> FieldResult:
    """Draw one field's sky from ``seed`` and observe it with ``setup`` (no I/O).

    Parameters
    ----------
    field_id : str
        Name of the field (``"f0000"``...), used for file names.
    seed : int
        Non-negative seed: split into one stream for the sky and one for the
        thermal noise.
    setup : ObservationSetup
        Image size, pixel, frequency and the interferometric set-up.
    split : {"train", "test"}, keyword-only
    ra_deg, dec_deg : float, keyword-only
        Pointing; the declination sets the uv coverage.
    nthreads : int, keyword-only
        Threads of the gridder.
    observe_fn : callable, keyword-only
        Replaces :func:`radiounet.simulate.observe.observe` (same signature).

    Returns
    -------
    FieldResult

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    if not (isinstance(field_id, str) and field_id.isidentifier()):
        raise ValueError(f"field_id must be a simple name such as 'f0000', got {field_id!r}")
    if not (isinstance(seed, int | np.integer) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg) and -90 <= dec_deg <= 90):
        raise ValueError(f"pointing must be finite with |dec| <= 90, got {(ra_deg, dec_deg)!r}")
    setup = _resolve_setup(setup)
    observe_fn = observe if observe_fn is None else observe_fn
    start = time.perf_counter()
    sky_seq, noise_seq = np.random.SeedSequence(int(seed)).spawn(2)
    n = setup.image_size
    sky = random_sky(
        np.random.default_rng(sky_seq),
        shape=(n, n),
        pixel_arcsec=setup.pixel_arcsec,
        freq_hz=setup.freq_hz,
    )
    obs = observe_fn(
        sky.sky,
        setup,
        dec_deg=float(dec_deg),
        rng=np.random.default_rng(noise_seq),
        nthreads=nthreads,
    )
    return FieldResult(
        field_id=field_id,
        seed=int(seed),
        split=split,
        setup=setup,
        ra_deg=float(ra_deg) % 360.0,
        dec_deg=float(dec_deg),
        sky=sky,
        observation=obs,
        seconds=time.perf_counter() - start,
    )


# --- FITS --------------------------------------------------------------------------------------


def _header(result: FieldResult, *, kind: str) -> fits.Header:
    setup = result.setup
    n = setup.image_size
    centre = float(n // 2 + 1)  # the phase centre, pixel (N // 2, N // 2), 1-based
    pix = setup.pixel_arcsec / 3600.0
    cards: list[tuple[str, Any, str]] = []
    if kind == "image":
        bmaj, bmin, bpa = (float(v) for v in result.observation.beam_deg)
        cards += [
            ("BUNIT", "JY/BEAM", "restored image"),
            ("BMAJ", bmaj, "[deg] restoring beam FWHM"),
            ("BMIN", bmin, "[deg] restoring beam FWHM"),
            ("BPA", bpa, "[deg] restoring beam position angle"),
        ]
    elif kind == "sky":
        cards.append(("BUNIT", "JY/PIXEL", "true sky, all emission"))
    elif kind == "mask":
        cards.append(
            ("SIMTHRSH", TRUTH_THRESHOLD_JY_ARCSEC2, "[Jy/arcsec2] diffuse-sky mask threshold")
        )
    cards += [
        ("CTYPE1", "RA---SIN", ""),
        ("CRVAL1", result.ra_deg, "[deg]"),
        ("CDELT1", -pix, "[deg]"),
        ("CRPIX1", centre, ""),
        ("CUNIT1", "deg", ""),
        ("CTYPE2", "DEC--SIN", ""),
        ("CRVAL2", result.dec_deg, "[deg]"),
        ("CDELT2", pix, "[deg]"),
        ("CRPIX2", centre, ""),
        ("CUNIT2", "deg", ""),
        ("RADESYS", "FK5", ""),
        ("EQUINOX", 2000.0, ""),
        ("RESTFRQ", setup.freq_hz, "[Hz]"),
        ("TELESCOP", "LOFAR", "simulated"),
        ("OBJECT", result.field_id, ""),
        ("ORIGIN", "radiounet.simulate", f"radiounet {__version__}"),
        ("SIMSETUP", setup.name, "observation set-up"),
        ("SIMSEED", result.seed, "field seed"),
        ("SIMFIELD", result.field_id, "field id"),
    ]
    return fits.Header(cards)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_fits(path: Path, data: np.ndarray, header: fits.Header) -> None:
    def write(tmp: Path) -> None:
        fits.PrimaryHDU(data, header=header).writeto(tmp, output_verify="exception")

    _atomic_write(path, write)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    _atomic_write(path, write)


def write_field(result: FieldResult, out_dir: str | Path) -> dict[str, Any]:
    """Write a field's four FITS images and its sidecar under ``out_dir/fields``.

    Each file is written to a temporary name and renamed; the sidecar
    ``fields/<id>.json`` (which ``resume`` reads back) comes last.

    Returns
    -------
    dict
        The field's manifest entry.
    """
    fields_dir = Path(out_dir) / "fields"
    fields_dir.mkdir(parents=True, exist_ok=True)
    names = field_files(result.field_id)
    sky = result.sky
    data: dict[str, np.ndarray] = {
        "image": np.asarray(result.observation.image, dtype=np.float32),
        "sky": np.asarray(sky.sky, dtype=np.float32),
        "mask": sky.mask.astype(np.uint8),
        "labels": sky.labels.astype(np.int16),
    }
    for kind in _FILE_KINDS:
        _write_fits(fields_dir / names[kind], data[kind], _header(result, kind=kind))
    entry = result.entry()
    _write_json(
        fields_dir / f"{result.field_id}.json",
        {
            "format": DATASET_FORMAT,
            "setup": result.setup.name,
            "setup_parameters": result.setup.to_dict(),
            "field": entry,
        },
    )
    return entry


# --- The dataset -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldTask:
    """One field of a dataset plan: id, seed, split and pointing."""

    field_id: str
    seed: int
    split: str
    ra_deg: float
    dec_deg: float


def field_plan(n_fields: int, seed: int, *, test_fraction: float = 0.1) -> list[FieldTask]:
    """The fields of a dataset: ids, seeds, splits and pointings, from the dataset seed alone.

    Field ``i``'s seed and pointing do not depend on ``n_fields`` (only the
    choice of test fields does): ``SeedSequence(seed)`` is spawned into a
    pointing/split stream and a parent of the field seeds.

    Examples
    --------
    >>> plan = field_plan(10, 42, test_fraction=0.2)
    >>> [t.field_id for t in plan][:3], sum(t.split == "test" for t in plan)
    (['f0000', 'f0001', 'f0002'], 2)
    >>> plan[3].seed == field_plan(20, 42)[3].seed
    True
    """
    if not (isinstance(n_fields, int | np.integer) and n_fields >= 1):
        raise ValueError(f"n_fields must be a positive integer, got {n_fields!r}")
    if not (isinstance(seed, int | np.integer) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (math.isfinite(test_fraction) and 0.0 <= test_fraction < 1.0):
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    n = int(n_fields)
    meta_seq, fields_seq = np.random.SeedSequence(int(seed)).spawn(2)
    # One 63-bit integer per field: JSON- and FITS-safe, and a complete seed on its own.
    seeds = [int(s.generate_state(1, dtype=np.uint64)[0] >> 1) for s in fields_seq.spawn(n)]
    meta = np.random.default_rng(meta_seq)
    u = meta.random((n, 2))  # row i is field i's pointing, whatever n is
    ra = 360.0 * u[:, 0]
    lo, hi = (math.sin(math.radians(d)) for d in DEC_RANGE_DEG)
    dec = np.degrees(np.arcsin(lo + (hi - lo) * u[:, 1]))
    n_test = round(test_fraction * n)
    test = set(meta.choice(n, size=n_test, replace=False).tolist()) if n_test else set()
    width = max(4, len(str(n - 1)))
    return [
        FieldTask(
            field_id=f"f{i:0{width}d}",
            seed=seeds[i],
            split="test" if i in test else "train",
            ra_deg=float(ra[i]),
            dec_deg=float(dec[i]),
        )
        for i in range(n)
    ]


def simulate_task(
    task: FieldTask,
    setup: ObservationSetup,
    *,
    nthreads: int = 1,
    observe_fn: ObserveFn | None = None,
) -> FieldResult:
    """:func:`simulate_field` of one field of a :func:`field_plan` (no I/O)."""
    return simulate_field(
        task.field_id,
        task.seed,
        setup,
        split=task.split,
        ra_deg=task.ra_deg,
        dec_deg=task.dec_deg,
        nthreads=nthreads,
        observe_fn=observe_fn,
    )


def _run_task(
    task: FieldTask, setup: ObservationSetup, out_dir: Path, observe_fn: ObserveFn | None
) -> dict[str, Any]:
    """Simulate and write one field (in a worker process); return its manifest entry."""
    return write_field(simulate_task(task, setup, observe_fn=observe_fn), out_dir)


def _completed_entry(
    task: FieldTask, setup: ObservationSetup, fields_dir: Path
) -> dict[str, Any] | None:
    """The entry of a field already on disk (four images and sidecar), else None."""
    sidecar = fields_dir / f"{task.field_id}.json"
    names = field_files(task.field_id).values()
    if not (sidecar.is_file() and all((fields_dir / name).is_file() for name in names)):
        return None
    try:
        payload = json.loads(sidecar.read_text(encoding="utf-8"))
        entry = payload["field"]
        made_with = (payload["setup"], entry["seed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{sidecar}: unreadable field sidecar ({exc})") from exc
    if made_with != (setup.name, task.seed):
        raise ValueError(
            f"{sidecar}: field made with set-up {made_with[0]!r} and seed {made_with[1]!r}, "
            f"this run needs {setup.name!r} and {task.seed!r}: the folder holds another dataset"
        )
    changed = _setup_changes(payload.get("setup_parameters"), setup)
    if changed:
        raise ValueError(f"{sidecar}: {task.field_id} was simulated {changed}{_NEW_FOLDER}")
    # Never re-split: a held-out test field that moved into train would leak into training.
    if entry.get("split") != task.split:
        raise ValueError(
            f"{sidecar}: {task.field_id} was simulated as a {entry.get('split')!r} field and "
            f"this run's --fields and --test-fraction make it {task.split!r}: resume with "
            "those of the interrupted run"
        )
    return dict(entry)


_NEW_FOLDER = (
    ": completing it now would mix two kinds of field; simulate a new dataset into another "
    "folder (with the same --seed it has the same skies)"
)


def _setup_changes(recorded: Any, setup: ObservationSetup) -> str:
    """How ``setup`` differs from the set-up ``recorded`` in a dataset ("" when it does not).

    Set-ups are named, but a name's parameters can change between releases (the
    ``lotss-dr2-lowres`` noise did), so a resume compares them all.

    >>> from radiounet.simulate.setups import get_setup
    >>> low = get_setup("lotss-dr2-lowres")
    >>> _setup_changes(low.to_dict(), low)
    ''
    >>> _setup_changes({**low.to_dict(), "rms_jy_beam": 9.5e-05}, low)
    'with another lotss-dr2-lowres set-up than this one: rms_jy_beam 9.5e-05 there, 4.5e-05 here'
    """
    if recorded is None:
        return ""
    current = setup.to_dict()
    if not isinstance(recorded, dict):
        return f"with an unreadable set-up record ({recorded!r})"
    diffs = [
        f"{key} {recorded.get(key, 'unset')!r} there, {current.get(key, 'unset')!r} here"
        for key in [*current, *(k for k in recorded if k not in current)]
        if recorded.get(key, "unset") != current.get(key, "unset")
    ]
    if not diffs:
        return ""
    return f"with another {setup.name} set-up than this one: {'; '.join(diffs)}"


def _check_resume(
    out: Path, setup: ObservationSetup, seed: int, test_fraction: float, plan: list[FieldTask]
) -> None:
    """Refuse a resume that would make another dataset than the one already in ``out``.

    The test split follows from the number of fields, the test count and the seed
    (:func:`field_plan`), so another value of any of them would move held-out test
    fields into training and back, and fewer fields would leave some unlisted: a
    resume only completes the dataset its manifest (or, after an interruption, its
    fields) describes. The messages name the ``radiounet simulate`` options.
    """
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        # Interrupted before the manifest: _completed_entry checks each field's seed and
        # split; a field this run would not list must not be left behind unlisted.
        ids = {task.field_id for task in plan}
        sidecars = sorted((out / "fields").glob("*.json"))
        extra = [p.stem for p in sidecars if p.stem not in ids]
        if extra:
            raise ValueError(
                f"{out / 'fields'} holds fields that --fields {len(plan)} leaves out "
                f"({', '.join(extra)}): resume with the --fields of the interrupted run"
            )
        for path in sidecars:
            if '"setup_parameters"' not in path.read_text(encoding="utf-8"):
                raise ValueError(
                    f"{path}: written before sidecars recorded the set-up in full "
                    "(radiounet before 2026-11-22), so whether its field was simulated with "
                    f"this {setup.name} cannot be told{_NEW_FOLDER}"
                )
        return
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        name, made_seed = manifest["setup"]["name"], manifest["seed"]
        splits = [f["split"] for f in manifest["fields"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    n, n_test = len(splits), splits.count("test")
    differs = []
    if setup.name != name:
        differs.append(f"--setup {setup.name} where it has {name}")
    else:
        changed = _setup_changes(manifest["setup"], setup)
        if changed:
            raise ValueError(f"{out} holds a dataset simulated {changed}{_NEW_FOLDER}")
    if seed != made_seed:
        differs.append(f"--seed {seed} where it has {made_seed}")
    if len(plan) != n:
        differs.append(f"--fields {len(plan)} where it has {n}")
    # The manifest keeps the test count, not the fraction: n_test / n reproduces the split.
    if round(test_fraction * n) != n_test:
        differs.append(
            f"--test-fraction {test_fraction:g} ({round(test_fraction * n)} test of {n} fields) "
            f"where it has {n_test} test (--test-fraction {n_test / n:g})"
        )
    if differs:
        raise ValueError(
            f"{out} holds a dataset of {n} fields ({n_test} test, seed {made_seed}, set-up "
            f"{name}) that --resume only completes, and this run has {'; '.join(differs)}. "
            "Test fields stay held out, so more fields make a new dataset: simulate them "
            "into another folder with another --seed (train and evaluate accept several "
            "--data folders)"
        )


def _prepare_folder(out: Path) -> Path:
    """Create ``out/fields`` and check both take files: now, not after hours of simulation."""
    fields_dir = out / "fields"
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a dataset folder")
    try:
        fields_dir.mkdir(parents=True, exist_ok=True)
        for folder in (out, fields_dir):
            probe = folder / f".write-test.tmp{os.getpid()}"  # if left: the stale glob below
            probe.touch()
            probe.unlink()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ValueError(
            f"cannot write the dataset into {out}: {exc.strerror or exc}{where}"
        ) from None
    for stale in fields_dir.glob(".*.tmp*"):  # left by an interrupted run
        stale.unlink()
    return fields_dir


def simulate_dataset(
    out_dir: str | Path,
    *,
    setup: ObservationSetup | str,
    n_fields: int,
    seed: int,
    test_fraction: float = 0.1,
    workers: int | None = os.cpu_count(),
    progress: bool = True,
    observe_fn: ObserveFn | None = None,
    resume: bool = False,
    on_start: Callable[[list[FieldTask], list[FieldTask]], None] | None = None,
) -> Path:
    """Simulate ``n_fields`` fields into ``out_dir`` and write its manifest; return its path.

    Parameters
    ----------
    out_dir : path
        Dataset folder (created). Without ``resume`` it must not hold a dataset.
    setup : ObservationSetup or str, keyword-only
        The observation set-up, or its name in ``SETUPS``.
    n_fields : int, keyword-only
        Number of fields.
    seed : int, keyword-only
        Dataset seed; fields, pointings and split follow from it (see :func:`field_plan`).
    test_fraction : float, keyword-only
        Fraction of fields in the ``"test"`` split (rounded to a whole number of fields).
    workers : int, keyword-only
        Worker processes (default: all cores); each runs one field at a time with
        one gridder thread. 1 runs in this process.
    progress : bool, keyword-only
        Show a progress bar on stderr (when it is a terminal).
    observe_fn : callable, keyword-only
        Replaces :func:`radiounet.simulate.observe.observe`; with ``workers > 1``
        it must be picklable (a module-level function).
    resume : bool, keyword-only
        Keep the fields already complete in ``out_dir`` (four images and sidecar,
        made with the same set-up and seed) and simulate only the others. A
        dataset with a manifest is only completed: ``n_fields``, the test count
        that ``test_fraction`` gives, ``seed`` and ``setup`` must be its own, so
        no field ever changes split.
    on_start : callable, keyword-only
        Called as ``on_start(plan, todo)`` once the folder is checked, before any
        field is simulated: all fields, and those this run simulates.

    Returns
    -------
    pathlib.Path
        ``out_dir / "manifest.json"``.

    Raises
    ------
    FileExistsError
        If ``out_dir`` already holds a dataset and ``resume`` is false.
    ValueError
        If an argument is out of range, ``out_dir`` cannot take the files, or
        ``resume`` finds another dataset (or another split) than this run's.
    """
    setup = _resolve_setup(setup)
    plan = field_plan(n_fields, seed, test_fraction=test_fraction)
    workers = 1 if workers is None else workers
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out_dir)
    fields_dir = out / "fields"
    manifest_path = out / "manifest.json"
    if not resume and (
        manifest_path.exists() or (fields_dir.is_dir() and any(fields_dir.iterdir()))
    ):
        raise FileExistsError(
            f"{out} already holds a dataset; use --resume to complete it, or a new folder"
        )
    if resume and out.is_dir():
        _check_resume(out, setup, int(seed), test_fraction, plan)
    fields_dir = _prepare_folder(out)

    entries: dict[str, dict[str, Any]] = {}
    todo: list[FieldTask] = []
    for task in plan:
        done = _completed_entry(task, setup, fields_dir) if resume else None
        if done is None:
            todo.append(task)
        else:
            entries[task.field_id] = done
    if on_start is not None:
        on_start(plan, todo)

    bar = tqdm(
        total=len(plan),
        initial=len(entries),
        desc=f"simulate {setup.name}",
        unit="field",
        disable=None if progress else True,
        file=sys.stderr,
    )
    try:
        if workers == 1 or len(todo) <= 1:
            for task in todo:
                entries[task.field_id] = _run_task(task, setup, out, observe_fn)
                bar.update(1)
        else:
            _run_parallel(todo, setup, out, observe_fn, min(workers, len(todo)), entries, bar)
    finally:
        bar.close()

    manifest = {
        "format": DATASET_FORMAT,
        "setup": setup.to_dict(),
        "seed": int(seed),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": f"radiounet {__version__}",
        "truth_threshold_jy_arcsec2": TRUTH_THRESHOLD_JY_ARCSEC2,
        "compact_sources_listed": {
            "min_flux_jy": COMPACT_LISTED_MIN_JY,
            "near_clusters_min_flux_jy": COMPACT_LISTED_NEAR_MIN_JY,
            "near_clusters_r500": COMPACT_LISTED_NEAR_R500,
        },
        "fields": [entries[task.field_id] for task in plan],
    }
    _write_json(manifest_path, manifest)
    return manifest_path


def _run_parallel(
    todo: list[FieldTask],
    setup: ObservationSetup,
    out: Path,
    observe_fn: ObserveFn | None,
    workers: int,
    entries: dict[str, dict[str, Any]],
    bar: tqdm,
) -> None:
    # "spawn": fresh interpreters, safe whatever threads (gridder, BLAS) this process runs,
    # and the same on every platform.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: dict[Future[dict[str, Any]], FieldTask] = {
            pool.submit(_run_task, task, setup, out, observe_fn): task for task in todo
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    task = pending.pop(future)
                    try:
                        entries[task.field_id] = future.result()
                    except Exception as exc:
                        raise RuntimeError(
                            f"field {task.field_id} (seed {task.seed}) failed: {exc}"
                        ) from exc
                    bar.update(1)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
