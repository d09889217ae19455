"""What every SQL-backed source provides, and the checks shared by all of them.

A source is described once per load (:class:`Description`: its columns, their kinds and its
row count), validated against the dataset's config (:func:`validate`, which logs for the
operator and never raises), and then asked for per-cell aggregates and batches of complete
rows. Drivers (duckdb, psycopg, pyarrow) are imported lazily by the engine modules, so a
party with CSV datasets only needs none of them.

Errors: a driver exception during a job is logged (its type, never its message, which may
quote data) and becomes :class:`SourceFailure`, which the store turns into the dataset's
fixed public "unavailable" text.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mpc.config import DatasetConfig
from mpc.protocol.frame import Aggregates, Request

log = logging.getLogger(__name__)

NUMERIC, TEXT, OTHER = "numeric", "text", "other"
_MOD = 1 << 64


class SourceFailure(Exception):
    """The engine failed during a job (details logged, without values)."""


@dataclass(frozen=True)
class Description:
    """A relation's columns (name -> NUMERIC, TEXT or OTHER, in order) and row count."""

    kinds: dict[str, str]
    rows: int


@dataclass(frozen=True)
class Validated:
    """The public status of one load of a SQL source."""

    available: bool
    header: tuple[str, ...] = ()
    rows: int = 0
    numeric: frozenset[str] = frozenset()
    text: frozenset[str] = frozenset()


def validate(config: DatasetConfig, described: Description) -> Validated:
    """Check a description against the config; log problems (names and types only)."""
    if described.rows > config.max_rows:
        log.warning(
            "dataset %r: %d rows, over max_rows=%d; the dataset is unavailable",
            config.name,
            described.rows,
            config.max_rows,
        )
        return Validated(False)
    numeric: set[str] = set()
    text: set[str] = set()
    declared = {c.name: c for c in config.columns}
    for name, kind in described.kinds.items():
        column = declared.get(name)
        if column is not None and column.categories:
            if kind == TEXT:
                text.add(name)
            else:
                log.warning(
                    "dataset %r, column %r: declared categorical but its type is %s, not "
                    "text; the column is unavailable",
                    config.name,
                    name,
                    kind,
                )
        elif kind == NUMERIC:
            numeric.add(name)
        elif column is not None:
            log.warning(
                "dataset %r, column %r: declared numeric but its type is %s; the column is "
                "unavailable",
                config.name,
                name,
                kind,
            )
    for name in declared:
        if name not in described.kinds:
            log.warning("dataset %r: declared column %r does not exist", config.name, name)
    log.info(
        "dataset %r (%s): %d rows, %d of %d columns available",
        config.name,
        config.engine,
        described.rows,
        len(numeric) + len(text),
        len(described.kinds),
    )
    return Validated(
        True, tuple(described.kinds), described.rows, frozenset(numeric), frozenset(text)
    )


def to_aggregates(request: Request, rows: Sequence[Sequence[Any]]) -> Aggregates:
    """``(cell, count, sum_0, ...)`` rows (exact integer sums) to reduced aggregates."""
    cells = request.frame.cells
    counts = np.zeros(cells, dtype=np.int64)
    sums = np.zeros((len(request.terms), cells), dtype=np.uint64)
    if rows:
        table = np.array(rows, dtype=object).reshape(len(rows), 2 + len(request.terms))
        index = table[:, 0].astype(np.int64)
        counts[index] = table[:, 1].astype(np.int64)
        for t in range(len(request.terms)):  # one pass per term over the non-empty cells
            reduced = [int(v) % _MOD for v in table[:, 2 + t]]
            sums[t, index] = np.array(reduced, dtype=np.uint64)
    return Aggregates(counts, sums)


def to_columns(
    names: Sequence[str], arrays: Sequence[npt.NDArray[Any]], text: frozenset[str]
) -> dict[str, npt.NDArray[Any]]:
    """Arrays of one batch: float64 for numeric columns, ``str`` objects for text ones."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name, array in zip(names, arrays, strict=True):
        if name in text:
            out[name] = np.asarray(array, dtype=object)
        else:
            out[name] = np.ascontiguousarray(np.asarray(array, dtype=np.float64))
    return out


class SqlSource(ABC):
    """One SQL-backed dataset (a connection or a way to make one)."""

    def __init__(self, config: DatasetConfig) -> None:
        self.config = config

    @abstractmethod
    def describe(self) -> Description:
        """The relation's columns and row count (raises on any failure)."""

    @abstractmethod
    def aggregate(self, request: Request, text: frozenset[str]) -> Aggregates:
        """Per-cell aggregates in one statement (raises :class:`SourceFailure`)."""

    @abstractmethod
    def batches(
        self, columns: list[str], text: frozenset[str], batch_rows: int
    ) -> Iterator[dict[str, npt.NDArray[Any]]]:
        """Complete rows of ``columns``, streamed (raises :class:`SourceFailure`)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def failed(self, what: str, exc: BaseException) -> SourceFailure:
        log.error(
            "dataset %r (%s): %s failed: %s (message withheld: it may quote data)",
            self.config.name,
            self.config.engine,
            what,
            type(exc).__name__,
        )
        return SourceFailure(what)


def open_source(config: DatasetConfig) -> SqlSource:
    """The engine for a parquet, duckdb or postgres dataset (imports its driver)."""
    if config.engine == "postgres":
        from mpc.party.sources.postgres import PostgresSource

        return PostgresSource(config)
    from mpc.party.sources.duckdb import DuckDbSource

    return DuckDbSource(config)


__all__ = [
    "NUMERIC",
    "OTHER",
    "TEXT",
    "Description",
    "SourceFailure",
    "SqlSource",
    "Validated",
    "open_source",
    "to_aggregates",
    "to_columns",
    "validate",
]
