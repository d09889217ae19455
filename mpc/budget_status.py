"""Spent and remaining privacy budget as reported to clients: a plain record.

Its own module so that clients and the wire conversion can use it without loading the ledger
and the privacy accountant (:mod:`mpc.ledger` re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetStatus:
    """Spent and remaining budget of one dataset in one ledger (public numbers only)."""

    dataset: str
    charges: int
    spent_rho: float
    spent_epsilon: float
    budget_epsilon: float | None  # None: no budget configured (spending is only recorded)
    budget_delta: float | None
    remaining_epsilon: float | None  # the largest single-query epsilon that still fits

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


__all__ = ["BudgetStatus"]
