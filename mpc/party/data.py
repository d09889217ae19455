"""Local data connectors: CSV tables and .npy vectors, validated and cached.

Values never appear in errors: a bad cell is reported by file, line and column only.
Parsing uses numpy's C reader; only when it fails do we rescan the file with the ``csv``
module to say exactly which cell is bad.
"""

from __future__ import annotations

import csv
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc.config import DatasetConfig
from mpc.errors import InputDataError
from mpc.ring import FloatVector


@dataclass(frozen=True)
class Table:
    """Validated numeric columns of one dataset (only the columns a job asked for)."""

    rows: int
    columns: dict[str, FloatVector]

    def column(self, name: str) -> FloatVector:
        return self.columns[name]


def read_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except OSError as exc:
        raise InputDataError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path} is not UTF-8 text") from exc
    if not header:
        raise InputDataError(f"{path} is empty: expected a header line with column names")
    names = [name.strip() for name in header]
    if len(set(names)) != len(names):
        raise InputDataError(f"{path}: the header names a column twice")
    return names


def _locate_bad_cell(path: Path, header: list[str], wanted: list[int]) -> InputDataError:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                return InputDataError(
                    f"{path}, line {line_no}: has {len(row)} cells, the header has {len(header)}"
                )
            for index in wanted:
                cell = row[index].strip()
                where = f"{path}, line {line_no}, column {header[index]!r}"
                if not cell:
                    return InputDataError(f"{where}: missing value")
                try:
                    value = float(cell)
                except ValueError:
                    return InputDataError(f"{where}: not a number")
                if not math.isfinite(value):
                    return InputDataError(f"{where}: NaN or infinity is not allowed")
    return InputDataError(f"{path}: cannot be parsed as numeric CSV")


def _check_row_widths(path: Path, header: list[str], wanted: list[int]) -> None:
    """Refuse rows with extra cells, which numpy's reader silently ignores with usecols."""
    raw = np.fromfile(path, dtype=np.uint8)
    if np.any(raw == ord('"')):
        # Quoted cells may hold commas: let the csv module judge (rare, so the slow path).
        _count_rows(path, len(header))
        return
    ends = np.flatnonzero(raw == ord("\n"))
    if raw.size and raw[-1] != ord("\n"):
        ends = np.append(ends, raw.size)
    commas_before = np.concatenate([[0], np.cumsum(raw == ord(","))])
    starts = np.concatenate([[0], ends[:-1] + 1])
    per_line = commas_before[ends] - commas_before[starts]
    blank = (ends - starts) <= np.where(raw[np.maximum(ends - 1, 0)] == ord("\r"), 1, 0)
    bad = np.flatnonzero((per_line != len(header) - 1) & ~blank)
    if bad.size:
        raise _locate_bad_cell(path, header, wanted)


def _count_rows(path: Path, width: int) -> int:
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != width:
                raise InputDataError(
                    f"{path}, line {line_no}: has {len(row)} cells, the header has {width}"
                )
            rows += 1
    if rows == 0:
        raise InputDataError(f"{path}: dataset is empty (no data rows after the header)")
    return rows


def load_table(path: Path, columns: list[str]) -> Table:
    header = read_header(path)
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputDataError(f"{path}: unknown column(s) {missing}; available: {header}")
    indices = [header.index(c) for c in columns]
    if not indices:
        return Table(rows=_count_rows(path, len(header)), columns={})
    try:
        with warnings.catch_warnings():
            # "input contained no data" for header-only files: we report emptiness ourselves.
            warnings.simplefilter("ignore", UserWarning)
            data = np.loadtxt(
                path,
                delimiter=",",
                skiprows=1,
                usecols=indices,
                dtype=np.float64,
                ndmin=2,
                comments=None,
                quotechar='"',
                encoding="utf-8",
            )
    except (ValueError, IndexError):
        # numpy's message quotes the offending text; ours names only the cell.
        raise _locate_bad_cell(path, header, indices) from None
    if data.shape[0] == 0:
        raise InputDataError(f"{path}: dataset is empty (no data rows after the header)")
    _check_row_widths(path, header, indices)
    if not np.all(np.isfinite(data)):
        raise _locate_bad_cell(path, header, indices)
    return Table(
        rows=int(data.shape[0]),
        columns={name: np.ascontiguousarray(data[:, i]) for i, name in enumerate(columns)},
    )


def load_vector(path: Path) -> FloatVector:
    try:
        vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read vector dataset {path} as a .npy array") from exc
    if vector.ndim != 1 or vector.dtype.kind not in "fiu":
        raise InputDataError(f"{path}: expected a one-dimensional numeric array")
    vector = np.asarray(vector, dtype=np.float64)
    if vector.size == 0:
        raise InputDataError(f"{path}: vector dataset is empty")
    if not np.all(np.isfinite(vector)):
        index = int(np.argmin(np.isfinite(vector)))
        raise InputDataError(f"{path}, element {index}: NaN or infinity is not allowed")
    return vector


class DataStore:
    """Loads datasets on demand and caches them until the file changes."""

    def __init__(self, datasets: tuple[DatasetConfig, ...]) -> None:
        self._datasets = {d.name: d for d in datasets}
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, int], object]] = {}
        self._lock = threading.Lock()

    def config(self, name: str) -> DatasetConfig:
        try:
            return self._datasets[name]
        except KeyError:
            raise InputDataError(
                f"unknown dataset {name!r}; this party has {sorted(self._datasets)}"
            ) from None

    def columns_of(self, name: str) -> list[str]:
        config = self.config(name)
        return ["value"] if config.kind == "vector" else read_header(config.path)

    def _stamp(self, path: Path) -> tuple[int, int]:
        try:
            stat = path.stat()
        except OSError as exc:
            raise InputDataError(f"cannot read {path}: {exc.strerror}") from exc
        return stat.st_mtime_ns, stat.st_size

    def table(self, name: str, columns: list[str]) -> Table:
        config = self.config(name)
        if config.kind != "table":
            raise InputDataError(f"dataset {name!r} is a vector dataset; use vector_sum")
        key = (name, tuple(columns))
        stamp = self._stamp(config.path)
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] == stamp and isinstance(cached[1], Table):
                return cached[1]
        table = load_table(config.path, columns)
        with self._lock:
            self._cache[key] = (stamp, table)
        return table

    def vector(self, name: str) -> FloatVector:
        config = self.config(name)
        if config.kind != "vector":
            raise InputDataError(f"dataset {name!r} is a table; vector_sum needs a vector dataset")
        key = (name, ("value",))
        stamp = self._stamp(config.path)
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] == stamp and isinstance(cached[1], np.ndarray):
                return cached[1]
        vector = load_vector(config.path)
        with self._lock:
            self._cache[key] = (stamp, vector)
        return vector
