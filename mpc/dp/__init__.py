"""Differential privacy core: exact samplers, accounting, and mechanism helpers (pure, no I/O).

Modules, in dependency order:

* :mod:`mpc.dp.distributions` - pmfs and variances of the noise distributions (for tests/bars);
* :mod:`mpc.dp.samplers` - exact discrete Gaussian / Laplace samplers from the OS CSPRNG;
* :mod:`mpc.dp.rdp` - Rényi DP of Poisson-subsampled rounds and RDP -> (epsilon, delta);
* :mod:`mpc.dp.accountant` - zCDP costs, conversions, calibration, the integer ledger model;
* :mod:`mpc.dp.mechanisms` - fixed-point sensitivities, distributed noise sizing, the mean,
  error bars.

Security assumptions: the OS CSPRNG is secure; the time taken to sample one value is not
observable; declared bounds are enforced on encoded data before noise is added (see
:mod:`mpc.dp.mechanisms`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpc.dp.accountant import (
        Budget,
        GaussianCalibration,
        PrivacyCost,
        calibrate_discrete_gaussian,
        calibrate_discrete_laplace,
        compose_rho,
        delta_for_rho,
        epsilon_discrete_laplace,
        epsilon_for_rho,
        rho_discrete_gaussian,
        rho_discrete_gaussian_sq,
        rho_distributed_discrete_gaussian,
        rho_for_epsilon,
        rho_from_pure_epsilon,
        sigma_sq_for_rho,
    )
    from mpc.dp.mechanisms import (
        MeanNoise,
        calibrate_mean,
        centred_sum_sensitivity,
        clipped_sum_sensitivity,
        count_sensitivity,
        cross_sensitivity,
        distributed_sigma_sq,
        distributed_total_sigma_sq,
        error_bound,
        fixed_point_bound,
        gram_sensitivity,
        histogram_sensitivity,
        honest_noise_shares,
        noisy_mean,
        split_mean_budget,
        sum_sensitivity,
        vector_norm_bound,
    )
    from mpc.dp.samplers import (
        discrete_gaussian_pmf,
        discrete_gaussian_variance,
        discrete_laplace_pmf,
        discrete_laplace_variance,
        sample_bernoulli_exp,
        sample_discrete_gaussian,
        sample_discrete_gaussian_scalar,
        sample_discrete_laplace,
        sample_discrete_laplace_scalar,
        sampler_friendly_scale,
        sampler_friendly_sigma_sq,
    )

#: The submodules that define the public names (``__all__``), imported on first use by the
#: module ``__getattr__``: the client reaches this package through the ledger and loads only
#: what it uses (tests/unit/test_cli_lazy_imports.py).
_PUBLIC_FROM = ("accountant", "mechanisms", "samplers")
_SUBMODULES = frozenset(
    (
        "_csprng",
        "accountant",
        "distributions",
        "mechanisms",
        "rdp",
        "samplers",
        "scalar_samplers",
        "zcdp",
    )
)
_MISSING = object()


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in __all__:
        for module in _PUBLIC_FROM:
            value = getattr(importlib.import_module(f"{__name__}.{module}"), name, _MISSING)
            if value is not _MISSING:
                globals()[name] = value  # later look-ups skip this function
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Budget",
    "GaussianCalibration",
    "MeanNoise",
    "PrivacyCost",
    "calibrate_discrete_gaussian",
    "calibrate_discrete_laplace",
    "calibrate_mean",
    "centred_sum_sensitivity",
    "clipped_sum_sensitivity",
    "compose_rho",
    "count_sensitivity",
    "cross_sensitivity",
    "delta_for_rho",
    "discrete_gaussian_pmf",
    "discrete_gaussian_variance",
    "discrete_laplace_pmf",
    "discrete_laplace_variance",
    "distributed_sigma_sq",
    "distributed_total_sigma_sq",
    "epsilon_discrete_laplace",
    "epsilon_for_rho",
    "error_bound",
    "fixed_point_bound",
    "gram_sensitivity",
    "histogram_sensitivity",
    "honest_noise_shares",
    "noisy_mean",
    "rho_discrete_gaussian",
    "rho_discrete_gaussian_sq",
    "rho_distributed_discrete_gaussian",
    "rho_for_epsilon",
    "rho_from_pure_epsilon",
    "sample_bernoulli_exp",
    "sample_discrete_gaussian",
    "sample_discrete_gaussian_scalar",
    "sample_discrete_laplace",
    "sample_discrete_laplace_scalar",
    "sampler_friendly_scale",
    "sampler_friendly_sigma_sq",
    "sigma_sq_for_rho",
    "split_mean_budget",
    "sum_sensitivity",
    "vector_norm_bound",
]
