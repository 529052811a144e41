"""TLS for the model server and its clients, from TF Serving's SSLConfig text proto.

The server reads `--ssl_config_file` exactly as tensorflow_model_server does:
`server_key`, `server_cert` and `custom_ca` hold PEM *contents*, and
`client_verify: true` demands a client certificate signed by `custom_ca`
(mutual TLS).

Clients read the same message from their side (the `client_ssl_config.pbtxt`
that `riskpipe certs` writes): `custom_ca` is the CA they trust, and
`server_cert` / `server_key` are their own certificate and key, presented only
when the server asks for one.
"""
import dataclasses
from typing import Optional, Sequence, Tuple

import grpc

from common.errors import UsageError
from serving import config_protos

_PEM_FIELDS = {
    "server_key": "PRIVATE KEY-----",
    "server_cert": "-----BEGIN CERTIFICATE-----",
    "custom_ca": "-----BEGIN CERTIFICATE-----",
}


def load_ssl_config(path: str):
    """Reads and validates a server SSLConfig; errors name the file and field."""
    config = config_protos.read_text_proto(path, config_protos.ssl_config_class())
    validate_server_ssl_config(config, path)
    return config


def validate_server_ssl_config(config, source: str) -> None:
    for field in ("server_key", "server_cert"):
        if not getattr(config, field):
            raise UsageError(f"{source}: field {field} is empty; it must hold PEM contents")
    if config.client_verify and not config.custom_ca:
        raise UsageError(f"{source}: client_verify is true but custom_ca is empty")
    _check_pem(config, source)


def _check_pem(config, source: str) -> None:
    # A path where PEM contents belong is the classic mistake with this file.
    for field, marker in _PEM_FIELDS.items():
        value = getattr(config, field)
        if value and marker not in value:
            raise UsageError(
                f"{source}: field {field} does not hold PEM contents (TF Serving's SSLConfig "
                f"takes the PEM text itself, not a file path)")


def server_credentials(config) -> grpc.ServerCredentials:
    """gRPC server credentials for a validated SSLConfig."""
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=bool(config.client_verify),
    )


@dataclasses.dataclass(frozen=True)
class ClientTLS:
    """What a client needs to reach a TLS model server."""

    root_ca_pem: bytes
    cert_pem: Optional[bytes] = None
    key_pem: Optional[bytes] = None
    # Overrides the name checked against the server certificate, for servers
    # reached through an address their certificate does not list.
    server_name: str = ""

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )

    def channel_options(self) -> Tuple[Tuple[str, str], ...]:
        if not self.server_name:
            return ()
        return (("grpc.ssl_target_name_override", self.server_name),)


def client_tls_from_ssl_config(path: str, server_name: str = "") -> ClientTLS:
    """A ClientTLS from a client-side SSLConfig text proto (see the module docstring)."""
    config = config_protos.read_text_proto(path, config_protos.ssl_config_class())
    if not config.custom_ca:
        raise UsageError(f"{path}: field custom_ca is empty; a client needs the CA it trusts")
    _check_pem(config, path)
    if bool(config.server_cert) != bool(config.server_key):
        raise UsageError(f"{path}: server_cert and server_key must be given together")
    return ClientTLS(
        root_ca_pem=config.custom_ca.encode(),
        cert_pem=config.server_cert.encode() or None,
        key_pem=config.server_key.encode() or None,
        server_name=server_name,
    )


def client_tls_from_files(ca_path: str, cert_path: str = "", key_path: str = "",
                          server_name: str = "") -> ClientTLS:
    """A ClientTLS from PEM files on disk."""
    def read(path: str) -> Optional[bytes]:
        if not path:
            return None
        with open(path, "rb") as handle:
            return handle.read()
    return ClientTLS(read(ca_path), read(cert_path), read(key_path), server_name)


def secure_channel(target: str, client_tls: ClientTLS,
                   options: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
    """A gRPC channel to a TLS model server."""
    return grpc.secure_channel(
        target, client_tls.channel_credentials(),
        options=tuple(options) + client_tls.channel_options())


def channel(target: str, client_tls: Optional[ClientTLS] = None,
            options: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
    """A TLS channel when `client_tls` is given, a plaintext one otherwise."""
    if client_tls is None:
        return grpc.insecure_channel(target, options=tuple(options))
    return secure_channel(target, client_tls, options)
