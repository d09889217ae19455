"""Rough edges: failures print one `error:` line, stores fail loudly, CLI details."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc.cli import main
from mpc.coordinator.jobs import Query
from mpc.coordinator.service import CoordinatorService, PartyBudgets, PartyStatus
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.errors import ConfigError, QueryError, TransportError
from mpc.identity import init_certificates
from mpc.ledger import BudgetStatus
from mpc.protocol.spec import Statistic

# --- the job store -------------------------------------------------------------------------


class _FailingDb:
    """A connection whose writes fail like a full disk (reads still work)."""

    def __init__(self, db: sqlite3.Connection, fail: bool = True) -> None:
        self._db = db
        self.fail = fail

    def execute(self, sql: str, *args: Any) -> Any:
        if self.fail and sql.split()[0].upper() in ("INSERT", "UPDATE", "BEGIN"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def close(self) -> None:
        self._db.close()


def _record(job_id: str = "job-1") -> JobRecord:
    return JobRecord(job_id, JobState.PENDING, {"statistic": "count"}, "alice", time.time())


def test_a_corrupt_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some bytes" * 20)
    with pytest.raises(ConfigError, match="cannot open the coordinator database"):
        JobStore(path)


def test_close_checkpoints_and_leaves_no_wal_files(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.sqlite"
    store = JobStore(path)
    store.create(_record())
    assert path.with_name(path.name + "-wal").exists()
    store.close()
    assert not path.with_name(path.name + "-wal").exists()
    assert not path.with_name(path.name + "-shm").exists()
    reopened = JobStore(path)
    try:
        assert reopened.owner("job-1") == "alice"
    finally:
        reopened.close()


def test_store_write_failures_are_clear_errors(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    real = store._db
    store._db = _FailingDb(real)  # type: ignore[assignment]
    try:
        with pytest.raises(TransportError, match=r"cannot write its job database.*disk is full"):
            store.create(_record())
        with pytest.raises(TransportError, match="disk is full"):
            store.fail("job-1", "x")
    finally:
        store._db = real
        store.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[CoordinatorService, JobStore]]:
    store = JobStore(tmp_path / "jobs.sqlite")
    made = CoordinatorService(
        {}, {}, store, job_timeout=30.0, rpc_timeout=5.0, max_concurrent_jobs=1
    )
    yield made, store
    made.close(wait=5.0)
    made.close_stores()


def test_submit_fails_clearly_when_the_job_cannot_be_recorded(
    service: tuple[CoordinatorService, JobStore],
) -> None:
    svc, store = service
    real = store._db
    store._db = _FailingDb(real)  # type: ignore[assignment]
    try:
        with pytest.raises(TransportError, match="disk is full"):
            svc.submit(Query(Statistic.COUNT, "people"), "alice")
        assert svc.active_jobs("alice") == 0  # the slot was given back
    finally:
        store._db = real


def test_a_job_whose_later_writes_fail_is_reported_failed_not_pending(
    service: tuple[CoordinatorService, JobStore],
) -> None:
    """The row is written (one durable write at submit), then the disk fills: the job still
    ends for its watchers and for GetJob, from memory; the next start fails the stored row."""
    svc, store = service
    real = store._db
    failing = _FailingDb(real, fail=False)
    store._db = failing  # type: ignore[assignment]
    original_create = store.create

    def create_then_fill(record: JobRecord) -> None:
        original_create(record)
        failing.fail = True

    store.create = create_then_fill  # type: ignore[method-assign]
    try:
        job_id = svc.submit(Query(Statistic.COUNT, "people"), "alice")
        events = list(svc.watch(job_id, timeout=20.0))
        assert events[-1].state is JobState.FAILED  # no parties configured
        assert svc.record(job_id).state is JobState.FAILED
    finally:
        store._db = real
    stored = store.get(job_id)
    assert stored is not None and stored.state is JobState.PENDING
    deadline = time.monotonic() + 10
    while svc.active_jobs("alice"):
        assert time.monotonic() < deadline, "the job's slot was not given back"
        time.sleep(0.01)


# --- coordinator wording -------------------------------------------------------------------


def _schemas(
    a_bounds: tuple[float | None, float | None], b_bounds: tuple[float | None, float | None]
) -> dict[str, list[Any]]:
    from mpc.protocol.schema import ColumnInfo, DatasetInfo

    def info(lo: float | None, hi: float | None) -> list[Any]:
        column = ColumnInfo("age", lo, hi, "")
        return [DatasetInfo("health", "table", (column,), 100, 0, "", cohort=("a", "b"))]

    return {"a": info(*a_bounds), "b": info(*b_bounds)}


@pytest.mark.parametrize(
    ("a_bounds", "message"),
    [
        ((None, None), r"party a declares no bounds for column 'age' \(other parties do\)"),
        ((0.0, 50.0), "parties declare different bounds for column 'age'"),
    ],
)
def test_bounds_errors_name_the_cause_and_suit_cli_and_api(
    a_bounds: tuple[float | None, float | None], message: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mpc.coordinator.jobs import JobRunner

    with ThreadPoolExecutor(1) as pool:
        runner = JobRunner({}, pool, job_timeout=5.0, rpc_timeout=5.0)
        query = Query(Statistic.SUM, "health", ("age",))
        with pytest.raises(QueryError, match=message) as caught:
            runner._build_spec("j", query, _schemas(a_bounds, (0.0, 100.0)))
    assert "pass --bounds" not in str(caught.value) and "bounds=" in str(caught.value)


# --- servers -------------------------------------------------------------------------------


def test_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    """In a child process: a gRPC server made in the test process would outlive the test and
    break later tests that fork (gRPC's poller is inherited)."""
    init_certificates(tmp_path, ["a", "b"])
    script = f"""
import sys
from pathlib import Path
from mpc.config import TlsFiles
from mpc.errors import TransportError
from mpc.transport.server import RunningServer
d = Path({str(tmp_path)!r})
identity = TlsFiles(d / "ca.pem", d / "a.pem", d / "a.key").load()
try:
    RunningServer(sys.argv[1], identity, lambda server: None, [])
except TransportError as exc:
    print(exc)
"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-c", script, f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.stdout.startswith(f"cannot listen on 127.0.0.1:{port}: the port is in use"), (
        proc.stderr
    )


# --- the command line ----------------------------------------------------------------------


class FakeClient:
    """Stands in for mpc.client.Client in CLI tests: records what the CLI asked."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    parties_result: list[PartyStatus] = []
    budgets_result: tuple[list[BudgetStatus], list[PartyBudgets]] = ([], [])

    def __init__(self, *args: Any, **kw: Any) -> None:
        pass

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def query(self, *args: Any, **kw: Any) -> Any:
        from mpc.client import _frac_bits

        _frac_bits(kw.get("frac_bits"))  # the real client's check, before any call
        FakeClient.calls.append(("query", args, kw))
        raise QueryError("fake client: stop here")

    def parties(self) -> list[PartyStatus]:
        return FakeClient.parties_result

    def budgets(self) -> tuple[list[BudgetStatus], list[PartyBudgets]]:
        return FakeClient.budgets_result


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    import mpc.client

    FakeClient.calls = []
    monkeypatch.setattr(mpc.client, "Client", FakeClient)
    return FakeClient


CLIENT_ARGS = ["--coordinator", "127.0.0.1:1", "--tls-dir", "certs"]


def test_query_parties_are_comma_separated_names(fake_client: type[FakeClient]) -> None:
    main(["query", "count", "--dataset", "d", "--parties", "a,zz", *CLIENT_ARGS])
    assert fake_client.calls[0][2]["parties"] == ["a", "zz"]


def test_vector_sum_is_accepted_with_either_spelling(fake_client: type[FakeClient]) -> None:
    for spelling in ("vector-sum", "vector_sum"):
        main(["query", spelling, "--dataset", "v", "--bounds", "0:1", *CLIENT_ARGS])
    assert [call[1][0] for call in fake_client.calls] == ["vector_sum", "vector_sum"]


def test_bad_frac_bits_is_one_error_line(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["query", "count", "--dataset", "d", "--frac-bits=-1", *CLIENT_ARGS])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: frac_bits must be between 0 and") and err.count("\n") == 1
    assert err.rstrip().endswith("not -1")


def test_frac_bits_zero_is_sent_not_replaced_by_the_default() -> None:
    from mpc.client import _frac_bits
    from mpc.proto.v1 import coordinator_pb2
    from mpc.transport import convert

    assert _frac_bits(0) == 0 and _frac_bits(None) is None
    with pytest.raises(QueryError):
        _frac_bits(-1)
    explicit = coordinator_pb2.Query(statistic="count", dataset="d", frac_bits=_frac_bits(0))
    unset = coordinator_pb2.Query(statistic="count", dataset="d", frac_bits=_frac_bits(None))
    assert explicit.HasField("frac_bits") and not unset.HasField("frac_bits")
    # Wire compatible: an unset field reads as 0 (the old "default") everywhere.
    assert unset.frac_bits == 0
    assert coordinator_pb2.Query.FromString(explicit.SerializeToString()).HasField("frac_bits")
    assert convert.query_from_proto(unset).frac_bits is None


def test_parties_exits_1_when_a_party_is_down(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    up = PartyStatus("a", "127.0.0.1:1", True, "", ())
    down = PartyStatus("b", "127.0.0.1:2", False, "connection refused", ())
    fake_client.parties_result = [up]
    assert main(["parties", *CLIENT_ARGS]) == 0
    fake_client.parties_result = [up, down]
    assert main(["parties", *CLIENT_ARGS]) == 1
    assert main(["parties", *CLIENT_ARGS, "--json"]) == 1
    assert "DOWN (connection refused)" in capsys.readouterr().out


def test_budget_show_does_not_report_spent_0_for_a_party_without_ledger(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    none_kept = BudgetStatus("health", 0, 0.0, 0.0, None, None, None)
    spent = BudgetStatus("health", 2, 0.1, 0.5, 1.0, 1e-6, 0.4)
    fake_client.budgets_result = (
        [],
        [
            PartyBudgets("a", True, "", (none_kept,)),
            PartyBudgets("b", True, "", (spent,)),
            PartyBudgets("c", True, "", ()),
        ],
    )
    assert main(["budget", "show", *CLIENT_ARGS]) == 0
    out = capsys.readouterr().out
    party_a = out.split("party a:")[1].split("party b:")[0]
    assert "spent" not in party_a and "no charge recorded" in party_a
    assert "spent epsilon 0.5 over 2 job(s) of 1" in out
    assert "keeps no privacy ledger" in out.split("party c:")[1]


def test_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mpc", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("mpc ")


def test_every_option_has_help() -> None:
    from mpc.cli import build_parser

    def walk(parser: Any) -> Iterator[tuple[str, Any]]:
        for action in parser._actions:
            if action.choices and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    for path, found in walk(sub):
                        yield f"{name} {path}", found
            else:
                yield parser.prog, action

    missing = [
        f"{where}: {action.option_strings}"
        for where, action in walk(build_parser())
        if action.option_strings and not action.help
    ]
    assert missing == []


def test_timeout_speaks_of_a_job_only_where_one_runs() -> None:
    from mpc.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a.choices, dict)).choices
    assert isinstance(subs, dict)

    def timeout_help(command: Any) -> str:
        return str(next(a.help for a in command._actions if "--timeout" in a.option_strings))

    assert "job" in timeout_help(subs["query"]) and "job" in timeout_help(subs["train"])
    assert "job" not in timeout_help(subs["parties"])


def test_compose_warns_when_keys_land_in_a_git_work_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    assert main(["compose", "--out", str(tmp_path / "repo" / "deploy"), "--rows", "5"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "git work tree" in err and "private key" in err
    assert main(["compose", "--out", str(tmp_path / "outside"), "--rows", "5"]) == 0
    assert "git work tree" not in capsys.readouterr().err


def test_bundle_folders_are_git_ignored() -> None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git work tree")
    proc = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/certs/ca.key"], cwd=root, check=False
    )
    assert proc.returncode == 0
