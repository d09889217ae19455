"""Adversarial tests with real processes: a client with a valid certificate, and a fake
coordinator holding the coordinator's certificate that drives the party RPCs itself.

The cluster here writes its own TOML configs (the participation keys included) instead of
relying on :class:`mpc.demo.cluster.DatasetFile`, so the same tests also run against older
builds of the library, which ignore keys they do not know: there they must fail, showing
that each attack worked.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mpc.demo.cluster import LocalCluster
from mpc.errors import ConfigError, MpcError
from mpc.identity import init_certificates, load_identity
from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.secure_sum import SignedKeyOffer
from mpc.protocol.spec import JobSpec
from mpc.ring import decode
from mpc.transport.party_client import GrpcPartyLink

#: Planted in the data: it must never show up in any log, error or result text.
CANARY = 7355608.25
CANARY_TEXTS = (repr(CANARY), "7355608")

PARTIES = ("a", "b", "c")


# --- data ---------------------------------------------------------------------------------


def write_csv(
    path: Path, columns: Sequence[str], rows: np.ndarray | Sequence[Sequence[float]]
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(columns))
    lines = [",".join(columns)] + [",".join(repr(float(v)) for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")
    return path


def people_rows(index: int, rows: int) -> np.ndarray:
    """Deterministic rows of (age, income, score, big), the canary planted in income."""
    grid = np.arange(rows, dtype=np.float64)
    age = 18 + (grid * 7 + index * 13) % 90 + 0.25 * (index % 3)
    income = -60_000 + (grid * 9_871 + index * 4_567) % 600_000
    score = np.sin(grid + index) * 12
    big = (grid * 3 + index) % 100
    table = np.column_stack([age, income, score, big])
    if rows > 2:
        table[1, 1] = CANARY  # a secret-looking value inside the bounds
    return table


PEOPLE_COLUMNS = ("age", "income", "score", "big")
PEOPLE_BOUNDS = {
    "age": (0.0, 120.0),
    "income": (-50_000.0, 500_000.0),
    "score": (-10.0, 10.0),
    "big": (0.0, 100.0),
}


# --- configs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """One dataset of one party, with the participation keys of the issue-8 design."""

    path: Path
    max_rows: int
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    budget: tuple[float, float] | None = None
    participation: str | None = None  # "cohort" or "dp-only"
    cohort: tuple[str, ...] | None = None
    min_parties: int | None = None
    max_bins: int | None = None


def _s(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def party_toml(party_id: str, listen: str, tls_dir: Path, datasets: Mapping[str, Dataset]) -> str:
    lines = [
        f"id = {_s(party_id)}",
        f"listen = {_s(listen)}",
        "",
        "[tls]",
        f"ca = {_s(str(tls_dir / 'ca.pem'))}",
        f"cert = {_s(str(tls_dir / f'{party_id}.pem'))}",
        f"key = {_s(str(tls_dir / f'{party_id}.key'))}",
    ]
    for name, d in datasets.items():
        lines += [
            "",
            f"[datasets.{_s(name)}]",
            f"path = {_s(str(d.path))}",
            f"max_rows = {d.max_rows}",
        ]
        if d.participation is not None:
            lines.append(f"participation = {_s(d.participation)}")
        if d.cohort is not None:
            lines.append("cohort = [" + ", ".join(_s(p) for p in d.cohort) + "]")
        if d.min_parties is not None:
            lines.append(f"min_parties = {d.min_parties}")
        if d.max_bins is not None:
            lines.append(f"max_bins = {d.max_bins}")
        if d.budget is not None:
            lines += [
                "",
                f"[datasets.{_s(name)}.budget]",
                f"epsilon = {float(d.budget[0])!r}",
                f"delta = {float(d.budget[1])!r}",
            ]
        for column, (lo, hi) in d.bounds.items():
            lines += [
                "",
                f"[datasets.{_s(name)}.columns.{_s(column)}]",
                f"lo = {float(lo)!r}",
                f"hi = {float(hi)!r}",
            ]
    return "\n".join(lines) + "\n"


def coordinator_toml(
    tls_dir: Path,
    database: Path,
    parties: Mapping[str, str],
    job_timeout: float,
    rpc_timeout: float,
    min_cell_count: int | None,
) -> str:
    lines = [
        'listen = "127.0.0.1:0"',
        f"database = {_s(str(database))}",
        f"job_timeout_seconds = {float(job_timeout)!r}",
        f"rpc_timeout_seconds = {float(rpc_timeout)!r}",
    ]
    if min_cell_count is not None:
        lines.append(f"min_cell_count = {min_cell_count}")
    lines += [
        "",
        "[tls]",
        f"ca = {_s(str(tls_dir / 'ca.pem'))}",
        f"cert = {_s(str(tls_dir / 'coordinator.pem'))}",
        f"key = {_s(str(tls_dir / 'coordinator.key'))}",
    ]
    for party_id, address in parties.items():
        lines += ["", "[[parties]]", f"id = {_s(party_id)}", f"address = {_s(address)}"]
    return "\n".join(lines) + "\n"


class SecurityCluster(LocalCluster):
    """A LocalCluster that writes its own configs; the coordinator process is optional."""

    def __init__(
        self,
        workdir: Path,
        datasets: Mapping[str, Mapping[str, Dataset]],
        *,
        coordinator: bool = True,
        min_cell_count: int | None = None,
        job_timeout: float = 30.0,
        rpc_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            workdir,
            datasets,  # type: ignore[arg-type]
            job_timeout=job_timeout,
            rpc_timeout=rpc_timeout,
            start_timeout=60.0,
            log_level="DEBUG",
        )
        self.sec_datasets = datasets
        self.with_coordinator = coordinator
        self.sec_min_cell_count = min_cell_count

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        if not (self.tls_dir / "ca.pem").exists():
            init_certificates(self.tls_dir, self.party_ids)
        for party_id in self.party_ids:
            self.start_party(party_id)
        for party_id in self.party_ids:
            self.addresses[party_id] = self._wait_ready(party_id)
        if self.with_coordinator:
            self.start_coordinator()

    def start_party(self, party_id: str, listen: str = "127.0.0.1:0") -> None:
        config = self.party_config_path(party_id)
        if listen == "127.0.0.1:0" and party_id in self.addresses:
            listen = self.addresses[party_id]  # a restart keeps its address
        config.write_text(party_toml(party_id, listen, self.tls_dir, self.sec_datasets[party_id]))
        self._spawn(party_id, ["party", "serve", "--config", str(config)])

    def start_coordinator(self) -> None:
        config = self.workdir / "coordinator.toml"
        config.write_text(
            coordinator_toml(
                self.tls_dir,
                self.workdir / "coordinator.sqlite",
                self.addresses,
                self.job_timeout,
                self.rpc_timeout,
                self.sec_min_cell_count,
            )
        )
        self._spawn("coordinator", ["coordinator", "serve", "--config", str(config)])
        self.coordinator_address = self._wait_ready("coordinator")

    def restart_party(self, party_id: str) -> None:
        """Stop the party's process and start it again on the same config and state.

        It keeps its address when it can; another process on this machine may have taken the
        freed port meanwhile, so the last attempt binds a fresh one (callers that talk to the
        party follow ``addresses``)."""
        self.stop_process(party_id)
        for attempt in range(3):
            if attempt == 2:
                self.addresses.pop(party_id, None)
            self.start_party(party_id)
            try:
                self.addresses[party_id] = self._wait_ready(party_id)
                return
            except ConfigError:
                self.stop_process(party_id)
                if attempt == 2:
                    raise
                time.sleep(0.5)


def assert_no_secrets_in_logs(cluster: LocalCluster) -> None:
    """The canary value, and any private key, must not be in any log of the run."""
    for log in cluster.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        for needle in (*CANARY_TEXTS, "PRIVATE KEY"):
            assert needle not in text, f"{needle!r} leaked into {log.name}"


ClusterFactory = Callable[..., SecurityCluster]


@pytest.fixture(scope="module")
def cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFactory]:
    """Start clusters for one module; every one is stopped at teardown, even on failure."""
    clusters: list[SecurityCluster] = []

    def make(datasets: Mapping[str, Mapping[str, Dataset]], **kwargs: object) -> SecurityCluster:
        workdir = tmp_path_factory.mktemp("security-cluster")
        cluster = SecurityCluster(workdir, datasets, **kwargs)  # type: ignore[arg-type]
        clusters.append(cluster)
        cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()
    for cluster in clusters:
        assert_no_secrets_in_logs(cluster)


# --- outcome texts ------------------------------------------------------------------------

_JOB_ID = re.compile(r"job-[0-9a-f]{16}|\bjob [A-Za-z0-9][A-Za-z0-9_.-]*")


def normalise(text: str, *names: str) -> str:
    """An error text without job ids and without the given (quoted) dataset or party names,
    so texts from neighbouring datasets or from different parties can be compared."""
    text = _JOB_ID.sub("job <id>", text)
    for name in names:
        for quote in ("'", '"'):
            text = text.replace(f"{quote}{name}{quote}", "<name>")
    return text


# --- the fake coordinator -----------------------------------------------------------------


@dataclass
class RoundOutcome:
    """What each party did with one round: its error text, or None (answered)."""

    errors: dict[str, str]
    total: np.ndarray | None  # the ring sum of all answered shares, when every party answered

    def decoded(self, frac_bits: int) -> np.ndarray:
        assert self.total is not None, f"not every party answered: {self.errors}"
        return decode(self.total, frac_bits)


def _add_share(
    total: np.ndarray,
    errors: dict[str, str],
    party_id: str,
    share: Callable[[], Iterator[tuple[int, np.ndarray]]],
) -> None:
    """Add one party's streamed share into ``total`` mod 2^64, or record its error text."""
    try:
        for offset, words in share():
            np.add(
                total[offset : offset + words.size], words, out=total[offset : offset + words.size]
            )
    except MpcError as exc:
        errors[party_id] = str(exc)


class FakeCoordinator:
    """Holds the coordinator's certificate and drives the parties' RPCs directly."""

    def __init__(self, cluster: SecurityCluster, timeout: float = 15.0) -> None:
        self.cluster = cluster
        self.timeout = timeout
        tls = cluster.tls_dir
        self.identity = load_identity(
            tls / "ca.pem", tls / "coordinator.pem", tls / "coordinator.key"
        )
        self.links: dict[str, GrpcPartyLink] = {}

    def link(self, party_id: str) -> GrpcPartyLink:
        address = self.cluster.addresses[party_id]
        current = self.links.get(party_id)
        if current is None or current.address != address:
            current = GrpcPartyLink(party_id, address, self.identity)
            self.links[party_id] = current
        return current

    def reconnect(self, party_id: str) -> None:
        old = self.links.pop(party_id, None)
        if old is not None:
            old.close()

    def max_rows(self, dataset: str) -> dict[str, int]:
        out = {}
        for pid in self.cluster.party_ids:
            info = next(d for d in self.link(pid).describe(self.timeout) if d.name == dataset)
            out[pid] = info.max_rows
        return out

    def signed(self, spec: JobSpec) -> JobSpec:
        """``spec`` with a query signed by the cluster's client: this coordinator colludes
        with a client, which may sign any query it likes (parties refuse unsigned jobs)."""
        if "client" not in {f.name for f in dataclasses.fields(JobSpec)} or getattr(
            spec, "client", None
        ):
            return spec  # an older build without signed queries, or already signed
        from mpc.protocol.query import Query, sign_query
        from mpc.protocol.spec import NoiseMode, Statistic

        privacy = spec.privacy
        query = Query(
            statistic=spec.statistic,
            dataset=spec.dataset,
            columns=()
            if spec.statistic is Statistic.VECTOR_SUM
            else tuple(c.column for c in spec.columns),
            bounds=() if spec.statistic is Statistic.HISTOGRAM else spec.columns,
            frac_bits=spec.frac_bits,
            parties=spec.party_ids,
            noise=privacy.noise if privacy else NoiseMode.NONE,
            epsilon=privacy.epsilon if privacy else 0.0,
            delta=privacy.delta if privacy else 0.0,
            training=spec.training,
            bin_edges=spec.bin_edges,
        )
        tls = self.cluster.tls_dir
        client = load_identity(tls / "ca.pem", tls / "client.pem", tls / "client.key")
        return dataclasses.replace(spec, client=sign_query(client, query))  # type: ignore[call-arg]

    def setup(self, spec: JobSpec) -> tuple[dict[str, SignedKeyOffer], dict[str, str]]:
        """Setup at every participant: (offers, refusals)."""
        spec = self.signed(spec)
        offers: dict[str, SignedKeyOffer] = {}
        refusals: dict[str, str] = {}
        for pid in spec.party_ids:
            try:
                offers[pid] = self.link(pid).setup(spec, self.timeout)
            except MpcError as exc:
                refusals[pid] = str(exc)
        return offers, refusals

    def start(self, spec: JobSpec) -> None:
        """Setup and key agreement at every participant; raise if any refuses."""
        offers, refusals = self.setup(spec)
        if refusals:
            self.abort(spec)
            raise AssertionError(f"setup refused: {refusals}")
        ordered = [offers[pid] for pid in spec.party_ids]
        for pid in spec.party_ids:
            self.link(pid).agree(spec.job_id, ordered, self.timeout)

    def contribute(
        self,
        spec: JobSpec,
        round_id: int,
        length: int,
        inputs: Mapping[str, np.ndarray | None] | np.ndarray | None = None,
    ) -> RoundOutcome:
        """One round; ``inputs`` is one round input for all, or one per party (equivocation)."""
        total = np.zeros(length, dtype=np.uint64)
        errors: dict[str, str] = {}
        for pid in spec.party_ids:
            round_input = inputs.get(pid) if isinstance(inputs, Mapping) else inputs
            share = functools.partial(
                self.link(pid).contribute, spec.job_id, round_id, length, self.timeout, round_input
            )
            _add_share(total, errors, pid, share)
        return RoundOutcome(errors, None if errors else total)

    def epoch_keys(self, party_ids: Sequence[str] | None = None) -> dict[str, SignedEpochKey]:
        """Every party's current signed epoch key, as Describe hands it out."""
        out = {}
        for pid in party_ids or self.cluster.party_ids:
            key = self.link(pid).view(self.timeout).epoch_key
            assert key is not None, f"party {pid} offers no epoch key"
            out[pid] = key
        return out

    def query(
        self,
        spec: JobSpec | Mapping[str, JobSpec],
        keys: Mapping[str, Sequence[SignedEpochKey]] | Sequence[SignedEpochKey],
        length: int,
    ) -> RoundOutcome:
        """The one-call flow: ``Query`` at every party with the relayed epoch keys. Either may
        be one per party (equivocation): a spec per party, a key list per party."""
        if isinstance(spec, JobSpec):
            signed = self.signed(spec)  # once: every party must see the same signed query
            specs = dict.fromkeys(signed.party_ids, signed)
        else:
            specs = {pid: self.signed(s) for pid, s in spec.items()}
        total = np.zeros(length, dtype=np.uint64)
        errors: dict[str, str] = {}
        for pid, mine in specs.items():
            relayed = keys[pid] if isinstance(keys, Mapping) else keys
            share = functools.partial(self.link(pid).query, mine, relayed, length, self.timeout)
            _add_share(total, errors, pid, share)
        return RoundOutcome(errors, None if errors else total)

    def abort(self, spec: JobSpec) -> None:
        for pid in spec.party_ids:
            self.link(pid).abort(spec.job_id, "fake coordinator done", 2.0)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()
