"""Conservative rounding of floating-point privacy quantities.

Accounting formulas (logs, exps, sums of logs) are evaluated in double precision. A result is
reported only after being moved *up* by more than its worst-case rounding error, so that float
error can only overstate a privacy loss, never understate it:

* ``REL_MARGIN`` (1e-9) relative to the result itself, and
* ``ABS_MARGIN`` (1e-13) times ``magnitude``, a bound on the absolute values of the terms the
  result was computed from. This covers cancellation (a small result computed from large
  terms), where a margin relative to the result alone would not. Each formula here takes at most
  a few dozen rounding steps of relative size 2**-53 ~ 1.1e-16 on values bounded by
  ``magnitude``; 1e-13 is several hundred times that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

REL_MARGIN = 1e-9
ABS_MARGIN = 1e-13


def round_up(value: float, magnitude: float = 0.0) -> float:
    """``value`` moved up past its rounding error (``magnitude``: bound on the inputs' size)."""
    if math.isinf(value) or math.isnan(value):
        return value
    return value + abs(value) * REL_MARGIN + abs(magnitude) * ABS_MARGIN + 1e-300


def log_sum_exp(terms: Sequence[float]) -> float:
    """``log(sum(exp(t)))``, stable: the largest term is factored out and the rest summed exactly
    (``math.fsum``), so the error is a few ulps of the largest |term|."""
    top = max(terms)
    if top == -math.inf:
        return -math.inf
    if top == math.inf:
        return math.inf
    return top + math.log(math.fsum(math.exp(t - top) for t in terms))


def log_sum_exp_bounded(terms: Sequence[float], magnitudes: Sequence[float]) -> tuple[float, float]:
    """:func:`log_sum_exp` and a magnitude bound for :func:`round_up`.

    ``magnitudes[k]`` bounds the size of the inputs term k was computed from, so its absolute
    error is a few ulps of it. The error of the result is the weighted mean of the terms' errors
    (weights ``exp(t_k - result)``, which sum to 1) plus a few ulps of the result: terms that
    contribute nothing to the sum contribute nothing to the error either.
    """
    total = log_sum_exp(terms)
    if math.isinf(total):
        return total, 0.0
    weighted = math.fsum(
        math.exp(t - total) * m for t, m in zip(terms, magnitudes, strict=True) if t > -math.inf
    )
    return total, weighted + abs(total) + 1.0
