"""Registry of local statistics and their public post-processing.

Every job is *local statistic -> secure sum -> public post-processing*. An entry here says,
for one statistic: how long its vector is, what one row can add to each entry (for the
headroom proof), how a party computes it from its rows (clamping to the declared bounds
itself: bounds are enforced by the code, not trusted; encoding saturates, so no row can make
the computation fail), and what to do with the revealed sum.
Adding a statistic is adding an entry, not a protocol.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from mpc.errors import QueryError
from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector, encode_saturating_in_place
from mpc.stats.base import Layout, LocalData, StatisticDef, default_layout

if TYPE_CHECKING:
    #: Every statistic's definition (built on first use: see :func:`_registry`).
    REGISTRY: dict[Statistic, StatisticDef]


class EncodedVector:
    """A vector clamped and encoded one chunk at a time, as the party streams it.

    The same words as ``encode(np.clip(values, lo, hi), frac_bits)``, but the whole encoded
    vector and its temporaries never exist at once (peak per party ~1x the input instead of
    ~3x), and the first chunk leaves before the last one is encoded.
    """

    def __init__(self, values: FloatVector, lo: float, hi: float, frac_bits: int) -> None:
        self._values = values
        self._lo = lo
        self._hi = hi
        self._frac_bits = frac_bits

    @property
    def size(self) -> int:
        return int(self._values.size)

    def chunk(self, start: int, stop: int) -> RingVector:
        values = np.clip(np.asarray(self._values[start:stop], dtype=np.float64), self._lo, self._hi)
        return encode_saturating_in_place(values, self._frac_bits)  # the clamp's fresh copy

    def full(self) -> RingVector:
        return self.chunk(0, self.size)


def _vector_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> EncodedVector:
    vector = data.vector(spec.dataset)
    if vector.size != spec.vector_length:
        raise QueryError(
            f"dataset {spec.dataset!r} has length {vector.size}, the job expects "
            f"{spec.vector_length}"
        )
    bound = spec.columns[0]
    return EncodedVector(vector, bound.lo, bound.hi, spec.frac_bits)


def _bound_components(spec: JobSpec) -> list[Component]:
    return [Component(f"column {b.column!r}", max(abs(b.lo), abs(b.hi))) for b in spec.columns]


def _identity(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    return revealed


@cache
def _registry() -> dict[Statistic, StatisticDef]:
    """The registry, built on first use: the client imports this package (for
    :class:`~mpc.stats.base.Layout`) and should not pay for the analyses and training
    modules (``mpc query mean``'s start-up, tests/unit/test_cli_lazy_imports.py)."""
    from mpc.stats.analyses import REGISTRY as analyses
    from mpc.stats.basic import REGISTRY as basic
    from mpc.training import components, shape, step_length, train_local

    return {
        **basic,
        Statistic.VECTOR_SUM: StatisticDef(
            name=Statistic.VECTOR_SUM,
            output_length=lambda spec: spec.vector_length,
            components=lambda spec: _bound_components(spec)[:1],
            local=_vector_local,
            finish=_identity,
            labels=lambda spec: ["value"],
        ),
        # A training job: one vector per round, its kind set by the public round input
        # (mpc.training). The nominal length is a gradient step's; the coordinator passes
        # each round's length to collect_round.
        Statistic.TRAIN: StatisticDef(
            name=Statistic.TRAIN,
            output_length=step_length,
            components=components,
            local=train_local,
            finish=_identity,
            labels=lambda spec: ["intercept", *(b.column for b in shape(spec).features)],
        ),
        **analyses,
    }


def __getattr__(name: str) -> object:
    if name == "REGISTRY":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def definition(statistic: Statistic) -> StatisticDef:
    from mpc.stats.basic import REGISTRY as basic

    # The basic statistics (the registry's same entries) without the analyses and training
    # modules: the client looks its result's layout up here after every query.
    if statistic in basic:
        return basic[statistic]
    try:
        return _registry()[statistic]
    except KeyError:
        raise QueryError(f"statistic {statistic.value!r} is not available in this build") from None


__all__ = [
    "REGISTRY",
    "EncodedVector",
    "Layout",
    "LocalData",
    "StatisticDef",
    "default_layout",
    "definition",
]
