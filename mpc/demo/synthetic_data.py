"""Deterministic *synthetic demo data* (not secret, not for DP noise).

This is the one place numpy's seeded generator is used: the demo must produce the same
health-records table for the same seed on every machine. Nothing here protects anything;
secrets and noise use the OS CSPRNG elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Public schema of the demo table: column -> (lo, hi, description).
HEALTH_COLUMNS: dict[str, tuple[float, float, str]] = {
    "age": (18.0, 100.0, "age in years"),
    "bmi": (10.0, 60.0, "body-mass index, kg/m^2"),
    "systolic_bp": (70.0, 220.0, "systolic blood pressure, mmHg"),
    "cholesterol": (2.0, 10.0, "total cholesterol, mmol/L"),
    "smoker": (0.0, 1.0, "1 if the person smokes"),
    "diabetic": (0.0, 1.0, "1 if the person has type-2 diabetes"),
}


def synthetic_health_records(rows: int, seed: int) -> dict[str, np.ndarray]:
    """A plausible, correlated synthetic table with ``rows`` rows."""
    # Seeded numpy generator on purpose: the demo's *public, synthetic* table must be the same
    # on every machine. Never used for anything secret or for DP noise (those use the OS
    # CSPRNG; tests/unit/dp/test_dp_rng_guard.py scans the library for generators like this).
    synthetic_rng = np.random.default_rng(seed)
    age = np.clip(synthetic_rng.normal(52, 15, rows), 18, 100).round(0)
    bmi = np.clip(synthetic_rng.normal(27, 4.5, rows) + 0.03 * (age - 52), 10, 60).round(1)
    smoker = (synthetic_rng.random(rows) < 0.22).astype(float)
    systolic = np.clip(
        synthetic_rng.normal(118, 12, rows) + 0.45 * (age - 52) + 0.9 * (bmi - 27) + 4 * smoker,
        70,
        220,
    ).round(0)
    cholesterol = np.clip(synthetic_rng.normal(5.2, 0.9, rows) + 0.01 * (age - 52), 2, 10).round(2)
    logit = -9.0 + 0.06 * age + 0.14 * bmi + 0.012 * systolic + 0.5 * smoker
    diabetic = (synthetic_rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    return {
        "age": age,
        "bmi": bmi,
        "systolic_bp": systolic,
        "cholesterol": cholesterol,
        "smoker": smoker,
        "diabetic": diabetic,
    }


def write_csv(path: Path, table: dict[str, np.ndarray]) -> None:
    columns = list(table)
    data = np.column_stack([table[c] for c in columns])
    np.savetxt(path, data, delimiter=",", header=",".join(columns), comments="", fmt="%.10g")
