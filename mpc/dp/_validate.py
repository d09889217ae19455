"""Parameter validation shared by the DP modules.

Noise scales are taken as exact rationals (``int`` or :class:`fractions.Fraction`); a float is
refused there because its binary value is rarely the number the caller meant, and an inexact
scale would make the sampled distribution differ from the one the privacy proof is about.
Privacy targets (epsilon, delta) and sampling rates may be floats: they only feed accounting,
which rounds conservatively.

Error messages name the parameter and its (public) value; no data or noise ever reaches here.
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Rational

from mpc.errors import ConfigError

RationalLike = int | Fraction
"""An exact rational: what noise scales, sensitivities and bounds must be."""

RealLike = int | float | Fraction
"""A privacy target or rate; floats are converted exactly (their binary value)."""


def exact(value: object, name: str) -> Fraction:
    """``value`` as a Fraction; refuse floats, bools and anything not rational."""
    if isinstance(value, bool) or not isinstance(value, Rational):
        raise TypeError(
            f"{name} must be an int or fractions.Fraction, not {type(value).__name__}; "
            "pass e.g. Fraction('5.35') so the noise scale is exact"
        )
    return Fraction(value)


def positive_exact(value: object, name: str) -> Fraction:
    """``value`` as a Fraction that must be > 0."""
    result = exact(value, name)
    if result <= 0:
        raise ConfigError(f"{name} must be > 0, got {result}")
    return result


def real(value: object, name: str) -> Fraction:
    """A finite real (int, float or Fraction) as an exact Fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    return Fraction(value)


def count(value: object, name: str, *, minimum: int = 0) -> int:
    """A Python int >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value
