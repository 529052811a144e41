"""Local certificates for the model server: a CA, a server and a client certificate.

`riskpipe certs --out DIR` writes them with the ssl_config files that
tensorflow_model_server and `riskpipe serve` read, for development and tests.
Production deployments bring certificates from their own CA.
"""
import dataclasses
import datetime
import ipaddress
import os
from typing import Iterable, List

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import text_format

from common.errors import UsageError
from serving import config_protos

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")


@dataclasses.dataclass(frozen=True)
class CertificateFiles:
    """Paths of everything `make_certificates` writes."""

    out_dir: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    server_ssl_config: str       # TLS; clients need no certificate
    server_mtls_ssl_config: str  # mutual TLS: client_verify: true
    client_ssl_config: str       # the client's side: CA it trusts, its own cert and key

    def all_paths(self) -> List[str]:
        return [value for key, value in dataclasses.asdict(self).items() if key != "out_dir"]


def certificate_files(out_dir: str) -> CertificateFiles:
    join = lambda name: os.path.join(out_dir, name)  # noqa: E731
    return CertificateFiles(
        out_dir=out_dir,
        ca_cert=join("ca.pem"), ca_key=join("ca.key"),
        server_cert=join("server.pem"), server_key=join("server.key"),
        client_cert=join("client.pem"), client_key=join("client.key"),
        server_ssl_config=join("ssl_config.pbtxt"),
        server_mtls_ssl_config=join("ssl_config_mtls.pbtxt"),
        client_ssl_config=join("client_ssl_config.pbtxt"),
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "riskpipe local"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def make_ca(common_name: str = "riskpipe local CA", days: int = 365):
    """A self-signed CA: (certificate, private key)."""
    key = _new_key()
    name = _name(common_name)
    cert = (_builder(name, name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _subject_alt_names(hostnames: Iterable[str]) -> x509.SubjectAlternativeName:
    names = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_certificate(ca_cert, ca_key, common_name: str, hostnames: Iterable[str] = (),
                      client: bool = False, days: int = 365):
    """A leaf certificate signed by the CA: (certificate, private key)."""
    key = _new_key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (_builder(_name(common_name), ca_cert.subject, key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    hostnames = list(hostnames)
    if hostnames:
        builder = builder.add_extension(_subject_alt_names(hostnames), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def ssl_config_text(server_key: bytes, server_cert: bytes, custom_ca: bytes = b"",
                    client_verify: bool = False) -> str:
    """An SSLConfig text proto holding PEM contents, as TF Serving expects."""
    config = config_protos.ssl_config_class()(
        server_key=server_key.decode(), server_cert=server_cert.decode(),
        custom_ca=custom_ca.decode(), client_verify=client_verify)
    return text_format.MessageToString(config)


def _write(path: str, data, private: bool = False) -> None:
    mode = 0o600 if private else 0o644
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())


def make_certificates(out_dir: str, hostnames: Iterable[str] = DEFAULT_HOSTNAMES,
                      days: int = 365, overwrite: bool = False) -> CertificateFiles:
    """Writes a CA, server and client certificates and the matching ssl_config files.

    Refuses to replace existing files unless `overwrite`, so a working setup is
    never clobbered by accident.
    """
    files = certificate_files(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    existing = [path for path in files.all_paths() if os.path.exists(path)]
    if existing and not overwrite:
        raise UsageError(f"{existing[0]}: already exists (pass --force to replace the certificates)")
    for path in existing:
        os.remove(path)
    ca_cert, ca_key = make_ca(days=days)
    server_cert, server_key = issue_certificate(ca_cert, ca_key, "riskpipe model server",
                                                hostnames, client=False, days=days)
    client_cert, client_key = issue_certificate(ca_cert, ca_key, "riskpipe client", (),
                                                client=True, days=days)
    ca_pem, server_pem, client_pem = _cert_pem(ca_cert), _cert_pem(server_cert), _cert_pem(client_cert)
    server_key_pem, client_key_pem = _key_pem(server_key), _key_pem(client_key)
    _write(files.ca_cert, ca_pem)
    _write(files.ca_key, _key_pem(ca_key), private=True)
    _write(files.server_cert, server_pem)
    _write(files.server_key, server_key_pem, private=True)
    _write(files.client_cert, client_pem)
    _write(files.client_key, client_key_pem, private=True)
    _write(files.server_ssl_config, ssl_config_text(server_key_pem, server_pem), private=True)
    _write(files.server_mtls_ssl_config,
           ssl_config_text(server_key_pem, server_pem, ca_pem, client_verify=True), private=True)
    _write(files.client_ssl_config, ssl_config_text(client_key_pem, client_pem, ca_pem), private=True)
    return files
