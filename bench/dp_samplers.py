"""Time the vectorised exact discrete Gaussian sampler at a fixed-point noise scale.

Run: ``python bench/dp_samplers.py [--sigma 5.35] [--frac-bits 16] [--repeat 3]``. Prints the
best of ``repeat`` runs for 10**3 and 10**6 samples. Randomness comes from the OS CSPRNG, so
figures include the cost of ``os.urandom``.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

from mpc.dp.samplers import (
    _gaussian_plan,
    sample_discrete_gaussian,
    sample_discrete_laplace,
    sampler_friendly_sigma_sq,
)


def _best_of(repeat: int, fn: object, *args: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sigma", type=Fraction, default=Fraction("5.35"))
    parser.add_argument("--frac-bits", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    sigma_sq = sampler_friendly_sigma_sq((args.sigma * 2**args.frac_bits) ** 2)
    fast = _gaussian_plan(sigma_sq) is not None
    print(
        f"discrete Gaussian, sigma = {args.sigma} * 2^{args.frac_bits} "
        f"= {float(sigma_sq) ** 0.5:.1f} (vectorised fast path: {fast})"
    )
    for size in (10**3, 10**6):
        seconds = _best_of(args.repeat, sample_discrete_gaussian, sigma_sq, size)
        print(f"  n = {size:>9,}: {seconds:8.4f} s  {size / seconds:14,.0f} samples/s")
    scale = Fraction(10**6, 7)
    seconds = _best_of(args.repeat, sample_discrete_laplace, scale, 10**6)
    print(f"discrete Laplace, scale = {float(scale):.1f}")
    print(f"  n = {10**6:>9,}: {seconds:8.4f} s  {10**6 / seconds:14,.0f} samples/s")


if __name__ == "__main__":
    main()
