"""A small parser for ``where`` strings: ``age >= 40 and (smoker in ('yes') or bmi < 30)``.

Grammar (keywords are case-insensitive)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "(" expr ")" | NAME OP NUMBER | NAME "in" "(" STRING ("," STRING)* ")"
             | NAME "==" STRING
    OP      := "<" | "<=" | ">" | ">=" | "==" | "=" | "!="

A NAME is letters, digits, ``_`` and ``.`` (not starting with a digit), or any text between
backquotes (`` `blood pressure` ``); a STRING is single- or double-quoted. ``col == 'x'``
is ``col in ('x')``. Errors say what was expected and at which position (0-based).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mpc.errors import QueryError
from mpc.protocol.frame import Condition, GroupKey, Op
from mpc.protocol.schema import DatasetInfo

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<quoted>`[^`]+`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|==|!=|<|>|=)
  | (?P<punct>[(),])
  )""",
    re.VERBOSE,
)

_COMPARE = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE, "==": Op.EQ, "=": Op.EQ, "!=": Op.NE}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, keyword, op, punct, end
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[position:].lstrip())
            raise QueryError(f"where: unexpected character {text[start]!r} at position {start}")
        kind = match.lastgroup
        value = match.group(kind)
        start = match.start(kind)
        if kind == "quoted":
            kind, value = "name", value[1:-1]
        elif kind == "string":
            value = value[1:-1]
        elif kind == "name" and value.lower() in ("and", "or", "in"):
            kind, value = "keyword", value.lower()
        out.append(_Token(kind, value, start))
        position = match.end()
    out.append(_Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def fail(self, expected: str, token: _Token | None = None) -> QueryError:
        token = token or self.peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        return QueryError(f"where: expected {expected} at position {token.position}, found {found}")

    def expect(self, kind: str, text: str, expected: str) -> _Token:
        token = self.peek()
        if token.kind != kind or token.text != text:
            raise self.fail(expected)
        return self.take()

    def expr(self) -> Condition:
        parts = [self.term()]
        while self.peek().kind == "keyword" and self.peek().text == "or":
            self.take()
            parts.append(self.term())
        return _join(Op.OR, parts)

    def term(self) -> Condition:
        parts = [self.factor()]
        while self.peek().kind == "keyword" and self.peek().text == "and":
            self.take()
            parts.append(self.factor())
        return _join(Op.AND, parts)

    def factor(self) -> Condition:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.take()
            inner = self.expr()
            self.expect("punct", ")", "')'")
            return inner
        if token.kind != "name":
            raise self.fail("a column name or '('")
        column = self.take().text
        token = self.peek()
        if token.kind == "keyword" and token.text == "in":
            self.take()
            return Condition(Op.IN, column, categories=self.categories())
        if token.kind != "op":
            raise self.fail("a comparison (<, <=, >, >=, ==, !=) or 'in'")
        op = _COMPARE[self.take().text]
        value = self.peek()
        if value.kind == "string" and op is Op.EQ:
            self.take()
            return Condition(Op.IN, column, categories=(value.text,))
        if value.kind != "number":
            raise self.fail("a number" + (" or a quoted category" if op is Op.EQ else ""))
        number = float(self.take().text)
        if not math.isfinite(number):
            raise self.fail("a finite number", value)
        return Condition(op, column, value=number)

    def categories(self) -> tuple[str, ...]:
        self.expect("punct", "(", "'(' and a list of quoted categories")
        names: list[str] = []
        while True:
            token = self.peek()
            if token.kind != "string":
                raise self.fail("a quoted category")
            names.append(self.take().text)
            token = self.peek()
            if token.kind == "punct" and token.text == ",":
                self.take()
                if self.peek().kind == "punct" and self.peek().text == ")":
                    break
                continue
            break
        self.expect("punct", ")", "',' or ')'")
        return tuple(names)


def _join(op: Op, parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    flat: list[Condition] = []
    for part in parts:
        flat.extend(part.children if part.op is op else (part,))
    return Condition(op, children=tuple(flat))


def parse_where(text: str) -> Condition:
    """Parse a ``where`` string into a :class:`~mpc.protocol.frame.Condition`, or raise a
    :class:`QueryError` naming the position of the problem."""
    if not text.strip():
        raise QueryError("where: the condition is empty")
    parser = _Parser(text)
    try:
        condition = parser.expr()
    except RecursionError:
        raise QueryError("where: the condition is nested too deeply") from None
    if parser.peek().kind != "end":
        raise parser.fail("'and', 'or' or the end")
    return condition


def format_where(condition: Condition) -> str:
    """The condition as a where string (parses back to an equal condition)."""
    if condition.op in (Op.AND, Op.OR):
        inner = f" {condition.op.value} ".join(
            f"({format_where(c)})" if c.op in (Op.AND, Op.OR) else format_where(c)
            for c in condition.children
        )
        return inner
    name = condition.column
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) or name.lower() in ("and", "or", "in"):
        name = f"`{name}`"
    if condition.op is Op.IN:
        quoted = ", ".join(f"'{c}'" if "'" not in c else f'"{c}"' for c in condition.categories)
        return f"{name} in ({quoted})"
    return f"{name} {condition.op.value} {condition.value!r}"


def group_keys(
    items: Sequence[str | GroupKey], schemas: Sequence[DatasetInfo], dataset: str
) -> tuple[GroupKey, ...]:
    """Group keys from what a user writes: a GroupKey, ``"column:E0,E1,...,Ek"`` (a numeric
    column cut at bin edges) or a categorical column's name, whose categories come from the
    parties' published ``schemas`` of ``dataset`` (they must agree)."""
    keys: list[GroupKey] = []
    for item in items:
        if isinstance(item, GroupKey):
            keys.append(item)
            continue
        column, sep, edges = str(item).partition(":")
        column = column.strip()
        if sep:
            try:
                values = tuple(float(e) for e in edges.split(",") if e.strip())
            except ValueError:
                raise QueryError(
                    f"group_by {item!r}: expected COLUMN:E0,E1,...,Ek with numbers"
                ) from None
            keys.append(GroupKey(column, edges=values))
        else:
            keys.append(GroupKey(column, categories=declared_categories(schemas, dataset, column)))
    return tuple(keys)


def declared_categories(
    schemas: Sequence[DatasetInfo], dataset: str, column: str
) -> tuple[str, ...]:
    """The categories every party declares for ``column`` (they must agree)."""
    found: set[tuple[str, ...]] = set()
    for info in schemas:
        match = next((c for c in info.columns if c.name == column), None)
        if match is None:
            raise QueryError(f"unknown column {column!r} in dataset {dataset!r}")
        found.add(tuple(match.categories))
    if not found:
        raise QueryError(f"no party publishes dataset {dataset!r}")
    if len(found) > 1:
        raise QueryError(
            f"parties declare different categories for column {column!r}: group by a "
            "GroupKey with the categories to use"
        )
    categories = found.pop()
    if not categories:
        raise QueryError(
            f"column {column!r} of dataset {dataset!r} is not categorical: group it by bin "
            f"edges ('{column}:E0,E1,...,Ek')"
        )
    return categories


def check_frame_policy(
    *,
    dataset: str,
    party: str,
    dp: bool,
    columns: Sequence[str],
    where: Condition | None,
    group_by: Sequence[GroupKey],
    bins: int,
    categories: Mapping[str, tuple[str, ...]],
    exact_filters: bool,
    max_bins: int,
) -> None:
    """One party's public policy on a job's frame, from its config (the party) or its
    published schema (the coordinator, which mirrors it to refuse early with the same text).

    ``categories`` maps each categorical column to its declared categories; ``bins`` is a
    histogram's bin count (1 otherwise). Raises :class:`QueryError`; reads no data.
    """
    at = f"dataset {dataset!r} at party {party!r}"
    if (where is not None or group_by) and not dp and not exact_filters:
        raise QueryError(
            f"{at} does not allow exact filtered or grouped releases: add differential "
            "privacy (give an epsilon: --epsilon, or epsilon= in Python)"
        )
    for column in columns:
        if column in categories:
            raise QueryError(f"column {column!r} of {at} is categorical: it has no numeric values")
    leaves = [] if where is None else _leaves(where)
    for leaf in leaves:
        if leaf.op is Op.IN:
            _check_subset(at, leaf.column, leaf.categories, categories)
        elif leaf.column in categories:
            raise QueryError(
                f"column {leaf.column!r} of {at} is categorical: compare it with "
                f"'in (...)', not {leaf.op.value!r}"
            )
    for key in group_by:
        if key.categories:
            _check_subset(at, key.column, key.categories, categories)
        elif key.column in categories:
            raise QueryError(
                f"column {key.column!r} of {at} is categorical: group it by its categories, "
                "not by bin edges"
            )
    cells = math.prod(k.size for k in group_by) * max(1, bins)
    if group_by and max_bins and cells > max_bins:
        raise QueryError(
            f"{cells} cells (groups times bins): {at} allows at most {max_bins} (max_bins)"
        )


def _leaves(condition: Condition) -> list[Condition]:
    if condition.op in (Op.AND, Op.OR):
        return [leaf for child in condition.children for leaf in _leaves(child)]
    return [condition]


def _check_subset(
    at: str, column: str, wanted: tuple[str, ...], categories: Mapping[str, tuple[str, ...]]
) -> None:
    declared = categories.get(column)
    if declared is None:
        raise QueryError(
            f"column {column!r} of {at} is not categorical (no declared categories): use "
            "comparisons or bin edges"
        )
    unknown = [c for c in wanted if c not in declared]
    if unknown:
        raise QueryError(
            f"column {column!r} of {at} has no declared categor"
            f"{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} "
            f"(declared: {', '.join(map(repr, declared))})"
        )


__all__ = [
    "check_frame_policy",
    "declared_categories",
    "format_where",
    "group_keys",
    "parse_where",
]
