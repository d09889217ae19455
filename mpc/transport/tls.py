"""Mutual TLS for every channel, and the caller's identity from its certificate.

Servers require a client certificate from the consortium CA. Clients check the server's
certificate against the CA *and* against the identity they expect (``expected_name`` is set as
the TLS target name, so a certificate for party ``a`` cannot answer for party ``b``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509

from mpc.errors import AccessDeniedError
from mpc.identity import (
    Identity,
    Role,
    cert_name,
    cert_role,
    revoked_problem,
    validity_problem,
)

#: Above the ~1 MiB chunks and a job spec with 2^20 histogram bins (2^20 + 1 float64 edges,
#: 8 MiB), with room for headers; anything larger is refused by gRPC itself.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024 + 64 * 1024

_COMMON_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def server_credentials(identity: Identity) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(identity.key_pem, identity.cert_pem)],
        root_certificates=identity.ca_pem,
        require_client_auth=True,
    )


def secure_channel(
    address: str,
    identity: Identity,
    expected_name: str,
    *,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A mutual-TLS channel; ``options`` replace the defaults of the same name."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_pem,
        private_key=identity.key_pem,
        certificate_chain=identity.cert_pem,
    )
    defaults = [
        *_COMMON_OPTIONS,
        ("grpc.ssl_target_name_override", expected_name),
        # Reconnect quickly after a peer restarts: gRPC's default backoff grows to minutes,
        # which would fail every job long after the party is back.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
        # gRPC also uses this as the *minimum connect timeout* (TCP + TLS handshake). At
        # 200 ms, handshakes slowed by load (100 clients connecting at once, or a coordinator
        # opening its party channels under that load) were cut off and reported as
        # "unreachable"; a refused connection still fails at once, and calls keep their
        # own deadlines.
        ("grpc.min_reconnect_backoff_ms", 10_000),
    ]
    replaced = {name for name, _ in options}
    merged = [(name, value) for name, value in defaults if name not in replaced]
    return grpc.secure_channel(address, credentials, options=[*merged, *options])


def new_server(max_workers: int) -> grpc.Server:
    from concurrent import futures

    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[*_COMMON_OPTIONS, ("grpc.so_reuseport", 0)],
    )


@dataclass(frozen=True)
class Peer:
    name: str
    role: str


def peer_certificate(context: grpc.ServicerContext) -> x509.Certificate | None:
    """The caller's certificate, or None if it presented none."""
    auth = context.auth_context()
    pems: Sequence[bytes] = auth.get("x509_pem_cert", [])
    if not pems:
        return None
    return x509.load_pem_x509_certificate(pems[0])


def peer_of(context: grpc.ServicerContext) -> Peer | None:
    """The caller's certificate name and role, or None if it presented no certificate."""
    cert = peer_certificate(context)
    if cert is None:
        return None
    return Peer(name=cert_name(cert), role=cert_role(cert))


def check_peer_certificate(cert: x509.Certificate) -> None:
    """Refuse a caller whose certificate is expired, not yet valid, or revoked.

    The TLS handshake checks validity only when a connection opens, and gRPC servers take no
    CRL; this runs on every call, against the CRLs the server watches
    (:func:`mpc.identity.watch_revocations`, re-read when the file changes).
    """
    problem = validity_problem(cert) or revoked_problem(cert)
    if problem is not None:
        raise AccessDeniedError(f"{problem}; the call is refused")


def require_role(context: grpc.ServicerContext, *roles: Role) -> Peer:
    """Raise :class:`AccessDeniedError` unless the caller has one of ``roles`` and a
    certificate that is neither expired nor revoked."""
    cert = peer_certificate(context)
    if cert is not None:
        check_peer_certificate(cert)
    peer = None if cert is None else Peer(name=cert_name(cert), role=cert_role(cert))
    if peer is None or peer.role not in {r.value for r in roles}:
        who = f"{peer.name!r} ({peer.role})" if peer else "an unauthenticated caller"
        allowed = " or ".join(r.value for r in roles)
        raise AccessDeniedError(f"{who} may not call this; it needs a {allowed} certificate")
    return peer


__all__ = [
    "MAX_MESSAGE_BYTES",
    "Peer",
    "check_peer_certificate",
    "new_server",
    "peer_certificate",
    "peer_of",
    "require_role",
    "secure_channel",
    "server_credentials",
]
