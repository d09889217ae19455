"""Privacy ledgers in SQLite, shared by the coordinator and every party.

One row per charge. A charge is an atomic check-and-insert (``BEGIN IMMEDIATE`` plus a lock),
so concurrent jobs can never overspend: against a budget that fits ten queries, twenty
concurrent ones spend exactly ten. Writes are durable (WAL, ``synchronous=FULL``) and the
charge is committed before any noisy share leaves. Nothing is ever refunded: a job that fails
after its charge, or is retried under a new id, is charged again. Costs are integers on the
ledger grid of :mod:`mpc.dp.accountant` (rounded up), budgets rounded down: comparisons are
exact.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from mpc import dp
from mpc.budget_status import BudgetStatus as BudgetStatus
from mpc.dp.accountant import UNITS_PER_ONE
from mpc.errors import ConfigError, PrivacyBudgetError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS privacy_ledger (
    dataset    TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    rho_units  INTEGER NOT NULL,
    rdp_units  TEXT NOT NULL DEFAULT '[]',
    charged_at REAL NOT NULL,
    PRIMARY KEY (dataset, job_id)
);
CREATE TABLE IF NOT EXISTS seen_queries (
    key     BLOB PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pinned_cohorts (
    dataset   TEXT PRIMARY KEY,
    parties   TEXT NOT NULL,
    pinned_at REAL NOT NULL
);
"""

#: Added later (backward compatible: old rows read as charges that are not pure epsilon-DP,
#: the conservative reading). A pure epsilon-DP charge records its epsilon in ``pure_units``
#: and the part of ``rho_units`` that stands for it in ``pure_rho_units``.
_ADDED_COLUMNS = (
    ("pure_units", "INTEGER NOT NULL DEFAULT 0"),
    ("pure_rho_units", "INTEGER NOT NULL DEFAULT 0"),
)


def _migrate(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(privacy_ledger)").fetchall()}
    for name, decl in _ADDED_COLUMNS:
        if name not in have:
            try:
                db.execute(f"ALTER TABLE privacy_ledger ADD COLUMN {name} {decl}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


def _cost_from_row(
    rho_units: int, rdp_text: str, pure_units: int = 0, pure_rho_units: int = 0
) -> dp.PrivacyCost:
    return dp.PrivacyCost(
        rho_units=rho_units,
        rdp_units=tuple(json.loads(rdp_text)),
        pure_units=pure_units,
        pure_rho_units=pure_rho_units,
    )


class Ledger:
    def __init__(self, path: Path | str) -> None:
        try:
            if isinstance(path, Path):
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            _migrate(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the privacy ledger {path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _spent_locked(self, dataset: str) -> tuple[dp.PrivacyCost, int]:
        total = dp.PrivacyCost()
        rows = self._db.execute(
            "SELECT rho_units, rdp_units, pure_units, pure_rho_units FROM privacy_ledger "
            "WHERE dataset = ?",
            (dataset,),
        ).fetchall()
        for row in rows:
            total = total + _cost_from_row(*row)
        return total, len(rows)

    def spent(self, dataset: str) -> dp.PrivacyCost:
        with self._lock:
            return self._spent_locked(dataset)[0]

    def charged(self, dataset: str, job_id: str) -> dp.PrivacyCost | None:
        """What ``job_id`` was charged on ``dataset``, or None if it was not."""
        with self._lock:
            row = self._db.execute(
                "SELECT rho_units, rdp_units, pure_units, pure_rho_units FROM privacy_ledger "
                "WHERE dataset = ? AND job_id = ?",
                (dataset, job_id),
            ).fetchone()
        return None if row is None else _cost_from_row(*row)

    def charge(
        self,
        dataset: str,
        job_id: str,
        cost: dp.PrivacyCost,
        budget: dp.Budget | None,
        *,
        who: str = "",
        also: Sequence[tuple[str, dp.Budget | None]] = (),
    ) -> None:
        """Record ``cost`` for ``job_id`` if it fits ``budget``; else raise, recording nothing.

        ``also`` lists more ledgers (e.g. a client's own budget on the dataset, keyed
        ``dataset@client:NAME``) charged in the same transaction: all or none.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, limit in ((dataset, budget), *also):
                    spent, _ = self._spent_locked(key)
                    if limit is not None and not limit.allows(spent, cost):
                        raise PrivacyBudgetError(
                            f"{who}dataset {key!r}: this job would exceed the privacy budget "
                            f"(epsilon {float(limit.epsilon):.6g} at delta "
                            f"{float(limit.delta):.3g}; spent epsilon "
                            f"{float(limit.spent_epsilon(spent)):.6g}; "
                            f"remaining {_remaining_epsilon(limit, spent):.6g} for one query, "
                            f"this job needs {float(cost.epsilon(limit.delta)):.6g})"
                        )
                    try:
                        self._db.execute(
                            "INSERT INTO privacy_ledger (dataset, job_id, rho_units, rdp_units, "
                            "charged_at, pure_units, pure_rho_units) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                key,
                                job_id,
                                cost.rho_units,
                                json.dumps(list(cost.rdp_units)),
                                time.time(),
                                cost.pure_units,
                                cost.pure_rho_units,
                            ),
                        )
                    except sqlite3.IntegrityError:
                        raise PrivacyBudgetError(
                            f"{who}dataset {key!r}: job {job_id} was already charged"
                        ) from None
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def status(self, dataset: str, budget: dp.Budget | None, delta: float = 1e-6) -> BudgetStatus:
        with self._lock:
            spent, charges = self._spent_locked(dataset)
        at_delta = float(budget.delta) if budget is not None else delta
        return BudgetStatus(
            dataset=dataset,
            charges=charges,
            spent_rho=spent.rho_units / UNITS_PER_ONE,
            spent_epsilon=float(spent.epsilon(at_delta)) if charges else 0.0,
            budget_epsilon=float(budget.epsilon) if budget is not None else None,
            budget_delta=float(budget.delta) if budget is not None else None,
            remaining_epsilon=_remaining_epsilon(budget, spent) if budget is not None else None,
        )

    def remember_query(self, key: bytes, window: float) -> bool:
        """Record a signed query's key; False if it was seen within ``window`` seconds.

        Durable, so a party that restarts still refuses a replay within the window.
        """
        now = time.time()
        with self._lock:
            self._db.execute("DELETE FROM seen_queries WHERE seen_at < ?", (now - window,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen_queries VALUES (?, ?)", (key, now)
            )
            return cursor.rowcount == 1

    def pinned_cohort(self, dataset: str) -> tuple[str, ...] | None:
        """The cohort pinned for ``dataset`` at its first use, if any (party state)."""
        with self._lock:
            row = self._db.execute(
                "SELECT parties FROM pinned_cohorts WHERE dataset = ?", (dataset,)
            ).fetchone()
        return None if row is None else tuple(json.loads(row[0]))

    def pin_cohort(self, dataset: str, parties: tuple[str, ...]) -> tuple[str, ...]:
        """Pin ``parties`` as the cohort of ``dataset`` unless one is pinned; the pinned one."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO pinned_cohorts VALUES (?, ?, ?)",
                (dataset, json.dumps(sorted(parties)), time.time()),
            )
            row = self._db.execute(
                "SELECT parties FROM pinned_cohorts WHERE dataset = ?", (dataset,)
            ).fetchone()
        return tuple(json.loads(row[0]))

    def datasets(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT dataset FROM privacy_ledger").fetchall()
        return sorted(r[0] for r in rows)


def _remaining_epsilon(budget: dp.Budget, spent: dp.PrivacyCost) -> float:
    rho = budget.remaining_rho(spent)
    return float(dp.epsilon_for_rho(rho, budget.delta)) if rho > 0 else 0.0


__all__ = ["BudgetStatus", "Ledger"]
