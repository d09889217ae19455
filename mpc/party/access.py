"""Who may ask what of this party's data: the client's signed query and the access policy.

The party decides, not the coordinator. For every job it verifies the client's own signature
on the query (:func:`mpc.protocol.query.verify_client`), refuses a replayed or stale query,
checks that the spec the coordinator built is the query the client signed, and then applies
the dataset's access list from the party's config: which client identities may query it,
which statistics each may run, whether exact (non-DP) results are allowed for them, and an
optional privacy budget per client that is charged together with the dataset's own.
Every decision uses the spec and the config only, never the data.
"""

from __future__ import annotations

import hashlib
import threading
import time

from cryptography import x509

from mpc.config import ClientAccess, DatasetConfig
from mpc.errors import AccessDeniedError, PrivacyBudgetError
from mpc.ledger import Ledger
from mpc.protocol.query import MAX_QUERY_AGE_SECONDS, check_spec_matches, verify_client
from mpc.protocol.spec import JobSpec


class ReplayGuard:
    """Remembers signed queries seen within their freshness window; refuses a second use.

    With the party's state database (``ledger``) the memory is durable, so a restart does not
    reopen the window; without one it lasts as long as the process.
    """

    def __init__(
        self, ledger: Ledger | None = None, window: float = 2 * MAX_QUERY_AGE_SECONDS
    ) -> None:
        self._ledger = ledger
        self._window = window
        self._seen: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def check_and_record(self, certificate_pem: bytes, nonce: bytes, client: str) -> None:
        key = hashlib.sha256(certificate_pem + b"\x00" + nonce).digest()
        if self._ledger is not None:
            fresh = self._ledger.remember_query(key, self._window)
        else:
            now = time.monotonic()
            with self._lock:
                for old in [k for k, t in self._seen.items() if now - t > self._window]:
                    del self._seen[old]
                fresh = key not in self._seen
                self._seen[key] = now
        if not fresh:
            raise AccessDeniedError(
                f"client {client!r}: this signed query was already used (a replay)"
            )


def authenticate(
    spec: JobSpec, ca: x509.Certificate, replays: ReplayGuard, *, required: bool
) -> str | None:
    """The verified client name of ``spec`` (None for an unsigned job, when allowed)."""
    if spec.client is None:
        if required:
            raise AccessDeniedError(
                "the job carries no signed query from its client (every job must: the "
                "client signs its query, the coordinator passes it on)"
            )
        return None
    signed = verify_client(spec.client, ca)
    check_spec_matches(spec, signed)
    replays.check_and_record(spec.client.certificate_pem, spec.client.nonce, signed.client)
    return signed.client


def authorise(spec: JobSpec, dataset: DatasetConfig, client: str | None) -> ClientAccess | None:
    """Apply the dataset's access list; the client's entry (None: the dataset is open)."""
    if dataset.access is None:
        return None
    name = spec.dataset
    if client is None:
        raise AccessDeniedError(
            f"dataset {name!r} is open to listed clients only, and this job names no client"
        )
    entry = next((a for a in dataset.access if a.client == client), None)
    if entry is None:
        raise AccessDeniedError(f"client {client!r} may not query dataset {name!r}")
    statistic = spec.statistic.value
    if entry.statistics is not None and statistic not in entry.statistics:
        raise AccessDeniedError(
            f"client {client!r} may not run {statistic} on dataset {name!r} "
            f"(allowed: {', '.join(entry.statistics) or 'none'})"
        )
    if spec.privacy is None and not entry.exact:
        raise PrivacyBudgetError(
            f"client {client!r} may see only differentially private results of dataset "
            f"{name!r} (pass --epsilon)"
        )
    return entry


def client_ledger_key(dataset: str, client: str) -> str:
    """The ledger row key of one client's own budget on one dataset."""
    return f"{dataset}@client:{client}"


__all__ = ["ReplayGuard", "authenticate", "authorise", "client_ledger_key"]
