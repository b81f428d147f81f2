"""``radiounet submit``'s input: column names, files, delimiters, angles, and what it refuses.

Real files in tmp_path through the real ``main`` (no broker: dry runs, or an
unreachable one for the real submission); exact values and exact messages.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from radiounet.cli._catalogue import find_column, parse_angle, read_table, read_text
from radiounet.cli.submit_cmd import Candidate, Columns, read_catalogue
from radiounet.stream.local.ports import free_port
from radiounet.stream.messages import cluster_has_size
from radiounet.stream.proto import pipeline_pb2 as pb

RunCli = Callable[[list[str]], tuple[int, str, str]]
ErrorCheck = Callable[[str, str, str], str]

#: A2061 (PSZ2 G048.10+57.16): 15:21:15.86 +30:37:40.2 in degrees, z and MSZ of PSZ2.
A2061 = "A2061,230.3160862,30.6278283,0.0777,3.589891"
RA_HMS = 15 * (15 + 21 / 60 + 15.8 / 3600)  # 15:21:15.8 in degrees
DEC_DMS = 30 + 37 / 60 + 40 / 3600  # +30:37:40


def write(tmp_path: Path, text: str, name: str = "cat.csv", encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def pointings(path: str, columns: Columns | None = None) -> list[pb.Pointing]:
    with open(path, newline="", encoding="utf-8-sig") as lines:
        rows = read_catalogue(lines, columns or Columns(), source=path)
    assert all(r.pointing is not None for r in rows), [r.error for r in rows]
    return [r.pointing for r in rows if r.pointing is not None]


def dry_run(run_cli: RunCli, *argv: str) -> tuple[int, str, str]:
    return run_cli(["submit", *argv, "--dry-run"])


# --- 1. column names: any case, aliases, flags, ambiguity ------------------------------------


@pytest.mark.parametrize(
    ("header", "sizes"),
    [
        ("NAME,RADEG,DEDEG,Z,MSZ_1E14", (0.0777, 3.589891)),  # the QA's other_case.csv
        ("Name,RAdeg,DEdeg,redshift,m500", (0.0777, 3.589891)),
        ("name,radeg,dedeg,REDSHIFT,M500_1e14", (0.0777, 3.589891)),
        ("Name,RAdeg,DEdeg,z,MSZ", (0.0777, 3.589891)),  # Planck PSZ2's MSZ, 1e14 Msun
    ],
)
def test_size_columns_match_in_any_case_and_by_alias(
    tmp_path: Path, header: str, sizes: tuple[float, float]
) -> None:
    (p,) = pointings(write(tmp_path, f"{header}\n{A2061}\n"))
    assert (p.id, p.ra_deg, p.dec_deg) == ("A2061", 230.3160862, 30.6278283)
    assert (p.cluster.z, p.cluster.m500_1e14) == sizes
    assert not p.cluster.HasField("theta500_arcmin")


def test_theta500_alias(tmp_path: Path) -> None:
    (p,) = pointings(write(tmp_path, "Name,RAdeg,DEdeg,THETA500\nA,230.3,30.6,11.95\n"))
    assert p.cluster.theta500_arcmin == 11.95 and not p.cluster.HasField("z")


def test_column_flags_name_any_column(run_cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, "src,ra,de,zspec,mass,t500\nA2061,230.3,30.6,0.0777,3.59,11.95\n")
    code, out, err = dry_run(
        run_cli, "--catalogue", path, "--name-column", "SRC", "--ra-column", "ra",
        "--dec-column", "de", "--z-column", "zspec", "--m500-column", "MASS",
        "--theta500-column", "t500",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[1] == (
        "  A2061  RA 230.30000  Dec +30.60000  'A2061'  z 0.0777  M500 3.59e14  theta500 11.95'"
        '  [lotss-dr2-lowres 960 px x 4.5"]'
    )
    assert err == ""


def test_a_named_column_that_is_absent_is_an_error(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    path = write(tmp_path, f"Name,RAdeg,DEdeg,z,MSZ_1e14\n{A2061}\n")
    code, _, err = dry_run(run_cli, "--catalogue", path, "--m500-column", "M500c")
    assert code == 2
    one_line_error(
        err,
        "submit",
        f"{path}: no column 'M500c' (--m500-column); its columns are Name, RAdeg, DEdeg, z, "
        "MSZ_1e14",
    )


def test_two_columns_for_one_field_are_an_error_naming_both(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    path = write(tmp_path, "Name,RAdeg,DEdeg,z,Redshift,MSZ_1e14\nA,230.3,30.6,0.07,0.08,3.5\n")
    code, _, err = dry_run(run_cli, "--catalogue", path)
    assert code == 2
    one_line_error(
        err, "submit", f"{path}: columns 'z' and 'Redshift' are both z; choose one with --z-column"
    )
    # Naming one settles it.
    code, out, err = dry_run(run_cli, "--catalogue", path, "--z-column", "Redshift")
    assert code == 0, err
    assert "  z 0.08  " in out


def test_find_column_prefers_the_exact_name_given() -> None:
    header = ["z", "Z"]
    assert find_column(header, ["Z"], label="z", flag="--z-column", explicit=True) == "Z"
    with pytest.raises(ValueError, match=r"columns 'z' and 'Z' are both z"):
        find_column(header, ["z", "redshift"], label="z", flag="--z-column", explicit=False)
    assert find_column(["a"], ["z"], label="z", flag="--z-column", explicit=False) is None


# --- 2. pointings without a cluster size are announced ---------------------------------------


NO_SIZE = (
    "Name,RAdeg,DEdeg,z,MSZ_1e14\n"
    "A2061,230.3,30.6,0.0777,3.59\n"
    "B,230.4,30.7,,\n"
    "C,230.5,30.8,nan,nan\n"
)


def test_dry_run_counts_pointings_without_a_size(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, err = dry_run(run_cli, "--catalogue", write(tmp_path, NO_SIZE))
    assert code == 0, err
    assert err == (
        "note: 2 of 3 pointing(s) have no z/M500 or theta500 (columns found: z 'z', "
        "M500 'MSZ_1e14'): they will be segmented, not classified\n"
    )
    assert out.count("(no cluster size: segmented, not classified)") == 2


def test_a_cluster_without_a_size_keeps_its_name(run_cli: RunCli, tmp_path: Path) -> None:
    rows = pointings(write(tmp_path, NO_SIZE))
    assert [(p.cluster.name, cluster_has_size(p)) for p in rows] == [
        ("A2061", True),
        ("B", False),
        ("C", False),
    ]
    code, out, err = dry_run(run_cli, "--ra", "230.3", "--dec", "30.6", "--name", "Abell 2061")
    assert code == 0, err
    assert "  'Abell 2061'  (no cluster size: segmented, not classified)" in out


def test_real_submit_counts_them_too(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    # No broker listens there: the note comes before the attempt to send.
    bootstrap = f"127.0.0.1:{free_port()}"
    path = write(tmp_path, NO_SIZE)
    code, _, err = run_cli(["submit", "--catalogue", path, "--kafka-bootstrap", bootstrap])
    assert code == 1
    assert err.splitlines()[0] == (
        "note: 2 of 3 pointing(s) have no z/M500 or theta500 (columns found: z 'z', "
        "M500 'MSZ_1e14'): they will be segmented, not classified"
    )
    one_line_error(err, "submit", f"no Kafka broker reachable at {bootstrap}")


def test_note_says_when_no_size_column_was_found(run_cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, "Name,RAdeg,DEdeg,zspec\nA,230.3,30.6,0.07\n")
    code, _, err = dry_run(run_cli, "--catalogue", path)
    assert code == 0, err
    assert err == (
        "note: 1 of 1 pointing(s) have no z/M500 or theta500 (columns found: none; name them "
        "with --z-column, --m500-column, --theta500-column): they will be segmented, not "
        "classified\n"
    )
    code, _, err = dry_run(run_cli, "--ra", "230.3", "--dec", "30.6")
    assert code == 0, err
    assert err == (
        "note: 1 of 1 pointing(s) have no z/M500 or theta500 (none of --z, --m500, --theta500 "
        "given): they will be segmented, not classified\n"
    )
    code, _, err = dry_run(run_cli, "--ra", "230.3", "--dec", "30.6", "--theta500", "11.95")
    assert (code, err) == (0, "")


# --- 3. what the fetcher would certainly dead-letter -------------------------------------------


@pytest.mark.parametrize("source", [["--ra", "230", "--dec", "30"], ["--catalogue", "CAT"]])
def test_unknown_survey_is_refused(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path, source: list[str]
) -> None:
    path = write(tmp_path, f"Name,RAdeg,DEdeg,z,MSZ_1e14\n{A2061}\n")
    argv = [path if a == "CAT" else a for a in source]
    code, out, err = dry_run(run_cli, *argv, "--survey", "nvss")
    assert (code, out) == (2, "")
    one_line_error(
        err, "submit", "--survey: unknown survey 'nvss': known surveys are lotss-dr2-lowres"
    )


SOUTH = "".join(f"S{i},230.0,{-10 * i},0.1,5.0\n" for i in range(7))  # Dec 0, -10, ... -60


def test_catalogue_rows_outside_the_footprint_stop_the_submission(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    path = write(tmp_path, f"Name,RAdeg,DEdeg,z,MSZ_1e14\n{SOUTH}{A2061}\n")
    # A real submission: refused before any broker is looked for (status 2, not 1).
    bootstrap = f"127.0.0.1:{free_port()}"
    code, out, err = run_cli(["submit", "--catalogue", path, "--kafka-bootstrap", bootstrap])
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    one_line_error(
        err,
        "submit",
        "7 of 8 pointings invalid; nothing sent: 7 pointing(s) outside the footprint of "
        "lotss-dr2-lowres (dec >= 10), on lines 2, 3, 4, 5, 6 and 2 more; --skip-invalid sends "
        "the 1 valid one(s) and skips these",
    )
    code, out, err = dry_run(run_cli, "--catalogue", path, "--skip-invalid")
    assert code == 0, err
    assert err == (
        "skipped: 7 pointing(s) outside the footprint of lotss-dr2-lowres (dec >= 10), on lines "
        "2, 3, 4, 5, 6 and 2 more\n"
    )
    assert out.splitlines()[0] == "dry run: 1 pointing(s) would be sent to radiounet.pointings"
    assert out.splitlines()[1].startswith("  A2061  RA 230.31609")


def test_outside_rows_next_to_other_invalid_rows(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    text = (
        "Name,RAdeg,DEdeg,z,MSZ_1e14\n"
        f"S,230,-60,0.1,5\nBad,400,30,0.1,5\n{A2061}\nT,230,9.9,0.1,5\n"
    )
    code, _, err = dry_run(run_cli, "--catalogue", write(tmp_path, text))
    assert code == 2
    assert (
        err.splitlines()[0]
        == "invalid: line 3: pointing Bad: RA must be in [0, 360) degrees, got 400.0"
    )
    one_line_error(
        err,
        "submit",
        "3 of 4 pointings invalid; nothing sent: 2 pointing(s) outside the footprint of "
        "lotss-dr2-lowres (dec >= 10), on lines 2, 5; fix the others listed above, or "
        "--skip-invalid sends the 1 valid one(s) and skips these",
    )


def test_a_position_outside_the_footprint_is_one_line(
    run_cli: RunCli, one_line_error: ErrorCheck
) -> None:
    code, out, err = dry_run(run_cli, "--ra", "230", "--dec", "-60", "--theta500", "5")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    one_line_error(
        err,
        "submit",
        "--ra/--dec: pointing J230.00000-60.00000: RA 230.000 Dec -60.000 is outside the "
        "footprint of lotss-dr2-lowres (dec >= 10)",
    )


# --- 4. the catalogue path ---------------------------------------------------------------------


def test_directory_missing_and_unreadable_catalogues(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    plain = write(tmp_path, "x")
    for path, message in [
        (str(tmp_path), f"{tmp_path}: is a directory; give --catalogue a CSV file"),
        (str(tmp_path / "none.csv"), f"{tmp_path / 'none.csv'}: no such file"),
        (f"{plain}/cat.csv", f"{plain}/cat.csv: cannot be read (Not a directory)"),
    ]:
        code, out, err = dry_run(run_cli, "--catalogue", path)
        assert (code, out) == (2, ""), err
        assert len(err.splitlines()) == 1
        one_line_error(err, "submit", message)


def test_unreadable_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ValueError, match=r"^/x\.csv: cannot be read \(Permission denied\)$"):
        read_text(Path("/x.csv"))


# --- 5. delimiters, encodings, comments --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Name\tRAdeg\tDEdeg\tz\tMSZ_1e14\nA2061\t230.3160862\t30.6278283\t0.0777\t3.589891\n",
        "Name;RAdeg;DEdeg;z;MSZ_1e14\nA2061;230.3160862;30.6278283;0.0777;3.589891\n",
        # A European CSV: semicolons, and decimal commas.
        "Name;RAdeg;DEdeg;z;MSZ_1e14\nA2061;230,3160862;30,6278283;0,0777;3,589891\n",
        f"\ufeffName,RAdeg,DEdeg,z,MSZ_1e14\r\n{A2061}\r\n",
        f"# PSZ2 subset\n# made by hand\nName,RAdeg,DEdeg,z,MSZ_1e14\n# north\n{A2061}\n",
    ],
    ids=["tab", "semicolon", "decimal-comma", "bom-crlf", "comments"],
)
def test_delimiters_bom_and_comments(tmp_path: Path, text: str) -> None:
    (p,) = pointings(write(tmp_path, text))
    assert (p.id, p.ra_deg, p.dec_deg) == ("A2061", 230.3160862, 30.6278283)
    assert (p.cluster.name, p.cluster.z, p.cluster.m500_1e14) == ("A2061", 0.0777, 3.589891)


def test_line_numbers_count_comment_lines(run_cli: RunCli, tmp_path: Path) -> None:
    text = "# header next\nName\tRAdeg\tDEdeg\n# a comment\n\nA\t230.3\t30.6\n# more\nB\t\t30.6\n"
    code, _, err = dry_run(run_cli, "--catalogue", write(tmp_path, text, "cat.tsv"))
    assert code == 2
    assert err.splitlines()[0] == "invalid: line 7: pointing B: no RA (column 'RAdeg' is empty)"


def test_read_table_reports_file_line_numbers() -> None:
    table = read_table(io.StringIO("#c\nName,RA\n#c\nA,1\n\nB,2\n", newline=""), "t.csv")
    assert (table.header, table.delimiter) == (["Name", "RA"], ",")
    assert list(table.rows) == [(4, {"Name": "A", "RA": "1"}), (6, {"Name": "B", "RA": "2"})]


def test_encoding_errors_name_the_file_and_line(
    run_cli: RunCli, one_line_error: ErrorCheck, tmp_path: Path
) -> None:
    text = "Name,RAdeg,DEdeg\nA,230.3,30.6\nAmas de Persée,49.95,41.51\n"
    path = write(tmp_path, text, "latin1.csv", "latin-1")
    code, _, err = dry_run(run_cli, "--catalogue", path)
    assert code == 2
    one_line_error(
        err, "submit", f"{path}: line 3 is not UTF-8 (byte 0xe9); save the file as UTF-8"
    )
    path = write(tmp_path, text, "utf16.csv", "utf-16")
    code, _, err = dry_run(run_cli, "--catalogue", path)
    assert code == 2
    one_line_error(err, "submit", f"{path}: is UTF-16; save the file as UTF-8")
    # UTF-8 names are fine.
    path = write(tmp_path, text, "utf8.csv")
    assert pointings(path)[1].cluster.name == "Amas de Persée"  # kept, though it has no size
    assert pointings(path)[1].id == "Amas_de_Pers_e"


# --- 6. messages name the user's column or flag ------------------------------------------------


def test_half_a_size_names_the_empty_column(tmp_path: Path) -> None:
    text = "NAME,RA,DEC,Z,MSZ\nA2061,230.3,30.6,,3.59\nA1961,221.1,31.2,0.234,\n"
    path = write(tmp_path, text)
    with open(path, encoding="utf-8") as lines:
        rows = read_catalogue(lines, Columns(ra="RA", dec="DEC"), source=path)
    assert [(r.where, r.error) for r in rows] == [
        (
            "line 2",
            "pointing A2061: column 'Z' is empty; give z (column 'Z') and M500 (column 'MSZ'), "
            "or theta500 (--theta500-column)",
        ),
        (
            "line 3",
            "pointing A1961: column 'MSZ' is empty; give z (column 'Z') and M500 (column 'MSZ'), "
            "or theta500 (--theta500-column)",
        ),
    ]
    text = "Name,RAdeg,DEdeg,z\nA2061,230.3,30.6,0.07\n"
    with open(write(tmp_path, text), encoding="utf-8") as lines:
        (row,) = read_catalogue(lines, source="cat.csv")
    assert row.error == (
        "pointing A2061: no M500 column (--m500-column); give z (column 'z') and M500 "
        "(--m500-column), or theta500 (--theta500-column)"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--z", "0.0777"], "--z without --m500: give --z and --m500, or --theta500"),
        (["--m500", "3.59"], "--m500 without --z: give --z and --m500, or --theta500"),
        (
            ["--name", "ÅÄÖ", "--z", "0.0777", "--m500", "3.59"],
            "cannot make a pointing id from --name 'ÅÄÖ'; give --id (1-128 characters of "
            "A-Z a-z 0-9 . _ + -, starting with a letter or digit)",
        ),
    ],
)
def test_position_messages_name_the_flags(
    run_cli: RunCli, one_line_error: ErrorCheck, argv: list[str], message: str
) -> None:
    code, _, err = dry_run(run_cli, "--ra", "230.3", "--dec", "30.6", *argv)
    assert code == 2
    one_line_error(err, "submit", message)


def test_a_name_without_id_characters_works_with_id(run_cli: RunCli) -> None:
    code, out, err = dry_run(
        run_cli, "--ra", "230.3", "--dec", "30.6", "--name", "ÅÄÖ", "--id", "aao", "--theta500", "5"
    )
    assert code == 0, err
    assert out.splitlines()[1].startswith("  aao  RA 230.30000  Dec +30.60000  'ÅÄÖ'")


# --- 7. sexagesimal coordinates ----------------------------------------------------------------


def test_sexagesimal_catalogue(tmp_path: Path) -> None:
    text = (
        "Name,RAdeg,DEdeg,theta500_arcmin\n"
        "hms,15:21:15.8,+30:37:40,5\n"
        "letters,15h21m15.8s,30d37m40s,5\n"
        "spaces,15 21 15.8,+30 37 40,5\n"
        "degrees,230.3158,30.6278,5\n"
    )
    rows = pointings(write(tmp_path, text))
    for p in rows[:3]:
        assert p.ra_deg == pytest.approx(RA_HMS, abs=1e-12)
        assert p.dec_deg == pytest.approx(DEC_DMS, abs=1e-12)
    assert (rows[3].ra_deg, rows[3].dec_deg) == (230.3158, 30.6278)


def test_sexagesimal_flags(run_cli: RunCli, one_line_error: ErrorCheck) -> None:
    for ra, dec in [("15:21:15.8", "+30:37:40"), ("15h21m15.8s", "30d37m40s")]:
        code, out, err = dry_run(run_cli, "--ra", ra, "--dec", dec, "--theta500", "5")
        assert code == 0, err
        assert out.splitlines()[1].startswith("  J230.31583+30.62778  RA 230.31583  Dec +30.62778")
    # A negative sexagesimal Dec is read too (given as --dec=...), then refused by the footprint.
    code, _, err = dry_run(run_cli, "--ra", "230", "--dec=-30:37:40")
    assert code == 2
    one_line_error(err, "submit", "RA 230.000 Dec -30.628 is outside the footprint")


@pytest.mark.parametrize(
    ("ra", "dec", "message"),
    [
        ("25:00:00", "30", "--ra: '25:00:00' is out of range (An invalid value for 'hours'"),
        ("15:61:00", "30", "--ra: '15:61:00' is out of range (An invalid value for 'minute'"),
        ("15:21:60", "30", "--ra: '15:21:60' is out of range ("),
        (
            "15:21:xx",
            "30",
            "--ra: '15:21:xx' is not an angle: give decimal degrees or sexagesimal hours "
            "(15:21:15.8, 15h21m15.8s)",
        ),
        (
            "230",
            "north",
            "--dec: 'north' is not an angle: give decimal degrees or sexagesimal degrees "
            "(+30:37:40, 30d37m40s)",
        ),
        ("230", "+95:00:00", "Dec must be in [-90, 90] degrees, got 95.0"),
        ("400", "30", "RA must be in [0, 360) degrees, got 400.0"),
    ],
)
def test_bad_angles_keep_clear_errors(
    run_cli: RunCli, one_line_error: ErrorCheck, ra: str, dec: str, message: str
) -> None:
    code, _, err = dry_run(run_cli, "--ra", ra, "--dec", dec)
    assert code == 2
    one_line_error(err, "submit", message)


def test_bad_angle_in_a_catalogue_names_line_and_column(tmp_path: Path) -> None:
    text = "Name,RAdeg,DEdeg\nA,15:21:15.8,+91:00:00\nB,15:21:1x,30\n"
    with open(write(tmp_path, text), encoding="utf-8") as lines:
        rows = read_catalogue(lines, source="cat.csv")
    assert rows[0].pointing is not None and rows[0].pointing.dec_deg == 91.0  # refused later
    assert rows[1] == Candidate(
        "line 3",
        None,
        "pointing B: RA (column 'RAdeg'): '15:21:1x' is not an angle: give decimal degrees or "
        "sexagesimal hours (15:21:15.8, 15h21m15.8s)",
    )


def test_parse_angle() -> None:
    assert parse_angle("230.5", hours=True) == 230.5  # a plain number is always degrees
    assert parse_angle("-0:30:00", hours=False) == -0.5
    assert parse_angle("15:21:15,8", hours=True, decimal_comma=True) == pytest.approx(RA_HMS)
