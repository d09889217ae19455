"""Fixed-point encoding of reals into the ring Z_2^64, and the headroom check.

Pure module: no I/O. Ring elements are numpy ``uint64`` arrays; numpy's unsigned arithmetic
wraps modulo 2^64, which is exactly the ring addition the secure sum needs, so no Python loop
ever touches an element.

A real ``v`` is encoded as ``round(v * 2^f)`` (round half to even), held as a two's-complement
int64 and viewed as uint64. Decoding views the ring element as int64 and divides by ``2^f``.
Decoding is only correct while the true aggregate lies in ``[-2^63, 2^63)``: the headroom
check proves that from *public* information (declared bounds, fractional bits and the parties'
public row limits) before any data is touched, and refuses the job otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mpc.errors import InputDataError, QueryError

RING_BITS = 64
#: Largest magnitude a decoded aggregate may reach (exclusive): the int64 range.
SIGNED_LIMIT = 2**63
#: Largest fractional-bit setting we accept; beyond this even a single unit value wastes range.
MAX_FRAC_BITS = 48
DEFAULT_FRAC_BITS = 16

RingVector = npt.NDArray[np.uint64]
FloatVector = npt.NDArray[np.float64]


def _check_frac_bits(frac_bits: int) -> None:
    if not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise QueryError(f"frac_bits must be between 0 and {MAX_FRAC_BITS}, got {frac_bits}")


def encode(values: npt.ArrayLike, frac_bits: int) -> RingVector:
    """Encode a float64 array as fixed point in Z_2^64.

    Raises :class:`InputDataError` for NaN or infinity and for values whose encoding would not
    fit in int64. The message never includes the offending value.
    """
    _check_frac_bits(frac_bits)
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise InputDataError("cannot encode NaN or infinity")
    # Multiplying by a power of two is exact in binary floating point, so the only rounding is
    # the explicit rint below (half to even, the IEEE default: unbiased over many values).
    scaled = np.rint(array * math.ldexp(1.0, frac_bits))  # = np.ldexp(array, f), ~30x faster
    if scaled.size and float(np.max(np.abs(scaled))) >= SIGNED_LIMIT:
        raise InputDataError(
            f"a value is too large to encode with {frac_bits} fractional bits; "
            "lower frac_bits or the bounds"
        )
    return scaled.astype(np.int64).view(np.uint64)


#: The largest magnitude :func:`encode_saturating` produces: below 2^63 with room for float64
#: rounding (2^63 itself is a float64 and would overflow int64).
_SATURATION = float(SIGNED_LIMIT - 2**11)


def encode_saturating(values: npt.ArrayLike, frac_bits: int) -> RingVector:
    """Encode like :func:`encode`, but never fail: a party's per-row arithmetic saturates.

    NaN encodes as 0 and anything beyond the int64 range as the nearest representable end.
    Parties use this for everything computed from their rows, so no value of a row can turn
    into an error (an error that depends on data is an oracle a client can binary-search).
    The headroom proof, re-done by every party from the signed spec before it reads data,
    already guarantees that honest jobs never reach the saturation points; this is the
    backstop that keeps failures a function of the spec alone.
    """
    _check_frac_bits(frac_bits)
    return encode_saturating_in_place(np.array(values, dtype=np.float64), frac_bits)


def encode_saturating_in_place(scaled: FloatVector, frac_bits: int) -> RingVector:
    """:func:`encode_saturating` of a float64 array the caller hands over (it is
    overwritten): scale, round, clamp in place, then one conversion. NaN is looked for with
    one sum (after the clamp no infinity is left to make one), not with ``nan_to_num``'s
    passes: ~6x faster, the same words."""
    _check_frac_bits(frac_bits)
    with np.errstate(all="ignore"):
        scaled *= math.ldexp(1.0, frac_bits)  # exact, like np.ldexp (which is ~30x slower)
        np.rint(scaled, out=scaled)
        np.clip(scaled, -_SATURATION, _SATURATION, out=scaled)  # +-inf -> the ends
        if np.isnan(np.add.reduce(scaled, axis=None)):
            scaled[np.isnan(scaled)] = 0.0
    return scaled.astype(np.int64).view(np.uint64)


def saturate(values: npt.ArrayLike, lo: float, hi: float) -> FloatVector:
    """Clamp to ``[lo, hi]``; NaN becomes ``lo`` and infinities the nearest end (never fails).

    ``fmax`` returns its non-NaN argument, so one pass of each maps NaN and -inf to ``lo``
    and +inf to ``hi`` (~10x faster than ``nan_to_num`` and ``clip``, same values).
    """
    with np.errstate(all="ignore"):
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 0:
            return np.asarray(np.fmin(np.fmax(array, lo), hi), dtype=np.float64)
        out = np.fmax(array, lo)
        np.fmin(out, hi, out=out)
        return out


def decode(ring_values: RingVector, frac_bits: int) -> FloatVector:
    """Decode ring elements (two's complement) back to float64."""
    _check_frac_bits(frac_bits)
    signed = np.asarray(ring_values, dtype=np.uint64).view(np.int64)
    out = signed.astype(np.float64)
    out *= math.ldexp(1.0, -frac_bits)  # exact (integers times 2^-f stay normal floats)
    return out


def ring_sum(vectors: Sequence[RingVector]) -> RingVector:
    """Add ring vectors elementwise modulo 2^64."""
    if not vectors:
        raise ValueError("ring_sum needs at least one vector")
    total = np.array(vectors[0], dtype=np.uint64, copy=True)
    for vector in vectors[1:]:
        np.add(total, vector, out=total)  # wraps modulo 2^64 by design
    return total


def resolution(frac_bits: int) -> float:
    """The smallest representable step, 2^-f."""
    return math.ldexp(1.0, -frac_bits)


def encoding_tolerance(total_rows: int, frac_bits: int) -> float:
    """Worst-case absolute error of a sum of ``total_rows`` encoded values (half a step each)."""
    return total_rows * math.ldexp(1.0, -frac_bits - 1)


@dataclass(frozen=True)
class Component:
    """One entry of a local statistic for the headroom check.

    ``per_row`` is the largest magnitude one row can add to this entry, in real units (for a
    clamped sum over ``[lo, hi]`` it is ``max(|lo|, |hi|)``; for a count it is 1).
    ``name`` says what to change in the error message. ``knob`` is the hint when the entry
    is too large: a template whose ``{}`` receives the largest allowed value of the knob,
    ``((largest per_row) / knob_scale) ** (1 / knob_power)`` (``per_row = knob_scale *
    knob ** knob_power``); the default names the column's bounds; ``""`` means no setting
    of the entry itself helps (only ``frac_bits`` or ``max_rows`` do).
    """

    name: str
    per_row: float
    extra: float = 0.0  # additive slack in real units, e.g. a DP noise tail bound
    knob: str = "narrow the bounds to at most +/-{}"
    knob_scale: float = 1.0
    knob_power: float = 1.0


def check_headroom(components: Sequence[Component], total_rows: int, frac_bits: int) -> None:
    """Prove every aggregate entry stays inside the signed range, or refuse the job.

    The bound is ``total_rows * ceil(per_row * 2^f) + ceil(extra * 2^f) < 2^63``, computed in
    exact integer arithmetic. ``total_rows`` is the sum of the parties' *public* row limits,
    not their real row counts, so the check itself reveals nothing.
    """
    _check_frac_bits(frac_bits)
    if total_rows < 0:
        raise QueryError("total_rows must be non-negative")
    for component in components:
        if not (math.isfinite(component.per_row) and math.isfinite(component.extra)):
            raise QueryError(f"{component.name}: bounds must be finite numbers")
        if _worst_case(component, total_rows, frac_bits) < SIGNED_LIMIT:
            continue
        scale = 1 << frac_bits
        slack = math.ceil(abs(component.extra) * scale)
        if slack >= SIGNED_LIMIT - 1 - max(1, total_rows):
            raise QueryError(
                f"{component.name}: the DP noise alone could wrap the 64-bit ring with "
                f"{frac_bits} fractional bits; lower frac_bits, narrow the bounds or raise "
                "epsilon"
            )
        max_abs = math.floor((SIGNED_LIMIT - 1 - slack) / max(1, total_rows)) / scale
        per_row_int = max(1, math.ceil(abs(component.per_row) * scale))
        max_rows = max(0, (SIGNED_LIMIT - 1 - slack) // per_row_int)
        fitting_bits = [
            f for f in range(frac_bits) if _worst_case(component, total_rows, f) < SIGNED_LIMIT
        ]
        hints = []
        if component.knob and max_abs > 0 and "{}" in component.knob:
            value = (max_abs / component.knob_scale) ** (1.0 / component.knob_power)
            hints.append(component.knob.format(f"{_round_down(value):.6g}"))
        elif component.knob and "{}" not in component.knob:
            hints.append(component.knob)
        if fitting_bits:
            hints.append(f"lower frac_bits to {max(fitting_bits)}")
        if max_rows >= 1:
            hints.append(f"lower the parties' max_rows to {max_rows} in total")
        fix = ", or ".join(hints) if hints else "nothing in this job's settings fits"
        raise QueryError(
            f"{component.name}: the aggregate could wrap the 64-bit ring "
            f"({total_rows} rows x max |value| {component.per_row:g} with {frac_bits} "
            f"fractional bits). To fix: {fix[:1].upper()}{fix[1:]}"
        )


def _round_down(value: float) -> float:
    """``value`` rounded down to 6 significant digits (a suggested limit must itself fit)."""
    if value <= 0 or not math.isfinite(value):
        return value
    unit = 10.0 ** (math.floor(math.log10(value)) - 5)
    return math.floor(value / unit * (1 - 1e-12)) * unit


def _worst_case(component: Component, total_rows: int, frac_bits: int) -> int:
    # Each encoded value is at most round(per_row * 2^f) <= ceil(per_row * 2^f).
    scale = 1 << frac_bits
    per_row_int = math.ceil(abs(component.per_row) * scale)
    return total_rows * per_row_int + math.ceil(abs(component.extra) * scale)


__all__ = [
    "DEFAULT_FRAC_BITS",
    "MAX_FRAC_BITS",
    "RING_BITS",
    "Component",
    "FloatVector",
    "RingVector",
    "check_headroom",
    "decode",
    "encode",
    "encode_saturating",
    "encode_saturating_in_place",
    "encoding_tolerance",
    "resolution",
    "ring_sum",
    "saturate",
]
