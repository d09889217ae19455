"""Analyses built on the same secure sum: covariance and correlation, contingency tables with a
chi-square test, Welch's t-test and quantiles. Each lives in its own module and contributes
its entries to :data:`REGISTRY`, which :mod:`mpc.stats` merges into the statistic registry."""

from __future__ import annotations

from mpc.protocol.spec import Statistic
from mpc.stats.analyses import contingency, covariance, quantile, ttest
from mpc.stats.base import StatisticDef

REGISTRY: dict[Statistic, StatisticDef] = {
    **covariance.REGISTRY,
    **contingency.REGISTRY,
    **ttest.REGISTRY,
    **quantile.REGISTRY,
}

__all__ = ["REGISTRY"]
