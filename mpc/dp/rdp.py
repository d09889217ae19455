"""Rényi-DP accounting for Poisson-subsampled noisy rounds, and RDP -> (epsilon, delta).

Neighbouring datasets differ by adding or removing one record; each round includes every record
independently with probability ``q`` (Poisson sampling, done by the data owner with a CSPRNG).
A round's RDP curve ``alpha -> rdp(alpha)`` composes over rounds by addition at each order.

Two per-round bounds are provided:

* :func:`rdp_poisson_subsampled_gaussian`: Mironov, Talwar, Zhang 2019 ("Rényi Differential
  Privacy of the Sampled Gaussian Mechanism", Sec. 3.3), exactly as ``dp-accounting``'s
  ``RdpAccountant`` and Opacus compute it: for integer orders the binomial expansion
  ``A_alpha = sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 z^2))``, for fractional orders
  MTZ's two-sided series with erfc terms; ``rdp = log(A_alpha)/(alpha-1)``. This is the bound for
  the *continuous* Gaussian mechanism with noise multiplier ``z = sigma/sensitivity``. For the
  discrete Gaussian with an integer shift the moments ``E[(mu1/mu0)^k]`` in ``A_alpha`` are
  *identical* (the shift by k*Delta maps the lattice onto itself, so the normalisers cancel), but
  MTZ's argument that the opposite divergence direction is no larger is written for the
  continuous Gaussian; we use this function for comparison with the public libraries.
* :func:`rdp_poisson_subsampled_zcdp`: the general upper bound of Zhu and Wang 2019 ("Poisson
  Subsampled Rényi Differential Privacy", ICML; the bound with the factor 3), valid for *any*
  mechanism whose RDP curve is known at the integer orders, here a rho-zCDP one
  (``rdp(l) = l * rho``). It covers the discrete Gaussian, central or distributed (with the
  Kairouz-Liu-Steinke rho), and is what the ledger charges for subsampled discrete-Gaussian
  rounds. It is capped by ``alpha * rho`` (subsampling never hurts, by quasi-convexity of the
  Rényi divergence).

Conversion to (epsilon, delta) uses the improved bound of Canonne, Kamath, Steinke 2020
(Prop. 12; also Asoodeh et al. 2020, eq. 20), the one ``dp-accounting`` uses:
``epsilon = rdp + log((alpha-1)/alpha) - (log(delta) + log(alpha)) / (alpha-1)``, minimised over
the orders, together with the KL (Bretagnolle-Huber) shortcut ``epsilon = 0`` when
``delta >= sqrt(1 - exp(-rdp))``; orders below 1.01 are skipped as in dp-accounting.

Numerics are double precision; every value returned is rounded *up* past its rounding error
(:mod:`mpc.dp._floats`), so float error can only overstate a privacy loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mpc.dp._floats import log_sum_exp_bounded, round_up
from mpc.dp._validate import RealLike, count, real
from mpc.errors import ConfigError

DEFAULT_ORDERS: tuple[float, ...] = (
    tuple(1.0 + x / 10.0 for x in range(1, 100))
    + tuple(float(a) for a in range(11, 64))
    + (128.0, 256.0, 512.0, 1024.0)
)
"""The orders ``dp-accounting``'s RdpAccountant uses by default."""

INTEGER_ORDERS: tuple[int, ...] = (*range(2, 65), 80, 96, 128, 192, 256, 384, 512, 768, 1024)
"""Integer orders used by the ledger (:class:`mpc.dp.accountant.PrivacyCost`)."""

_MAX_FRAC_TERMS = 1000


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    lo, hi = (a, b) if a < b else (b, a)
    if lo == -math.inf:
        return hi
    return hi + math.log1p(math.exp(lo - hi))


def _log_comb(n: float, k: float) -> float:
    """log |C(n, k)| for real n, integer k >= 0 (|.|: the binomial series for real n)."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_erfc(x: float) -> float:
    """log(erfc(x)), accurate also where erfc(x) underflows."""
    if x < 25.0:
        return math.log(math.erfc(x))
    # Asymptotic (Laurent) series of log(erfc(x)) at infinity; error below 1e-15 for x >= 25.
    return (
        -math.log(math.pi) / 2
        - math.log(x)
        - x * x
        - 0.5 * x**-2
        + 0.625 * x**-4
        - 37.0 / 24.0 * x**-6
        + 353.0 / 64.0 * x**-8
    )


def _log_a_int(q: float, z: float, alpha: int) -> tuple[float, float]:
    """log A_alpha for integer alpha, and a bound on the size of the terms summed."""
    log_q, log_1mq = math.log(q), math.log1p(-q)
    terms, sizes = [], []
    for k in range(alpha + 1):
        parts = (
            math.log(math.comb(alpha, k)),  # exact integer binomial, then its log
            k * log_q,
            (alpha - k) * log_1mq,
            (k * k - k) / (2.0 * z * z),
        )
        terms.append(math.fsum(parts))
        sizes.append(sum(map(abs, parts)))
    return log_sum_exp_bounded(terms, sizes)


def _log_a_frac(q: float, z: float, alpha: float) -> tuple[float, float]:
    """MTZ 2019 Sec. 3.3: the integrals over (-inf, z0] and [z0, inf) as two series."""
    log_a0 = log_a1 = -math.inf
    z0 = z * z * math.log(1.0 / q - 1.0) + 0.5
    log_q, log_1mq = math.log(q), math.log1p(-q)
    last_s0 = last_s1 = -math.inf
    terms: list[float] = []
    sizes: list[float] = []
    for i in range(_MAX_FRAC_TERMS):
        coef = _log_comb(alpha, i)
        j = alpha - i
        parts0 = (
            coef,
            i * log_q,
            j * log_1mq,
            (i * i - i) / (2.0 * z * z),
            math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2.0) * z)),
        )
        parts1 = (
            coef,
            j * log_q,
            i * log_1mq,
            (j * j - j) / (2.0 * z * z),
            math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2.0) * z)),
        )
        log_s0, log_s1 = math.fsum(parts0), math.fsum(parts1)
        terms += [log_s0, log_s1]
        sizes += [sum(map(abs, parts0)), sum(map(abs, parts1))]
        log_a0 = _log_add(log_a0, log_s0)
        log_a1 = _log_add(log_a1, log_s1)
        total = _log_add(log_a0, log_a1)
        if log_s0 < last_s0 and log_s1 < last_s1 and max(log_s0, log_s1) < total - 30.0:
            # The running total only decides when to stop; sum all terms in one go.
            return log_sum_exp_bounded(terms, sizes)
        last_s0, last_s1 = log_s0, log_s1
    return math.inf, 0.0  # did not converge: treat the order as useless (infinite RDP)


def _check_rate(q: RealLike) -> float:
    rate = real(q, "sampling rate q")
    if not 0 <= rate <= 1:
        raise ConfigError(f"sampling rate q must be in [0, 1], got {float(rate)}")
    return float(rate)


def _check_orders(orders: Sequence[float]) -> None:
    if not orders:
        raise ConfigError("at least one RDP order is needed")
    for order in orders:
        if not order > 1:
            raise ConfigError(f"RDP orders must be > 1, got {order}")


def rdp_poisson_subsampled_gaussian(
    q: RealLike, noise_multiplier: RealLike, orders: Sequence[float] = DEFAULT_ORDERS
) -> tuple[float, ...]:
    """Per-round RDP of the Poisson-subsampled Gaussian mechanism (MTZ 2019), rounded up.

    ``noise_multiplier`` is sigma / L2-sensitivity. Matches ``dp-accounting``.
    """
    rate = _check_rate(q)
    z = float(real(noise_multiplier, "noise_multiplier"))
    if z < 0:
        raise ConfigError(f"noise_multiplier must be >= 0, got {z}")
    _check_orders(orders)
    out = []
    for alpha in orders:
        magnitude = 0.0
        if rate == 0:
            value = 0.0
        elif z == 0 or math.isinf(alpha):
            value = math.inf
        elif rate == 1:
            value = alpha / (2.0 * z * z)
        else:
            if float(alpha).is_integer():
                log_a, magnitude = _log_a_int(rate, z, int(alpha))
            else:
                log_a, magnitude = _log_a_frac(rate, z, alpha)
            value, magnitude = log_a / (alpha - 1), magnitude / (alpha - 1)
        out.append(round_up(value, magnitude))
    return tuple(out)


def rdp_poisson_subsampled_zcdp(
    q: RealLike, rho: RealLike, orders: Sequence[int] = INTEGER_ORDERS
) -> tuple[float, ...]:
    """Per-round RDP of a Poisson-subsampled rho-zCDP mechanism (Zhu-Wang 2019), rounded up.

    Integer orders only. For order a, with eps(l) = l * rho::

        (a-1) rdp(a) <= log( (1-q)^(a-1) (1 + (a-1) q)
                             + C(a,2) q^2 (1-q)^(a-2) exp(eps(2))
                             + 3 sum_{l=3..a} C(a,l) q^l (1-q)^(a-l) exp((l-1) eps(l)) )

    and the result is capped by ``a * rho`` (the mechanism without subsampling).
    """
    rate = _check_rate(q)
    r = float(real(rho, "rho"))
    if r < 0:
        raise ConfigError(f"rho must be >= 0, got {r}")
    _check_orders(orders)
    out = []
    for alpha in orders:
        if isinstance(alpha, bool) or not isinstance(alpha, int):
            raise ConfigError(f"orders must be integers for this bound, got {alpha!r}")
        if rate == 0 or r == 0:
            out.append(0.0)
            continue
        plain = alpha * r
        if rate == 1:
            out.append(round_up(plain))
            continue
        log_q, log_1mq = math.log(rate), math.log1p(-rate)
        parts: list[tuple[float, ...]] = [((alpha - 1) * log_1mq, math.log1p((alpha - 1) * rate))]
        parts.append((math.log(math.comb(alpha, 2)), 2 * log_q, (alpha - 2) * log_1mq, 2 * r))
        parts.extend(
            (
                math.log(3.0),
                math.log(math.comb(alpha, ell)),
                ell * log_q,
                (alpha - ell) * log_1mq,
                (ell - 1) * ell * r,
            )
            for ell in range(3, alpha + 1)
        )
        total, magnitude = log_sum_exp_bounded(
            [math.fsum(p) for p in parts], [sum(map(abs, p)) for p in parts]
        )
        value, magnitude = total / (alpha - 1), magnitude / (alpha - 1)
        out.append(round_up(value, magnitude) if value < plain else round_up(plain))
    return tuple(out)


def compose_rdp(*curves: Sequence[float]) -> tuple[float, ...]:
    """Pointwise sum of RDP curves on the same orders (sequential composition)."""
    if not curves:
        raise ConfigError("nothing to compose")
    length = len(curves[0])
    if any(len(c) != length for c in curves):
        raise ConfigError("RDP curves to compose must be on the same orders")
    return tuple(
        round_up(math.fsum(values), math.fsum(map(abs, values)))
        for values in zip(*curves, strict=True)
    )


def scale_rdp(curve: Sequence[float], rounds: int) -> tuple[float, ...]:
    """RDP of ``rounds`` independent repetitions: ``rounds * rdp`` at each order."""
    n = count(rounds, "rounds")
    return tuple(round_up(n * value) for value in curve)


def epsilon_from_rdp(
    orders: Sequence[float], rdp: Sequence[float], delta: RealLike
) -> tuple[float, float]:
    """Smallest epsilon (rounded up) of (epsilon, delta)-DP implied by the RDP curve.

    Returns ``(epsilon, order)`` with the order that achieves it.
    """
    d = float(real(delta, "delta"))
    if not 0 < d < 1:
        raise ConfigError(f"delta must be in (0, 1), got {d}")
    if len(orders) != len(rdp):
        raise ConfigError("orders and rdp must have the same length")
    _check_orders(orders)
    best, best_order = math.inf, float(orders[0])
    for alpha, value in zip(orders, rdp, strict=True):
        if value < 0:
            raise ConfigError("RDP values must be >= 0")
        if d * d > round_up(-math.expm1(-value)):
            eps = 0.0  # TV <= sqrt(1 - exp(-KL)) <= delta: (0, delta)-DP
        elif alpha > 1.01:
            parts = (
                value,
                math.log1p(-1.0 / alpha),
                -math.log(d) / (alpha - 1),
                -math.log(alpha) / (alpha - 1),
            )
            eps = round_up(math.fsum(parts), sum(map(abs, parts)))
        else:
            continue
        if eps < best:
            best, best_order = eps, float(alpha)
    return max(0.0, best), best_order


def delta_from_rdp(
    orders: Sequence[float], rdp: Sequence[float], epsilon: RealLike
) -> tuple[float, float]:
    """Smallest delta (rounded up) of (epsilon, delta)-DP implied by the RDP curve.

    Returns ``(delta, order)``.
    """
    e = float(real(epsilon, "epsilon"))
    if e < 0:
        raise ConfigError(f"epsilon must be >= 0, got {e}")
    if len(orders) != len(rdp):
        raise ConfigError("orders and rdp must have the same length")
    _check_orders(orders)
    best, best_order = math.inf, float(orders[0])
    for alpha, value in zip(orders, rdp, strict=True):
        if value < 0:
            raise ConfigError("RDP values must be >= 0")
        log_delta = round_up(0.5 * math.log1p(-math.exp(-value))) if value > 0 else -math.inf
        if alpha > 1.01:
            parts = (
                (alpha - 1) * value,
                -(alpha - 1) * e,
                (alpha - 1) * math.log1p(-1.0 / alpha),
                -math.log(alpha),
            )
            log_delta = min(log_delta, round_up(math.fsum(parts), sum(map(abs, parts))))
        if log_delta < best:
            best, best_order = log_delta, float(alpha)
    if best == -math.inf:
        return 0.0, best_order
    # exp underflows below ~1e-308; the true value is positive, so round up to the least float.
    return min(1.0, max(math.exp(best), math.ulp(0.0))), best_order
