"""Frames and per-cell aggregates: the one local computation every statistic reduces to.

A *frame* is a dataset's rows after a public ``where`` filter, split into *cells* by public
group keys (categorical columns with declared categories, or numeric columns cut at declared
bin edges). Every statistic asks a source for a handful of per-cell aggregates over a frame:
a row count and sums of *terms*, where a term is a clamped column (optionally centred) or the
product of two, encoded in fixed point and clamped to an integer bound. The bound makes DP
sensitivities exact whatever the rounding; the clamping makes every row computation saturate
instead of failing.

Sources compute the same aggregates in their own engine: numpy over loaded columns
(:func:`aggregate_arrays`, the reference) or SQL pushed down into DuckDB or PostgreSQL
(``mpc.party.sources``). They must agree bit for bit; the encoding is spelled out here so
they can:

* a factor is ``v = min(max(x, lo), hi) - c``, with ``c = (lo + hi) / 2`` when the term is
  centred, else ``c = 0`` (float64);
* a term is the factor, or the product ``v1 * v2`` of two factors (float64);
* its encoding is ``round_half_even(term * 2^frac_bits)`` clamped to ``[-bound, bound]``
  (NaN as 0), a signed 64-bit integer;
* a cell's sum is the exact integer sum of its rows' encodings, reduced mod 2^64.

Rows with a missing value (NULL, NaN, an empty CSV cell) in any column the request reads --
terms, filter or keys -- are dropped first. A row whose key value is not among the declared
categories (or, never, outside the bins: values are clamped into the end bins, as
``numpy.histogram`` with the edges as range) belongs to no cell and is dropped too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from mpc.ring import FloatVector, encode_saturating

#: Largest number of cells of a frame (the product of its keys' sizes).
MAX_CELLS = 1 << 20


class Op(StrEnum):
    AND = "and"
    OR = "or"
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="
    IN = "in"


COMPARISONS = (Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE)


@dataclass(frozen=True)
class Condition:
    """A public row filter: a comparison of a numeric column with a constant, membership of a
    categorical column in a set of its declared categories, or an and/or of conditions."""

    op: Op
    column: str = ""
    value: float = 0.0  # comparisons
    categories: tuple[str, ...] = ()  # op "in"
    children: tuple[Condition, ...] = ()  # op "and" / "or"

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", Op(self.op))
        object.__setattr__(self, "value", float(self.value))

    def columns(self) -> list[str]:
        """Every column the condition reads, in first-use order."""
        if self.op in (Op.AND, Op.OR):
            return list(dict.fromkeys(c for child in self.children for c in child.columns()))
        return [self.column]

    def to_json(self) -> dict[str, object]:
        if self.op in (Op.AND, Op.OR):
            return {"op": self.op.value, "children": [c.to_json() for c in self.children]}
        if self.op is Op.IN:
            return {"op": "in", "column": self.column, "categories": list(self.categories)}
        return {"op": self.op.value, "column": self.column, "value": self.value}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Condition:
        op = Op(str(data["op"]))
        if op in (Op.AND, Op.OR):
            children = data.get("children", [])
            assert isinstance(children, list)
            return cls(op, children=tuple(cls.from_json(c) for c in children))
        if op is Op.IN:
            categories = data.get("categories", [])
            assert isinstance(categories, list)
            return cls(op, str(data["column"]), categories=tuple(str(c) for c in categories))
        value = data["value"]
        assert isinstance(value, (int, float))
        return cls(op, str(data["column"]), value=float(value))


@dataclass(frozen=True)
class GroupKey:
    """A public grouping key: a categorical column with its categories, or a numeric column
    cut at bin edges (bin i is ``[e_i, e_{i+1})``, the last closed; values outside the edges
    are clamped into the end bins)."""

    column: str
    categories: tuple[str, ...] = ()
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", tuple(float(e) for e in self.edges))

    @property
    def size(self) -> int:
        return len(self.categories) if self.categories else max(0, len(self.edges) - 1)

    def labels(self) -> list[str]:
        if self.categories:
            return list(self.categories)
        e = self.edges
        return [
            f"[{e[i]:g}, {e[i + 1]:g}{']' if i == len(e) - 2 else ')'}" for i in range(self.size)
        ]

    def to_json(self) -> dict[str, object]:
        if self.categories:
            return {"column": self.column, "categories": list(self.categories)}
        return {"column": self.column, "edges": list(self.edges)}


@dataclass(frozen=True)
class Frame:
    """Rows of ``dataset`` matching ``where``, split into cells by ``keys`` (row-major: the
    first key varies slowest). No keys: one cell."""

    dataset: str
    where: Condition | None = None
    keys: tuple[GroupKey, ...] = ()

    @property
    def cells(self) -> int:
        return math.prod(k.size for k in self.keys)

    def columns(self) -> list[str]:
        """Columns the frame itself reads (filter and keys)."""
        used = self.where.columns() if self.where is not None else []
        return list(dict.fromkeys([*used, *(k.column for k in self.keys)]))

    def cell_labels(self) -> list[tuple[str, ...]]:
        """One tuple of key labels per cell, in cell order."""
        out: list[tuple[str, ...]] = [()]
        for key in self.keys:
            out = [(*prefix, label) for prefix in out for label in key.labels()]
        return out


@dataclass(frozen=True)
class Factor:
    """A column clamped to ``[lo, hi]``, centred on ``(lo + hi) / 2`` when ``centred``."""

    column: str
    lo: float
    hi: float
    centred: bool = False

    @property
    def centre(self) -> float:
        return (self.lo + self.hi) / 2 if self.centred else 0.0


@dataclass(frozen=True)
class Term:
    """One factor, or the product of two; its encoding is clamped to ``[-bound, bound]``."""

    factors: tuple[Factor, ...]
    bound: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.factors) <= 2:
            raise ValueError("a term has one or two factors")
        if not 0 <= self.bound < 1 << 63:
            raise ValueError("a term's bound must fit a signed 64-bit integer")


@dataclass(frozen=True)
class Request:
    """Per-cell aggregates of one frame: the row count and one sum per term."""

    frame: Frame
    terms: tuple[Term, ...]
    frac_bits: int

    def columns(self) -> list[str]:
        """Every column the request reads: a row missing any of them is dropped."""
        used = [f.column for t in self.terms for f in t.factors]
        return list(dict.fromkeys([*used, *self.frame.columns()]))


@dataclass(frozen=True)
class Aggregates:
    """``counts[g]``: rows in cell g; ``sums[t, g]``: term t's encoded sum over cell g, mod
    2^64."""

    counts: npt.NDArray[np.int64]
    sums: npt.NDArray[np.uint64]


# --- the numpy reference engine -----------------------------------------------------------


def cell_index(
    keys: tuple[GroupKey, ...], columns: Mapping[str, npt.NDArray[np.generic]]
) -> npt.NDArray[np.int64]:
    """Each row's cell (``-1``: in no cell). Categorical columns hold category *names*
    (numpy ``str``/``object`` arrays); binned columns hold float64."""
    rows = _rows(columns)
    index = np.zeros(rows, dtype=np.int64)
    for key in keys:
        values = columns[key.column]
        if key.categories:
            code = category_codes(values, key.categories)
        else:
            edges = np.asarray(key.edges, dtype=np.float64)
            clamped = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
            code = np.minimum(np.searchsorted(edges, clamped, side="right") - 1, key.size - 1)
        index = np.where((index < 0) | (code < 0), -1, index * key.size + code)
    return index


def category_codes(
    values: npt.NDArray[np.generic], categories: tuple[str, ...]
) -> npt.NDArray[np.int64]:
    """Each value's index in ``categories`` (``-1``: not among them); vectorised through the
    column's distinct values, so the per-row work stays in numpy."""
    distinct, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
    lookup = {name: i for i, name in enumerate(categories)}
    codes = np.array([lookup.get(str(d), -1) for d in distinct.tolist()], dtype=np.int64)
    return codes[inverse.reshape(-1)] if distinct.size else np.zeros(0, dtype=np.int64)


def matches(
    condition: Condition, columns: Mapping[str, npt.NDArray[np.generic]]
) -> npt.NDArray[np.bool_]:
    """Which rows satisfy ``condition`` (comparisons on float64 columns, ``in`` on names)."""
    if condition.op in (Op.AND, Op.OR):
        parts = [matches(c, columns) for c in condition.children]
        if not parts:
            return np.full(_rows(columns), condition.op is Op.AND)
        reduce = np.logical_and if condition.op is Op.AND else np.logical_or
        return np.asarray(reduce.reduce(parts), dtype=np.bool_)
    values = columns[condition.column]
    if condition.op is Op.IN:
        return category_codes(values, condition.categories) >= 0
    x = np.asarray(values, dtype=np.float64)
    v = condition.value
    compare = {
        Op.LT: np.less,
        Op.LE: np.less_equal,
        Op.GT: np.greater,
        Op.GE: np.greater_equal,
        Op.EQ: np.equal,
        Op.NE: np.not_equal,
    }[condition.op]
    return np.asarray(compare(x, v), dtype=np.bool_)


def encode_term(
    term: Term, columns: Mapping[str, FloatVector], frac_bits: int
) -> npt.NDArray[np.int64]:
    """Each row's clamped encoding of ``term`` (int64), as every engine must compute it."""
    with np.errstate(all="ignore"):
        product: FloatVector | None = None
        for factor in term.factors:
            x = np.asarray(columns[factor.column], dtype=np.float64)
            v = np.clip(x, factor.lo, factor.hi) - factor.centre
            product = v if product is None else product * v
        assert product is not None
        encoded = encode_saturating(product, frac_bits).view(np.int64)
    return np.clip(encoded, -term.bound, term.bound)


def aggregate_arrays(
    request: Request, columns: Mapping[str, npt.NDArray[np.generic]]
) -> Aggregates:
    """The reference engine: ``columns`` holds complete rows (no missing values) of every
    column ``request.columns()`` names."""
    frame = request.frame
    cells = frame.cells
    index = cell_index(frame.keys, columns)
    if frame.where is not None:
        index = np.where(matches(frame.where, columns), index, -1)
    keep = index >= 0
    index = index[keep]
    counts = np.bincount(index, minlength=cells).astype(np.int64)
    sums = np.zeros((len(request.terms), cells), dtype=np.uint64)
    numeric = {
        c: np.asarray(columns[c], dtype=np.float64)[keep]
        for c in dict.fromkeys(f.column for t in request.terms for f in t.factors)
    }
    order = np.argsort(index, kind="stable") if cells > 1 else None
    starts = np.flatnonzero(counts)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))[starts]
    for t, term in enumerate(request.terms):
        encoded = encode_term(term, numeric, request.frac_bits).view(np.uint64)
        if order is None:
            sums[t, 0] = encoded.sum(dtype=np.uint64)  # wraps mod 2^64, exactly like the ring
        elif starts.size:
            sums[t, starts] = np.add.reduceat(encoded[order], offsets, dtype=np.uint64)
    return Aggregates(counts, sums)


def _rows(columns: Mapping[str, npt.NDArray[np.generic]]) -> int:
    for values in columns.values():
        return len(values)
    return 0


__all__ = [
    "COMPARISONS",
    "MAX_CELLS",
    "Aggregates",
    "Condition",
    "Factor",
    "Frame",
    "GroupKey",
    "Op",
    "Request",
    "Term",
    "aggregate_arrays",
    "cell_index",
    "encode_term",
    "matches",
]
