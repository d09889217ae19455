"""``mpc demo``: a whole deployment on this machine, checked against plaintext.

Each party gets its own deterministic synthetic health-records CSV. The coordinator and the
parties run as separate processes with mutual TLS on 127.0.0.1. The demo runs secure sum,
count and mean, computes the same statistics directly from the CSV files (the plaintext that
MPC never pools), prints both side by side, and exits 1 if any pair differs by more than the
fixed-point tolerance.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mpc.client import Client, QueryResult
from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.demo.synthetic_data import HEALTH_COLUMNS, synthetic_health_records, write_csv
from mpc.errors import MpcError, QueryError
from mpc.party.audit import read_records, verify

PARTY_NAMES = "abcdefghijklmnopqrstuvwxyz"
DEMO_DATASET = "health"
#: The same records published a second time, for differentially private queries only: each
#: party's own ledger caps the privacy spent on it, and so does the coordinator's.
DP_DATASET = "health_dp"
PARTY_BUDGET = (3.0, 1e-6)
COORDINATOR_BUDGET = (5.0, 1e-6)
DP_EPSILON = 1.0
#: A second analyst with a valid certificate whom the data owners did not list.
GUEST = "guest"


def demo_party_ids(count: int) -> list[str]:
    if not 2 <= count <= len(PARTY_NAMES):
        raise QueryError(f"--parties must be between 2 and {len(PARTY_NAMES)}")
    return [f"hospital-{PARTY_NAMES[i]}" for i in range(count)]


def write_demo_data(
    workdir: Path, party_ids: list[str], rows: int
) -> dict[str, dict[str, DatasetFile]]:
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    bounds = {c: (lo, hi) for c, (lo, hi, _) in HEALTH_COLUMNS.items()}
    datasets = {}
    for index, party_id in enumerate(party_ids):
        path = data_dir / f"{party_id}.csv"
        # Uneven sizes, so the demo does not hide bugs that equal splits would.
        write_csv(path, synthetic_health_records(rows + 37 * index, seed=1000 + index))
        max_rows = 10 * (rows + 37 * index) + 100
        datasets[party_id] = {
            # The data owner lists who may ask: the demo's analyst ("client") may see exact
            # results; any other certificate of the consortium CA is refused.
            DEMO_DATASET: DatasetFile(
                path, max_rows=max_rows, bounds=bounds, access={"client": {"exact": True}}
            ),
            DP_DATASET: DatasetFile(path, max_rows=max_rows, bounds=bounds, budget=PARTY_BUDGET),
        }
    return datasets


def _pooled(datasets: dict[str, dict[str, DatasetFile]]) -> dict[str, np.ndarray]:
    """Plaintext reference: read every party's CSV directly (what MPC never does)."""
    tables = []
    for files in datasets.values():
        path = files[DEMO_DATASET].path
        header = path.read_text().splitlines()[0].split(",")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        tables.append(dict(zip(header, data.T, strict=True)))
    return {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}


def run_demo(
    parties: int = 3, rows: int = 1000, as_json: bool = False, keep: Path | None = None
) -> int:
    if rows < 1:
        raise QueryError("--rows must be at least 1")
    party_ids = demo_party_ids(parties)
    workdir = keep or Path(tempfile.mkdtemp(prefix="mpc-demo-"))

    def say(message: str) -> None:
        if not as_json:
            print(message, file=sys.stderr, flush=True)

    try:
        say(f"mpc demo: {parties} parties x ~{rows} synthetic health records in {workdir}")
        datasets = write_demo_data(workdir, party_ids, rows)
        pooled = _pooled(datasets)
        started = time.monotonic()
        with LocalCluster(
            workdir,
            datasets,
            budgets={DP_DATASET: COORDINATOR_BUDGET},
            clients=("client", GUEST),
        ) as cluster:
            say(
                f"started coordinator at {cluster.coordinator_address} and parties "
                f"{', '.join(party_ids)} ({time.monotonic() - started:.1f}s), mutual TLS on"
            )
            checks = _run_queries(cluster, pooled)
            checks.append(_dp_query(cluster, pooled))
            checks.append(_train_logistic(cluster, pooled))
            refused = _refused_query(cluster)
            audit = _audit_line(cluster, party_ids[0])
        ok = all(c["agree"] for c in checks) and bool(refused["refused_as_expected"])
        if as_json:
            print(
                json.dumps(
                    {
                        "ok": ok,
                        "parties": party_ids,
                        "rows": {
                            pid: int(files[DEMO_DATASET].path.read_text().count("\n") - 1)
                            for pid, files in datasets.items()
                        },
                        "checks": checks,
                        "refused": refused,
                        "audit": audit,
                    }
                )
            )
        else:
            _print_table(checks)
            print(f"{refused['query']:<44} refused: {refused['error']}")
            print(f"audit log of {party_ids[0]} (mpc audit show), last record: {audit['line']}")
            print(
                "all secure results agree with plaintext"
                if ok
                else "MISMATCH between secure and plaintext results"
            )
        return 0 if ok else 1
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _refused_query(cluster: LocalCluster) -> dict[str, object]:
    """A client the data owners did not list asks anyway: every party refuses it."""
    query = f"sum(age) by {GUEST!r} (not on the access list)"
    with Client(cluster.coordinator_address, cluster.tls_dir, name=GUEST) as guest:
        try:
            guest.sum(DEMO_DATASET, ["age"])
        except MpcError as exc:
            error = str(exc).split(" failed: ", 1)[-1]
            return {"query": query, "error": error, "refused_as_expected": "may not" in error}
    return {"query": query, "error": "", "refused_as_expected": False}


def _audit_line(cluster: LocalCluster, party_id: str) -> dict[str, object]:
    """The last record of one party's audit log (the refusal above), and whether the log's
    hash chain verifies."""
    path = cluster.party_config_path(party_id).with_name(
        f"{cluster.party_config_path(party_id).stem}.audit.jsonl"
    )
    records = [r for _, r in read_records(path) if r is not None]
    last = records[-1] if records else {}
    line = (
        f"{last.get('outcome')} {last.get('statistic')} on {last.get('dataset')!r} for client "
        f"{last.get('client')!r}: {last.get('reason') or 'ok'}"
    )
    return {"line": line, "records": len(records), "intact": verify(path).ok}


def _check(name: str, result: QueryResult, expected: dict[str, float]) -> dict[str, object]:
    secure = result.as_dict()
    # Tolerance: the fixed-point bound plus float64 rounding of the plaintext reference.
    agree = all(
        abs(secure[k] - expected[k]) <= result.tolerance + 1e-9 * max(1.0, abs(expected[k]))
        for k in expected
    )
    return {
        "query": name,
        "job_id": result.job_id,
        "parties": list(result.parties),
        "secure": secure,
        "plaintext": expected,
        "tolerance": result.tolerance,
        "agree": agree,
    }


def _run_queries(cluster: LocalCluster, pooled: dict[str, np.ndarray]) -> list[dict[str, object]]:
    def clipped(column: str) -> np.ndarray:
        lo, hi, _ = HEALTH_COLUMNS[column]
        return np.asarray(np.clip(pooled[column], lo, hi), dtype=np.float64)

    checks = []
    with cluster.client() as client:
        result = client.sum(DEMO_DATASET, ["age", "smoker"])
        checks.append(
            _check(
                "sum(age, smoker)", result, {c: float(clipped(c).sum()) for c in ("age", "smoker")}
            )
        )
        result = client.count(DEMO_DATASET)
        checks.append(_check("count()", result, {"count": float(pooled["age"].size)}))
        columns = ["age", "bmi", "systolic_bp", "cholesterol"]
        result = client.mean(DEMO_DATASET, columns)
        checks.append(
            _check(
                "mean(age, bmi, systolic_bp, cholesterol)",
                result,
                {c: float(clipped(c).mean()) for c in columns},
            )
        )
        result = client.mean(DEMO_DATASET, ["age"], bounds={"age": (18.0, 65.0)})
        checks.append(
            _check(
                "mean(age) clamped to [18, 65]",
                result,
                {"age": float(np.clip(pooled["age"], 18, 65).mean())},
            )
        )
    return checks


def _dp_query(cluster: LocalCluster, pooled: dict[str, np.ndarray]) -> dict[str, object]:
    """One differentially private mean beside the exact value, with its error bound."""
    lo, hi, _ = HEALTH_COLUMNS["bmi"]
    exact = float(np.clip(pooled["bmi"], lo, hi).mean())
    with cluster.client() as client:
        result = client.mean(DP_DATASET, ["bmi"], epsilon=DP_EPSILON, delta=1e-6)
        mine, parties = client.budgets()
    assert result.privacy is not None
    bound = result.privacy.error_bound_95["bmi"]
    noisy = result.value
    remaining = {
        p.party_id: p.budgets[[b.dataset for b in p.budgets].index(DP_DATASET)].remaining_epsilon
        for p in parties
    }
    coordinator_left = next(s.remaining_epsilon for s in mine if s.dataset == DP_DATASET)
    return {
        "query": f"DP mean(bmi), epsilon={DP_EPSILON:g}, distributed noise",
        "job_id": result.job_id,
        "parties": list(result.parties),
        "secure": {"bmi": noisy},
        "plaintext": {"bmi": exact},
        # The noise is random: the 95% bound holds 95% of the time. Twice the bound is
        # exceeded with probability below 1e-6 (sub-Gaussian tail), so only that fails the demo.
        "tolerance": 2 * bound,
        "agree": abs(noisy - exact) <= 2 * bound,
        "privacy": {
            **result.privacy.to_json(),
            "within_error_bound_95": abs(noisy - exact) <= bound,
            "remaining_epsilon": {"coordinator": coordinator_left, **remaining},
        },
    }


TRAIN_FEATURES = ["age", "bmi", "systolic_bp", "cholesterol", "smoker"]
TRAIN_L2 = 1e-3


def _pooled_newton(x: np.ndarray, y: np.ndarray, rounds: int) -> np.ndarray:
    """Plaintext reference on pooled rows: the same objective, written independently.

    mean log-loss + l2/2 |w|^2 (no penalty on the intercept) on features standardised by the
    pooled mean and population standard deviation; returns [intercept, coefficients] on the
    original feature scale.
    """
    mean, scale = x.mean(axis=0), x.std(axis=0)
    a = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    w = np.zeros(a.shape[1])
    penalty = np.diag([0.0] + [TRAIN_L2] * x.shape[1])
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) / len(y) + penalty @ w
        hess = (a.T * (p * (1 - p))) @ a / len(y) + penalty
        w = w - np.linalg.solve(hess, grad)
    coef = w[1:] / scale
    return np.concatenate([[w[0] - coef @ mean], coef])


def _accuracy(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(((weights[0] + x @ weights[1:]) > 0) == (y > 0.5)))


def _train_logistic(cluster: LocalCluster, pooled: dict[str, np.ndarray]) -> dict[str, object]:
    """A logistic model trained securely (Newton rounds) beside the pooled-plaintext one."""
    x = np.column_stack([pooled[c] for c in TRAIN_FEATURES])
    y = pooled["diabetic"]
    rounds = 8
    with cluster.client() as client:
        result = client.train(
            "logistic",
            DEMO_DATASET,
            TRAIN_FEATURES,
            "diabetic",
            method="newton",
            rounds=rounds,
            l2=TRAIN_L2,
        )
    secure = np.asarray(result.values, dtype=np.float64)
    plain = _pooled_newton(x, y, rounds)
    labels = ["intercept", *TRAIN_FEATURES]
    # Fixed-point rounding of gradients and Hessians moves coefficients by far less than this.
    tolerance = 1e-3 * max(1.0, float(np.max(np.abs(plain))))
    return {
        "query": f"logistic regression (Newton, {rounds} rounds)",
        "job_id": result.job_id,
        "parties": list(cluster.party_ids),
        "secure": dict(zip(labels, secure.tolist(), strict=True)),
        "plaintext": dict(zip(labels, plain.tolist(), strict=True)),
        "tolerance": tolerance,
        "agree": bool(np.max(np.abs(secure - plain)) <= tolerance),
        "accuracy": {"secure": _accuracy(secure, x, y), "plaintext": _accuracy(plain, x, y)},
    }


def _print_table(checks: list[dict[str, object]]) -> None:
    print(f"{'query':<44} {'value':<12} {'secure':>14} {'plaintext':>14}  ok")
    for check in checks:
        secure = check["secure"]
        plain = check["plaintext"]
        assert isinstance(secure, dict) and isinstance(plain, dict)
        for key in plain:
            mark = "yes" if check["agree"] else "NO"
            print(
                f"{check['query']:<44} {key:<12} {secure[key]:>14.6f} {plain[key]:>14.6f}  {mark}"
            )
        accuracy = check.get("accuracy")
        if isinstance(accuracy, dict):
            print(
                f"  accuracy on all rows: secure model {accuracy['secure']:.4f}, "
                f"pooled plaintext model {accuracy['plaintext']:.4f}"
            )
        privacy = check.get("privacy")
        if isinstance(privacy, dict):
            left = privacy["remaining_epsilon"]
            assert isinstance(left, dict)
            print(
                f"  the exact value is never revealed to anyone; 95% error bound "
                f"+/- {privacy['error_bound_95']['bmi']:.4f}, spent epsilon "
                f"{privacy['epsilon_spent']:.3f}\n  budget left for one query: "
                + ", ".join(f"{k} {v:.3f}" for k, v in left.items())
            )
