"""The party's participation policy: config parsing, pinning a cohort, public refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mpc.config import load_party_config
from mpc.errors import ConfigError, MpcError
from mpc.party.runtime import PartyRuntime
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
)
from tests.helpers import identity

CONFIG = """
id = "a"
listen = "127.0.0.1:0"
require_signed_queries = false
{top}
[tls]
ca = "{certs}/ca.pem"
cert = "{certs}/a.pem"
key = "{certs}/a.key"
[datasets.d]
path = "d.csv"
max_rows = 100
{dataset}
[datasets.d.columns.x]
lo = 0
hi = 10
"""


def _config(tmp_path: Path, cert_dir: Path, dataset: str = "", top: str = "") -> Path:
    (tmp_path / "d.csv").write_text("x\n1\n2\n3\n")
    path = tmp_path / "party.toml"
    path.write_text(CONFIG.format(certs=cert_dir, dataset=dataset, top=top))
    return path


def _spec(job_id: str, parties: tuple[str, ...], **kw: object) -> JobSpec:
    return JobSpec(
        job_id,
        Statistic.SUM,
        "d",
        (ColumnBound("x", 0, 10),),
        16,
        tuple(Participant(p, 100) for p in parties),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ('participation = "dp-only"', "needs a \\[budget\\]"),
        ('participation = "open"', "participation must be 'cohort' or 'dp-only'"),
        ('cohort = ["b", "c"]', "cohort must include this party"),
        ('cohort = ["a", "a", "b"]', "lists a party twice"),
        ('cohort = ["a", "b"]\nmin_parties = 3', "fewer parties than min_parties"),
        ("min_parties = 1", "min_parties must be an integer of at least 2"),
        ("max_bins = 0", "max_bins must be an integer of at least 1"),
        (
            'cohort = ["a", "b"]\n[datasets.d.budget]\nepsilon = 1.0\ndelta = 1e-6',
            "a cohort is for participation 'cohort' only",
        ),
    ],
)
def test_bad_policy_settings_are_config_errors(
    tmp_path: Path, cert_dir: Path, dataset: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_party_config(_config(tmp_path, cert_dir, dataset))


def test_defaults_are_cohort_without_budget_and_dp_only_with_one(
    tmp_path: Path, cert_dir: Path
) -> None:
    config = load_party_config(_config(tmp_path, cert_dir))
    (dataset,) = config.datasets
    assert (dataset.mode, dataset.cohort, dataset.min_parties, dataset.max_bins) == (
        "cohort",
        None,
        2,
        1024,
    )
    assert config.min_colluders is None
    assert config.ledger is not None  # to pin the cohort at first use
    budgeted = "[datasets.d.budget]\nepsilon = 1.0\ndelta = 1e-6"
    (dataset,) = load_party_config(_config(tmp_path, cert_dir, budgeted)).datasets
    assert dataset.mode == "dp-only"


def test_cohort_is_pinned_at_first_use_and_survives_a_restart(
    tmp_path: Path, cert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_party_config(_config(tmp_path, cert_dir))
    runtime = PartyRuntime(config, identity(cert_dir, "a"))
    assert runtime.describe()[0].cohort == ()
    with caplog.at_level(logging.WARNING):
        runtime.setup(_spec("j1", ("a", "b", "c")))
    assert "cohort pinned at first use" in caplog.text
    assert runtime.describe()[0].cohort == ("a", "b", "c")
    restarted = PartyRuntime(config, identity(cert_dir, "a"))
    for parties in (("a", "b"), ("a", "b", "c", "d")):
        with pytest.raises(MpcError, match=r"only for its whole cohort \['a', 'b', 'c'\]"):
            restarted.setup(_spec(f"j-{len(parties)}", parties))
    restarted.setup(_spec("j2", ("a", "b", "c")))
    # The operator changes it by declaring a cohort; the party says so in its log.
    declared = load_party_config(_config(tmp_path, cert_dir, 'cohort = ["a", "b"]'))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        changed = PartyRuntime(declared, identity(cert_dir, "a"))
    assert "replacing the cohort ['a', 'b', 'c'] pinned at first use" in caplog.text
    changed.setup(_spec("j3", ("a", "b")))


def test_noise_floor_defaults_to_n_minus_1_and_follows_the_config(
    tmp_path: Path, cert_dir: Path
) -> None:
    parties = ("a", "b", "c")
    cohort = 'cohort = ["a", "b", "c"]'
    runtime = PartyRuntime(
        load_party_config(_config(tmp_path, cert_dir, cohort)), identity(cert_dir, "a")
    )
    for t in (0, 1):
        privacy = PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, t)
        with pytest.raises(MpcError, match=f"sized for {t} colluders; it requires at least 2"):
            runtime.setup(_spec(f"t{t}", parties, privacy=privacy))
    runtime.setup(_spec("t2", parties, privacy=PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, 2)))
    honest_majority = PartyRuntime(
        load_party_config(_config(tmp_path, cert_dir, cohort, top="min_colluders = 1")),
        identity(cert_dir, "a"),
    )
    honest_majority.setup(
        _spec("t1", parties, privacy=PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, 1))
    )


def test_a_party_without_a_ledger_reports_no_budgets(tmp_path: Path, cert_dir: Path) -> None:
    """`mpc budget show` then says it keeps none, rather than "spent 0"."""
    config = load_party_config(_config(tmp_path, cert_dir, 'cohort = ["a", "b"]'))
    assert config.ledger is None
    assert PartyRuntime(config, identity(cert_dir, "a")).ledger_status() == []
