"""CSV parsing helpers: numpy's C reader first, the ``csv`` module only to locate problems.

Nothing here raises with a cell's text: numpy's messages quote the offending text, so they
are caught and dropped; problems are described in words that never include the cell.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from mpc.ring import FloatVector


def _frozen(values: npt.NDArray[np.float64]) -> FloatVector:
    array = np.ascontiguousarray(values, dtype=np.float64)
    array.flags.writeable = False  # shared by every job reading the cache
    return array


def _split_header(first_line: str) -> list[str]:
    cells = next(csv.reader([first_line]), [])
    return [cell.strip() for cell in cells]


def _duplicate(names: list[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _check_row_widths(
    raw: bytes, text: str, width: int
) -> tuple[npt.NDArray[np.int64], tuple[int, int] | None]:
    """Line numbers of the data rows, and the first (line, cells) whose width is wrong.

    numpy's reader would silently ignore extra cells with ``usecols``, so every row is
    checked here. Vectorised (no Python loop over rows) unless the file holds a quote
    character: quoted cells may hold commas or newlines, so the ``csv`` module judges then.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    if np.any(buf == ord('"')):
        return _csv_row_widths(text, width)
    ends = np.flatnonzero(buf == ord("\n"))
    if buf.size and buf[-1] != ord("\n"):
        ends = np.append(ends, buf.size)
    starts = np.concatenate([[0], ends[:-1] + 1])
    commas = np.flatnonzero(buf == ord(","))
    per_line = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    length = ends - starts
    carriage = (length > 0) & (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    data = length > carriage  # not blank ("" or a lone "\r")
    data[0] = False  # line 1 is the header
    lines = (np.flatnonzero(data) + 1).astype(np.int64)
    bad = np.flatnonzero(data & (per_line != width - 1))
    if bad.size:
        return lines, (int(bad[0]) + 1, int(per_line[bad[0]]) + 1)
    return lines, None


def _csv_row_widths(text: str, width: int) -> tuple[npt.NDArray[np.int64], tuple[int, int] | None]:
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    lines: list[int] = []
    start = reader.line_num + 1  # a quoted cell may span lines: name the row's first
    for row in reader:
        if row and len(row) != width:
            return np.array(lines, dtype=np.int64), (start, len(row))
        if row:
            lines.append(start)
        start = reader.line_num + 1
    return np.array(lines, dtype=np.int64), None


def _cell_problem(cell: str) -> str | None:
    """What is wrong with one cell, in words that never include the cell."""
    cell = cell.strip()
    if not cell:
        return "missing value"
    if not cell.isascii() or "_" in cell:  # Python's float() accepts these, numpy does not
        return "not a number"
    try:
        value = float(cell)
    except ValueError:
        return "not a number"
    if not math.isfinite(value):
        return "NaN or infinity is not allowed"
    return None


def _locate_bad_cells(
    text: str, header: list[str], indices: list[int], allow_missing: bool = False
) -> dict[int, tuple[int, str]]:
    """The first bad cell's (line, problem) in each of the given columns (slow path).

    With ``allow_missing`` (policy "drop") empty cells are not problems.
    """
    found: dict[int, tuple[int, str]] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    start = reader.line_num + 1
    for row in reader:
        if len(row) == len(header):
            for index in indices:
                if index not in found:
                    problem = _cell_problem(row[index])
                    if problem == "missing value" and allow_missing:
                        continue
                    if problem is not None:
                        found[index] = (start, problem)
            if len(found) == len(indices):
                break
        start = reader.line_num + 1
    return found


def _empty_as_nan(cell: str) -> float:
    """Policy "drop": an empty cell is NaN (marked missing); anything else must be a finite
    number (NaN and infinity written in the file are refused, so NaN means empty)."""
    cell = cell.strip()
    if not cell:
        return math.nan
    if _cell_problem(cell) is not None:
        raise ValueError("bad cell")  # never quote the cell
    return float(cell)


def _loadtxt(
    raw: bytes, usecols: list[int] | None, converters: Callable[[str], float] | None = None
) -> npt.NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
        return np.loadtxt(
            io.BytesIO(raw),  # the bytes we validated, not the file again (it may change)
            encoding="utf-8",
            delimiter=",",
            skiprows=1,
            usecols=usecols,
            dtype=np.float64,
            ndmin=2,
            comments=None,
            quotechar='"',
            converters=converters,
        )


def _parse_columns(
    raw: bytes,
    rows: int,
    width: int,
    allow_missing: bool = False,
    text: frozenset[int] = frozenset(),
) -> tuple[dict[int, FloatVector], dict[int, npt.NDArray[np.bool_]]]:
    """Every numeric column numpy can parse, by index: all at once, else one by one.

    With ``allow_missing`` (policy "drop") a column numpy's C reader refuses is parsed again
    cell by cell (slower), empty cells as NaN; the second result maps such columns that do
    have empty cells to their empty-cell masks. Columns in ``text`` (categorical) are left
    to :func:`_parse_text`.
    """
    numeric = [i for i in range(width) if i not in text]
    try:
        data = _loadtxt(raw, numeric if text else None)
    except (ValueError, IndexError):
        pass  # numpy's message quotes the offending text: never pass it on
    else:
        if data.shape == (rows, len(numeric)):
            by_column = np.ascontiguousarray(data.T)  # one copy; each row is then contiguous
            by_column.flags.writeable = False
            return {i: by_column[n] for n, i in enumerate(numeric)}, {}
    parsed: dict[int, FloatVector] = {}
    gaps: dict[int, npt.NDArray[np.bool_]] = {}
    for index in numeric:
        try:
            column = _loadtxt(raw, [index])
        except (ValueError, IndexError):
            if not allow_missing:
                continue
            try:
                column = _loadtxt(raw, [index], _empty_as_nan)
            except (ValueError, IndexError):
                continue
        if column.shape == (rows, 1):
            parsed[index] = _frozen(column[:, 0])
            empty = np.isnan(parsed[index]) if allow_missing else None
            if empty is not None and empty.any():
                empty.flags.writeable = False
                gaps[index] = empty
    return parsed, gaps


def _utf8_position(raw: bytes, offset: int) -> tuple[int, str]:
    """Line number and a ', column ...' suffix for a byte offset (for the operator log)."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    if line == 1 or b'"' in raw[line_start:offset]:
        return line, ""
    header = _split_header(raw[: raw.find(b"\n")].decode("utf-8", errors="replace"))
    cell = raw.count(b",", line_start, offset)
    return line, f", column {header[cell]!r}" if cell < len(header) else ""


def _parse_text(raw: bytes, index: int, rows: int) -> tuple[npt.NDArray[np.str_] | None, int]:
    """A categorical column's cells, stripped (numpy ``str``), and how many are empty; None
    when numpy cannot read the column."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cells = np.loadtxt(
                io.BytesIO(raw),
                encoding="utf-8",
                delimiter=",",
                skiprows=1,
                usecols=[index],
                dtype=str,
                ndmin=1,
                comments=None,
                quotechar='"',
            )
    except (ValueError, IndexError):
        return None, 0
    if cells.shape != (rows,):
        return None, 0
    stripped = np.char.strip(cells)
    stripped.flags.writeable = False
    return stripped, int(np.count_nonzero(stripped == ""))
