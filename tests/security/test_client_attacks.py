"""Attacks by a client with a valid certificate (issue 8 classes 1, 2, 7 and 8).

One cluster of three parties and a coordinator serves every test of this module; each
dataset is set up for one attack. Each test runs the attack as an adversary would and
asserts that it yields nothing: a refusal, or the same outcome on neighbouring data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mpc.client import Client
from mpc.errors import MpcError

from .conftest import (
    CANARY_TEXTS,
    PARTIES,
    PEOPLE_BOUNDS,
    PEOPLE_COLUMNS,
    ClusterFactory,
    Dataset,
    SecurityCluster,
    assert_no_secrets_in_logs,
    normalise,
    people_rows,
    write_csv,
)

pytestmark = pytest.mark.integration

SMALL_MAX_ROWS = 20
BAD_CELL = "oops"
HIST_VALUES = {"a": [1.5, 1.5, 1.5, 5.5], "b": [2.5, 5.5], "c": [3.5, 3.5, 5.5, 5.5]}
HIST_EDGES = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
#: True bin counts: [0, 3, 1, 2, 0, 4, 0]; the cells with 1 and 2 rows must not come back.
HIST_SUPPRESSED = (2, 3)
HIST_RELEASED = {0: 0.0, 1: 3.0, 4: 0.0, 5: 4.0, 6: 0.0}


def _cohort(path: Path, max_rows: int, bounds: dict[str, tuple[float, float]]) -> Dataset:
    return Dataset(path, max_rows, bounds, participation="cohort", cohort=PARTIES)


def _build(root: Path) -> dict[str, dict[str, Dataset]]:
    out: dict[str, dict[str, Dataset]] = {}
    for index, pid in enumerate(PARTIES):
        data = root / pid
        people = write_csv(data / "people.csv", PEOPLE_COLUMNS, people_rows(index, 30 + 3 * index))
        # Class 2: neighbouring training data; party c has one extreme row or a normal one.
        grid = np.arange(20, dtype=np.float64)
        x = (grid * 5 + index * 7) % 100
        y = np.clip(0.05 * x - 2.5 + np.sin(grid + index), -10, 10)
        far, near = np.column_stack([x, y]), np.column_stack([x, y])
        if pid == "c":
            far[0, 0], near[0, 0] = 1e300, 50.0
        # Class 8: party c's dataset empty, exactly at max_rows, one over, or with a bad cell.
        small = people_rows(index, 10)[:, :2]
        c_variants = {
            "c_empty": small[:0],
            "c_exact": people_rows(index, SMALL_MAX_ROWS)[:, :2],
            "c_over": people_rows(index, SMALL_MAX_ROWS + 1)[:, :2],
            "c_bad": small,
        }
        datasets = {
            "people": _cohort(people, 200, PEOPLE_BOUNDS),
            "people_dp": Dataset(
                people, 200, PEOPLE_BOUNDS, budget=(50.0, 1e-3), participation="dp-only"
            ),
            "train_far": _cohort(write_csv(data / "far.csv", ("x", "y"), far), 200, {}),
            "train_near": _cohort(write_csv(data / "near.csv", ("x", "y"), near), 200, {}),
            "hist": _cohort(
                write_csv(data / "hist.csv", ("v",), [[v] for v in HIST_VALUES[pid]]),
                200,
                {"v": (0.0, 7.0)},
            ),
        }
        for name, rows in c_variants.items():
            table = rows if pid == "c" else small
            path = write_csv(data / f"{name}.csv", ("age", "income"), table)
            if pid == "c" and name == "c_bad":
                lines = path.read_text().splitlines()
                lines[4] = f"7355608.25,{BAD_CELL}"  # a bad cell, next to a canary value
                path.write_text("\n".join(lines) + "\n")
            datasets[name] = _cohort(
                path,
                SMALL_MAX_ROWS,
                {"age": PEOPLE_BOUNDS["age"], "income": PEOPLE_BOUNDS["income"]},
            )
        out[pid] = datasets
    return out


@pytest.fixture(scope="module")
def cluster(
    cluster_factory: ClusterFactory, tmp_path_factory: pytest.TempPathFactory
) -> SecurityCluster:
    return cluster_factory(_build(tmp_path_factory.mktemp("client-data")))


@pytest.fixture(scope="module")
def client(cluster: SecurityCluster) -> Iterator[Client]:
    with cluster.client(timeout=60.0) as client:
        yield client


def _rows(cluster: SecurityCluster, dataset: str, pid: str) -> np.ndarray:
    path = cluster.sec_datasets[pid][dataset].path
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def _failure(call: Callable[[], object]) -> str:
    """Run ``call``; the error text when it fails (the attack was refused), else raise."""
    try:
        result = call()
    except MpcError as exc:
        return str(exc)
    raise AssertionError(f"the attack was answered: {result}")


def _outcome(call: Callable[[], object], *names: str) -> str:
    try:
        call()
    except MpcError as exc:
        return "failed: " + normalise(str(exc), *names)
    return "succeeded"


# --- class 1: subset differencing ---------------------------------------------------------


def test_subset_differencing_is_refused_on_a_cohort_dataset(client: Client) -> None:
    full = client.sum("people", ["income"])
    assert full.parties == PARTIES
    count = client.count("people")
    assert count.parties == PARTIES
    # all parties minus all but party c would be c's exact subtotal: the subset is refused.
    for attempt in (
        lambda: client.sum("people", ["income"], parties=("a", "b")),
        lambda: client.count("people", parties=("a", "b")),
        lambda: client.sum("people", ["income"], parties=("a", "b"), epsilon=1.0),
    ):
        text = _failure(attempt)
        assert "cohort" in text, text


def _charges(client: Client, dataset: str) -> dict[str, int]:
    _, parties = client.budgets()
    out = {}
    for party in parties:
        assert party.reachable, party.error
        out[party.party_id] = next(b.charges for b in party.budgets if b.dataset == dataset)
    return out


def test_dp_only_dataset_allows_subsets_but_charges_every_release(client: Client) -> None:
    _failure(lambda: client.sum("people_dp", ["income"], parties=("a", "b")))  # exact: refused
    before = _charges(client, "people_dp")
    client.sum("people_dp", ["income"], parties=("a", "b"), epsilon=1.0, delta=1e-6)
    after_ab = _charges(client, "people_dp")
    assert after_ab == {"a": before["a"] + 1, "b": before["b"] + 1, "c": before["c"]}
    client.count("people_dp", parties=("b", "c"), epsilon=1.0, delta=1e-6)
    after_bc = _charges(client, "people_dp")
    assert after_bc == {"a": after_ab["a"], "b": after_ab["b"] + 1, "c": after_ab["c"] + 1}


# --- class 2: error oracle in training ----------------------------------------------------


@pytest.mark.parametrize("lr", [1e300, 1e6])
def test_huge_learning_rate_is_no_oracle_for_an_extreme_row(client: Client, lr: float) -> None:
    """Party c holds one row at 1e300 (train_far) or at 50 (train_near): same outcome."""
    outcomes = {}
    for dataset in ("train_far", "train_near"):
        outcomes[dataset] = _outcome(
            functools.partial(
                client.train,
                "linear",
                dataset,
                ["x"],
                "y",
                rounds=3,
                lr=lr,
                standardise="none",
                bounds={"x": (-1e300, 1e300), "y": (-10.0, 10.0)},
            ),
            dataset,
        )
    for text in outcomes.values():
        for leak in ("cannot encode", "NaN", "infinity", "too large"):
            assert leak not in text, outcomes
    assert outcomes["train_far"] == outcomes["train_near"], outcomes


# --- class 7: histograms as a row locator -------------------------------------------------


def test_histogram_with_2_20_bins_is_refused(client: Client) -> None:
    edges = np.linspace(0.0, 120.0, 2**20 + 1).tolist()
    text = _failure(lambda: client.histogram("people", "age", edges))
    assert "max_bins" in text, text


def test_exact_histogram_suppresses_cells_of_one_or_two_rows(client: Client) -> None:
    result = client.histogram("hist", "v", HIST_EDGES)
    values = np.asarray(result.values, dtype=np.float64)
    assert values.shape == (len(HIST_EDGES) - 1,)
    for index in HIST_SUPPRESSED:
        assert np.isnan(values[index]), f"bin {index} (1-2 rows) was released: {values}"
    for index, expected in HIST_RELEASED.items():
        assert values[index] == expected, values


# --- class 8: data-dependent refusals -----------------------------------------------------


def test_empty_dataset_contributes_zeros(cluster: SecurityCluster, client: Client) -> None:
    result = client.sum("c_empty", ["age", "income"])
    rows = np.vstack([_rows(cluster, "c_empty", pid) for pid in ("a", "b")])
    lo = np.array([PEOPLE_BOUNDS["age"][0], PEOPLE_BOUNDS["income"][0]])
    hi = np.array([PEOPLE_BOUNDS["age"][1], PEOPLE_BOUNDS["income"][1]])
    expected = np.clip(rows, lo, hi).sum(axis=0)
    np.testing.assert_allclose(result.values, expected, atol=result.tolerance + 1e-9)
    assert client.count("c_empty").value == rows.shape[0]


def test_exactly_max_rows_is_answered(client: Client) -> None:
    assert client.count("c_exact").value == 10 + 10 + SMALL_MAX_ROWS


def test_over_max_rows_and_bad_cell_fail_alike_without_details(
    cluster: SecurityCluster, client: Client
) -> None:
    """Both are found when the file is loaded and published as a status: a dataset over
    max_rows is unavailable as a whole, a column with a bad cell is unavailable by itself.
    Neither text carries a path, a line, a cell or a value."""
    texts = {}
    for dataset in ("c_over", "c_bad"):
        text = _failure(functools.partial(client.sum, dataset, ["age", "income"]))
        assert "unavailable" in text, text
        path = cluster.sec_datasets["c"][dataset].path
        for leak in (str(path), path.name, str(cluster.workdir), BAD_CELL, *CANARY_TEXTS):
            assert leak not in text, text
        assert not re.search(r"\bline\b", text), text
        texts[dataset] = normalise(text, dataset)
    assert texts["c_over"].endswith("dataset <name> is unavailable at party 'c'"), texts
    assert texts["c_bad"].endswith(
        "column 'income' of dataset <name> is unavailable at party 'c'"
    ), texts


def test_logs_hold_no_canary(cluster: SecurityCluster) -> None:
    assert_no_secrets_in_logs(cluster)
