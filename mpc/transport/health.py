"""``mpc health``: ask a server's gRPC health service, using the server's own config.

Also checks the server's own certificate: expired (or not yet valid) or revoked fails the
check, and one expiring within :data:`~mpc.identity.EXPIRY_WARNING_DAYS` days gives a warning.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mpc.config import load_coordinator_config, load_party_config
from mpc.errors import ConfigError
from mpc.identity import EXPIRY_WARNING_DAYS, days_left, load_crl, validity_problem
from mpc.transport.tls import secure_channel


@dataclass(frozen=True)
class HealthReport:
    name: str
    address: str
    serving: bool
    status: str  # the gRPC serving status, or why the server was not asked
    message: str
    certificate: Path
    expires: dt.datetime
    days_left: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.address,
            "serving": self.serving,
            "status": self.status,
            "message": self.message,
            "certificate": {
                "path": str(self.certificate),
                "not_after": self.expires.isoformat(),
                "days_left": round(self.days_left, 2),
            },
            "warnings": list(self.warnings),
        }


def health_report(
    config_path: Path,
    timeout: float = 5.0,
    *,
    now: dt.datetime | None = None,
    warn_days: float = EXPIRY_WARNING_DAYS,
) -> HealthReport:
    try:
        with config_path.open("rb") as handle:
            is_party = "id" in tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {config_path}: {exc}") from exc
    if is_party:
        party = load_party_config(config_path)
        listen, tls, name = party.listen, party.tls, party.party_id
    else:
        coordinator = load_coordinator_config(config_path)
        listen, tls, name = coordinator.listen, coordinator.tls, "coordinator"
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 (a wildcard listen is probed locally)
        host = "127.0.0.1"
    address = f"{host}:{port}"
    identity = tls.load()  # its own certificate: any consortium certificate may ask for health
    cert = identity.certificate
    left = days_left(cert, now)

    def report(serving: bool, status: str, message: str, warnings: list[str]) -> HealthReport:
        return HealthReport(
            name,
            address,
            serving,
            status,
            message,
            tls.cert,
            cert.not_valid_after_utc,
            left,
            warnings,
        )

    problem = validity_problem(cert, now)
    if problem is not None:
        return report(
            False,
            "CERTIFICATE_EXPIRED",
            f"{name} at {address}: {problem} ({tls.cert}); every peer refuses it: issue a new "
            "certificate and restart",
            [],
        )
    if tls.crl_path.exists():
        crl = load_crl(tls.crl_path, identity.ca_certificate)
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return report(
                False,
                "CERTIFICATE_REVOKED",
                f"{name} at {address}: its certificate {tls.cert} (serial "
                f"{cert.serial_number:#x}) is revoked in {tls.crl_path}; every peer refuses it",
                [],
            )
    warnings = []
    if left < warn_days:
        within = f"in {int(left)} day(s)" if left >= 1 else "within a day"
        warnings.append(
            f"certificate {tls.cert} of {name!r} expires {within}, on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: issue a new one before then"
        )
    with secure_channel(address, identity, expected_name=name) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code().name
            return report(False, code, f"{name} at {address}: not healthy ({code})", warnings)
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return report(serving, status, f"{name} at {address}: {status}", warnings)


def check_health(config_path: Path, timeout: float = 5.0) -> tuple[bool, str]:
    """(serving, one line) for ``config_path``'s server; see :func:`health_report`."""
    report = health_report(config_path, timeout)
    return report.serving, report.message


__all__ = ["HealthReport", "check_health", "health_report"]
