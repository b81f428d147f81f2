"""The ``radiounet`` command line: help, segment, classify, model info, errors and the demo."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import FK4, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from radiounet import __version__
from radiounet.cli._common import image_warnings_as_lines
from radiounet.cli.main import build_parser, main
from radiounet.examples import ExampleField, example_field
from radiounet.io.fits_image import ImageWarning
from radiounet.workflows import Cluster, aperture_on_map, classify_map

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
                       "--beam", "--overwrite", "--batch-size", "--ra", "--dec", "--theta500"]),
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


@pytest.mark.parametrize(
    ("argv", "dest"),
    [
        (["submit", "--ra", "1", "--dec", "30"], "stack"),
        (["status", "--all"], "stack"),
        (["results"], "stack"),
        (["model", "push", "--repo", "model_repo"], "stack"),
        (["model", "pull", "--dest", "models"], "stack"),
        (["stack", "status"], "data_dir"),
        (["stack", "demo"], "data_dir"),
        (["dashboards", "show"], "data_dir"),
    ],
)
def test_the_stack_folder_has_both_names_everywhere(argv: list[str], dest: str) -> None:
    # `stack`/`dashboards` said --data-dir and the others --stack for the same folder.
    parser = build_parser()
    for flag in ("--stack", "--data-dir"):
        args = parser.parse_args([*argv, flag, "somewhere"])
        assert getattr(args, dest) == Path("somewhere"), flag


@pytest.mark.parametrize("action", ["push", "pull"])
def test_model_push_and_pull_offer_only_object_store_settings(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(["model", action, "--help"], capsys)
    assert code == 0
    for flag in ("--s3-endpoint", "--s3-access-key", "--s3-secret-key", "--bucket", "--stack"):
        assert flag in out, flag
    for flag in ("--kafka-bootstrap", "--model-server", "--max-poll-records", "--metrics-port"):
        assert flag not in out, flag


@pytest.mark.parametrize("command", ["segment", "classify"])
def test_ra_dec_help_says_icrs(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main([command, "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())  # argparse wraps the help at the terminal's width
    assert "--ra RA cluster RA, ICRS (J2000) [deg]" in text
    assert "--dec DEC cluster Dec, ICRS (J2000) [deg]" in text


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


def test_segment_png_says_when_the_circle_is_off_the_image(
    image_path: Path, tiny_model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prob.fits"
    png = tmp_path / "ql.png"
    # 0.5 deg (400 px) north of the 256 px image, with a 2.2 R500 radius of 88 px.
    cluster = Cluster(260.6149937, 32.6354073, theta500_arcmin=3)
    argv = ["segment", str(image_path), "-o", str(out), "--model", str(tiny_model_repo),
            "--png", str(png), "--ra", str(cluster.ra_deg), "--dec", str(cluster.dec_deg),
            "--theta500", "3"]  # fmt: skip
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert f"wrote {png}" in stdout
    (x, y), radius = aperture_on_map(WCS(fits.getheader(out)), cluster)
    assert (round(x), round(y), round(radius)) == (128, 528, 88)
    assert [line for line in err.splitlines() if line.startswith("warning")] == [
        f"warning: {png}: the 2.2 R500 circle (centre at pixel (x, y) = ({x:.1f}, {y:.1f}), "
        f"radius {radius:.1f} px) lies entirely outside the 256 x 256 px image, so it is not "
        "drawn (--ra/--dec are ICRS degrees)"
    ]


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


def _without_beam(field: ExampleField, path: Path, *extra: fits.hdu.base.ExtensionHDU) -> Path:
    header = field.header.copy()
    for key in ("BMAJ", "BMIN", "BPA"):
        del header[key]
    fits.HDUList([fits.PrimaryHDU(field.data_4d, header=header), *extra]).writeto(path)
    return path


def test_segment_without_beam_warns_in_one_line_and_map_has_none(
    field: ExampleField, tiny_model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _without_beam(field, tmp_path / "nobeam.fits")
    out = tmp_path / "p.fits"
    code, _, err = run_main(
        ["segment", str(path), "-o", str(out), "--model", str(tiny_model_repo)], capsys
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {path}: no restoring beam (no BMAJ/BMIN, AIPS CLEAN HISTORY or CASA BEAMS "
        "table), so the map has none and classify's component catalogue (areas, fluxes) needs "
        "one: give it with --beam BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]]"
    ]
    assert "BMAJ" not in fits.getheader(out)


@pytest.mark.parametrize("with_header_beam", [False, True], ids=["no-beam", "overrides-header"])
def test_segment_beam_option_is_used_and_written_to_the_map(
    field: ExampleField,
    tiny_model_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    with_header_beam: bool,
) -> None:
    path = tmp_path / "in.fits"
    if with_header_beam:
        field.to_hdu().writeto(path)
    else:
        _without_beam(field, path)
    out = tmp_path / "p.fits"
    argv = ["segment", str(path), "-o", str(out), "--model", str(tiny_model_repo),
            "--beam", "36,18,45", "--profile", "synthetic"]  # fmt: skip
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert "warning" not in err
    header = fits.getheader(out)
    assert (header["BMAJ"], header["BMIN"], header["BPA"]) == (0.01, 0.005, 45.0)
    # The Jy/beam -> Jy/pixel conversion of the synthetic profile used that beam too.
    beam_pix = math.pi * 36 * 18 / (4 * math.log(2)) / header["CDELT2"] ** 2 / 3600**2
    assert header["RUSCALE"] == pytest.approx(1 / beam_pix, rel=1e-9)


def _three_beams_table() -> fits.BinTableHDU:
    """A CASA BEAMS table of three different beams (a cube's, kept with one plane)."""
    return fits.BinTableHDU.from_columns(
        [fits.Column(name=k, format="1E", unit=unit, array=values)
         for k, unit, values in (("BMAJ", "arcsec", [18.0, 20.0, 40.0]),
                                 ("BMIN", "arcsec", [18.0, 20.0, 30.0]),
                                 ("BPA", "deg", [0.0, 0.0, 0.0]))],
        name="BEAMS",
    )  # fmt: skip


def test_segment_beams_table_median_warning_is_one_line(
    field: ExampleField, tiny_model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _three_beams_table()
    path = _without_beam(field, tmp_path / "casa.fits", table)
    out = tmp_path / "p.fits"
    code, _, err = run_main(
        ["segment", str(path), "-o", str(out), "--model", str(tiny_model_repo)], capsys
    )
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: {path}: the BEAMS table has 3 different beams for a single-plane image; "
        'using their median, BMAJ 20.00" BMIN 20.00" BPA 0.0 deg'
    ]
    assert fits.getheader(out)["BMAJ"] == pytest.approx(20 / 3600, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "message"),
    [("20x20", "expected BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]], got '20x20'"),
     ("10,20", "need 0 < BMIN <= BMAJ (arcsec), got '10,20'"),
     ("0", "need 0 < BMIN <= BMAJ (arcsec), got '0'")],
)  # fmt: skip
def test_segment_bad_beam_is_a_usage_error(
    image_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    code, _, err = run_main(
        ["segment", str(image_path), "-o", str(tmp_path / "p.fits"), "--beam", value], capsys
    )
    assert code == 2
    assert f"argument --beam: {message}" in err


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


@pytest.mark.parametrize("image_beam", [True, False], ids=["image-beam", "map-beam"])
def test_classify_with_image_gives_fluxes(
    image_beam: bool, map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = fits.getheader(map_path)  # the map has a 20" beam (as from segment --beam)
    if not image_beam:  # an image without a beam takes the map's
        del header["BMAJ"], header["BMIN"]
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


def test_classify_without_any_beam_gives_r_and_skips_the_catalogue(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = fits.getheader(map_path)
    del header["BMAJ"], header["BMIN"]
    path = tmp_path / "nobeam.fits"
    fits.PrimaryHDU(fits.getdata(map_path), header).writeto(path)
    warning = (
        f"warning: no component catalogue: {path}: no restoring beam (BMAJ/BMIN) in the map or "
        "image header; segment the image again with --beam BMAJ_ARCSEC[,BMIN_ARCSEC[,BPA_DEG]] "
        "to write one into the map, or give an --image whose header has one"
    )
    reference = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=2.5)).detection
    code, out, err = run_main(["classify", str(path), *CLUSTER_ARGS, "--json"], capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning")] == [warning]
    report = json.loads(out)
    assert (report["ratio"], report["detected"]) == (reference.ratio, True)
    assert report["components"] == []
    assert report["components_skipped"] == (
        f"{path}: no restoring beam (BMAJ/BMIN) in the map or image header"
    )
    code, out, err = run_main(["classify", str(path), *CLUSTER_ARGS], capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning")] == [warning]
    lines = out.splitlines()
    r_line = f"R            {reference.ratio:.4f}  (threshold 0.015, paper (Stuardi et al. 2024))"
    assert r_line in lines
    assert lines[-2:] == [
        "decision     DIFFUSE EMISSION DETECTED",
        "components   - (not catalogued: no restoring beam)",
    ]


def test_classify_image_warnings_are_one_line_as_in_segment(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = fits.getheader(map_path)
    del header["BMAJ"], header["BMIN"]
    header["BUNIT"] = "JY/BEAM"
    table = _three_beams_table()
    image = tmp_path / "casa.fits"
    hdu = fits.PrimaryHDU(np.full((200, 200), 1e-3, np.float32), header)
    fits.HDUList([hdu, table]).writeto(image)
    argv = ["classify", str(map_path), *CLUSTER_ARGS, "--image", str(image), "--threshold", "0.1"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    assert err.splitlines() == [
        f"warning: {image}: the BEAMS table has 3 different beams for a single-plane image; "
        'using their median, BMAJ 20.00" BMIN 20.00" BPA 0.0 deg'
    ]
    assert "components   1 " in out


def test_image_warnings_as_lines_leaves_other_warnings_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.warns(DeprecationWarning, match="not ours"), image_warnings_as_lines():
        warnings.warn("x.fits: a guess", ImageWarning, stacklevel=1)
        warnings.warn("not ours", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().err == "warning: x.fits: a guess\n"


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


def icrs_args(map_path: Path, x: float, y: float) -> list[str]:
    """--ra/--dec of the pixel (x, y) of the map (ICRS: its header names no frame)."""
    ra, dec = WCS(fits.getheader(map_path)).pixel_to_world_values(x, y)
    return ["--ra", f"{ra:.10f}", "--dec", f"{dec:.10f}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--theta500", "0.01"], "the 2.2 R500 aperture (0.29 px radius) holds 1 px, less than "
         "one beam (22.4 px): theta500 = 0.01 arcmin is too small for this map"),
        (["--z", "50", "--m500", "5"], "z must be in (0, 10], got 50.0"),
    ],
    ids=["aperture-below-a-beam", "z"],
)  # fmt: skip
def test_classify_refuses_a_cluster_it_cannot_measure(
    map_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["classify", str(map_path), "--ra", str(RA0), "--dec", str(DEC0), *args]
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert out == ""
    assert (
        assert_one_line_error(err, "classify", message) == f"radiounet classify: error: {message}"
    )


def test_classify_refuses_a_centre_off_the_map(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 30 px off the left edge: the 73 px aperture still overlaps the map.
    argv = ["classify", str(map_path), *icrs_args(map_path, -30.0, 100.0), "--theta500", "2.5"]
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert out == ""
    assert_one_line_error(
        err,
        "classify",
        f"{map_path}: the cluster is outside the image: its centre is at pixel "
        "(x, y) = (-30.0, 100.0) of a 200 x 200 px image",
    )


def test_classify_warns_when_most_of_the_aperture_is_off_the_map(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # On the corner pixel: a quarter of the aperture lies in the map.
    argv = ["classify", str(map_path), *icrs_args(map_path, -0.4, -0.4), "--theta500", "2.5"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    radius = 2.2 * 2.5 / 0.075
    yy, xx = np.mgrid[-100:300, -100:300]
    circle = (xx + 0.4) ** 2 + (yy + 0.4) ** 2 <= radius**2
    share = (circle & (xx >= 0) & (yy >= 0)).sum() / circle.sum()
    assert 0.25 < share < 0.26
    assert [line for line in err.splitlines() if line.startswith("warning")] == [
        "warning: only 25% of the 2.2 R500 aperture lies on valid map pixels (inside the "
        "image, not blanked); R rests on that part"
    ]
    assert any(line.startswith("decision ") for line in out.splitlines())  # still decided


def test_classify_of_an_image_says_only_that_it_is_not_a_map(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.full((200, 200), 3.0, np.float32), fits.getheader(map_path)).writeto(image)
    code, out, err = run_main(["classify", str(image), *CLUSTER_ARGS], capsys)
    assert code == 2
    assert out == ""
    # No note about the threshold of the map's model first: it is no map at all.
    assert err.splitlines() == [
        assert_one_line_error(err, "classify", f"{image}: not a probability map")
    ]


def test_classify_refuses_an_image_on_another_grid(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = fits.getheader(map_path)
    header["CDELT1"] *= 2  # same shape and centre, twice the pixel
    header["CDELT2"] *= 2
    header["BUNIT"] = "JY/BEAM"
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.ones((200, 200), np.float32), header).writeto(image)
    code, out, err = run_main(
        ["classify", str(map_path), *CLUSTER_ARGS, "--image", str(image)], capsys
    )
    assert code == 2
    assert out == ""
    assert_one_line_error(
        err,
        "classify",
        f"{image}: WCS differs from the probability map {map_path}'s: its pixel (x, y) = (0, 0) "
        "is 141 px away on the sky",
    )


def test_classify_a_b1950_map_with_icrs_positions(
    map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same map on a B1950 grid, centred on the B1950 position of ICRS (RA0, DEC0).
    b1950 = SkyCoord(RA0, DEC0, unit="deg", frame="icrs").transform_to(FK4(equinox="B1950"))
    header = fits.getheader(map_path)
    header["CRVAL1"], header["CRVAL2"] = b1950.ra.deg, b1950.dec.deg
    header["RADESYS"], header["EQUINOX"] = "FK4", 1950.0
    path = tmp_path / "b1950.fits"
    fits.PrimaryHDU(fits.getdata(map_path), header).writeto(path)
    code, out, err = run_main(["classify", str(path), *CLUSTER_ARGS, "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["centre_xy"] == pytest.approx([100.0, 100.0], abs=1e-6)
    reference = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=2.5))
    assert report["ratio"] == reference.detection.ratio
    code, out, err = run_main(["classify", str(path), *CLUSTER_ARGS], capsys)
    assert code == 0, err
    lines = out.splitlines()
    header_line = next(line for line in lines if line.startswith("  #"))
    assert header_line.startswith("  #   RA(ICRS) Dec(ICRS)  area[arcmin2]")
    assert lines[lines.index(header_line) + 1].startswith("  1  150.00000 +30.00000 ")


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


def test_model_init_needs_repo_and_writes_models_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No default repository (it was the shipped one); the new repository gets its models.config."""
    code, _, err = run_main(["model", "init", "--base-filters", "2"], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (
        "radiounet model init: error: the following arguments are required: --repo"
    )
    repo = tmp_path / "repo"
    code, out, err = run_main(["model", "init", "--repo", str(repo), "--base-filters", "2"], capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == (
        f"written {repo / 'models.config'} (serves radio_unet, latest version)"
    )
    assert 'base_path: "/models/radio_unet"' in (repo / "models.config").read_text()
    code, out, err = run_main(["model", "init", "--repo", str(repo), "--base-filters", "2"], capsys)
    assert code == 0, err
    assert "models.config" not in out  # it already serves radio_unet


def test_model_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["model", "init", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "usage: radiounet model init [-h] --repo DIR" in text
    assert "--base-filters N U-Net base width (default 32, the paper's)" in text
    assert "--seed N weight initialisation seed (default 0)" in text
    assert "--version N version number (default: the next one)" in text
    code, out, _ = run_main(["model", "info", "--help"], capsys)
    assert code == 0
    assert "--model-version N model version (default latest)" in " ".join(out.split())


@pytest.fixture
def corrupt_repo(tiny_model_repo: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model repository whose saved_model.pb is not a protobuf."""
    repo = tmp_path / "corrupt"
    shutil.copytree(tiny_model_repo, repo)
    (repo / "radio_unet" / "1" / "saved_model.pb").write_bytes(b"hello not protobuf\n")
    return repo


def test_model_info_refuses_a_corrupt_saved_model(
    corrupt_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["model", "info", "--model", str(corrupt_repo)], capsys)
    assert code == 2
    assert out == ""
    version = corrupt_repo / "radio_unet" / "1"
    line = assert_one_line_error(err, "model", "corrupt")
    assert line == (
        f"radiounet model: error: {version}: corrupt saved_model.pb (Wire format was corrupt)"
    )


@pytest.mark.parametrize("command", ["demo", "segment"])
def test_commands_name_a_corrupt_saved_model_in_one_line(
    command: str,
    corrupt_repo: Path,
    image_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_dir = tmp_path / "out"
    argv = (
        ["demo", "--out", str(out_dir)]
        if command == "demo"
        else ["segment", str(image_path), "-o", str(out_dir / "p.fits")]
    )
    code, _, err = run_main([*argv, "--model", str(corrupt_repo)], capsys)
    assert code == 2
    line = assert_one_line_error(err, command, "corrupt")
    assert line == (
        f"radiounet {command}: error: cannot load model version "
        f"{corrupt_repo / 'radio_unet' / '1'}: corrupt saved_model.pb (Wire format was corrupt)"
    )
    assert not out_dir.exists()  # refused before any output


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
