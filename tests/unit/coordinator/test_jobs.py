"""Job orchestration with in-process parties: the full protocol, no network."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mpc.config import ColumnConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.coordinator.jobs import JobRunner, PartyLink, Query
from mpc.coordinator.party_cache import PartyView
from mpc.errors import InputDataError, MpcError, PartyFailedError, QueryError
from mpc.party.runtime import PartyRuntime
from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.secure_sum import SignedKeyOffer
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic
from mpc.ring import RingVector
from tests.helpers import identity


class LocalLink:
    """A PartyLink that calls a PartyRuntime directly (what the gRPC servicer does)."""

    def __init__(self, runtime: PartyRuntime) -> None:
        self.runtime = runtime
        self.party_id = runtime.party_id
        self.aborted: list[str] = []
        self.epochs = True  # False: like a party that offers no epoch key (per-job flow)
        self.generation = 0
        self.views = 0

    def describe(self, timeout: float) -> list[DatasetInfo]:
        return self.runtime.describe()

    def view(self, timeout: float) -> PartyView:
        self.views += 1
        key = self.runtime.epoch_key() if self.epochs else None
        return PartyView(self.runtime.describe(), key, self.generation)

    def query(
        self, spec: JobSpec, keys: Sequence[SignedEpochKey], length: int, timeout: float
    ) -> Iterator[tuple[int, RingVector]]:
        _, chunks = self.runtime.query(spec, keys)
        yield from self.tamper(chunks)

    def setup(self, spec: JobSpec, timeout: float) -> SignedKeyOffer:
        return self.runtime.setup(spec)

    def agree(self, job_id: str, offers: Sequence[SignedKeyOffer], timeout: float) -> None:
        self.runtime.agree(job_id, offers)

    def contribute(
        self,
        job_id: str,
        round_id: int,
        length: int,
        timeout: float,
        round_input: np.ndarray | None = None,
    ) -> Iterator[tuple[int, RingVector]]:
        _, chunks = self.runtime.contribute(job_id, round_id, round_input)
        yield from self.tamper(chunks)

    def tamper(self, chunks: Iterator[tuple[int, RingVector]]) -> Iterator[tuple[int, RingVector]]:
        """What a faulty party does to its share on the way out (an honest one: nothing)."""
        return chunks

    def abort(self, job_id: str, reason: str, timeout: float) -> None:
        self.aborted.append(job_id)
        self.runtime.abort(job_id)


class TruncatingLink(LocalLink):
    """A faulty party whose share is one word short."""

    def tamper(self, chunks: Iterator[tuple[int, RingVector]]) -> Iterator[tuple[int, RingVector]]:
        for offset, chunk in chunks:
            yield offset, chunk[:-1]


class PaddingLink(LocalLink):
    """A faulty party whose share is one word too long."""

    def tamper(self, chunks: Iterator[tuple[int, RingVector]]) -> Iterator[tuple[int, RingVector]]:
        for offset, chunk in chunks:
            yield offset, np.append(chunk, np.uint64(7))


DATA = {
    "a": np.array([[30.0, 1.0], [40.0, 0.0], [200.0, 1.0]]),  # 200 is clamped to 120
    "b": np.array([[50.0, 0.0]]),
    "c": np.array([[20.0, 1.0], [60.0, 1.0]]),
}


def _runtime(cert_dir: Path, tmp_path: Path, pid: str, max_rows: int = 100) -> PartyRuntime:
    path = tmp_path / f"{pid}.csv"
    np.savetxt(path, DATA[pid], delimiter=",", header="age,smoker", comments="")
    config = PartyConfig(
        require_signed_queries=False,  # these tests drive the runner without a client
        party_id=pid,
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, pid),
        datasets=(
            DatasetConfig(
                "health",
                path,
                max_rows,
                columns=(ColumnConfig("age", 0, 120),),
                cohort=tuple(sorted(DATA)),
            ),
        ),
    )
    return PartyRuntime(config, identity(cert_dir, pid))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def _runner(links: dict[str, PartyLink], pool: ThreadPoolExecutor) -> JobRunner:
    return JobRunner(links, pool, job_timeout=10.0, rpc_timeout=5.0)


def _links(cert_dir: Path, tmp_path: Path, **kinds: type[LocalLink]) -> dict[str, PartyLink]:
    return {pid: kinds.get(pid, LocalLink)(_runtime(cert_dir, tmp_path, pid)) for pid in DATA}


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


def test_queries_are_one_call_per_party_once_schemas_and_keys_are_held(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path)
    runner = _runner(links, pool)
    stages: list[str] = []

    def progress(stage: str, message: str, fraction: float) -> None:
        stages.append(stage)

    count = Query(Statistic.COUNT, "health")
    for job in ("j1", "j2", "j3"):
        assert runner.run(job, count, progress).values.tolist() == [6.0]
    local = {pid: link for pid, link in links.items() if isinstance(link, LocalLink)}
    assert [link.views for link in local.values()] == [1, 1, 1]
    assert stages.count("describe") == 1 and "setup" not in stages and "keys" not in stages
    assert all(not link.runtime._jobs for link in local.values())  # no sessions held
    local["b"].generation += 1  # the connection to b was lost: b may have restarted
    runner.run("j4", count, progress)
    assert [link.views for link in local.values()] == [1, 2, 1]
    local["c"].runtime._epochs.rotate()
    local["c"].runtime._epochs.rotate()  # c no longer holds the epoch the coordinator has
    with pytest.raises(PartyFailedError, match="does not hold"):
        runner.run("j5", count, progress)
    assert runner.run("j6", count, progress).values.tolist() == [6.0]  # asked afresh
    assert [link.views for link in local.values()] == [2, 3, 2]


def test_sum_count_mean(cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor) -> None:
    runner = _runner(_links(cert_dir, tmp_path), pool)
    ages = np.clip(np.concatenate([d[:, 0] for d in DATA.values()]), 0, 120)
    out = runner.run("j1", Query(Statistic.SUM, "health", ("age",)), _noop)
    assert out.values.tolist() == pytest.approx([ages.sum()], abs=out.tolerance)
    assert out.spec.party_ids == ("a", "b", "c")
    out = runner.run("j2", Query(Statistic.COUNT, "health"), _noop)
    assert out.values.tolist() == [6.0]
    out = runner.run(
        "j3",
        Query(Statistic.MEAN, "health", ("age", "smoker"), (ColumnBound("smoker", 0, 1),)),
        _noop,
    )
    smokers = np.concatenate([d[:, 1] for d in DATA.values()])
    assert out.values.tolist() == pytest.approx([ages.mean(), smokers.mean()], abs=1e-4)


def test_query_bounds_override_schema(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(_links(cert_dir, tmp_path), pool)
    out = runner.run(
        "j", Query(Statistic.SUM, "health", ("age",), (ColumnBound("age", 0, 45),)), _noop
    )
    assert out.values[0] == pytest.approx(30 + 40 + 45 + 45 + 20 + 45)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (Query(Statistic.SUM, "nope", ("age",)), "unknown dataset 'nope'"),
        (Query(Statistic.SUM, "health", ("weight",)), "unknown column 'weight'"),
        (Query(Statistic.SUM, "health", ("smoker",)), "no bounds for column 'smoker'"),
        (Query(Statistic.SUM, "health", ("age",), (ColumnBound("age", 9, 1),)), "above upper"),
        (Query(Statistic.SUM, "health", ("age",), parties=("a", "zz")), "unknown parties"),
        (
            Query(Statistic.SUM, "health", ("age",), (ColumnBound("age", -1e15, 1e15),)),
            "could wrap the 64-bit ring",
        ),
    ],
)
def test_bad_queries_are_refused_before_any_party_sees_data(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, query: Query, message: str
) -> None:
    links = _links(cert_dir, tmp_path)
    with pytest.raises(QueryError, match=message):
        _runner(links, pool).run("j", query, _noop)
    for link in links.values():
        assert isinstance(link, LocalLink)
        assert not link.runtime._jobs  # no party set up a session


@pytest.mark.parametrize("faulty", [TruncatingLink, PaddingLink])
def test_share_of_wrong_length_aborts_the_job(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, faulty: type[LocalLink]
) -> None:
    links = _links(cert_dir, tmp_path, b=faulty)
    with pytest.raises(PartyFailedError, match="party 'b'") as info:
        _runner(links, pool).run("j", Query(Statistic.MEAN, "health", ("age",)), _noop)
    assert "words" in str(info.value)
    pool.shutdown(wait=True)  # abort calls are asynchronous
    for link in links.values():
        assert isinstance(link, LocalLink)
        assert not link.runtime._jobs  # the one-call flow holds no session to abort
        assert link.aborted == []


@pytest.mark.parametrize("faulty", [TruncatingLink, PaddingLink])
def test_share_of_wrong_length_aborts_a_session_job(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, faulty: type[LocalLink]
) -> None:
    """Parties without epoch keys get setup, key agreement and one round, aborted on failure."""
    links = _links(cert_dir, tmp_path, b=faulty)
    for link in links.values():
        assert isinstance(link, LocalLink)
        link.epochs = False
    with pytest.raises(PartyFailedError, match="party 'b'") as info:
        _runner(links, pool).run("j", Query(Statistic.MEAN, "health", ("age",)), _noop)
    assert "words" in str(info.value)
    pool.shutdown(wait=True)
    for link in links.values():
        assert isinstance(link, LocalLink)
        assert link.aborted == ["j"]


def test_party_over_its_row_limit_is_unavailable_not_an_oracle(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    """Over max_rows is found when the file is loaded: a public status, no per-job check."""
    links: dict[str, PartyLink] = _links(cert_dir, tmp_path)
    over = _runtime(cert_dir, tmp_path, "a", max_rows=2)
    links["a"] = LocalLink(over)
    [info] = [d for d in over.describe() if d.name == "health"]
    assert not info.available
    with pytest.raises(QueryError, match=r"^dataset 'health' is unavailable at party 'a'$"):
        _runner(links, pool).run("j", Query(Statistic.SUM, "health", ("age",)), _noop)
    # The party refuses by itself too (a coordinator that skips the check gains nothing).
    spec = JobSpec(
        "j2",
        Statistic.SUM,
        "health",
        (ColumnBound("age", 0, 120),),
        16,
        tuple(Participant(pid, 2 if pid == "a" else 100) for pid in sorted(DATA)),
    )
    with pytest.raises(InputDataError, match=r"^dataset 'health' is unavailable at party 'a'$"):
        over.setup(spec)


def test_held_schemas_are_checked_by_the_party_and_unavailable_is_asked_again(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path)
    local = {pid: link for pid, link in links.items() if isinstance(link, LocalLink)}
    runner = _runner(links, pool)
    ages = Query(Statistic.SUM, "health", ("age",))  # needs c's column "age"
    first = runner.run("j1", ages, _noop).values.tolist()
    good = (tmp_path / "c.csv").read_text()
    time.sleep(0.01)  # a new file stamp
    (tmp_path / "c.csv").write_text("age,smoker\n20,1\nforty,1\n")
    # The coordinator still holds c's schema as available: c refuses by itself.
    with pytest.raises(MpcError, match="unavailable at party 'c'"):
        runner.run("j2", ages, _noop)
    with pytest.raises(MpcError, match="unavailable at party 'c'"):
        runner.run("j3", ages, _noop)  # asked afresh: refused by the coordinator's mirror
    views = local["c"].views
    time.sleep(0.01)
    (tmp_path / "c.csv").write_text(good)  # fixed: a held "unavailable" is not believed
    assert runner.run("j4", ages, _noop).values.tolist() == first
    assert local["c"].views == views + 1


def test_party_with_bad_data_fails_the_job_without_saying_where(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path)
    (tmp_path / "c.csv").write_text("age,smoker\n20,1\nforty,1\n")
    with pytest.raises(MpcError) as info:
        _runner(links, pool).run("j", Query(Statistic.SUM, "health", ("age",)), _noop)
    assert str(info.value) == "column 'age' of dataset 'health' is unavailable at party 'c'"
    assert "line" not in str(info.value) and str(tmp_path) not in str(info.value)


def test_party_runtime_refuses_misstated_row_limit(cert_dir: Path, tmp_path: Path) -> None:
    from mpc.protocol.spec import Participant

    runtime = _runtime(cert_dir, tmp_path, "a")
    spec = JobSpec(
        "j",
        Statistic.SUM,
        "health",
        (ColumnBound("age", 0, 120),),
        16,
        (Participant("a", 10**9), Participant("b", 100)),
    )
    with pytest.raises(QueryError, match="its limit for 'health' is 100"):
        runtime.setup(spec)


def test_party_runtime_checks_unknown_dataset(cert_dir: Path, tmp_path: Path) -> None:
    from mpc.protocol.spec import Participant

    runtime = _runtime(cert_dir, tmp_path, "a")
    spec = JobSpec(
        "j",
        Statistic.SUM,
        "other",
        (ColumnBound("age", 0, 120),),
        16,
        (Participant("a", 100), Participant("b", 100)),
    )
    with pytest.raises(InputDataError, match="unknown dataset 'other'"):
        runtime.setup(spec)
