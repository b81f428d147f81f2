"""Reading a user's catalogue for ``radiounet submit``: file, delimiter, comments, columns, angles.

Only what is about tables lives here; what the rows mean (pointings) is in
:mod:`radiounet.cli.submit_cmd`. Every problem is a ValueError with one line
that names the file, line, column or flag, since the CLI prints it as is.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Table", "find_column", "parse_angle", "parse_number", "read_table", "read_text"]

#: Delimiters told apart by the header line: CSV, TSV and the semicolons of European CSVs.
DELIMITERS = (",", "\t", ";")


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (a BOM is dropped), or a one-line ValueError naming ``path``.

    >>> read_text(Path("/"))
    Traceback (most recent call last):
    ...
    ValueError: /: is a directory; give --catalogue a CSV file
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory; give --catalogue a CSV file") from None
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte-order mark
        raise ValueError(f"{path}: is UTF-16; save the file as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None


class _Lines:
    """The lines of a table without its '#' comments; ``number`` is the last one's in the file."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = enumerate(lines, 1)
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        while True:
            self.number, line = next(self._lines)
            if not line.startswith("#"):
                return line


@dataclass(frozen=True)
class Table:
    """A table's header, delimiter and rows: (line number in the file, cell by column)."""

    header: list[str]
    delimiter: str
    rows: Iterator[tuple[int, dict[str, str]]]

    @property
    def decimal_comma(self) -> bool:
        """Whether numbers may be written ``1,5``: a European CSV, where ';' separates cells."""
        return self.delimiter == ";"


def read_table(lines: Iterable[str], source: str) -> Table:
    """The table in ``lines``: the first line that is neither blank nor a comment is the header.

    >>> table = read_table(["# made by hand", "Name;RA", "A;1,5"], "cat.csv")
    >>> table.header, table.delimiter, list(table.rows)
    (['Name', 'RA'], ';', [(3, {'Name': 'A', 'RA': '1,5'})])
    """
    numbered = _Lines(lines)
    first = next((line for line in numbered if line.strip()), None)
    if first is None:
        raise ValueError(f"{source}: empty, expected a CSV header line")
    # The delimiter the header uses most; column names rarely hold one of the others.
    delimiter = max(DELIMITERS, key=first.count)
    header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
    reader = csv.reader(numbered, delimiter=delimiter, skipinitialspace=True)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for cells in reader:
            if cells:  # a blank line
                yield numbered.number, dict(zip(header, cells, strict=False))

    return Table(header, delimiter, rows())


def _listing(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return f"{', '.join(quoted[:-1])} and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def find_column(
    header: Sequence[str], names: Sequence[str], *, label: str, flag: str, explicit: bool
) -> str | None:
    """The column of ``header`` called one of ``names`` in any case, or None.

    An ``explicit`` name (given with ``flag``) matches itself exactly first. More
    than one matching column is a ValueError naming them, since guessing which one
    is meant would put the wrong numbers in the pointings.

    >>> find_column(["NAME", "Z", "MSZ"], ["z", "redshift"], label="z", flag="--z-column",
    ...             explicit=False)
    'Z'
    >>> find_column(["z", "REDSHIFT"], ["z", "redshift"], label="z", flag="--z-column",
    ...             explicit=False)
    Traceback (most recent call last):
    ...
    ValueError: columns 'z' and 'REDSHIFT' are both z; choose one with --z-column
    """
    if explicit and names[0] in header:
        return names[0]
    wanted = {n.casefold() for n in names}
    found = [h for h in header if h.casefold() in wanted]
    if len(found) > 1:
        raise ValueError(f"columns {_listing(found)} are both {label}; choose one with {flag}")
    return found[0] if found else None


#: Examples of the sexagesimal forms accepted, for the messages.
_SEXAGESIMAL = {
    True: "sexagesimal hours (15:21:15.8, 15h21m15.8s)",
    False: "sexagesimal degrees (+30:37:40, 30d37m40s)",
}


def parse_angle(text: str, *, hours: bool, decimal_comma: bool = False) -> float:
    """Degrees from decimal degrees or a sexagesimal angle (hours for RA, degrees for Dec).

    >>> parse_angle("230.3158", hours=True), parse_angle("15h21m15.8s", hours=True)
    (230.3158, 230.3158333333333)
    >>> parse_angle("+30:37:40", hours=False)
    30.62777777777778
    """
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        pass
    # Imported here: astropy.coordinates takes a while to import and most catalogues
    # give degrees.
    import astropy.units as u
    from astropy.coordinates import Angle, RangeError
    from astropy.utils.exceptions import AstropyWarning

    try:
        with warnings.catch_warnings():
            # astropy only warns about 60 seconds (and adds a minute); refuse it like 60 minutes.
            warnings.simplefilter("error", AstropyWarning)
            return float(Angle(text, unit=u.hourangle if hours else u.deg).degree)
    except (RangeError, AstropyWarning) as exc:
        raise ValueError(f"{text!r} is out of range ({exc})") from None
    except ValueError:
        raise ValueError(
            f"{text!r} is not an angle: give decimal degrees or {_SEXAGESIMAL[hours]}"
        ) from None


def parse_number(text: str, *, decimal_comma: bool = False) -> float:
    """A float, read with a decimal comma in a European CSV."""
    return float(text.replace(",", ".") if decimal_comma else text)
