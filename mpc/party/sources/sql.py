"""SQL text for per-cell aggregates, in DuckDB's and PostgreSQL's dialects (no driver here).

One statement computes a frame's per-cell row counts and per-term sums, GROUP BY the cell
index, following the encoding in :mod:`mpc.protocol.frame` step by step so the engines agree
bit for bit with the numpy reference:

* every column the request reads is cast to float64 (numeric) or text (categorical); a row
  with NULL (or NaN) in any of them is dropped first;
* a factor is ``least(greatest(x, lo), hi) - c``; a term a factor or the product of two;
* its encoding is ``round_half_even(term * 2^frac_bits)`` (DuckDB ``round_even(x, 0)``,
  PostgreSQL ``round(float8)``, both half to even), NaN as 0, saturated to ``+-(2^63 - 2^11)``
  in float64 (so the cast cannot overflow), cast to BIGINT and clamped to the term's bound;
* sums are exact (DuckDB HUGEINT, PostgreSQL numeric); the caller reduces them mod 2^64.

Nothing a client sends becomes SQL text: category names, comparison constants, bin edges,
bounds and fractional bits are bound parameters (bin edges in DuckDB: a registered Arrow
table), and column names are checked against the dataset's columns by the caller and quoted
here as identifiers. The operator's own SQL (``sql`` in the party config) is wrapped as a
subquery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mpc.protocol.frame import Condition, Factor, GroupKey, Op, Request, Term

#: The largest magnitude an encoding takes before its bound (``mpc.ring._SATURATION``).
SATURATION = (1 << 63) - (1 << 11)

_COMPARE = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">=", Op.EQ: "=", Op.NE: "<>"}


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (both dialects)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A single-quoted SQL string literal, for operator-configured paths only."""
    return "'" + text.replace("'", "''") + "'"


def relation(table: str | None, sql: str | None, parquet: str | None = None) -> str:
    """The FROM item of a dataset: a quoted (schema.)table, the operator's SELECT as a
    subquery, or a Parquet scan."""
    if parquet is not None:
        return f"read_parquet({quote_literal(parquet)})"
    if sql is not None:
        return f"({sql})"
    assert table is not None
    return ".".join(quote_ident(part) for part in table.split("."))


@dataclass(frozen=True)
class Dialect:
    name: str  # "duckdb" or "postgres"
    mark: str  # the parameter placeholder
    double: str
    text: str

    def is_nan(self, expr: str) -> str:
        if self.name == "duckdb":
            return f"isnan({expr})"
        return f"({expr} = 'NaN'::float8)"

    def round_even(self, expr: str) -> str:
        return f"round_even({expr}, 0)" if self.name == "duckdb" else f"round({expr})"

    def text_array(self) -> str:
        return f"CAST({self.mark} AS {self.text}[])"

    def escape(self, sql: str) -> str:
        """Operator SQL as statement text: psycopg reads ``%`` as a placeholder."""
        return sql.replace("%", "%%") if self.mark == "%s" else sql


DUCKDB = Dialect("duckdb", "?", "DOUBLE", "VARCHAR")
POSTGRES = Dialect("postgres", "%s", "double precision", "text")


@dataclass
class Statement:
    """SQL text with its bound parameters; ``edges[i]`` is bin key i's edge table (DuckDB
    registers it as ``__mpc_edges_i`` with columns ``e``, ``code``)."""

    text: str = ""
    params: list[object] = field(default_factory=list)
    edges: dict[int, tuple[float, ...]] = field(default_factory=dict)


class _Builder:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[object] = []
        self.prefix = ""  # "f." in the layer that joins the edge tables

    def col(self, name: str) -> str:
        return self.prefix + quote_ident(name)

    def param(self, value: object, cast: str | None = None, binary: bool = False) -> str:
        """A placeholder for ``value``; ``binary``: sent in binary (psycopg ``%b``: a large
        float8 array then costs no text formatting and parsing, and is exact)."""
        self.params.append(value)
        mark = "%b" if binary and self.d.mark == "%s" else self.d.mark
        return f"CAST({mark} AS {cast})" if cast else mark

    def double(self, value: float) -> str:
        return self.param(float(value), self.d.double)

    def condition(self, cond: Condition) -> str:
        if cond.op in (Op.AND, Op.OR):
            if not cond.children:
                return "TRUE" if cond.op is Op.AND else "FALSE"
            joiner = " AND " if cond.op is Op.AND else " OR "
            return "(" + joiner.join(self.condition(c) for c in cond.children) + ")"
        column = self.col(cond.column)
        if cond.op is Op.IN:
            if self.d.name == "duckdb":
                return f"list_contains({self.param(list(cond.categories), 'VARCHAR[]')}, {column})"
            return f"({column} = ANY({self.param(list(cond.categories), 'text[]')}))"
        if math.isnan(cond.value):  # SQL orders NaN above everything; numpy never matches
            return "TRUE" if cond.op is Op.NE else "FALSE"
        return f"({column} {_COMPARE[cond.op]} {self.double(cond.value)})"

    def factor(self, factor: Factor) -> str:
        column = self.col(factor.column)
        if self.d.name == "duckdb":
            # numpy's clip as a CASE: for the finite and infinite values that reach it (NaN
            # rows are dropped first) the same value, at a fifth of least/greatest's cost.
            below, low = self.double(factor.lo), self.double(factor.lo)
            above, high = self.double(factor.hi), self.double(factor.hi)
            clamped = (
                f"CASE WHEN {column} < {below} THEN {low} WHEN {column} > {above} THEN {high}"
                f" ELSE {column} END"
            )
        else:
            lo, hi = self.double(factor.lo), self.double(factor.hi)
            clamped = f"least(greatest({column}, {lo}), {hi})"
        if not factor.centred:
            return clamped
        return f"({clamped} - {self.double(factor.centre)})"

    def scaled(self, factors: Sequence[str], frac_bits: int) -> str:
        """``round_half_even(product * 2^frac_bits)`` in float64 (before saturation), from
        factor value columns (no parameters: our integers only).

        DuckDB follows IEEE 754 (overflow to infinity, underflow to zero), like numpy.
        PostgreSQL raises on float8 overflow and underflow instead, so the magnitude is
        checked first (in log10, only far from the points where the outcome changes): above
        1e300 the encoding saturates anyway, below 1e-300 it rounds to 0 anyway.
        """
        scale = f"CAST({1 << int(frac_bits)} AS {self.d.double})"
        product = " * ".join(factors)
        exact = self.d.round_even(f"(({product}) * {scale})")
        if self.d.name == "duckdb":
            return exact
        tiny = f"CAST(1e-300 AS {self.d.double})"
        logs = [f"log(greatest(abs({v}), {tiny}))" for v in factors]
        magnitude = " + ".join(logs)
        sign = " * ".join(f"sign({v})" for v in factors)
        huge = f"{sign} * CAST({SATURATION} AS {self.d.double})"
        scaled_log = f"{magnitude} + {int(frac_bits) * math.log10(2.0)!r}"
        return (
            f"CASE WHEN {scaled_log} > 300 THEN {huge}"
            f" WHEN {magnitude} < -300 THEN CAST(0 AS {self.d.double}) ELSE {exact} END"
        )

    def rint_small(self, factors: Sequence[str], frac_bits: int) -> str:
        """``round_half_even(product * 2^frac_bits)`` for a term whose magnitude is below
        2^51 by its declared bounds alone (:func:`_small`): adding and subtracting 1.5 * 2^52
        rounds to the nearest integer, ties to even, exactly (IEEE 754 round-to-nearest at a
        unit in the last place of 1), as numpy's ``rint`` does. DuckDB's ``round_even``
        costs several times more per row; so do the NaN and saturation cases, which clamped
        finite factors of such a term can never reach."""
        scale = f"CAST({1 << int(frac_bits)} AS {self.d.double})"
        product = " * ".join(factors)
        magic = f"CAST({_MAGIC!r} AS {self.d.double})"
        return f"((({product}) * {scale}) + {magic}) - {magic}"

    def encoded_small(self, r: str, bound: int, largest: int) -> str:
        """The encoding of a fast-path rounded column (an integer of magnitude at most
        ``largest`` < 2^50, cast exactly), clamped to ``bound`` unless it cannot exceed it."""
        b = int(bound)
        if largest <= b:
            return f"CAST({r} AS BIGINT)"
        return f"least(greatest(CAST({r} AS BIGINT), CAST({-b} AS BIGINT)), CAST({b} AS BIGINT))"

    def encoded(self, r: str, bound: int) -> str:
        """The encoding of a rounded value column ``r`` (no parameters: integers only)."""
        s, b = SATURATION, int(bound)
        s_double = f"CAST({s} AS {self.d.double})"
        value = (
            f"CASE WHEN {self.d.is_nan(r)} THEN CAST(0 AS BIGINT)"
            f" WHEN {r} >= {s_double} THEN CAST({s} AS BIGINT)"
            f" WHEN {r} <= -{s_double} THEN CAST({-s} AS BIGINT)"
            f" ELSE CAST({r} AS BIGINT) END"
        )
        return f"least(greatest({value}, CAST({-b} AS BIGINT)), CAST({b} AS BIGINT))"


#: 1.5 * 2^52: x + _MAGIC - _MAGIC is x rounded to an integer, ties to even, for |x| < 2^51.
_MAGIC = 6755399441055744.0
_SMALL_LIMIT = float(1 << 50)  # a margin below 2^51


def _small(term: Term, frac_bits: int) -> int | None:
    """The largest magnitude ``term``'s rounded, scaled value can take, when that is below
    2^50 (None otherwise). Its factors are clamped to their finite bounds, so the declared
    bounds alone decide (public, the same for every row): each factor's magnitude is at
    most ``max(|lo - c|, |hi - c|)`` and rounding is monotone, so the float product of those
    maxima, scaled and rounded, bounds every row's value."""
    magnitude = 1.0
    for factor in term.factors:
        c = factor.centre
        magnitude *= max(abs(factor.lo - c), abs(factor.hi - c))
    if not magnitude < _SMALL_LIMIT:  # also inf and NaN; ldexp raises on overflow
        return None
    scaled = math.ldexp(magnitude, int(frac_bits))
    if not scaled < _SMALL_LIMIT:
        return None
    return round(scaled)  # Python rounds half to even, as the SQL does


def _key_code(b: _Builder, index: int, key: GroupKey, statement: Statement) -> str:
    """Key ``index``'s code for a row of ``f`` (``-1``: in no cell)."""
    column = b.col(key.column)
    if key.categories:
        if b.d.name == "duckdb":
            found = f"list_position({b.param(list(key.categories), 'VARCHAR[]')}, {column})"
        else:
            found = f"array_position({b.param(list(key.categories), 'text[]')}, {column})"
        return f"(coalesce({found}, 0) - 1)"
    last = key.size - 1
    if b.d.name == "duckdb":
        statement.edges[index] = key.edges
        return f"least(b{index}.code, {last})"
    lo, hi = b.double(key.edges[0]), b.double(key.edges[-1])
    edges = b.param(list(key.edges), "double precision[]", binary=True)
    return f"least(width_bucket(least(greatest({column}, {lo}), {hi}), {edges}) - 1, {last})"


def _col(name: str) -> str:
    return quote_ident(name)


def _complete(d: Dialect, numeric: Sequence[str], text: Sequence[str]) -> str:
    checks = [f"{_col(c)} IS NOT NULL AND NOT {d.is_nan(_col(c))}" for c in numeric]
    checks += [f"{_col(c)} IS NOT NULL" for c in text]
    return " AND ".join(checks) or "TRUE"


def _select_columns(
    d: Dialect, numeric: Sequence[str], text: Sequence[str], wide: frozenset[str] = frozenset()
) -> str:
    items = [
        f"CAST({_wide(_col(c)) if c in wide else _col(c)} AS {d.double}) AS {_col(c)}"
        for c in numeric
    ]
    items += [f"CAST({_col(c)} AS {d.text}) AS {_col(c)}" for c in text]
    return ", ".join(items) or "1 AS __mpc_one"


def _wide(c: str) -> str:
    """A PostgreSQL ``numeric`` value made safe to cast to float8 (the cast raises beyond
    float8's range, and below its smallest subnormal): saturated to +-infinity, tiny
    magnitudes to 0 (what parsing the number as float64 gives), NaN kept."""
    return (
        f"CASE WHEN {c} = 'NaN'::numeric THEN 'NaN'::float8"
        f" WHEN {c} > 1.7976931348623157e308 THEN 'Infinity'::float8"
        f" WHEN {c} < -1.7976931348623157e308 THEN '-Infinity'::float8"
        f" WHEN abs({c}) < 1e-323 THEN 0::float8 ELSE CAST({c} AS float8) END"
    )


def rows_statement(
    d: Dialect,
    source: str,
    numeric: Sequence[str],
    text: Sequence[str],
    order: Sequence[str],
    wide: frozenset[str] = frozenset(),
) -> str:
    """The complete rows of the given columns (``order``: output column order; ``wide``:
    PostgreSQL ``numeric`` columns)."""
    cast = _select_columns(d, numeric, text, wide)
    names = ", ".join(_col(c) for c in order) or "1 AS __mpc_one"
    return (
        f"SELECT {names} FROM (SELECT {cast} FROM {source} AS __mpc_src) AS f "
        f"WHERE {_complete(d, numeric, text)}"
    )


def aggregate_statement(
    d: Dialect,
    source: str,
    request: Request,
    text_columns: frozenset[str],
    wide: frozenset[str] = frozenset(),
) -> Statement:
    """One statement: rows ``(cell, count, sum_0, ..., sum_{T-1})``, cells with rows only.

    Layers: ``f`` the complete, filtered rows; ``g`` each key's code and each factor's value
    (every client value a parameter, each appearing once in the text, in order); ``m`` the
    cell index and each term's rounded value, ``h`` its encoding (integers of ours only);
    then the GROUP BY.
    """
    statement = Statement()
    b = _Builder(d)
    used = request.columns()
    numeric = [c for c in used if c not in text_columns]
    text = [c for c in used if c in text_columns]
    keys = request.frame.keys
    b.prefix = "f."
    g_items = [f"{_key_code(b, i, key, statement)} AS k{i}" for i, key in enumerate(keys)]
    scaled = []
    small: dict[int, int] = {}  # fast-path terms (_Builder.rint_small): their largest value
    for j, term in enumerate(request.terms):
        if any(math.isnan(x) for f in term.factors for x in (f.lo, f.hi, f.centre)):
            scaled.append(f"CAST(0 AS {d.double}) AS r{j}")  # numpy: NaN terms encode as 0
            continue
        names = [f"v{j}_{a}" for a in range(len(term.factors))]
        g_items += [f"{b.factor(f)} AS {v}" for f, v in zip(term.factors, names, strict=True)]
        largest = _small(term, request.frac_bits) if d.name == "duckdb" else None
        if largest is not None:
            small[j] = largest
            scaled.append(f"{b.rint_small(names, request.frac_bits)} AS r{j}")
        else:
            scaled.append(f"{b.scaled(names, request.frac_bits)} AS r{j}")
    b.prefix = ""
    where = b.condition(request.frame.where) if request.frame.where is not None else "TRUE"
    joins = ""
    for i in statement.edges:
        key = keys[i]
        lo, hi = b.double(key.edges[0]), b.double(key.edges[-1])
        joins += (
            f" ASOF JOIN __mpc_edges_{i} AS b{i}"
            f" ON least(greatest(f.{_col(key.column)}, {lo}), {hi}) >= b{i}.e"
        )
    cell = "CAST(0 AS BIGINT)"
    for i, key in enumerate(keys):
        cell = f"({cell} * {int(key.size)} + k{i})"
    invalid = " OR ".join(f"k{i} < 0" for i, key in enumerate(keys) if key.categories)
    if invalid:
        cell = f"CASE WHEN {invalid} THEN CAST(-1 AS BIGINT) ELSE {cell} END"
    m_items = [f"{cell} AS cell", *scaled]
    h_items = ["cell"]
    for j, t in enumerate(request.terms):
        if j in small:
            h_items.append(f"{b.encoded_small(f'r{j}', t.bound, small[j])} AS t{j}")
        else:
            h_items.append(f"{b.encoded(f'r{j}', t.bound)} AS t{j}")
    sums = "".join(f", sum(t{j})" for j in range(len(request.terms)))
    select = _select_columns(d, numeric, text, wide)
    statement.text = (
        f"SELECT cell, count(*){sums} FROM ("
        f"SELECT {', '.join(h_items)} FROM ("
        f"SELECT {', '.join(m_items)} FROM ("
        f"SELECT {', '.join(g_items) or '1 AS one'} FROM ("
        f"SELECT * FROM (SELECT {select} FROM {source} AS __mpc_src)"
        f" AS c WHERE {_complete(d, numeric, text)} AND {where}) AS f{joins}"
        ") AS g) AS m) AS h WHERE cell >= 0 GROUP BY cell"
    )
    statement.params = b.params
    return statement


__all__ = [
    "DUCKDB",
    "POSTGRES",
    "SATURATION",
    "Dialect",
    "Statement",
    "aggregate_statement",
    "quote_ident",
    "relation",
    "rows_statement",
]
