"""TLS from TF Serving's SSLConfig: plaintext, wrong-CA and certificate-less clients refused."""
import grpc
import pytest

import model_fixtures
from serving import certs, tls
from serving_helpers import Client, predict_request, running_server, serialized_examples, server_options

TIMEOUT = 10


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory):
    return certs.make_certificates(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def other_ca_files(tmp_path_factory):
    return certs.make_certificates(str(tmp_path_factory.mktemp("other-certs")))


@pytest.fixture(scope="module")
def examples(tiny_model_dir):
    return serialized_examples(tiny_model_dir)


@pytest.fixture(scope="module")
def tls_base_path(tiny_model_dir, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("tls-models") / "fraud")
    model_fixtures.publish_version(tiny_model_dir, base, 1)
    return base


def _predict(client: Client, examples):
    return client.prediction.Predict(predict_request(examples), timeout=TIMEOUT)


def _refused(client: Client, examples) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        _predict(client, examples)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    return raised.value


@pytest.fixture(scope="module")
def tls_server(tls_base_path, cert_files):
    options = server_options(tls_base_path, ssl_config_file=cert_files.server_ssl_config)
    with running_server(options) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(tls_base_path, cert_files):
    options = server_options(tls_base_path, ssl_config_file=cert_files.server_mtls_ssl_config)
    with running_server(options) as server:
        yield server


def test_tls_client_trusting_the_ca_is_served(tls_server, cert_files, examples):
    client = Client(f"localhost:{tls_server.port}", tls.client_tls_from_files(cert_files.ca_cert))
    assert _predict(client, examples).model_spec.version.value == 1
    client.close()


def test_plaintext_client_is_refused_by_a_tls_server(tls_server, examples):
    _refused(Client(f"127.0.0.1:{tls_server.port}"), examples)


def test_client_trusting_another_ca_is_refused(tls_server, other_ca_files, examples):
    _refused(Client(f"localhost:{tls_server.port}",
                    tls.client_tls_from_files(other_ca_files.ca_cert)), examples)


def test_mutual_tls_serves_a_client_with_a_certificate(mtls_server, cert_files, examples):
    client_tls = tls.client_tls_from_ssl_config(cert_files.client_ssl_config)
    client = Client(f"localhost:{mtls_server.port}", client_tls)
    assert _predict(client, examples).model_spec.version.value == 1
    client.close()


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_server, cert_files, examples):
    _refused(Client(f"localhost:{mtls_server.port}",
                    tls.client_tls_from_files(cert_files.ca_cert)), examples)


def test_mutual_tls_refuses_a_certificate_from_another_ca(mtls_server, cert_files,
                                                          other_ca_files, examples):
    foreign = tls.ClientTLS(root_ca_pem=open(cert_files.ca_cert, "rb").read(),
                            cert_pem=open(other_ca_files.client_cert, "rb").read(),
                            key_pem=open(other_ca_files.client_key, "rb").read())
    _refused(Client(f"localhost:{mtls_server.port}", foreign), examples)


def test_ssl_config_holding_a_path_instead_of_pem_is_a_usage_error(tmp_path, cert_files):
    from common.errors import UsageError
    config = tmp_path / "ssl.config"
    config.write_text(f'server_key: "{cert_files.server_key}"\nserver_cert: "{cert_files.server_cert}"\n')
    with pytest.raises(UsageError, match="server_key does not hold PEM contents"):
        tls.load_ssl_config(str(config))


def test_certs_refuses_to_overwrite_without_force(cert_files):
    from common.errors import UsageError
    with pytest.raises(UsageError, match="already exists"):
        certs.make_certificates(cert_files.out_dir)
