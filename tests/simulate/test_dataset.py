"""The dataset writer: files and manifest per radiounet-sim/1, determinism, workers, resume, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from radiounet.cli import simulate_cmd
from radiounet.cli.main import main
from radiounet.core.units import beam_area_pixels
from radiounet.io.fits_image import read_image
from radiounet.simulate import dataset
from radiounet.simulate.dataset import (
    DATASET_FORMAT,
    DEC_RANGE_DEG,
    field_plan,
    simulate_dataset,
    simulate_field,
    simulate_task,
    write_field,
)
from radiounet.simulate.observe import Observation
from radiounet.simulate.setups import SETUPS, get_setup
from radiounet.simulate.sky import CONTAMINANT_CLASSES, DIFFUSE_CLASSES

# A small variant of the LoTSS-DR2 low-resolution set-up, so each field takes ~0.1 s.
SMALL = dataclasses.replace(get_setup("lotss-dr2-lowres"), name="test-small", image_size=128)
BEAM_ARCSEC = 20.0


def fake_observe(
    sky: np.ndarray,
    setup: Any,
    *,
    dec_deg: float,
    rng: np.random.Generator,
    nthreads: int = 1,
) -> Observation:
    """Stand-in for the interferometer: convolve with a Gaussian beam and add correlated noise."""
    sigma = BEAM_ARCSEC / setup.pixel_arcsec / math.sqrt(8 * math.log(2))
    area = beam_area_pixels(
        BEAM_ARCSEC / 3600, BEAM_ARCSEC / 3600, (setup.pixel_arcsec / 3600) ** 2
    )
    noise = gaussian_filter(rng.standard_normal(sky.shape), sigma)
    noise *= setup.rms_jy_beam / noise.std()
    image = gaussian_filter(np.asarray(sky, dtype=np.float64), sigma) * area + noise
    zeros = np.zeros(sky.shape, dtype=np.float32)
    return Observation(
        image=image.astype(np.float32),
        residual=noise.astype(np.float32),
        model=zeros,
        psf=zeros,
        beam_deg=(BEAM_ARCSEC / 3600, BEAM_ARCSEC / 3600, 0.0),
        rms_jy_beam=float(setup.rms_jy_beam),
        noise_sigma_vis=0.0,
        clean_iterations=0,
        major_cycles=0,
        clean_converged=True,
        n_visibilities=0,
    )


def make(out: Path, **kwargs: Any) -> Path:
    options: dict[str, Any] = {
        "setup": SMALL,
        "n_fields": 4,
        "seed": 11,
        "test_fraction": 0.25,
        "workers": 1,
        "progress": False,
        "observe_fn": fake_observe,
    }
    options.update(kwargs)
    return simulate_dataset(out, **options)


def load(manifest: Path) -> dict[str, Any]:
    return json.loads(manifest.read_text(encoding="utf-8"))


def without_timings(manifest: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in manifest.items() if k != "created"}
    out["fields"] = [{k: v for k, v in f.items() if k != "seconds"} for f in manifest["fields"]]
    return out


def h_bitpix(image: Any) -> int:
    return int(image.header["BITPIX"])


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "fields").glob("*.fits"))}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make(tmp_path_factory.mktemp("dataset") / "ds")


def test_manifest_follows_the_contract(made: Path) -> None:
    m = load(made)
    assert m["format"] == DATASET_FORMAT == "radiounet-sim/1"
    assert m["seed"] == 11 and m["software"].startswith("radiounet ")
    assert m["truth_threshold_jy_arcsec2"] == 2.5e-9
    assert m["created"].endswith("Z")
    for key in ("name", "image_size", "pixel_arcsec", "rms_jy_beam", "freq_hz"):
        assert m["setup"][key] == getattr(SMALL, key)
    assert [f["id"] for f in m["fields"]] == ["f0000", "f0001", "f0002", "f0003"]
    for f in m["fields"]:
        assert set(f) == {
            "id", "seed", "split", "image", "sky", "mask", "labels", "ra_deg", "dec_deg",
            "rms_jy_beam", "beam_arcsec", "seconds", "clusters", "sources",
        }  # fmt: skip
        assert f["split"] in ("train", "test") and isinstance(f["seed"], int)
        for kind in ("image", "sky", "mask", "labels"):
            assert f[kind] == f"fields/{f['id']}_{kind}.fits"
            assert (made.parent / f[kind]).is_file()
        assert f["beam_arcsec"] == pytest.approx([BEAM_ARCSEC, BEAM_ARCSEC, 0.0])
        assert DEC_RANGE_DEG[0] <= f["dec_deg"] <= DEC_RANGE_DEG[1] and 0 <= f["ra_deg"] < 360
        for c in f["clusters"]:
            assert set(c) == {
                "id", "ra_deg", "dec_deg", "x", "y", "z", "m500_1e14", "theta500_arcmin",
                "has_diffuse", "hosts",
            }  # fmt: skip
            assert c["has_diffuse"] == bool(c["hosts"])
            assert set(c["hosts"]) <= set(DIFFUSE_CLASSES)
        for s in f["sources"]:
            assert set(s) == {"id", "class", "diffuse", "cluster", "x", "y", "flux_jy", "label"}
            assert s["flux_jy"] > 0
            if s["diffuse"]:
                assert s["class"] in DIFFUSE_CLASSES and s["label"] > 0
            else:
                assert s["class"] in CONTAMINANT_CLASSES and s["label"] == 0
    # No temporary files left behind; one sidecar per field.
    names = {p.name for p in (made.parent / "fields").iterdir()}
    assert not any(n.startswith(".") for n in names)
    assert {f"f000{i}.json" for i in range(4)} <= names


def test_fits_files_have_wcs_beam_and_provenance_and_read_back(made: Path) -> None:
    m = load(made)
    root = made.parent
    f = m["fields"][0]
    image = read_image(root / f["image"])
    assert image.unit == "Jy/beam" and image.shape == (128, 128)
    assert (
        image.data.dtype.kind == "f" and image.data.dtype.itemsize == 4 and h_bitpix(image) == -32
    )
    assert image.beam is not None
    assert image.beam.bmaj_deg * 3600 == pytest.approx(f["beam_arcsec"][0])
    h = image.header
    assert (h["CTYPE1"], h["CTYPE2"]) == ("RA---SIN", "DEC--SIN")
    assert h["CDELT1"] == pytest.approx(-SMALL.pixel_arcsec / 3600) and h["CDELT2"] > 0
    assert (h["CRPIX1"], h["CRPIX2"]) == (65.0, 65.0)
    assert (h["CRVAL1"], h["CRVAL2"]) == pytest.approx((f["ra_deg"], f["dec_deg"]))
    assert h["RADESYS"] == "FK5" and h["EQUINOX"] == 2000.0
    assert (h["SIMSETUP"], h["SIMSEED"], h["SIMFIELD"]) == ("test-small", f["seed"], "f0000")
    sky = read_image(root / f["sky"])
    assert sky.unit == "Jy/pixel"
    with fits.open(root / f["mask"]) as hdul:
        mask_header, mask = hdul[0].header, hdul[0].data
        assert mask_header["BITPIX"] == 8 and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}
    with fits.open(root / f["labels"]) as hdul:
        labels = hdul[0].data
        assert hdul[0].header["BITPIX"] == 16
    np.testing.assert_array_equal(mask == 1, labels > 0)
    # Cluster sky positions agree with the images' WCS.
    wcs = WCS(h)
    for c in f["clusters"]:
        ra, dec = wcs.pixel_to_world_values(c["x"], c["y"])
        assert (float(ra), float(dec)) == pytest.approx((c["ra_deg"], c["dec_deg"]), abs=1e-9)


def test_labels_match_the_manifest_sources(made: Path) -> None:
    m = load(made)
    n_diffuse_pixels = 0
    for f in m["fields"]:
        labels = fits.getdata(made.parent / f["labels"])
        diffuse = {s["label"]: s for s in f["sources"] if s["diffuse"]}
        assert set(np.unique(labels)) - {0} <= set(diffuse)
        clusters = {c["id"]: c for c in f["clusters"]}
        for label, s in diffuse.items():
            assert s["cluster"] in clusters and s["class"] in clusters[s["cluster"]]["hosts"]
            n_diffuse_pixels += int(np.count_nonzero(labels == label))
    assert n_diffuse_pixels > 0  # this seed's fields do hold diffuse emission


def test_a_field_is_reproduced_from_its_manifest_seed(made: Path) -> None:
    f = load(made)["fields"][2]
    result = simulate_field(
        f["id"],
        f["seed"],
        SMALL,
        split=f["split"],
        ra_deg=f["ra_deg"],
        dec_deg=f["dec_deg"],
        observe_fn=fake_observe,
    )
    np.testing.assert_array_equal(result.observation.image, fits.getdata(made.parent / f["image"]))
    np.testing.assert_array_equal(result.sky.mask, fits.getdata(made.parent / f["mask"]) == 1)
    entry = result.entry()
    assert {k: v for k, v in entry.items() if k != "seconds"} == {
        k: v for k, v in f.items() if k != "seconds"
    }


def test_one_and_two_workers_write_identical_files(
    made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Worker processes are spawned and unpickle fake_observe by its module name
    # (tests.simulate.test_dataset): give them the repository root on their sys.path, which
    # spawn copies from this process, however pytest was started.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    two = make(tmp_path / "two", workers=2)
    assert file_bytes(two.parent) == file_bytes(made.parent)
    assert without_timings(load(two)) == without_timings(load(made))


def test_resume_recomputes_only_the_missing_field(made: Path, tmp_path: Path) -> None:
    first = make(tmp_path / "ds")
    before = file_bytes(first.parent)
    for path in (first.parent / "fields").glob("f0002*"):
        path.unlink()
    first.unlink()
    calls: list[float] = []

    def counting_observe(sky: np.ndarray, setup: Any, **kwargs: Any) -> Observation:
        calls.append(kwargs["dec_deg"])
        return fake_observe(sky, setup, **kwargs)

    second = make(tmp_path / "ds", resume=True, observe_fn=counting_observe)
    assert calls == [load(made)["fields"][2]["dec_deg"]]
    assert file_bytes(second.parent) == before
    assert without_timings(load(second)) == without_timings(load(made))


def test_an_existing_dataset_needs_resume_and_the_same_seed(made: Path) -> None:
    out = made.parent
    with pytest.raises(FileExistsError) as refused:
        make(out)
    assert str(refused.value) == (
        f"{out} already holds a dataset; use --resume to complete it, or a new folder"
    )
    with pytest.raises(ValueError, match="--seed 12 where it has 11"):
        make(out, seed=12, resume=True)


HELD_OUT = (
    "Test fields stay held out, so more fields make a new dataset: simulate them into another "
    "folder with another --seed (train and evaluate accept several --data folders)"
)


FEWER = "--test-fraction 0.1 (0 test of 4 fields) where it has 1 test (--test-fraction 0.25)"


@pytest.mark.parametrize(
    ("kwargs", "differs"),
    [
        ({"n_fields": 6}, "--fields 6 where it has 4"),
        # Fewer fields would have listed only f0000 and left f0001-f0003 unlisted on disk.
        ({"n_fields": 1}, "--fields 1 where it has 4"),
        (
            {"test_fraction": 0.5},
            "--test-fraction 0.5 (2 test of 4 fields) where it has 1 test (--test-fraction 0.25)",
        ),
        ({"test_fraction": 0.1}, FEWER),
        ({"seed": 12, "n_fields": 5}, "--seed 12 where it has 11; --fields 5 where it has 4"),
        (
            {"setup": dataclasses.replace(SMALL, name="other")},
            "--setup other where it has test-small",
        ),
    ],
    ids=["more-fields", "fewer-fields", "more-test", "no-test", "seed", "setup"],
)
def test_resume_refuses_another_split_and_leaves_the_dataset_as_it_was(
    tmp_path: Path, kwargs: dict[str, Any], differs: str
) -> None:
    out = tmp_path / "ds"
    manifest = make(out)
    before = {p.name: p.read_bytes() for p in [manifest, *(out / "fields").iterdir()]}
    with pytest.raises(ValueError) as refused:
        make(out, resume=True, **kwargs)
    assert str(refused.value) == (
        f"{out} holds a dataset of 4 fields (1 test, seed 11, set-up test-small) that --resume "
        f"only completes, and this run has {differs}. {HELD_OUT}"
    )
    assert {p.name: p.read_bytes() for p in [manifest, *(out / "fields").iterdir()]} == before
    # The same options complete it, with the same held-out field.
    manifest = make(out, resume=True, test_fraction=0.3)  # round(0.3 x 4) = 1: the same split
    assert [f["id"] for f in load(manifest)["fields"] if f["split"] == "test"] == ["f0002"]


def test_a_fresh_dataset_keeps_the_split_it_always_had() -> None:
    # The test fields the code gave before resume was made strict (commit a2e6454): datasets
    # already written, such as out/sim/lowres (240 fields, seed 1), keep their held-out fields.
    expected = {
        (4, 11, 0.25): ["f0002"],
        (6, 11, 0.25): ["f0003", "f0005"],
        (10, 0, 0.1): ["f0007"],
        (24, 0, 0.1): ["f0003", "f0022"],
        (7, 3, 0.3): ["f0001", "f0006"],
        (40, 5, 0.1): ["f0008", "f0015", "f0018", "f0031"],
        (1, 0, 0.1): [],
        (240, 1, 0.1): [
            "f0014", "f0025", "f0036", "f0045", "f0048", "f0070", "f0081", "f0088", "f0090",
            "f0102", "f0103", "f0105", "f0118", "f0122", "f0137", "f0150", "f0151", "f0160",
            "f0169", "f0205", "f0207", "f0209", "f0230", "f0236",
        ],
    }  # fmt: skip
    for (n, seed, fraction), ids in expected.items():
        plan = field_plan(n, seed, test_fraction=fraction)
        assert [t.field_id for t in plan if t.split == "test"] == ids, (n, seed, fraction)


def interrupt_after_two_fields(out: Path) -> None:
    """Simulate into ``out`` until the third field's observation fails (a lost node)."""
    done: list[int] = []

    def failing_observe(sky: np.ndarray, setup: Any, **kwargs: Any) -> Observation:
        if len(done) == 2:
            raise RuntimeError("node lost")
        done.append(1)
        return fake_observe(sky, setup, **kwargs)

    with pytest.raises(RuntimeError, match="node lost"):
        make(out, observe_fn=failing_observe)


def test_an_interrupted_run_resumes_only_with_its_own_split(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    interrupt_after_two_fields(out)  # f0000 and f0001 complete, both train
    # --test-fraction 0.5 would make f0001 a test field.
    with pytest.raises(ValueError) as refused:
        make(out, resume=True, test_fraction=0.5)
    assert str(refused.value) == (
        f"{out / 'fields' / 'f0001.json'}: f0001 was simulated as a 'train' field and this "
        "run's --fields and --test-fraction make it 'test': resume with those of the "
        "interrupted run"
    )
    with pytest.raises(ValueError) as refused:
        make(out, resume=True, n_fields=1)
    assert str(refused.value) == (
        f"{out / 'fields'} holds fields that --fields 1 leaves out (f0001): resume with the "
        "--fields of the interrupted run"
    )
    assert json.loads((out / "fields" / "f0001.json").read_text())["field"]["split"] == "train"
    assert load(make(out, resume=True))["fields"][2]["split"] == "test"


def test_an_unusable_out_folder_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_observe(*args: Any, **kwargs: Any) -> Observation:
        raise AssertionError("simulated a field into an unusable folder")

    plain = tmp_path / "plainfile"
    plain.write_text("x\n")
    with pytest.raises(ValueError) as refused:
        make(plain, observe_fn=no_observe)
    assert str(refused.value) == f"{plain} is a file, not a dataset folder"
    with pytest.raises(ValueError) as refused:
        make(plain / "sub", observe_fn=no_observe)
    assert str(refused.value) == (
        f"cannot write the dataset into {plain / 'sub'}: Not a directory "
        f"({plain / 'sub' / 'fields'})"
    )

    # A read-only folder (chmod does not stop root, who runs these tests in CI: fake it).
    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "touch", read_only)
    ro = tmp_path / "ro"
    with pytest.raises(ValueError) as refused:
        make(ro, observe_fn=no_observe)
    assert str(refused.value) == (
        f"cannot write the dataset into {ro}: Permission denied "
        f"({ro / f'.write-test.tmp{os.getpid()}'})"
    )


def test_an_interrupted_run_leaves_no_manifest_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    interrupt_after_two_fields(out)
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in (out / "fields").glob("*.json")) == ["f0000.json", "f0001.json"]
    manifest = make(out, resume=True)
    assert len(load(manifest)["fields"]) == 4


NEW_FOLDER = (
    ": completing it now would mix two kinds of field; simulate a new dataset into another "
    "folder (with the same --seed it has the same skies)"
)
QUIETER = dataclasses.replace(SMALL, rms_jy_beam=SMALL.rms_jy_beam / 2, phase_error_deg=1.0)
CHANGED = (
    f"with another test-small set-up than this one: rms_jy_beam {SMALL.rms_jy_beam!r} there, "
    f"{QUIETER.rms_jy_beam!r} here; phase_error_deg {SMALL.phase_error_deg!r} there, 1.0 here"
)


def test_resume_refuses_a_set_up_whose_parameters_changed(tmp_path: Path) -> None:
    # A set-up keeps its name when its parameters change (lotss-dr2-lowres's noise did):
    # completing an older dataset would mix fields of two noise models.
    out = tmp_path / "ds"
    manifest = make(out)
    (out / "fields" / "f0003.json").unlink()
    with pytest.raises(ValueError) as refused:
        make(out, resume=True, setup=QUIETER)
    assert str(refused.value) == f"{out} holds a dataset simulated {CHANGED}{NEW_FOLDER}"
    # Interrupted before its manifest: each field's sidecar records the set-up.
    manifest.unlink()
    with pytest.raises(ValueError) as refused:
        make(out, resume=True, setup=QUIETER)
    assert str(refused.value) == (
        f"{out / 'fields' / 'f0000.json'}: f0000 was simulated {CHANGED}{NEW_FOLDER}"
    )
    # Sidecars written before they recorded the set-up in full cannot be checked.
    sidecar = out / "fields" / "f0001.json"
    payload = json.loads(sidecar.read_text())
    del payload["setup_parameters"]
    sidecar.write_text(json.dumps(payload))
    with pytest.raises(ValueError) as refused:
        make(out, resume=True)
    assert str(refused.value) == (
        f"{sidecar}: written before sidecars recorded the set-up in full (radiounet before "
        f"2026-11-22), so whether its field was simulated with this test-small cannot be "
        f"told{NEW_FOLDER}"
    )
    assert not (out / "manifest.json").exists()


def test_split_fraction_is_respected_and_deterministic() -> None:
    plan = field_plan(40, 5, test_fraction=0.1)
    assert sum(t.split == "test" for t in plan) == 4
    assert plan == field_plan(40, 5, test_fraction=0.1)
    assert [t.split for t in field_plan(40, 6)] != [t.split for t in plan]
    assert sum(t.split == "test" for t in field_plan(40, 5, test_fraction=0.0)) == 0
    # Seeds and pointings of a field do not depend on the size of the dataset.
    small = field_plan(10, 5)
    assert [(t.seed, t.ra_deg, t.dec_deg) for t in small] == [
        (t.seed, t.ra_deg, t.dec_deg) for t in plan[:10]
    ]
    assert len({t.seed for t in plan}) == 40
    dec = np.array([t.dec_deg for t in field_plan(400, 1)])
    assert dec.min() >= DEC_RANGE_DEG[0] and dec.max() <= DEC_RANGE_DEG[1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_fields": 0}, ValueError, "n_fields"),
        ({"seed": -1}, ValueError, "seed"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"workers": 0}, ValueError, "workers"),
        ({"setup": "no-such-setup"}, ValueError, "no-such-setup"),
    ],
)
def test_bad_dataset_arguments_are_rejected(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make(tmp_path / "ds", **kwargs)


def test_write_field_returns_the_entry_it_stores(tmp_path: Path) -> None:
    result = simulate_field(
        "f0000", 3, SMALL, split="train", ra_deg=10.0, dec_deg=40.0, observe_fn=fake_observe
    )
    entry = write_field(result, tmp_path)
    sidecar = json.loads((tmp_path / "fields" / "f0000.json").read_text())
    assert sidecar == {
        "format": DATASET_FORMAT,
        "setup": "test-small",
        "setup_parameters": SMALL.to_dict(),
        "field": entry,
    }


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radiounet")
    sub = parser.add_subparsers(dest="command", required=True)
    simulate_cmd.register(sub)
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_cli_writes_a_dataset_and_reports_seconds_per_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dataset, "observe", fake_observe)  # the real one takes ~12 s a field
    out = tmp_path / "cli"
    argv = ["simulate", "--setup", "lotss-dr2-lowres", "--fields", "2", "--out", str(out)]
    assert run_cli([*argv, "--seed", "4", "--workers", "1", "--test-fraction", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "2 fields of 960x960 px, 1 test" in printed and "s per field" in printed
    m = load(out / "manifest.json")
    assert m["setup"]["name"] == "lotss-dr2-lowres" and m["seed"] == 4
    assert fits.getdata(out / m["fields"][0]["image"]).shape == (960, 960)
    with pytest.raises(FileExistsError):
        run_cli([*argv, "--seed", "4", "--workers", "1"])
    resume = [*argv, "--seed", "4", "--workers", "1", "--test-fraction", "0.5", "--resume"]
    assert run_cli(resume) == 0


def test_cli_errors_are_one_line_with_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dataset, "observe", fake_observe)
    out = tmp_path / "cli"
    argv = ["simulate", "--setup", "lotss-dr2-lowres", "--out", str(out), "--workers", "1"]
    assert main([*argv, "--fields", "2", "--seed", "4", "--test-fraction", "0.5"]) == 0
    capsys.readouterr()
    assert main([*argv, "--fields", "3", "--seed", "4", "--test-fraction", "0.5", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"radiounet simulate: error: {out} holds a dataset of 2 fields (1 test, seed 4, set-up "
        "lotss-dr2-lowres) that --resume only completes, and this run has --fields 3 where it "
        f"has 2. {HELD_OUT}\n"
    )
    plain = tmp_path / "plainfile"
    plain.write_text("x\n")
    assert (
        main(["simulate", "--setup", "lotss-dr2-lowres", "--fields", "1", "--out", str(plain)]) == 2
    )
    assert capsys.readouterr().err == (
        f"radiounet simulate: error: {plain} is a file, not a dataset folder\n"
    )


def test_cli_warns_of_no_test_field_and_says_when_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dataset, "observe", fake_observe)
    out = tmp_path / "one"
    argv = ["simulate", "--setup", "lotss-dr2-lowres", "--fields", "1", "--out", str(out)]
    assert run_cli([*argv, "--workers", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.err.splitlines()[0] == (
        f"warning: {out} gets no test field (--test-fraction 0.1 of 1 field rounds to 0); "
        "evaluate needs held-out fields from another dataset"
    )
    assert printed.out.splitlines()[1].endswith(" s wall with 1 worker(s) for 1 field(s)")
    assert run_cli([*argv, "--resume"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "nothing left to simulate: all fields were already complete"
    )


def test_cli_setup_choices_are_the_known_setups() -> None:
    assert sorted(simulate_cmd._SETUP_NAMES) == sorted(SETUPS)


def test_a_field_without_clusters_has_an_empty_mask() -> None:
    for task in field_plan(40, 0):
        result = simulate_task(task, SMALL, observe_fn=fake_observe)
        if not result.sky.clusters:
            break
    else:
        pytest.fail("no cluster-free field among 40")
    entry = result.entry()
    assert entry["clusters"] == [] and not result.sky.mask.any()
    assert all(not s["diffuse"] for s in entry["sources"])


# lofarantpos (read by the uv coverage) leaves its station tables' files open; not ours to fix.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*lofarantpos:pytest.PytestUnraisableExceptionWarning"
)
def test_the_real_observation_runs_end_to_end(tmp_path: Path) -> None:
    # A tiny set-up (64 px of 30", core stations, 1 h, one channel) so the real predict, noise,
    # imaging and CLEAN take a fraction of a second.
    tiny = dataclasses.replace(
        get_setup("lotss-dr2-lowres"),
        name="tiny",
        image_size=64,
        pixel_arcsec=30.0,
        n_channels=1,
        duration_h=1.0,
        integration_s=600.0,
        stations="core",
        max_baseline_m=None,
        taper_arcsec=None,
        max_iterations=200,
        major_cycles=2,
    )
    manifest = make(tmp_path / "real", setup=tiny, n_fields=2, observe_fn=None)
    m = load(manifest)
    for f in m["fields"]:
        image = read_image(tmp_path / "real" / f["image"])
        assert image.beam is not None and image.beam.bmaj_deg * 3600 > 60  # core-only: arcmin
        assert f["beam_arcsec"][0] == pytest.approx(image.beam.bmaj_deg * 3600)
        assert np.isfinite(image.data).all() and f["rms_jy_beam"] > 0
        # The image is the sky seen through the beam, in the same orientation.
        sky = fits.getdata(tmp_path / "real" / f["sky"]).astype(np.float64)
        smooth = gaussian_filter(sky, image.beam.bmaj_deg * 3600 / 30.0 / 2.355)
        data = np.asarray(image.data, dtype=np.float64)
        same = np.corrcoef(data.ravel(), smooth.ravel())[0, 1]
        flipped = np.corrcoef(data.ravel(), smooth[:, ::-1].ravel())[0, 1]
        assert same > 0.5 and same > flipped + 0.3


# Full-size fields (960 px, the whole track and CLEAN): ~7 s each.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*lofarantpos:pytest.PytestUnraisableExceptionWarning"
)
def test_lowres_fields_measure_the_surveys_rms() -> None:
    # LoTSS-DR2's 20" maps have a median measured rms of 95 uJy/beam (Shimwell et al. 2022):
    # thermal noise, confusion from the faint sources and calibration artefacts together. The
    # set-up's thermal part is less, so that the whole comes out at the survey's figure.
    setup = get_setup("lotss-dr2-lowres")
    rms = []
    for task in field_plan(3, 7, test_fraction=0.0):
        result = simulate_task(task, setup, nthreads=2)
        rms.append(result.observation.rms_jy_beam * 1e6)
    assert setup.rms_jy_beam * 1e6 < min(rms)
    assert 85 < float(np.median(rms)) < 110, rms
    assert max(rms) < 125, rms
