"""A fake party data source for the analyses' unit tests: ``aggregate`` through the numpy
reference engine over in-memory arrays, and a runner that sums several parties' vectors in the
ring, optionally adds noise of a noise plan's scale, decodes and finishes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from mpc.protocol.frame import Aggregates, Request, aggregate_arrays
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
)
from mpc.ring import FloatVector, decode, ring_sum
from mpc.stats import definition
from mpc.stats.analyses._common import noise_variance

Columns = Mapping[str, npt.NDArray[np.generic]]


class FakeData:
    """One party's rows (complete: no missing values)."""

    def __init__(self, columns: Columns) -> None:
        self.columns = dict(columns)
        self.requests: list[Request] = []

    def aggregate(self, request: Request) -> Aggregates:
        self.requests.append(request)
        return aggregate_arrays(request, {c: self.columns[c] for c in request.columns()})

    def table(self, name: str, columns: list[str]) -> object:
        raise AssertionError("analyses read rows only through aggregate()")

    def vector(self, name: str) -> FloatVector:
        raise AssertionError("analyses read rows only through aggregate()")

    def batches(
        self, name: str, columns: list[str], batch_rows: int = 65536
    ) -> Iterator[dict[str, FloatVector]]:
        raise AssertionError("analyses read rows only through aggregate()")


def make_spec(
    statistic: Statistic,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    *,
    frac_bits: int = 16,
    epsilon: float | None = None,
    delta: float = 1e-6,
    noise: NoiseMode = NoiseMode.CENTRAL,
    parties: int = 3,
    max_rows: int = 100_000,
    **fields: object,
) -> JobSpec:
    privacy = None if epsilon is None else PrivacySpec(noise, epsilon, delta, 0)
    return JobSpec(
        job_id="analysis-test",
        statistic=statistic,
        dataset="d",
        columns=tuple(ColumnBound(c, lo, hi) for c, (lo, hi) in (bounds or {}).items()),
        frac_bits=frac_bits,
        participants=tuple(Participant(f"p{i}", max_rows) for i in range(parties)),
        privacy=privacy,
        **fields,  # type: ignore[arg-type]
    )


def local_vectors(spec: JobSpec, parties: Sequence[Columns]) -> list[np.ndarray]:
    stat = definition(spec.statistic)
    out = []
    for columns in parties:
        vector = np.asarray(stat.local(spec, FakeData(columns), None), dtype=np.uint64)
        assert vector.shape == (stat.output_length(spec),)
        out.append(vector)
    return out


def reveal(spec: JobSpec, parties: Sequence[Columns]) -> FloatVector:
    """The decoded secure sum of every party's vector (no noise)."""
    return decode(ring_sum(local_vectors(spec, parties)), spec.frac_bits)


def run(
    spec: JobSpec, parties: Sequence[Columns], rng: np.random.Generator | None = None
) -> FloatVector:
    """local -> ring sum -> (noise of each group's planned variance) -> decode -> finish."""
    stat = definition(spec.statistic)
    total = ring_sum(local_vectors(spec, parties))
    if rng is not None:
        total = add_planned_noise(spec, total, rng)
    values = stat.finish(spec, decode(total, spec.frac_bits))
    assert stat.layout is not None
    assert values.shape == (stat.layout(spec).size,)
    return values


def add_planned_noise(spec: JobSpec, total: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``total`` plus rounded normal noise of each group's planned variance (ring arithmetic)."""
    stat = definition(spec.statistic)
    assert stat.dp_groups is not None
    groups = stat.dp_groups(spec)
    noise = np.zeros(total.size, dtype=np.int64)
    for name, start, stop, *_ in groups:
        sd = np.sqrt(noise_variance(spec, name, groups)) * 2.0**spec.frac_bits
        noise[start:stop] = np.rint(rng.normal(0.0, sd, stop - start)).astype(np.int64)
    return np.add(total, noise.view(np.uint64))


def split(columns: Columns, parties: int) -> list[dict[str, npt.NDArray[np.generic]]]:
    """Rows dealt out to ``parties`` parties in uneven contiguous blocks."""
    rows = len(next(iter(columns.values())))
    cuts = [0, *sorted({rows // 5, rows // 2}), rows][: parties + 1]
    cuts[-1] = rows
    return [
        {name: values[a:b] for name, values in columns.items()} for a, b in itertools.pairwise(cuts)
    ]


def rho_share_sum(spec: JobSpec) -> Fraction:
    stat = definition(spec.statistic)
    assert stat.dp_groups is not None
    return sum((share for *_, share in stat.dp_groups(spec)), Fraction(0))
