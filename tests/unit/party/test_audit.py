"""The party's audit log: what it records, the hash chain, and what tampering breaks."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mpc import compose
from mpc.cli import main
from mpc.config import (
    BudgetConfig,
    ColumnConfig,
    DatasetConfig,
    PartyConfig,
    TlsFiles,
    load_party_config,
)
from mpc.errors import InputDataError, MpcError, PrivacyBudgetError, QueryError
from mpc.party import audit
from mpc.party.audit import GENESIS, AuditError, AuditLog, line_hash, verify
from mpc.party.runtime import PartyRuntime
from mpc.protocol.rounds import schedule_of
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    Model,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
    TrainingSpec,
)
from tests.helpers import identity

CANARY = "7355608.25"
PARTIES = ("a", "b", "c")
#: Every key a job record may have: nothing else (no values, shares or keys) gets in.
JOB_KEYS = {
    "seq",
    "prev",
    "hash",
    "event",
    "time",
    "party",
    "job_id",
    "client",
    "statistic",
    "dataset",
    "columns",
    "bounds",
    "participants",
    "rounds",
    "dp",
    "outcome",
    "reason",
    "error",
}


def _runtime(tmp_path: Path, cert_dir: Path, log: Path | None = None) -> PartyRuntime:
    csv = tmp_path / "d.csv"
    csv.write_text(f"x\n1\n{CANARY}\n3\n")
    config = PartyConfig(
        require_signed_queries=False,
        party_id="a",
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, "a"),
        datasets=(
            DatasetConfig("d", csv, 100, columns=(ColumnConfig("x", 0, 10),), cohort=PARTIES),
            DatasetConfig(
                "p",
                csv,
                100,
                columns=(ColumnConfig("x", 0, 10),),
                budget=BudgetConfig(5.0, 1e-5),
            ),
        ),
        ledger=tmp_path / "ledger.sqlite",
        audit_log=log or tmp_path / "audit.jsonl",
    )
    return PartyRuntime(config, identity(cert_dir, "a"))


def _spec(job_id: str, parties: tuple[str, ...] = PARTIES, **kw: Any) -> JobSpec:
    kw.setdefault("statistic", Statistic.SUM)
    kw.setdefault("dataset", "d")
    kw.setdefault("columns", (ColumnBound("x", 0, 10),))
    return JobSpec(
        job_id,
        frac_bits=16,
        participants=tuple(Participant(p, 100) for p in parties),
        **kw,
    )


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _dp(t: int) -> PrivacySpec:
    return PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, t)


@pytest.fixture
def log_with_jobs(tmp_path: Path, cert_dir: Path) -> Path:
    """Four records: accepted, refused (cohort), accepted DP, refused DP."""
    runtime = _runtime(tmp_path, cert_dir)
    runtime.setup(_spec("j1"))
    with pytest.raises(QueryError):
        runtime.setup(_spec("j2", ("a", "b")))
    runtime.setup(_spec("j3", dataset="p", privacy=_dp(2)))
    with pytest.raises(PrivacyBudgetError):
        runtime.setup(_spec("j4", dataset="p", privacy=_dp(0)))
    return tmp_path / "audit.jsonl"


# --- what is recorded ----------------------------------------------------------------------


def test_accepted_and_refused_jobs_are_recorded(tmp_path: Path, cert_dir: Path) -> None:
    runtime = _runtime(tmp_path, cert_dir)
    runtime.setup(_spec("j1"))
    with pytest.raises(QueryError) as refused:
        runtime.setup(_spec("j2", ("a", "b")))
    first, second = _records(tmp_path / "audit.jsonl")
    assert first == {
        **first,
        "seq": 1,
        "prev": GENESIS,
        "event": "job",
        "party": "a",
        "job_id": "j1",
        "client": "unknown",
        "statistic": "sum",
        "dataset": "d",
        "columns": ["x"],
        "bounds": {"x": [0.0, 10.0]},
        "participants": ["a", "b", "c"],
        "rounds": 1,
        "dp": None,
        "outcome": "accepted",
        "reason": "",
    }
    assert first["time"].endswith("Z")
    assert second["outcome"] == "refused" and second["participants"] == ["a", "b"]
    assert second["reason"] == str(refused.value)  # the public text the coordinator gets
    assert "whole cohort" in second["reason"] and second["error"] == "QueryError"
    assert second["seq"] == 2
    assert set(first) == set(second) == JOB_KEYS


def test_dp_cost_rounds_and_every_refusal_are_recorded(log_with_jobs: Path) -> None:
    records = _records(log_with_jobs)
    dp_ok, dp_refused = records[2]["dp"], records[3]["dp"]
    assert records[2]["outcome"] == "accepted"
    assert dp_ok["noise"] == "distributed" and dp_ok["epsilon"] == 1.0
    assert dp_ok["delta"] == 1e-6 and dp_ok["colluders"] == 2
    assert dp_ok["rho"] > 0 and dp_ok["charged"] is True
    assert records[3]["outcome"] == "refused" and records[3]["error"] == "PrivacyBudgetError"
    assert dp_refused["colluders"] == 0 and dp_refused["charged"] is False
    assert "requires at least 2" in records[3]["reason"]


def test_rounds_are_the_schedules_total(tmp_path: Path, cert_dir: Path) -> None:
    runtime = _runtime(tmp_path, cert_dir)
    spec = _spec(
        "t1",
        statistic=Statistic.TRAIN,
        columns=(ColumnBound("x", 0, 10), ColumnBound("y", 0, 1)),
        training=TrainingSpec(Model.LINEAR, "y", rounds=5),
    )
    with pytest.raises(InputDataError):  # the dataset has no column y
        runtime.setup(spec)
    (record,) = _records(tmp_path / "audit.jsonl")
    assert record["rounds"] == schedule_of(spec).total_rounds == 7
    assert record["statistic"] == "train" and record["outcome"] == "refused"


def test_duplicate_and_unexpected_errors_are_recorded_as_refused(
    tmp_path: Path, cert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(tmp_path, cert_dir)
    runtime.setup(_spec("j1"))
    with pytest.raises(MpcError, match="already set up"):
        runtime.setup(_spec("j1"))

    def broken(*args: object) -> None:
        raise RuntimeError(f"secret {CANARY}")

    monkeypatch.setattr(runtime, "_check_available", broken)
    with pytest.raises(RuntimeError):
        runtime.setup(_spec("j2"))
    records = _records(tmp_path / "audit.jsonl")
    assert [r["outcome"] for r in records] == ["accepted", "refused", "refused"]
    assert records[1]["error"] == "ProtocolError"
    assert records[2]["reason"] == "internal error; see the server log"
    assert CANARY not in (tmp_path / "audit.jsonl").read_text()


def test_client_identity_helper() -> None:
    assert audit.client_of(SimpleNamespace(client_id="alice")) == "alice"  # type: ignore[arg-type]
    signed = SimpleNamespace(client_id="", client=SimpleNamespace(name="bob"))
    assert audit.client_of(signed) == "bob"  # type: ignore[arg-type]
    assert audit.client_of(SimpleNamespace()) == "unknown"  # type: ignore[arg-type]
    assert audit.client_of(_spec("j")) == "unknown"  # an unsigned spec


def test_no_values_shares_or_keys_in_the_log(log_with_jobs: Path, cert_dir: Path) -> None:
    text = log_with_jobs.read_text()
    assert CANARY not in text and "7355608" not in text
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text
    key_body = (cert_dir / "a.key").read_text().splitlines()[1]
    assert key_body not in text
    for record in _records(log_with_jobs):
        assert set(record) == JOB_KEYS


# --- durability ----------------------------------------------------------------------------


def test_each_record_is_fsynced_before_setup_returns(
    tmp_path: Path, cert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(tmp_path, cert_dir)
    path = tmp_path / "audit.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(len(path.read_bytes().splitlines()))

    monkeypatch.setattr(audit.os, "fsync", fsync)
    runtime.setup(_spec("j1"))
    assert synced == [1]
    with pytest.raises(QueryError):
        runtime.setup(_spec("j2", ("a", "b")))
    assert synced == [1, 2]


def test_a_job_that_cannot_be_recorded_is_not_answered(
    tmp_path: Path, cert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(tmp_path, cert_dir)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audit.os, "write", full)
    with pytest.raises(AuditError, match="cannot append to its audit log") as caught:
        runtime.setup(_spec("j1"))
    assert str(tmp_path) not in str(caught.value)  # the path stays with the operator
    assert runtime._jobs == {}
    monkeypatch.undo()
    runtime.setup(_spec("j2"))
    assert verify(tmp_path / "audit.jsonl").ok


def test_unwritable_log_stops_the_party_at_start(tmp_path: Path, cert_dir: Path) -> None:
    folder = tmp_path / "log-is-a-folder"
    folder.mkdir()
    with pytest.raises(AuditError, match="cannot open the audit log"):
        _runtime(tmp_path, cert_dir, log=folder)


def test_restart_continues_the_chain(log_with_jobs: Path, tmp_path: Path, cert_dir: Path) -> None:
    restarted = _runtime(tmp_path, cert_dir)
    restarted.setup(_spec("j5"))
    records = _records(log_with_jobs)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[4]["prev"] == line_hash(log_with_jobs.read_bytes().splitlines()[3])
    result = verify(log_with_jobs)
    assert result.ok and result.records == 5 and not result.notes
    assert result.head == line_hash(log_with_jobs.read_bytes().splitlines()[4])


def test_concurrent_appends_form_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path, "a"), AuditLog(path, "a")]  # two writers: e.g. two processes

    def work(index: int) -> None:
        for i in range(10):
            logs[index % 2].append({"event": "job", "job_id": f"{index}-{i}"})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = verify(path)
    assert result.ok and result.records == 60
    assert [r["seq"] for r in _records(path)] == list(range(1, 61))


# --- tampering -----------------------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def test_intact_log_verifies(log_with_jobs: Path) -> None:
    result = verify(log_with_jobs)
    assert result.ok and result.records == 4 and result.line is None


def test_edited_field_is_a_hash_mismatch_on_its_line(log_with_jobs: Path) -> None:
    lines = _lines(log_with_jobs)
    lines[1] = lines[1].replace(b'"outcome":"refused"', b'"outcome":"accepted"')
    _write(log_with_jobs, lines)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 2 and "hash mismatch" in (result.problem or "")
    assert result.records == 1


def test_edited_record_with_a_fresh_hash_breaks_the_next_link(log_with_jobs: Path) -> None:
    lines = _lines(log_with_jobs)
    record = json.loads(lines[1])
    record["reason"] = ""
    record["hash"] = audit.record_hash(record)
    lines[1] = audit.canonical(record) + b"\n"
    _write(log_with_jobs, lines)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 3 and "broken link" in (result.problem or "")


def test_deleted_line_is_a_broken_link(log_with_jobs: Path) -> None:
    lines = _lines(log_with_jobs)
    del lines[1]
    _write(log_with_jobs, lines)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 2 and "broken link" in (result.problem or "")


def test_reordered_lines_are_a_broken_link(log_with_jobs: Path) -> None:
    lines = _lines(log_with_jobs)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log_with_jobs, lines)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 2 and "broken link" in (result.problem or "")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda line: b"not json\n", "bad JSON"),
        (lambda line: b"[1, 2]\n", "not a JSON object"),
        (lambda line: line.replace(b'","', b'", "', 1), "not in canonical form"),
    ],
)
def test_malformed_line_is_reported_with_its_number(
    log_with_jobs: Path, edit: Any, problem: str
) -> None:
    lines = _lines(log_with_jobs)
    lines[2] = edit(lines[2])
    _write(log_with_jobs, lines)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 3 and problem in (result.problem or "")


def test_torn_last_line_is_reported_then_sealed_at_restart(
    log_with_jobs: Path, tmp_path: Path, cert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _lines(log_with_jobs)
    lines[3] = lines[3][:40]  # a crash in the middle of the last write
    _write(log_with_jobs, lines)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 4 and "torn last line" in (result.problem or "")
    with caplog.at_level(logging.WARNING):
        restarted = _runtime(tmp_path, cert_dir)
    assert "torn" in caplog.text
    restarted.setup(_spec("j5"))
    records = [json.loads(line) for line in log_with_jobs.read_bytes().splitlines()[4:]]
    recovery, job = records
    assert recovery["event"] == "recovered" and recovery["seq"] == 4
    assert recovery["prev"] == line_hash(lines[2].rstrip(b"\n"))  # the last good record
    assert recovery["torn_sha256"] == line_hash(lines[3])
    assert job["job_id"] == "j5" and job["seq"] == 5
    result = verify(log_with_jobs)
    assert result.ok and result.records == 5
    assert result.notes == ("line 4: a torn write (e.g. a crash), sealed by the party at line 5",)


def test_a_forged_fragment_is_not_excused(log_with_jobs: Path, tmp_path: Path) -> None:
    lines = _lines(log_with_jobs)
    lines[3] = lines[3][:40]
    _write(log_with_jobs, lines)
    AuditLog(log_with_jobs, "a")  # seals it
    sealed = _lines(log_with_jobs)
    sealed[3] = b"something else\n"  # the sealed fragment, replaced afterwards
    _write(log_with_jobs, sealed)
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 4


def test_a_tampered_tail_is_not_hidden_by_later_records(
    log_with_jobs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _lines(log_with_jobs)
    lines[3] = lines[3].replace(b'"job_id":"j4"', b'"job_id":"j9"')
    _write(log_with_jobs, lines)
    with caplog.at_level(logging.WARNING):
        log = AuditLog(log_with_jobs, "a")
    assert "does not verify" in caplog.text
    record = log.append({"event": "job", "job_id": "j5"})
    assert record["seq"] == 5 and record["prev"] == line_hash(lines[3].rstrip(b"\n"))
    result = verify(log_with_jobs)
    assert not result.ok and result.line == 4 and "hash mismatch" in (result.problem or "")


def test_empty_log_verifies(tmp_path: Path) -> None:
    AuditLog(tmp_path / "audit.jsonl")
    result = verify(tmp_path / "audit.jsonl")
    assert result.ok and result.records == 0 and result.head == GENESIS


# --- the commands --------------------------------------------------------------------------

CONFIG = """
id = "a"
listen = "127.0.0.1:0"
require_signed_queries = false
[tls]
ca = "{certs}/ca.pem"
cert = "{certs}/a.pem"
key = "{certs}/a.key"
[datasets.d]
path = "d.csv"
max_rows = 100
cohort = ["a", "b", "c"]
[datasets.d.columns.x]
lo = 0
hi = 10
"""


def test_show_and_verify_commands(
    tmp_path: Path, cert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d.csv").write_text("x\n1\n")
    config_path = tmp_path / "party-a.toml"
    config_path.write_text(CONFIG.format(certs=cert_dir))
    config = load_party_config(config_path)
    assert config.audit_log == tmp_path / "party-a.audit.jsonl"
    runtime = PartyRuntime(config, identity(cert_dir, "a"))
    runtime.setup(_spec("j1"))
    with pytest.raises(QueryError):
        runtime.setup(_spec("j2", ("a", "b")))
    args = ["--config", str(config_path)]

    assert main(["audit", "show", *args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in shown] == ["accepted", "refused"]
    assert main(["audit", "show", *args, "--json", "--limit", "1"]) == 0
    assert [r["job_id"] for r in json.loads(capsys.readouterr().out)] == ["j2"]
    assert main(["audit", "show", *args]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["SEQ", "TIME", "OUTCOME", "JOB"]
    assert "accepted" in table[1] and "x[0,10]" in table[1] and "a,b,c" in table[1]
    assert "refused" in table[2] and "whole cohort" in table[2]

    assert main(["audit", "verify", *args]) == 0
    assert "intact, 2 record(s)" in capsys.readouterr().out
    log = tmp_path / "party-a.audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"j1"', b'"j7"'))
    assert main(["audit", "verify", *args]) == 1
    assert "BROKEN at line 1: hash mismatch" in capsys.readouterr().out
    assert main(["audit", "verify", *args, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["line"] == 1

    log.unlink()
    assert main(["audit", "verify", *args]) == 1
    assert "no audit log" in capsys.readouterr().out
    assert main(["audit", "show", *args]) == 2
    assert "no audit log" in capsys.readouterr().err


# --- containers ----------------------------------------------------------------------------


def test_compose_puts_each_party_audit_log_on_its_own_volume(tmp_path: Path) -> None:
    options = compose.ComposeOptions()
    spec = compose.compose_spec(options)
    for pid in options.party_ids:
        path = tmp_path / f"{pid}.toml"
        path.write_text(compose.party_config(options, pid))
        config = load_party_config(path)
        assert config.audit_log == Path("/var/lib/mpc/audit.jsonl")
        (volume,) = [
            v for v in spec["services"][f"party-{pid}"]["volumes"] if v["type"] == "volume"
        ]
        assert volume == {
            "type": "volume",
            "source": f"party-{pid}-state",
            "target": "/var/lib/mpc",
        }
        assert volume["source"] in spec["volumes"]
