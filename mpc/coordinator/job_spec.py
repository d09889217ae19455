"""From a query and the parties' public schemas to a signed-ready job spec with its ring
headroom proven (and its noise plan), at the most precise ``frac_bits`` that proof allows.

A mixin of :class:`mpc.coordinator.jobs.JobRunner`; pure apart from the runner's settings
(default ``frac_bits``, colluders). Every party re-proves the chosen spec itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mpc.coordinator.mirror import mirror_policies
from mpc.errors import QueryError
from mpc.protocol.query import Query
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.spec import (
    ClientAuth,
    ColumnBound,
    JobSpec,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
)
from mpc.stats.privacy import NoisePlan, prove_headroom

#: The most fractional bits a query without ``frac_bits`` gets (precision ~1e-12), and with
#: differential privacy (where the noise is far above the rounding anyway).
AUTO_FRAC_BITS_MAX = 40
AUTO_FRAC_BITS_MAX_DP = 24
_PRECISION_STATISTICS = frozenset(
    {Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE, Statistic.VECTOR_SUM}
)


class SpecBuilderMixin:
    """Job specs for :class:`mpc.coordinator.jobs.JobRunner` (which sets these attributes)."""

    _default_frac_bits: int
    _colluders: int | None

    def _precise_spec(
        self,
        job_id: str,
        query: Query,
        schemas: dict[str, list[DatasetInfo]],
        client: ClientAuth | None = None,
    ) -> tuple[JobSpec, NoisePlan | None]:
        """The job spec and its noise plan, with the ring headroom proven (else QueryError).

        When the client gave no ``frac_bits`` (a signed query's ``frac_bits`` is honoured
        exactly: parties compare), a sum, mean, variance or vector sum gets the most
        fractional bits whose headroom proof holds, noise tail included, up to
        :data:`AUTO_FRAC_BITS_MAX` (:data:`AUTO_FRAC_BITS_MAX_DP` with DP, where the noise
        dwarfs the rounding), and never fewer than the coordinator's default: a spec the
        default cannot prove is refused with the default's message, as before. Counts and
        histograms are exact at any setting and keep the default. Every party re-proves the
        chosen spec itself.
        """
        if query.frac_bits is not None or query.statistic not in _PRECISION_STATISTICS:
            candidates = [query.frac_bits]
        else:
            default = self._default_frac_bits
            dp_on = query.noise is not NoiseMode.NONE
            cap = AUTO_FRAC_BITS_MAX_DP if dp_on else AUTO_FRAC_BITS_MAX
            candidates = list(range(max(cap, default), default - 1, -1))
        return self.most_precise_spec(job_id, query, schemas, candidates, client)

    def most_precise_spec(
        self,
        job_id: str,
        query: Query,
        schemas: dict[str, list[DatasetInfo]],
        candidates: Sequence[int | None],
        client: ClientAuth | None = None,
    ) -> tuple[JobSpec, NoisePlan | None]:
        """The spec at the first ``frac_bits`` of ``candidates`` (None: the default) whose
        headroom proof holds, with its noise plan; else the last candidate's QueryError."""
        last: QueryError | None = None
        for bits in candidates:
            spec = self._build_spec(job_id, replace(query, frac_bits=bits), schemas, client)
            try:
                return spec, prove_headroom(spec)
            except QueryError as exc:
                last = exc
        assert last is not None, "no frac_bits candidate"
        raise last

    def _build_spec(
        self,
        job_id: str,
        query: Query,
        schemas: dict[str, list[DatasetInfo]],
        client: ClientAuth | None = None,
    ) -> JobSpec:
        datasets: dict[str, DatasetInfo] = {}
        for pid, infos in schemas.items():
            found = next((d for d in infos if d.name == query.dataset), None)
            if found is None:
                raise QueryError(f"unknown dataset {query.dataset!r} at party {pid!r}")
            datasets[pid] = found
        mirror_policies(query, datasets)
        kinds = {d.kind for d in datasets.values()}
        wanted_kind = "vector" if query.statistic is Statistic.VECTOR_SUM else "table"
        if kinds != {wanted_kind}:
            raise QueryError(
                f"dataset {query.dataset!r} is not a {wanted_kind} dataset at every party; "
                f"{query.statistic.value} needs one"
            )
        given = {b.column: b for b in query.bounds}
        columns = ("value",) if wanted_kind == "vector" else query.columns
        bounds: list[ColumnBound] = []
        for column in columns:
            declared: set[tuple[float | None, float | None]] = set()
            undeclared: list[str] = []  # parties that declare no bounds for the column
            for pid, info in datasets.items():
                schema = next((c for c in info.columns if c.name == column), None)
                if schema is None:
                    raise QueryError(
                        f"unknown column {column!r} in dataset {query.dataset!r} at party {pid!r}"
                    )
                declared.add((schema.lo, schema.hi))
                if schema.lo is None or schema.hi is None:
                    undeclared.append(pid)
            lo, hi = next(iter(declared))
            if query.statistic is Statistic.HISTOGRAM:
                # Values are clamped into the first/last bin: the edges are the bounds.
                bounds.append(ColumnBound(column, query.bin_edges[0], query.bin_edges[-1]))
            elif column in given:
                bounds.append(given[column])
            elif len(declared) == 1 and lo is not None and hi is not None:
                bounds.append(ColumnBound(column, lo, hi))
            elif len(declared) > 1 and undeclared:
                raise QueryError(
                    f"party {', '.join(sorted(undeclared))} declares no bounds for column "
                    f"{column!r} (other parties do); give bounds in the query (CLI: --bounds "
                    "LO:HI; Python: bounds=)"
                )
            elif len(declared) > 1:
                raise QueryError(
                    f"parties declare different bounds for column {column!r}; give bounds in "
                    "the query (CLI: --bounds LO:HI; Python: bounds=)"
                )
            else:
                raise QueryError(
                    f"no bounds for column {column!r}: give bounds in the query (CLI: --bounds "
                    "LO:HI; Python: bounds=) or declare lo/hi in the parties' dataset schema"
                )
        lengths = {d.vector_length for d in datasets.values()}
        if wanted_kind == "vector" and len(lengths) != 1:
            raise QueryError(f"vector dataset {query.dataset!r} has different lengths at parties")
        privacy = None
        if query.noise is not NoiseMode.NONE:
            n = len(datasets)
            colluders = n - 1 if self._colluders is None else self._colluders
            privacy = PrivacySpec(query.noise, query.epsilon, query.delta, colluders)
        return JobSpec(
            privacy=privacy,
            job_id=job_id,
            statistic=query.statistic,
            dataset=query.dataset,
            columns=tuple(bounds),
            frac_bits=self._default_frac_bits if query.frac_bits is None else query.frac_bits,
            participants=tuple(
                Participant(pid, datasets[pid].max_rows) for pid in sorted(datasets)
            ),
            vector_length=lengths.pop() if wanted_kind == "vector" else 0,
            training=query.training,
            bin_edges=query.bin_edges,
            client=client,
            where=query.where,
            group_by=query.group_by,
            quantiles=query.quantiles,
        )


__all__ = ["AUTO_FRAC_BITS_MAX", "AUTO_FRAC_BITS_MAX_DP", "SpecBuilderMixin"]
