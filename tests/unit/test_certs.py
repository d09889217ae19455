"""`mpc certs init`: server certificates also name localhost and 127.0.0.1 (grpc-js, grpcurl)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from mpc.identity import init_certificates


def _alt_names(path: Path) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        san.get_values_for_type(x509.DNSName),
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
    )


def test_server_certificates_name_localhost_by_default(tmp_path: Path) -> None:
    init_certificates(tmp_path, ["a", "b"], clients=("client",), admins=("root",))
    for server in ("coordinator", "a", "b"):
        assert _alt_names(tmp_path / f"{server}.pem") == ([server, "localhost"], ["127.0.0.1"])
    for client in ("client", "root"):  # clients are never dialled
        assert _alt_names(tmp_path / f"{client}.pem") == ([client], [])


def test_extra_hosts_come_first_and_are_not_repeated(tmp_path: Path) -> None:
    hosts = ("mpc.example.org", "10.0.0.7", "localhost", "::1", "127.0.0.1")
    init_certificates(tmp_path, ["a", "b"], extra_hosts=hosts)
    names, ips = _alt_names(tmp_path / "coordinator.pem")
    assert names == ["coordinator", "mpc.example.org", "localhost"]
    assert [ipaddress.ip_address(ip) for ip in ips] == [
        ipaddress.ip_address(h) for h in ("10.0.0.7", "::1", "127.0.0.1")
    ]
    assert _alt_names(tmp_path / "client.pem") == (
        ["client", "mpc.example.org", "localhost"],
        ["10.0.0.7", "::1", "127.0.0.1"],
    )
