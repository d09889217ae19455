"""Client methods for the analyses (covariance, correlation, contingency tables, Welch's t-test,
quantiles and the median), mixed into :class:`mpc.Client`.

Each builds one query and submits it through the client's generic :meth:`Client.query`; the
keyword arguments every query takes (``where``, ``parties``, ``epsilon``, ``delta``,
``noise``, ``frac_bits``, ``on_event``, ...) pass through unchanged.

A group key is a column name (a categorical column: its categories are the ones the parties
declare), or a :class:`mpc.protocol.frame.GroupKey` (categories given explicitly, or a numeric
column cut at bin edges: ``GroupKey("age", edges=(0, 40, 120))``).

>>> client.correlation("health", ["age", "bmi"], bounds={"age": (0, 120), "bmi": (10, 60)})
...     # doctest: +SKIP
>>> client.ttest("health", ["bmi"], by="sex").to_pandas()  # doctest: +SKIP
>>> client.median("health", "age", bounds=(0, 120), bins=1200)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mpc.errors import QueryError
from mpc.protocol.frame import GroupKey
from mpc.protocol.spec import MAX_HISTOGRAM_BINS, Statistic

if TYPE_CHECKING:
    from mpc.client import QueryResult

#: A group key: a categorical column's name, or a GroupKey (categories or bin edges).
Key = str | GroupKey
Bounds = Mapping[str, tuple[float, float]] | tuple[float, float] | None

#: Bins of a quantile's histogram when only bounds are given: the error is (hi - lo) / 1024.
DEFAULT_QUANTILE_BINS = 1024


def quantile_edges(
    bounds: tuple[float, float] | None, bins: int | None, edges: Sequence[float] | None
) -> list[float]:
    """The histogram edges of a quantile query: ``edges`` as given, or ``bins`` equal bins
    over ``bounds``."""
    if edges is not None:
        if bounds is not None or bins is not None:
            raise QueryError("give either edges, or bounds (and optionally bins), not both")
        return [float(e) for e in edges]
    if bounds is None:
        raise QueryError("a quantile needs bounds (lo, hi) or explicit bin edges")
    lo, hi = float(bounds[0]), float(bounds[1])
    count = DEFAULT_QUANTILE_BINS if bins is None else int(bins)
    if not 1 <= count <= MAX_HISTOGRAM_BINS:
        raise QueryError(f"bins must be between 1 and {MAX_HISTOGRAM_BINS}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise QueryError("quantile bounds must be finite with lo < hi")
    return [float(e) for e in np.linspace(lo, hi, count + 1)]


class AnalysesMixin:
    """Analyses on top of :meth:`query` (the host class provides it)."""

    if TYPE_CHECKING:

        def query(self, *args: Any, **kwargs: Any) -> QueryResult: ...

    def covariance(
        self,
        dataset: str,
        columns: Sequence[str],
        bounds: Bounds = None,
        *,
        group_by: Sequence[Key] = (),
        **kw: Any,
    ) -> QueryResult:
        """Sample covariance matrix (``ddof=1``) of ``columns``, values clamped to their bounds,
        from one secure Gram round; per group with ``group_by``. With ``epsilon`` the Gram
        matrix is noisy and the result clamped into a valid range (variances in
        ``[0, ((hi - lo) / 2)^2]``, covariances within Cauchy-Schwarz)."""
        return self._grouped(Statistic.COVARIANCE, dataset, columns, bounds, group_by, kw)

    def correlation(
        self,
        dataset: str,
        columns: Sequence[str],
        bounds: Bounds = None,
        *,
        group_by: Sequence[Key] = (),
        **kw: Any,
    ) -> QueryResult:
        """Pearson correlation matrix of ``columns`` (clamped to [-1, 1], unit diagonal)."""
        return self._grouped(Statistic.CORRELATION, dataset, columns, bounds, group_by, kw)

    def contingency(self, dataset: str, rows: Key, columns: Key, **kw: Any) -> QueryResult:
        """Counts over two group keys and Pearson's chi-square test of independence (extras
        ``chi2``, ``dof``, ``p_value``; all-zero rows and columns are left out of the test)."""
        return self.query(Statistic.CONTINGENCY, dataset, (), None, group_by=[rows, columns], **kw)

    def ttest(
        self, dataset: str, columns: Sequence[str], by: Key, bounds: Bounds = None, **kw: Any
    ) -> QueryResult:
        """Welch's t-test per column between the two groups of ``by`` (a key with exactly two
        categories or two bins): both means, their difference, t, degrees of freedom and the
        two-sided p-value."""
        if isinstance(by, GroupKey) and by.size != 2:
            raise QueryError("a t-test compares exactly two groups: give a key with 2 of them")
        return self.query(Statistic.TTEST, dataset, list(columns), bounds, group_by=[by], **kw)

    def quantiles(
        self,
        dataset: str,
        column: str,
        probabilities: Sequence[float],
        bounds: tuple[float, float] | None = None,
        *,
        bins: int | None = None,
        edges: Sequence[float] | None = None,
        group_by: Sequence[Key] = (),
        **kw: Any,
    ) -> QueryResult:
        """Quantiles of one column from a fine histogram: over ``edges``, or ``bins`` equal bins
        over ``bounds`` (default 1024). One row per probability: ``value`` and its ``error``
        (the bin width without DP; with ``epsilon`` also the noise, a 95% bound, and the
        ``rank_error`` in rows)."""
        probs = [float(p) for p in probabilities]
        if not probs or not all(0 < p < 1 for p in probs):
            raise QueryError("quantile probabilities must be between 0 and 1 (exclusive)")
        cuts = quantile_edges(bounds, bins, edges)
        extra: dict[str, Any] = dict(kw)
        if group_by:
            extra["group_by"] = list(group_by)
        return self.query(
            Statistic.QUANTILE,
            dataset,
            [column],
            None,  # a binned statistic's bounds are its first and last edges
            bin_edges=cuts,
            quantiles=probs,
            **extra,
        )

    def median(
        self,
        dataset: str,
        column: str,
        bounds: tuple[float, float] | None = None,
        **kw: Any,
    ) -> QueryResult:
        """The median: :meth:`quantiles` at 0.5."""
        return self.quantiles(dataset, column, [0.5], bounds, **kw)

    def _grouped(
        self,
        statistic: Statistic,
        dataset: str,
        columns: Sequence[str],
        bounds: Bounds,
        group_by: Sequence[Key],
        kw: dict[str, Any],
    ) -> QueryResult:
        if len(columns) < 2:
            raise QueryError(f"{statistic.value} needs at least two columns")
        if group_by:
            kw = {**kw, "group_by": list(group_by)}
        return self.query(statistic, dataset, list(columns), bounds, **kw)


__all__ = ["DEFAULT_QUANTILE_BINS", "AnalysesMixin", "Key", "quantile_edges"]
