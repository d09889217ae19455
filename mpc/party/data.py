"""Local data connectors: CSV tables and .npy vectors, validated when loaded and cached.

A dataset is validated when it is loaded: at start-up and again whenever its file changes (a
new ``(mtime_ns, size)`` stamp, checked on every access), never per job. Loading never raises
for a data problem. It records a *public status* instead (the dataset is available or not;
each CSV column is available or not) and logs the details for the operator: file, line,
column and what is wrong, never a cell's value.

What a job sees depends on the data only through that public status: :meth:`DataStore.table`
and :meth:`DataStore.vector` raise :class:`InputDataError` with fixed texts naming only the
dataset and column, never a path, line number or value.

Parsing uses numpy's C reader on all columns at once. Only when that fails do we parse the
columns one by one to find the bad ones, and only then rescan the file with the ``csv``
module to find the line to log.

Empty cells follow the dataset's ``missing`` policy. ``"error"`` (the default): an empty cell
makes its column unavailable, like any bad cell. ``"drop"``: a column whose only problems are
empty cells stays available (empty cells are loaded as NaN and recorded in a per-column mask),
and :meth:`DataStore.table` returns only the rows complete in the columns a job asked for, so
a job's row count is the number of those rows. NaN, infinity and non-numbers still make a
column unavailable under either policy.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mpc.config import DatasetConfig
from mpc.errors import InputDataError
from mpc.protocol.frame import Aggregates, Request, aggregate_arrays
from mpc.ring import FloatVector

log = logging.getLogger(__name__)

Stamp = tuple[int, int]  # (st_mtime_ns, st_size) of a dataset file

_TABLE_CACHE_LIMIT = 1024  # distinct (dataset, columns) requests kept; then the cache restarts


@dataclass(frozen=True)
class Table:
    """Validated numeric columns of one dataset (only the columns a job asked for)."""

    rows: int
    columns: dict[str, FloatVector]

    def column(self, name: str) -> FloatVector:
        return self.columns[name]


@dataclass(frozen=True)
class Dataset:
    """One load of a dataset file: its public status and, when available, its validated data.

    ``columns`` holds the available columns only (read-only, contiguous float64 arrays; a
    vector dataset has the single column ``"value"``). ``rows`` is the number of CSV data
    rows (the length, for a vector). Built completely before it is published to readers.
    """

    name: str
    stamp: Stamp | None
    available: bool
    header: tuple[str, ...] = ()
    rows: int = 0
    columns: Mapping[str, FloatVector] = field(default_factory=dict)
    #: Policy "drop" only: for each available column with empty cells, which rows are empty
    #: (those rows hold NaN in ``columns``). Columns without empty cells are not listed.
    missing: Mapping[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def column_available(self, column: str) -> bool:
        return self.available and column in self.columns


# --- loading (never raises for data problems; logs for the operator) -----------------------


def _stamp(path: Path) -> Stamp | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


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
    raw: bytes, rows: int, width: int, allow_missing: bool = False
) -> tuple[dict[int, FloatVector], dict[int, npt.NDArray[np.bool_]]]:
    """Every column numpy can parse, by index: all at once, else one by one.

    With ``allow_missing`` (policy "drop") a column numpy's C reader refuses is parsed again
    cell by cell (slower), empty cells as NaN; the second result maps such columns that do
    have empty cells to their empty-cell masks.
    """
    try:
        data = _loadtxt(raw, None)
    except (ValueError, IndexError):
        pass  # numpy's message quotes the offending text: never pass it on
    else:
        if data.shape == (rows, width):
            by_column = np.ascontiguousarray(data.T)  # one copy; each row is then contiguous
            by_column.flags.writeable = False
            return {i: by_column[i] for i in range(width)}, {}
    parsed: dict[int, FloatVector] = {}
    gaps: dict[int, npt.NDArray[np.bool_]] = {}
    for index in range(width):
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


def _unavailable(config: DatasetConfig, stamp: Stamp | None, why: str, *args: object) -> Dataset:
    log.warning(
        "dataset %r (%s)" + why + "; the dataset is unavailable", config.name, config.path, *args
    )
    return Dataset(config.name, stamp, available=False)


def _utf8_position(raw: bytes, offset: int) -> tuple[int, str]:
    """Line number and a ', column ...' suffix for a byte offset (for the operator log)."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    if line == 1 or b'"' in raw[line_start:offset]:
        return line, ""
    header = _split_header(raw[: raw.find(b"\n")].decode("utf-8", errors="replace"))
    cell = raw.count(b",", line_start, offset)
    return line, f", column {header[cell]!r}" if cell < len(header) else ""


def _load_table(config: DatasetConfig, stamp: Stamp, raw: bytes) -> Dataset:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _utf8_position(raw, exc.start)
        return _unavailable(config, stamp, ", line %d%s: not UTF-8 text", line, column)
    text = text.removeprefix("\ufeff")
    end = text.find("\n")
    header = _split_header(text if end < 0 else text[:end])
    if not header:
        return _unavailable(config, stamp, ", line 1: no header line with column names")
    twice = _duplicate(header)
    if twice is not None:
        return _unavailable(config, stamp, ", line 1: the header names column %r twice", twice)
    width = len(header)
    lines, bad_width = _check_row_widths(raw, text, width)
    if bad_width is not None:
        return _unavailable(
            config, stamp, ", line %d: has %d cells, the header has %d", *bad_width, width
        )
    rows = int(lines.size)
    if rows > config.max_rows:
        return _unavailable(
            config,
            stamp,
            ", line %d: data row %d is over max_rows=%d",
            int(lines[config.max_rows]),
            config.max_rows + 1,
            config.max_rows,
        )
    if rows == 0:
        empty = _frozen(np.zeros(0))
        log.info("dataset %r (%s): header only, 0 data rows", config.name, config.path)
        return Dataset(config.name, stamp, True, tuple(header), 0, dict.fromkeys(header, empty))

    allow_missing = config.missing == "drop"
    parsed, gaps = _parse_columns(raw, rows, width, allow_missing)
    problems: dict[int, tuple[int, str]] = {}
    for index, values in list(parsed.items()):
        finite = np.isfinite(values)
        if index in gaps:
            finite |= gaps[index]  # empty cells (NaN) are allowed by policy "drop"
        if not finite.all():
            problems[index] = (int(lines[int(np.argmin(finite))]), "NaN or infinity is not allowed")
            del parsed[index]
    unparsed = [i for i in range(width) if i not in parsed and i not in problems]
    if unparsed:
        problems.update(_locate_bad_cells(text, header, unparsed, allow_missing))
    for index in sorted(set(range(width)) - set(parsed)):
        if index in problems:
            line, problem = problems[index]
            log.warning(
                "dataset %r (%s), line %d, column %r: %s; the column is unavailable",
                config.name,
                config.path,
                line,
                header[index],
                problem,
            )
        else:
            log.warning(
                "dataset %r (%s), column %r: cannot be parsed as numbers (line not located); "
                "the column is unavailable",
                config.name,
                config.path,
                header[index],
            )
    log.info(
        "dataset %r (%s): loaded %d rows, %d of %d columns available",
        config.name,
        config.path,
        rows,
        len(parsed),
        width,
    )
    columns = {header[i]: parsed[i] for i in sorted(parsed)}
    missing = {header[i]: gaps[i] for i in sorted(gaps) if i in parsed}
    for name, mask in missing.items():
        log.info(
            "dataset %r (%s), column %r: %d empty cells; jobs using it drop those rows",
            config.name,
            config.path,
            name,
            int(mask.sum()),
        )
    return Dataset(config.name, stamp, True, tuple(header), rows, columns, missing)


def _load_vector(config: DatasetConfig, stamp: Stamp, raw: bytes) -> Dataset:
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return _unavailable(config, stamp, ": not a .npy array")
    if not isinstance(loaded, np.ndarray):
        return _unavailable(config, stamp, ": not a single .npy array")
    if loaded.ndim != 1 or loaded.dtype.kind not in "fiu":
        return _unavailable(config, stamp, ": expected a one-dimensional numeric array")
    if loaded.size == 0:
        return _unavailable(config, stamp, ": the vector is empty")
    vector = _frozen(loaded)
    finite = np.isfinite(vector)
    if not finite.all():
        index = int(np.argmin(finite))
        return _unavailable(config, stamp, ", element %d: NaN or infinity is not allowed", index)
    log.info("dataset %r (%s): loaded a vector of %d", config.name, config.path, vector.size)
    return Dataset(config.name, stamp, True, ("value",), int(vector.size), {"value": vector})


def load_dataset(config: DatasetConfig) -> Dataset:
    """Load and validate one dataset. Never raises for data problems: logs and marks it."""
    stamp = _stamp(config.path)  # before reading: a change while we read means a reload later
    if stamp is None:
        return _unavailable(config, None, ": cannot read the file (missing or no permission)")
    try:
        raw = config.path.read_bytes()
    except OSError as exc:
        return _unavailable(config, stamp, ": cannot read the file: %s", exc.strerror)
    try:
        if config.kind == "vector":
            return _load_vector(config, stamp, raw)
        return _load_table(config, stamp, raw)
    except Exception as exc:
        # A last resort: loading must not fail a job. Only the type: messages may quote data.
        return _unavailable(config, stamp, ": unexpected %s while loading", type(exc).__name__)


def _complete_rows(loaded: Dataset, columns: list[str]) -> Table:
    """The given columns, only the rows with no empty cell in any of them (policy "drop";
    under "error" no available column has empty cells, so every row)."""
    gaps = [loaded.missing[c] for c in dict.fromkeys(columns) if c in loaded.missing]
    if not gaps:
        return Table(loaded.rows, {c: loaded.columns[c] for c in columns})
    keep = ~np.logical_or.reduce(gaps)
    return Table(int(keep.sum()), {c: _frozen(loaded.columns[c][keep]) for c in columns})


# --- the store -------------------------------------------------------------------------


class DataStore:
    """Datasets validated at load time, reloaded whenever their file changes."""

    def __init__(self, datasets: tuple[DatasetConfig, ...]) -> None:
        self._datasets = {d.name: d for d in datasets}
        self._lock = threading.Lock()  # guards _loaded and _tables
        self._loaded: dict[str, Dataset] = {}
        self._tables: dict[tuple[str, tuple[str, ...]], tuple[Dataset, Table]] = {}
        self._loading = {name: threading.Lock() for name in self._datasets}  # one loader each
        self.refresh()

    def config(self, name: str) -> DatasetConfig:
        try:
            return self._datasets[name]
        except KeyError:
            raise InputDataError(
                f"unknown dataset {name!r}; this party has {sorted(self._datasets)}"
            ) from None

    def refresh(self) -> None:
        """(Re)load every dataset whose file changed since it was last loaded."""
        for name in self._datasets:
            self._current(name)

    def _current(self, name: str) -> Dataset:
        config = self.config(name)
        with self._lock:
            loaded = self._loaded.get(name)
        if loaded is not None and loaded.stamp == _stamp(config.path):
            return loaded
        with self._loading[name]:  # concurrent readers wait for one load, not load twice
            with self._lock:
                loaded = self._loaded.get(name)
            if loaded is not None and loaded.stamp == _stamp(config.path):
                return loaded
            fresh = load_dataset(config)
            with self._lock:
                self._loaded[name] = fresh
                for key in [k for k in self._tables if k[0] == name]:
                    del self._tables[key]
            return fresh

    def dataset(self, name: str) -> Dataset:
        """The current load of a dataset (its public status and validated data)."""
        return self._current(name)

    def available(self, name: str) -> bool:
        return self._current(name).available

    def column_available(self, name: str, column: str) -> bool:
        return self._current(name).column_available(column)

    def columns_of(self, name: str) -> list[str]:
        """The header's column names; the declared ones while the dataset is unavailable."""
        loaded = self._current(name)
        if loaded.available:
            return list(loaded.header)
        return [c.name for c in self._datasets[name].columns]

    def table(self, name: str, columns: list[str]) -> Table:
        config = self.config(name)
        if config.kind != "table":
            raise InputDataError(f"dataset {name!r} is a vector dataset; use vector_sum")
        loaded = self._current(name)
        if not loaded.available:
            raise InputDataError(f"dataset {name!r} is unavailable")
        for column in columns:
            if column not in loaded.header:
                raise InputDataError(f"dataset {name!r} has no column {column!r}")
        for column in columns:
            if column not in loaded.columns:
                raise InputDataError(f"column {column!r} of dataset {name!r} is unavailable")
        key = (name, tuple(columns))
        with self._lock:
            cached = self._tables.get(key)
            if cached is not None and cached[0] is loaded:
                return cached[1]
        table = _complete_rows(loaded, columns)
        with self._lock:
            if len(self._tables) >= _TABLE_CACHE_LIMIT:
                self._tables.clear()
            if self._loaded.get(name) is loaded:
                self._tables[key] = (loaded, table)
            return table

    def aggregate(self, request: Request) -> Aggregates:
        """Per-cell aggregates of a frame over the complete rows (numpy reference engine)."""
        table = self.table(request.frame.dataset, request.columns())
        return aggregate_arrays(request, table.columns)

    def batches(
        self, name: str, columns: list[str], batch_rows: int = 65536
    ) -> Iterator[dict[str, FloatVector]]:
        """The complete rows of ``columns``, ``batch_rows`` at a time."""
        table = self.table(name, columns)
        for start in range(0, max(table.rows, 1), batch_rows):
            yield {c: table.columns[c][start : start + batch_rows] for c in columns}

    def vector(self, name: str) -> FloatVector:
        config = self.config(name)
        if config.kind != "vector":
            raise InputDataError(f"dataset {name!r} is a table; vector_sum needs a vector dataset")
        loaded = self._current(name)
        if not loaded.available:
            raise InputDataError(f"dataset {name!r} is unavailable")
        return loaded.columns["value"]
