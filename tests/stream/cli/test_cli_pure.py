"""submit, status and results without servers: catalogues, ids, states, rows, stack file."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from radiounet.cli._stack_settings import (
    STACK_DIR_ENV,
    read_stack_settings,
    settings_with_stack,
)
from radiounet.cli._stream_options import add_stream_options
from radiounet.cli.results_cmd import TABLE_COLUMNS, format_results, notes
from radiounet.cli.status_cmd import (
    ResultInfo,
    derive_status,
    format_table,
    group_keys,
    image_shape_from_header,
    pointing_of_key,
)
from radiounet.cli.submit_cmd import (
    Candidate,
    Columns,
    PointingDefaults,
    check_candidates,
    make_pointing,
    position_id,
    read_catalogue,
)
from radiounet.stream.classifier.results import RESULT_COLUMNS
from radiounet.stream.local.stack_state import StackState, save_state
from radiounet.stream.messages import cluster_has_size
from radiounet.stream.proto import pipeline_pb2 as pb

RunCli = Callable[[list[str]], tuple[int, str, str]]
ErrorCheck = Callable[[str, str, str], str]

PSZ2_CSV = """\
Name,RAdeg,DEdeg,z,MSZ_1e14,R500_kpc,theta500_arcmin,zID,MCXC,SNR
PSZ2 G000.04+45.13,229.190512,-1.017222,0.1198,3.962411,1074.6,8.291,RXC J1516.5-0056,J1516,6.7
PSZ2 G000.13+78.04,203.5586828,20.2559905,0.171,5.122391,1150.3,6.584,RXC J1334.1+2013,J1334,9.2
PSZ2 G000.40-41.86,316.0844846,-41.3541688,,,,,,,9.7
"""


def catalogue(
    text: str,
    columns: Columns | None = None,
    defaults: PointingDefaults | None = None,
    limit: int | None = None,
) -> list[Candidate]:
    return read_catalogue(
        io.StringIO(text),
        columns or Columns(),
        defaults or PointingDefaults(),
        source="cat.csv",
        limit=limit,
    )


def problems_of(text: str) -> list[str]:
    return check_candidates(catalogue(text))[1]


# --- catalogue parsing and ids ---------------------------------------------------------------


def test_psz2_rows_become_pointings_with_ids_from_names() -> None:
    rows = catalogue(PSZ2_CSV)
    assert [r.where for r in rows] == ["line 2", "line 3", "line 4"]
    first = rows[0].pointing
    assert first is not None
    assert first.id == "PSZ2_G000.04+45.13"
    assert (first.ra_deg, first.dec_deg) == (229.190512, -1.017222)
    assert first.cluster.name == "PSZ2 G000.04+45.13"
    assert (first.cluster.z, first.cluster.m500_1e14) == (0.1198, 3.962411)
    assert first.cluster.theta500_arcmin == 8.291
    assert (first.survey, first.size_px, first.pixel_scale_arcsec) == ("lotss-dr2-lowres", 960, 4.5)
    # No size at all: a plain pointing (segmented, not classified), still valid.
    last = rows[2].pointing
    assert last is not None and not cluster_has_size(last)
    assert last.cluster.name == "PSZ2 G000.40-41.86"  # the name is kept, for the results table
    # South of LoTSS-DR2 (Dec < 10): the fetcher would dead-letter them, so they are invalid.
    valid, problems = check_candidates(rows)
    assert problems == [
        "line 2: pointing PSZ2_G000.04+45.13: RA 229.191 Dec -1.017 is outside the footprint "
        "of lotss-dr2-lowres (dec >= 10)",
        "line 4: pointing PSZ2_G000.40-41.86: RA 316.084 Dec -41.354 is outside the footprint "
        "of lotss-dr2-lowres (dec >= 10)",
    ]
    assert [p.id for p in valid] == ["PSZ2_G000.13+78.04"]


def test_limit_and_defaults_apply() -> None:
    defaults = PointingDefaults("nvss", 512, 15.0)
    rows = catalogue(PSZ2_CSV, defaults=defaults, limit=2)
    assert len(rows) == 2
    assert rows[1].pointing is not None
    assert (rows[1].pointing.survey, rows[1].pointing.size_px) == ("nvss", 512)
    assert rows[1].pointing.pixel_scale_arcsec == 15.0


def test_custom_columns_and_id_column() -> None:
    text = "src,ra,dec,t500\nA-1,10.5,20.25,4.0\n"
    columns = Columns(
        id="src", ra="ra", dec="dec", theta500="t500", explicit=frozenset({"id", "ra", "dec"})
    )
    (row,) = catalogue(text, columns)
    assert row.pointing is not None
    assert row.pointing.id == "A-1"
    assert row.pointing.cluster.name == ""  # no name column: optional when ids are given
    assert row.pointing.cluster.theta500_arcmin == 4.0
    assert not row.pointing.cluster.HasField("z")


def test_missing_columns_are_named_with_their_flag() -> None:
    with pytest.raises(ValueError) as info:
        catalogue("Name,RA,DEC\nx,1,2\n")
    assert str(info.value) == (
        "cat.csv: no column 'RAdeg' (--ra-column), 'DEdeg' (--dec-column); "
        "its columns are Name, RA, DEC"
    )
    # An optional column is required once named on the command line.
    with pytest.raises(ValueError, match=r"no column 'zz' \(--z-column\)"):
        catalogue(PSZ2_CSV, Columns(z="zz", explicit=frozenset({"z"})))
    with pytest.raises(ValueError, match="empty, expected a CSV header"):
        catalogue("")


def test_invalid_rows_have_precise_messages() -> None:
    text = (
        "Name,RAdeg,DEdeg,z,MSZ_1e14,theta500_arcmin\n"
        "Dec95,10,95,0.1,3,5\n"
        "NoRA,,20,0.1,3,5\n"
        "TextRA,abc,20,,,5\n"
        "OnlyZ,10,20,0.2,,\n"
        "???,1,12,,,3\n"
        ",1,12,,,3\n"
        "Neg,1,12,,,-1\n"
        "RA360,360,12,,,3\n"
        "Good,1,12,NaN,,3\n"
        "Good,3,14,,,3\n"
    )
    assert problems_of(text) == [
        "line 2: pointing Dec95: Dec must be in [-90, 90] degrees, got 95.0",
        "line 3: pointing NoRA: no RA (column 'RAdeg' is empty)",
        "line 4: pointing TextRA: RA (column 'RAdeg'): 'abc' is not an angle: give decimal "
        "degrees or sexagesimal hours (15:21:15.8, 15h21m15.8s)",
        "line 5: pointing OnlyZ: column 'MSZ_1e14' is empty; give z (column 'z') and "
        "M500 (column 'MSZ_1e14'), or theta500 (column 'theta500_arcmin')",
        "line 6: name '???' makes no valid pointing id; give --id-column "
        "(ids: 1-128 characters of A-Z a-z 0-9 . _ + -, starting with a letter or digit)",
        "line 7: no name to make the id from (column 'Name' is empty)",
        "line 8: pointing Neg: theta500 must be positive, got -1.0",
        "line 9: pointing RA360: RA must be in [0, 360) degrees, got 360.0",
        "line 11: pointing Good: duplicate id (first on line 10)",
    ]


def test_bad_id_column_value_is_reported() -> None:
    text = "id,RAdeg,DEdeg\nbad id!,1,2\n"
    (problem,) = check_candidates(catalogue(text, Columns(id="id", explicit=frozenset({"id"}))))[1]
    assert problem.startswith("line 2: pointing id must be 1-128 characters")
    assert "'bad id!'" in problem


def test_quoted_cells_bom_free_spaces_and_short_rows() -> None:
    text = 'Name, RAdeg, DEdeg\n"Abell 2255, main", 258.2 , 64.06\nShort,1\n'
    rows = catalogue(text)
    assert rows[0].pointing is not None
    assert rows[0].pointing.id == "Abell_2255_main"
    assert rows[0].pointing.ra_deg == 258.2
    assert rows[1].error == "pointing Short: no Dec (column 'DEdeg' is empty)"


def test_position_ids_and_plain_pointings() -> None:
    assert position_id(229.190512, -1.017222) == "J229.19051-1.01722"
    assert position_id(0.0, 5.0) == "J0.00000+5.00000"
    p = make_pointing("x", 1.0, 2.0, defaults=PointingDefaults())
    assert not p.HasField("cluster")
    p = make_pointing("x", 1.0, 20.0, defaults=PointingDefaults(), name="A", z=0.1, m500_1e14=2.0)
    assert p.cluster.name == "A" and not p.cluster.HasField("theta500_arcmin")
    valid, problems = check_candidates([Candidate("--ra/--dec", p)])
    assert problems == [] and valid[0].cluster.m500_1e14 == 2.0


def test_check_fills_defaults_of_zero_fields() -> None:
    p = pb.Pointing(id="p", ra_deg=1, dec_deg=20)
    (valid,), _ = check_candidates([Candidate("x", p)])
    assert (valid.survey, valid.size_px, valid.pixel_scale_arcsec) == (
        "lotss-dr2-lowres",
        960,
        4.5,
    )


# --- submit without a broker: dry runs and errors ------------------------------------------


def test_submit_dry_run_prints_and_sends_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "psz2.csv"
    path.write_text(PSZ2_CSV.replace("-1.017222", "+41.017222"))  # inside LoTSS-DR2
    code, out, err = run_cli(["submit", "--catalogue", str(path), "--dry-run", "--limit", "2"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "dry run: 2 pointing(s) would be sent to radiounet.pointings"
    assert lines[1].startswith("  PSZ2_G000.04+45.13  RA 229.19051  Dec +41.01722")
    assert "theta500 8.291'" in lines[1]
    assert lines[1].endswith('[lotss-dr2-lowres 960 px x 4.5"]')
    assert len(lines) == 3


def test_submit_invalid_rows_stop_everything(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Name,RAdeg,DEdeg,theta500_arcmin\nA,10,95,5\nB,,20,5\nC,1,20,5\n")
    code, out, err = run_cli(["submit", "--catalogue", str(path), "--dry-run"])
    assert code == 2
    assert out == ""
    assert "invalid: line 2: pointing A: Dec must be in [-90, 90] degrees, got 95.0" in err
    assert "invalid: line 3: pointing B: no RA (column 'RAdeg' is empty)" in err
    one_line_error(err, "submit", "2 of 3 pointings invalid; nothing sent")
    code, out, err = run_cli(["submit", "--catalogue", str(path), "--dry-run", "--skip-invalid"])
    assert code == 0
    assert "skipped: line 2" in err and "skipped: line 3" in err
    assert out.splitlines()[0] == "dry run: 1 pointing(s) would be sent to radiounet.pointings"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dec", "1"], "give --catalogue, or --ra and --dec"),
        ([], "give --catalogue, or --ra and --dec"),
        (["--catalogue", "x.csv", "--ra", "1"], "give --catalogue or a position, not both (--ra)"),
        (["--ra", "1", "--dec", "2", "--z-column", "z"], "--z-column need(s) --catalogue"),
        (["--catalogue", "missing.csv"], "missing.csv"),
        (["--ra", "1", "--dec", "20", "--name", "???"], "cannot make a pointing id from --name"),
        (["--ra", "1", "--dec", "-91"], "--ra/--dec: pointing J1.00000-91.00000: Dec must be in"),
    ],
)
def test_submit_usage_errors(
    run_cli: RunCli, one_line_error: ErrorCheck, argv: list[str], message: str
) -> None:
    code, _, err = run_cli(["submit", "--dry-run", *argv])
    assert code == 2
    one_line_error(err, "submit", message)


def test_submit_position_dry_run(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        ["submit", "--ra", "10", "--dec", "20", "--name", "Abell 1", "--theta500", "3",
         "--survey", "lotss-dr2-lowres", "--size", "480", "--dry-run"]
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[1].startswith("  Abell_1  RA 10.00000  Dec +20.00000  'Abell 1'")
    assert "[lotss-dr2-lowres 480 px" in out


# --- status states from keys ---------------------------------------------------------------

CUT = "cutouts/lotss-dr2-lowres/p1.fits"


def tile_keys(model: str, ranges: list[tuple[int, int]]) -> list[str]:
    return [f"tiles/p1/{model}/{a:05d}-{b:05d}.npy" for a, b in ranges]


def test_pointing_of_key_and_grouping() -> None:
    assert pointing_of_key("results/p1.json") == "p1"
    assert pointing_of_key("dead-letters/p1/tiler.json") == "p1"
    assert pointing_of_key("maps/p1/probability.fits") == "p1"
    for other in ("results/sub/x.json", "cutouts/p1.fits", "misc/p1", "tiles/", "results/x.txt"):
        assert pointing_of_key(other) is None
    keys = [CUT, "results/p2.json", "misc/file", "tiles/p1/m-1/00000-00001.npy"]
    assert group_keys(keys) == {
        "p1": [CUT, "tiles/p1/m-1/00000-00001.npy"],
        "p2": ["results/p2.json"],
    }


def test_states_in_pipeline_order() -> None:
    assert derive_status("p1", []).state == "not-seen"
    assert derive_status("p1", [CUT]).state == "fetched"
    tiling = derive_status("p1", [CUT, *tile_keys("m-1", [(0, 15), (16, 31)])], total_tiles=81)
    assert (tiling.state, tiling.summary) == ("tiling", "tiling 32/81")
    assert tiling.tiles is not None and tiling.tiles.chunks == 2
    assert derive_status("p1", [CUT, *tile_keys("m-1", [(0, 3)])]).summary == "tiling 4/?"
    maps = ["maps/p1/probability.fits", "maps/p1/quicklook.png"]
    done = derive_status("p1", [CUT, *maps])
    assert (done.state, done.map, done.quicklook) == ("reassembled", maps[0], maps[1])
    classified = derive_status("p1", [CUT, *maps, "results/p1.json"])
    assert (classified.state, classified.result) == ("classified", "results/p1.json")
    # Keys of other pointings never count.
    assert derive_status("p1", ["results/p10.json", "cutouts/s/p10.fits"]).state == "not-seen"


def test_tiles_count_distinct_indices_of_the_fullest_model() -> None:
    keys = tile_keys("m-1", [(0, 15), (8, 23), (0, 15)]) + tile_keys("m-2", [(0, 3)])
    tiles = derive_status("p1", keys).tiles
    assert tiles is not None
    assert (tiles.model, tiles.tiles, tiles.chunks) == ("m-1", 24, 2)


def test_failed_reports_the_latest_dead_letter() -> None:
    letters = {
        "dead-letters/p1/fetcher.json": {
            "stage": "fetcher",
            "reason": "outside_survey",
            "detail": "no coverage",
            "failed_unix_ms": 2000,
        },
        "dead-letters/p1/tiler.json": {
            "stage": "tiler",
            "reason": "invalid_cutout",
            "detail": "blank image",
            "failed_unix_ms": 1000,
        },
    }
    status = derive_status("p1", [CUT, *letters], dead_letters=letters)
    assert status.state == "failed"
    assert status.summary == "failed (fetcher: outside_survey)"
    assert [d.stage for d in status.dead_letters] == ["tiler", "fetcher"]
    # Without payloads the key still says which stage failed.
    bare = derive_status("p1", ["dead-letters/p1/reassembler.json"])
    assert bare.summary == "failed (reassembler: unknown)"
    # A replay that got through wins over an old dead letter.
    assert derive_status("p1", [*letters, "results/p1.json"]).state == "classified"


def test_status_dict_and_table() -> None:
    letters = {"dead-letters/p2/tiler.json": {"stage": "tiler", "reason": "r", "detail": "d"}}
    statuses = [
        derive_status("p1", [CUT, *tile_keys("m-1", [(0, 8)])], total_tiles=9),
        derive_status("p2", list(letters), dead_letters=letters),
    ]
    as_json = json.loads(json.dumps([s.to_dict() for s in statuses]))
    assert as_json[0]["tiles"] == {"model": "m-1", "chunks": 1, "tiles": 9, "total": 9}
    assert as_json[0]["summary"] == "tiling 9/9"
    assert as_json[1]["dead_letters"] == [
        {
            "stage": "tiler",
            "reason": "r",
            "detail": "d",
            "key": "dead-letters/p2/tiler.json",
            "failed_unix_ms": None,
            "superseded": False,
        }
    ]
    assert as_json[1]["earlier_result"] is None
    table = format_table(statuses).splitlines()
    assert table[0].split() == ["pointing", "state", "stored"]
    assert table[1].split()[:3] == ["p1", "tiling", "9/9"]
    assert "9 tiles in 1 chunks (m-1)" in table[1]
    assert table[3].split() == ["dead", "letter", "tiler:", "r:", "d"]
    assert format_table([]) == "no pointings in the object store"


RESULT_T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
EARLIER_ROW = {"pointing_id": "p1", "ratio": 0.0253, "correlation_id": "c-old"}
LETTER_KEY = "dead-letters/p1/fetcher.json"


def resubmitted(failed_unix_ms: int) -> list[str]:
    """Table of p1: classified at RESULT_T0, and a fetcher dead letter at ``failed_unix_ms``."""
    row = {**EARLIER_ROW, "classified_unix_ms": RESULT_T0}
    letter = {
        "stage": "fetcher",
        "reason": "outside_footprint",
        "detail": "Dec -60.000 is outside",
        "failed_unix_ms": failed_unix_ms,
    }
    keys = [CUT, "maps/p1/probability.fits", "results/p1.json", LETTER_KEY]
    status = derive_status("p1", keys, dead_letters={LETTER_KEY: letter}, result=row)
    return format_table([status]).splitlines()


def test_a_dead_letter_after_the_result_means_failed() -> None:
    row = {**EARLIER_ROW, "classified_unix_ms": RESULT_T0}
    letter = {"stage": "fetcher", "reason": "outside_footprint", "failed_unix_ms": RESULT_T0 + 1}
    keys = [CUT, "results/p1.json", LETTER_KEY]
    status = derive_status("p1", keys, dead_letters={LETTER_KEY: letter}, result=row)
    assert (status.state, status.summary) == ("failed", "failed (fetcher: outside_footprint)")
    assert status.result == "results/p1.json"
    assert status.earlier_result == ResultInfo(RESULT_T0, 0.0253, "c-old")
    assert status.to_dict()["earlier_result"] == {
        "classified_utc": "2023-11-14T22:13:20.000Z",
        "ratio": 0.0253,
        "correlation_id": "c-old",
    }
    assert resubmitted(RESULT_T0 + 1) == [
        "pointing  state                                stored",
        "p1        failed (fetcher: outside_footprint)  cutout, map, result",
        "          dead letter fetcher: outside_footprint: Dec -60.000 is outside",
        "          an earlier submission was classified at 2023-11-14T22:13:20.000Z "
        "(R 0.0253, correlation-id c-old); its row is still in radiounet results",
    ]


def test_a_result_after_the_dead_letter_supersedes_it() -> None:
    row = {**EARLIER_ROW, "classified_unix_ms": RESULT_T0}
    letter = {"stage": "fetcher", "reason": "outside_footprint", "failed_unix_ms": RESULT_T0 - 1}
    keys = [CUT, "results/p1.json", LETTER_KEY]
    status = derive_status("p1", keys, dead_letters={LETTER_KEY: letter}, result=row)
    assert (status.state, status.summary, status.earlier_result) == (
        "classified",
        "classified",
        None,
    )
    assert [(d.stage, d.superseded) for d in status.dead_letters] == [("fetcher", True)]
    assert status.to_dict()["dead_letters"][0]["superseded"] is True
    # Listed among what is stored, with no detail line.
    assert resubmitted(RESULT_T0 - 1) == [
        "pointing  state       stored",
        "p1        classified  cutout, map, result, superseded dead letter (fetcher)",
    ]


def test_long_states_keep_the_status_columns_aligned() -> None:
    letters = {"dead-letters/p2/fetcher.json": {"stage": "fetcher", "reason": "outside_footprint"}}
    statuses = [
        derive_status("p1", [CUT, "results/p1.json"]),
        derive_status("p2", list(letters), dead_letters=letters),
    ]
    assert format_table(statuses).splitlines()[:3] == [
        "pointing  state                                stored",
        "p1        classified                           cutout, result",
        "p2        failed (fetcher: outside_footprint)  -",
    ]


def test_tile_chunks_of_an_earlier_fetch_do_not_count() -> None:
    # Resubmitted with another --size: the 3x3 grid's chunk stays next to the 9x9 grid's.
    old = tile_keys("m-1", [(0, 8)])
    new = tile_keys("m-1", [(0, 15), (16, 31), (32, 47), (48, 63), (64, 79), (80, 80)])
    first = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    again = first + timedelta(minutes=5)
    times = {old[0]: first, CUT: again, **dict.fromkeys(new, again)}
    tiles = derive_status("p1", [CUT, *old, *new], modified=times).tiles
    assert tiles is not None and (tiles.tiles, tiles.chunks) == (81, 6)
    # Without the times every chunk counts.
    tiles = derive_status("p1", [CUT, *old, *new]).tiles
    assert tiles is not None and (tiles.tiles, tiles.chunks) == (81, 7)
    # The new cutout is not tiled yet: fetched, not "tiling 9/81" of the old grid.
    status = derive_status("p1", [CUT, *old], modified=times)
    assert (status.state, status.tiles) == ("fetched", None)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((300, 200), (300, 200)), ((1, 1, 64, 96), (64, 96)), ((2, 64, 96), None)],
)
def test_image_shape_from_a_real_fits_header(
    shape: tuple[int, ...], expected: tuple[int, int] | None
) -> None:
    buf = io.BytesIO()
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype=np.float32))
    hdu.header["HISTORY"] = "x" * 70
    hdu.writeto(buf)
    assert image_shape_from_header(buf.getvalue()[:28800]) == expected
    assert image_shape_from_header(buf.getvalue()[:80]) is None  # header cut before END


# --- results table -------------------------------------------------------------------------

HALO_ROW = {
    "schema_version": 1,
    "pointing_id": "halo",
    "survey": "lotss-dr2-lowres",
    "ra_deg": 258.2,
    "dec_deg": 64.06,
    "cluster": {"name": "Abell 2255", "z": 0.0806},
    "model": {"name": "radio_unet", "version": 3, "signature": "serving_default"},
    "has_cluster": True,
    "ratio": 0.61234,
    "threshold": 0.2,
    "diffuse": True,
    "n_components": 2,
    "map_key": "maps/halo/probability.fits",
}
PLAIN_ROW = {
    "schema_version": 1,
    "pointing_id": "plain",
    "ra_deg": 1.0,
    "dec_deg": 2.0,
    "has_cluster": False,
    "ratio": None,
    "diffuse": None,
    "n_components": 0,
    "model": {"name": "radio_unet", "version": 3},
    "map_key": "maps/plain/probability.fits",
}


def test_results_terminal_table() -> None:
    lines = format_results([HALO_ROW, PLAIN_ROW], "table").splitlines()
    assert lines[0].split() == [heading for heading, _ in TABLE_COLUMNS]
    assert lines[1].split() == [
        "halo", "Abell", "2255", "258.20000", "64.06000", "0.6123", "0.2", "yes", "-", "2",
        "radio_unet-3", "maps/halo/probability.fits",
    ]  # fmt: skip
    assert lines[2].split() == [
        "plain", "-", "1.00000", "2.00000", "-", "-", "-", "-", "0", "radio_unet-3",
        "maps/plain/probability.fits",
    ]  # fmt: skip
    assert format_results([], "table").split() == [heading for heading, _ in TABLE_COLUMNS]


def test_results_table_shows_the_aperture_in_the_image() -> None:
    rows = [
        {**HALO_ROW, "pointing_id": pid, "aperture": {"fraction_in_image": share}}
        for pid, share in (("whole", 1.0), ("almost", 0.996), ("clipped", 0.118))
    ]
    lines = format_results(rows, "table").splitlines()
    at = [heading for heading, _ in TABLE_COLUMNS].index("aperture")
    assert [line.split()[0] for line in lines] == ["pointing", "whole", "almost", "clipped"]
    # The cluster name is two words: one more field before the aperture on the rows.
    assert [line.split()[at + 1] for line in lines[1:]] == ["100%", "99%", "11%"]
    (clipped,) = csv.DictReader(io.StringIO(format_results(rows[2:], "csv")))
    assert clipped["aperture_in_image"] == "0.118"
    (as_json,) = json.loads(format_results(rows[2:], "json"))
    assert as_json["aperture_in_image"] == 0.118


def test_results_carry_the_share_of_the_aperture_on_valid_pixels() -> None:
    halo = {**HALO_ROW, "aperture": {"fraction_in_image": 1.0, "fraction_valid": 0.75}}
    lines = format_results([halo], "table").splitlines()
    assert lines[0].split() == [heading for heading, _ in TABLE_COLUMNS]  # the table as before
    assert lines[1].split()[7:10] == ["yes", "100%", "2"]  # diffuse, aperture, comps
    (record,) = csv.DictReader(io.StringIO(format_results([halo], "csv")))
    assert (record["aperture_in_image"], record["aperture_valid"]) == ("1.0", "0.75")
    (as_json,) = json.loads(format_results([halo], "json"))
    assert (as_json["aperture_in_image"], as_json["aperture_valid"]) == (1.0, 0.75)


def test_results_notes_say_what_the_rows_leave_out() -> None:
    gone = [derive_status(p, [f"dead-letters/{p}/fetcher.json"]) for p in ("g1", "g2")]
    stale = derive_status(
        "halo",
        ["results/halo.json", "dead-letters/halo/tiler.json"],
        dead_letters={"dead-letters/halo/tiler.json": {"failed_unix_ms": 2}},
        result={"classified_unix_ms": 1},
    )
    assert notes([HALO_ROW, PLAIN_ROW], [HALO_ROW, PLAIN_ROW], [*gone, stale]) == [
        "1 listed pointing(s) failed when submitted again; their rows are from an earlier "
        "submission: halo (radiounet status ID)",
        "2 pointing(s) failed and are not listed: radiounet status --all",
    ]
    assert notes([PLAIN_ROW], [PLAIN_ROW], []) == []
    assert notes([], [], gone) == [
        "no results yet: no pointing has been classified",
        "2 pointing(s) failed and are not listed: radiounet status --all",
    ]
    # --diffuse-only that keeps nothing; the stale row is not listed, so not mentioned.
    assert notes([HALO_ROW, PLAIN_ROW], [], [stale]) == [
        "no pointing with diffuse emission among 2 result(s)"
    ]
    many = [derive_status(f"p{i}", [f"results/p{i}.json"]) for i in range(7)]
    many = [replace(s, state="failed") for s in many]
    rows = [{"pointing_id": s.pointing_id} for s in many]
    assert notes(rows, rows, many)[0].endswith(
        "submission: p0, p1, p2, p3, p4 and 2 more (radiounet status ID)"
    )


def test_results_csv_and_json_carry_every_column() -> None:
    header, halo = format_results([HALO_ROW], "csv").splitlines()
    assert header.split(",") == list(RESULT_COLUMNS)
    fields = dict(zip(RESULT_COLUMNS, next(csv.reader([halo])), strict=True))
    assert (fields["cluster"], fields["ratio"], fields["diffuse"]) == (
        "Abell 2255",
        "0.61234",
        "true",
    )
    (plain,) = json.loads(format_results([PLAIN_ROW], "json"))
    assert list(plain) == list(RESULT_COLUMNS)
    assert (plain["ratio"], plain["diffuse"], plain["model_version"]) == (None, None, 3)
    with pytest.raises(ValueError, match="format must be one of"):
        format_results([], "xml")


# --- settings from a local stack's state file ---------------------------------------------


def stack_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stream_options(parser)
    return parser.parse_args(argv)


def write_stack(directory: Path, settings: Mapping[str, object]) -> Path:
    """A state file as the local stack writes it (no components: nothing to probe here)."""
    state = StackState(str(directory), {}, "ak", "sk", extra={"settings": dict(settings)})
    return save_state(state)


STACK = {
    "kafka_bootstrap": "127.0.0.1:1111",
    "s3_endpoint": "127.0.0.1:2222",
    "s3_access_key": "ak",
    "s3_secret_key": "sk",
    "bucket": "stack-bucket",
    "topic_prefix": "stack.",
    "topic_partitions": 2,
    "future_key": "ignored",
}


def test_stack_file_fills_what_flags_and_env_do_not(tmp_path: Path) -> None:
    write_stack(tmp_path / "st", STACK)
    args = stack_args(["--stack", str(tmp_path / "st"), "--bucket", "flag-bucket"])
    s = settings_with_stack(args, env={"RADIOUNET_S3_ENDPOINT": "env:9"})
    assert s.kafka_bootstrap == "127.0.0.1:1111"
    assert s.s3_endpoint == "env:9"
    assert s.bucket == "flag-bucket"
    assert (s.s3_access_key, s.s3_secret_key, s.topic_prefix) == ("ak", "sk", "stack.")
    assert s.topic_partitions == 2
    # The folder may come from the environment too.
    s = settings_with_stack(stack_args([]), env={STACK_DIR_ENV: str(tmp_path / "st")})
    assert s.bucket == "stack-bucket"


def test_stack_file_written_by_the_stack_is_read(tmp_path: Path) -> None:
    write_stack(tmp_path, STACK)
    assert read_stack_settings(tmp_path)["bucket"] == "stack-bucket"
    assert "future_key" not in read_stack_settings(tmp_path)


def test_default_stack_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # No state in out/stack: plain defaults, no error.
    assert settings_with_stack(stack_args([]), env={}).kafka_bootstrap == "127.0.0.1:9092"
    write_stack(tmp_path / "out" / "stack", STACK)
    assert settings_with_stack(stack_args([]), env={}).kafka_bootstrap == "127.0.0.1:1111"


def test_bad_stack_state_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no local stack state at .*nowhere/stack.json"):
        settings_with_stack(stack_args(["--stack", str(tmp_path / "nowhere")]), env={})
    with pytest.raises(ValueError, match=r"no local stack state at .*/stack.json"):
        read_stack_settings(tmp_path)
    (tmp_path / "stack.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a stack state file"):
        read_stack_settings(tmp_path)
    save_state(StackState(str(tmp_path), {}, "ak", "sk"))
    with pytest.raises(ValueError, match='no "settings" object'):
        read_stack_settings(tmp_path)
    write_stack(tmp_path, {"bucket": 3})
    with pytest.raises(ValueError, match='"bucket" must be a non-empty string'):
        read_stack_settings(tmp_path)
    write_stack(tmp_path, {"topic_partitions": "6"})
    with pytest.raises(ValueError, match='"topic_partitions" must be a positive integer'):
        read_stack_settings(tmp_path)
