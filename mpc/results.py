"""Results of queries and training jobs, and how they read as tables.

A :class:`QueryResult` carries its :class:`~mpc.stats.base.Layout` (computed client-side
from the query the client signed, :func:`result_layout`): ``.to_pandas()`` gives a
DataFrame with one row per cell (a (Multi)Index named by the ``group_by`` columns; one row
for an ungrouped result) and one column per value of the statistic; extras (test
statistics) go to ``df.attrs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mpc.protocol.spec import ColumnBound
from mpc.stats.base import Layout

if TYPE_CHECKING:
    from mpc.proto.v1 import coordinator_pb2
    from mpc.protocol.query import Query


@dataclass(frozen=True)
class PrivacyReport:
    """How much to trust a noisy result, and what it cost."""

    noise: str
    epsilon: float
    delta: float
    epsilon_spent: float
    rho_spent: float
    sigma: dict[str, float]  # noise standard deviation per value, data units
    error_bound_95: dict[str, float]  # |released - exact| <= this with probability >= 95%
    # What each sigma is: "exact", "delta-method" (first-order, every noise included) or
    # "upper bound"; the 95% bounds are proven bounds either way.
    error_kind: dict[str, str] | None = None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class QueryResult:
    """A revealed aggregate. ``values[i]`` belongs to ``labels[i]`` (one label per column)."""

    job_id: str
    statistic: str
    dataset: str
    labels: tuple[str, ...]
    values: np.ndarray
    parties: tuple[str, ...]
    tolerance: float
    frac_bits: int
    bounds: tuple[ColumnBound, ...]
    privacy: PrivacyReport | None = None
    model: dict[str, object] | None = None  # training jobs: the model (see TrainResult)
    # Worst-case fixed-point error per label (``tolerance`` is the largest of them).
    tolerances: dict[str, float] | None = None
    #: How ``values`` read as a table (None: not known, e.g. a result fetched by job id).
    layout: Layout | None = None

    @property
    def grouped(self) -> bool:
        return self.layout is not None and bool(self.layout.index_names)

    def table_layout(self) -> Layout:
        """The result's layout; without one, a single row (one value per label) or a single
        column of values."""
        if self.layout is not None and self.layout.size == self.values.size:
            return self.layout
        if len(self.labels) == self.values.size:
            return Layout(index=[()], index_names=[], columns=list(self.labels))
        column = self.labels[0] if len(self.labels) == 1 else "value"
        return Layout(
            index=[(str(i),) for i in range(self.values.size)],
            index_names=["index"],
            columns=[column],
        )

    def to_pandas(self) -> Any:
        """The result as a :class:`pandas.DataFrame`: one row per cell, indexed by the
        ``group_by`` columns (one row for an ungrouped result), one column per value of the
        statistic; test statistics, privacy and tolerances in ``df.attrs``. Suppressed cells
        are NaN. Needs pandas (``pip install 'mpc[analysis]'``)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_pandas needs pandas: pip install pandas (or the 'analysis' extra)"
            ) from None
        layout = self.table_layout()
        rows, cols = len(layout.index), len(layout.columns)
        table = np.asarray(self.values[: rows * cols], dtype=np.float64).reshape(rows, cols)
        if not layout.index_names:
            index: Any = pd.RangeIndex(rows)
        elif len(layout.index_names) == 1:
            index = pd.Index([t[0] for t in layout.index], name=layout.index_names[0])
        else:
            index = pd.MultiIndex.from_tuples(layout.index, names=layout.index_names)
        frame = pd.DataFrame(table, index=index, columns=list(layout.columns))
        extras = self.values[rows * cols :]
        frame.attrs.update({name: float(v) for name, v in zip(layout.extras, extras, strict=False)})
        frame.attrs.update(
            {
                "job_id": self.job_id,
                "statistic": self.statistic,
                "dataset": self.dataset,
                "parties": list(self.parties),
                "tolerance": self.tolerance,
                "privacy": self.privacy.to_json() if self.privacy else None,
            }
        )
        return frame

    def as_dict(self) -> dict[str, float]:
        if len(self.labels) != self.values.size:
            raise ValueError("as_dict is for one value per label; use .values for vectors")
        return {label: float(v) for label, v in zip(self.labels, self.values, strict=True)}

    @property
    def value(self) -> float:
        """The single value of a one-column result."""
        if self.values.size != 1:
            raise ValueError(f"result has {self.values.size} values; use .values or .as_dict()")
        return float(self.values[0])

    def to_json(self, include_values: bool = True) -> dict[str, object]:
        data: dict[str, object] = {
            "job_id": self.job_id,
            "statistic": self.statistic,
            "dataset": self.dataset,
            "parties": list(self.parties),
            "frac_bits": self.frac_bits,
            "tolerance": self.tolerance,
            "tolerances": self.tolerances,
            "bounds": {b.column: [b.lo, b.hi] for b in self.bounds},
        }
        if include_values:
            # Suppressed cells (NaN: an exact histogram's small counts) are JSON null.
            values = [None if np.isnan(v) else float(v) for v in self.values.tolist()]
            if len(self.labels) == self.values.size:
                data["values"] = dict(zip(self.labels, values, strict=True))
            else:
                data["values"] = values
            suppressed = int(np.count_nonzero(np.isnan(self.values)))
            if suppressed:
                data["suppressed_cells"] = suppressed
            if self.grouped and self.layout is not None:
                data["groups"] = self._groups_json(values)
        data["length"] = int(self.values.size)
        data["privacy"] = self.privacy.to_json() if self.privacy else None
        return data

    def _groups_json(self, values: list[float | None]) -> list[dict[str, object]]:
        """One object per cell: its key values and the statistic's values."""
        assert self.layout is not None
        layout = self.layout
        cols = len(layout.columns)
        return [
            {
                "keys": dict(zip(layout.index_names, key, strict=True)),
                "values": dict(zip(layout.columns, values[i * cols : (i + 1) * cols], strict=True)),
            }
            for i, key in enumerate(layout.index)
        ]


def result_from_header(header: coordinator_pb2.ResultHeader, values: np.ndarray) -> QueryResult:
    """A finished job's result from the coordinator's result header and its values."""
    return QueryResult(
        job_id=header.job_id,
        statistic=header.statistic,
        dataset=header.dataset,
        labels=tuple(header.labels),
        values=values,
        parties=tuple(header.parties),
        tolerance=header.tolerance,
        frac_bits=header.frac_bits,
        bounds=tuple(ColumnBound(b.column, b.lo, b.hi) for b in header.bounds),
        privacy=PrivacyReport(
            noise=header.privacy.noise,
            epsilon=header.privacy.epsilon,
            delta=header.privacy.delta,
            epsilon_spent=header.privacy.epsilon_spent,
            rho_spent=header.privacy.rho_spent,
            sigma={v.label: v.sigma for v in header.privacy.values},
            error_bound_95={v.label: v.error_bound_95 for v in header.privacy.values},
            error_kind={v.label: v.error_kind for v in header.privacy.values if v.error_kind}
            or None,
        )
        if header.HasField("privacy")
        else None,
        model=json.loads(header.model_json) if header.model_json else None,
        tolerances={t.label: t.tolerance for t in header.tolerances} or None,
    )


def result_layout(result: QueryResult, query: Query) -> Layout | None:
    """The layout of ``result``, computed from the query the client signed and the public
    result header (bounds, parties, ``frac_bits``); None when it cannot be rebuilt."""
    from mpc.errors import MpcError
    from mpc.protocol.spec import JobSpec, Participant, PrivacySpec, Statistic
    from mpc.stats import definition
    from mpc.stats.base import default_layout

    try:
        statistic = Statistic(result.statistic)
        privacy = (
            PrivacySpec(query.noise, query.epsilon, query.delta, 0)
            if query.noise.value != "none"
            else None
        )
        spec = JobSpec(
            job_id=result.job_id,
            statistic=statistic,
            dataset=result.dataset,
            columns=result.bounds,
            frac_bits=result.frac_bits,
            participants=tuple(Participant(p, 0) for p in sorted(result.parties)),
            privacy=privacy,
            bin_edges=query.bin_edges,
            where=query.where,
            group_by=query.group_by,
            quantiles=query.quantiles,
        )
        own = definition(statistic).layout
        return own(spec) if own is not None else default_layout(list(result.labels))
    except (MpcError, ValueError):
        return None


@dataclass(frozen=True)
class TrainResult:
    """A trained model: ``model`` is the JSON object ``mpc train --out`` writes."""

    job_id: str
    model: dict[str, object]
    labels: tuple[str, ...]  # "intercept", then the features
    values: np.ndarray  # intercept and coefficients on the original feature scale
    privacy: PrivacyReport | None = None

    @property
    def curve(self) -> list[dict[str, float]]:
        curve: list[dict[str, float]] = list(self.model.get("curve") or [])  # type: ignore[call-overload]
        return curve

    @property
    def evaluation(self) -> dict[str, float | None] | None:
        return self.model.get("evaluation")  # type: ignore[return-value]

    def predict(self, X: object) -> np.ndarray:
        """Predictions for new rows: values (linear) or P(class 1) (logistic). ``X``: a
        DataFrame or mapping with the feature columns, or a 2-D array in feature order;
        features are clamped to the training bounds, as in training."""
        from mpc.training import predict_rows

        return predict_rows(self.values, self.labels, self.model, X)

    def predict_class(self, X: object, threshold: float = 0.5) -> np.ndarray:
        """Class labels (0/1) of a logistic model: ``predict(X) >= threshold``."""
        from mpc.training import predict_class

        return predict_class(self.values, self.labels, self.model, X, threshold=threshold)

    def curve_frame(self) -> object:
        """The training curve as a pandas DataFrame (one row per round)."""
        import pandas as pd

        return pd.DataFrame(self.curve)

    def to_pandas(self) -> object:
        """The coefficients as a pandas DataFrame (one row per label)."""
        import pandas as pd

        return pd.DataFrame({"coefficient": self.values}, index=list(self.labels))


__all__ = [
    "PrivacyReport",
    "QueryResult",
    "TrainResult",
    "result_from_header",
    "result_layout",
]
