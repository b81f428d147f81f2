"""The ``radiounet`` command line: help, segment, classify, model info, errors and the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from radiounet import __version__
from radiounet.cli.main import main
from radiounet.examples import ExampleField, example_field
from radiounet.workflows import Cluster, classify_map

RADIOUNET = Path(sys.executable).parent / "radiounet"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def field() -> ExampleField:
    return example_field(size=256)


@pytest.fixture
def image_path(field: ExampleField, tmp_path: Path) -> Path:
    path = tmp_path / "field.fits"
    field.to_hdu().writeto(path)
    return path


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``radiounet argv`` in-process: exit status, stdout, stderr."""
    capsys.readouterr()  # drop anything printed before
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, command: str, message: str) -> str:
    """stderr holds one ``radiounet CMD: error: ...`` line with ``message``, no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("radiounet")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"radiounet {command}: error: ")
    assert message in errors[0], errors[0]
    assert err.rstrip("\n").splitlines()[-1] == errors[0]
    return errors[0]


# --- help and version ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        ([], ["segment", "classify", "demo", "model", "--version"]),
        (["segment"], ["-o", "--output", "--profile", "--model", "--png", "--bunit",
                       "--overwrite", "--batch-size", "--ra", "--dec", "--theta500"]),
        (["classify"], ["--ra", "--dec", "--z", "--m500", "--theta500", "--image", "--json",
                        "--threshold", "--radius", "--bunit", "--model"]),
        (["demo"], ["--out", "--seed", "--model"]),
        (["model"], ["info", "init", "calibrate"]),
        (["model", "info"], ["--model", "--model-version"]),
        (["model", "init"], ["--repo", "--base-filters", "--seed", "--version"]),
    ],
    ids=["top", "segment", "classify", "demo", "model", "model-info", "model-init"],
)  # fmt: skip
def test_help(argv: list[str], mentions: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([*argv, "--help"], capsys)
    assert code == 0
    assert err == ""
    assert out.startswith("usage: radiounet")
    for option in mentions:
        assert option in out, option


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"radiounet {__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main([], capsys)
    assert code == 2
    assert out == ""
    assert "the following arguments are required: COMMAND" in err


# --- segment -------------------------------------------------------------------------------


def test_segment_writes_map_and_quicklook(
    image_path: Path, tiny_model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "maps" / "prob.fits"
    png = tmp_path / "ql.png"
    argv = ["segment", str(image_path), "-o", str(out), "--model", str(tiny_model_repo),
            "--png", str(png), "--ra", "260.6149937", "--dec", "32.1354073",
            "--theta500", "3"]  # fmt: skip
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert f"wrote {out} (256x256 px, 4 tiles, model radio_unet v1, profile lotss-dr2-lowres)" in (
        stdout
    )
    assert f"wrote {png}" in stdout
    assert "placeholder (untrained)" in err  # the tiny model says trained=false
    with fits.open(out) as hdul:
        data = hdul[0].data
        header = hdul[0].header
        assert data.shape == (256, 256)
        assert np.isfinite(data).all()
        assert 0.0 <= float(data.min()) <= float(data.max()) <= 1.0
        assert header["RUMODVER"] == 1
        assert header["RUBASEF"] == 2
        assert header["RUSRC"] == "field.fits"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 10_000


def test_segment_bunit_and_profile_options(
    field: ExampleField,
    tiny_model_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    header = field.header.copy()
    del header["BUNIT"]
    path = tmp_path / "nobunit.fits"
    fits.PrimaryHDU(field.data_4d * 1000, header=header).writeto(path)
    out = tmp_path / "p.fits"
    argv = ["segment", str(path), "-o", str(out), "--model", str(tiny_model_repo),
            "--bunit", "mJy/beam", "--profile", "1e-6:1e-1:Jy/beam"]  # fmt: skip
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert "profile 1e-6:1e-1:Jy/beam" in stdout
    header = fits.getheader(out)
    assert header["RUSCALE"] == 1e-3
    assert (header["RUVMIN"], header["RUVMAX"]) == (1e-6, 1e-1)


def _not_fits(path: Path, field: ExampleField) -> None:
    path.write_text("this is not a FITS file\n")


def _all_nan(path: Path, field: ExampleField) -> None:
    fits.PrimaryHDU(np.full_like(field.data_4d, np.nan), header=field.header).writeto(path)


def _no_wcs(path: Path, field: ExampleField) -> None:
    fits.PrimaryHDU(field.image, header=fits.Header([("BUNIT", "JY/BEAM")])).writeto(path)


def _valid(path: Path, field: ExampleField) -> None:
    field.to_hdu().writeto(path)


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (None, [], "input.fits: file not found"),
        (_not_fits, [], "input.fits: not a readable FITS file"),
        (_all_nan, [], "input.fits: every pixel is NaN"),
        (_no_wcs, [], "input.fits: no celestial WCS"),
        (_valid, ["--profile", "nonsense"], "unknown profile 'nonsense'"),
        (_valid, ["--profile", "1e-2:1e-7:Jy/beam"], "0 < vmin < vmax"),
        (_valid, ["--ra", "10"], "give both --ra and --dec"),
        (_valid, ["--ra", "10", "--dec", "20"], "give --theta500, or both --z and --m500"),
        (_valid, ["--batch-size", "0"], "--batch-size must be at least 1"),
        (_valid, ["--model-version", "9"], "model version 9 not in"),
    ],
    ids=["missing", "not-fits", "all-nan", "no-wcs", "profile", "bad-bounds", "ra-only",
         "no-size", "batch-size", "model-version"],
)  # fmt: skip
def test_segment_bad_input_exits_2_with_one_line(
    make: object,
    extra: list[str],
    message: str,
    field: ExampleField,
    tiny_model_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "input.fits"
    if callable(make):
        make(path, field)
    out = tmp_path / "out.fits"
    argv = ["segment", str(path), "-o", str(out), "--model", str(tiny_model_repo), *extra]
    code, stdout, err = run_main(argv, capsys)
    assert code == 2
    assert stdout == ""
    assert_one_line_error(err, "segment", message)
    assert not out.exists()


def test_segment_refuses_to_overwrite(
    image_path: Path, tiny_model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.fits"
    out.write_bytes(b"old map")
    argv = ["segment", str(image_path), "-o", str(out), "--model", str(tiny_model_repo)]
    code, _, err = run_main(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "segment", f"{out} exists (use --overwrite to replace it)")
    assert out.read_bytes() == b"old map"
    code, _, err = run_main([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert fits.getdata(out).shape == (256, 256)


def test_segment_refuses_to_overwrite_png_before_segmenting(
    image_path: Path, tiny_model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "ql.png"
    png.write_bytes(b"old png")
    out = tmp_path / "out.fits"
    argv = ["segment", str(image_path), "-o", str(out), "--model", str(tiny_model_repo),
            "--png", str(png)]  # fmt: skip
    code, _, err = run_main(argv, capsys)
    assert code == 2
    assert_one_line_error(err, "segment", "ql.png exists")
    assert not out.exists()
    assert png.read_bytes() == b"old png"


def test_segment_missing_output_option_is_a_usage_error(
    image_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["segment", str(image_path)], capsys)
    assert code == 2
    assert "the following arguments are required: -o/--output" in err


# --- classify ------------------------------------------------------------------------------

RA0, DEC0 = 150.0, 30.0


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    """A 200x200 probability map, 4.5" pixels, 20" beam: 0.02 background, a disc of 0.9."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA0, DEC0]
    w.wcs.cdelt = [-4.5 / 3600, 4.5 / 3600]
    w.wcs.crpix = [101.0, 101.0]
    header = w.to_header()
    header["BMAJ"] = header["BMIN"] = 20 / 3600
    yy, xx = np.mgrid[:200, :200]
    p = np.full((200, 200), 0.02, np.float32)
    p[(xx - 100) ** 2 + (yy - 100) ** 2 <= 15.5**2] = 0.9
    path = tmp_path / "prob.fits"
    fits.PrimaryHDU(p, header=header).writeto(path)
    return path


CLUSTER_ARGS = ["--ra", str(RA0), "--dec", str(DEC0), "--theta500", "2.5"]


def test_classify_json_equals_classify_map(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["classify", str(map_path), *CLUSTER_ARGS, "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    expected = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=2.5)).to_dict()
    expected["threshold_source"] = "paper (Stuardi et al. 2024)"
    assert report == json.loads(json.dumps(expected))
    assert "note: the map names no model version (RUMODEL/RUMODVER)" in err
    assert {"ratio", "detected", "components", "threshold", "n_pixels"} <= report.keys()
    assert report["detected"] is True
    n_disc = 749  # pixels within 15.5 px of the centre
    radius = 2.2 * 2.5 / 0.075
    yy, xx = np.mgrid[:200, :200]
    n_aperture = int(((xx - 100) ** 2 + (yy - 100) ** 2 <= radius**2).sum())
    assert report["n_pixels"] == n_aperture
    assert report["ratio"] == pytest.approx(
        (0.9 * n_disc + 0.02 * (n_aperture - n_disc)) / n_aperture, rel=1e-6
    )
    (component,) = report["components"]
    assert component["n_pixels"] == n_disc
    assert component["distance_r500"] == pytest.approx(0.0, abs=1e-9)


def test_classify_table_report(map_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["classify", str(map_path), *CLUSTER_ARGS, "--name", "A1"], capsys)
    assert code == 0, err
    result = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=2.5))
    lines = out.splitlines()
    r_line = next(line for line in lines if line.startswith("R "))
    assert f"{result.detection.ratio:.4f}" in r_line
    assert "(threshold 0.015, paper (Stuardi et al. 2024))" in r_line
    assert any(
        line.startswith("decision") and "DIFFUSE EMISSION DETECTED" in line for line in lines
    )
    assert any(line.startswith("cluster") and "A1" in line for line in lines)
    assert any(line.startswith("components   1 ") for line in lines)


def test_classify_threshold_changes_the_decision(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(
        ["classify", str(map_path), *CLUSTER_ARGS, "--threshold", "0.9"], capsys
    )
    assert code == 0
    assert "no diffuse emission" in out
    assert "DETECTED" not in out


def stamp_model(map_path: Path, *, version: int, width: int = 16) -> None:
    """Give the map the provenance cards of a map made by radio_unet/``version``."""
    with fits.open(map_path, mode="update") as hdul:
        hdul[0].header["RUMODEL"] = "radio_unet"
        hdul[0].header["RUMODVER"] = version
        hdul[0].header["RUBASEF"] = width


@pytest.fixture
def calibrated_repo(tmp_path: Path, fake_version: Callable[..., Path]) -> Path:
    """radio_unet/4 without a calibrated threshold, radio_unet/5 with 0.1."""
    repo = tmp_path / "repo"
    fake_version(repo, 4, {"base_filters": 16})
    fake_version(repo, 5, {"base_filters": 16, "decision_threshold": 0.1})
    return repo


def test_classify_uses_the_threshold_calibrated_for_the_maps_version(
    map_path: Path, calibrated_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stamp_model(map_path, version=5)
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--model", str(calibrated_repo)]
    code, out, err = run_main([*argv, "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["threshold"] == 0.1
    assert report["threshold_source"] == "calibrated for radio_unet/5"
    assert report["ratio"] == pytest.approx(0.059, abs=0.001)
    assert report["detected"] is False  # the paper's 0.015 would call it diffuse
    assert err == ""
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    assert "(threshold 0.1, calibrated for radio_unet/5)" in out
    assert "no diffuse emission" in out


def test_classify_uses_the_papers_threshold_for_an_uncalibrated_version(
    map_path: Path, calibrated_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stamp_model(map_path, version=4)
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--model", str(calibrated_repo), "--json"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert (report["threshold"], report["threshold_source"]) == (
        0.015,
        "paper (Stuardi et al. 2024)",
    )
    assert report["detected"] is True
    assert err == ""  # a version found, just not calibrated: nothing to warn about


@pytest.mark.parametrize(
    ("version", "width", "note"),
    [
        (7, 16, "note: model radio_unet/7 not found: model version 7 not in"),
        (5, 32, "has base width 16, the map's model 32: not the version that made the map"),
    ],
    ids=["missing-version", "other-width"],
)
def test_classify_falls_back_to_the_paper_with_a_note(
    map_path: Path,
    calibrated_repo: Path,
    version: int,
    width: int,
    note: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stamp_model(map_path, version=version, width=width)
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--model", str(calibrated_repo), "--json"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    assert json.loads(out)["threshold_source"] == "paper (Stuardi et al. 2024)"
    assert note in err
    assert "using the paper (Stuardi et al. 2024) threshold" in err


def test_classify_explicit_threshold_wins(
    map_path: Path, calibrated_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stamp_model(map_path, version=5)  # calibrated at 0.1
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--threshold", "0.03", "--model",
            str(calibrated_repo), "--json"]  # fmt: skip
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert (report["threshold"], report["threshold_source"]) == (0.03, "given")
    assert report["detected"] is True  # R = 0.059 >= 0.03
    assert err == ""


def test_classify_with_image_gives_fluxes(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = fits.getheader(map_path)
    header["BUNIT"] = "JY/BEAM"
    image = np.full((200, 200), 1e-3, np.float32)
    fits.PrimaryHDU(image, header=header).writeto(tmp_path / "img.fits")
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--image", str(tmp_path / "img.fits"),
            "--json"]  # fmt: skip
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    (component,) = json.loads(out)["components"]
    beam_area = np.pi * 20 * 20 / (4 * np.log(2)) / 4.5**2
    assert component["flux_jy"] == pytest.approx(749 * 1e-3 / beam_area, rel=1e-6)
    assert component["flux_err_jy"] is None  # a noiseless image: no uncertainty to give


def test_classify_gives_flux_uncertainties_and_snr(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = fits.getheader(map_path)
    header["BUNIT"] = "JY/BEAM"
    rng = np.random.default_rng(7)
    image = (2e-4 + rng.normal(0.0, 1e-4, (200, 200))).astype(np.float32)
    fits.PrimaryHDU(image, header=header).writeto(tmp_path / "img.fits")
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--image", str(tmp_path / "img.fits")]
    code, out, err = run_main([*argv, "--json"], capsys)
    assert code == 0, err
    (component,) = json.loads(out)["components"]
    beam_area = np.pi * 20 * 20 / (4 * np.log(2)) / 4.5**2
    # rms 1e-4 Jy/beam over 749 px = 33.4 beams; the 2e-4 offset is the emission.
    assert component["flux_err_jy"] == pytest.approx(1e-4 * np.sqrt(749 / beam_area), rel=0.03)
    assert component["snr"] == pytest.approx(component["flux_jy"] / component["flux_err_jy"])
    assert component["snr"] == pytest.approx(2.0 * np.sqrt(749 / beam_area), rel=0.1)
    code, out, err = run_main(argv, capsys)
    lines = out.splitlines()
    header_line = next(line for line in lines if "flux[mJy]" in line)
    assert "flux[mJy]    S/N  p_peak" in header_line
    row = lines[lines.index(header_line) + 1].split()
    assert float(row[6]) == pytest.approx(component["snr"], abs=0.05)


def test_classify_with_redshift_and_mass(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["classify", str(map_path), "--ra", str(RA0), "--dec", str(DEC0), "--z", "0.224",
            "--m500", "7.77852", "--json"]  # fmt: skip
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["cluster"]["theta500_arcmin"] == pytest.approx(6.0, abs=0.01)
    assert report["cluster"]["r500_kpc"] == pytest.approx(1298, abs=1)


def test_classify_ra_only_is_a_usage_error(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["classify", str(map_path), "--ra", "150"], capsys)
    assert code == 2
    assert out == ""
    assert "the following arguments are required: --dec" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ra", "150", "--dec", "30"], "give --theta500, or both --z and --m500"),
        (["--ra", "150", "--dec", "30", "--z", "0.2"], "give --theta500, or both --z and --m500"),
        (["--ra", "400", "--dec", "30", "--theta500", "2"], "ra must be in [0, 360)"),
        (["--ra", "150", "--dec", "95", "--theta500", "2"], "dec must be in [-90, 90]"),
        (["--ra", "150", "--dec", "31", "--theta500", "1"], "the cluster is outside the image"),
        (["--ra", "150", "--dec", "30", "--theta500", "2", "--radius", "-1"],
         "aperture radius must be positive"),
    ],
    ids=["no-size", "z-only", "ra", "dec", "outside", "radius"],
)  # fmt: skip
def test_classify_bad_cluster_exits_2(
    map_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["classify", str(map_path), *args], capsys)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, "classify", message)


def test_classify_bad_map_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["classify", str(tmp_path / "none.fits"), *CLUSTER_ARGS], capsys)
    assert code == 2
    assert_one_line_error(err, "classify", "none.fits: file not found")


# --- model ---------------------------------------------------------------------------------


def test_model_info(tiny_model_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["model", "info", "--model", str(tiny_model_repo)], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["name"] == "radio_unet"
    assert info["version"] == 1
    assert info["path"] == str(tiny_model_repo / "radio_unet" / "1")
    assert info["signature"] == {
        "name": "serving_default",
        "input_key": "image",
        "output_key": "probability",
        "tile": 192,
    }
    assert info["metadata"]["base_filters"] == 2
    assert info["metadata"]["trained"] is False
    assert info["metadata"]["description"] == "tiny test model"
    assert info["metadata"]["decision_threshold"] is None
    assert info["decision_threshold"] == {
        "value": 0.015,
        "source": "paper (Stuardi et al. 2024)",
        "calibrated_on": None,
    }


def test_model_info_bad_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["model", "info", "--model", str(tmp_path / "nowhere")], capsys)
    assert code == 2
    assert_one_line_error(err, "model", "model folder not found")


def test_model_init_exports_next_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    code, out, err = run_main(["model", "init", "--repo", str(repo), "--base-filters", "2"], capsys)
    assert code == 0, err
    assert f"to {repo / 'radio_unet' / '1'}" in out
    assert (repo / "radio_unet" / "1" / "saved_model.pb").is_file()
    code, out, err = run_main(["model", "info", "--model", str(repo)], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["version"] == 1
    assert info["metadata"]["trained"] is False
    assert info["metadata"]["description"].startswith("placeholder: untrained Radio U-Net")


# --- the console script --------------------------------------------------------------------


def test_console_script_version() -> None:
    done = subprocess.run(
        [str(RADIOUNET), "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"radiounet {__version__}"


def test_console_script_error_is_one_clean_line(tiny_model_repo: Path, tmp_path: Path) -> None:
    """Through the real process: status 2, no traceback and no TensorFlow start-up chatter."""
    missing = tmp_path / "missing.fits"
    done = subprocess.run(
        [str(RADIOUNET), "segment", str(missing), "-o", str(tmp_path / "o.fits"),
         "--model", str(tiny_model_repo)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert_one_line_error(done.stderr, "segment", f"{missing}: file not found")
    # The input is checked before the model loads: the error is all that reaches the terminal.
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "o.fits").exists()


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [str(RADIOUNET), "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stem = "PSZ2_G055.59+31.85"
    paths = {
        "image": out / f"{stem}.fits",
        "map": out / f"{stem}_prob.fits",
        "png": out / f"{stem}.png",
        "json": out / f"{stem}.json",
    }
    for path in paths.values():
        assert path.is_file(), path
        assert str(path) in done.stdout
    assert fits.getdata(paths["map"]).shape == (960, 960)
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    report = json.loads(paths["json"].read_text())
    assert isinstance(report["detected"], bool)
    assert 0.0 <= report["ratio"] <= 1.0
    assert report["cluster"]["name"] == "PSZ2 G055.59+31.85"
    assert "R " in done.stdout
    assert ("DIFFUSE EMISSION DETECTED" if report["detected"] else "no diffuse emission") in (
        done.stdout
    )
