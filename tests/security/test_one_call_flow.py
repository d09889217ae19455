"""Attacks on the one-call query flow (epoch keys, :mod:`mpc.protocol.epochs`).

The adversary holds the coordinator's certificate (and colludes with a client that signs any
query). It fetches the parties' signed epoch keys, relays them as it likes and calls
``Query`` itself. Parties must refuse a replay within an epoch, after a restart and across
epochs, refuse keys they cannot verify or do not hold, and otherwise answer only with shares
whose sum reveals nothing but the agreed aggregate (a coordinator that equivocates gets a
uniformly random sum).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from mpc.errors import MpcError, ProtocolError
from mpc.party.runtime import PartyRuntime
from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic
from mpc.ring import decode
from tests.helpers import party_runtimes

from .conftest import ClusterFactory, FakeCoordinator, SecurityCluster, normalise
from .test_fake_coordinator import PARTIES, ROWS, _build, _dp_count, _spec

pytestmark = pytest.mark.integration

Shares = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def cluster(
    cluster_factory: ClusterFactory, tmp_path_factory: pytest.TempPathFactory
) -> SecurityCluster:
    return cluster_factory(_build(tmp_path_factory.mktemp("epoch-data")), coordinator=False)


@pytest.fixture(scope="module")
def fake(cluster: SecurityCluster) -> Iterator[FakeCoordinator]:
    coordinator = FakeCoordinator(cluster)
    try:
        yield coordinator
    finally:
        coordinator.close()


def _count(dataset: str = "people") -> JobSpec:
    return _spec(Statistic.COUNT, dataset, [])


def _ordered(keys: Mapping[str, SignedEpochKey]) -> list[SignedEpochKey]:
    return [keys[pid] for pid in PARTIES]


def _shares(
    fake: FakeCoordinator, spec: JobSpec, keys: Sequence[SignedEpochKey], length: int = 1
) -> tuple[Shares, dict[str, str]]:
    """Each party's masked share of an already signed ``spec`` (or its refusal)."""
    shares: Shares = {}
    errors: dict[str, str] = {}
    for pid in spec.party_ids:
        try:
            words = list(fake.link(pid).query(spec, keys, length, fake.timeout))
            shares[pid] = np.concatenate([w for _, w in words])
        except MpcError as exc:
            errors[pid] = str(exc)
    return shares, errors


def _garbage(total: np.ndarray) -> bool:
    """A masked sum that did not unmask: far outside anything the data could give."""
    return bool(np.max(np.abs(decode(total, 16))) > 1e6)


def test_one_call_query_reveals_the_agreed_aggregate(fake: FakeCoordinator) -> None:
    outcome = fake.query(_count(), _ordered(fake.epoch_keys()), 1)
    assert not outcome.errors, outcome.errors
    assert outcome.decoded(16)[0] == sum(ROWS.values())


@pytest.mark.parametrize("make", [_count, _dp_count], ids=["exact", "dp"])
def test_replay_within_an_epoch_is_refused(fake: FakeCoordinator, make: object) -> None:
    assert callable(make)
    spec = fake.signed(make())
    keys = _ordered(fake.epoch_keys())
    _, errors = _shares(fake, spec, keys)
    assert not errors, errors
    again, errors = _shares(fake, spec, keys)
    assert not again, f"answered twice under the same masks by {sorted(again)}"
    assert all("already" in text for text in errors.values()), errors
    # Nor can the job id be set up again in the per-job flow.
    _, refusals = fake.setup(spec)
    fake.abort(spec)
    assert set(refusals) == set(PARTIES), refusals


def test_keys_the_parties_cannot_verify_are_refused_before_any_work(
    fake: FakeCoordinator,
) -> None:
    keys = fake.epoch_keys()
    forged = dict(keys)
    forged["b"] = dataclasses.replace(keys["b"], public_key=bytes(32 - 1) + b"\x09")
    relabelled = dict(keys)  # b's genuine key relayed as c's
    relabelled["c"] = dataclasses.replace(keys["b"], party_id="c")
    for bad, needle in ((forged, "signature"), (relabelled, "certificate names 'b'")):
        spec = fake.signed(_dp_count())
        shares, errors = _shares(fake, spec, _ordered(bad))
        victims = {"a", "c"} if bad is forged else {"a", "b"}
        assert victims <= set(errors), errors
        assert all(needle in errors[pid] for pid in victims), errors
    # Keys out of participant order, or missing one, are refused by everyone.
    spec = fake.signed(_count())
    for wrong in (_ordered(keys)[::-1], _ordered(keys)[:-1]):
        shares, errors = _shares(fake, spec, wrong)
        assert not shares and set(errors) == set(PARTIES), errors
        assert all("participant list" in text for text in errors.values()), errors
    # Nothing was charged or used up: the same job id still runs with the genuine keys.
    _, errors = _shares(fake, spec, _ordered(keys))
    assert not errors, errors


def test_equivocated_specs_or_keys_yield_a_random_aggregate(fake: FakeCoordinator) -> None:
    keys = fake.epoch_keys()
    honest = _spec(Statistic.SUM, "people", [ColumnBound("age", 0.0, 120.0)])
    other = dataclasses.replace(honest, columns=(ColumnBound("age", 0.0, 100.0),))
    signed = fake.signed(honest)
    forked = {"a": signed, "b": signed, "c": fake.signed(other)}
    outcome = fake.query(forked, _ordered(keys), 1)
    assert not outcome.errors, outcome.errors
    assert outcome.total is not None and _garbage(outcome.total), outcome.decoded(16)


def test_after_a_restart_old_keys_are_refused_and_replays_get_fresh_masks(
    fake: FakeCoordinator, cluster: SecurityCluster
) -> None:
    old = fake.epoch_keys()
    spec = fake.signed(_count())
    before, errors = _shares(fake, spec, _ordered(old))
    assert not errors, errors
    assert decode(sum(before.values(), np.zeros(1, np.uint64)), 16)[0] == sum(ROWS.values())
    cluster.restart_party("c")
    fake.reconnect("c")

    # The epoch died with the process: c refuses a job naming it.
    stale = fake.signed(_count())
    _, errors = _shares(fake, stale, _ordered(old))
    assert "does not hold" in errors.get("c", ""), errors

    new = fake.epoch_keys()
    assert new["c"] != old["c"] and new["a"] == old["a"], "c did not start a new epoch"
    # The same signed query again: every party remembers its nonce (c durably, in its state).
    _, errors = _shares(fake, spec, _ordered(new))
    assert set(errors) == set(PARTIES), errors
    # Re-signed by the colluding client: a and b remember the job id in their epoch; c
    # answers, but under masks from its new epoch, so mixing old and new shares gives nothing.
    resigned = fake.signed(dataclasses.replace(spec, client=None))
    after, errors = _shares(fake, resigned, _ordered(new))
    assert set(errors) == {"a", "b"}, errors
    assert all("already" in text for text in errors.values()), errors
    assert not np.array_equal(after["c"], before["c"])
    mixed = before["a"] + before["b"] + after["c"]
    assert _garbage(mixed), decode(mixed, 16)


def test_a_dp_job_is_answered_once_across_a_restart(
    fake: FakeCoordinator, cluster: SecurityCluster
) -> None:
    spec = _dp_count()
    first = fake.query(spec, _ordered(fake.epoch_keys()), 1)
    assert not first.errors, first.errors
    cluster.restart_party("c")
    fake.reconnect("c")
    again = fake.query(spec, _ordered(fake.epoch_keys()), 1)
    assert set(again.errors) == set(PARTIES), again.errors
    assert "already charged" in again.errors["c"], again.errors
    fresh = fake.query(_dp_count(), _ordered(fake.epoch_keys()), 1)
    assert not fresh.errors, fresh.errors


@pytest.mark.parametrize(
    ("statistic", "bounds", "frac_bits"),
    [(Statistic.MEAN, (0.0, 1e15), 16), (Statistic.VARIANCE, (-1e5, 1e5), 30)],
)
def test_one_call_refusals_do_not_depend_on_the_data(
    fake: FakeCoordinator, statistic: Statistic, bounds: tuple[float, float], frac_bits: int
) -> None:
    """Party c holds 1e300 in "people" and 5.0 in "people_nb": same outcome at every party."""
    outcomes = []
    for dataset in ("people", "people_nb"):
        spec = _spec(statistic, dataset, [ColumnBound("big", *bounds)], frac_bits)
        result = fake.query(spec, _ordered(fake.epoch_keys()), 2)
        outcomes.append({pid: normalise(text, pid, dataset) for pid, text in result.errors.items()})
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == set(PARTIES), outcomes  # refused from the spec alone


# --- across epochs (in process, with a clock the test moves) ------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runtimes(cert_dir: Path, tmp_path: Path) -> dict[str, PartyRuntime]:
    parts = [np.array([[1.0], [2.0]]), np.array([[3.0]]), np.array([[4.0], [5.0]])]
    return party_runtimes(cert_dir, tmp_path, parts, ["x"], [(0.0, 10.0)])


def _local_sum(
    runtimes: Mapping[str, PartyRuntime], spec: JobSpec, keys: Sequence[SignedEpochKey]
) -> np.ndarray:
    total = np.zeros(1, np.uint64)
    for runtime in runtimes.values():
        _, chunks = runtime.query(spec, keys)
        for _, words in chunks:
            total += words
    return total


def test_across_epochs_a_job_is_not_answered_again_and_old_epochs_expire(
    runtimes: dict[str, PartyRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    for runtime in runtimes.values():
        monkeypatch.setattr(runtime._epochs, "_clock", clock)
    spec = JobSpec(
        job_id="epochs-1",
        statistic=Statistic.SUM,
        dataset="d",
        columns=(ColumnBound("x", 0.0, 10.0),),
        frac_bits=16,
        participants=tuple(Participant(pid, 1000) for pid in sorted(runtimes)),
    )
    first = [r.epoch_key() for r in runtimes.values()]
    assert decode(_local_sum(runtimes, spec, first), 16)[0] == 15.0
    clock.now += 3000  # less than the rotation margin left: a new epoch is handed out
    second = [r.epoch_key() for r in runtimes.values()]
    assert all(a.epoch_id != b.epoch_id for a, b in zip(first, second, strict=True))
    for runtime in runtimes.values():
        with pytest.raises(ProtocolError, match="already"):
            runtime.query(spec, second)  # a new epoch does not reopen an answered job id
    later = dataclasses.replace(spec, job_id="epochs-2")
    assert decode(_local_sum(runtimes, later, first), 16)[0] == 15.0  # old epoch: still live
    clock.now += 700  # the first epoch has expired
    expired = dataclasses.replace(spec, job_id="epochs-3")
    for runtime in runtimes.values():
        with pytest.raises(ProtocolError, match=r"does not hold|expired"):
            runtime.query(expired, first)
    assert decode(_local_sum(runtimes, expired, second), 16)[0] == 15.0
