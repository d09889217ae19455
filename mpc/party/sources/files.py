"""File datasets: CSV tables and .npy vectors, validated when loaded.

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

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from mpc.config import DatasetConfig
from mpc.party.sources.csvparse import (
    _check_row_widths,
    _duplicate,
    _frozen,
    _locate_bad_cells,
    _parse_columns,
    _parse_text,
    _split_header,
    _utf8_position,
)
from mpc.ring import FloatVector

log = logging.getLogger("mpc.party.data")

Stamp = tuple[int, int]  # (st_mtime_ns, st_size) of a dataset file


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


def _unavailable(config: DatasetConfig, stamp: Stamp | None, why: str, *args: object) -> Dataset:
    log.warning(
        "dataset %r (%s)" + why + "; the dataset is unavailable", config.name, config.path, *args
    )
    return Dataset(config.name, stamp, available=False)


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
    declared = {c.name: c.categories for c in config.columns if c.categories}
    text_index = frozenset(i for i, name in enumerate(header) if name in declared)
    parsed, gaps = _parse_columns(raw, rows, width, allow_missing, text_index)
    texts = _text_columns(config, raw, rows, header, text_index, gaps)
    problems: dict[int, tuple[int, str]] = {}
    for index, values in list(parsed.items()):
        finite = np.isfinite(values)
        if index in gaps:
            finite |= gaps[index]  # empty cells (NaN) are allowed by policy "drop"
        if not finite.all():
            problems[index] = (int(lines[int(np.argmin(finite))]), "NaN or infinity is not allowed")
            del parsed[index]
    unparsed = [
        i for i in range(width) if i not in parsed and i not in problems and i not in text_index
    ]
    if unparsed:
        problems.update(_locate_bad_cells(text, header, unparsed, allow_missing))
    for index in sorted(set(range(width)) - set(parsed) - text_index):
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
        len(parsed) + len(texts),
        width,
    )
    columns = {header[i]: parsed[i] for i in sorted(parsed)}
    columns.update({header[i]: cast(FloatVector, texts[i]) for i in sorted(texts)})
    missing = {header[i]: gaps[i] for i in sorted(gaps) if i in parsed or i in texts}
    for name, mask in missing.items():
        log.info(
            "dataset %r (%s), column %r: %d empty cells; jobs using it drop those rows",
            config.name,
            config.path,
            name,
            int(mask.sum()),
        )
    return Dataset(config.name, stamp, True, tuple(header), rows, columns, missing)


def _text_columns(
    config: DatasetConfig,
    raw: bytes,
    rows: int,
    header: list[str],
    indices: frozenset[int],
    gaps: dict[int, npt.NDArray[np.bool_]],
) -> dict[int, npt.NDArray[np.str_]]:
    """Categorical columns (declared categories) read as text; empty cells follow the
    ``missing`` policy (their masks go into ``gaps``). A value outside the declared
    categories is in no category: only how many there are is logged, never a value."""
    out: dict[int, npt.NDArray[np.str_]] = {}
    for index in sorted(indices):
        name = header[index]
        cells, empty = _parse_text(raw, index, rows)
        if cells is None:
            log.warning(
                "dataset %r (%s), column %r: cannot be read as text; the column is unavailable",
                config.name,
                config.path,
                name,
            )
            continue
        if empty and config.missing != "drop":
            log.warning(
                "dataset %r (%s), column %r: %d empty cells (missing = 'error'); the column "
                "is unavailable",
                config.name,
                config.path,
                name,
                empty,
            )
            continue
        if empty:
            mask = cells == ""
            mask.flags.writeable = False
            gaps[index] = mask
        column = config.column(name)
        categories = np.asarray(column.categories if column is not None else (), dtype=str)
        outside = int(np.count_nonzero(~np.isin(cells, categories) & (cells != "")))
        if outside:
            log.info(
                "dataset %r (%s), column %r: %d values outside the declared categories (in "
                "no category)",
                config.name,
                config.path,
                name,
                outside,
            )
        out[index] = cells
    return out


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
    assert config.path is not None  # CSV and .npy datasets always have a file
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
    return Table(int(keep.sum()), {c: _kept(loaded.columns[c], keep) for c in columns})


def _kept(values: FloatVector, keep: npt.NDArray[np.bool_]) -> FloatVector:
    if values.dtype.kind != "f":  # a categorical column's text
        kept = values[keep]
        kept.flags.writeable = False
        return kept
    return _frozen(values[keep])
